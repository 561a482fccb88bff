"""Bulk API 1.0 of the emulator over real HTTP: bodies, states, codes and headers.

Shapes are compared with the recorded bodies in ``fixtures/salesforce/bulk1/``.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import time
import zipfile
from datetime import datetime
from xml.etree import ElementTree as ET

import pytest
import requests

from sfbulk.emulator.app import DAILY_BULK_API_BATCHES
from sfbulk.emulator.bulk1 import (
    Bulk1Error,
    PkChunking,
    chunk_query,
    chunking_defeated,
    java_double,
    parse_pk_chunking,
    split_csv,
)
from tests.conftest import FIXTURES, emulator_token

BULK1 = FIXTURES / "salesforce" / "bulk1"
NS = "http://www.force.com/2009/06/asyncapi/dataload"
TERMINAL = ("Completed", "Failed", "NotProcessed")


class Client:
    """A thin Bulk 1.0 client for tests: raw requests, nothing hidden."""

    def __init__(self, server, version: str = "62.0") -> None:
        self.server = server
        self.base = f"{server.url}/services/async/{version}"
        self.token = emulator_token(server)
        self.http = requests.Session()

    def headers(self, content_type: str | None = "application/xml", **extra: str) -> dict:
        out = {"X-SFDC-Session": self.token}
        if content_type:
            out["Content-Type"] = content_type
        out.update(extra)
        return out

    def post(self, path: str, data, content_type: str = "application/xml", **extra: str):
        return self.http.post(
            self.base + path, data=data, headers=self.headers(content_type, **extra), timeout=30
        )

    def get(self, path: str, content_type: str | None = None, **extra: str):
        return self.http.get(self.base + path, headers=self.headers(content_type, **extra),
                             timeout=30)

    def create_job(self, operation: str, obj: str, content_type: str = "CSV", **fields) -> str:
        body = {"operation": operation, "object": obj, "contentType": content_type, **fields}
        headers = {k: v for k, v in fields.items() if k.startswith("Sforce")}
        for key in headers:
            body.pop(key)
        response = self.post("/job", json.dumps(body), "application/json", **headers)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def add_batch(self, job_id: str, data, content_type: str = "text/csv") -> str:
        response = self.post(f"/job/{job_id}/batch", data, content_type)
        assert response.status_code == 201, response.text
        if response.headers["Content-Type"] == "application/json":
            return response.json()["id"]
        return _xml_fields(response.content)["id"]

    def batch(self, job_id: str, batch_id: str) -> dict:
        response = self.get(f"/job/{job_id}/batch/{batch_id}")
        assert response.status_code == 200, response.text
        if response.headers["Content-Type"] == "application/json":
            return response.json()
        return _xml_fields(response.content)

    def wait(self, job_id: str, batch_id: str, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.batch(job_id, batch_id)
            if info["state"] in TERMINAL or time.monotonic() > deadline:
                return info
            time.sleep(0.02)

    def batches(self, job_id: str) -> list[dict]:
        root = ET.fromstring(self.get(f"/job/{job_id}/batch").content)
        return [{_local(c.tag): c.text for c in item} for item in root]

    def job(self, job_id: str) -> dict:
        return _xml_fields(self.get(f"/job/{job_id}").content)

    def set_state(self, job_id: str, state: str) -> requests.Response:
        body = f'<jobInfo xmlns="{NS}"><state>{state}</state></jobInfo>'
        return self.post(f"/job/{job_id}", body)

    def close(self, job_id: str) -> requests.Response:
        return self.set_state(job_id, "Closed")

    def abort(self, job_id: str) -> requests.Response:
        return self.set_state(job_id, "Aborted")

    def result_text(self, job_id: str, batch_id: str) -> str:
        response = self.get(f"/job/{job_id}/batch/{batch_id}/result")
        assert response.status_code == 200, response.text
        return response.text

    def query_results(self, job_id: str, batch_id: str) -> list[str]:
        listing = self.get(f"/job/{job_id}/batch/{batch_id}/result")
        ids = [r.text for r in ET.fromstring(listing.content)]
        return [self.get(f"/job/{job_id}/batch/{batch_id}/result/{rid}").text for rid in ids]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_fields(content: bytes) -> dict:
    return {_local(child.tag): child.text for child in ET.fromstring(content)}


def _tags(content: bytes) -> list[str]:
    return [_local(child.tag) for child in ET.fromstring(content)]


def _error(response) -> tuple[str, str]:
    if response.headers["Content-Type"] == "application/json":
        body = response.json()
        return body["exceptionCode"], body["exceptionMessage"]
    fields = _xml_fields(response.content)
    return fields["exceptionCode"], fields["exceptionMessage"]


@pytest.fixture
def client(emulator) -> Client:
    return Client(emulator)


def _org(client: Client):
    return client.server.state.org


def _rows(client: Client, sql: str) -> list[tuple]:
    return _org(client).execute_sql(sql)


# ----------------------------------------------------------------------------- jobInfo shapes


def test_create_job_in_xml_matches_the_recorded_response(client: Client) -> None:
    request = (BULK1 / "doc_jobinfo_create_request.xml").read_bytes()
    response = client.post("/job", request, "application/xml; charset=UTF-8")
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/xml"
    fields = _xml_fields(response.content)
    assert response.headers["Location"] == f"/services/async/62.0/job/{fields['id']}"
    recorded = (BULK1 / "jobinfo_create_response_insert_csv.xml").read_text()
    for name in ("id", "createdById", "createdDate", "systemModstamp"):
        recorded = re.sub(f"<{name}>[^<]*</{name}>", f"<{name}>{fields[name]}</{name}>", recorded)
    recorded = recorded.replace("<object>Event</object>", "<object>Account</object>")
    assert response.text == recorded
    assert re.fullmatch(r"750[0-9A-Za-z]{15}", fields["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", fields["createdDate"])
    assert fields["createdById"] == _org(client).user_id


def test_create_job_in_json_answers_json_with_alphabetical_keys(client: Client) -> None:
    request = (BULK1 / "doc_jobinfo_create_request.json").read_bytes()
    response = client.post("/job", request, "application/json")
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    recorded = json.loads((BULK1 / "doc_jobinfo_create_response.json").read_text())
    assert list(body) == list(recorded) == sorted(recorded)
    assert body["apiVersion"] == 62.0 and isinstance(body["apiVersion"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", body["createdDate"])
    assert {k: body[k] for k in ("operation", "object", "contentType", "state")} == {
        "operation": "insert", "object": "Account", "contentType": "JSON", "state": "Open"
    }
    # A later GET answers in the job's format (JSON) even when the request sends XML.
    again = client.get(f"/job/{body['id']}", "application/xml")
    assert again.headers["Content-Type"] == "application/json"
    assert again.json()["id"] == body["id"]


def test_csv_job_created_with_json_answers_later_calls_in_xml(client: Client) -> None:
    # tap-salesforce: create with JSON, then read batch and status answers as XML.
    job_id = client.create_job("insert", "Account", "CSV")
    response = client.get(f"/job/{job_id}", "application/json")
    assert response.headers["Content-Type"] == "application/xml"
    closed = client.post(f"/job/{job_id}", json.dumps({"state": "Closed"}), "application/json")
    assert closed.status_code == 200
    assert closed.headers["Content-Type"] == "application/json"
    assert closed.json()["state"] == "Closed"


def test_upsert_job_echoes_the_external_id_field_in_xsd_order(client: Client) -> None:
    request = (BULK1 / "jobinfo_create_request_upsert_csv.xml").read_bytes()
    created = client.post("/job", request)
    assert created.status_code == 201
    job_id = _xml_fields(created.content)["id"]
    closed = client.close(job_id)
    assert closed.status_code == 200
    recorded = (BULK1 / "jobinfo_upsert_closed_rendered.xml").read_bytes()
    assert _tags(closed.content) == _tags(recorded)
    fields = _xml_fields(closed.content)
    assert (fields["state"], fields["externalIdFieldName"], fields["object"]) == (
        "Closed", "Id", "Contact"
    )


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"operation": "upsert", "object": "Contact", "contentType": "CSV"},
         "InvalidJob", "External ID field is required for upsert operation"),
        ({"operation": "insert", "object": "Contact", "externalIdFieldName": "Email"},
         "InvalidJob", "externalIdFieldName is only allowed for upsert, not insert"),
        ({"operation": "upsert", "object": "Contact", "externalIdFieldName": "LastName"},
         "InvalidJob",
         "Field name provided, LastName is not an External ID or indexed field for Contact"),
        ({"operation": "INSERT", "object": "Account"},
         "InvalidJob", "Invalid value for operation: INSERT"),
        ({"operation": "insert", "object": "Nope__c"},
         "InvalidJob", "Unable to find object: Nope__c"),
        ({"operation": "insert", "object": "Account", "contentType": "YAML"},
         "InvalidJob", "Invalid value for contentType: YAML"),
        ({"operation": "insert", "object": "Account", "bogus": "x"},
         "InvalidJob", "Unable to parse Job"),
        ({"operation": "query", "object": "CaseStatus"},
         "InvalidEntity", "Entity 'CaseStatus' is not supported by the Bulk API."),
    ],
)
def test_job_creation_errors(client: Client, body, code, message) -> None:
    response = client.post("/job", json.dumps(body), "application/json")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"exceptionCode": code, "exceptionMessage": message}


def test_unparseable_xml_job_is_an_xml_error_in_the_recorded_layout(client: Client) -> None:
    response = client.post("/job", f'<jobInfo xmlns="{NS}"><operation>insert</operation>'
                           "<nonsense>1</nonsense></jobInfo>")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/xml"
    assert response.text == (
        '<?xml version="1.0" encoding="UTF-8"?><error\n'
        f'   xmlns="{NS}">\n'
        " <exceptionCode>InvalidJob</exceptionCode>\n"
        " <exceptionMessage>Unable to parse Job</exceptionMessage>\n"
        "</error>"
    )


def test_bad_job_id_follows_the_request_content_type(client: Client) -> None:
    as_json = client.get("/job/750000000000000AAA", "application/json")
    assert as_json.status_code == 400
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json()["exceptionCode"] == "InvalidJob"
    as_xml = client.get("/job/750000000000000AAA")
    assert as_xml.headers["Content-Type"] == "application/xml"
    assert _error(as_xml) == ("InvalidJob", "Invalid job id: 750000000000000AAA")


def test_invalid_session_is_400_invalid_session_id(client: Client) -> None:
    response = requests.get(
        client.base + "/job/750000000000000AAA", headers={"x-sfdc-session": "00Dbad!AQ"},
        timeout=10,
    )
    assert response.status_code == 400
    assert _error(response) == ("InvalidSessionId", "Invalid session id")
    # The header name is matched case-insensitively (jsforce sends X-SFDC-SESSION).
    job_id = client.create_job("insert", "Account")
    ok = requests.get(f"{client.base}/job/{job_id}", headers={"X-SFDC-SESSION": client.token},
                      timeout=10)
    assert ok.status_code == 200


def test_other_methods_are_405_and_bad_versions_refused(client: Client) -> None:
    job_id = client.create_job("insert", "Account")
    response = client.http.delete(f"{client.base}/job/{job_id}", headers=client.headers(),
                                  timeout=10)
    assert response.status_code == 405
    assert _error(response)[0] == "InvalidUrl"
    old = requests.get(f"{client.server.url}/services/async/7.0/job/{job_id}",
                       headers=client.headers(), timeout=10)
    assert old.status_code == 400
    assert _error(old) == ("InvalidVersion", "Invalid api version specified on URL")


def test_close_and_abort_rules(client: Client) -> None:
    job_id = client.create_job("insert", "Account")
    bad = client.post(f"/job/{job_id}", f'<jobInfo xmlns="{NS}"><state>Closed</state>'
                      "<object>Account</object></jobInfo>")
    assert _error(bad) == ("InvalidJob", "Only the state of an existing job can be changed")
    assert client.close(job_id).status_code == 200
    again = client.close(job_id)
    assert again.status_code == 400
    assert _error(again) == ("InvalidJobState", f"Job {job_id} is Closed, not Open")
    # A batch for a closed job is refused but still counts against the allocation.
    usage = client.server.state.usage
    before = usage.used(DAILY_BULK_API_BATCHES)
    refused = client.post(f"/job/{job_id}/batch", "Name\nx\n", "text/csv")
    assert refused.status_code == 400
    assert _error(refused) == (
        "InvalidJobState", f"Job {job_id} is Closed: no batches can be added"
    )
    assert usage.used(DAILY_BULK_API_BATCHES) == before + 1
    aborted = client.abort(job_id)
    assert _xml_fields(aborted.content)["state"] == "Aborted"
    assert _error(client.abort(job_id))[0] == "InvalidJobState"


# ----------------------------------------------------------------------------- ingest


def test_csv_insert_rules_and_results_in_input_order(client: Client) -> None:
    job_id = client.create_job("insert", "Account")
    payload = (
        'Name,Description,Phone\n'
        '"Acme, Inc.","He said ""hi""",\n'
        'Plain,#N/A,555\n'
        '"Spaced", "bad",1\n'
        'Multi,"line one\nline two", 42\n'
        'Short,only-two\n'
    )
    batch_id = client.add_batch(job_id, payload.encode())
    info = client.wait(job_id, batch_id)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "Completed", "5", "2"
    )
    ids = [row[0] for row in _rows(client, 'SELECT "Id" FROM "Account" ORDER BY "Id"')]
    assert len(ids) == 3
    expected = (
        '"Id","Success","Created","Error"\n'
        f'"{ids[0]}","true","true",""\n'
        f'"{ids[1]}","true","true",""\n'
        '"","false","false","INVALID_FIELD:Failed to parse CSV row: Quote inside an unquoted '
        'value (check for spaces around quotes):--"\n'
        f'"{ids[2]}","true","true",""\n'
        '"","false","false","INVALID_FIELD:Row has 2 values but the header has 3 fields:--"\n'
    )
    response = client.get(f"/job/{job_id}/batch/{batch_id}/result")
    assert response.headers["Content-Type"] == "text/csv"
    assert response.text == expected
    stored = _rows(client, 'SELECT "Name", "Description", "Phone" FROM "Account" ORDER BY "Id"')
    assert stored == [
        ("Acme, Inc.", 'He said "hi"', None),
        ("Plain", None, "555"),
        ("Multi", "line one\nline two", " 42"),
    ]
    # The request is echoed as sent.
    echo = client.get(f"/job/{job_id}/batch/{batch_id}/request")
    assert echo.headers["Content-Type"] == "text/csv"
    assert echo.text == payload


