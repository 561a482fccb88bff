"""sObject Collections of the emulator, and the Bulk refusal of objects without Bulk API access.

Salesforce refuses every Bulk job on an object whose "Allow Bulk API Access" is off
(``enableBulkApi=false``) while REST keeps working: these tests pin both sides.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.conftest import emulator_token
from tests.emulator.test_rest import Client

ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}
NAME_MISSING = {"statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Name]", "fields": ["Name"]}


@pytest.fixture
def client(emulator) -> Client:
    return Client(emulator)


def _account(**fields: object) -> dict:
    return {"attributes": {"type": "Account"}, **fields}


def _contact(**fields: object) -> dict:
    return {"attributes": {"type": "Contact"}, **fields}


def _names(emulator) -> list[tuple]:
    return emulator.state.org.execute_sql(
        'SELECT "Name", "External_Id__c", "IsDeleted" FROM "Account" ORDER BY "Id"')


def test_create_answers_each_record_in_input_order(client: Client, emulator) -> None:
    response = client.post("/composite/sobjects", {"records": [
        _account(Name="Acme", External_Id__c="A1"), _account(External_Id__c="A2"),
        _account(Name="Globex", NumberOfEmployees=12)]})
    assert response.status_code == 200
    assert response.json() == [
        {"id": "0015g0000000001AAA", "success": True, "errors": []},
        {"success": False, "errors": [NAME_MISSING]},
        {"id": "0015g0000000002AAA", "success": True, "errors": []},
    ]
    assert _names(emulator) == [("Acme", "A1", 0), ("Globex", None, 0)]


def test_create_all_or_none_writes_nothing_when_one_record_fails(client: Client,
                                                                 emulator) -> None:
    response = client.post("/composite/sobjects", {"allOrNone": True, "records": [
        _account(Name="Acme"), _account(External_Id__c="A2")]})
    assert response.status_code == 200
    assert response.json() == [{"success": False, "errors": [ROLLED_BACK]},
                               {"success": False, "errors": [NAME_MISSING]}]
    assert emulator.state.org.count("Account") == 0
    ok = client.post("/composite/sobjects", {"allOrNone": True, "records": [
        _account(Name="Acme"), _account(Name="Initech")]})
    assert [r["success"] for r in ok.json()] == [True, True]
    assert emulator.state.org.count("Account") == 2


def test_update_by_id_and_all_or_none_restores_earlier_values(client: Client,
                                                              emulator) -> None:
    created = client.post("/composite/sobjects", {"records": [
        _account(Name="Acme", External_Id__c="A1"), _account(Name="Globex")]}).json()
    first, second = created[0]["id"], created[1]["id"]
    response = client.patch("/composite/sobjects", {"records": [
        _account(Id=first, Name="Acme Corp"), _account(Name="No id"),
        _account(Id=second[:15], Name=None)]})
    assert response.json() == [
        {"id": first, "success": True, "errors": []},
        {"success": False, "errors": [{"statusCode": "MISSING_ARGUMENT",
                                       "message": "Id not specified in an update call",
                                       "fields": []}]},
        {"id": second, "success": False, "errors": [NAME_MISSING]},
    ]
    rolled = client.patch("/composite/sobjects", {"allOrNone": True, "records": [
        _account(Id=first, Name="Renamed", External_Id__c=None), _account(Id=second, Name=None)]})
    assert rolled.json() == [{"id": first, "success": False, "errors": [ROLLED_BACK]},
                             {"id": second, "success": False, "errors": [NAME_MISSING]}]
    assert _names(emulator) == [("Acme Corp", "A1", 0), ("Globex", None, 0)]


def test_upsert_by_external_id_with_parent_references(client: Client, emulator) -> None:
    client.post("/composite/sobjects", {"records": [_account(Name="Acme", External_Id__c="A1")]})
    path = "/composite/sobjects/Contact/External_Id__c"
    response = client.patch(path, {"records": [
        _contact(External_Id__c="C1", LastName="Lovelace", Account={"External_Id__c": "A1"}),
        _contact(External_Id__c="C2", LastName="Hopper", Account={"External_Id__c": "NOPE"}),
        _contact(LastName="Nobody")]})
    assert response.status_code == 200
    assert response.json() == [
        {"id": "0035g0000000001AAA", "success": True, "errors": [], "created": True},
        {"success": False, "created": False, "errors": [{
            "statusCode": "INVALID_FIELD",
            "message": "Foreign key external ID: NOPE not found for field External_Id__c in "
            "entity Account", "fields": []}]},
        {"success": False, "created": False, "errors": [{
            "statusCode": "MISSING_ARGUMENT", "message": "External_Id__c not specified",
            "fields": []}]},
    ]
    again = client.patch(path, {"records": [_contact(External_Id__c="c1", LastName="King")]})
    assert again.json() == [
        {"id": "0035g0000000001AAA", "success": True, "errors": [], "created": False}]
    assert emulator.state.org.execute_sql(
        'SELECT "LastName", "AccountId" FROM "Contact"') == [("King", "0015g0000000001AAA")]
    unknown = client.patch("/composite/sobjects/Contact/LastName", {"records": []})
    assert unknown.status_code == 404


def test_delete_by_ids_and_all_or_none(client: Client, emulator) -> None:
    ids = [r["id"] for r in client.post("/composite/sobjects", {"records": [
        _account(Name="Acme"), _account(Name="Globex")]}).json()]
    url = client.base + "/composite/sobjects"
    rolled = client.session.delete(url, params={"ids": ",".join([*ids, "001xx"]),
                                                "allOrNone": "true"}, timeout=10)
    malformed = {"success": False, "errors": [{"statusCode": "MALFORMED_ID",
                                               "message": "malformed id 001xx", "fields": []}]}
    assert rolled.json() == [{"id": ids[0], "success": False, "errors": [ROLLED_BACK]},
                             {"id": ids[1], "success": False, "errors": [ROLLED_BACK]},
                             malformed]
    assert emulator.state.org.count("Account") == 2
    done = client.session.delete(url, params={"ids": f"{ids[0]},001xx,{ids[1][:15]}"},
                                 timeout=10)
    assert done.json() == [{"id": ids[0], "success": True, "errors": []}, malformed,
                           {"id": ids[1], "success": True, "errors": []}]
    assert _names(emulator) == [("Acme", None, 1), ("Globex", None, 1)]


def test_whole_request_refusals(client: Client) -> None:
    too_many = client.post("/composite/sobjects",
                           {"records": [_account(Name=str(n)) for n in range(201)]})
    assert too_many.status_code == 400
    assert too_many.json() == [{
        "message": "record limit reached. cannot submit more than 200 records into this call",
        "errorCode": "EXCEEDED_ID_LIMIT"}]
    unknown = client.post("/composite/sobjects", {"records": [_account(Name="x", Foo__c=1)]})
    assert (unknown.status_code, unknown.json()) == (400, [{
        "message": "No such column 'Foo__c' on sobject of type Account",
        "errorCode": "INVALID_FIELD"}])
    with_id = client.post("/composite/sobjects",
                          {"records": [_account(Name="x", Id="001000000000001")]})
    assert with_id.json() == [{"success": False, "errors": [{
        "statusCode": "INVALID_FIELD", "message": "cannot specify Id in an insert call",
        "fields": ["Id"]}]}]


# --- objects whose Bulk API access is off ------------------------------------------------


@pytest.fixture
def no_bulk(emulator):
    """Store__c with "Allow Bulk API Access" off, as an enableBulkApi=false object imports."""
    store = emulator.state.org.catalog.get("Store__c")
    store.bulk_api = False
    store.bulk_queryable = False
    return emulator


def test_bulk1_refuses_ingest_and_query_jobs(no_bulk) -> None:
    headers = {"X-SFDC-Session": emulator_token(no_bulk), "Content-Type": "application/json"}
    for operation in ("insert", "upsert", "delete", "query"):
        body = {"operation": operation, "object": "Store__c", "contentType": "CSV"}
        if operation == "upsert":
            body["externalIdFieldName"] = "Id"
        response = requests.post(f"{no_bulk.url}/services/async/62.0/job",
                                 data=json.dumps(body), headers=headers, timeout=10)
        assert response.status_code == 400, operation
        assert response.json() == {
            "exceptionCode": "InvalidEntity",
            "exceptionMessage": "Entity 'Store__c' is not supported by the Bulk API."}


def test_bulk2_refuses_ingest_and_query_jobs_while_rest_works(no_bulk) -> None:
    client = Client(no_bulk)
    refused = [{"errorCode": "INVALIDENTITY",
                "message": "Store__c is not supported by the Bulk API"}]
    ingest = client.post("/jobs/ingest", {"object": "Store__c", "operation": "insert"})
    assert (ingest.status_code, ingest.json()) == (400, refused)
    query = client.post("/jobs/query", {"operation": "query", "query": "SELECT Id FROM Store__c"})
    assert (query.status_code, query.json()) == (400, refused)
    created = client.post("/composite/sobjects", {"records": [
        {"attributes": {"type": "Store__c"}, "Name": "Harbour"}]})
    assert created.json() == [{"id": created.json()[0]["id"], "success": True, "errors": []}]
    rows = client.query("SELECT Name FROM Store__c").json()["records"]
    assert [r["Name"] for r in rows] == ["Harbour"]
