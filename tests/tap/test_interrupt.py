"""SIGTERM mid-stream keeps the old bookmark and aborts the job; resuming reads every row."""

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
