"""Unmodified third-party Bulk 1.0 clients against the emulator.

- heroku's ``salesforce_bulk.SalesforceBulk`` takes ``host`` as given when it starts with
  ``http``, so ``host=server.url`` reaches the emulator over plain HTTP. It compares response
  Content-Types with ``==`` and parses XML by element names, so it checks our negotiation.
- simple-salesforce's ``SFBulkHandler`` is built with the emulator's Bulk URL (its ``Salesforce``
  class always prefixes ``https://``, the handler itself takes any URL). It talks JSON only.
"""

from __future__ import annotations

import time

import pytest
from salesforce_bulk import CsvDictsAdapter, SalesforceBulk
from salesforce_bulk.salesforce_bulk import BulkBatchFailed
from simple_salesforce import bulk as simple_bulk
from simple_salesforce.bulk import SFBulkHandler

from tests.conftest import emulator_token


@pytest.fixture
def bulk(emulator) -> SalesforceBulk:
    return SalesforceBulk(sessionId=emulator_token(emulator), host=emulator.url,
                          API_version="62.0")


@pytest.fixture
def handler(emulator, monkeypatch) -> SFBulkHandler:
    # simple-salesforce polls every 5 seconds; shorten its waits so the suite stays fast.
    real_sleep = time.sleep
    monkeypatch.setattr(simple_bulk, "sleep", lambda seconds: real_sleep(min(seconds, 0.05)))
    return SFBulkHandler(emulator_token(emulator), f"{emulator.url}/services/async/62.0/")


def _ids(emulator, sql: str) -> list:
    return [row[0] for row in emulator.state.org.execute_sql(sql)]


def test_salesforce_bulk_insert_and_results(emulator, bulk: SalesforceBulk) -> None:
    job = bulk.create_insert_job("Account", contentType="CSV")
    rows = iter([{"Name": "Alpha", "Description": 'say "hi", twice'}, {"Name": "Beta",
                                                                       "Description": "#N/A"}])
    batch = bulk.post_batch(job, CsvDictsAdapter(rows))
    bulk.wait_for_batch(job, batch, sleep_interval=0.05)
    bulk.close_job(job)
    results = bulk.get_batch_results(batch, job)
    ids = _ids(emulator, 'SELECT "Id" FROM "Account" ORDER BY "Id"')
    assert [tuple(r) for r in results] == [(ids[0], "true", "true", ""),
                                           (ids[1], "true", "true", "")]
    assert emulator.state.org.execute_sql('SELECT "Name", "Description" FROM "Account"') == [
        ("Alpha", 'say "hi", twice'), ("Beta", None)
    ]
    assert bulk.job_state(job) == "Closed"
    status = bulk.job_status(job)
    assert (status["numberRecordsProcessed"], status["numberBatchesCompleted"]) == ("2", "1")


def test_salesforce_bulk_csv_and_json_queries(emulator, bulk: SalesforceBulk) -> None:
    results = emulator.state.org.write(
        "Account", "insert", [{"Name": f"Q{i}"} for i in range(3)]
    )
    ids = [r.id for r in results]
    job = bulk.create_query_job("Account", contentType="CSV")
    batch = bulk.query(job, "SELECT Id, Name FROM Account ORDER BY Name")
    bulk.wait_for_batch(job, batch, sleep_interval=0.05)
    bulk.close_job(job)
    text = b"".join(page.read() for page in bulk.get_all_results_for_query_batch(batch, job))
    assert text.decode() == '"Id","Name"\n' + "".join(
        f'"{ids[i]}","Q{i}"\n' for i in range(3)
    )
    assert bulk.get_query_batch_request(batch, job) == "SELECT Id, Name FROM Account ORDER BY Name"

    json_job = bulk.create_queryall_job("Account", contentType="JSON")
    json_batch = bulk.query(json_job, "SELECT Name FROM Account ORDER BY Name")
    bulk.wait_for_batch(json_job, json_batch, sleep_interval=0.05)
    (result_id,) = bulk.get_query_batch_result_ids(json_batch, json_job)
    import json

    page = bulk.get_query_batch_results(json_batch, result_id, json_job)
    assert [r["Name"] for r in json.loads(page.read())] == ["Q0", "Q1", "Q2"]