def test_update_empty_cell_keeps_and_na_clears(client: Client) -> None:
    insert = client.create_job("insert", "Account")
    done = client.wait(insert, client.add_batch(insert, b"Name,Description,Phone\nA,d1,p1\n"))
    assert done["state"] == "Completed"
    (account_id,) = _rows(client, 'SELECT "Id" FROM "Account"')[0]
    update = client.create_job("update", "Account")
    batch = client.add_batch(update, f"Id,Description,Phone\n{account_id},,#N/A\n".encode())
    assert client.wait(update, batch)["state"] == "Completed"
    assert client.result_text(update, batch) == (
        f'"Id","Success","Created","Error"\n"{account_id}","true","false",""\n'
    )
    assert _rows(client, 'SELECT "Description", "Phone" FROM "Account"') == [("d1", None)]


def test_bad_header_field_fails_the_batch(client: Client) -> None:
    job_id = client.create_job("insert", "Account")
    batch_id = client.add_batch(job_id, b"Name,Foo\nx,y\n")
    info = client.wait(job_id, batch_id)
    assert info["state"] == "Failed"
    assert info["stateMessage"] == "InvalidBatch : Field name not found : Foo"
    result = client.get(f"/job/{job_id}/batch/{batch_id}/result")
    assert result.status_code == 400
    assert _error(result)[0] == "InvalidBatch"


