"""Faults while the tap extracts: every row must come out exactly once per run, whatever call
failed or whenever the session expired. The tap runs in this process over real HTTP (its
process-level behaviour, signals and reruns, is in ``test_processes.py``)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from sfbulk.http import RetryPolicy
from tests.reliability.conftest import set_faults, source_config, stats

JOB = r"[A-Za-z0-9]{15,18}"


def _extract(server, **config):
    """Run tap-sfbulk in process; returns (rows per stream as id lists, STATE values, tap)."""
    from tap_sfbulk.tap import TapSfBulk

    tap = TapSfBulk(config=source_config(server, **config))
    out = io.StringIO()
    error = None
    try:
        connection = tap.connection
        original = connection.new_client

        def new_client():  # short retry waits; the rules themselves are the product's
            client = original()
            client.retry_policy = RetryPolicy(max_retries=3, max_seconds=10,
                                              backoff_factor=0.02, backoff_max=0.1)
            return client

        connection.new_client = new_client
        with contextlib.redirect_stdout(out):
            tap.sync_all()
    except Exception as exc:
        error = exc
    rows: dict[str, list[str]] = {}
    states = []
    for line in out.getvalue().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            rows.setdefault(message["stream"], []).append(message["record"]["Id"])
        elif message["type"] == "STATE":
            states.append(message["value"])
    return rows, states, tap, error


def _ids(server, obj):
    return sorted(row[0] for row in server.state.org.query(f"SELECT Id FROM {obj}"))


FAULTS = [
    ("2.0", "query job create: HTTP 503", {"http_503": {"method": "POST",
                                                        "path": r"/jobs/query$"}}),
    ("2.0", "poll: HTTP 500", {"http_500": {"method": "GET", "path": rf"/jobs/query/{JOB}$"}}),
    ("2.0", "result page cut mid-body", {"drop_connection": {
        "method": "GET", "path": rf"/jobs/query/{JOB}/results", "after_bytes": 200}}),
    ("1.0", "batch poll: connection reset", {"drop_connection": {
        "method": "GET", "path": rf"/job/{JOB}/batch", "after_bytes": 0}}),
    ("1.0", "result file cut mid-body", {"drop_connection": {
        "method": "GET", "path": rf"/batch/{JOB}/result/{JOB}$", "after_bytes": 200}}),
    ("1.0", "close: HTTP 503", {"http_503": {"method": "POST",
                                             "path": rf"/services/async/[^/]+/job/{JOB}$"}}),
]


@pytest.mark.parametrize(("api", "case", "spec"), FAULTS, ids=[f[1] for f in FAULTS])
def test_extraction_survives_one_fault(emulator_factory, observe, api, case, spec):
    source = emulator_factory(seed="demo", records=100, bulk2_page_rows=7,
                              result_rows_per_file=7)
    set_faults(source, spec)
    rows, states, _, error = _extract(source, streams=["Account", "Contact"], bulk_api=api)
    assert error is None, error
    kind = next(iter(spec))
    assert stats(source)["faults_injected"].get(kind) == 1
    for obj in ("Account", "Contact"):
        assert sorted(rows[obj]) == _ids(source, obj)  # every row, each exactly once
    assert set(states[-1]["bookmarks"]) == {"Account", "Contact"}
    total = sum(len(v) for v in rows.values())
    observe("faults", f"tap, Bulk {api} {case}", f"retried; {total} rows, each once; STATE "
            "for both streams", before=len(_ids(source, "Account")) + len(_ids(source,
                                                                              "Contact")),
            after=total)


@pytest.mark.parametrize("api", ["2.0", "1.0"])
@pytest.mark.parametrize("after_calls", [3, 5, 7])
def test_session_expires_mid_extraction(emulator_factory, observe, api, after_calls):
    source = emulator_factory(seed="demo", records=100, bulk2_page_rows=7,
                              result_rows_per_file=7)
    set_faults(source, {"expire_session_after": after_calls})
    rows, _, tap, error = _extract(source, streams=["Account", "Contact"], bulk_api=api)
    assert error is None, error
    assert stats(source)["faults_injected"].get("expire_sessions") == 1
    for obj in ("Account", "Contact"):
        assert sorted(rows[obj]) == _ids(source, obj)
    token_requests = tap.connection.auth.token_requests
    assert token_requests == 2
    observe("faults", f"tap, Bulk {api}: session expires after API call {after_calls}",
            f"renewed once ({token_requests} token requests); every row once",
            before=sum(len(_ids(source, o)) for o in ("Account", "Contact")),
            after=sum(len(v) for v in rows.values()), token_requests=token_requests)
