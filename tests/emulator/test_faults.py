"""Fault injection and the daily request allocation, over real HTTP and on the switches."""

from __future__ import annotations

import json
import socket
import time
from xml.etree import ElementTree

import pytest
import requests

from sfbulk.emulator.app import DAILY_API_REQUESTS, LimitExceeded, Usage
from sfbulk.emulator.faults import DEFAULT_BATCH_FAILURE, Faults, is_api_path, lock_error_message
from tests.conftest import emulator_token

BULK1_NS = "{http://www.force.com/2009/06/asyncapi/dataload}"


@pytest.fixture
def api(emulator):
    """(server, session with a bearer token, REST base URL)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {emulator_token(emulator)}"
    return emulator, session, f"{emulator.url}/services/data/v62.0"


def _set_faults(server, spec: dict) -> dict:
    response = requests.post(f"{server.url}/_emulator/faults", json=spec, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_http_500_for_the_next_n_matching_calls(api):
    server, session, base = api
    _set_faults(server, {"http_500": {"count": 2, "method": "GET", "path": "/sobjects$"}})
    assert session.get(f"{base}/limits").status_code == 200
    assert session.post(f"{base}/sobjects/Account", json={"Name": "x"}).status_code == 201
    for _ in range(2):
        response = session.get(f"{base}/sobjects")
        assert response.status_code == 500
        error = response.json()[0]
        assert error["errorCode"] == "UNKNOWN_EXCEPTION"
        assert list(error) == ["message", "errorCode"]
    assert session.get(f"{base}/sobjects").status_code == 200
    stats = requests.get(f"{server.url}/_emulator/stats", timeout=10).json()
    assert stats["faults_injected"] == {"http_500": 2}


def test_http_503_with_retry_after(api):
    server, session, base = api
    _set_faults(server, {"http_503": 1})
    response = session.get(f"{base}/limits")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert session.get(f"{base}/limits").status_code == 200


def test_faults_spare_oauth_and_admin_unless_targeted(api):
    server, session, base = api
    _set_faults(server, {"http_500": {"rate": 1.0}})
    assert requests.get(f"{server.url}/_emulator/faults", timeout=10).status_code == 200
    assert emulator_token(server)
    assert session.get(f"{base}/limits").status_code == 500
    assert session.get(f"{base}/limits").status_code == 500
    cleared = requests.delete(f"{server.url}/_emulator/faults", timeout=10).json()
    assert cleared["http_500"] == []
    assert session.get(f"{base}/limits").status_code == 200
    _set_faults(server, {"http_503": {"count": 1, "path": "^/services/oauth2/token$"}})
    with pytest.raises(requests.HTTPError):
        emulator_token(server)
    assert emulator_token(server)


def test_fault_rates_are_seeded(api):
    server, session, base = api

    def failures() -> list[int]:
        requests.delete(f"{server.url}/_emulator/faults", timeout=10)
        _set_faults(server, {"seed": 7, "http_500": {"rate": 0.5}})
        return [session.get(f"{base}/limits").status_code for _ in range(20)]

    first = failures()
    assert 0 < first.count(500) < 20
    assert failures() == first


def _raw_get(server, path: str, token: str) -> tuple[dict[str, str], bytes]:
    """GET over a bare socket and read until the server closes: (headers, body bytes)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    headers[":status"] = lines[0].split()[1]
    return headers, body


def test_dropped_connection_mid_body(api):
    server, session, base = api
    _set_faults(server, {"drop_connection": {"count": 1, "after_bytes": 100, "path": "/sobjects$"}})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(f"{base}/sobjects")
    _set_faults(server, {"drop_connection": {"count": 1, "after_bytes": 100, "path": "/sobjects$"}})
    token = session.headers["Authorization"].split()[1]
    headers, body = _raw_get(server, "/services/data/v62.0/sobjects", token)
    assert headers[":status"] == "200"
    assert len(body) == 100
    complete = session.get(f"{base}/sobjects")
    assert complete.status_code == 200
    assert int(headers["content-length"]) == len(complete.content)
    assert body == complete.content[:100]


def test_dropped_connection_on_a_short_body_keeps_a_byte_back(api):
    server, session, _ = api
    _set_faults(
        server, {"drop_connection": {"count": 1, "after_bytes": 10_000, "path": "/limits$"}}
    )
    token = session.headers["Authorization"].split()[1]
    headers, body = _raw_get(server, "/services/data/v62.0/limits", token)
    assert len(body) == int(headers["content-length"]) - 1