def test_upsert_by_id_and_by_external_id(client: Client) -> None:
    insert = client.create_job("insert", "Contact")
    first = client.add_batch(insert, b"LastName,Email\nOne,one@x.org\nTwo,two@x.org\n")
    assert client.wait(insert, first)["state"] == "Completed"
    ids = [r[0] for r in _rows(client, 'SELECT "Id" FROM "Contact" ORDER BY "Id"')]
    upsert = client.create_job("upsert", "Contact", externalIdFieldName="Id")
    batch = client.add_batch(upsert, f"Id,LastName\n{ids[1]},Deux\n,Trois\n".encode())
    assert client.wait(upsert, batch)["state"] == "Completed"
    new_id = _rows(client, 'SELECT "Id" FROM "Contact" WHERE "LastName" = \'Trois\'')[0][0]
    assert client.result_text(upsert, batch) == (
        '"Id","Success","Created","Error"\n'
        f'"{ids[1]}","true","false",""\n'
        f'"{new_id}","true","true",""\n'
    )
    stores = client.create_job("upsert", "Store__c", externalIdFieldName="Store_Code__c")
    batch = client.add_batch(stores, b"Store_Code__c,Name\nS1,First\nS2,Second\n")
    assert client.wait(stores, batch)["state"] == "Completed"
    again = client.create_job("upsert", "Store__c", externalIdFieldName="store_code__c")
    batch2 = client.add_batch(again, b"Store_Code__c,Name\nS2,Renamed\nS3,Third\n")
    assert client.wait(again, batch2)["state"] == "Completed"
    created = [line.split(",")[2] for line in client.result_text(again, batch2).splitlines()[1:]]
    assert created == ['"false"', '"true"']
    assert _rows(client, 'SELECT "Store_Code__c", "Name" FROM "Store__c" ORDER BY 1') == [
        ("S1", "First"), ("S2", "Renamed"), ("S3", "Third")
    ]


