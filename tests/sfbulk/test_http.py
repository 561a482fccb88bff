"""SalesforceClient: per-request session headers, one re-login, bounded retries, error mapping,
restartable downloads, usage tracking and the open-job registry.

A small scripted HTTP server on loopback stands in for Salesforce so every rule is checked over a
real socket (dropped connections included); the recorded fixtures check the error mapping.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sfbulk.auth import SalesforceAuth
from sfbulk.errors import (
    ApiLimitError,
    AuthenticationError,
    RetryExhaustedError,
    SalesforceError,
)
from sfbulk.http import (
    OpenJobs,
    SalesforceClient,
    error_from_response,
    growing_intervals,
    is_loopback_host,
    parse_error_body,
    url_allowed,
)
from tests.conftest import FIXTURES

SF = FIXTURES / "salesforce"


# --------------------------------------------------------------------------------------------
# A scripted stand-in for Salesforce


@dataclass
class Req:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Reply:
    """What the stub answers; ``drop_after`` sends only that many body bytes, then closes."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None


Handler = Callable[[Req], Reply]


class StubServer:
    """A threaded loopback HTTP/1.1 server answering from routes ``(method, path regex) -> fn``."""

    def __init__(self) -> None:
        self.requests: list[Req] = []
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.lock = threading.Lock()
        stub = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Req(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with stub.lock:
                    stub.requests.append(req)
                reply = stub.dispatch(req)
                data = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if reply.drop_after is not None:
                    self.wfile.write(data[: reply.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method: str, pattern: str, handler: Handler | Reply | list[Reply]) -> None:
        """Answer ``method pattern`` with a function, a fixed reply, or replies in turn."""
        if isinstance(handler, Reply):
            fixed = handler
            fn: Handler = lambda req: fixed  # noqa: E731
        elif isinstance(handler, list):
            queue = list(handler)

            def fn(req: Req) -> Reply:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        else:
            fn = handler
        self.routes.insert(0, (method, re.compile(pattern), fn))

    def dispatch(self, req: Req) -> Reply:
        for method, pattern, fn in self.routes:
            if method == req.method and pattern.fullmatch(req.path):
                return fn(req)
        return Reply(404, '[{"errorCode":"NOT_FOUND","message":"no stub route"}]')

    def hits(self, method: str, pattern: str) -> list[Req]:
        rx = re.compile(pattern)
        return [r for r in self.requests if r.method == method and rx.fullmatch(r.path)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TokenIssuer:
    """Token endpoint handler issuing ``tok-1``, ``tok-2`` …; ``valid`` holds the live token."""

    def __init__(self, stub: StubServer, *, delay: float = 0.0) -> None:
        self.stub = stub
        self.count = 0
        self.delay = delay
        self.valid: str | None = None
        self.lock = threading.Lock()

    def __call__(self, req: Req) -> Reply:
        time.sleep(self.delay)
        with self.lock:
            self.count += 1
            self.valid = f"tok-{self.count}"
        body = {
            "access_token": self.valid,
            "instance_url": self.stub.url,
            "id": f"{self.stub.url}/id/00D000000000001AAA/005000000000001AAA",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
        }
        return Reply(200, json.dumps(body), {"Content-Type": "application/json"})

    def token_of(self, req: Req) -> str | None:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        return req.headers.get("x-sfdc-session")


INVALID_SESSION_REST = Reply(
    401,
    '[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]',
    {"Content-Type": "application/json"},
)
INVALID_SESSION_BULK1 = Reply(
    400,
    '<?xml version="1.0" encoding="UTF-8"?><error\n   xmlns="http://www.force.com/2009/06/'
    'asyncapi/dataload">\n <exceptionCode>InvalidSessionId</exceptionCode>\n <exceptionMessage>'
    "Invalid session id</exceptionMessage>\n</error>",
    {"Content-Type": "application/xml"},
)

SECRETS = {
    "client_secret": "cs-SECRET-9f8e7d",
    "password": "pw-SECRET-1234",
    "security_token": "st-SECRET-abcd",
}


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def issuer(stub: StubServer) -> TokenIssuer:
    issuer = TokenIssuer(stub)
    stub.route("POST", "/services/oauth2/token", issuer)
    return issuer


def make_client(stub: StubServer, **kwargs: object) -> SalesforceClient:
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "cid", "username": "u@example.com", **SECRETS}
    )
    options: dict[str, object] = {
        "max_retries": 3,
        "max_retry_seconds": 5.0,
        "backoff_factor": 0.001,
        "backoff_max": 0.01,
        "timeout": (2.0, 5.0),
    }
    options.update(kwargs)
    return SalesforceClient(auth, "62.0", **options)  # type: ignore[arg-type]


def guarded(issuer: TokenIssuer, reply: Reply) -> Handler:
    """A handler answering ``reply`` only for the live token, else a refused session."""

    def handle(req: Req) -> Reply:
        if issuer.token_of(req) != issuer.valid:
            return INVALID_SESSION_BULK1 if "/async/" in req.path else INVALID_SESSION_REST
        return reply

    return handle


# --------------------------------------------------------------------------------------------
# Headers and URLs


def test_session_header_per_kind_and_paths(stub: StubServer, issuer: TokenIssuer) -> None:
    ok = Reply(200, "{}", {"Content-Type": "application/json"})
    stub.route("GET", "/services/data/v62.0/limits", ok)
    stub.route("GET", "/services/async/62.0/job/750000000000001AAA", ok)
    stub.route("GET", "/services/data/v62.0/jobs/query/750000000000001AAA", ok)
    client = make_client(stub)
    client.rest("GET", "/limits")
    client.bulk1("GET", "/job/750000000000001AAA")
    client.bulk2("GET", "/query/750000000000001AAA")
    rest, bulk1, bulk2 = stub.requests[1:]
    assert rest.headers["authorization"] == "Bearer tok-1"
    assert "x-sfdc-session" not in rest.headers
    assert bulk1.headers["x-sfdc-session"] == "tok-1"
    assert "authorization" not in bulk1.headers
    assert bulk2.headers["authorization"] == "Bearer tok-1"
    assert client.calls_by_kind == {"rest": 1, "bulk1": 1, "bulk2": 1}
    assert client.api_calls == 3
    assert issuer.count == 1


def test_url_for_refuses_foreign_hosts(stub: StubServer, issuer: TokenIssuer) -> None:
    client = make_client(stub)
    assert client.url_for("rest", "/sobjects") == f"{stub.url}/services/data/v62.0/sobjects"
    assert client.url_for("bulk1", "/job") == f"{stub.url}/services/async/62.0/job"
    assert client.url_for("bulk2", "/ingest") == f"{stub.url}/services/data/v62.0/jobs/ingest"
    assert client.url_for("rest", "/services/data") == f"{stub.url}/services/data"
    with pytest.raises(SalesforceError, match="other than the instance"):
        client.url_for("rest", "https://evil.example.com/services/data/v62.0/query/01g-2000")


def test_loopback_rules() -> None:
    for host in ("127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback_host(host), host
    for host in ("10.0.0.1", "example.com", "localhost.example.com", "", None):
        assert not is_loopback_host(host), host
    assert url_allowed("http://127.0.0.1:8080")
    assert url_allowed("http://[::1]:8080/x")
    assert url_allowed("https://acme.my.salesforce.com")
    assert not url_allowed("http://acme.my.salesforce.com")
    assert not url_allowed("ftp://127.0.0.1")


def test_bad_api_version_and_share_rejected(stub: StubServer, issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="api_version"):
        make_client(stub).__class__(make_client(stub).auth, "62")
    with pytest.raises(ValueError, match="max_api_share"):
        make_client(stub, max_api_share=1.5)
    assert make_client(stub).__class__(make_client(stub).auth, "v61.0").api_version == "61.0"


# --------------------------------------------------------------------------------------------
# Re-login


def test_rest_401_renews_once_and_retries_with_new_token(
    stub: StubServer, issuer: TokenIssuer
) -> None:
    stub.route("GET", "/services/data/v62.0/limits", guarded(issuer, Reply(200, '{"a":1}')))
    client = make_client(stub)
    client.auth.session()
    issuer.valid = "expired-elsewhere"  # the org expired the session
    assert client.rest("GET", "/limits").json() == {"a": 1}
    sent = [issuer.token_of(r) for r in stub.hits("GET", "/services/data/v62.0/limits")]
    assert sent == ["tok-1", "tok-2"]
    assert issuer.count == 2
    assert client.api_calls == 2


def test_bulk1_invalid_session_400_renews(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route("GET", "/services/async/62.0/job/.*", guarded(issuer, Reply(200, "<jobInfo/>")))
    client = make_client(stub)
    client.auth.session()
    issuer.valid = "gone"
    assert client.bulk1("GET", "/job/750000000000001AAA").text == "<jobInfo/>"
    hits = stub.hits("GET", "/services/async/62.0/job/.*")
    assert [h.headers["x-sfdc-session"] for h in hits] == ["tok-1", "tok-2"]


def test_refused_after_renewal_is_authentication_error(
    stub: StubServer, issuer: TokenIssuer
) -> None:
    stub.route("GET", "/services/data/v62.0/limits", INVALID_SESSION_REST)
    client = make_client(stub)
    with pytest.raises(AuthenticationError) as info:
        client.rest("GET", "/limits")
    assert info.value.code == "INVALID_SESSION_ID"
    assert info.value.status == 401
    assert "refused again" in str(info.value)
    assert issuer.count == 2
    assert len(stub.hits("GET", "/services/data/v62.0/limits")) == 2


def test_eight_threads_one_token_request(stub: StubServer) -> None:
    issuer = TokenIssuer(stub, delay=0.05)
    stub.route("POST", "/services/oauth2/token", issuer)
    barrier = threading.Barrier(8)

    def handle(req: Req) -> Reply:
        if issuer.token_of(req) == "tok-1":
            barrier.wait(timeout=5)  # all eight see the expiry at the same moment
            return INVALID_SESSION_REST
        return Reply(200, '{"ok":true}')

    stub.route("GET", "/services/data/v62.0/limits", handle)
    client = make_client(stub, pool_size=8)
    client.auth.session()
    results: list[object] = []

    def work() -> None:
        results.append(client.rest("GET", "/limits").json())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"ok": True}] * 8
    assert issuer.count == 2  # the first login plus exactly one renewal
    assert client.auth.token_requests == 2
    retried = [issuer.token_of(r) for r in stub.hits("GET", "/services/data/v62.0/limits")]
    assert sorted(retried) == ["tok-1"] * 8 + ["tok-2"] * 8


# --------------------------------------------------------------------------------------------
# Retries


def test_5xx_then_success_is_retried(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route(
        "GET",
        "/services/data/v62.0/limits",
        [Reply(503, "busy"), Reply(500, "oops"), Reply(200, '{"x":2}')],
    )
    client = make_client(stub)
    assert client.rest("GET", "/limits").json() == {"x": 2}
    assert len(stub.hits("GET", "/services/data/v62.0/limits")) == 3
    assert client.api_calls == 3


def test_retries_are_bounded_in_count(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route("GET", r"/services/async/62\.0/job/.*", Reply(500, "<error/>"))
    client = make_client(stub, max_retries=2)
    with pytest.raises(RetryExhaustedError) as info:
        client.bulk1("GET", "/job/750000000000001AAA/batch/751000000000001AAA")
    err = info.value
    assert err.attempts == 3
    assert len(stub.hits("GET", r"/services/async/62\.0/job/.*")) == 3
    assert err.method == "GET"
    assert err.path == "/services/async/62.0/job/750000000000001AAA/batch/751000000000001AAA"
    assert err.job_id == "750000000000001AAA"
    assert err.batch_id == "751000000000001AAA"
    assert isinstance(err.last_error, SalesforceError)
    assert err.last_error.status == 500
    assert "gave up after 3 attempt(s)" in str(err)
    assert "HTTP 500" in str(err)


def test_retries_are_bounded_in_time(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route("GET", "/services/data/v62.0/limits", Reply(503, "busy"))
    client = make_client(
        stub, max_retries=1000, max_retry_seconds=0.3, backoff_factor=0.05, backoff_max=0.05
    )
    started = time.monotonic()
    with pytest.raises(RetryExhaustedError):
        client.rest("GET", "/limits")
    assert time.monotonic() - started < 1.5
    assert 2 <= len(stub.hits("GET", "/services/data/v62.0/limits")) < 100


def test_request_limit_exceeded_is_retried(stub: StubServer, issuer: TokenIssuer) -> None:
    limited = Reply(
        403,
        '[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]',
    )
    stub.route("POST", "/services/data/v62.0/jobs/query", [limited, Reply(200, '{"id":"750"}')])
    client = make_client(stub)
    assert client.bulk2("POST", "/query", json_body={"q": 1}).json() == {"id": "750"}
    assert len(stub.hits("POST", "/services/data/v62.0/jobs/query")) == 2


def test_request_limit_exhausted_names_code(stub: StubServer, issuer: TokenIssuer) -> None:
    limited = Reply(
        403,
        '[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]',
    )
    stub.route("GET", "/services/data/v62.0/limits", limited)
    client = make_client(stub, max_retries=1)
    with pytest.raises(RetryExhaustedError) as info:
        client.rest("GET", "/limits")
    assert info.value.code == "REQUEST_LIMIT_EXCEEDED"
    assert isinstance(info.value.last_error, ApiLimitError)


def test_non_idempotent_post_not_repeated_after_500(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route("POST", "/services/async/62.0/job/750000000000001AAA/batch", Reply(500, "boom"))
    client = make_client(stub)
    with pytest.raises(SalesforceError) as info:
        client.bulk1("POST", "/job/750000000000001AAA/batch", data=b"Name\nx\n")
    assert not isinstance(info.value, RetryExhaustedError)
    assert info.value.status == 500
    assert info.value.job_id == "750000000000001AAA"
    assert len(stub.hits("POST", "/services/async/62.0/job/750000000000001AAA/batch")) == 1


def test_non_idempotent_post_repeated_after_503(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route("POST", "/services/async/62.0/job", [Reply(503, "later"), Reply(201, "<jobInfo/>")])
    client = make_client(stub)
    assert client.bulk1("POST", "/job", data="<jobInfo/>").status_code == 201
    bodies = [r.body for r in stub.hits("POST", "/services/async/62.0/job")]
    assert bodies == [b"<jobInfo/>", b"<jobInfo/>"]


def test_file_body_is_rewound_for_each_attempt(stub: StubServer, issuer: TokenIssuer) -> None:
    import io

    stub.route(
        "PUT",
        "/services/data/v62.0/jobs/ingest/750000000000001AAA/batches",
        [Reply(429, "slow down"), Reply(201, "")],
    )
    client = make_client(stub)
    body = io.BytesIO(b"Name\nA\nB\n")
    client.bulk2("PUT", "/ingest/750000000000001AAA/batches", data=body)
    hits = stub.hits("PUT", "/services/data/v62.0/jobs/ingest/750000000000001AAA/batches")
    assert [h.body for h in hits] == [b"Name\nA\nB\n"] * 2


def test_connection_refused_is_retried_then_exhausted() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    auth = SalesforceAuth.from_config(
        {"access_token": "ready", "instance_url": f"http://127.0.0.1:{port}"}
    )
    client = SalesforceClient(
        auth, max_retries=2, max_retry_seconds=5, backoff_factor=0.001, timeout=(1, 1)
    )
    with pytest.raises(RetryExhaustedError) as info:
        client.rest("GET", "/limits")
    assert info.value.attempts == 3
    assert isinstance(info.value.last_error, requests.ConnectionError)
    assert client.api_calls == 3


def test_dropped_body_restarts_the_page(stub: StubServer, issuer: TokenIssuer) -> None:
    page = ('"Id","Name"\n' + "".join(f'"001{i:015d}","n{i}"\n' for i in range(2000))).encode()
    stub.route(
        "GET",
        r"/services/data/v62\.0/jobs/query/750000000000001AAA/results",
        [
            Reply(200, page, {"Sforce-Locator": "null"}, drop_after=1000),
            Reply(200, page, {"Sforce-Locator": "null"}, drop_after=30000),
            Reply(200, page, {"Sforce-Locator": "null"}),
        ],
    )
    client = make_client(stub)
    with client.download("GET", "/query/750000000000001AAA/results", kind="bulk2") as got:
        assert got.body.read() == page
        assert got.size == len(page)
        assert got.headers["Sforce-Locator"] == "null"
    assert len(stub.hits("GET", r".*/results")) == 3


def test_dropped_body_without_consume_is_retried(stub: StubServer, issuer: TokenIssuer) -> None:
    body = b"x" * 5000
    stub.route(
        "GET",
        "/services/data/v62.0/sobjects",
        [Reply(200, body, drop_after=10), Reply(200, body)],
    )
    client = make_client(stub)
    assert client.rest("GET", "/sobjects").content == body
    assert len(stub.hits("GET", "/services/data/v62.0/sobjects")) == 2


# --------------------------------------------------------------------------------------------
# Error mapping


def _response(status: int, body: bytes, path: str = "/services/data/v62.0/x") -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = body
    resp.url = "https://na1.salesforce.com" + path
    resp.reason = "Reason"
    return resp


@pytest.mark.parametrize(
    ("fixture", "status", "path", "kind", "code", "message"),
    [
        (
            "rest/error_invalid_field.json",
            400,
            "/services/data/v62.0/query",
            SalesforceError,
            "INVALID_FIELD",
            "No such column 'AccountNumer' on sobject of type Account",
        ),
        (
            "rest/error_not_found.json",
            404,
            "/services/data/v62.0/sobjects/Foo/describe",
            SalesforceError,
            "NOT_FOUND",
            "The requested resource does not exist",
        ),
        (
            "rest/error_invalid_session_id.json",
            401,
            "/services/data/v62.0/sobjects",
            AuthenticationError,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ),
        (
            "bulk1/error_invalid_batch.xml",
            400,
            "/services/async/62.0/job/750D00000004SkGIAU/batch/751D00000004YGZIA2",
            SalesforceError,
            "InvalidBatch",
            "Records not processed",
        ),
        (
            "bulk1/error_invalid_batch.json",
            400,
            "/services/async/62.0/job/750D00000004SkGIAU/batch/751D00000004YGZIA2",
            SalesforceError,
            "InvalidBatch",
            "Records not processed",
        ),
        (
            "bulk2/doc_error_abort_completed_job.json",
            400,
            "/services/data/v62.0/jobs/query/750R0000000zlh9IAA",
            SalesforceError,
            "INVALIDJOBSTATE",
            "Aborting already Completed Job not allowed",
        ),
        (
            "bulk2/doc_error_delete_not_terminated.json",
            400,
            "/services/data/v62.0/jobs/ingest/750R0000000zlh9IAA",
            SalesforceError,
            "API_ERROR",
            "Error encountered when deleting the job because the job is not terminated",
        ),
        (
            "oauth/password_grant_error_invalid_grant.json",
            400,
            "/services/oauth2/token",
            AuthenticationError,
            "invalid_grant",
            "authentication failure - Invalid Password",
        ),
        (
            "oauth/refresh_grant_error_expired.json",
            400,
            "/services/oauth2/token",
            AuthenticationError,
            "invalid_grant",
            "expired access/refresh token",
        ),
        (
            "soap/login_fault_invalid_login.xml",
            500,
            "/services/Soap/u/62.0",
            SalesforceError,
            "INVALID_LOGIN",
            "INVALID_LOGIN: Invalid username, password, security token; or user locked out.",
        ),
    ],
)
def test_error_mapping_of_recorded_bodies(
    fixture: str, status: int, path: str, kind: type, code: str, message: str
) -> None:
    body = (SF / fixture).read_bytes()
    err = error_from_response(_response(status, body, path), method="POST")
    assert type(err) is kind
    assert err.code == code
    assert err.message == message
    assert err.status == status
    assert err.method == "POST"
    assert err.path == path
    if "/job/" in path or "/jobs/" in path:
        assert err.job_id == re.search(r"(750\w{15})", path).group(1)  # type: ignore[union-attr]
    if "/batch/" in path:
        assert err.batch_id == "751D00000004YGZIA2"
        assert "job 750D00000004SkGIAU; batch 751D00000004YGZIA2" in str(err)


def test_error_mapping_fields_limit_and_unknown_bodies() -> None:
    body = (SF / "rest/error_invalid_field_for_insert_update.json").read_bytes()
    err = error_from_response(_response(400, body))
    assert err.code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert err.fields == ["MasterRecordId"]
    assert str(err).endswith("fields MasterRecordId)")

    limited = b'[{"errorCode":"REQUEST_LIMIT_EXCEEDED","message":"TotalRequests Limit exceeded."}]'
    assert isinstance(error_from_response(_response(403, limited)), ApiLimitError)

    html = error_from_response(_response(502, b"<html><body>Bad   gateway</body></html>"))
    assert type(html) is SalesforceError
    assert html.code is None
    assert html.message == "<html><body>Bad gateway</body></html>"
    assert error_from_response(_response(503, b"")).message == "Reason"

    assert parse_error_body('{"errorCode":"X","message":"m"}') == ("X", "m", [])
    assert parse_error_body("not json") == (None, None, [])
    assert parse_error_body("[1,2]") == (None, None, [])


# --------------------------------------------------------------------------------------------
# Usage tracking


def test_limit_info_and_budget(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route(
        "GET",
        "/services/data/v62.0/sobjects",
        Reply(200, "{}", {"Sforce-Limit-Info": "api-usage=799/1000"}),
    )
    client = make_client(stub, max_api_share=0.8)
    client.rest("GET", "/sobjects")
    assert client.api_usage == (799, 1000)
    assert client.check_api_budget() == (799, 1000)
    stub.route(
        "GET",
        "/services/data/v62.0/sobjects",
        Reply(200, "{}", {"Sforce-Limit-Info": "api-usage=800/1000; per-app-api-usage=1/5(x)"}),
    )
    client.rest("GET", "/sobjects")
    with pytest.raises(ApiLimitError, match=r"800 of 1000 daily API requests .* share 80%"):
        client.check_api_budget()


def test_budget_reads_limits_when_usage_unknown(stub: StubServer, issuer: TokenIssuer) -> None:
    stub.route(
        "GET", "/services/data/v62.0/limits", Reply(200, (SF / "rest/limits.json").read_bytes())
    )
    client = make_client(stub, max_api_share=0.5)
    assert client.check_api_budget() == (15000 - 14953, 15000)
    assert len(stub.hits("GET", "/services/data/v62.0/limits")) == 1
    limits = client.limits()
    assert limits["DailyBulkApiBatches"]["Max"] == 15000
    assert client.calls_by_kind["rest"] == 2
    assert make_client(stub).check_api_budget() is None  # disabled: no call made
    assert len(stub.hits("GET", "/services/data/v62.0/limits")) == 2


# --------------------------------------------------------------------------------------------
# Registry and helpers


def test_open_jobs_abort_all() -> None:
    jobs = OpenJobs()
    aborted: list[str] = []
    jobs.register("750A", "bulk1", lambda: aborted.append("750A"))
    jobs.register("750B", "bulk2", lambda: aborted.append("750B"))
    jobs.register("750C", "bulk2", lambda: 1 / 0)  # a failing abort does not stop the others
    jobs.unregister("750B")
    assert sorted(jobs.ids()) == ["750A", "750C"]
    assert jobs.abort_all() == 2
    assert aborted == ["750A"]
    assert jobs.ids() == []


def test_growing_intervals() -> None:
    gen = iter(growing_intervals(0.5, 1.5, 2.0))
    assert [round(next(gen), 4) for _ in range(6)] == [0.5, 0.75, 1.125, 1.6875, 2.0, 2.0]


def test_job_wait_grows_its_intervals_and_stops_at_the_deadline() -> None:
    from sfbulk.http import JobPolling, JobWait

    polling = JobPolling(None, poll_interval_seconds=0.01, poll_backoff=2.0,  # type: ignore[arg-type]
                         poll_interval_max_seconds=0.03, job_timeout_seconds=99.0)
    wait = polling.job_wait(None, what="Bulk 2.0 query job 750A", job_id="750A")
    assert isinstance(wait, JobWait)
    assert wait.limit == 99.0
    assert [round(next(wait._intervals), 4) for _ in range(4)] == [0.01, 0.02, 0.03, 0.03]
    assert not wait.expired

    short = polling.job_wait(0.05, what="Bulk 1.0 job 750B", job_id="750B")
    assert short.limit == 0.05
    sleeps = 0
    while not short.expired:
        short.sleep()
        sleeps += 1
    elapsed = time.monotonic() - short.started
    assert 0.05 <= elapsed < 0.5
    assert sleeps >= 2  # 0.01 then 0.02, and the last sleep is cut to the deadline


def test_client_repr_has_no_secrets(stub: StubServer, issuer: TokenIssuer) -> None:
    client = make_client(stub)
    client.auth.session()
    text = repr(client) + repr(client.auth) + str(vars(client.auth))
    for secret in [*SECRETS.values(), "tok-1"]:
        assert secret not in text


def test_fixture_dir_present() -> None:
    assert isinstance(SF, Path) and (SF / "rest").is_dir()


def test_shutdown_cuts_waits_short() -> None:
    import sfbulk.http as http_module
    from sfbulk.errors import OperationCancelledError
    from sfbulk.http import request_shutdown, shutdown_requested, wait_interval

    started = time.monotonic()
    wait_interval(started, 10.0, 0.01, what="job 750A")  # no shutdown: just sleeps
    try:
        request_shutdown()
        assert shutdown_requested()
        with pytest.raises(OperationCancelledError, match="stopped waiting for job 750A") as info:
            wait_interval(time.monotonic(), 10.0, 5.0, what="job 750A", context={"job_id": "750A"})
        assert info.value.job_id == "750A"
        assert time.monotonic() - started < 1.0
    finally:
        http_module._shutdown.clear()
