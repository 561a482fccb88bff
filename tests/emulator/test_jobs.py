"""Unit tests of the shared Bulk job engine: result files, the worker pool and the registry."""

from __future__ import annotations

import csv
import threading
import time
from datetime import datetime, timezone

import pytest

from sfbulk.emulator.jobs import (
    JobEngine,
    ResultFile,
    WorkerPool,
    elapsed_ms,
    format_json_datetime,
    format_xml_datetime,
)
from sfbulk.ids import is_valid_id

# ---------------------------------------------------------------------------- ResultFile


def _csv_rows(n: int, start: int = 0) -> list[str]:
    class _Lines(list):
        write = list.append

    lines = _Lines()
    csv.writer(lines, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
        (f"001{i:012d}", f"name {i}") for i in range(start, start + n)
    )
    return lines


def test_pages_carry_the_header_and_exact_rows() -> None:
    rf = ResultFile(b'"Id","Name"\n')
    rf.extend_text(_csv_rows(5))
    rf.finish()
    assert rf.row_count == 5
    assert rf.read_page(1, 2) == (
        b'"Id","Name"\n"001000000000001","name 1"\n"001000000000002","name 2"\n'
    )
    assert rf.read_page(4, 10) == b'"Id","Name"\n"001000000000004","name 4"\n'
    assert rf.read_page(5, 10) == b'"Id","Name"\n'
    assert rf.page_count(3, None) == 2
    assert rf.page_count(9, 3) == 0
    assert rf.page_bytes(1, 2) == len(rf.read_page(1, 2))


def test_non_ascii_rows_keep_exact_byte_offsets() -> None:
    rf = ResultFile()
    rf.extend_text(["ä,1\n", "b,2\n", "日本,3\n"])
    rf.append("é,4\n".encode())
    assert rf.row_count == 4
    assert rf.read_page(2, 1) == "日本,3\n".encode()
    assert rf.read_page(3) == "é,4\n".encode()
    assert rf.data_bytes == len("ä,1\nb,2\n日本,3\né,4\n".encode())


def test_separator_and_footer_make_each_page_a_complete_document() -> None:
    rf = ResultFile(b"[ ", footer=b" ]", separator=b", ")
    rf.extend([b'{"a":1}', b'{"a":2}'])
    rf.extend_text(['{"a":3}'])
    assert rf.read_page() == b'[ {"a":1}, {"a":2}, {"a":3} ]'
    assert rf.read_page(1, 1) == b'[ {"a":2} ]'
    assert rf.read_page(2, 5) == b'[ {"a":3} ]'
    assert rf.page_bytes(1, 2) == len(b'[ {"a":2}, {"a":3} ]')


def test_large_results_spool_to_disk_and_stream_in_chunks(tmp_path) -> None:
    rf = ResultFile(b'"Id","Name"\n', spool_bytes=4096, directory=str(tmp_path))
    for start in range(0, 3000, 500):
        rf.extend_text(_csv_rows(500, start))
    assert rf.on_disk
    rf.finish()
    chunks = list(rf.iter_page(1000, 1500, chunk_bytes=1000))
    assert max(len(c) for c in chunks) <= 1000
    body = b"".join(chunks).decode()
    lines = body.splitlines()
    assert lines[0] == '"Id","Name"'
    assert lines[1] == '"001000000001000","name 1000"'
    assert lines[-1] == '"001000000002499","name 2499"'
    assert len(lines) == 1501
    rf.discard()
    with pytest.raises(RuntimeError, match="discarded"):
        rf.read_page(0, 1)


def test_pages_can_be_read_while_the_producer_is_still_writing(tmp_path) -> None:
    rf = ResultFile(spool_bytes=100, directory=str(tmp_path))
    rf.extend_text(_csv_rows(10))
    first = rf.read_page(0, 10)
    rf.extend_text(_csv_rows(10, 10))
    assert rf.read_page(0, 10) == first
    assert rf.read_page(19, 1) == b'"001000000000019","name 19"\n'


def test_finished_file_refuses_more_rows_and_bad_ranges() -> None:
    rf = ResultFile()
    rf.append(b"x\n")
    rf.finish()
    assert rf.finished
    with pytest.raises(RuntimeError, match="finished"):
        rf.append(b"y\n")
    with pytest.raises(ValueError, match="bad result page"):
        rf.read_page(-1, 1)


