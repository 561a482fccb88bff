"""Objects the Bulk API refuses are loaded through sObject Collections: outcomes, failed records
and STATE as with Bulk."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sfbulk.errors import SalesforceError
from tests.target.support import config, jobs, record, rows, run, schema, state

STORE = {"Name": {"type": ["string", "null"]}, "Store_Code__c": {"type": "string"},
         "Opened__c": {"type": ["string", "null"], "format": "date"},
         "Location__Latitude__s": {"type": ["number", "null"]}}


def _switch_bulk_off(server, name: str = "Store__c") -> None:
    """As an object whose metadata says enableBulkApi=false: every Bulk job is refused."""
    obj = server.state.org.catalog.get(name)
    obj.bulk_api = False
    obj.bulk_queryable = False


def _stores(count: int) -> list[dict]:
    return [record("Store__c", {"Name": f"Store {n}", "Store_Code__c": f"S{n:03d}",
                                "Opened__c": "2024-05-01", "Location__Latitude__s": 59.9})
            for n in range(count)]


@pytest.mark.parametrize("api", ["2.0", "1.0"])
def test_refused_object_loads_through_collections(emulator, tmp_path, caplog, api: str) -> None:
    _switch_bulk_off(emulator)
    path = tmp_path / "failed.jsonl"
    messages = _stores(450)
    messages[7]["record"]["Name"] = "x" * 300  # too long: Salesforce fails this record alone
    caplog.set_level(logging.INFO)
    out = io.StringIO()
    run(config(emulator, bulk_api=api, action="upsert", external_id_field="Store_Code__c",
               failed_records_path=str(path), max_failed_records=5),
        [schema("Store__c", STORE), *messages, state({"done": 450})], out=out)
    assert out.getvalue() == '{"done": 450}\n'
    assert jobs(emulator) == []
    assert emulator.state.org.count("Store__c") == 449
    assert emulator.state.org.execute_sql(
        'SELECT "Name", "Opened__c", "Location__Latitude__s" FROM "Store__c" '
        'WHERE "Store_Code__c" = ?', ["S012"]) == [("Store 12", "2024-05-01", 59.9)]
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(f["record"]["Store_Code__c"], f["error_code"]) for f in failed] == [
        ("S007", "STRING_TOO_LONG")]
    code = "INVALIDENTITY" if api == "2.0" else "InvalidEntity"
    assert caplog.text.count(f"Store__c: the Bulk API refuses this object ({code}") == 1
    assert "REST (3 calls)" in caplog.text
    # A second load upserts the same keys: updated, not created again.
    run(config(emulator, bulk_api=api, action="upsert", external_id_field="Store_Code__c"),
        [schema("Store__c", STORE), *_stores(3), state({"done": 3})])
    assert emulator.state.org.count("Store__c") == 449


def test_relationship_columns_reach_their_parents_through_rest(emulator) -> None:
    _switch_bulk_off(emulator, "Contact")
    accounts = [record("Account", {"Name": "Acme", "External_Id__c": "A1"})]
    contacts = [record("Contact", {"LastName": "Lovelace", "External_Id__c": "C1",
                                   "Account.External_Id__c": "A1"})]
    run(config(emulator, action="upsert", external_id_field="External_Id__c"),
        [schema("Account", {"Name": {"type": "string"}, "External_Id__c": {"type": "string"}}),
         schema("Contact", {"LastName": {"type": "string"}, "External_Id__c": {"type": "string"},
                            "Account.External_Id__c": {"type": ["string", "null"]}}),
         *accounts, *contacts, state({"done": 2})])
    account_id = rows(emulator, "SELECT Id FROM Account")[0][0]
    assert emulator.state.org.execute_sql('SELECT "LastName", "AccountId" FROM "Contact"') == [
        ("Lovelace", account_id)]
    assert [job.object for job in jobs(emulator)] == ["Account"]


def test_fallback_off_fails_the_load(emulator) -> None:
    _switch_bulk_off(emulator)
    out = io.StringIO()
    with pytest.raises(SalesforceError, match="INVALIDENTITY: Store__c is not supported"):
        run(config(emulator, rest_fallback=False),
            [schema("Store__c", STORE), *_stores(2), state({"done": 2})], out=out)
    assert out.getvalue() == ""
    assert emulator.state.org.count("Store__c") == 0
