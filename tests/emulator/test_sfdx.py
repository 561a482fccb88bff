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