def test_delete_and_hard_delete(client: Client) -> None:
    insert = client.create_job("insert", "Account")
    assert client.wait(insert, client.add_batch(insert, b"Name\na\nb\nc\n"))["state"] == "Completed"
    ids = [r[0] for r in _rows(client, 'SELECT "Id" FROM "Account" ORDER BY "Id"')]
    delete = client.create_job("delete", "Account")
    batch = client.add_batch(delete, f"Id\n{ids[0]}\n001000000000000AAA\n".encode())
    assert client.wait(delete, batch)["state"] == "Completed"
    lines = client.result_text(delete, batch).splitlines()
    assert lines[1] == f'"{ids[0]}","true","false",""'
    assert lines[2].startswith('"001000000000000AAA","false","false","') or lines[2].startswith(
        '"","false","false","'
    )
    hard = client.create_job("hardDelete", "Account")
    batch = client.add_batch(hard, f"Id\n{ids[1]}\n".encode())
    assert client.wait(hard, batch)["state"] == "Completed"
    assert _org(client).count("Account") == 1
    assert _org(client).count("Account", include_deleted=True) == 2


def test_json_ingest_with_nulls_and_parent_references(client: Client) -> None:
    accounts = client.create_job("insert", "Account", "JSON")
    batch = client.add_batch(accounts, json.dumps([{"Name": "Parent"}]), "application/json")
    assert client.wait(accounts, batch)["state"] == "Completed"
    contacts = client.create_job("insert", "Contact", "JSON")
    payload = [
        {"LastName": "Boss", "Email": "boss@x.org", "Description": None},
        {"LastName": "Worker", "ReportsTo": {"Email": "boss@x.org"}},
    ]
    boss_batch = client.add_batch(contacts, json.dumps(payload[:1]), "application/json")
    assert client.wait(contacts, boss_batch)["state"] == "Completed"
    batch = client.add_batch(contacts, json.dumps(payload[1:]), "application/json")
    info = client.wait(contacts, batch)
    assert info["state"] == "Completed", info
    assert info["stateMessage"] is None  # JSON batchInfo always carries stateMessage
    results = client.get(f"/job/{contacts}/batch/{batch}/result")
    assert results.headers["Content-Type"] == "application/json"
    body = results.json()
    worker, boss = (
        _rows(client, 'SELECT "Id" FROM "Contact" WHERE "LastName" = \'Worker\'')[0][0],
        _rows(client, 'SELECT "Id" FROM "Contact" WHERE "LastName" = \'Boss\'')[0][0],
    )
    assert body == [{"success": True, "created": True, "id": worker, "errors": []}]
    assert _rows(client, 'SELECT "ReportsToId" FROM "Contact" WHERE "Id" = ?'.replace(
        "?", f"'{worker}'")) == [(boss,)]
    # batchInfo JSON keys follow the recorded body.
    recorded = json.loads((BULK1 / "batchinfo_completed_json.json").read_text())
    assert list(client.batch(contacts, batch)) == list(recorded)


def test_xml_ingest_with_nil_and_results(client: Client) -> None:
    job_id = client.create_job("insert", "Account", "XML")
    payload = (BULK1 / "doc_batch_request_sobjects.xml").read_bytes()
    batch = client.add_batch(job_id, payload, "application/xml")
    assert client.wait(job_id, batch)["state"] == "Completed"
    ids = [r[0] for r in _rows(client, 'SELECT "Id" FROM "Account" ORDER BY "Id"')]
    response = client.get(f"/job/{job_id}/batch/{batch}/result")
    assert response.headers["Content-Type"] == "application/xml"
    recorded = (BULK1 / "doc_batch_result.xml").read_text().strip()
    recorded = recorded.replace("001D000000ISUr3IAH", ids[0]).replace("001D000000ISUr4IAH", ids[1])
    assert response.text == recorded
    assert _rows(client, 'SELECT "Name", "Description" FROM "Account" ORDER BY "Id"') == [
        ("[Bulk API] Account 0 (batch 0)", "Created from Bulk API"),
        ("[Bulk API] Account 1 (batch 0)", "Created from Bulk API"),
    ]
    update = client.create_job("update", "Account", "XML")
    nil = (
        f'<sObjects xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f'<sObject><Id>{ids[0]}</Id><Description xsi:nil="true"/></sObject>'
        f"<sObject><Id>{ids[1]}</Id><Name/></sObject></sObjects>"
    )
    batch = client.add_batch(update, nil, "application/xml")
    assert client.wait(update, batch)["state"] == "Completed"
    assert _rows(client, 'SELECT "Name", "Description" FROM "Account" ORDER BY "Id"') == [
        ("[Bulk API] Account 0 (batch 0)", None),
        ("[Bulk API] Account 1 (batch 0)", "Created from Bulk API"),
    ]


