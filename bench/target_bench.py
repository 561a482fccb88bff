"""Benchmark target-sfbulk against the emulator, beside a raw baseline, and print the figures.

For each input size and Bulk API, the target runs as its own process (``python -m
target_sfbulk.target --input FILE``) against an emulator running in another process, so the
target's CPU seconds and peak memory are its own. Reported per run: wall time, records/s, the
target's CPU seconds (user + system), its peak RSS, and the Salesforce API calls it made.

The baseline, in the same run, does the unavoidable part of the work with no Singer SDK: parse the
same Singer lines with ``json.loads`` and write the records as CSV with ``csv.writer``. The aim is
the target's CPU within 2x of the baseline, and peak memory flat as the input grows.

Usage::

    .venv/bin/python bench/target_bench.py                       # 250k and 1M records, both APIs
    .venv/bin/python bench/target_bench.py --sizes 100000 --apis 2.0
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfbulk.emulator.app import EmulatorSettings  # noqa: E402

FIELDS = ["Name", "AccountNumber", "NumberOfEmployees", "AnnualRevenue", "Description",
          "Industry"]


def write_input(path: Path, count: int) -> None:
    schema = {"type": "SCHEMA", "stream": "Account", "key_properties": [],
              "schema": {"type": "object", "properties": {
                  "Name": {"type": "string"}, "AccountNumber": {"type": ["string", "null"]},
                  "NumberOfEmployees": {"type": ["integer", "null"]},
                  "AnnualRevenue": {"type": ["number", "null"]},
                  "Description": {"type": ["string", "null"]},
                  "Industry": {"type": ["string", "null"]}}}}
    with path.open("w", encoding="utf-8") as out:
        out.write(json.dumps(schema) + "\n")
        for i in range(count):
            record = {"Name": f"Account {i}", "AccountNumber": f"AC-{i:08d}",
                      "NumberOfEmployees": i % 5000, "AnnualRevenue": round(i * 1.25, 2),
                      "Description": f"Customer number {i}, \"quoted\", with a comma",
                      "Industry": "Energy" if i % 2 else None}
            out.write(json.dumps({"type": "RECORD", "stream": "Account", "record": record})
                      + "\n")
        out.write(json.dumps({"type": "STATE", "value": {"loaded": count}}) + "\n")


def baseline(path: Path) -> tuple[float, float]:
    """Parse the Singer lines and write CSV, no SDK: (CPU seconds, wall seconds)."""
    cpu, wall = time.process_time(), time.perf_counter()
    sink = io.StringIO()
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(FIELDS)
    rows = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            message = json.loads(line)
            if message.get("type") != "RECORD":
                continue
            record = message["record"]
            writer.writerow(["#N/A" if record.get(f) is None else record.get(f) for f in FIELDS])
            rows += 1
            if rows % 10_000 == 0:
                sink.seek(0)
                sink.truncate()
    return time.process_time() - cpu, time.perf_counter() - wall


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sfbulk.emulator.cli", "--port", str(port), "--workers", "4",
         "--log-level", "warning"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/_emulator/stats", timeout=1)
            return process, url
        except requests.RequestException:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the emulator did not start")


def run_target(url: str, api: str, path: Path, workdir: Path) -> dict[str, float]:
    defaults = EmulatorSettings()
    cfg = {"auth_type": "refresh_token", "login_url": url, "client_id": defaults.client_id,
           "client_secret": defaults.client_secret, "refresh_token": defaults.refresh_token,
           "bulk_api": api, "action": "insert", "poll_interval_seconds": 0.2,
           "poll_interval_max_seconds": 2.0}
    cfg_path = workdir / f"config-{api}.json"
    cfg_path.write_text(json.dumps(cfg))
    log_path = workdir / f"target-{api}.log"
    started = time.perf_counter()
    with log_path.open("w") as log, open(os.devnull, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "target_sfbulk.target", "--config", str(cfg_path),
             "--input", str(path)], cwd=ROOT, stdout=out, stderr=log)
        # wait4 gives this one process's own CPU time and peak RSS.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    stderr = log_path.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"target failed ({process.returncode}):\n{stderr[-3000:]}")
    calls = re.search(r"API calls used by this run: (\d+)", stderr)
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "calls": float(calls.group(1)) if calls else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,1000000",
                        help="comma-separated record counts (default 250000,1000000)")
    parser.add_argument("--apis", default="2.0,1.0", help="Bulk APIs to run (default both)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    apis = args.apis.split(",")
    # CPU seconds inflate on a busy machine (shared cores, caches): say how busy it was.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"{'records':>9} {'run':<13} {'wall s':>8} {'rec/s':>9} {'CPU s':>8} "
          f"{'CPU/base':>8} {'peak MB':>8} {'API calls':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for size in sizes:
            path = workdir / f"input-{size}.jsonl"
            write_input(path, size)
            base_cpu, base_wall = baseline(path)
            print(f"{size:>9} {'baseline':<13} {base_wall:>8.1f} {size / base_wall:>9.0f} "
                  f"{base_cpu:>8.1f} {1.0:>8.2f} {'-':>8} {'-':>9}")
            for api in apis:
                emulator, url = start_emulator()
                try:
                    figures = run_target(url, api, path, workdir)
                finally:
                    emulator.terminate()
                    emulator.wait(timeout=30)
                print(f"{size:>9} {'target ' + api:<13} {figures['wall']:>8.1f} "
                      f"{size / figures['wall']:>9.0f} {figures['cpu']:>8.1f} "
                      f"{figures['cpu'] / base_cpu:>8.2f} {figures['rss_mb']:>8.0f} "
                      f"{figures['calls']:>9.0f}", flush=True)
            os.unlink(path)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
