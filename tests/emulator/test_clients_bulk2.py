"""simple-salesforce's Bulk 2.0 handler, unmodified, against the emulator.

``SFBulk2Handler`` takes the session id and the Bulk 2.0 base URL directly, so it can be pointed
at ``http://127.0.0.1:PORT/services/data/vXX.X/jobs/`` without any change to the library (its
``Salesforce`` class always builds ``https://`` URLs).
"""

from __future__ import annotations

import csv
import io

import pytest
from simple_salesforce.bulk2 import SFBulk2Handler

from sfbulk.emulator.seeds import ensure_demo_fields
from tests.conftest import emulator_token


@pytest.fixture
def bulk2(emulator) -> SFBulk2Handler:
    ensure_demo_fields(emulator.state.org)  # Account.External_Id__c for the upsert
    return SFBulk2Handler(
        emulator_token(emulator), bulk2_url=f"{emulator.url}/services/data/v60.0/jobs/"
    )


#: Seconds simple-salesforce sleeps between polls (its default of 5 would dominate the run).
WAIT = 0.02


def _rows(server, soql: str) -> list[tuple]:
    return sorted(server.state.org.query(soql))


def _parse(pages) -> list[dict[str, str]]:
    """simple-salesforce yields one CSV text per page, each with its header row."""
    records: list[dict[str, str]] = []
    for page in pages:
        records.extend(csv.DictReader(io.StringIO(page)))
    return records


def test_insert_update_upsert_delete(bulk2: SFBulk2Handler, emulator) -> None:
    inserted = bulk2.Account.insert(
        records=[
            {"Name": "Alpha", "External_Id__c": "A-1", "NumberOfEmployees": "10"},
            {"Name": "Beta", "External_Id__c": "B-2", "NumberOfEmployees": "20"},
            {"Name": "Gamma", "External_Id__c": "C-3", "NumberOfEmployees": "30"},
        ],
        wait=WAIT,
    )
    assert len(inserted) == 1
    assert inserted[0]["numberRecordsProcessed"] == 3
    assert inserted[0]["numberRecordsFailed"] == 0
    assert inserted[0]["numberRecordsTotal"] == 3
    job_id = inserted[0]["job_id"]
    outcome = bulk2.Account.get_all_ingest_records(job_id)
    assert len(outcome["successfulRecords"]) == 3
    assert {r["sf__Created"] for r in outcome["successfulRecords"]} == {"true"}
    assert outcome["failedRecords"] == [] and outcome["unprocessedRecords"] == []
    ids = {r["Name"]: r["sf__Id"] for r in outcome["successfulRecords"]}
    assert _rows(emulator, "SELECT Name, Id FROM Account") == sorted(ids.items())

    updated = bulk2.Account.update(
        records=[{"Id": ids["Alpha"], "NumberOfEmployees": "11"}], wait=WAIT
    )
    assert (updated[0]["numberRecordsProcessed"], updated[0]["numberRecordsFailed"]) == (1, 0)

    upserted = bulk2.Account.upsert(
        records=[
            {"External_Id__c": "B-2", "Name": "Beta Two"},
            {"External_Id__c": "D-4", "Name": "Delta"},
        ],
        external_id_field="External_Id__c",
        wait=WAIT,
    )
    assert (upserted[0]["numberRecordsProcessed"], upserted[0]["numberRecordsFailed"]) == (2, 0)
    created = {
        r["Name"]: r["sf__Created"]
        for r in bulk2.Account.get_all_ingest_records(upserted[0]["job_id"])["successfulRecords"]
    }
    assert created == {"Beta Two": "false", "Delta": "true"}

    deleted = bulk2.Account.delete(records=[{"Id": ids["Gamma"]}], wait=WAIT)
    assert (deleted[0]["numberRecordsProcessed"], deleted[0]["numberRecordsFailed"]) == (1, 0)
    assert _rows(emulator, "SELECT Name, NumberOfEmployees FROM Account") == [
        ("Alpha", 11),
        ("Beta Two", 20),
        ("Delta", None),
    ]
    hard = bulk2.Account.hard_delete(records=[{"Id": ids["Alpha"]}], wait=WAIT)
    assert hard[0]["numberRecordsFailed"] == 0
    assert emulator.state.org.count("Account", include_deleted=True) == 3


def test_failed_records_are_reported(bulk2: SFBulk2Handler) -> None:
    result = bulk2.Account.insert(
        records=[{"Name": "Ok", "NumberOfEmployees": "1"}, {"Name": "", "NumberOfEmployees": "2"}],
        wait=WAIT,
    )
    assert (result[0]["numberRecordsProcessed"], result[0]["numberRecordsFailed"]) == (2, 1)
    failed = bulk2.Account.get_all_ingest_records(result[0]["job_id"])["failedRecords"]
    assert len(failed) == 1
    assert failed[0]["sf__Id"] == ""
    assert failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert failed[0]["NumberOfEmployees"] == "2"


def test_query_pages_through_locators(bulk2: SFBulk2Handler, emulator) -> None:
    results = emulator.state.org.write(
        "Account", "insert", [{"Name": f"Acct {i:02d}"} for i in range(7)]
    )
    ids = [r.id for r in results]
    pages = list(
        bulk2.Account.query(
            "SELECT Id, Name FROM Account ORDER BY Name", max_records=3, wait=WAIT
        )
    )
    assert len(pages) == 3
    records = _parse(pages)
    assert records == [{"Id": ids[i], "Name": f"Acct {i:02d}"} for i in range(7)]


def test_query_all_includes_deleted(bulk2: SFBulk2Handler, emulator) -> None:
    results = emulator.state.org.write("Account", "insert", [{"Name": "Kept"}, {"Name": "Gone"}])
    assert emulator.state.org.write("Account", "delete", [{"Id": results[1].id}])[0].success
    live = _parse(bulk2.Account.query("SELECT Name FROM Account", wait=WAIT))
    assert live == [{"Name": "Kept"}]
    every = _parse(
        bulk2.Account.query_all("SELECT Name, IsDeleted FROM Account ORDER BY Name", wait=WAIT)
    )
    assert every == [
        {"Name": "Gone", "IsDeleted": "true"},
        {"Name": "Kept", "IsDeleted": "false"},
    ]


def test_download_streams_pages_to_files(bulk2: SFBulk2Handler, emulator, tmp_path) -> None:
    emulator.state.org.write("Account", "insert", [{"Name": f"N{i}"} for i in range(5)])
    files = bulk2.Account.download(
        "SELECT Name FROM Account", path=str(tmp_path), max_records=2, wait=WAIT
    )
    assert [f["number_of_records"] for f in files] == [2, 2, 1]
    names = []
    for entry in files:
        with open(entry["file"], encoding="utf-8") as handle:
            names += [row["Name"] for row in csv.DictReader(handle)]
    assert sorted(names) == [f"N{i}" for i in range(5)]