def test_zip_batch_loads_attachments(client: Client) -> None:
    accounts = client.create_job("insert", "Account")
    assert client.wait(accounts, client.add_batch(accounts, b"Name\nHolder\n"))["state"] == (
        "Completed"
    )
    (account_id,) = _rows(client, 'SELECT "Id" FROM "Account"')[0]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "request.txt",
            f"Name,ParentId,Body\nnote.txt,{account_id},#note.txt\n"
            f"deep.bin,{account_id},#sub/deep.bin\nmissing.txt,{account_id},#nowhere.txt\n",
        )
        archive.writestr("note.txt", b"hello attachment")
        archive.writestr("sub/deep.bin", bytes(range(256)))
    job_id = client.create_job("insert", "Attachment", "ZIP_CSV")
    batch = client.add_batch(job_id, buffer.getvalue(), "zip/csv")
    info = client.wait(job_id, batch)
    assert (info["state"], info["numberRecordsFailed"]) == ("Completed", "1")
    lines = client.result_text(job_id, batch).splitlines()
    assert lines[3] == (
        '"","false","false","INVALID_FIELD:Binary file not found in the zip: #nowhere.txt:Body --"'
    )
    stored = _rows(client, 'SELECT "Name", "Body" FROM "Attachment" ORDER BY "Id"')
    assert [(n, bytes(b)) for n, b in stored] == [
        ("note.txt", b"hello attachment"), ("deep.bin", bytes(range(256)))
    ]
    # Without request.txt the batch fails as a whole.
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("note.txt", b"x")
    failed = client.wait(job_id, client.add_batch(job_id, empty.getvalue(), "zip/csv"))
    assert failed["state"] == "Failed"
    assert failed["stateMessage"] == "InvalidBatch : The zip file has no request.txt at its root"


def test_serial_batches_run_in_order_and_counters_add_up(client: Client) -> None:
    job_id = client.create_job("insert", "Account", concurrencyMode="Serial")
    batch_ids = [client.add_batch(job_id, f"Name\nb{n}-1\nb{n}-2\n".encode()) for n in range(4)]
    for batch_id in batch_ids:
        assert client.wait(job_id, batch_id)["state"] == "Completed"
    names = [r[0] for r in _rows(client, 'SELECT "Name" FROM "Account" ORDER BY "Id"')]
    assert names == [f"b{n}-{i}" for n in range(4) for i in (1, 2)]
    job = client.job(job_id)
    assert (job["concurrencyMode"], job["numberBatchesTotal"], job["numberBatchesCompleted"],
            job["numberRecordsProcessed"], job["numberRecordsFailed"]) == (
        "Serial", "4", "4", "8", "0"
    )
    listing = client.batches(job_id)
    assert [b["id"] for b in listing] == batch_ids
    recorded = (BULK1 / "batchinfolist_completed_rendered.xml").read_bytes()
    root = ET.fromstring(recorded)
    assert [_local(c.tag) for c in root[0]] == list(listing[0])


def test_abort_marks_queued_batches_not_processed(emulator_factory) -> None:
    server = emulator_factory(workers=1)
    client = Client(server)
    server.state.faults.configure({"processing_delay_seconds": 0.4})
    job_id = client.create_job("insert", "Account", concurrencyMode="Serial")
    batch_ids = [client.add_batch(job_id, f"Name\nx{n}\n".encode()) for n in range(3)]
    deadline = time.monotonic() + 5
    while client.batch(job_id, batch_ids[0])["state"] != "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.abort(job_id).status_code == 200
    states = [client.wait(job_id, b)["state"] for b in batch_ids]
    assert states == ["Completed", "NotProcessed", "NotProcessed"]
    job = client.job(job_id)
    assert (job["state"], job["numberBatchesCompleted"], job["numberBatchesTotal"]) == (
        "Aborted", "1", "3"
    )
    assert _rows(client, 'SELECT "Name" FROM "Account"') == [("x0",)]


def test_limits(emulator_factory) -> None:
    server = emulator_factory(bulk_batches_daily_limit=3)
    client = Client(server)
    job_id = client.create_job("insert", "Account")
    too_many = "Name\n" + "".join(f"n{i}\n" for i in range(10_001))
    info = client.wait(job_id, client.add_batch(job_id, too_many.encode()))
    assert info["state"] == "Failed"
    assert info["stateMessage"] == (
        "InvalidBatch : Exceeded number of records : 10001. Number of records should be less "
        "than or equal to 10000"
    )
    long_value = "x" * 131_073
    batch = client.add_batch(job_id, f"Name,Description\nok,{long_value}\nfine,y\n".encode())
    assert client.wait(job_id, batch)["state"] == "Completed"
    assert client.result_text(job_id, batch).splitlines()[1] == (
        '"","false","false","LIMIT_EXCEEDED:Field value exceeds the maximum of 131072 '
        'characters:Description --"'
    )
    oversized = client.post(f"/job/{job_id}/batch", b"Name\n" + b"y" * 10_000_000, "text/csv")
    assert oversized.status_code == 400
    assert _error(oversized) == (
        "ClientInputError", "Failed to read request. Exceeded max size limit of 10000000"
    )
    client.add_batch(job_id, b"Name\nthird\n")
    quota = client.post(f"/job/{job_id}/batch", b"Name\nfourth\n", "text/csv")
    assert quota.status_code == 400
    assert _error(quota) == ("ExceededQuota", "ApiBatchItems Limit exceeded.")


