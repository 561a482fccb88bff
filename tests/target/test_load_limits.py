"""Load limits end to end against the emulator: Serial Bulk 1.0 jobs, ZIP batches within every
zip limit, UNABLE_TO_LOCK_ROW on Bulk 2.0, and Bulk 2.0 jobs split at the row limit."""

from __future__ import annotations

import base64
import functools
import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from sfbulk.bulk1 import Bulk1, JobInfo
from sfbulk.emulator import bulk2 as emulator_bulk2
from sfbulk.emulator.bulk1 import Bulk1Job
from sfbulk.emulator.bulk2 import Bulk2Job
from sfbulk.errors import ConfigError
from target_sfbulk import loader, payloads
from tests.conftest import emulator_token
from tests.target.support import config, jobs, record, rows, run, schema

ROOT = Path(__file__).resolve().parents[2]
NAME = {"Name": {"type": "string"}}
CONTACT = {"LastName": {"type": "string"}, "AccountId": {"type": "string"}}
ATTACHMENT = {"Name": {"type": "string"}, "ParentId": {"type": "string"},
              "Body": {"type": "string"}}


def _bulk1_jobs(server) -> list[Bulk1Job]:
    return [job for job in jobs(server) if isinstance(job, Bulk1Job)]


def _bulk2_jobs(server) -> list[Bulk2Job]:
    return [job for job in jobs(server) if isinstance(job, Bulk2Job)]


def _parent(server) -> str:
    server.state.org.insert_raw("Account", [{"Name": "Shared parent"}])
    return rows(server, "SELECT Id FROM Account")[0][0]


# --------------------------------------------------------------------------------------------------
# concurrency_mode Serial
# --------------------------------------------------------------------------------------------------


def test_serial_concurrency_mode_runs_a_serial_bulk1_job(emulator):
    # Children of one parent in three batches, with every contended lock failing: a Parallel
    # job would get UNABLE_TO_LOCK_ROW (test_resilience.py); the Serial job gets none.
    emulator.state.faults.configure({"lock_error_share": 1.0, "processing_delay_seconds": 0.05})
    parent = _parent(emulator)
    names = [f"c{i:02d}" for i in range(25)]
    _, target = run(config(emulator, bulk_api="1.0", concurrency_mode="Serial"),
                    [schema("Contact", CONTACT),
                     *(record("Contact", {"LastName": n, "AccountId": parent}) for n in names)],
                    max_batch_rows=10)
    (job,) = _bulk1_jobs(emulator)
    assert [b.records_processed for b in job.batches] == [10, 10, 5]
    # What the API says about the job, read as any client would.
    response = requests.get(
        f"{emulator.url}/services/async/{job.api_version}/job/{job.id}",
        headers={"X-SFDC-Session": emulator_token(emulator)}, timeout=10)
    response.raise_for_status()
    info = JobInfo.parse(response.content)
    assert (info.id, info.concurrency_mode, info.state) == (job.id, "Serial", "Closed")
    assert (info.number_records_processed, info.number_records_failed) == (25, 0)
    assert sorted(rows(emulator, "SELECT LastName, AccountId FROM Contact")) == [
        (n, parent) for n in names]
    tally = target.tally.streams()["Contact"]
    assert (tally.received, tally.successful, tally.failed, tally.lock_retries) == (25, 25, 0, 0)
    assert emulator.state.faults.injected["lock_errors"] == 0


@pytest.mark.parametrize("extra", [{}, {"bulk_api": "2.0"}])
def test_serial_concurrency_mode_is_refused_on_bulk2_before_any_job(emulator, extra):
    with pytest.raises(ConfigError, match=r"^concurrency_mode Serial needs bulk_api 1\.0 "
                                          r"\(Bulk 2\.0 jobs are always Parallel\)$"):
        run(config(emulator, concurrency_mode="Serial", **extra),
            [schema("Account", NAME), record("Account", {"Name": "never"})])
    assert jobs(emulator) == []
    assert emulator.state.org.count("Account") == 0