def test_salesforce_bulk_pk_chunking_and_failures(emulator, bulk: SalesforceBulk) -> None:
    emulator.state.org.write("Account", "insert", [{"Name": f"P{i}"} for i in range(5)])
    job = bulk.create_query_job("Account", contentType="CSV", pk_chunking=2)
    bulk.query(job, "SELECT Id FROM Account")
    deadline = time.monotonic() + 20
    while True:
        batches = bulk.get_batch_list(job)
        if len(batches) == 4 and all(b["state"] in ("Completed", "NotProcessed") for b in batches):
            break
        assert time.monotonic() < deadline, batches
        time.sleep(0.05)
    assert [b["state"] for b in batches] == ["NotProcessed", "Completed", "Completed", "Completed"]
    assert sum(int(b["numberRecordsProcessed"]) for b in batches) == 5
    bulk.close_job(job)

    failing = bulk.create_query_job("Account", contentType="CSV")
    bad = bulk.query(failing, "SELECT Nope FROM Account")
    with pytest.raises(BulkBatchFailed) as caught:
        bulk.wait_for_batch(failing, bad, sleep_interval=0.05)
    assert caught.value.state_message.startswith(
        "InvalidBatch : Failed to process query: INVALID_FIELD"
    )
    bulk.abort_job(failing)
    assert bulk.job_state(failing) == "Aborted"


def test_simple_salesforce_dml_round_trip(emulator, handler: SFBulkHandler) -> None:
    inserted = handler.Contact.insert(
        [{"LastName": "One", "Email": "one@x.org"}, {"LastName": "Two", "Email": "two@x.org"}],
        batch_size=1,
    )
    ids = _ids(emulator, 'SELECT "Id" FROM "Contact" ORDER BY "Id"')
    assert sorted(inserted, key=lambda r: r["id"]) == [
        {"success": True, "created": True, "id": ids[0], "errors": []},
        {"success": True, "created": True, "id": ids[1], "errors": []},
    ]
    updated = handler.Contact.update([{"Id": ids[0], "LastName": "Uno"}])
    assert updated == [{"success": True, "created": False, "id": ids[0], "errors": []}]
    upserted = handler.Contact.upsert(
        [{"Id": ids[1], "LastName": "Dos"}, {"LastName": "Tres"}], "Id", use_serial=True
    )
    new_id = _ids(emulator, "SELECT \"Id\" FROM \"Contact\" WHERE \"LastName\" = 'Tres'")[0]
    assert [(r["id"], r["created"]) for r in upserted] == [(ids[1], False), (new_id, True)]
    records = handler.Contact.query("SELECT Id, LastName FROM Contact ORDER BY LastName", wait=0)
    assert [(r["Id"], r["LastName"]) for r in records] == [
        (ids[1], "Dos"), (new_id, "Tres"), (ids[0], "Uno")
    ]
    deleted = handler.Contact.delete([{"Id": ids[0]}])
    assert deleted == [{"success": True, "created": False, "id": ids[0], "errors": []}]
    live = handler.Contact.query("SELECT Id FROM Contact", wait=0)
    everything = handler.Contact.query_all("SELECT Id, IsDeleted FROM Contact", wait=0)
    assert len(live) == 2
    assert sorted((r["Id"], r["IsDeleted"]) for r in everything) == sorted(
        [(ids[0], True), (ids[1], False), (new_id, False)]
    )


def test_simple_salesforce_reports_record_errors(emulator, handler: SFBulkHandler) -> None:
    results = handler.Contact.insert([{"Email": "nobody@x.org"}])
    assert results[0]["success"] is False
    assert results[0]["id"] is None
    assert results[0]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"


def test_simple_salesforce_upsert_by_external_id(emulator, handler: SFBulkHandler) -> None:
    org = emulator.state.org
    # The empty org carries the demo schema's Account.External_Id__c, an external id field.
    assert org.catalog.get("Account").field("External_Id__c").external_id
    (existing,) = org.write("Account", "insert", [{"Name": "Old", "External_Id__c": "EXT-1",
                                                   "Site": "kept"}])
    upserted = handler.Account.upsert(
        [{"External_Id__c": "EXT-1", "Name": "Renamed"},
         {"External_Id__c": "EXT-2", "Name": "Fresh", "Site": "new"}],
        "External_Id__c",
    )
    fresh_id = _ids(emulator, "SELECT \"Id\" FROM \"Account\" WHERE \"External_Id__c\" = 'EXT-2'")
    assert upserted == [
        {"success": True, "created": False, "id": existing.id, "errors": []},
        {"success": True, "created": True, "id": fresh_id[0], "errors": []},
    ]
    (job,) = [j for j in emulator.state.jobs.jobs() if getattr(j, "operation", "") == "upsert"]
    assert (job.external_id_field, job.content_type) == ("External_Id__c", "JSON")
    again = handler.Account.upsert([{"External_Id__c": "EXT-2", "Name": "Fresher"}],
                                   "External_Id__c")
    assert again == [{"success": True, "created": False, "id": fresh_id[0], "errors": []}]
    records = handler.Account.query(
        "SELECT Id, External_Id__c, Name, Site FROM Account ORDER BY External_Id__c", wait=0)
    assert [(r["Id"], r["External_Id__c"], r["Name"], r["Site"]) for r in records] == [
        (existing.id, "EXT-1", "Renamed", "kept"), (fresh_id[0], "EXT-2", "Fresher", "new"),
    ]
    assert org.count("Account") == 2
