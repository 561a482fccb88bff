"""Limits, faults and interruptions: batch splits, lock retries, failed batches and jobs, expiring
sessions, and a target killed in the middle of a job."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sfbulk import http
from sfbulk.emulator.bulk1 import Bulk1Job
from sfbulk.emulator.bulk2 import Bulk2Job
from target_sfbulk.target import TargetSfBulk, TooManyFailedRecordsError
from tests.target.support import (
    add_external_id,
    config,
    jobs,
    lines,
    record,
    rows,
    run,
    schema,
    state,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = {"Name": {"type": "string"}}


def _bulk1_batches(server) -> list[list[int]]:
    """Rows per batch of every Bulk 1.0 job, in job order."""
    out = []
    for job in jobs(server):
        if isinstance(job, Bulk1Job):
            out.append([b.records_processed for b in job.batches])
    return out


@pytest.mark.parametrize(("count", "expected"), [(1, [[1]]), (10_000, [[10_000]]),
                                                 (10_001, [[10_000, 1]])])
def test_bulk1_batches_split_at_the_row_limit(emulator, count, expected):
    messages = [schema("Account", NAME), *(record("Account", {"Name": f"a{i}"})
                                            for i in range(count))]
    _, target = run(config(emulator, bulk_api="1.0", batch_size_rows=20_000), messages)
    assert _bulk1_batches(emulator) == expected
    assert emulator.state.org.count("Account") == count
    assert target.tally.streams()["Account"].successful == count


def test_batch_size_rows_setting_takes_effect(emulator):
    """``batch_size_rows`` reaches the SDK (MAX_SIZE_DEFAULT is overridden, not max_size):
    7 records in batches of 3 make three jobs."""
    run(config(emulator, bulk_api="2.0", batch_size_rows=3),
        [schema("Account", NAME), *(record("Account", {"Name": f"a{i}"}) for i in range(7))])
    sizes = sorted(job.processed for job in jobs(emulator) if isinstance(job, Bulk2Job))
    assert sizes == [1, 3, 3]


def test_bulk1_batches_split_at_exactly_the_byte_limit(emulator):
    # Header "Name\n" is 5 bytes; each row "éééé\n" is 9 bytes (é is 2 bytes in UTF-8).
    limit = 5 + 3 * 9
    run(config(emulator, bulk_api="1.0"),
        [schema("Account", NAME), *(record("Account", {"Name": "éééé"}) for _ in range(7))],
        max_batch_bytes=limit)
    (job,) = [j for j in jobs(emulator) if isinstance(j, Bulk1Job)]
    assert [len(b.request) for b in job.batches] == [limit, limit, 5 + 9]
    assert emulator.state.org.count("Account") == 7


def test_bulk2_one_job_until_the_upload_limit(emulator):
    run(config(emulator), [schema("Account", NAME),
                           *(record("Account", {"Name": f"n{i:03d}"}) for i in range(9))],
        max_upload_bytes=5 + 4 * 5)
    sizes = [job.processed for job in jobs(emulator) if isinstance(job, Bulk2Job)]
    assert sizes == [4, 4, 1]


def test_lock_errors_are_retried_alone(emulator):
    emulator.state.faults.configure({"lock_error_share": 1.0, "processing_delay_seconds": 0.3})
    emulator.state.org.insert_raw("Account", [{"Name": "Shared parent"}])
    parent = rows(emulator, "SELECT Id FROM Account")[0][0]
    _, target = run(config(emulator, bulk_api="1.0"),
                    [schema("Contact", {"LastName": {"type": "string"},
                                        "AccountId": {"type": "string"}}),
                     *(record("Contact", {"LastName": f"c{i}", "AccountId": parent})
                       for i in range(12))],
                    max_batch_rows=4)
    tally = target.tally.streams()["Contact"]
    assert (tally.successful, tally.failed) == (12, 0)
    assert tally.lock_retries > 0
    bulk1 = [j for j in jobs(emulator) if isinstance(j, Bulk1Job)]
    assert bulk1[0].concurrency_mode == "Parallel"
    assert all(j.concurrency_mode == "Serial" for j in bulk1[1:])
    assert sum(b.records_processed for j in bulk1[1:] for b in j.batches) == tally.lock_retries
    assert emulator.state.org.count("Contact") == 12


def test_lock_errors_past_the_retries_fail_those_records(emulator, tmp_path):
    emulator.state.faults.configure({"lock_error_share": 1.0, "processing_delay_seconds": 0.2})
    emulator.state.org.insert_raw("Account", [{"Name": "Shared parent"}])
    parent = rows(emulator, "SELECT Id FROM Account")[0][0]
    _, target = run(config(emulator, bulk_api="1.0", lock_retry_attempts=0,
                           max_failed_records=100),
                    [schema("Contact", {"LastName": {"type": "string"},
                                        "AccountId": {"type": "string"}}),
                     *(record("Contact", {"LastName": f"c{i}", "AccountId": parent})
                       for i in range(8))],
                    max_batch_rows=4)
    tally = target.tally.streams()["Contact"]
    assert tally.failed > 0
    assert dict(tally.codes) == {"UNABLE_TO_LOCK_ROW": tally.failed}
    assert tally.successful + tally.failed == 8


@pytest.mark.parametrize("api", ["1.0", "2.0"])
def test_failed_batch_marks_its_records_and_exits_non_zero(emulator, tmp_path, api):
    emulator.state.faults.configure({"fail_batches": {"count": 1, "message": "InvalidBatch : "
                                                      "Injected failure"}})
    path = tmp_path / "failed.jsonl"
    out = io.StringIO()
    with pytest.raises(TooManyFailedRecordsError, match="3 record"):
        run(config(emulator, bulk_api=api, failed_records_path=str(path)),
            [schema("Account", NAME), *(record("Account", {"Name": f"a{i}"}) for i in range(3)),
             state({"done": 3})], out=out)
    # The outcome of every record is known (failed), so STATE was still written.
    assert out.getvalue() == '{"done": 3}\n'
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [f["record"]["Name"] for f in failed] == ["a0", "a1", "a2"]
    assert {f["error_code"] for f in failed} == ({"InvalidBatch"} if api == "1.0"
                                                 else {"UNPROCESSED"})
    assert all("Injected failure" in f["error_message"] for f in failed)
    assert all(f["job_id"] for f in failed)
    assert emulator.state.org.count("Account") == 0


def test_session_expiring_mid_run_is_renewed(emulator):
    emulator.state.faults.configure({"expire_session_after": 4})
    _, target = run(config(emulator), [schema("Account", NAME),
                                       *(record("Account", {"Name": f"a{i}"}) for i in range(5))],
                    max_upload_bytes=5 + 2 * 3)
    assert emulator.state.org.count("Account") == 5
    assert target.client.auth.token_requests == 2


# --------------------------------------------------------------------------------------------------
# Killed in the middle of a job, then rerun from the last STATE
# --------------------------------------------------------------------------------------------------


def _target_process(cfg_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "target_sfbulk.target", "--config", str(cfg_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_running_job(server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in jobs(server):
            if isinstance(job, Bulk2Job) and job.state in ("UploadComplete", "InProgress"):
                return
            # A 1.0 job counts once it is closed: killed between adding its batch and closing it,
            # the target would leave an Open job behind, which is not the case under test.
            if (isinstance(job, Bulk1Job) and job.state == "Closed"
                    and any(b.state == "InProgress" for b in job.batches)):
                return
        time.sleep(0.05)
    raise AssertionError("no job started processing")


def _messages(start: int, stop: int, bookmark: int) -> str:
    return lines([schema("Account", {"Name": {"type": "string"},
                                     "External_Id__c": {"type": "string"}}, ["External_Id__c"]),
                  *(record("Account", {"External_Id__c": f"k{i}", "Name": f"n{i}"})
                    for i in range(start, stop)),
                  state({"bookmark": bookmark})])


def _wait_for_jobs_processing(server, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(isinstance(job, Bulk2Job) and job.state in ("UploadComplete", "InProgress")
               for job in jobs(server)) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} jobs started processing: "
                         f"{[(type(job).__name__, job.state) for job in jobs(server)]}")


def test_sigterm_while_background_loads_run_aborts_them_all_without_state(emulator, tmp_path):
    # Four insert batches load in the background (max_parallel_jobs 4) and the reader waits for
    # room for the fifth when SIGTERM arrives.
    emulator.state.faults.configure({"processing_delay_seconds": 30})
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(config(emulator, batch_size_rows=2, max_parallel_jobs=4)))
    process = _target_process(cfg_path)
    messages = [schema("Account", NAME)]
    for i in range(12):
        messages.append(record("Account", {"Name": f"a{i}"}))
        messages.append(state({"at": i + 1}))
    process.stdin.write(lines(messages).encode())
    process.stdin.close()
    _wait_for_jobs_processing(emulator, 4)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    process.stdout.close()
    process.stderr.close()
    assert time.monotonic() - started < 10
    assert out == ""
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err, err
    assert sorted(job.state for job in jobs(emulator)) == ["Aborted"] * 4
    assert emulator.state.org.count("Account") == 0


def test_sigterm_while_a_child_waits_for_its_parents_load_exits_143(emulator, tmp_path):
    # The full drain at the end of input starts the Accounts' load in the background, then the
    # Contacts wait for it; SIGTERM lands in that wait.
    add_external_id(emulator, "Account")
    emulator.state.faults.configure({"processing_delay_seconds": 30})
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(config(emulator, streams={"Account": {"action": "upsert"}})))
    process = _target_process(cfg_path)
    process.stdin.write(lines([
        schema("Account", {**NAME, "External_Id__c": {"type": "string"}}, ["External_Id__c"]),
        schema("Contact", {"LastName": {"type": "string"},
                           "Account.External_Id__c": {"type": "string"}}),
        record("Account", {"External_Id__c": "A1", "Name": "one"}),
        record("Contact", {"LastName": "c1", "Account.External_Id__c": "A1"}),
        state({"at": 2})]).encode())
    process.stdin.close()
    _wait_for_jobs_processing(emulator, 1)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    process.stdout.close()
    process.stderr.close()
    assert out == ""
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Salesforce error" not in err and "Traceback" not in err, err
    assert [(job.object, job.state) for job in jobs(emulator)] == [("Account", "Aborted")]


def test_bad_input_while_background_loads_run_aborts_them_and_exits_at_once(emulator, tmp_path):
    # A line that is not JSON stops the run while four batches load in the background: their
    # jobs are aborted and the target exits without waiting for them, and without STATE.
    emulator.state.faults.configure({"processing_delay_seconds": 30})
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(config(emulator, batch_size_rows=2, max_parallel_jobs=4)))
    process = _target_process(cfg_path)
    messages = [schema("Account", NAME)]
    for i in range(8):
        messages += [record("Account", {"Name": f"a{i}"}), state({"at": i + 1})]
    process.stdin.write(lines(messages).encode())
    process.stdin.flush()
    _wait_for_jobs_processing(emulator, 4)
    started = time.monotonic()
    process.stdin.write(b"this is not JSON\n")
    process.stdin.close()
    process.wait(timeout=40)
    out, err = process.stdout.read().decode(), process.stderr.read().decode()
    process.stdout.close()
    process.stderr.close()
    assert time.monotonic() - started < 10, err
    assert out == ""
    assert process.returncode == 1 and "Invalid Singer input" in err, err
    assert sorted(job.state for job in jobs(emulator)) == ["Aborted"] * 4


def test_sigterm_while_the_thread_it_interrupts_counts_outcomes_does_not_hang(emulator):
    # The handler runs in the thread the signal interrupts, which may be inside the tally
    # (writing a failed batch's records); flushing the failed-records file must not wait for
    # that thread, which is itself.
    target = TargetSfBulk(config=config(emulator))
    codes: list[object] = []

    def interrupted() -> None:
        with target.tally._lock:
            try:
                target._handle_termination(signal.SIGTERM, None)
            except SystemExit as exc:
                codes.append(exc.code)

    thread = threading.Thread(target=interrupted, daemon=True)
    try:
        thread.start()
        thread.join(timeout=5)
    finally:
        http._shutdown.clear()  # the handler asked the whole process to stop waiting
    assert codes == [128 + signal.SIGTERM]


@pytest.mark.parametrize(("api", "sig"), [("2.0", signal.SIGTERM), ("1.0", signal.SIGKILL)])
def test_killed_during_a_job_then_rerun_from_last_state(emulator, tmp_path, api, sig):
    add_external_id(emulator, "Account")
    cfg = config(emulator, bulk_api=api, action="upsert")
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text(json.dumps(cfg))
    first = _target_process(cfg_path)
    out, err = first.communicate(_messages(0, 10, 10).encode(), timeout=60)
    assert first.returncode == 0, err.decode()
    assert out.decode() == '{"bookmark": 10}\n'

    emulator.state.faults.configure({"processing_delay_seconds": 30})
    second = _target_process(cfg_path)
    second.stdin.write(_messages(10, 30, 30).encode())
    second.stdin.close()
    _wait_for_running_job(emulator)
    second.send_signal(sig)
    second.wait(timeout=30)
    out = second.stdout.read().decode()
    err = second.stderr.read().decode()
    second.stdout.close()
    second.stderr.close()
    assert out == ""  # no STATE for records whose outcome was unknown
    if sig == signal.SIGTERM:
        assert second.returncode == 128 + signal.SIGTERM
        assert "aborting open Bulk jobs" in err
        assert all(job.state in ("Aborted", "JobComplete", "Failed", "Closed")
                   for job in jobs(emulator)), [job.state for job in jobs(emulator)]
    else:
        assert second.returncode == -signal.SIGKILL
    # No job was left Open: a killed process leaves at most jobs that Salesforce finishes alone.
    assert not [job for job in jobs(emulator) if job.state == "Open"]

    # The tap reruns from the last STATE ({"bookmark": 10}) and sends records 10..29 again.
    emulator.state.faults.configure({"processing_delay_seconds": 0})
    third = _target_process(cfg_path)
    out, err = third.communicate(_messages(10, 30, 30).encode(), timeout=120)
    assert third.returncode == 0, err.decode()
    assert out.decode() == '{"bookmark": 30}\n'
    stored = rows(emulator, "SELECT External_Id__c, Name FROM Account")
    assert sorted(stored) == sorted((f"k{i}", f"n{i}") for i in range(30))