def test_content_type_encoding_and_compression(client: Client) -> None:
    job_id = client.create_job("insert", "Account")
    wrong = client.post(f"/job/{job_id}/batch", b"Name\nx\n", "application/json")
    assert wrong.status_code == 400
    assert _error(wrong) == (
        "InvalidBatch", f"Unsupported content type application/json: job {job_id} expects text/csv"
    )
    unsupported = client.post(f"/job/{job_id}/batch", b"Name\nx\n", "text/csv",
                              **{"Content-Encoding": "br"})
    assert unsupported.status_code == 415
    compressed = client.post(f"/job/{job_id}/batch", gzip.compress(b"Name\nzipped\n"), "text/csv",
                             **{"Content-Encoding": "gzip"})
    assert compressed.status_code == 201
    batch_id = _xml_fields(compressed.content)["id"]
    assert client.wait(job_id, batch_id)["state"] == "Completed"
    assert _rows(client, 'SELECT "Name" FROM "Account"') == [("zipped",)]
    raw = client.http.get(f"{client.base}/job/{job_id}", timeout=10, stream=True,
                          headers=client.headers(None, **{"Accept-Encoding": "gzip"}))
    assert raw.headers["Content-Encoding"] == "gzip"
    assert _xml_fields(gzip.decompress(raw.raw.read()))["id"] == job_id
    plain = client.http.get(f"{client.base}/job/{job_id}", timeout=10,
                            headers=client.headers(None, **{"Accept-Encoding": "identity"}))
    assert "Content-Encoding" not in plain.headers


def test_fault_injection(emulator_factory) -> None:
    server = emulator_factory(workers=4)
    client = Client(server)
    server.state.faults.configure({"fail_batches": {"count": 1, "message": "InvalidBatch : boom"}})
    job_id = client.create_job("insert", "Account")
    failed = client.wait(job_id, client.add_batch(job_id, b"Name\nx\n"))
    assert (failed["state"], failed["stateMessage"]) == ("Failed", "InvalidBatch : boom")
    assert client.wait(job_id, client.add_batch(job_id, b"Name\nparent\n"))["state"] == "Completed"
    (parent,) = _rows(client, 'SELECT "Id" FROM "Account"')[0]
    # Parallel batches writing under the same parent meet lock errors.
    server.state.faults.configure({"lock_error_share": 1.0, "processing_delay_seconds": 0.8})
    contacts = client.create_job("insert", "Contact")
    rows = "".join(f"c{i},{parent}\n" for i in range(3))
    batches = [client.add_batch(contacts, f"LastName,AccountId\n{rows}".encode())
               for _ in range(2)]
    infos = [client.wait(contacts, b) for b in batches]
    assert [(i["state"], i["numberRecordsFailed"]) for i in infos] == [("Completed", "3")] * 2
    line = client.result_text(contacts, batches[0]).splitlines()[1]
    assert line == (
        '"","false","false","UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this '
        f'record or 1 records: {parent}:--"'
    )
    # Serial jobs do not contend.
    serial = client.create_job("insert", "Contact", concurrencyMode="Serial")
    serial_batches = [client.add_batch(serial, f"LastName,AccountId\n{rows}".encode())
                      for _ in range(2)]
    assert [client.wait(serial, b)["numberRecordsFailed"] for b in serial_batches] == ["0", "0"]
    server.state.faults.configure(
        {"lock_error_share": 0.0, "processing_delay_seconds": 0.0, "never_finish": True}
    )
    stuck = client.add_batch(job_id, b"Name\nnever\n")
    time.sleep(0.2)
    assert client.batch(job_id, stuck)["state"] == "InProgress"


# ----------------------------------------------------------------------------- query


def _seed_accounts(client: Client, count: int) -> list[str]:
    org = _org(client)
    rows = [{"Name": f"Account {i:03d}", "NumberOfEmployees": str(i)} for i in range(count)]
    results = org.write("Account", "insert", rows)
    assert all(r.success for r in results)
    return [r.id for r in results]


def _query_batch(client: Client, soql: str, content_type: str = "CSV",
                 operation: str = "query", obj: str = "Account", **headers) -> tuple[str, str]:
    job_id = client.create_job(operation, obj, content_type, **headers)
    http_type = {"CSV": "text/csv", "JSON": "application/json", "XML": "application/xml"}
    return job_id, client.add_batch(job_id, soql, http_type[content_type])


def test_csv_query_is_split_into_result_files(emulator_factory) -> None:
    client = Client(emulator_factory(result_rows_per_file=2))
    ids = _seed_accounts(client, 5)
    job_id, batch_id = _query_batch(
        client, "SELECT Id, Name, NumberOfEmployees FROM Account ORDER BY Name"
    )
    info = client.wait(job_id, batch_id)
    assert (info["state"], info["numberRecordsProcessed"]) == ("Completed", "5")
    listing = client.get(f"/job/{job_id}/batch/{batch_id}/result")
    assert listing.headers["Content-Type"] == "application/xml"
    result_ids = re.findall(r"<result>(752[0-9A-Za-z]{12})</result>", listing.text)
    assert len(result_ids) == 3
    assert listing.text == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<result-list xmlns="{NS}">\n'
        + "".join(f"<result>{rid}</result>\n" for rid in result_ids)
        + "</result-list>"
    )
    pages = []
    for rid in result_ids:
        page = client.get(f"/job/{job_id}/batch/{batch_id}/result/{rid}")
        assert page.headers["Content-Type"] == "text/csv; charset=UTF-8"
        pages.append(page.text)
        # Uncompressed, a file's known length is sent as Content-Length, not chunked.
        plain = client.get(f"/job/{job_id}/batch/{batch_id}/result/{rid}",
                           **{"Accept-Encoding": "identity"})
        assert plain.headers["Content-Length"] == str(len(plain.content))
        assert "Transfer-Encoding" not in plain.headers
        assert plain.text == page.text
    rows = [f'"{ids[i]}","Account {i:03d}","{i}"\n' for i in range(5)]
    header = '"Id","Name","NumberOfEmployees"\n'
    assert pages == [header + rows[0] + rows[1], header + rows[2] + rows[3], header + rows[4]]


