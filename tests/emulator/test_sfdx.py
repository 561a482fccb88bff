"""Sample orgs load completely: every record of the plan, every reference resolved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfbulk.emulator.sfdx import SfdxImportError, find_plans, import_sfdx
from sfbulk.emulator.store import Org


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())["records"]


def _by_ref(path: Path) -> dict[str, dict]:
    return {r["attributes"]["referenceId"]: r for r in _records(path)}


@pytest.fixture(scope="module")
def coral_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "sample-orgs" / "coral-cloud"


@pytest.fixture(scope="module")
def coral(coral_dir: Path) -> tuple[Org, object]:
    org = Org()
    return org, import_sfdx(org, coral_dir)


def test_coral_cloud_default_plan_loads_every_record(coral_dir: Path, coral):
    org, summary = coral
    data = coral_dir / "data"
    assert summary.plan == data / "data-plan.json"
    expected = {
        "Experience__c": len(_records(data / "data-Experience__c.json")),
        "Contact": len(_records(data / "data-Contact.json")),
        "Guest_Review__c": len(_records(data / "data-Guest_Review__c.json")),
        "Case": len(_records(data / "data-Case.json")),
    }
    assert expected == {"Experience__c": 35, "Contact": 156, "Guest_Review__c": 10, "Case": 2}
    assert summary.records == expected
    assert {name: org.count(name) for name in expected} == expected
    # saveRefs entries: every Experience and Contact referenceId has an id.
    assert len(summary.refs) == 35 + 156
    assert summary.objects == [
        "Booking__c", "Contact", "Credit__c", "Experience__c", "Guest_Review__c", "Session__c",
    ]  # fmt: skip


def test_coral_cloud_values_and_references(coral_dir: Path, coral):
    org, summary = coral
    data = coral_dir / "data"
    contact = _records(data / "data-Contact.json")[0]
    row = org.retrieve("Contact", summary.refs["ContactRef1"])
    assert row is not None
    assert (row["FirstName"], row["LastName"], row["Name"]) == (
        "Frayda",
        "Dowsing",
        "Frayda Dowsing",
    )
    assert (row["Email"], row["Birthdate"], row["External_Id__c"]) == (
        contact["Email"], "1994-11-19", "10008756",
    )  # fmt: skip
    assert row["Interest3__c"] == "Family & Kids' Activities"
    experience = org.retrieve("Experience__c", summary.refs["Experience__cRef1"])
    assert experience is not None
    assert (experience["Name"], experience["Default_Start_Time__c"], experience["Capacity__c"]) == (
        "Historical Landmarks Tour", "09:00:00.000Z", 25,
    )  # fmt: skip
    reviews = _records(data / "data-Guest_Review__c.json")
    stored = org.execute_sql(
        'SELECT "Experience__c", "Contact__c", "Rating__c", "Name" FROM "Guest_Review__c" '
        'ORDER BY "Id"'
    )
    for source, (experience_id, contact_id, rating, name) in zip(reviews, stored, strict=True):
        assert experience_id == summary.refs[source["Experience__c"][1:]]
        assert contact_id == summary.refs[source["Contact__c"][1:]]
        assert rating == source["Rating__c"]
        assert name.startswith("R-000000")
    first_review = org.retrieve("Experience__c", stored[0][0])
    experiences = _by_ref(data / "data-Experience__c.json")
    assert first_review["Name"] == experiences[reviews[0]["Experience__c"][1:]]["Name"]  # type: ignore[index]
    cases = org.execute_sql('SELECT "ContactId", "Subject", "Reason" FROM "Case" ORDER BY "Id"')
    source_cases = _records(data / "data-Case.json")
    assert [c[0] for c in cases] == [summary.refs["ContactRef155"]] * 2
    assert cases[0][1:] == (source_cases[0]["Subject"], "New problem")


def test_coral_cloud_large_plan(coral_dir: Path):
    org = Org()
    summary = import_sfdx(org, coral_dir, plan="data-plan-large.json")
    assert summary.plan is not None and summary.plan.name == "data-plan-large.json"
    data = coral_dir / "data"
    assert (
        summary.records
        == {
            "Experience__c": len(_records(data / "data-Experience__c-large.json")),
            "Contact": len(_records(data / "data-Contact-large.json")),
            "Guest_Review__c": 10,
            "Case": 2,
        }
        == {"Experience__c": 54, "Contact": 992, "Guest_Review__c": 10, "Case": 2}
    )
    assert org.count("Contact") == 992
    last = _records(data / "data-Contact-large.json")[-1]
    row = org.retrieve("Contact", summary.refs[last["attributes"]["referenceId"]])
    assert row is not None and row["Email"] == last["Email"]
    assert import_sfdx(Org(), coral_dir, plan="data-plan-large").plan == summary.plan


def test_ebikes(fixtures_dir: Path):
    project = fixtures_dir / "sample-orgs" / "ebikes-lwc"
    org = Org()
    summary = import_sfdx(org, project)
    data = project / "data"
    assert summary.plan == data / "sample-data-plan.json"
    assert summary.records == {"Account": 3, "Product_Family__c": 4, "Product__c": 16}
    assert {n: org.count(n) for n in summary.records} == summary.records
    families = _by_ref(data / "Product_Family__cs.json")
    products = _records(data / "Product__cs.json")
    stored = org.execute_sql(
        'SELECT p."Name", p."MSRP__c", f."Name" FROM "Product__c" p '
        'JOIN "Product_Family__c" f ON f."Id" = p."Product_Family__c" ORDER BY p."Id"'
    )
    assert len(stored) == 16
    for source, (name, msrp, family) in zip(products, stored, strict=True):
        assert (name, msrp) == (source["Name"], source["MSRP__c"])
        assert family == families[source["Product_Family__c"][1:]]["Name"]
    accounts = org.execute_sql('SELECT "Name", "BillingCity" FROM "Account" ORDER BY "Id"')
    source_accounts = _records(data / "Accounts.json")
    assert accounts == [(a["Name"], a["BillingCity"]) for a in source_accounts]


def test_metadata_only(coral_dir: Path):
    org = Org()
    summary = import_sfdx(org, coral_dir, load_data=False)
    assert summary.plan is None and summary.records == {}
    assert org.catalog.get("Experience__c") is not None and org.count("Experience__c") == 0


def test_find_plans_and_unknown_plan(coral_dir: Path):
    assert [p.name for p in find_plans(coral_dir)] == ["data-plan-large.json", "data-plan.json"]
    with pytest.raises(SfdxImportError, match=r"no data plan 'nope.json' \(plans found: "
                       r"data/data-plan-large.json, data/data-plan.json\)"):  # fmt: skip
        import_sfdx(Org(), coral_dir, plan="nope.json")


def _project(tmp_path: Path, records: list[dict], plan_entry: dict | None = None) -> Path:
    (tmp_path / "sfdx-project.json").write_text(
        json.dumps({"packageDirectories": [{"path": "force-app", "default": True}]})
    )
    (tmp_path / "force-app").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "Accounts.json").write_text(json.dumps({"records": records}))
    entry = {"sobject": "Account", "saveRefs": True, "resolveRefs": True,
             "files": ["Accounts.json"]}  # fmt: skip
    (data / "data-plan.json").write_text(json.dumps([plan_entry or entry]))
    return tmp_path


def test_nested_children_are_linked(tmp_path: Path):
    project = _project(
        tmp_path,
        [
            {
                "attributes": {"type": "Account", "referenceId": "Acc1"},
                "Name": "Parent Co",
                "Contacts": {
                    "records": [
                        {"attributes": {"type": "Contact", "referenceId": "C1"}, "LastName": "A"},
                        {"attributes": {"type": "Contact", "referenceId": "C2"}, "LastName": "B"},
                    ]
                },
            }
        ],
    )
    org = Org()
    summary = import_sfdx(org, project)
    assert summary.records == {"Account": 1, "Contact": 2}
    rows = org.execute_sql('SELECT "LastName", "AccountId" FROM "Contact" ORDER BY "Id"')
    assert rows == [("A", summary.refs["Acc1"]), ("B", summary.refs["Acc1"])]
    assert summary.refs["C2"].startswith("003")


def test_a_refused_record_names_file_reference_and_fields(tmp_path: Path):
    project = _project(
        tmp_path,
        [
            {"attributes": {"type": "Account", "referenceId": "Good"}, "Name": "Fine"},
            {"attributes": {"type": "Account", "referenceId": "Bad"}, "Website": "x"},
        ],
    )
    with pytest.raises(SfdxImportError) as info:
        import_sfdx(Org(), project)
    assert str(info.value) == (
        f"{project / 'data' / 'Accounts.json'}: record Bad (Account) failed: "
        "REQUIRED_FIELD_MISSING: Required fields are missing: [Name] (fields: Name)"
    )


def test_an_unresolved_reference_is_an_error(tmp_path: Path):
    project = _project(
        tmp_path,
        [{"attributes": {"type": "Account", "referenceId": "A1"}, "Name": "X",
          "ParentId": "@Missing"}],
    )  # fmt: skip
    with pytest.raises(SfdxImportError, match=r"record A1 field ParentId references @Missing"):
        import_sfdx(Org(), project)


def test_missing_data_file_and_unknown_object(tmp_path: Path):
    entry = {"sobject": "Account", "files": ["Nope.json"]}
    project = _project(tmp_path, [], entry)
    with pytest.raises(SfdxImportError, match=r"Nope\.json: data file named by the plan"):
        import_sfdx(Org(), project)
    (project / "data" / "data-plan.json").write_text(
        json.dumps([{"sobject": "Ghost__c", "files": ["Accounts.json"]}])
    )
    with pytest.raises(SfdxImportError, match=r"object Ghost__c is not in the org's schema"):
        import_sfdx(Org(), project)


# ---------------------------------------------------------------------------------------------
# Every field of every tree record, for every plan of every sample project.


def _sample_plans() -> list[tuple[str, str]]:
    from tests.conftest import FIXTURES

    root = FIXTURES / "sample-orgs"
    if not root.is_dir():
        return []
    return [
        (project.name, plan.name)
        for project in sorted(p for p in root.iterdir() if p.is_dir())
        for plan in find_plans(project)
    ]


def _in_insert_order(
    plan_path: Path,
) -> dict[str, list[tuple[dict, tuple[str, str] | None]]]:
    """Per object, the tree records in the order ``import_sfdx`` inserts them: plan entries in
    order, each file's top-level records, then each record's nested children. Each comes with
    (lookup field, parent referenceId) for nested children, else None."""
    out: dict[str, list[tuple[dict, tuple[str, str] | None]]] = {}

    def level(sobject: str, records: list[dict], parent: tuple[str, str] | None) -> None:
        children = []
        for index, record in enumerate(records):
            out.setdefault(sobject, []).append((record, parent))
            for key, value in record.items():
                if key != "attributes" and isinstance(value, dict) and "records" in value:
                    ref = record["attributes"].get("referenceId") or f"{sobject}#{index + 1}"
                    children.append((key, ref, value["records"]))
        for relationship, ref, nested in children:
            child = nested[0]["attributes"]["type"] if nested else None
            if child is not None:
                level(child, nested, (relationship, ref))

    for entry in json.loads(plan_path.read_text(encoding="utf-8")):
        for name in entry["files"]:
            level(entry["sobject"], _records(plan_path.parent / name), None)
    return out


def _typed_equal(field_type: str, stored: object, given: object) -> bool:
    """Compare a stored column with the tree file's JSON value, by the field's describe type."""
    import datetime as dt
    from decimal import Decimal

    if field_type == "boolean":
        return stored in (0, 1) and bool(stored) is bool(given)
    if field_type in ("double", "currency", "percent", "int", "long"):
        return (
            isinstance(given, int | float)
            and not isinstance(given, bool)
            and stored is not None
            and Decimal(str(stored)) == Decimal(str(given))
        )
    if field_type == "datetime":

        def instant(text: object) -> dt.datetime:
            return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))

        return instant(stored) == instant(given)
    if field_type == "date":
        return isinstance(stored, str) and dt.date.fromisoformat(stored) == dt.date.fromisoformat(
            str(given)[:10]
        )
    if field_type == "time":
        return isinstance(stored, str) and stored == given
    if field_type in ("string", "picklist", "multipicklist", "email", "phone", "url",
                      "textarea", "reference", "id", "combobox", "encryptedstring"):  # fmt: skip
        return isinstance(stored, str) and stored == given
    raise AssertionError(f"no typed comparison for describe type {field_type!r}")


@pytest.mark.parametrize(("project", "plan"), _sample_plans())
def test_every_field_of_every_plan_record_is_stored(fixtures_dir: Path, project: str, plan: str):
    project_dir = fixtures_dir / "sample-orgs" / project
    plan_path = next(p for p in find_plans(project_dir) if p.name == plan)
    org = Org()
    summary = import_sfdx(org, project_dir, plan=plan_path)
    assert summary.plan == plan_path
    expected = _in_insert_order(plan_path)
    assert summary.records == {name: len(rows) for name, rows in expected.items()}

    # The id of every tree record, from the stored rows in insertion order (not from the
    # importer's own saveRefs map, which is checked against it).
    ids: dict[str, str] = {}
    stored_ids: dict[str, list[str]] = {}
    for name, rows in expected.items():
        found = [r[0] for r in org.execute_sql(f'SELECT "Id" FROM "{name}" ORDER BY rowid')]
        assert len(found) == len(rows) == org.count(name), name
        assert len(set(found)) == len(found)
        stored_ids[name] = found
        for (record, _), record_id in zip(rows, found, strict=True):
            ref = record["attributes"].get("referenceId")
            if ref:
                assert ref not in ids, f"duplicate referenceId {ref}"
                ids[ref] = record_id
    for ref, record_id in summary.refs.items():
        assert ids[ref] == record_id, ref

    checked = 0
    for name, rows in expected.items():
        obj = org.catalog.get(name)
        assert obj is not None
        for (record, parent), record_id in zip(rows, stored_ids[name], strict=True):
            fields = [
                k for k, v in record.items()
                if k != "attributes" and not (isinstance(v, dict) and "records" in v)
            ]  # fmt: skip
            columns = ", ".join(f'"{obj.field(f).name}"' for f in fields) or '"Id"'
            (stored,) = org.execute_sql(
                f'SELECT {columns} FROM "{name}" WHERE "Id" = ?', (record_id,)
            )
            where = (project, plan, name, record["attributes"].get("referenceId"))
            for key, value in zip(fields, stored, strict=True):
                given = record[key]
                describe_type = obj.field(key).type
                if isinstance(given, str) and given.startswith("@"):
                    # A reference: the id of the record that had that referenceId.
                    assert describe_type == "reference", (*where, key)
                    assert value == ids[given[1:]], (*where, key, value, given)
                    assert value[:3] == ids[given[1:]][:3]
                else:
                    assert _typed_equal(describe_type, value, given), (
                        *where,
                        key,
                        describe_type,
                        value,
                        given,
                    )
                checked += 1
            if parent is not None:
                lookup_rel, parent_ref = parent
                (row,) = org.execute_sql(f'SELECT * FROM "{name}" WHERE "Id" = ?', (record_id,))
                assert ids[parent_ref] in row, (*where, lookup_rel)
    assert checked == sum(
        1
        for rows in expected.values()
        for record, _ in rows
        for k, v in record.items()
        if k != "attributes" and not (isinstance(v, dict) and "records" in v)
    )
    assert checked > 0