def test_serial_concurrency_mode_on_bulk2_ends_the_command_with_the_reason(emulator, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config(emulator, bulk_api="2.0", concurrency_mode="Serial")))
    done = subprocess.run(
        [sys.executable, "-m", "target_sfbulk.target", "--config", str(path)],
        input=json.dumps(schema("Account", NAME)) + "\n", capture_output=True, text=True,
        cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "concurrency_mode Serial needs bulk_api 1.0" in done.stderr
    assert "Traceback" not in done.stderr
    assert jobs(emulator) == []


# --------------------------------------------------------------------------------------------------
# ZIP batches within the zip limits
# --------------------------------------------------------------------------------------------------


def _spy_batches(monkeypatch) -> list[bytes]:
    """Every batch body the Bulk 1.0 client sends, in order, still sent."""
    sent: list[bytes] = []
    real = Bulk1.add_batch

    def spy(self, job, body, content_type=None):
        assert isinstance(body, bytes)
        sent.append(body)
        return real(self, job, body, content_type)

    monkeypatch.setattr(Bulk1, "add_batch", spy)
    return sent


def _check_zips(sent: list[bytes], *, max_zip: int, max_unzipped: int, max_files: int,
                name_bytes: int = payloads.MAX_ZIP_NAME_BYTES) -> list[int]:
    """Assert every batch is a zip within each limit; returns the records per zip."""
    per_zip = []
    for data in sent:
        assert len(data) <= max_zip
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            assert len(members) <= max_files  # request.txt is one of the files
            assert sum(m.file_size for m in members) <= max_unzipped
            assert all(len(m.filename.encode()) <= name_bytes for m in members)
            request = archive.read("request.txt").decode()
            assert archive.testzip() is None
        per_zip.append(len(request.splitlines()) - 1)  # CSV: a header, then a line per record
    return per_zip


def _bodies(server) -> dict[str, bytes]:
    return {name: bytes(body) for name, body in
            server.state.org.execute_sql('SELECT Name, Body FROM "Attachment"')}


@pytest.mark.parametrize("limit", ["zipped", "unzipped", "files", "request"])
def test_binary_loads_split_into_zips_within_each_lowered_limit(emulator, tmp_path, monkeypatch,
                                                                limit):
    parent = _parent(emulator)
    rng = random.Random(7)
    if limit == "zipped":  # incompressible bodies: the zipped size binds
        lowered = {"max_zip_bytes": 300_000}
        contents = [rng.randbytes(12_000 + i) for i in range(30)]
    elif limit == "unzipped":  # bodies that compress to almost nothing: the unzipped size binds
        lowered = {"max_unzipped_bytes": 400_000}
        contents = [bytes([i]) * 60_000 for i in range(12)]
    elif limit == "files":
        lowered = {"max_files": 5}
        contents = [rng.randbytes(50) for _ in range(23)]
    else:  # tiny bodies, long Descriptions: request.txt alone is over the unzipped size
        lowered = {"max_unzipped_bytes": 300_000}
        contents = [rng.randbytes(10) for _ in range(700)]
    limits = {"max_zip": lowered.get("max_zip_bytes", payloads.MAX_ZIP_BYTES),
              "max_unzipped": lowered.get("max_unzipped_bytes",
                                          payloads.MAX_ZIP_UNZIPPED_BYTES),
              "max_files": lowered.get("max_files", payloads.MAX_ZIP_FILES)}
    # Without the limit, everything would fit one zip: the split is the limit's doing.
    assert sum(map(len, contents)) > limits["max_zip"] or limit != "zipped"
    assert sum(map(len, contents)) > limits["max_unzipped"] or limit != "unzipped"
    described = limit == "request"
    assert len(contents) * 500 > limits["max_unzipped"] or not described
    assert len(contents) + 1 > limits["max_files"] or limit != "files"
    monkeypatch.setattr(loader, "ZipBatcher", functools.partial(payloads.ZipBatcher, **lowered))
    sent = _spy_batches(monkeypatch)
    (tmp_path / "files").mkdir()
    messages = [schema("Attachment", ATTACHMENT | ({"Description": {"type": "string"}}
                                                   if described else {}))]
    for i, content in enumerate(contents):
        if i % 2:  # half from files under binary_root, half as base64 text
            (tmp_path / "files" / f"b{i}.bin").write_bytes(content)
            body = f"#files/b{i}.bin"
        else:
            body = base64.b64encode(content).decode()
        values = {"Name": f"a{i:02d}", "ParentId": parent, "Body": body}
        if described:
            values["Description"] = f"{i:03d}" + "é" * 497  # 500 characters, 997 bytes
        messages.append(record("Attachment", values))
    _, target = run(config(emulator, bulk_api="1.0", binary_root=str(tmp_path)), messages)
    per_zip = _check_zips(sent, **limits)
    assert len(per_zip) > 1 and sum(per_zip) == len(contents)
    (job,) = _bulk1_jobs(emulator)
    assert job.content_type == "ZIP_CSV"
    assert [b.records_processed for b in job.batches] == per_zip
    assert [b.records_failed for b in job.batches] == [0] * len(per_zip)
    assert _bodies(emulator) == {f"a{i:02d}": content for i, content in enumerate(contents)}
    tally = target.tally.streams()["Attachment"]
    assert (tally.received, tally.successful, tally.failed) == (len(contents),) * 2 + (0,)


def test_more_attachments_than_the_zip_file_limit_load_in_several_zips(emulator, monkeypatch):
    # At Salesforce's own limits: 1,000 files per zip, request.txt included.
    parent = _parent(emulator)
    count = payloads.MAX_ZIP_FILES + 1
    contents = [f"body {i}".encode() + bytes([i % 256]) * (i % 5) for i in range(count)]
    sent = _spy_batches(monkeypatch)
    _, target = run(config(emulator, bulk_api="1.0"),
                    [schema("Attachment", ATTACHMENT),
                     *(record("Attachment", {"Name": f"a{i:04d}", "ParentId": parent,
                                             "Body": base64.b64encode(c).decode()})
                       for i, c in enumerate(contents))])
    per_zip = _check_zips(sent, max_zip=payloads.MAX_ZIP_BYTES,
                          max_unzipped=payloads.MAX_ZIP_UNZIPPED_BYTES,
                          max_files=payloads.MAX_ZIP_FILES)
    assert per_zip == [payloads.MAX_ZIP_FILES - 1, 2]
    tally = target.tally.streams()["Attachment"]
    assert (tally.received, tally.successful, tally.failed) == (count, count, 0)
    assert _bodies(emulator) == {f"a{i:04d}": c for i, c in enumerate(contents)}


# --------------------------------------------------------------------------------------------------
# UNABLE_TO_LOCK_ROW on Bulk 2.0
# --------------------------------------------------------------------------------------------------


def test_bulk2_lock_errors_are_resubmitted_alone_until_stored(emulator):
    # A 2.0 job's internal batches of 10,000 rows run in parallel: the 10,001st child of the
    # parent contends with the first 10,000 and (share 1.0) fails to lock it.
    emulator.state.faults.configure({"lock_error_share": 1.0})
    parent = _parent(emulator)
    count = emulator_bulk2.SUB_BATCH_ROWS + 1
    _, target = run(config(emulator, bulk_api="2.0", batch_size_rows=20_000),
                    [schema("Contact", CONTACT),
                     *(record("Contact", {"LastName": f"c{i:05d}", "AccountId": parent})
                       for i in range(count))])
    first, retry = _bulk2_jobs(emulator)
    assert (first.state, first.processed, first.failed) == ("JobComplete", count, 1)
    failed = b"".join(first.results["failedResults"].iter_page()).decode().splitlines()[1:]
    assert failed == [f'"","UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record '
                      f'or 1 records: {parent}:--","c{count - 1:05d}","{parent}"']
    # Resubmitted alone: a job holding only that record.
    assert (retry.state, retry.processed, retry.failed) == ("JobComplete", 1, 0)
    stored = rows(emulator, "SELECT LastName, AccountId FROM Contact")
    assert sorted(stored) == [(f"c{i:05d}", parent) for i in range(count)]
    tally = target.tally.streams()["Contact"]
    assert (tally.received, tally.successful, tally.created, tally.failed) == (
        count, count, count, 0)
    assert tally.lock_retries == 1
    assert "lock retries 1" in target.tally.summary()
    assert target.tally.unbalanced() == {}


def test_bulk2_lock_errors_past_the_retries_end_in_the_failed_records_file(emulator, tmp_path):
    # Other work (another client's job) writes the parent for the whole run, so every child
    # fails to lock it each time it is sent.
    emulator.state.faults.configure({"lock_error_share": 1.0})
    parent = _parent(emulator)
    held = emulator_bulk2._held_parents(emulator.state.jobs)
    key = {f"accountid={parent}"}
    held.acquire(key)
    path = tmp_path / "failed.jsonl"
    records = [{"LastName": f"c{i}", "AccountId": parent} for i in range(5)]
    try:
        _, target = run(config(emulator, bulk_api="2.0", lock_retry_attempts=2,
                               max_failed_records=5, failed_records_path=str(path)),
                        [schema("Contact", CONTACT), *(record("Contact", r) for r in records)])
    finally:
        held.release(key)
    # The first job, then two resubmissions of the same five records.
    assert [(j.processed, j.failed) for j in _bulk2_jobs(emulator)] == [(5, 5)] * 3
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert sorted((f["record"]["LastName"], f["status"], f["error_code"]) for f in failed) == [
        (r["LastName"], "failed", "UNABLE_TO_LOCK_ROW") for r in records]
    assert all(parent in f["error_message"] for f in failed)
    last = _bulk2_jobs(emulator)[-1].id
    assert {f["job_id"] for f in failed} == {last}
    assert emulator.state.org.count("Contact") == 0
    tally = target.tally.streams()["Contact"]
    assert (tally.received, tally.successful, tally.failed) == (5, 0, 5)
    assert dict(tally.codes) == {"UNABLE_TO_LOCK_ROW": 5}
    assert tally.lock_retries == 10  # five records, each resubmitted twice


# --------------------------------------------------------------------------------------------------
# Bulk 2.0 jobs at the row limit
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "expected"), [(1, [1]), (10_000, [10_000]),
                                                 (10_001, [10_000, 1])])
def test_bulk2_jobs_split_at_the_default_batch_size(emulator, count, expected):
    # Beside test_bulk1_batches_split_at_the_row_limit: default batch_size_rows (10,000).
    names = [f"a{i:05d}" for i in range(count)]
    _, target = run(config(emulator, bulk_api="2.0"),
                    [schema("Account", NAME), *(record("Account", {"Name": n}) for n in names)])
    found = _bulk2_jobs(emulator)
    assert sorted((j.processed for j in found), reverse=True) == expected
    assert all((j.state, j.operation, j.failed) == ("JobComplete", "insert", 0) for j in found)
    assert sorted(n for (n,) in rows(emulator, "SELECT Name FROM Account")) == names
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.created) == (count, count, count)
    assert (tally.failed, tally.unprocessed, tally.rejected) == (0, 0, 0)
    assert target.tally.unbalanced() == {}