def test_empty_query_and_query_all(client: Client) -> None:
    ids = _seed_accounts(client, 2)
    delete = client.create_job("delete", "Account")
    assert client.wait(delete, client.add_batch(delete, f"Id\n{ids[0]}\n".encode()))["state"] == (
        "Completed"
    )
    job_id, batch_id = _query_batch(client, "SELECT Id FROM Account WHERE Name = 'none'")
    assert client.wait(job_id, batch_id)["state"] == "Completed"
    assert client.query_results(job_id, batch_id) == ["Records not found for this query"]
    soql = "SELECT Id, IsDeleted FROM Account ORDER BY Id"
    live_job, live = _query_batch(client, soql)
    all_job, every = _query_batch(client, soql, operation="queryAll")
    assert client.wait(live_job, live)["state"] == client.wait(all_job, every)["state"] == (
        "Completed"
    )
    assert client.query_results(live_job, live) == [f'"Id","IsDeleted"\n"{ids[1]}","false"\n']
    assert client.query_results(all_job, every) == [
        f'"Id","IsDeleted"\n"{ids[0]}","true"\n"{ids[1]}","false"\n'
    ]
    # The SOQL is echoed as the batch request.
    assert client.get(f"/job/{all_job}/batch/{every}/request").text == soql


def test_query_values_are_formatted_like_bulk_csv(client: Client) -> None:
    org = _org(client)
    (account,) = org.write("Account", "insert", [{"Name": "Parent Co"}])
    org.write("Type_Sample__c", "insert", [{
        "Name": "typed", "Checkbox__c": "true", "Double__c": "912260031", "Currency__c": "12.5",
        "Int__c": "7", "Date__c": "2024-02-29", "DateTime__c": "2024-02-29T10:11:12.345Z",
        "Account__c": account.id,
    }, {"Name": "empty"}])
    job_id, batch_id = _query_batch(
        client,
        "SELECT Name, Checkbox__c, Double__c, Currency__c, Int__c, Date__c, DateTime__c, "
        "Account__r.Name FROM Type_Sample__c ORDER BY Name DESC",
        obj="Type_Sample__c",
    )
    assert client.wait(job_id, batch_id)["state"] == "Completed"
    assert client.query_results(job_id, batch_id) == [
        '"Name","Checkbox__c","Double__c","Currency__c","Int__c","Date__c","DateTime__c",'
        '"Account__r.Name"\n'
        '"typed","true","9.12260031E8","12.5","7","2024-02-29","2024-02-29T10:11:12.345Z",'
        '"Parent Co"\n'
        '"empty","false","","","","","",""\n'
    ]


def test_json_query_results(client: Client) -> None:
    org = _org(client)
    (account,) = org.write("Account", "insert", [{"Name": "Parent Co"}])
    contacts = org.write("Contact", "insert", [
        {"LastName": "Linked", "AccountId": account.id, "Email": None},
        {"LastName": "Orphan"},
    ])
    job_id, batch_id = _query_batch(
        client,
        "SELECT Id, LastName, Account.Name, CreatedDate FROM Contact ORDER BY LastName",
        "JSON", obj="Contact",
    )
    info = client.wait(job_id, batch_id)
    assert info["state"] == "Completed"
    listing = client.get(f"/job/{job_id}/batch/{batch_id}/result")
    assert listing.headers["Content-Type"] == "application/json"
    (result_id,) = listing.json()
    assert re.fullmatch(r"752[0-9A-Za-z]{12}", result_id)
    page = client.get(f"/job/{job_id}/batch/{batch_id}/result/{result_id}")
    assert page.headers["Content-Type"] == "application/json"
    created = _org(client).execute_sql(
        'SELECT "CreatedDate" FROM "Contact" WHERE "Id" = ?', (contacts[0].id,)
    )[0][0]
    millis = round(datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() * 1000)
    assert page.json()[0] == {
        "attributes": {
            "type": "Contact", "url": f"/services/data/v62.0/sobjects/Contact/{contacts[0].id}"
        },
        "Id": contacts[0].id,
        "LastName": "Linked",
        "Account": {"attributes": {"type": "Account"}, "Name": "Parent Co"},
        "CreatedDate": millis,
    }
    assert page.json()[1]["Account"] is None
    # Jackson-style pretty printing, as recorded.
    assert page.text.startswith('[ {\n  "attributes" : {\n    "type" : "Contact",\n')
    assert "\n}, {\n" in page.text and page.text.endswith("\n} ]")


def test_xml_query_results(client: Client) -> None:
    ids = _seed_accounts(client, 2)
    job_id, batch_id = _query_batch(client, "SELECT Name FROM Account ORDER BY Name", "XML")
    assert client.wait(job_id, batch_id)["state"] == "Completed"
    listing = client.get(f"/job/{job_id}/batch/{batch_id}/result")
    (result_id,) = re.findall(r"<result>([^<]+)</result>", listing.text)
    page = client.get(f"/job/{job_id}/batch/{batch_id}/result/{result_id}")
    assert page.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(page.content)
    assert _local(root.tag) == "queryResult"
    records = [[(_local(c.tag), c.text) for c in record] for record in root]
    assert records == [
        [("type", "Account"), ("Id", None), ("Name", "Account 000")],
        [("type", "Account"), ("Id", None), ("Name", "Account 001")],
    ]
    assert len(ids) == 2