def test_request_limit_exceeded_fault(api):
    server, session, base = api
    _set_faults(server, {"request_limit_exceeded": 1})
    response = session.get(f"{base}/limits")
    assert response.status_code == 403
    assert response.content == (
        b'[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]'
    )
    assert session.get(f"{base}/limits").status_code == 200
    _set_faults(server, {"request_limit_exceeded": 1})
    bulk1 = requests.get(f"{server.url}/services/async/62.0/job/750000000000000AAA", timeout=10)
    assert bulk1.status_code == 400
    assert bulk1.headers["content-type"] == "application/xml"
    root = ElementTree.fromstring(bulk1.content)
    assert root.tag == f"{BULK1_NS}error"
    assert root.findtext(f"{BULK1_NS}exceptionCode") == "ExceededQuota"
    assert root.findtext(f"{BULK1_NS}exceptionMessage") == "TotalRequests Limit exceeded."


def test_daily_allocation_runs_out(emulator_factory):
    server = emulator_factory(api_daily_limit=3)
    token = emulator_token(server)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{server.url}/services/data/v62.0"
    seen = [
        requests.get(f"{base}/limits", headers=headers).headers["Sforce-Limit-Info"]
        for _ in range(3)
    ]
    assert seen == ["api-usage=1/3", "api-usage=2/3", "api-usage=3/3"]
    refused = requests.get(f"{base}/sobjects", headers=headers)
    assert refused.status_code == 403
    assert refused.json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    bulk1 = requests.post(
        f"{server.url}/services/async/62.0/job",
        data=json.dumps({"operation": "query", "object": "Account", "contentType": "CSV"}),
        headers={"X-SFDC-Session": token, "Content-Type": "application/json"},
    )
    assert (bulk1.status_code, bulk1.headers["content-type"]) == (400, "application/json")
    assert bulk1.json() == {
        "exceptionCode": "ExceededQuota",
        "exceptionMessage": "TotalRequests Limit exceeded.",
    }
    # Logging in is not an API call and still works.
    assert emulator_token(server)
    assert server.state.usage.used(DAILY_API_REQUESTS) == 3


def test_expire_sessions_after_n_calls(api):
    server, session, base = api
    _set_faults(server, {"expire_session_after": 2})
    assert session.get(f"{base}/limits").status_code == 200
    assert session.get(f"{base}/limits").status_code == 200
    expired = session.get(f"{base}/limits")
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    session.headers["Authorization"] = f"Bearer {emulator_token(server)}"
    assert [session.get(f"{base}/limits").status_code for _ in range(3)] == [200, 200, 200]


def test_expire_sessions_now(api):
    server, session, base = api
    response = requests.post(f"{server.url}/_emulator/expire-sessions", timeout=10)
    assert response.json() == {"expired": 1}
    assert session.get(f"{base}/limits").status_code == 401
    token = session.headers["Authorization"].split()[1]
    bulk1 = requests.get(
        f"{server.url}/services/async/62.0/job/750000000000000AAA",
        headers={"X-SFDC-Session": token},
        timeout=10,
    )
    assert bulk1.status_code == 400
    assert b"InvalidSessionId" in bulk1.content


def test_bad_fault_specs_are_refused(emulator):
    url = f"{emulator.url}/_emulator/faults"
    cases = [
        ({"http_501": 1}, "unknown fault switch: http_501"),
        ({"http_500": -1}, "http_500 must be a non-negative integer, not -1"),
        ({"http_500": {"rate": 2}}, "http_500.rate must be between 0 and 1"),
        ({"http_500": {"path": "("}}, "http_500.path is not a valid regular expression"),
        ({"http_500": {"count": 1, "colour": "red"}}, "unknown key in http_500: colour"),
        ({"lock_error_share": 1.5}, "lock_error_share must be between 0 and 1"),
        ({"never_finish": "yes"}, "never_finish must be true or false"),
        ([], "the fault specification must be a JSON object"),
    ]
    for spec, message in cases:
        response = requests.post(url, json=spec, timeout=10)
        assert response.status_code == 400, spec
        assert response.json()[0]["errorCode"] == "INVALID_FAULT"
        assert response.json()[0]["message"].startswith(message), response.text
    assert requests.post(url, data=b"{", timeout=10).status_code == 400
    snapshot = requests.get(url, timeout=10).json()
    assert snapshot == Faults().snapshot()


def test_job_switches_over_the_admin_endpoint(emulator):
    snapshot = _set_faults(
        emulator,
        {
            "fail_batches": {"count": 2, "message": "InvalidBatch : boom"},
            "processing_delay_seconds": 0.25,
            "lock_error_share": 1,
            "never_finish": True,
        },
    )
    assert snapshot["fail_batches"] == 2
    assert snapshot["fail_batch_message"] == "InvalidBatch : boom"
    faults = emulator.state.faults
    assert faults.processing_delay_seconds == 0.25
    assert faults.never_finish is True
    assert faults.lock_error_share == 1.0
    assert faults.roll_lock_error() is True
    assert [faults.take_batch_failure() for _ in range(3)] == [
        "InvalidBatch : boom",
        "InvalidBatch : boom",
        None,
    ]
    requests.delete(f"{emulator.url}/_emulator/faults", timeout=10)
    assert faults.never_finish is False
    assert faults.processing_delay_seconds == 0.0
    assert faults.roll_lock_error() is False


