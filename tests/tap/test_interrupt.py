"""SIGTERM/SIGINT mid-run: exit 128+signum, keep the old bookmark, abort the job, resume whole."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from sfbulk import http as sf_http
from tests.tap.conftest import at, emulator_config, run_tap, write_at

ROOT = Path(__file__).resolve().parents[2]


def test_sigterm_mid_stream_keeps_bookmark_and_resume_reads_everything(
        emulator_factory, tmp_path) -> None:
    server = emulator_factory(seed="empty", workers=1)
    org = server.state.org
    base = at(3600)
    ids = [write_at(org, base + dt.timedelta(seconds=i), "Contact", "insert",
                    [{"LastName": f"Person {i}"}])[0] for i in range(16)]
    config = emulator_config(server, streams=["Contact"], bulk_api="1.0", pk_chunking="on",
                             pk_chunk_size=4, lookback_seconds=0, poll_interval_max_seconds=0.5)
    first = run_tap(config)
    bookmark = first.bookmark("Contact")
    assert len(first.records["Contact"]) == 16

    # Every row changes; the next run must deliver all sixteen.
    changed = base + dt.timedelta(seconds=600)
    write_at(org, changed, "Contact", "update",
             [{"Id": i, "LastName": f"Changed {n}"} for n, i in enumerate(ids)])
    server.state.faults.configure({"processing_delay_seconds": 1.0})

    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "state.json").write_text(json.dumps(first.final_state))
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_sfbulk.tap", "--config", str(tmp_path / "config.json"),
         "--state", str(tmp_path / "state.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    reader.start()
    lines: list[str] = []
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if '"type":"RECORD"' in line:
            process.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "no record before the deadline"
    lines.extend(process.stdout)
    process.wait(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, "".join(stderr)[-3000:]
    reader.join(timeout=5)
    process.stdout.close()
    assert process.stderr is not None
    process.stderr.close()

    messages = [json.loads(line, parse_float=Decimal) for line in lines if line.strip()]
    got = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert 0 < len(got) < 16, "".join(stderr)[-3000:]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    # No STATE of the interrupted run moves the bookmark past rows it has not delivered.
    for state in states:
        assert state["bookmarks"]["Contact"]["replication_key_value"] == bookmark
    assert "progress_markers" not in states[-1]["bookmarks"]["Contact"]
    # The Bulk job was aborted, not left open.
    jobs = server.state.jobs.jobs()
    assert jobs[-1].state == "Aborted", "".join(stderr)[-4000:]

    server.state.faults.clear()
    resumed = run_tap(config, state=states[-1])
    assert set(resumed.by_id("Contact")) == set(ids)
    assert all(r["LastName"].startswith("Changed") for r in resumed.records["Contact"])
    assert resumed.bookmark("Contact") == changed.isoformat(timespec="microseconds")


def test_sigint_while_job_runs_exits_130_with_only_the_old_bookmark(
        emulator_factory, tmp_path) -> None:
    """An interrupted extraction must not look finished: exit 130 for Ctrl-C (SIGTERM, 143, is
    checked mid-stream above), the job aborted, and every STATE written still holds the
    bookmark the run started from."""
    server = emulator_factory(seed="demo", records=5)
    server.state.faults.configure({"never_finish": True})
    config = emulator_config(server, streams=["Account"], pk_chunking="off",
                             poll_interval_max_seconds=0.2)
    bookmark = "2020-01-01T00:00:00.000000+00:00"
    state = {"bookmarks": {"Account": {"replication_key": "SystemModstamp",
                                       "replication_key_value": bookmark}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "state.json").write_text(json.dumps(state))
    process = subprocess.Popen(
        [sys.executable, "-m", "tap_sfbulk.tap", "--config", str(tmp_path / "config.json"),
         "--state", str(tmp_path / "state.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not server.state.jobs.jobs():
            assert process.poll() is None, process.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, "the tap started no job"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err.decode()[-3000:]
    messages = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert not [m for m in messages if m["type"] == "RECORD"]
    states = [m["value"] for m in messages if m["type"] == "STATE"]
    assert states, err.decode()[-3000:]
    for value in states:
        assert value["bookmarks"]["Account"]["replication_key_value"] == bookmark
        assert "progress_markers" not in value["bookmarks"]["Account"]
    assert [job.state for job in server.state.jobs.jobs()] == ["Aborted"]


def test_a_second_signal_while_stopping_is_only_logged(demo_emulator, monkeypatch) -> None:
    """The first signal stops the run (exit 128+signum); one arriving while the jobs are being
    aborted and the closing STATE written must not cut that work short with a new SystemExit."""
    from tap_sfbulk.tap import TapSfBulk

    requested: list[bool] = []
    monkeypatch.setattr(sf_http, "request_shutdown", lambda: requested.append(True))
    tap = TapSfBulk(config=emulator_config(demo_emulator, streams=["Account"]))
    with pytest.raises(SystemExit) as info:
        tap._handle_termination(signal.SIGINT, None)
    assert info.value.code == 130
    assert tap._handle_termination(signal.SIGTERM, None) is None
    assert requested == [True]
