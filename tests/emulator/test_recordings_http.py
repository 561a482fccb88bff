"""Recorded Salesforce responses that no other test reads, replayed against the emulator.

For each recording in ``../shared/fixtures/salesforce/`` the emulator is driven over real HTTP
through the request that produced it (per ``PROVENANCE.md`` and ``SALESFORCE-API.md``), and its
answer must have the recording's shape: the same XML tag tree or JSON key paths in the same
order, the same JSON value kinds where they matter, the same CSV header and quoting, and the same
``Content-Type``. Values such as ids and dates may differ. Where the recording legitimately
differs (sampled, another API version, an object the emulator does not model) the difference is
spelled out and asserted, not skipped.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests

from tests.conftest import FIXTURES
from tests.emulator.test_fidelity_audit import Client

SF = FIXTURES / "salesforce"


def _recorded(name: str) -> Any:
    """A recorded JSON body, by its path under fixtures/salesforce."""
    return json.loads((SF / name).read_text())


def _json_body(response: requests.Response) -> Any:
    """The body of a 200 answer with the REST API's JSON content type."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == JSON_REST
    return response.json()
NS = "http://www.force.com/2009/06/asyncapi/dataload"
JSON_REST = "application/json;charset=UTF-8"


@pytest.fixture(autouse=True)
def _need_fixtures(fixtures_dir):
    return fixtures_dir


# ---------------------------------------------------------------------------------------------
# Shapes


def xml_shape(body: bytes | str) -> list[tuple[int, str]]:
    """The ordered tag tree of an XML document: (depth, {namespace}tag) in document order."""
    root = ET.fromstring(body.encode() if isinstance(body, str) else body)
    out: list[tuple[int, str]] = []

    def walk(element: ET.Element, depth: int) -> None:
        out.append((depth, element.tag))
        for child in element:
            walk(child, depth + 1)

    walk(root, 0)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def json_paths(doc: Any, prefix: str = "") -> list[str]:
    """Ordered key paths of a JSON value; list elements are merged under ``[]`` (first
    appearance order), so lists of different lengths with the same element shape compare equal."""
    out: list[str] = []

    def add(path: str) -> None:
        if path not in seen:
            seen.add(path)
            out.append(path)

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                add(f"{path}.{key}" if path else key)
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for child in value:
                walk(child, f"{path}[]")

    seen: set[str] = set()
    walk(doc, prefix)
    return out