def test_concurrent_readers_see_their_own_pages(tmp_path) -> None:
    rf = ResultFile(spool_bytes=1024, directory=str(tmp_path))
    rf.extend_text(_csv_rows(2000))
    rf.finish()
    expected = {s: "".join(_csv_rows(100, s)).encode() for s in range(0, 2000, 100)}
    seen: dict[int, bytes] = {}

    def read(start: int) -> None:
        seen[start] = rf.read_page(start, 100)

    threads = [threading.Thread(target=read, args=(s,)) for s in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == expected


# ---------------------------------------------------------------------------- WorkerPool


def test_serial_group_runs_one_task_at_a_time_in_order() -> None:
    pool = WorkerPool(4)
    order: list[int] = []
    active = [0]
    peak = [0]
    lock = threading.Lock()

    def task(n: int) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            order.append(n)
            active[0] -= 1

    try:
        for n in range(8):
            pool.submit("job-s", lambda n=n: task(n), serial=True)
        assert pool.wait_idle("job-s", timeout=5)
        assert order == list(range(8))
        assert peak[0] == 1
    finally:
        pool.shutdown()


def test_parallel_group_runs_tasks_concurrently() -> None:
    pool = WorkerPool(4)
    barrier = threading.Barrier(4, timeout=5)
    passed: list[int] = []

    def task(n: int) -> None:
        barrier.wait()  # only returns when four tasks run at the same time
        passed.append(n)

    try:
        for n in range(4):
            pool.submit("job-p", lambda n=n: task(n))
        assert pool.wait_idle(timeout=5)
        assert sorted(passed) == [0, 1, 2, 3]
    finally:
        pool.shutdown()


def test_a_serial_job_does_not_block_other_jobs() -> None:
    pool = WorkerPool(2)
    release = threading.Event()
    done: list[str] = []
    try:
        pool.submit("slow", release.wait, serial=True)
        pool.submit("slow", lambda: done.append("slow-2"), serial=True)
        pool.submit("other", lambda: done.append("other"))
        assert pool.wait_idle("other", timeout=5)
        assert done == ["other"]
        assert pool.pending("slow") == 2
        release.set()
        assert pool.wait_idle(timeout=5)
        assert done == ["other", "slow-2"]
    finally:
        release.set()
        pool.shutdown()


def test_cancel_drops_queued_tasks_but_lets_running_ones_finish() -> None:
    pool = WorkerPool(1)
    started = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def first() -> None:
        started.set()
        release.wait(5)
        ran.append("first")

    try:
        pool.submit("job", first, serial=True)
        pool.submit("job", lambda: ran.append("second"), serial=True)
        pool.submit("job", lambda: ran.append("third"), serial=True)
        assert started.wait(5)
        assert pool.cancel("job") == 2
        release.set()
        assert pool.wait_idle(timeout=5)
        assert ran == ["first"]
        # The group is usable again afterwards.
        pool.submit("job", lambda: ran.append("later"), serial=True)
        assert pool.wait_idle(timeout=5)
        assert ran == ["first", "later"]
    finally:
        release.set()
        pool.shutdown()


def test_a_failing_task_is_logged_and_the_pool_keeps_working(caplog) -> None:
    pool = WorkerPool(1)

    def boom() -> None:
        raise ValueError("broken batch")

    ran: list[int] = []
    try:
        pool.submit("job-x", boom, serial=True)
        pool.submit("job-x", lambda: ran.append(1), serial=True)
        assert pool.wait_idle(timeout=5)
    finally:
        pool.shutdown()
    assert ran == [1]
    assert "background task of job job-x failed" in caplog.text


def test_shutdown_wakes_sleeping_tasks_and_refuses_new_work() -> None:
    pool = WorkerPool(1)
    slept: list[bool] = []
    started = threading.Event()

    def sleeper() -> None:
        started.set()
        slept.append(pool.sleep(60))

    pool.submit("job", sleeper)
    assert started.wait(5)
    begun = time.monotonic()
    pool.shutdown(timeout=5)
    assert time.monotonic() - begun < 2
    assert slept == [False]
    assert pool.stopping
    with pytest.raises(RuntimeError, match="shutting down"):
        pool.submit("job", lambda: None)


# ---------------------------------------------------------------------------- JobEngine and time


def test_engine_ids_and_registry() -> None:
    engine = JobEngine(workers=1)
    try:
        job_id = engine.new_job_id()
        batch_id = engine.new_batch_id()
        result_id = engine.new_result_id()
        assert job_id.startswith("750") and len(job_id) == 18 and is_valid_id(job_id)
        assert batch_id.startswith("751") and len(batch_id) == 18 and is_valid_id(batch_id)
        assert result_id.startswith("752") and len(result_id) == 15
        assert engine.new_job_id() != job_id

        record = {"id": job_id}
        engine.add(job_id, record)
        assert engine.get(job_id) is record
        assert engine.get(job_id[:15]) is record
        assert engine.get(job_id, kind=list) is None
        assert engine.get(job_id[:15] + "ZZZ") is None  # wrong case-safe suffix
        assert engine.get("nonsense") is None
        assert engine.jobs(kind=dict) == [record]
        assert engine.remove(job_id) is record
        assert engine.get(job_id) is None
    finally:
        engine.shutdown()


def test_engine_shutdown_discards_result_files() -> None:
    class Job:
        def __init__(self, rf: ResultFile) -> None:
            self.rf = rf

        def discard_results(self) -> None:
            self.rf.discard()

    engine = JobEngine(workers=1)
    rf = engine.result_file(b"h\n")
    rf.append(b"r\n")
    engine.add(engine.new_job_id(), Job(rf))
    engine.shutdown()
    with pytest.raises(RuntimeError, match="discarded"):
        rf.read_page()


def test_datetime_formats() -> None:
    stamp = datetime(2015, 12, 15, 21, 41, 45, 7000, tzinfo=timezone.utc)
    assert format_xml_datetime(stamp) == "2015-12-15T21:41:45.007Z"
    assert format_json_datetime(stamp) == "2015-12-15T21:41:45.007+0000"
    later = datetime(2015, 12, 15, 21, 41, 46, 500000, tzinfo=timezone.utc)
    assert elapsed_ms(stamp, later) == 1493
    assert elapsed_ms(later, stamp) == 0