def test_query_errors_fail_the_batch(client: Client) -> None:
    job_id, batch_id = _query_batch(client, "SELECT Id, BadField FROM Account")
    info = client.wait(job_id, batch_id)
    assert info["state"] == "Failed"
    assert info["stateMessage"].startswith(
        "InvalidBatch : Failed to process query: INVALID_FIELD: "
    )
    other_job, other = _query_batch(client, "SELECT Id FROM Contact")
    info = client.wait(other_job, other)
    assert info["stateMessage"].startswith(
        "InvalidBatch : Failed to process query: INVALID_TYPE_FOR_OPERATION: "
    )


def test_pk_chunking_splits_the_query_by_id_ranges(client: Client) -> None:
    ids = _seed_accounts(client, 25)
    job_id, original = _query_batch(
        client, "SELECT Id, Name FROM Account WHERE Name != 'x'",
        **{"Sforce-Enable-PKChunking": "TRUE; chunkSize=10;"},
    )
    deadline = time.monotonic() + 20
    while True:
        batches = client.batches(job_id)
        if len(batches) == 4 and all(b["state"] in TERMINAL for b in batches):
            break
        assert time.monotonic() < deadline, batches
        time.sleep(0.05)
    assert batches[0]["id"] == original
    assert [b["state"] for b in batches] == ["NotProcessed"] + ["Completed"] * 3
    assert [b["numberRecordsProcessed"] for b in batches] == ["0", "10", "10", "5"]
    seen = []
    for batch in batches[1:]:
        for page in client.query_results(job_id, batch["id"]):
            seen.extend(line.split(",")[0].strip('"') for line in page.splitlines()[1:])
    assert seen == ids
    job = client.job(job_id)
    assert (job["numberBatchesTotal"], job["numberBatchesCompleted"],
            job["numberRecordsProcessed"]) == ("4", "3", "25")
    # The recorded PK chunking batch list has the same element layout.
    recorded = ET.fromstring((BULK1 / "doc_batchinfolist_pk_chunking.xml").read_bytes())
    assert [_local(c.tag) for c in recorded[0]] == list(batches[0])


def test_pk_chunking_edge_cases(client: Client) -> None:
    _seed_accounts(client, 3)
    too_big = client.post(
        "/job", json.dumps({"operation": "query", "object": "Account", "contentType": "CSV"}),
        "application/json", **{"Sforce-Enable-PKChunking": "chunkSize=250001"},
    )
    assert too_big.status_code == 400
    assert too_big.json()["exceptionCode"] == "InvalidJob"
    # ORDER BY effectively disables chunking: one ordinary batch.
    job_id, batch_id = _query_batch(client, "SELECT Id FROM Account ORDER BY Name",
                                    **{"Sforce-Enable-PKChunking": "true"})
    assert client.wait(job_id, batch_id)["state"] == "Completed"
    assert len(client.batches(job_id)) == 1
    unsupported, batch_id = _query_batch(client, "SELECT Id FROM Group", obj="Group",
                                         **{"Sforce-Enable-PKChunking": "true"})
    info = client.wait(unsupported, batch_id)
    assert (info["state"], info["stateMessage"]) == (
        "Failed", "InvalidBatch : PK chunking is not supported for entity: Group"
    )


# ----------------------------------------------------------------------------- pure helpers


def test_pk_chunking_header_parsing() -> None:
    assert parse_pk_chunking(None) is None
    assert parse_pk_chunking("FALSE") is None
    assert parse_pk_chunking("TRUE") == PkChunking(100_000, None, None)
    assert parse_pk_chunking("chunkSize=100000;") == PkChunking(100_000, None, None)
    assert parse_pk_chunking(" true; ChunkSize=50000; parent=Account ;") == PkChunking(
        50_000, "Account", None
    )
    assert parse_pk_chunking("chunkSize=50000; startRow=00130000000xEftMGH") == PkChunking(
        50_000, None, "00130000000xEftMGH"
    )
    with pytest.raises(Bulk1Error, match="chunkSize: 250001"):
        parse_pk_chunking("chunkSize=250001")
    with pytest.raises(Bulk1Error, match="option: size=3"):
        parse_pk_chunking("true; size=3")


def test_chunk_query_rewrites_the_where_clause() -> None:
    assert chunk_query("SELECT Id FROM Account", "Id", "001A", "001B") == (
        "SELECT Id FROM Account WHERE Id >= '001A' AND Id < '001B'"
    )
    assert chunk_query(
        "SELECT Id FROM Account WHERE Name = 'a (b) where' OR Type = 'x' LIMIT 5",
        "Id", "001A", None,
    ) == (
        "SELECT Id FROM Account WHERE Id >= '001A' AND (Name = 'a (b) where' OR Type = 'x') "
        "LIMIT 5"
    )
    assert chunking_defeated("SELECT Id FROM Account ORDER BY Name")
    assert chunking_defeated("SELECT Id FROM Contact WHERE AccountId = '001x'")
    assert not chunking_defeated("SELECT Id FROM Contact WHERE Name = 'Sid'")


@pytest.mark.parametrize(
    ("value", "text"),
    [(912260031.0, "9.12260031E8"), (1e7, "1.0E7"), (9999999.0, "9999999.0"), (0.001, "0.001"),
     (0.0001, "1.0E-4"), (-1.5e20, "-1.5E20"), (12.5, "12.5"), (0.0, "0.0"), (3.0, "3.0")],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


def test_split_csv_reports_malformed_rows_and_skips_blank_lines() -> None:
    assert split_csv('a,b\r\n"x, y",""\r\n\r\n"q""r",s\n') == [
        ["a", "b"], ["x, y", ""], ['q"r', "s"]
    ]
    records = split_csv('a,b\n"x" ,y\n"ok","ok"\n')
    assert isinstance(records[1], str) and records[2] == ["ok", "ok"]
