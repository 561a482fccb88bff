"""Faults around whole jobs: exhausted retries, limits, expired sessions, failed, aborted and
never-ending jobs, and row locks. Each run goes through the target over real HTTP; the org is then
checked for exactly the records that belong there, and the emulator for jobs left open."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from sfbulk.errors import ApiLimitError, AuthenticationError, JobTimeoutError, RetryExhaustedError
from tests.conftest import emulator_token
from tests.reliability.conftest import (
    account_messages,
    admin,
    clear_faults,
    external_ids,
    job_states,
    open_jobs,
    record_message,
    run_target,
    schema_message,
    set_faults,
    stats,
    wait_until,
)

APIS = ["2.0", "1.0"]
POLL = {"2.0": r"/jobs/ingest/[A-Za-z0-9]{18}$", "1.0": r"/batch(/[A-Za-z0-9]{18})?$"}
EXPECTED = [f"R{i:04d}" for i in range(5)]


@pytest.mark.parametrize("api", APIS)
def test_persistent_503_exhausts_bounded_retries_and_names_the_call(emulator, observe, api):
    set_faults(emulator, {"http_503": {"rate": 1.0, "method": "GET", "path": POLL[api]}})
    started = time.monotonic()
    run = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                     action="upsert", max_retries=3)
    elapsed = time.monotonic() - started
    assert isinstance(run.error, RetryExhaustedError), run.error
    assert run.error.attempts == 4
    assert "gave up after 4 attempt(s)" in str(run.error)
    assert "GET /services/" in str(run.error) and run.error.job_id
    assert run.states == []
    fired = stats(emulator)["faults_injected"]["http_503"]
    assert fired == 4  # exactly the bounded attempts, no storm
    assert elapsed < 8
    assert open_jobs(emulator) == []  # the job whose polls failed was aborted
    clear_faults(emulator)
    rerun = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                       action="upsert")
    assert rerun.error is None and rerun.states == [{"n": 5}]
    assert external_ids(emulator) == EXPECTED
    observe("faults", f"Bulk {api} poll: HTTP 503 on every attempt",
            f"gave up after {run.error.attempts} attempts in {elapsed:.1f} s naming "
            f"`GET …` and job {run.error.job_id}; job aborted; no STATE; rerun loaded all",
            before=5, after=len(external_ids(emulator)), attempts=fired)


@pytest.mark.parametrize("api", APIS)
def test_request_limit_exceeded_is_backed_off(emulator, observe, api):
    set_faults(emulator, {"request_limit_exceeded": {"count": 2}})
    run = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                     action="upsert")
    assert run.error is None, run.error
    assert run.states == [{"n": 5}]
    assert external_ids(emulator) == EXPECTED
    assert stats(emulator)["faults_injected"]["request_limit_exceeded"] == 2
    observe("faults", f"Bulk {api}: REQUEST_LIMIT_EXCEEDED on the next 2 calls",
            "backed off and retried; run succeeded", before=5,
            after=len(external_ids(emulator)))


def test_daily_allocation_nearly_spent_stops_before_any_job(emulator_factory, observe):
    server = emulator_factory(api_daily_limit=40)
    # Another integration has spent most of the day's allocation.
    token = emulator_token(server)
    for _ in range(34):
        requests.get(f"{server.url}/services/data/v62.0/limits",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10)
    run = run_target(server, account_messages(5, state={"n": 5}), action="upsert",
                     max_api_share=0.8)
    assert isinstance(run.error, ApiLimitError), run.error
    assert run.error.code == "API_BUDGET_EXHAUSTED"
    assert "daily API requests are used" in str(run.error)
    assert run.states == []
    assert stats(server)["jobs"]["total"] == 0
    used = stats(server)["usage"]["DailyApiRequests"]["Used"]
    assert used < 40
    observe("faults", "Daily API allocation 85% spent, max_api_share 0.8",
            f"refused before any job ({run.error.code}); {used} of 40 calls used, none lost",
            before=5, after=len(external_ids(server)))


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("after_calls", [2, 3, 4, 5, 6])
def test_session_expires_mid_load(emulator, observe, api, after_calls):
    # The target's first two calls are describes; the next ones create, upload, close, poll
    # and read results, so each position expires the session at a different step of the job.
    set_faults(emulator, {"expire_session_after": after_calls})
    run = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                     action="upsert")
    assert run.error is None, run.error
    assert run.states == [{"n": 5}]
    assert external_ids(emulator) == EXPECTED
    assert stats(emulator)["faults_injected"].get("expire_sessions") == 1
    token_calls = run.target.client.auth.token_requests
    assert token_calls == 2  # the first login and exactly one renewal
    observe("faults", f"Bulk {api}: session expires after API call {after_calls}",
            f"renewed once ({token_calls} token requests); run succeeded", before=5,
            after=len(external_ids(emulator)), token_requests=token_calls)


def test_revoked_refresh_token_fails_at_login_without_retry_storm(emulator, observe):
    # The refresh token was revoked (a user changed their password, an admin revoked the app):
    # the first token request is refused, and must be the only one.
    admin(emulator, "revoke-refresh-token")
    run = run_target(emulator, account_messages(5, state={"n": 5}), action="upsert")
    assert isinstance(run.error, AuthenticationError), run.error
    assert "refresh_token login" in str(run.error)
    assert "invalid_grant" in str(run.error)
    assert run.target.client.auth.token_requests == 1
    assert run.states == []
    assert stats(emulator)["jobs"]["total"] == 0
    observe("faults", "Refresh token revoked",
            f"AuthenticationError `{str(run.error)[:60]}…`; "
            f"{run.target.client.auth.token_requests} token request, no job", before=5,
            after=len(external_ids(emulator)))


@pytest.mark.parametrize("api", APIS)
def test_refresh_token_revoked_while_loading(emulator, observe, api):
    set_faults(emulator, {"processing_delay_seconds": 0.3})
    result: dict = {}

    def load() -> None:
        result["run"] = run_target(emulator, account_messages(5, state={"n": 5}),
                                   bulk_api=api, action="upsert")

    thread = threading.Thread(target=load)
    thread.start()
    # Revoke only once the job is handed over (1.0 closed, 2.0 upload complete), i.e. while the
    # target polls; revoking at job creation would test the upload instead.
    handed_over = {"Closed", "UploadComplete", "InProgress"}
    assert wait_until(lambda: bool(handed_over & set(job_states(emulator))))
    admin(emulator, "revoke-refresh-token")
    admin(emulator, "expire-sessions")
    thread.join(30)
    run = result["run"]
    assert isinstance(run.error, AuthenticationError), run.error
    # The login, the refused renewal, and one more for aborting the open job (also refused):
    # bounded, no storm. The job cannot be aborted without a session.
    assert run.target.client.auth.token_requests == 3
    assert run.states == []
    # The job was handed over before the token went: the org finishes it on its own.
    assert wait_until(lambda: external_ids(emulator) == EXPECTED, timeout=10)
    assert wait_until(lambda: open_jobs(emulator) == [], timeout=10)
    observe("faults", f"Bulk {api}: refresh token revoked and session expired while polling",
            f"AuthenticationError after {run.target.client.auth.token_requests} token "
            "requests; no STATE; the job the org already had finished on its own "
            f"({job_states(emulator)})", before=5, after=len(external_ids(emulator)))


@pytest.mark.parametrize("api", APIS)
def test_batch_or_job_failed_by_the_org(emulator, observe, tmp_path, api):
    failed_path = tmp_path / "failed.jsonl"
    set_faults(emulator, {"fail_batches": {"count": 1, "message": "InternalServerError : boom"}})
    run = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                     action="upsert", failed_records_path=str(failed_path))
    assert run.error is not None and "5 record(s) did not load" in str(run.error)
    entries = [json.loads(line) for line in failed_path.read_text().splitlines()]
    assert sorted(e["record"]["External_Id__c"] for e in entries) == EXPECTED
    assert {e["error_message"].rpartition("Failed: ")[2] for e in entries} == {
        "InternalServerError : boom"}
    # The outcome of every record is known (failed), so STATE covers them: they are replayed
    # from the failed-records file, not from the source.
    assert run.states == [{"n": 5}]
    assert all(e["job_id"] for e in entries)
    assert external_ids(emulator) == []
    assert open_jobs(emulator) == []
    rerun = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                       action="upsert")
    assert rerun.error is None and external_ids(emulator) == EXPECTED
    observe("faults", f"Bulk {api}: the org fails the {'job' if api == '2.0' else 'batch'}",
            "all 5 records written to failed-records with the org's message and job id; "
            "run exits non-zero; rerun loaded all", before=5, after=len(external_ids(emulator)),
            failed_records=len(entries))


@pytest.mark.parametrize("api", APIS)
def test_job_aborted_from_outside(emulator_factory, observe, tmp_path, api):
    # Bulk 2.0: the job never finishes until it is aborted. Bulk 1.0: one worker, two batches;
    # the abort comes while the first is processed, so the second is never processed.
    server = emulator_factory(workers=1)
    failed_path = tmp_path / "failed.jsonl"
    set_faults(server, {"never_finish": True} if api == "2.0"
               else {"processing_delay_seconds": 0.4})
    result: dict = {}

    def load() -> None:
        result["run"] = run_target(server, account_messages(5, state={"n": 5}),
                                   bulk_api=api, action="upsert",
                                   failed_records_path=str(failed_path),
                                   load={"max_batch_rows": 3})

    def running() -> list[str]:
        return [job.id for job in server.state.jobs.jobs()
                if str(getattr(job, "state", "")) in ("Closed", "UploadComplete", "InProgress")]

    thread = threading.Thread(target=load)
    thread.start()
    assert wait_until(lambda: len(running()) == 1)
    job_id = running()[0]
    # An administrator aborts the job in Setup (here: through the API, with their own session).
    token = emulator_token(server)
    if api == "2.0":
        response = requests.patch(f"{server.url}/services/data/v62.0/jobs/ingest/{job_id}",
                                  json={"state": "Aborted"},
                                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    else:
        response = requests.post(
            f"{server.url}/services/async/62.0/job/{job_id}",
            data='<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
                 "<state>Aborted</state></jobInfo>",
            headers={"X-SFDC-Session": token, "Content-Type": "application/xml"}, timeout=10)
    assert response.status_code == 200, response.text
    thread.join(30)
    clear_faults(server)
    run = result["run"]
    assert run.error is not None and "did not load" in str(run.error), run.error
    # Every outcome is known (loaded, or not loaded because of the abort), so STATE may pass
    # them: the records not loaded are in the failed-records file, from which they are fed again.
    assert run.states == [{"n": 5}]
    entries = [json.loads(line) for line in failed_path.read_text().splitlines()]
    not_loaded = sorted(e["record"]["External_Id__c"] for e in entries)
    loaded = external_ids(server)
    assert sorted(loaded + not_loaded) == EXPECTED  # each record in exactly one place
    assert not_loaded, "the abort left no record unprocessed"
    assert {e["job_id"] for e in entries} == {job_id}
    assert open_jobs(server) == []
    rerun = run_target(server, account_messages(5, state={"n": 5}), bulk_api=api,
                       action="upsert")
    assert rerun.error is None and external_ids(server) == EXPECTED
    observe("faults", f"Bulk {api}: job aborted from outside while in progress",
            f"{len(loaded)} loaded, {len(not_loaded)} reported not loaded "
            f"({entries[0]['status']}, job {job_id}); exit non-zero; rerun loaded all",
            before=5, after=len(external_ids(server)))


@pytest.mark.parametrize("api", APIS)
def test_job_that_never_finishes_times_out_and_is_aborted(emulator, observe, api):
    set_faults(emulator, {"never_finish": True,
                          "http_500": {"count": 1, "method": "PATCH" if api == "2.0" else "POST",
                                       "path": r"/jobs/ingest/[A-Za-z0-9]{18}$|/job/[A-Za-z0-9]"
                                               r"{18}$"}})
    # The 500 hits the close (1.0) or UploadComplete (2.0): idempotent, so it is retried.
    started = time.monotonic()
    run = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                     action="upsert", job_timeout_seconds=0.5)
    elapsed = time.monotonic() - started
    assert isinstance(run.error, JobTimeoutError), run.error
    assert run.error.job_id and "after" in str(run.error)
    assert elapsed < 8
    assert run.states == []
    states = job_states(emulator)
    assert states == {"Aborted": 1}, states
    clear_faults(emulator)
    rerun = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                       action="upsert")
    assert rerun.error is None and external_ids(emulator) == EXPECTED
    observe("faults", f"Bulk {api}: job never finishes (timeout 0.5 s)",
            f"JobTimeoutError naming job {run.error.job_id} after {elapsed:.1f} s; job "
            "Aborted; no STATE; rerun loaded all", before=5, after=len(external_ids(emulator)))


def test_unable_to_lock_row_on_parallel_batches(emulator, observe):
    # Ten parents, forty children spread over four parallel Bulk 1.0 batches: every batch
    # touches every parent, the pattern that makes Salesforce fail rows with UNABLE_TO_LOCK_ROW.
    parents = account_messages(10, prefix="P")
    run = run_target(emulator, parents, action="upsert")
    assert run.error is None
    set_faults(emulator, {"lock_error_share": 0.3, "seed": 3, "processing_delay_seconds": 0.05})
    children = [schema_message("Contact", {"External_Id__c": {"type": "string"},
                                           "LastName": {"type": "string"},
                                           "Account.External_Id__c": {"type": "string"}},
                               ["External_Id__c"])]
    children += [record_message("Contact", {"External_Id__c": f"C{i:03d}",
                                            "LastName": f"Child {i}",
                                            "Account.External_Id__c": f"P{i % 10:04d}"})
                 for i in range(40)]
    children.append({"type": "STATE", "value": {"contacts": 40}})
    run = run_target(emulator, children, bulk_api="1.0", action="upsert",
                     load={"max_batch_rows": 10})
    assert run.error is None, run.error
    injected = stats(emulator)["faults_injected"].get("lock_errors", 0)
    assert injected > 0
    tally = run.target.tally.streams()["Contact"]
    assert tally.lock_retries >= injected and tally.successful == 40
    assert run.states == [{"contacts": 40}]
    stored = sorted(emulator.state.org.query(
        "SELECT External_Id__c, Account.External_Id__c FROM Contact"))
    assert stored == [(f"C{i:03d}", f"P{i % 10:04d}") for i in range(40)]
    observe("faults", "UNABLE_TO_LOCK_ROW on parallel Bulk 1.0 batches sharing parents",
            f"{injected} row(s) failed to lock; resubmitted alone ({tally.lock_retries} "
            "retries); all loaded with their parents", before=40, after=len(stored))


ABORT_FAULTS = {
    "HTTP 500 once": ("http_500", {"count": 1}),
    "connection reset once": ("drop_connection", {"count": 1, "after_bytes": 0}),
    "HTTP 503 on every attempt": ("http_503", {"rate": 1.0}),
}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", list(ABORT_FAULTS))
def test_fault_on_abort_after_a_timeout(emulator, observe, api, fault):
    set_faults(emulator, {"never_finish": True})
    result: dict = {}

    def load() -> None:
        result["run"] = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                                   action="upsert", job_timeout_seconds=0.5)

    thread = threading.Thread(target=load)
    thread.start()
    # Once the job is closed, the only state change left is the abort after the timeout.
    assert wait_until(lambda: any(str(getattr(job, "state", "")) in ("Closed", "UploadComplete",
                                                                      "InProgress")
                                  for job in emulator.state.jobs.jobs()))
    kind, spec = ABORT_FAULTS[fault]
    method, path = ("PATCH", r"/jobs/ingest/[A-Za-z0-9]{18}$") if api == "2.0" else \
        ("POST", r"/services/async/[^/]+/job/[A-Za-z0-9]{18}$")
    set_faults(emulator, {kind: {**spec, "method": method, "path": path}})
    thread.join(30)
    run = result["run"]
    fired = stats(emulator)["faults_injected"].get(kind, 0)
    assert isinstance(run.error, JobTimeoutError), run.error
    assert run.states == []
    states = job_states(emulator)
    clear_faults(emulator)
    if fault == "HTTP 503 on every attempt":
        # Bounded: the abort is tried max_retries + 1 times, then the job is left to the org
        # (it is closed, so it takes no more data; Salesforce finishes or times it out).
        assert fired == 4
        assert "Aborted" not in states
        happened = (f"abort gave up after {fired} attempts; JobTimeoutError reported; job "
                    f"left {states} (closed to new data)")
    else:
        assert fired == 1
        assert states == {"Aborted": 1}, states
        happened = "abort retried; job Aborted; JobTimeoutError reported; no STATE"
    # The rerun (no STATE was written) loads everything exactly once, whatever the first job
    # left behind.
    rerun = run_target(emulator, account_messages(5, state={"n": 5}), bulk_api=api,
                       action="upsert")
    assert rerun.error is None and external_ids(emulator) == EXPECTED
    observe("faults", f"Bulk {api} abort (after a job timeout): {fault}",
            happened + "; rerun loaded all", before=5, after=len(external_ids(emulator)))
