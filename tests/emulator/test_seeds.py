"""The demo seed is deterministic, linked, and carries the awkward values codecs must survive."""

from __future__ import annotations

import datetime as dt

import pytest

from sfbulk.emulator.seeds import DEMO_OBJECTS, demo_counts, seed_demo, seed_empty
from sfbulk.emulator.store import Org
from sfbulk.ids import is_valid_id

NOW = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _org() -> Org:
    return Org(clock=lambda: NOW)


@pytest.fixture(scope="module")
def seeded() -> Org:
    org = _org()
    assert seed_demo(org, 1000) == {
        "Account": 200, "Contact": 400, "Opportunity": 250, "Case": 150,
        "Type_Sample__c": 3, "Store__c": 8,
    }  # fmt: skip
    return org


def test_split_of_records():
    assert demo_counts(100) == {"Account": 20, "Contact": 40, "Opportunity": 25, "Case": 15}
    assert demo_counts(7) == {"Account": 1, "Contact": 2, "Opportunity": 1, "Case": 3}
    assert demo_counts(0) == {"Account": 0, "Contact": 0, "Opportunity": 0, "Case": 0}


def test_counts_in_the_database(seeded: Org):
    counts = {name: seeded.count(name) for name in (*DEMO_OBJECTS, "Type_Sample__c", "Store__c")}
    assert counts == {
        "Account": 200, "Contact": 400, "Opportunity": 250, "Case": 150,
        "Type_Sample__c": 3, "Store__c": 8,
    }  # fmt: skip


def test_same_size_gives_identical_rows():
    first, second = _org(), _org()
    seed_demo(first, 300)
    seed_demo(second, 300)
    for name in (*DEMO_OBJECTS, "Type_Sample__c", "Store__c"):
        sql = f'SELECT * FROM "{name}" ORDER BY "Id"'
        assert first.execute_sql(sql) == second.execute_sql(sql), name


def test_every_record_has_a_unique_external_id(seeded: Org):
    for name, prefix in zip(DEMO_OBJECTS, ("ACC", "CON", "OPP", "CAS"), strict=True):
        obj = seeded.catalog.get(name)
        assert obj is not None
        field = obj.field("External_Id__c")
        assert field is not None and field.external_id and field.unique and field.id_lookup
        values = [r[0] for r in seeded.execute_sql(f'SELECT "External_Id__c" FROM "{name}"')]
        assert len(values) == len(set(values))
        assert sorted(values)[0] == f"{prefix}-0000001"


def test_children_point_at_their_parents(seeded: Org):
    orphans = seeded.execute_sql(
        'SELECT COUNT(*) FROM "Contact" c LEFT JOIN "Account" a ON a."Id" = c."AccountId" '
        'WHERE a."Id" IS NULL'
    )
    assert orphans == [(0,)]
    assert seeded.execute_sql(
        'SELECT COUNT(*) FROM "Opportunity" o JOIN "Account" a ON a."Id" = o."AccountId"'
    ) == [(250,)]
    # A case's contact belongs to the case's account.
    assert seeded.execute_sql(
        'SELECT COUNT(*) FROM "Case" k JOIN "Contact" c ON c."Id" = k."ContactId" '
        'WHERE c."AccountId" = k."AccountId"'
    ) == [(150,)]
    (first,) = seeded.execute_sql(
        'SELECT c."Name", c."Email", a."Name", a."External_Id__c" FROM "Contact" c '
        'JOIN "Account" a ON a."Id" = c."AccountId" ORDER BY c."Id" LIMIT 1'
    )
    assert first[2:] == ("Acme Inc. 1", "ACC-0000001")
    assert first[1].endswith("1@example.com") and first[0]
    ids = [r[0] for r in seeded.execute_sql('SELECT "Id" FROM "Case"')]
    assert all(is_valid_id(i) and i.startswith("500") for i in ids)


