#!/usr/bin/env python3
"""Run the reliability suite and render what it observed as ``docs/reliability.md``.

Each test in ``tests/reliability`` records rows (the fault or input, what happened, records
before and after) through its ``observe`` fixture; with ``SFBULK_RELIABILITY_RESULTS`` set they
are appended to that JSON-lines file together with the test's outcome. This script runs the suite
with the variable set (or reads an existing results file with ``--results``), then writes one
table per area, so the report always shows what the last real run saw.

Usage::

    .venv/bin/python scripts/reliability_report.py            # run the suite, write the report
    .venv/bin/python scripts/reliability_report.py --results r.jsonl --output -  # render only
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_ENV = "SFBULK_RELIABILITY_RESULTS"

#: Report sections, in order, with the sentence that introduces each.
AREAS = {
    "faults": ("Faults", "Failures injected through the emulator, signals sent to the real "
               "processes. *Records* counts what was offered before the fault and what the "
               "org (or the tap's output) held after the run and, where the run stopped, "
               "its rerun from the last STATE."),
    "bad input": ("Bad input", "Singer input a tap should never send, fed to target-sfbulk. "
                  "*Records*: offered → loaded; each refused record is in the failed-records "
                  "output (or, for input that is not Singer, the run stops before any job)."),
    "config": ("Configuration errors", "Refused at start; the emulator saw no Bulk job."),
    "hostile": ("Hostile values", "Values built to break CSV, SOQL or XML handling."),
    "security": ("Security", "Secrets, transport, files and the emulator's own surface."),
}

#: How the suite works: fixed text placed before the tables (the tables are the results).
METHOD = """## How the suite works

- Every test starts its own emulator (`sfbulk-emulator`'s app, in the test process) on a free
  loopback port and talks to it over real HTTP. Faults come from the emulator's switches
  (`POST /_emulator/faults`: HTTP 500/503, connections cut after N bytes of the answer,
  `REQUEST_LIMIT_EXCEEDED`, expiring sessions, failing, slow or never-ending batches,
  `UNABLE_TO_LOCK_ROW`), from `/_emulator/revoke-refresh-token`, and from signals.
- Signals, exit codes, pipes and secrets are tested on the real commands (`tap-sfbulk`,
  `target-sfbulk`, `sfbulk-emulator`) run as subprocesses. `meltano run tap target` is
  emulated by joining the two commands with an OS pipe (Meltano itself is not installed).
  Other faults run the plugins in the test process, over the same HTTP, with the retry waits
  shortened to milliseconds (the retry rules are the product's); a failed run is then rerun
  the way a Singer rerun would be, and the org is checked record by record.
- Loads upsert by an external id, so a rerun shows whether anything was lost or duplicated
  (an insert rerun after a failure may duplicate what the failed run had already loaded:
  Singer is at-least-once).
- HTTP 429 is not among the emulator's faults; the client's handling of it is proven against a
  scripted server in `tests/sfbulk/test_http.py`.
"""

OUTCOME_MARK = {"passed": "pass", "failed": "**FAIL**", "xfailed": "known gap",
                "xpassed": "**fixed? (xpass)**", "skipped": "skipped"}


def run_suite(results: Path, extra: list[str]) -> int:
    """Run ``tests/reliability`` with the results variable set; return pytest's exit code."""
    env = dict(os.environ, **{RESULTS_ENV: str(results)})
    command = [str(ROOT / ".venv" / "bin" / "pytest"), "tests/reliability", "-q", "-n", "2",
               "-p", "no:cacheprovider", *extra]
    return subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own pytest


def load(results: Path) -> list[dict[str, Any]]:
    """Read the observation rows (one JSON object per line)."""
    rows = []
    for line in results.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _records(row: dict[str, Any]) -> str:
    before, after = row.get("before"), row.get("after")
    if before is None and after is None:
        return "-"
    return f"{_cell(before)} → {_cell(after)}"


def render(rows: Iterable[dict[str, Any]], *, seconds: float | None = None,
           exit_code: int | None = None) -> str:
    """The markdown report for ``rows``."""
    rows = list(rows)
    by_area: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_area.setdefault(row.get("area") or "other", []).append(row)
    outcomes: dict[str, int] = {}
    tests: dict[str, str] = {}
    for row in rows:
        tests[row["test"]] = row["outcome"]
    for outcome in tests.values():
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    lines = [
        "# Reliability and security report",
        "",
        "Generated by `scripts/reliability_report.py` from a run of `tests/reliability` "
        "(each test records what it observed; nothing here is written by hand). "
        "Regenerate after changing the product or the suite.",
        "",
        f"- Generated: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Tests: {len(tests)} ("
        + ", ".join(f"{count} {name}" for name, count in sorted(outcomes.items())) + ")",
    ]
    if seconds is not None:
        lines.append(f"- Suite wall time: {seconds:.0f} s with `pytest -n 2`")
    if exit_code is not None:
        lines.append(f"- pytest exit code: {exit_code}")
    lines += ["", "Result *known gap* marks a strict `xfail`: the test shows a defect that is "
              "still open, and its reason says why (see *Open gaps* below).", "", METHOD]
    order = list(AREAS) + sorted(set(by_area) - set(AREAS))
    for area in order:
        if area not in by_area:
            continue
        title, intro = AREAS.get(area, (area.title(), ""))
        lines += [f"## {title}", "", intro, "",
                  "| Fault or input | What happened | Records | Result |",
                  "|---|---|---|---|"]
        for row in sorted(by_area[area], key=lambda r: (r["case"], r["test"])):
            lines.append(f"| {_cell(row['case'])} | {_cell(row['happened'])} | "
                         f"{_records(row)} | {OUTCOME_MARK.get(row['outcome'], row['outcome'])} |")
        lines.append("")
    gaps = {row["test"]: row.get("xfail_reason", "") for row in rows
            if row["outcome"] in ("xfailed", "xpassed")}
    if gaps:
        lines += ["## Open gaps", ""]
        for test, reason in sorted(gaps.items()):
            lines.append(f"- `{test.split('::', 1)[-1]}`: {reason}")
        lines.append("")
    failures = sorted({row["test"] for row in rows if row["outcome"] == "failed"})
    if failures:
        lines += ["## Failing tests", ""] + [f"- `{t}`" for t in failures] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path,
                        help="render this existing results file instead of running the suite")
    parser.add_argument("--output", default=str(ROOT / "docs" / "reliability.md"),
                        help="where to write the markdown ('-' for stdout)")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments")
    args = parser.parse_args(argv)
    exit_code = None
    seconds = None
    if args.results is not None:
        results = args.results
    else:
        handle = tempfile.NamedTemporaryFile(prefix="reliability-", suffix=".jsonl",
                                             delete=False)
        handle.close()
        results = Path(handle.name)
        results.write_text("")
        started = time.monotonic()
        exit_code = run_suite(results, args.pytest_args)
        seconds = time.monotonic() - started
    text = render(load(results), seconds=seconds, exit_code=exit_code)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} from {results}", file=sys.stderr)
    return 0 if exit_code in (None, 0) else exit_code


if __name__ == "__main__":
    sys.exit(main())
