"""Benchmark tap-sfbulk on a large object through Bulk 2.0 and Bulk 1.0, beside a raw baseline.

Usage::

    .venv/bin/python bench/tap_bench.py [--records 1000000] [--small 100000]

An emulator is started in this process over an in-memory org holding ``--records`` Accounts
(``NumberOfEmployees`` = row number, so a filter can take the first ``--small`` of them). Then,
each in its own subprocess so CPU and memory are measured alone:

- ``tap 2.0`` / ``tap 1.0``: the real tap command writing Singer messages to a pipe this
  process drains and counts;
- ``raw``: the same Bulk 2.0 result pages fetched with plain ``requests``, parsed with ``csv``
  and written as JSON lines, with no SDK (the ceiling a Python tap could reach);

Printed per run: records, seconds, records/s, CPU seconds of the subprocess and records per CPU
second (the emulator shares the wall clock, so this is the cleaner cost figure), peak RSS
(sampled every 50 ms with psutil), the API calls used (from the tap's closing summary, discovery
included) and those calls per million records (the goal is at most 20 on Bulk 2.0). Memory is
reported for the small and the full extract so flatness can be judged. ``--apis 2.0`` measures
Bulk 2.0 only (a 1M-row run takes minutes on a loaded machine); ``--no-raw`` skips the baseline.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIELDS = ("Id,Name,AccountNumber,Industry,Type,AnnualRevenue,NumberOfEmployees,Phone,Website,"
          "BillingStreet,BillingCity,BillingPostalCode,BillingCountry,Description,IsDeleted,"
          "CreatedDate,LastModifiedDate,SystemModstamp")


def seed(org: Any, total: int) -> None:
    """Insert ``total`` Accounts quickly (storage-form values, no per-row checks)."""
    rng = random.Random(7)
    industries = ["Banking", "Retail", "Energy", "Media", "Technology"]
    cities = ["Paris", "São Paulo", "Athens", "Tokyo", "Austin"]
    chunk = 20_000
    base = time.time() - 86_400
    for start in range(0, total, chunk):
        rows = []
        for n in range(start, min(start + chunk, total)):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + n * 0.05))
            stamp += f".{n % 1000:03d}Z"
            rows.append({
                "Name": f"Company {n} \"quoted\", Ltd",
                "AccountNumber": f"AC{n:09d}",
                "Industry": industries[n % 5],
                "Type": "Customer",
                "AnnualRevenue": round(rng.random() * 1e9, 2),
                "NumberOfEmployees": n,
                "Phone": f"+1 555 {n % 10000:04d}",
                "Website": f"https://example{n}.com",
                "BillingStreet": f"{n} Main Street\nSuite {n % 100}",
                "BillingCity": cities[n % 5],
                "BillingPostalCode": f"{n % 100000:05d}",
                "BillingCountry": "Somewhere",
                "Description": "Lorem ipsum dolor sit amet, consectetur adipiscing elit." * 2,
                "CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp,
            })
        org.insert_raw("Account", rows)


def sample_rss(process: subprocess.Popen, peak: list[float], stop: threading.Event) -> None:
    """Record the peak resident memory and the CPU seconds of ``process`` until ``stop``."""
    try:
        handle = psutil.Process(process.pid)
        while not stop.is_set():
            peak[0] = max(peak[0], handle.memory_info().rss)
            times = handle.cpu_times()
            peak[1] = times.user + times.system
            stop.wait(0.05)
    except psutil.NoSuchProcess:
        return


def run_measured(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command; count stdout lines of RECORD messages; sample its memory."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, cwd=ROOT)
    peak = [0.0, 0.0]
    stop = threading.Event()
    sampler = threading.Thread(target=sample_rss, args=(process, peak, stop), daemon=True)
    sampler.start()
    errors: list[bytes] = []
    assert process.stdout is not None and process.stderr is not None
    err_pipe = process.stderr
    reader = threading.Thread(target=lambda: errors.extend(err_pipe), daemon=True)
    reader.start()
    records = 0
    for line in process.stdout:
        if line.startswith(b'{"type":"RECORD"') or line.startswith(b'{"Id"'):
            records += 1
    process.wait()
    seconds = time.monotonic() - started
    stop.set()
    reader.join()
    process.stdout.close()
    process.stderr.close()
    stderr = b"".join(errors).decode("utf-8", "replace")
    if process.returncode != 0:
        raise SystemExit(f"{command} failed:\n{stderr[-3000:]}")
    calls = None
    for text in stderr.splitlines():
        if text.startswith("total:") and "API calls" in text:
            calls = int(text.split(",")[2].split()[0])
    return {"records": records, "seconds": seconds, "rate": records / seconds,
            "cpu": peak[1], "cpu_rate": records / max(peak[1], 1e-9),
            "peak_mb": peak[0] / 1e6, "api_calls": calls}


def raw_baseline(url: str, token: str, soql: str) -> None:
    """Subprocess body: one Bulk 2.0 query, pages parsed with csv, JSON lines to stdout."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{url}/services/data/v62.0/jobs/query"
    job = session.post(base, json={"operation": "query", "query": soql}).json()
    while True:
        state = session.get(f"{base}/{job['id']}").json()["state"]
        if state == "JobComplete":
            break
        time.sleep(0.5)
    out = sys.stdout
    locator = None
    while True:
        params: dict[str, str] = {"locator": locator} if locator else {}
        response = session.get(f"{base}/{job['id']}/results", params=params)
        rows = csv.reader(io.StringIO(response.content.decode("utf-8")))
        header = next(rows)
        for row in rows:
            out.write(json.dumps(dict(zip(header, row, strict=True))) + "\n")
        locator = response.headers.get("Sforce-Locator")
        if not locator or locator == "null":
            break
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--apis", default="2.0,1.0",
                        help="Bulk APIs to measure, comma-separated (2.0, 1.0)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument("--raw", nargs=3, metavar=("URL", "TOKEN", "SOQL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        raw_baseline(*args.raw)
        return

    from sfbulk.emulator.app import EmulatorSettings, EmulatorState
    from sfbulk.emulator.server import run_in_thread
    from sfbulk.emulator.store import Org
    from tests.conftest import emulator_config, emulator_token

    settings = EmulatorSettings(api_daily_limit=1_000_000)
    org = Org(username=settings.username)
    started = time.monotonic()
    seed(org, args.records)
    print(f"seeded {args.records} Accounts in {time.monotonic() - started:.1f} s", flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with run_in_thread(EmulatorState(org=org, settings=settings)) as server, \
            tempfile.TemporaryDirectory() as tmp:
        results: list[tuple[str, dict[str, Any]]] = []
        apis = [api.strip() for api in args.apis.split(",") if api.strip()]
        plan = [(f"tap {api}", size, {"bulk_api": api, "pk_chunking": "off"})
                for api in apis for size in (args.small, args.records)]
        for label, size, extra in plan:
            config = emulator_config(server, streams=["Account"], upper_bound_lag_seconds=0,
                                     **extra)
            if size < args.records:
                config["soql_filter"] = {"Account": f"NumberOfEmployees < {size}"}
            path = Path(tmp) / "config.json"
            path.write_text(json.dumps(config))
            catalog = Path(tmp) / "catalog.json"
            discovered = subprocess.run(
                [sys.executable, "-m", "tap_sfbulk.tap", "--config", str(path), "--discover"],
                capture_output=True, env=env, cwd=ROOT, check=True).stdout
            entry = json.loads(discovered)
            keep = set(FIELDS.split(","))
            for item in entry["streams"][0]["metadata"]:
                crumb = item["breadcrumb"]
                if crumb:
                    item["metadata"]["selected"] = crumb[1] in keep
            catalog.write_text(json.dumps(entry))
            result = run_measured([sys.executable, "-m", "tap_sfbulk.tap", "--config",
                                   str(path), "--catalog", str(catalog)], env)
            results.append((f"{label} {size:>9,}", result))
            print(f"{label} {size:>9,}: {result}", flush=True)
        raw: dict[str, Any] | None = None
        if not args.no_raw:
            soql = f"SELECT {FIELDS} FROM Account"
            raw = run_measured([sys.executable, str(Path(__file__).resolve()), "--raw",
                                server.url, emulator_token(server), soql], env)
            results.append((f"raw     {args.records:>9,}", raw))
    print()
    print(f"{'run':<20} {'records':>9} {'seconds':>8} {'records/s':>10} {'CPU s':>7} "
          f"{'rec/CPU s':>10} {'peak MB':>8} {'API calls':>9} {'calls/1M':>8}")
    for label, r in results:
        calls = "-" if r["api_calls"] is None else str(r["api_calls"])
        per_million = ("-" if r["api_calls"] is None or not r["records"]
                       else f"{r['api_calls'] * 1e6 / r['records']:.0f}")
        print(f"{label:<20} {r['records']:>9} {r['seconds']:>8.1f} {r['rate']:>10.0f} "
              f"{r['cpu']:>7.1f} {r['cpu_rate']:>10.0f} {r['peak_mb']:>8.0f} {calls:>9} "
              f"{per_million:>8}")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if raw is None:
        return
    for label, r in results[:-1]:
        if r["records"] == args.records:
            print(f"{label.strip()}: {r['rate'] / raw['rate']:.0%} of the raw baseline's "
                  f"wall-clock rate, {r['cpu_rate'] / raw['cpu_rate']:.0%} of its rate per "
                  "CPU second")


if __name__ == "__main__":
    main()