# --- the switches themselves ---------------------------------------------------------------


def test_fail_batches_default_message():
    faults = Faults()
    faults.configure({"fail_batches": 1})
    assert faults.take_batch_failure() == DEFAULT_BATCH_FAILURE
    assert faults.take_batch_failure() is None
    assert faults.injected["fail_batches"] == 1


def test_lock_error_share_is_seeded():
    def rolls(seed: int) -> list[bool]:
        faults = Faults(seed=seed)
        faults.configure({"lock_error_share": 0.3})
        return [faults.roll_lock_error() for _ in range(200)]

    first = rolls(3)
    assert rolls(3) == first
    assert 30 <= first.count(True) <= 90
    assert lock_error_message("0015g0000000001AAA") == (
        "unable to obtain exclusive access to this record or 1 records: 0015g0000000001AAA"
    )


def test_processing_delay_baseline_survives_clear():
    faults = Faults(processing_delay_seconds=0.5)
    faults.configure({"processing_delay_seconds": 2})
    assert faults.processing_delay_seconds == 2.0
    faults.clear()
    assert faults.processing_delay_seconds == 0.5


def test_rule_matching():
    faults = Faults()
    faults.configure({"http_500": {"count": 1, "method": "post"}})
    assert faults.request_fault("GET", "/services/data/v62.0/limits") is None
    assert faults.request_fault("POST", "/services/oauth2/token") is None
    rule = faults.request_fault("POST", "/services/async/62.0/job")
    assert rule is not None and rule.kind == "http_500"
    assert faults.request_fault("POST", "/services/async/62.0/job") is None
    assert faults.snapshot()["http_500"] == []
    assert is_api_path("/services/data/v62.0/jobs/query")
    assert not is_api_path("/services/data")
    assert not is_api_path("/services/Soap/u/62.0")


def test_usage_window_is_a_rolling_day():
    now = [1_000_000.0]
    usage = Usage({DAILY_API_REQUESTS: 5}, clock=lambda: now[0])
    assert usage.consume(DAILY_API_REQUESTS, 3) == 3
    now[0] += 12 * 3600
    assert usage.consume(DAILY_API_REQUESTS, 2) == 5
    with pytest.raises(LimitExceeded) as raised:
        usage.consume(DAILY_API_REQUESTS)
    assert (raised.value.limit, raised.value.maximum) == (DAILY_API_REQUESTS, 5)
    assert usage.remaining(DAILY_API_REQUESTS) == 0
    now[0] += 12 * 3600 + 3600
    assert usage.remaining(DAILY_API_REQUESTS) == 3
    now[0] += 13 * 3600
    assert usage.remaining(DAILY_API_REQUESTS) == 5
    usage.consume(DAILY_API_REQUESTS)
    usage.reset()
    assert usage.used(DAILY_API_REQUESTS) == 0


def test_dropped_connection_in_a_streamed_bulk_download(api):
    server, session, base = api
    server.state.org.write("Account", "insert", [{"Name": f"A{i:04d}"} for i in range(3000)])
    job = session.post(
        f"{base}/jobs/query", json={"operation": "query", "query": "SELECT Id, Name FROM Account"}
    ).json()
    for _ in range(200):
        info = session.get(f"{base}/jobs/query/{job['id']}").json()
        if info["state"] == "JobComplete":
            break
        time.sleep(0.05)
    assert info["state"] == "JobComplete"
    _set_faults(server, {"drop_connection": {"count": 1, "after_bytes": 5000, "path": "/results$"}})
    token = session.headers["Authorization"].split()[1]
    headers, body = _raw_get(server, f"/services/data/v62.0/jobs/query/{job['id']}/results", token)
    assert headers[":status"] == "200"
    complete = session.get(f"{base}/jobs/query/{job['id']}/results")
    assert complete.status_code == 200
    assert len(complete.text.splitlines()) == 3001
    if "content-length" in headers:
        payload = body
    else:
        payload = _dechunk(body)
    assert len(payload) == 5000
    assert payload == complete.content[:5000]


def _dechunk(data: bytes) -> bytes:
    """The payload of a chunked body that may stop anywhere."""
    out = b""
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        out += rest[:size]
        data = rest[size + 2 :]
    return out