def json_kinds(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, kind) of a flat JSON object, in order: numbers must stay numbers, nulls nulls."""
    return [(key, _kind(value)) for key, value in doc.items()]


def csv_quoting(line: str) -> list[bool]:
    """Which cells of one CSV line (no embedded commas or newlines) are quoted."""
    return [cell.startswith('"') and cell.endswith('"') for cell in line.split(",")]


def test_shape_helpers_can_tell_shapes_apart():
    assert xml_shape("<a><b/><c/></a>") != xml_shape("<a><c/><b/></a>")
    assert xml_shape("<a><b/></a>") != xml_shape("<a><b/><b/></a>")
    assert json_paths({"a": 1, "b": [{"c": 1}, {"c": 2, "d": 3}]}) == ["a", "b", "b[].c", "b[].d"]
    assert json_paths({"a": 1, "b": 2}) != json_paths({"b": 2, "a": 1})
    assert json_kinds({"v": 1.0, "s": None}) != json_kinds({"v": "1.0", "s": None})
    assert csv_quoting('"a",b,""') == [True, False, True]


# ---------------------------------------------------------------------------------------------
# A raw client


class Raw(Client):
    """Raw requests against one emulator (the fidelity audit's client: Bulk 1.0 with
    ``X-SFDC-Session``, REST with Bearer), and the waits these tests need."""

    def wait_batch(self, job: str, batch: str, json_job: bool = False) -> str:
        deadline = time.monotonic() + 20
        while True:
            response = self.bulk1("GET", f"job/{job}/batch/{batch}")
            assert response.status_code == 200, response.text
            if json_job:
                state = response.json()["state"]
            else:
                state = ET.fromstring(response.content).findtext(f"{{{NS}}}state")
            if state in ("Completed", "Failed", "NotProcessed"):
                return str(state)
            assert time.monotonic() < deadline, state
            time.sleep(0.02)

    def completed_result(self, job: str, body: str,
                         content_type: str) -> tuple[str, requests.Response]:
        """Add a batch to an XML job, wait until it is Completed and GET its result (a 200):
        the batch id and the answer."""
        response = self.bulk1("POST", f"job/{job}/batch", body, content_type)
        assert response.status_code == 201, response.text
        batch = _xml_text(response.content, "id")
        assert self.wait_batch(job, batch) == "Completed"
        response = self.bulk1("GET", f"job/{job}/batch/{batch}/result")
        assert response.status_code == 200, response.text
        return batch, response

    def wait_ingest2(self, job: str, version: str = "60.0") -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while True:
            info = self.rest("GET", f"jobs/ingest/{job}", version).json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            assert time.monotonic() < deadline, info
            time.sleep(0.02)


def _xml_text(body: bytes, tag: str) -> str:
    value = ET.fromstring(body).findtext(f"{{{NS}}}{tag}")
    assert value is not None, body
    return value


def _xml_job(raw: Raw, operation: str, obj: str, content_type: str) -> str:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}"><operation>{operation}'
        f"</operation><object>{obj}</object><contentType>{content_type}</contentType></jobInfo>"
    )
    response = raw.bulk1("POST", "job", body, "application/xml")
    assert response.status_code == 201, response.text
    return _xml_text(response.content, "id")


# ---------------------------------------------------------------------------------------------
# Bulk 1.0 jobInfo: close and abort (doc, XML and JSON jobs)


def _xml_insert_job_with_one_completed_batch(raw: Raw) -> str:
    """The doc quick start: an XML insert job on Account with one batch of two accounts."""
    job = _xml_job(raw, "insert", "Account", "XML")
    batch_body = (SF / "bulk1/doc_batch_request_sobjects.xml").read_bytes()
    response = raw.bulk1("POST", f"job/{job}/batch", batch_body, "application/xml")
    assert response.status_code == 201, response.text
    assert raw.wait_batch(job, _xml_text(response.content, "id")) == "Completed"
    return job


@pytest.mark.parametrize(
    ("recording", "state"),
    [("doc_jobinfo_close_response.xml", "Closed"), ("doc_jobinfo_abort_response.xml", "Aborted")],
)
def test_bulk1_close_and_abort_xml_jobinfo(emulator, recording: str, state: str):
    raw = Raw(emulator)
    job = _xml_insert_job_with_one_completed_batch(raw)
    close = (SF / "bulk1/doc_jobinfo_close_request.xml").read_text()
    assert "<state>Closed</state>" in close
    response = raw.bulk1("POST", f"job/{job}", close.replace("Closed", state), "application/xml")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/xml"
    recorded = (SF / "bulk1" / recording).read_bytes()
    assert xml_shape(response.content) == xml_shape(recorded)
    # An insert job has neither externalIdFieldName nor assignmentRuleId, like the recording.
    for tag in ("operation", "object", "state", "concurrencyMode", "contentType",
                "numberBatchesCompleted", "numberBatchesTotal", "numberRecordsProcessed",
                "numberRecordsFailed", "numberBatchesFailed"):  # fmt: skip
        assert _xml_text(response.content, tag) == _xml_text(recorded, tag), tag
    assert _xml_text(response.content, "id") == job
    # The real-response layout: declaration and root on one line, xmlns on the next.
    layout = f'<?xml version="1.0" encoding="UTF-8"?><jobInfo\n   xmlns="{NS}">'
    assert response.text.startswith(layout)


def test_bulk1_close_json_jobinfo(emulator):
    raw = Raw(emulator)
    response = raw.bulk1("POST", "job", json.dumps(
        {"operation": "insert", "object": "Account", "contentType": "JSON"}
    ), "application/json")  # fmt: skip
    assert response.status_code == 201, response.text
    job = response.json()["id"]
    # The doc's job: ten batches, a hundred accounts.
    batches = []
    for b in range(10):
        rows = [{"Name": f"Doc account {b}-{n}"} for n in range(10)]
        response = raw.bulk1("POST", f"job/{job}/batch", json.dumps(rows), "application/json")
        assert response.status_code == 201, response.text
        batches.append(response.json()["id"])
    for batch in batches:
        assert raw.wait_batch(job, batch, json_job=True) == "Completed"
    response = raw.bulk1("POST", f"job/{job}", json.dumps({"state": "Closed"}), "application/json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    recorded = _recorded("bulk1/doc_jobinfo_close_response.json")
    body = response.json()
    # Keys alphabetical, apiVersion a number, no externalIdFieldName for an insert.
    assert json_kinds(body) == json_kinds(recorded)
    for key in ("operation", "object", "state", "contentType", "concurrencyMode",
                "numberBatchesCompleted", "numberBatchesTotal", "numberRecordsProcessed",
                "numberRecordsFailed"):  # fmt: skip
        assert body[key] == recorded[key], key
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", body["createdDate"])


# ---------------------------------------------------------------------------------------------
# Bulk 1.0 query: batch create (JSON job), result lists (XML and JSON)


def test_bulk1_json_query_batch_create_and_result_list(emulator):
    raw = Raw(emulator)
    created = raw.rest("POST", "sobjects/Task", json={"Subject": "Call"})
    assert created.status_code == 201, created.text
    # The recorded job (CumulusCI v62) queried Event; the emulator does not model Event, so the
    # same XML request body is sent for Task, the other activity object. Neither the batchInfo
    # nor the result list depends on the object.
    request = (SF / "bulk1/jobinfo_create_request_query_json.xml").read_text()
    assert "<object>Event</object>" in request
    assert raw.bulk1("POST", "job", request, "application/xml").status_code == 400
    response = raw.bulk1("POST", "job", request.replace("Event", "Task"), "application/xml")
    assert response.status_code == 201, response.text
    # An XML create body gets an XML jobInfo even for a JSON job (SALESFORCE-API.md 2.3).
    assert response.headers["Content-Type"] == "application/xml"
    job = _xml_text(response.content, "id")

    response = raw.bulk1("POST", f"job/{job}/batch", "SELECT Id, Subject FROM Task",
                         "application/json")  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    recorded = _recorded("bulk1/batchinfo_create_response_query_json.json")
    # Alphabetical keys with an explicit "stateMessage": null, numbers as numbers.
    assert json_kinds(body) == json_kinds(recorded)
    assert (body["state"], body["stateMessage"], body["jobId"]) == ("Queued", None, job)
    assert response.headers["Location"] == f"/services/async/62.0/job/{job}/batch/{body['id']}"

    assert raw.wait_batch(job, body["id"], json_job=True) == "Completed"
    response = raw.bulk1("GET", f"job/{job}/batch/{body['id']}/result")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    recorded_list = _recorded("bulk1/query_result_list_json.json")
    result_list = response.json()
    assert [_kind(v) for v in result_list] == [_kind(v) for v in recorded_list] == ["string"]
    assert re.fullmatch(r"752[0-9A-Za-z]{12}", result_list[0])
    assert len(result_list[0]) == len(recorded_list[0]) == 15
    rows = raw.bulk1("GET", f"job/{job}/batch/{body['id']}/result/{result_list[0]}").json()
    assert [r["Subject"] for r in rows] == ["Call"]


def test_bulk1_csv_query_result_list_xml(emulator_factory):
    server = emulator_factory(seed="demo", records=5)
    raw = Raw(server)
    job = _xml_job(raw, "query", "Account", "CSV")
    batch, response = raw.completed_result(job, "SELECT Id, Name FROM Account", "text/csv")
    assert response.headers["Content-Type"] == "application/xml"
    recorded = (SF / "bulk1/doc_query_result_list.xml").read_text()
    assert xml_shape(response.content) == xml_shape(recorded)
    # Byte for byte the doc's layout, with only the result id different.
    (result_id,) = re.findall(r"<result>([^<]+)</result>", response.text)
    (doc_id,) = re.findall(r"<result>([^<]+)</result>", recorded)
    assert re.fullmatch(r"752[0-9A-Za-z]{12}", result_id) and len(doc_id) == 15
    assert response.text.replace(result_id, doc_id).rstrip("\n") == recorded.rstrip("\n")
    rows = raw.bulk1("GET", f"job/{job}/batch/{batch}/result/{result_id}").text.splitlines()
    assert rows[0] == '"Id","Name"' and len(rows) == 1 + server.state.org.count("Account")


# ---------------------------------------------------------------------------------------------
# Bulk 1.0 ingest result CSV


def test_bulk1_upsert_result_all_created_csv(emulator):
    raw = Raw(emulator)
    recorded = (SF / "bulk1/batch_result_upsert_all_created.csv").read_text()
    recorded_lines = recorded.splitlines()
    assert len(recorded_lines) == 1 + 16 and recorded.endswith("\n")
    job = raw.bulk1("POST", "job", json.dumps({
        "operation": "upsert", "object": "Contact", "contentType": "CSV",
        "externalIdFieldName": "External_Id__c",
    }), "application/json").json()["id"]  # fmt: skip
    csv = "LastName,External_Id__c\n" + "".join(f"Last {n},ext-{n}\n" for n in range(16))
    _, response = raw.completed_result(job, csv, "text/csv")
    assert response.headers["Content-Type"] == "text/csv"
    assert response.text.endswith("\n")  # the trailing LF after the last row, as recorded
    lines = response.text.splitlines()
    assert lines[0] == recorded_lines[0] == '"Id","Success","Created","Error"'
    assert len(lines) == len(recorded_lines)
    row = re.compile(r'"003[0-9A-Za-z]{15}","true","true",""')
    assert all(row.fullmatch(line) for line in recorded_lines[1:])
    assert all(row.fullmatch(line) for line in lines[1:]), lines
    ids = [line.split(",")[0].strip('"') for line in lines[1:]]
    stored = raw.rest("GET", "query", params={
        "q": "SELECT Id, External_Id__c FROM Contact ORDER BY External_Id__c"
    }).json()["records"]  # fmt: skip
    assert sorted(ids) == sorted(r["Id"] for r in stored) and len(set(ids)) == 16


# ---------------------------------------------------------------------------------------------
# Bulk 2.0


def test_bulk2_query_all_job_create_v57(emulator):
    raw = Raw(emulator)
    response = raw.rest("POST", "jobs/query", "57.0", json={
        "operation": "queryAll", "query": "SELECT Id FROM Account"
    })  # fmt: skip
    _json_body(response)
    recorded = _recorded("bulk2/query_job_create_queryAll_uploadcomplete.json")
    body = response.json()
    assert json_kinds(body) == json_kinds(recorded)
    # The recording queried ActiveFeatureLicenseMetric, an object the emulator does not model.
    assert recorded["object"] == "ActiveFeatureLicenseMetric" and body["object"] == "Account"
    for key in ("operation", "state", "concurrencyMode", "contentType", "apiVersion",
                "lineEnding", "columnDelimiter"):  # fmt: skip
        assert body[key] == recorded[key], key


def test_bulk2_doc_query_create_request_options(emulator):
    raw = Raw(emulator)
    request = _recorded("bulk2/doc_query_create_request.json")
    response = raw.rest("POST", "jobs/query", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    recorded = _recorded("bulk2/doc_query_create_response.json")
    assert json_kinds(body) == json_kinds(recorded)
    assert (body["columnDelimiter"], body["lineEnding"]) == ("CARET", "CRLF")


def test_bulk2_doc_ingest_create_request(emulator):
    raw = Raw(emulator)
    request = _recorded("bulk2/doc_ingest_create_request.json")
    response = raw.rest("POST", "jobs/ingest", json=request)
    _json_body(response)
    recorded = _recorded("bulk2/doc_ingest_create_response.json")
    assert [k for k in response.json()] == [k for k in recorded]


def test_bulk2_failed_results_partial_failure(emulator):
    raw = Raw(emulator)
    # The amp-labs job: upsert Opportunity on external_id__c (ingest_job_create_upsert_open.json).
    create = _recorded("bulk2/ingest_job_create_upsert_open.json")
    response = raw.rest("POST", "jobs/ingest", "60.0", json={
        "object": create["object"], "operation": create["operation"],
        "externalIdFieldName": create["externalIdFieldName"], "contentType": "CSV",
        "lineEnding": "LF",
    })  # fmt: skip
    assert response.status_code == 200, response.text
    job = response.json()["id"]
    upload = (SF / "bulk2/ingest_upload_partial_failure_input.csv").read_bytes()
    response = raw.rest("PUT", f"jobs/ingest/{job}/batches", "60.0", data=upload,
                        headers={"Content-Type": "text/csv"})  # fmt: skip
    assert response.status_code == 201, response.text
    response = raw.rest("PATCH", f"jobs/ingest/{job}", "60.0", json={"state": "UploadComplete"})
    assert response.status_code == 200, response.text
    info = raw.wait_ingest2(job)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        8,
        1,
    )
    response = raw.rest("GET", f"jobs/ingest/{job}/failedResults", "60.0")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv; charset=UTF-8"
    recorded = (SF / "bulk2/ingest_failedResults_partial_failure.csv").read_text()
    # Same header (sf__ quoted, uploaded names as sent), same failed row, same error text. The
    # recording is a test author's file saved without a final newline; the emulator ends every
    # row with the job's lineEnding (LF), so that one byte is the only difference.
    assert not recorded.endswith("\n")
    assert response.text == recorded + "\n"
    lines = response.text.splitlines()
    assert [csv_quoting(line) for line in lines[:1]] == [[True, True, False, False, False, False]]
    stored = raw.rest("GET", "query", "60.0", params={
        "q": "SELECT External_Id__c FROM Opportunity ORDER BY External_Id__c"
    }).json()["records"]  # fmt: skip
    assert [r["External_Id__c"] for r in stored] == [
        f"external-id-{n}" for n in (1, 2, 4, 5, 6, 7, 8)
    ]


# ---------------------------------------------------------------------------------------------
# REST describes


def test_describe_account_v53(emulator):
    raw = Raw(emulator)
    body = _json_body(raw.rest("GET", "sobjects/Account/describe", "53.0"))
    recorded = _recorded("describe/Account_v53.json")
    # Top level: the same 45 keys in the same (alphabetical) order, kinds included except for
    # values an org may leave null (recorded associate*/extended*/default*: null).
    assert list(body) == list(recorded)
    # Every field object has the same 57 keys in the same order.
    assert {tuple(f) for f in recorded["fields"]} == {tuple(f) for f in body["fields"]}
    assert len(next(iter({tuple(f) for f in body["fields"]}))) == 57
    # urls: the same keys in the same order, v53 paths.
    assert list(body["urls"]) == list(recorded["urls"])
    assert body["urls"]["describe"] == "/services/data/v53.0/sobjects/Account/describe"
    # Nested lists: element keys where both have elements.
    for key in ("childRelationships", "recordTypeInfos", "supportedScopes", "namedLayoutInfos",
                "actionOverrides"):  # fmt: skip
        mine = [p for p in json_paths(body[key])]
        theirs = [p for p in json_paths(recorded[key])]
        if body[key] and recorded[key]:
            assert mine == theirs, key
        assert isinstance(body[key], list), key
    assert body["childRelationships"] and body["recordTypeInfos"] and body["supportedScopes"]
    # Standard fields the emulator models are real Account fields of the same type; the
    # recorded org has Data.com (Clean, D&B company data) switched off, so it lacks those six.
    recorded_types = {f["name"]: f["type"] for f in recorded["fields"]}
    standard = [f for f in body["fields"] if not f["custom"]]
    common = [f for f in standard if f["name"] in recorded_types]
    assert {f["name"] for f in standard} - recorded_types.keys() == {
        "CleanStatus",
        "DunsNumber",
        "Tradestyle",
        "NaicsCode",
        "NaicsDesc",
        "YearStarted",
    }
    assert len(common) > 40
    for field in common:
        assert recorded_types[field["name"]] == field["type"], field["name"]


def test_composite_describe_account_sampled(emulator):
    raw = Raw(emulator)
    recorded = _recorded("rest/composite_describe_account_sampled.json")
    (entry,) = recorded["compositeResponse"]
    assert list(entry) == ["body", "httpHeaders", "httpStatusCode", "referenceId"]
    sampled = entry["body"]
    # The emulator serves the composite flavour the spec requires (composite/batch, 4.3), whose
    # wrapper is results[].result instead of compositeResponse[].body.
    response = raw.rest("POST", "composite/batch", json={"batchRequests": [
        {"method": "GET", "url": "v62.0/sobjects/Account/describe"}
    ]})  # fmt: skip
    _json_body(response)
    batch = response.json()
    assert json_paths(batch)[:4] == ["hasErrors", "results", "results[].statusCode",
                                     "results[].result"]  # fmt: skip
    (result,) = batch["results"]
    assert result["statusCode"] == entry["httpStatusCode"] == 200
    body = result["result"]
    assert list(body) == list(sampled)
    # The test author sampled the body: four fields kept, every other list emptied and urls
    # replaced by an empty list. Those are compared by presence only; kept fields exactly.
    assert [f["name"] for f in sampled["fields"]] == ["Name", "PhotoUrl", "CreatedById",
                                                      "CreatedDate"]  # fmt: skip
    assert sampled["urls"] == [] and isinstance(body["urls"], dict) and body["urls"]
    for key, value in sampled.items():
        if key in ("fields", "urls"):
            continue
        if isinstance(value, list):
            assert value == [] and isinstance(body[key], list), key
        else:
            assert _kind(body[key]) == _kind(value) or value is None or body[key] is None, key
    by_name = {f["name"]: f for f in body["fields"]}
    for field in sampled["fields"]:
        mine = by_name[field["name"]]
        assert list(mine) == list(field), field["name"]
        for key in ("type", "soapType", "nillable", "createable", "updateable", "nameField",
                    "referenceTo", "relationshipName", "length", "extraTypeInfo"):  # fmt: skip
            assert mine[key] == field[key], (field["name"], key)


def test_describe_global_v44_entries(emulator):
    raw = Raw(emulator)
    body = _json_body(raw.rest("GET", "sobjects", "44.0"))
    recorded = _recorded("describe_global/amaxa_sobjects_subset.json")
    assert list(body) == list(recorded) == ["encoding", "maxBatchSize", "sobjects"]
    assert (body["encoding"], body["maxBatchSize"]) == (recorded["encoding"],
                                                         recorded["maxBatchSize"])  # fmt: skip
    mine = {e["name"]: e for e in body["sobjects"]}
    # The recording is v44 (amaxa, re-serialized with sorted keys); the emulator serves the
    # entry shape of current versions at every version (SALESFORCE-API.md 4.3), which added
    # these four keys. Otherwise the same keys in the same order.
    added = {"associateEntityType", "associateParentEntity", "deepCloneable", "isInterface"}
    for entry in recorded["sobjects"]:
        emulated = mine[entry["name"]]
        assert [k for k in emulated if k not in added] == list(entry), entry["name"]
        assert set(emulated) >= added
        assert entry["keyPrefix"] == emulated["keyPrefix"], entry["name"]
        # urls: v44 also lists defaultValues. Real orgs list only the links an object has
        # (Task has no list views or approval layouts, Attachment no layouts); the emulator
        # gives every object the full set, so the recorded keys are an ordered subsequence.
        recorded_urls = [k for k in entry["urls"] if k != "defaultValues"]
        emulated_urls = list(emulated["urls"])
        assert [k for k in emulated_urls if k in recorded_urls] == recorded_urls, entry["name"]
        if entry["name"] in ("Account", "Contact", "Opportunity"):
            assert emulated_urls == recorded_urls, entry["name"]
        assert emulated["urls"]["sobject"] == f"/services/data/v44.0/sobjects/{entry['name']}"
