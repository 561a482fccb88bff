"""Bulk API 2.0 of the emulator: wire shapes against the recordings, every endpoint over HTTP."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from sfbulk.emulator.bulk2 import (
    Bulk2Job,
    decode_locator,
    dumps_pretty,
    echo_converter,
    encode_locator,
    format_error_cell,
    java_double,
    query_cell_converter,
)
from tests.conftest import emulator_token


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)


def _recorded(fixtures_dir: Path, name: str) -> tuple[str, dict]:
    text = (fixtures_dir / "salesforce" / "bulk2" / name).read_text()
    return text, json.loads(text)


def _job_like(recorded: dict, kind: str) -> Bulk2Job:
    """A job record holding exactly the values of a recorded body."""
    return Bulk2Job(
        id=recorded["id"],
        kind=kind,
        operation=recorded["operation"],
        object=recorded["object"],
        created_by_id=recorded["createdById"],
        api_version=f"{recorded['apiVersion']:.1f}",
        external_id_field=recorded.get("externalIdFieldName"),
        line_ending=recorded.get("lineEnding", "LF"),
        column_delimiter=recorded.get("columnDelimiter", "COMMA"),
        state=recorded["state"],
        created=_stamp(recorded["createdDate"]),
        modstamp=_stamp(recorded["systemModstamp"]),
        processed=recorded.get("numberRecordsProcessed", 0),
        failed=recorded.get("numberRecordsFailed", 0),
        retries=recorded.get("retries", 0),
        total_processing_ms=recorded.get("totalProcessingTime", 0),
        api_active_ms=recorded.get("apiActiveProcessingTime", 0),
        apex_ms=recorded.get("apexProcessingTime", 0),
        error_message=recorded.get("errorMessage"),
        pk_chunking_supported=recorded.get("isPkChunkingSupported", False),
    )


# ------------------------------------------------------------------------------------------
# Job bodies: byte-for-byte equal to the pretty-printed recordings


@pytest.mark.parametrize(
    ("name", "kind", "render"),
    [
        ("ingest_job_create_upsert_open.json", "ingest", "create_body"),
        ("ingest_job_patch_uploadcomplete.json", "ingest", "patch_body"),
        ("ingest_job_info_jobcomplete.json", "ingest", "info_body"),
        ("ingest_job_info_jobcomplete_partial_failure.json", "ingest", "info_body"),
        ("ingest_job_info_inprogress.json", "ingest", "info_body"),
        ("ingest_job_info_failed.json", "ingest", "info_body"),
        ("doc_ingest_uploadcomplete_response.json", "ingest", "patch_body"),
        ("doc_ingest_jobcomplete.json", "ingest", "info_body"),
        ("query_job_create_uploadcomplete.json", "query", "create_body"),
        ("doc_query_create_response.json", "query", "create_body"),
        ("doc_query_job_info_jobcomplete.json", "query", "info_body"),
        ("doc_query_abort_response.json", "query", "patch_body"),
    ],
)
def test_job_bodies_match_recordings(fixtures_dir: Path, name: str, kind: str, render: str) -> None:
    text, recorded = _recorded(fixtures_dir, name)
    job = _job_like(recorded, kind)
    assert dumps_pretty(getattr(job, render)()) + "\n" == text


def test_open_ingest_job_info_has_content_url_and_no_counters(fixtures_dir: Path) -> None:
    _, recorded = _recorded(fixtures_dir, "doc_ingest_job_info_open.json")
    job = _job_like(recorded, "ingest")
    body = job.info_body()
    assert list(body) == list(recorded)
    assert body == recorded


def test_compact_recording_has_the_same_field_order(fixtures_dir: Path) -> None:
    _, recorded = _recorded(fixtures_dir, "ingest_job_create_delete_open.json")
    assert _job_like(recorded, "ingest").create_body() == recorded
    assert list(_job_like(recorded, "ingest").create_body()) == list(recorded)


def test_list_record_field_set(fixtures_dir: Path) -> None:
    _, page = _recorded(fixtures_dir, "doc_query_all_jobs_page.json")
    for recorded in page["records"]:
        body = _job_like(recorded, "query").list_body()
        assert list(body) == list(recorded)
        assert body == recorded


# ------------------------------------------------------------------------------------------
# Value rendering


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (912260031.0, "9.12260031E8"),
        (2676.0, "2676.0"),
        (0.5, "0.5"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (16147805824397.0, "1.6147805824397E13"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (-1234.5, "-1234.5"),
        (-9.0e7, "-9.0E7"),
        (0.0, "0.0"),
        (123.456, "123.456"),
    ],
)
def test_java_double(value: float, expected: str) -> None:
    assert java_double(value) == expected


def test_locators_round_trip_and_match_salesforce_shape() -> None:
    assert encode_locator(10000) == "MTAwMDA"  # the documented example locator
    for row in (0, 1, 7, 49999, 10**9):
        assert decode_locator(encode_locator(row)) == row
    assert decode_locator("not a locator!") is None
    assert decode_locator("LTE") is None  # "-1"


def test_echo_converters() -> None:
    assert echo_converter("currency")("912260031") == "9.12260031E8"
    assert echo_converter("int")("2676") == "2676"
    assert echo_converter("boolean")("TRUE") == "true"
    assert echo_converter("boolean")("0") == "false"
    assert echo_converter("date")("1940-06-07Z") == "1940-06-07"
    assert echo_converter("datetime")("2024-01-02T03:04:05+02:00") == "2024-01-02T01:04:05.000Z"
    assert echo_converter("datetime")("2024-01-02T03:04:05.5Z") == "2024-01-02T03:04:05.500Z"
    assert echo_converter("string") is None
    assert echo_converter("double")("abc") == "abc"  # unparsable values come back as sent


def test_query_cells() -> None:
    assert query_cell_converter("boolean")(1) == "true"
    assert query_cell_converter("boolean")(0) == "false"
    assert query_cell_converter("boolean")(None) is None
    assert query_cell_converter("currency")(99213206) == "9.9213206E7"
    assert query_cell_converter("int") is None  # stored as INTEGER, printed as is
    assert query_cell_converter("string") is None


def test_error_cell_format() -> None:
    assert (
        format_error_cell(
            "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"]
        )
        == "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    )
    assert (
        format_error_cell("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ())
        == "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"
    )


# ------------------------------------------------------------------------------------------
# Over HTTP

V = "60.0"
JSON_TYPE = "application/json;charset=UTF-8"
CSV_TYPE = "text/csv; charset=UTF-8"


class Bulk2:
    """A bare HTTP client of the emulator's Bulk 2.0 API (no retries, no parsing help)."""

    def __init__(self, server, version: str = V, token: str | None = None) -> None:
        self.server = server
        self.version = version
        self.base = f"{server.url}/services/data/v{version}/jobs"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token or emulator_token(server)}"
        self.http.headers["Accept-Encoding"] = "identity"

    def at(self, version: str) -> Bulk2:
        other = Bulk2.__new__(Bulk2)
        other.server, other.version, other.http = self.server, version, self.http
        other.base = f"{self.server.url}/services/data/v{version}/jobs"
        return other

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, f"{self.base}/{path}", timeout=30, **kwargs)

    def create(self, kind: str, **body) -> requests.Response:
        return self.request("POST", kind, json=body)

    def put(self, job_id: str, data: str | bytes) -> requests.Response:
        payload = data.encode() if isinstance(data, str) else data
        return self.request(
            "PUT", f"ingest/{job_id}/batches", data=payload, headers={"Content-Type": "text/csv"}
        )

    def patch(self, kind: str, job_id: str, state: str) -> requests.Response:
        return self.request("PATCH", f"{kind}/{job_id}", json={"state": state})

    def info(self, kind: str, job_id: str) -> dict:
        response = self.request("GET", f"{kind}/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, kind: str, job_id: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(kind, job_id)
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            assert time.monotonic() < deadline, f"job {job_id} still {info['state']}"
            time.sleep(0.02)

    def ingest(self, operation: str, obj: str, csv_text: str, **options) -> dict:
        created = self.create("ingest", object=obj, operation=operation, **options)
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        assert self.put(job_id, csv_text).status_code == 201
        closed = self.patch("ingest", job_id, "UploadComplete")
        assert closed.status_code == 200, closed.text
        return self.wait("ingest", job_id)

    def results(self, job_id: str, which: str) -> str:
        response = self.request("GET", f"ingest/{job_id}/{which}/")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == CSV_TYPE
        return response.content.decode("utf-8")

    def query(self, soql: str, operation: str = "query", **options) -> dict:
        created = self.create("query", operation=operation, query=soql, **options)
        assert created.status_code == 200, created.text
        return self.wait("query", created.json()["id"])


def _error(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == JSON_TYPE
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    assert list(body[0]) == ["errorCode", "message"]
    return body[0]


def _keys(fixtures_dir: Path, name: str) -> list[str]:
    return list(_recorded(fixtures_dir, name)[1])


@pytest.fixture
def bulk(emulator) -> Bulk2:
    return Bulk2(emulator)


def _org_rows(server, soql: str) -> list[tuple]:
    return list(server.state.org.query(soql))


# -- authentication, routing -----------------------------------------------------------------


def test_invalid_token_gets_401_invalid_session_id(emulator) -> None:
    client = Bulk2(emulator, token="00Dx0000000BV7z!AQnot-a-session")
    response = client.request("GET", "ingest")
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_unknown_job_and_path_are_404(bulk: Bulk2, fixtures_dir: Path) -> None:
    _, recorded = _recorded(fixtures_dir, "doc_error_not_found.json")
    for path in ("ingest/7505g000000AAAAAAA", "query/7505g000000AAAAAAA", "ingest/x/batches"):
        assert [_error(bulk.request("GET", path), 404)] == recorded
    created = bulk.create("ingest", object="Account", operation="insert").json()
    # An ingest job is not a query job.
    assert [_error(bulk.request("GET", f"query/{created['id']}"), 404)] == recorded


def test_wrong_method_is_405(bulk: Bulk2) -> None:
    error = _error(bulk.request("PUT", "ingest"), 405)
    assert error == {
        "errorCode": "METHOD_NOT_ALLOWED",
        "message": "HTTP Method 'PUT' not allowed. Allowed are GET, POST",
    }


def test_ingest_needs_api_41(bulk: Bulk2) -> None:
    assert bulk.at("40.0").create("ingest", object="Account", operation="insert").status_code == 404
    assert bulk.at("46.0").create("query", query="SELECT Id FROM Account").status_code == 404


# -- ingest ----------------------------------------------------------------------------------


def test_ingest_create_put_close_complete(bulk: Bulk2, emulator, fixtures_dir: Path) -> None:
    created = bulk.create(
        "ingest", object="Account", operation="insert", contentType="CSV", lineEnding="LF"
    )
    assert created.status_code == 200
    assert created.headers["Content-Type"] == JSON_TYPE
    assert '\n  "id" : "750' in created.text  # pretty-printed like the recordings
    body = created.json()
    assert list(body) == _keys(fixtures_dir, "doc_ingest_create_response.json")
    job_id = body["id"]
    assert job_id.startswith("750") and len(job_id) == 18
    assert body["state"] == "Open"
    assert body["apiVersion"] == 60.0
    assert body["contentUrl"] == f"services/data/v60.0/jobs/ingest/{job_id}/batches"
    assert body["createdById"] == emulator.state.org.user_id

    info = bulk.info("ingest", job_id)
    assert list(info) == _keys(fixtures_dir, "doc_ingest_job_info_open.json")

    csv_text = (
        "Name,NumberOfEmployees,AnnualRevenue,Website\n"
        "Lorem Ipsum,2676,912260031,https://ft.com/lacus/at.jsp\n"
        '"Posuere, Inc",141603,896852810.5,"say ""hi"""\n'
    )
    put = bulk.put(job_id, csv_text)
    assert put.status_code == 201
    assert put.content == b""

    closed = bulk.patch("ingest", job_id, "UploadComplete")
    assert closed.status_code == 200
    assert list(closed.json()) == _keys(fixtures_dir, "doc_ingest_uploadcomplete_response.json")
    assert closed.json()["state"] == "UploadComplete"

    info = bulk.wait("ingest", job_id)
    assert list(info) == _keys(fixtures_dir, "doc_ingest_jobcomplete.json")
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Ingest"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 0)

    rows = _org_rows(emulator, "SELECT Id, Name, NumberOfEmployees, Website FROM Account")
    assert sorted(r[1:] for r in rows) == [
        ("Lorem Ipsum", 2676, "https://ft.com/lacus/at.jsp"),
        ("Posuere, Inc", 141603, 'say "hi"'),
    ]
    ids = {r[1]: r[0] for r in rows}
    assert bulk.results(job_id, "successfulResults") == (
        '"sf__Id","sf__Created",Name,NumberOfEmployees,AnnualRevenue,Website\n'
        f'"{ids["Lorem Ipsum"]}","true","Lorem Ipsum","2676","9.12260031E8",'
        '"https://ft.com/lacus/at.jsp"\n'
        f'"{ids["Posuere, Inc"]}","true","Posuere, Inc","141603","8.968528105E8",'
        '"say ""hi"""\n'
    )
    assert bulk.results(job_id, "failedResults") == (
        '"sf__Id","sf__Error",Name,NumberOfEmployees,AnnualRevenue,Website\n'
    )
    assert bulk.results(job_id, "unprocessedrecords") == (
        "Name,NumberOfEmployees,AnnualRevenue,Website\n"
    )


def test_results_paths_accept_any_case_and_no_trailing_slash(bulk: Bulk2) -> None:
    info = bulk.ingest("insert", "Account", "Name\nA\n")
    for path in ("successfulResults", "unprocessedRecords", "failedresults/"):
        response = bulk.request("GET", f"ingest/{info['id']}/{path}")
        assert response.status_code == 200, path


def test_results_are_gzipped_when_asked(bulk: Bulk2) -> None:
    info = bulk.ingest("insert", "Account", "Name\nA\nB\n")
    response = bulk.http.get(
        f"{bulk.base}/ingest/{info['id']}/successfulResults/",
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(response.raw.read()).decode()
    assert text.startswith('"sf__Id","sf__Created",Name\n"001')
    assert text.count("\n") == 3


def test_failed_rows_and_partial_failure(bulk: Bulk2, emulator) -> None:
    csv_text = (
        "Name,NumberOfEmployees\n"
        "Good,1\n"
        "Bad,not-a-number\n"
        ",5\n"
        "Short\n"
    )
    info = bulk.ingest("insert", "Account", csv_text)
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 3)
    failed = bulk.results(info["id"], "failedResults").splitlines()
    assert failed[0] == '"sf__Id","sf__Error",Name,NumberOfEmployees'
    assert len(failed) == 4
    bad = next(line for line in failed if '"Bad"' in line)
    assert bad.startswith('"","')
    assert bad.endswith(' --","Bad","not-a-number"') or bad.endswith(':--","Bad","not-a-number"')
    missing = next(line for line in failed if line.endswith('"","5"'))
    assert missing.startswith('"","REQUIRED_FIELD_MISSING:')
    short = next(line for line in failed if line.endswith('"Short"'))
    assert short == '"","INVALID_FIELD:Row has 1 columns but the header has 2:--","Short"'
    successful = bulk.results(info["id"], "successfulResults").splitlines()
    assert len(successful) == 2 and successful[1].endswith('"true","Good","1"')
    assert [r[0] for r in _org_rows(emulator, "SELECT Name FROM Account")] == ["Good"]


def test_bad_header_fails_the_job(bulk: Bulk2, fixtures_dir: Path) -> None:
    upload = (fixtures_dir / "salesforce/bulk2/ingest_upload_complete_failure_input.csv")
    upload = upload.read_text()
    created = bulk.create(
        "ingest", object="Opportunity", operation="insert", contentType="CSV"
    ).json()
    assert bulk.put(created["id"], upload).status_code == 201
    assert bulk.patch("ingest", created["id"], "UploadComplete").status_code == 200
    info = bulk.wait("ingest", created["id"])
    _, recorded = _recorded(fixtures_dir, "ingest_job_info_failed.json")
    assert info["state"] == "Failed"
    assert info["errorMessage"] == recorded["errorMessage"]
    assert list(info) == [k for k in recorded if k != "externalIdFieldName"]
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (0, 0)
    unprocessed = bulk.results(created["id"], "unprocessedrecords")
    lines = upload.splitlines()
    assert unprocessed.splitlines()[0] == lines[0]
    assert unprocessed.splitlines()[1] == (
        '"Carli Gusikowski","GENERATED","external-id-1","2003-04-05"'
    )
    assert len(unprocessed.splitlines()) == len(lines)


def test_second_put_makes_upload_complete_fail(bulk: Bulk2) -> None:
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    assert bulk.put(job_id, "Name\nA\n").status_code == 201
    assert bulk.put(job_id, "Name\nB\n").status_code == 201
    error = _error(bulk.patch("ingest", job_id, "UploadComplete"), 400)
    assert error == {
        "errorCode": "INVALIDJOB",
        "message": f"Found multipe contents for job: <{job_id[:15]}>, please 'Close' / 'Abort' / "
        "'Delete' the current Job then create a new Job and make sure you only do 'PUT' once "
        "on a given Job.",
    }
    assert bulk.patch("ingest", job_id, "Aborted").json()["state"] == "Aborted"


def test_state_machine_errors(bulk: Bulk2, fixtures_dir: Path) -> None:
    info = bulk.ingest("insert", "Account", "Name\nA\n")
    job_id = info["id"]
    assert _error(bulk.patch("ingest", job_id, "UploadComplete"), 400)["errorCode"] == (
        "INVALIDJOBSTATE"
    )
    _, recorded = _recorded(fixtures_dir, "doc_error_abort_completed_job.json")
    assert [_error(bulk.patch("ingest", job_id, "Aborted"), 400)] == recorded
    assert _error(bulk.put(job_id, "Name\nB\n"), 400)["errorCode"] == "INVALIDJOBSTATE"
    assert _error(bulk.patch("ingest", job_id, "Closed"), 400)["errorCode"] == "INVALIDJOBSTATE"


def test_abort_open_job_keeps_upload_as_unprocessed(bulk: Bulk2, fixtures_dir: Path) -> None:
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    assert bulk.put(job_id, "Name,Website\nA,x\nB,y\n").status_code == 201
    aborted = bulk.patch("ingest", job_id, "Aborted")
    assert aborted.status_code == 200
    assert list(aborted.json()) == _keys(fixtures_dir, "doc_ingest_uploadcomplete_response.json")
    assert aborted.json()["state"] == "Aborted"
    assert bulk.results(job_id, "unprocessedrecords") == 'Name,Website\n"A","x"\n"B","y"\n'
    assert bulk.results(job_id, "successfulResults") == '"sf__Id","sf__Created",Name,Website\n'


def test_delete_only_terminal_jobs(bulk: Bulk2, fixtures_dir: Path) -> None:
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    _, recorded = _recorded(fixtures_dir, "doc_error_delete_not_terminated.json")
    assert [_error(bulk.request("DELETE", f"ingest/{job_id}"), 400)] == recorded
    assert bulk.patch("ingest", job_id, "Aborted").status_code == 200
    deleted = bulk.request("DELETE", f"ingest/{job_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert _error(bulk.request("GET", f"ingest/{job_id}"), 404)["errorCode"] == "NOT_FOUND"


def test_create_validation(bulk: Bulk2) -> None:
    assert _error(bulk.create("ingest", object="Nope__c", operation="insert"), 400) == {
        "errorCode": "INVALIDENTITY",
        "message": "Unable to find object: Nope__c",
    }
    assert _error(bulk.create("ingest", object="Account", operation="upsert"), 400) == {
        "errorCode": "INVALIDJOB",
        "message": "External ID was blank for Account. An External ID must be specified for "
        "upsert.",
    }
    error = _error(
        bulk.create("ingest", object="Account", operation="upsert", externalIdFieldName="Name"),
        400,
    )
    assert error["message"] == (
        "Field name provided, Name does not match an External ID, Salesforce Id, or indexed "
        "field for Account"
    )
    assert _error(bulk.create("ingest", object="Account", operation="merge"), 400)[
        "errorCode"
    ] == "API_ERROR"
    bad = bulk.create("ingest", object="Account", operation="insert", columnDelimiter="COLON")
    assert _error(bad, 400)["message"].startswith("Invalid value for columnDelimiter: COLON")
    malformed = bulk.request(
        "POST", "ingest", data=b'{"object" : "Account", "operation" ', headers={
            "Content-Type": "application/json"}
    )
    assert _error(malformed, 400) == {
        "errorCode": "API_ERROR",
        "message": "Value does not match expected type at [line:1, column:36]",
    }


def test_upsert_update_and_null_semantics(bulk: Bulk2, emulator) -> None:
    first = bulk.ingest(
        "insert", "Account", "Name,Website,Phone\nA,a.example,111\nB,b.example,222\n"
    )
    assert first["numberRecordsFailed"] == 0
    ids = dict(_org_rows(emulator, "SELECT Name, Id FROM Account"))
    # Empty cell: unchanged. #N/A: set to null.
    update = bulk.ingest(
        "update", "Account", f"Id,Website,Phone\n{ids['A']},,#N/A\n{ids['B']},new.example,\n"
    )
    assert update["numberRecordsFailed"] == 0
    assert sorted(_org_rows(emulator, "SELECT Name, Website, Phone FROM Account")) == [
        ("A", "a.example", None),
        ("B", "new.example", "222"),
    ]
    upsert = bulk.ingest(
        "upsert", "Account", f"Id,Name\n{ids['A']},A2\n,C\n", externalIdFieldName="Id"
    )
    assert upsert["numberRecordsFailed"] == 0, bulk.results(upsert["id"], "failedResults")
    lines = bulk.results(upsert["id"], "successfulResults").splitlines()
    assert lines[0] == '"sf__Id","sf__Created",Id,Name'
    assert lines[1] == f'"{ids["A"]}","false","{ids["A"]}","A2"'
    assert lines[2].endswith('"true","","C"')
    assert sorted(r[0] for r in _org_rows(emulator, "SELECT Name FROM Account")) == [
        "A2", "B", "C"
    ]


def test_delete_and_hard_delete(bulk: Bulk2, emulator) -> None:
    bulk.ingest("insert", "Account", "Name\nA\nB\nC\n")
    ids = dict(_org_rows(emulator, "SELECT Name, Id FROM Account"))
    deleted = bulk.ingest("delete", "Account", f"Id\n{ids['A']}\n")
    assert (deleted["numberRecordsProcessed"], deleted["numberRecordsFailed"]) == (1, 0)
    hard = bulk.ingest("hardDelete", "Account", f"Id\n{ids['B']}\n")
    assert hard["numberRecordsFailed"] == 0
    assert [r[0] for r in _org_rows(emulator, "SELECT Name FROM Account")] == ["C"]
    assert emulator.state.org.count("Account", include_deleted=True) == 2


def test_delimiter_and_line_ending_are_honoured(bulk: Bulk2) -> None:
    info = bulk.ingest(
        "insert",
        "Account",
        "Name;Website\r\nA;x\r\n\"B;C\";y\r\n",
        columnDelimiter="SEMICOLON",
        lineEnding="CRLF",
    )
    assert info["numberRecordsProcessed"] == 2 and info["numberRecordsFailed"] == 0
    text = bulk.results(info["id"], "successfulResults")
    lines = text.split("\r\n")
    assert lines[0] == '"sf__Id";"sf__Created";Name;Website'
    assert lines[1].endswith('"true";"A";"x"')
    assert lines[2].endswith('"true";"B;C";"y"')
    assert lines[3] == ""


def test_multipart_create_is_upload_complete(bulk: Bulk2, emulator) -> None:
    job = json.dumps({"object": "Contact", "contentType": "CSV", "operation": "insert"})
    response = bulk.http.post(
        f"{bulk.base}/ingest",
        files={
            "job": (None, job, "application/json"),
            "content": ("content", "FirstName,LastName\nMark,Brown\n", "text/csv"),
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "UploadComplete" and "contentUrl" not in body
    info = bulk.wait("ingest", body["id"])
    assert info["numberRecordsProcessed"] == 1 and info["numberRecordsFailed"] == 0
    assert _org_rows(emulator, "SELECT FirstName, LastName FROM Contact") == [("Mark", "Brown")]
    too_big = bulk.http.post(
        f"{bulk.base}/ingest",
        files={
            "job": (None, job, "application/json"),
            "content": ("content", "LastName\n" + "x" * 100_000 + "\n", "text/csv"),
        },
        timeout=10,
    )
    assert _error(too_big, 400)["errorCode"] == "INVALIDJOB"


def test_upload_size_limit(bulk: Bulk2, monkeypatch) -> None:
    from sfbulk.emulator import bulk2

    monkeypatch.setattr(bulk2, "MAX_UPLOAD_BASE64_BYTES", 400)  # 300 raw bytes
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    assert _error(bulk.put(job_id, "Name\n" + "x" * 400 + "\n"), 400)["errorCode"] == (
        "EXCEEDED_QUOTA"
    )

    def chunks():
        yield b"Name\n"
        yield b"y" * 400 + b"\n"

    streamed = bulk.request(
        "PUT", f"ingest/{job_id}/batches", data=chunks(), headers={"Content-Type": "text/csv"}
    )
    assert _error(streamed, 400)["errorCode"] == "EXCEEDED_QUOTA"
    assert bulk.put(job_id, "Name\n" + "z" * 200 + "\n").status_code == 201
    assert bulk.patch("ingest", job_id, "UploadComplete").status_code == 200


def test_record_and_header_limits(bulk: Bulk2) -> None:
    info = bulk.ingest("insert", "Account", "Name,Description\nA," + "d" * 131_073 + "\nB,ok\n")
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 1)
    failed = bulk.results(info["id"], "failedResults").splitlines()[1]
    assert failed.startswith(
        '"","LIMIT_EXCEEDED:Field value exceeds the maximum of 131072 characters:Description --"'
    )
    header = ",".join(["Name"] + [f"Col{i}__c" for i in range(3_200)])
    too_wide = bulk.ingest("insert", "Account", header + "\n")
    assert too_wide["state"] == "Failed"
    assert too_wide["errorMessage"] == (
        "InvalidBatch : The header row exceeds the maximum of 32000 characters"
    )


def test_sub_batches_of_10000_consume_batch_allocation(bulk: Bulk2, emulator) -> None:
    usage = emulator.state.usage
    before = usage.used("DailyBulkApiBatches")
    rows = "".join(f"N{i}\n" for i in range(20_001))
    info = bulk.ingest("insert", "Account", "Name\n" + rows)
    assert info["numberRecordsProcessed"] == 20_001 and info["numberRecordsFailed"] == 0
    assert usage.used("DailyBulkApiBatches") - before == 3
    assert emulator.state.org.count("Account") == 20_001


def test_listing_pages_both_kinds(bulk: Bulk2, emulator, fixtures_dir: Path) -> None:
    ingest_ids = [
        bulk.create("ingest", object="Account", operation="insert").json()["id"] for _ in range(3)
    ]
    query_id = bulk.create("query", operation="query", query="SELECT Id FROM Account").json()["id"]
    emulator.state.settings.job_list_page_size = 2
    first = bulk.request("GET", "ingest").json()
    assert list(first) == ["done", "records", "nextRecordsUrl"]
    assert first["done"] is False
    assert [r["id"] for r in first["records"]] == ingest_ids[:2]
    _, recorded_page = _recorded(fixtures_dir, "doc_query_all_jobs_page.json")
    assert list(first["records"][0]) == list(recorded_page["records"][0])
    next_url = first["nextRecordsUrl"]
    assert next_url.startswith("/services/data/v60.0/jobs/ingest?queryLocator=01g")
    second = bulk.http.get(emulator.url + next_url, timeout=10).json()
    assert second["done"] is True and second["nextRecordsUrl"] is None
    assert [r["id"] for r in second["records"]] == ingest_ids[2:]
    queries = bulk.request("GET", "query").json()
    assert [r["id"] for r in queries["records"]] == [query_id]
    assert queries["records"][0]["jobType"] == "V2Query"
    none = bulk.request("GET", "ingest", params={"jobType": "Classic"}).json()
    assert none == {"done": True, "records": [], "nextRecordsUrl": None}


# -- query -----------------------------------------------------------------------------------


def _seed_accounts(server, count: int) -> list[str]:
    rows = [
        {"Name": f"Acct {i:03d}", "NumberOfEmployees": str(i), "AnnualRevenue": str(i * 1e7)}
        for i in range(count)
    ]
    results = server.state.org.write("Account", "insert", rows)
    assert all(r.success for r in results)
    return [r.id for r in results]


def test_query_job_lifecycle_and_pages(bulk: Bulk2, emulator, fixtures_dir: Path) -> None:
    ids = _seed_accounts(emulator, 5)
    created = bulk.create(
        "query",
        operation="query",
        query="SELECT Id, Name, NumberOfEmployees, AnnualRevenue, IsDeleted FROM Account "
        "ORDER BY Name",
        contentType="CSV",
    )
    assert created.status_code == 200
    assert created.headers["Content-Type"] == JSON_TYPE
    body = created.json()
    assert list(body) == _keys(fixtures_dir, "query_job_create_uploadcomplete.json")
    assert (body["state"], body["object"], body["operation"]) == (
        "UploadComplete", "Account", "query",
    )
    info = bulk.wait("query", body["id"])
    assert list(info) == _keys(fixtures_dir, "doc_query_job_info_jobcomplete.json")
    assert (info["state"], info["jobType"], info["numberRecordsProcessed"]) == (
        "JobComplete", "V2Query", 5,
    )
    assert info["isPkChunkingSupported"] is True

    header = '"Id","Name","NumberOfEmployees","AnnualRevenue","IsDeleted"\n'
    expected = [
        f'"{ids[i]}","Acct {i:03d}","{i}","{java_double(i * 1e7)}","false"\n' for i in range(5)
    ]
    pages, locator, seen_locators = [], None, []
    while True:
        params = {"maxRecords": 2}
        if locator:
            params["locator"] = locator
        page = bulk.request("GET", f"query/{body['id']}/results", params=params)
        assert page.status_code == 200
        assert page.headers["Content-Type"] == CSV_TYPE
        locator = page.headers["Sforce-Locator"]
        seen_locators.append(locator)
        pages.append((int(page.headers["Sforce-NumberOfRecords"]), page.text))
        if locator == "null":
            break
    assert [n for n, _ in pages] == [2, 2, 1]
    assert [text for _, text in pages] == [
        header + "".join(expected[0:2]),
        header + "".join(expected[2:4]),
        header + expected[4],
    ]
    assert seen_locators == [encode_locator(2), encode_locator(4), "null"]
    # A locator can be read again as long as the job exists.
    again = bulk.request(
        "GET", f"query/{body['id']}/results", params={"locator": seen_locators[0], "maxRecords": 2}
    )
    assert again.text == pages[1][1]
    # Without maxRecords the configured page size applies (100,000 rows by default).
    whole = bulk.request("GET", f"query/{body['id']}/results")
    assert whole.headers["Sforce-NumberOfRecords"] == "5"
    assert whole.headers["Sforce-Locator"] == "null"
    assert whole.text == header + "".join(expected)


def test_query_default_page_size_is_configurable(emulator_factory) -> None:
    server = emulator_factory(bulk2_page_rows=3)
    client = Bulk2(server)
    _seed_accounts(server, 4)
    info = client.query("SELECT Id FROM Account")
    first = client.request("GET", f"query/{info['id']}/results")
    assert first.headers["Sforce-NumberOfRecords"] == "3"
    assert first.headers["Sforce-Locator"] == encode_locator(3)


def test_query_delimiter_line_ending_gzip_and_nulls(bulk: Bulk2, emulator) -> None:
    emulator.state.org.write(
        "Account", "insert", [{"Name": 'Caret^"Quote"', "Website": None}, {"Name": "Plain"}]
    )
    info = bulk.query(
        "SELECT Name, Website FROM Account ORDER BY Name",
        columnDelimiter="CARET",
        lineEnding="CRLF",
    )
    assert (info["lineEnding"], info["columnDelimiter"]) == ("CRLF", "CARET")
    response = bulk.http.get(
        f"{bulk.base}/query/{info['id']}/results",
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Sforce-NumberOfRecords"] == "2"
    text = gzip.decompress(response.raw.read()).decode()
    assert text == '"Name"^"Website"\r\n"Caret^""Quote"""^""\r\n"Plain"^""\r\n'


def test_query_all_includes_deleted_rows(bulk: Bulk2, emulator) -> None:
    ids = _seed_accounts(emulator, 3)
    assert emulator.state.org.write("Account", "delete", [{"Id": ids[0]}])[0].success
    assert bulk.query("SELECT Id FROM Account")["numberRecordsProcessed"] == 2
    every = bulk.query("SELECT Id, IsDeleted FROM Account ORDER BY Id", operation="queryAll")
    assert every["operation"] == "queryAll" and every["numberRecordsProcessed"] == 3
    text = bulk.request("GET", f"query/{every['id']}/results").text
    assert text.splitlines()[1] == f'"{ids[0]}","true"'


def test_query_with_no_rows_has_an_empty_body(bulk: Bulk2) -> None:
    info = bulk.query("SELECT Id FROM Account")
    response = bulk.request("GET", f"query/{info['id']}/results")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Sforce-NumberOfRecords"] == "0"
    assert response.headers["Sforce-Locator"] == "null"


def test_query_validation_is_synchronous(bulk: Bulk2) -> None:
    def create(soql: str) -> dict:
        return _error(bulk.create("query", operation="query", query=soql), 400)

    assert create("SELECT Id FROM CaseStatus") == {
        "errorCode": "INVALIDENTITY",
        "message": "CaseStatus is not supported by the Bulk API",
    }
    assert create("SELECT BillingAddress FROM Account") == {
        "errorCode": "FUNCTIONALITY_NOT_ENABLED",
        "message": "Selecting compound data not supported in Bulk Query",
    }
    assert create("SELECT Nope FROM Account")["errorCode"] == "INVALID_FIELD"
    assert create("SELECT Id FROM Account GROUP BY Id")["message"] == (
        "GROUP BY not supported in Bulk Query"
    )
    assert create("SELEKT Id FROM Account")["errorCode"] == "MALFORMED_QUERY"
    assert _error(bulk.create("query", query="SELECT Id FROM Account"), 400)["errorCode"] == (
        "API_ERROR"
    )
    malformed = bulk.request(
        "POST", "query", data=b'{"operation": "query", "query": 42 x}',
        headers={"Content-Type": "application/json"},
    )
    assert _error(malformed, 400) == {
        "errorCode": "API_ERROR",
        "message": "Value does not match expected type at [line:1, column:36]",
    }
    assert bulk.request("GET", "query").json()["records"] == []


def test_query_results_rules(bulk: Bulk2, emulator) -> None:
    _seed_accounts(emulator, 3)
    emulator.state.faults.configure({"never_finish": True})
    job_id = bulk.create("query", operation="query", query="SELECT Id FROM Account").json()["id"]
    early = _error(bulk.request("GET", f"query/{job_id}/results"), 400)
    assert early["errorCode"] == "INVALIDJOBSTATE"
    aborted = bulk.patch("query", job_id, "Aborted")
    assert aborted.status_code == 200 and aborted.json()["state"] == "Aborted"
    emulator.state.faults.clear()

    info = bulk.query("SELECT Id FROM Account")
    mismatch = _error(bulk.at("59.0").request("GET", f"query/{info['id']}/results"), 409)
    assert mismatch["errorCode"] == "API_VERSION_MISMATCH"
    bad = bulk.request("GET", f"query/{info['id']}/results", params={"locator": "%%%"})
    assert _error(bad, 400)["errorCode"] == "INVALIDLOCATOR"
    bad = bulk.request("GET", f"query/{info['id']}/results", params={"maxRecords": "0"})
    assert _error(bad, 400)["errorCode"] == "API_ERROR"


def test_query_abort_and_delete(bulk: Bulk2, emulator, fixtures_dir: Path) -> None:
    emulator.state.faults.configure({"never_finish": True})
    job_id = bulk.create("query", operation="query", query="SELECT Id FROM Account").json()["id"]
    deadline = time.monotonic() + 5
    while bulk.info("query", job_id)["state"] != "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _, recorded = _recorded(fixtures_dir, "doc_error_delete_not_terminated.json")
    assert [_error(bulk.request("DELETE", f"query/{job_id}"), 400)] == recorded
    aborted = bulk.patch("query", job_id, "Aborted")
    assert list(aborted.json()) == _keys(fixtures_dir, "doc_query_abort_response.json")
    assert bulk.info("query", job_id)["state"] == "Aborted"
    emulator.state.faults.clear()

    info = bulk.query("SELECT Id FROM Account")
    _, recorded = _recorded(fixtures_dir, "doc_error_abort_completed_job.json")
    assert [_error(bulk.patch("query", info["id"], "Aborted"), 400)] == recorded
    assert _error(bulk.patch("query", info["id"], "UploadComplete"), 400)["errorCode"] == (
        "INVALIDJOBSTATE"
    )
    assert bulk.request("DELETE", f"query/{info['id']}").status_code == 204
    assert _error(bulk.request("GET", f"query/{info['id']}/results"), 404)["errorCode"] == (
        "NOT_FOUND"
    )


def test_result_pages(bulk: Bulk2, emulator, fixtures_dir: Path) -> None:
    _seed_accounts(emulator, 7)
    emulator.state.settings.bulk2_page_rows = 1
    info = bulk.query("SELECT Name FROM Account ORDER BY Name")
    response = bulk.request("GET", f"query/{info['id']}/resultPages")
    assert response.status_code == 200
    body = response.json()
    _, recorded = _recorded(fixtures_dir, "doc_query_resultPages.json")
    assert list(body) == list(recorded)
    base = f"/services/data/v60.0/jobs/query/{info['id']}"
    assert body["resultPages"] == [
        {"resultUrl": f"{base}/results?locator={encode_locator(i)}"} for i in range(5)
    ]
    assert body["done"] is False
    assert body["nextRecordsUrl"] == f"{base}/resultpages?locator={encode_locator(5)}"
    rest = bulk.http.get(emulator.url + body["nextRecordsUrl"], timeout=10).json()
    assert rest["done"] is True and rest["nextRecordsUrl"] is None
    assert len(rest["resultPages"]) == 2
    texts = [
        bulk.http.get(emulator.url + p["resultUrl"], timeout=10).text
        for p in body["resultPages"] + rest["resultPages"]
    ]
    assert texts == [f'"Name"\n"Acct {i:03d}"\n' for i in range(7)]
    old = bulk.at("57.0").request("GET", f"query/{info['id']}/resultPages")
    assert _error(old, 404)["errorCode"] == "NOT_FOUND"


def test_query_jobs_consume_the_daily_allocation(emulator_factory) -> None:
    server = emulator_factory(bulk2_query_jobs_daily_limit=2)
    client = Bulk2(server)
    for _ in range(2):
        assert client.create("query", operation="query", query="SELECT Id FROM Account").ok
    assert server.state.usage.used("DailyBulkV2QueryJobs") == 2
    refused = client.create("query", operation="query", query="SELECT Id FROM Account")
    assert _error(refused, 400)["errorCode"] == "LIMIT_EXCEEDED"


# -- faults ----------------------------------------------------------------------------------


def test_failed_job_fault(bulk: Bulk2, emulator) -> None:
    emulator.state.faults.configure(
        {"fail_batches": {"count": 2, "message": "InternalServerError : boom"}}
    )
    ingest = bulk.ingest("insert", "Account", "Name\nA\nB\n")
    assert (ingest["state"], ingest["errorMessage"]) == ("Failed", "InternalServerError : boom")
    assert ingest["numberRecordsProcessed"] == 0
    assert bulk.results(ingest["id"], "unprocessedrecords") == 'Name\n"A"\n"B"\n'
    query = bulk.query("SELECT Id FROM Account")
    assert (query["state"], query["errorMessage"]) == ("Failed", "InternalServerError : boom")
    assert list(query)[-1] == "errorMessage"
    assert bulk.query("SELECT Id FROM Account")["state"] == "JobComplete"


def test_never_finishing_ingest_can_be_aborted(bulk: Bulk2, emulator) -> None:
    emulator.state.faults.configure({"never_finish": True})
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    bulk.put(job_id, "Name\nA\nB\n")
    bulk.patch("ingest", job_id, "UploadComplete")
    deadline = time.monotonic() + 5
    while bulk.info("ingest", job_id)["state"] != "InProgress":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.1)
    assert bulk.info("ingest", job_id)["state"] == "InProgress"
    assert bulk.patch("ingest", job_id, "Aborted").json()["state"] == "Aborted"
    emulator.state.jobs.pool.wait_idle(job_id, timeout=5)
    assert bulk.results(job_id, "unprocessedrecords") == 'Name\n"A"\n"B"\n'
    assert emulator.state.org.count("Account") == 0


def test_processing_delay_shows_in_progress(bulk: Bulk2, emulator) -> None:
    emulator.state.faults.configure({"processing_delay_seconds": 0.3})
    job_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    bulk.put(job_id, "Name\nA\n")
    bulk.patch("ingest", job_id, "UploadComplete")
    time.sleep(0.1)
    assert bulk.info("ingest", job_id)["state"] == "InProgress"
    assert bulk.wait("ingest", job_id)["state"] == "JobComplete"


def test_lock_errors_need_parallel_work_on_a_shared_parent(bulk: Bulk2, emulator) -> None:
    """Rows writing no parent never fail to lock (tests/emulator/test_ingest.py shows rows of
    sub-batches sharing a parent failing, unsaved)."""
    emulator.state.faults.configure({"lock_error_share": 1.0})
    info = bulk.ingest("insert", "Account", "Name\nA\nB\n")
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 0)
    assert emulator.state.org.count("Account") == 2


def test_java_double_against_a_reference_implementation() -> None:
    """The fast string rewrite agrees with a digit-by-digit rendering over many magnitudes."""
    from decimal import Decimal

    def reference(value: float) -> str:
        sign, digits, exponent = Decimal(repr(value)).as_tuple()
        text = "".join(map(str, digits)).rstrip("0") or "0"
        exponent += len(digits) - len(text)
        point = len(text) - 1 + exponent
        prefix = "-" if sign else ""
        if 1e-3 <= abs(value) < 1e7:
            if point >= 0:
                whole = text[: point + 1].ljust(point + 1, "0")
                return f"{prefix}{whole}.{text[point + 1:] or '0'}"
            return f"{prefix}0.{'0' * (-point - 1)}{text}"
        return f"{prefix}{text[0]}.{text[1:] or '0'}E{point}"

    values = [
        m * 10.0**e for e in range(-12, 22) for m in (1, 1.5, 9.87654321, 3.0001, 7.25)
    ] + [123456789.125, 0.00012345, 0.000999, 1e-5, 12345678901234567890.0]
    for value in values:
        for signed in (value, -value):
            assert java_double(signed) == reference(signed), signed


def test_listing_includes_bulk1_jobs_as_classic(bulk: Bulk2, emulator) -> None:
    token = bulk.http.headers["Authorization"].split()[1]
    created = requests.post(
        f"{emulator.url}/services/async/60.0/job",
        json={"operation": "insert", "object": "Contact", "contentType": "CSV"},
        headers={"X-SFDC-Session": token},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    classic_id = created.json()["id"]
    v2_id = bulk.create("ingest", object="Account", operation="insert").json()["id"]
    listing = bulk.request("GET", "ingest").json()
    assert [r["id"] for r in listing["records"]] == [classic_id, v2_id]
    classic = listing["records"][0]
    assert list(classic) == [
        "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
        "concurrencyMode", "contentType", "apiVersion", "jobType", "lineEnding",
        "columnDelimiter",
    ]
    assert (classic["jobType"], classic["state"], classic["object"], classic["apiVersion"]) == (
        "Classic", "Open", "Contact", 60.0,
    )
    only = bulk.request("GET", "ingest", params={"jobType": "V2Ingest"}).json()["records"]
    assert [r["id"] for r in only] == [v2_id]
    assert bulk.request("GET", "query").json()["records"] == []


def test_relationship_columns_pass_through(bulk: Bulk2, emulator) -> None:
    from sfbulk.emulator.seeds import ensure_demo_fields

    ensure_demo_fields(emulator.state.org)
    parent = bulk.ingest("insert", "Account", "Name,External_Id__c\nParent,P-1\n")
    assert parent["numberRecordsFailed"] == 0
    child = bulk.ingest(
        "insert", "Contact", "LastName,Account.External_Id__c\nKid,P-1\nOrphan,P-404\n"
    )
    assert (child["numberRecordsProcessed"], child["numberRecordsFailed"]) == (2, 1)
    successful = bulk.results(child["id"], "successfulResults").splitlines()
    assert successful[0] == '"sf__Id","sf__Created",LastName,Account.External_Id__c'
    assert successful[1].endswith('"true","Kid","P-1"')
    failed = bulk.results(child["id"], "failedResults").splitlines()
    assert failed[1].endswith('"Orphan","P-404"')
    account_id = _org_rows(emulator, "SELECT Id FROM Account")[0][0]
    assert _org_rows(emulator, "SELECT LastName, AccountId FROM Contact") == [("Kid", account_id)]


def test_unreadable_multipart_is_a_json_error(bulk: Bulk2) -> None:
    response = bulk.request(
        "POST",
        "ingest",
        data=b"--B\r\nContent-Disposition: form-data; name=\"job\"\r\n\r\n{}\r\n--B",
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    )
    error = _error(response, 400)
    assert error["errorCode"] == "INVALIDJOB"