def test_values_are_realistic_and_include_awkward_text(seeded: Org):
    descriptions = [
        r[0]
        for name in ("Account", "Contact", "Case")
        for r in seeded.execute_sql(
            f'SELECT "Description" FROM "{name}" WHERE "Description" IS NOT NULL'
        )
    ]
    assert any("\n" in d for d in descriptions)
    assert any("\r\n" in d for d in descriptions)
    assert any('"ship it"' in d for d in descriptions)
    assert any("🎉" in d for d in descriptions)
    assert any("καλημέρα" in d for d in descriptions)
    greek = seeded.execute_sql('SELECT "Name" FROM "Contact" WHERE "LastName" = ?',
                               ("Παπαδόπουλος",))  # fmt: skip
    assert greek and greek[0][0] == "Δημήτρης Παπαδόπουλος"
    stages = {r[0]: (r[1], r[2]) for r in seeded.execute_sql(
        'SELECT "StageName", "IsWon", "IsClosed" FROM "Opportunity"'
    )}  # fmt: skip
    assert stages["Closed Won"] == (1, 1) and stages["Prospecting"] == (0, 0)
    amounts = seeded.execute_sql('SELECT MIN("Amount"), MAX("Amount") FROM "Opportunity"')
    assert 1000 <= amounts[0][0] < amounts[0][1] < 2_000_000
    numbers = [r[0] for r in seeded.execute_sql('SELECT "CaseNumber" FROM "Case" ORDER BY "Id"')]
    assert numbers[:2] == ["00000001", "00000002"]


def test_timestamps_are_spread_before_now(seeded: Org):
    stamps = [r[0] for r in seeded.execute_sql(
        'SELECT "SystemModstamp" FROM "Account" ORDER BY "Id"'
    )]  # fmt: skip
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # 1000 records one second apart, the last at 11:59:59.
    assert stamps[0] == "2024-06-01T11:43:20.000Z"
    cases = seeded.execute_sql('SELECT MAX("SystemModstamp"), MAX("CreatedDate") FROM "Case"')
    assert cases == [("2024-06-01T11:59:59.000Z", "2024-06-01T11:59:59.000Z")]


def test_type_samples_and_stores_went_through_validation(seeded: Org):
    rows = seeded.execute_sql(
        'SELECT "Int__c", "Long__c", "Currency__c", "DateTime__c", "Time__c", "Checkbox__c", '
        '"Blob__c", "Multi_Picklist__c", "Account__c" FROM "Type_Sample__c" ORDER BY "Id"'
    )
    assert rows[0][:8] == (
        2147483647, 9007199254740993, 9999999999999.99, "2024-02-29T21:59:59.999Z",
        "13:45:30.250Z", 1, b"\x00\x01binary\xff", "Red;Blue",
    )  # fmt: skip
    assert rows[0][8] is not None and rows[0][8].startswith("001")
    assert rows[1][:6] == (-2147483648, None, 0, "1970-01-01T00:00:00.000Z", "00:00:00.000Z", 0)
    stores = seeded.execute_sql(
        'SELECT "Name", "Location__Latitude__s", "Store_Code__c" FROM "Store__c" ORDER BY "Id"'
    )
    assert stores[0] == ("San Francisco Store", 37.7897, "ST-001")


def test_seeding_again_continues_numbering():
    org = _org()
    seed_demo(org, 10)
    again = seed_demo(org, 10)
    assert again["Type_Sample__c"] == 0 and again["Store__c"] == 0
    values = [r[0] for r in org.execute_sql('SELECT "External_Id__c" FROM "Account" ORDER BY 1')]
    assert values == ["ACC-0000001", "ACC-0000002", "ACC-0000003", "ACC-0000004"]


def test_seed_empty_prepares_the_schema_only():
    org = _org()
    seed_empty(org)
    for name in DEMO_OBJECTS:
        assert org.catalog.get(name).field("External_Id__c") is not None  # type: ignore[union-attr]
        assert org.count(name) == 0
    (result,) = org.write("Account", "insert", [{"Name": "A", "External_Id__c": "X-1"}])
    assert result.success
    assert seed_demo(org, 0)["Account"] == 0
