"""Measure ``seed_demo``: how long a demo org of N records takes to build.

Run: ``.venv/bin/python bench/seed_bench.py [--records 1000000] [--db path]``. The target is a
million records well under a minute.
"""

from __future__ import annotations

import argparse
import time

from sfbulk.emulator.seeds import seed_demo
from sfbulk.emulator.store import Org


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--db", default=None, help="SQLite file (default: in memory)")
    args = parser.parse_args()
    org = Org(args.db)
    wall, cpu = time.perf_counter(), time.process_time()
    counts = seed_demo(org, args.records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = sum(counts.values())
    print(f"seed_demo({args.records}): {counts}")
    print(f"{total} rows in {wall:.1f}s wall, {cpu:.1f}s CPU = {total / wall:,.0f} rows/s")


if __name__ == "__main__":
    main()
