"""Bulk API 2.0 of the emulator: wire shapes against the recordings, every endpoint over HTTP."""

from __future__ import annotations

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
    assert query_cell_converter("int")(5.0) == "5"
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
