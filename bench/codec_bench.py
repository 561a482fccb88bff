"""Throughput and CPU of the Bulk CSV codec (the tap's and the target's hot paths).

Run: ``.venv/bin/python bench/codec_bench.py [rows]``. Prints:

- reading (CSV bytes -> typed records, as the tap does) and writing (records -> CSV batches) of a
  20-column row, as rows/s and cells/s;
- the target's CSV encoding of the ``bench/target_bench.py`` records (``Account``, 6 fields, the
  values the Singer SDK hands over: ``str``, ``int``, ``Decimal``, ``None``), in groups of
  10,000 as the sink hands them to the loader, with Bulk 2.0 and Bulk 1.0 batch limits: CPU
  seconds per 100,000 records record by record (``add()`` and ``flush()``) beside the whole
  group at once (``batches(keyed=True)``, runs of one shape encoded column by column).

CPU is measured with ``time.process_time`` (the machine is shared: wall times are noisy); each
figure is the best of three.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sfbulk.bulk2 import MAX_UPLOAD_BYTES
from sfbulk.csvcodec import Column, CsvBatch, CsvBatcher, RecordTyper

# A typical mixed sObject row: ids, text, picklists, numbers, flags and timestamps.
COLUMNS = [
    ("Id", "id"), ("Name", "string"), ("OwnerId", "reference"), ("Type", "picklist"),
    ("Industry", "picklist"), ("AnnualRevenue", "currency"), ("NumberOfEmployees", "int"),
    ("Rating__c", "double"), ("Share__c", "percent"), ("IsActive__c", "boolean"),
    ("IsDeleted", "boolean"), ("CreatedDate", "datetime"), ("LastModifiedDate", "datetime"),
    ("SystemModstamp", "datetime"), ("CloseDate__c", "date"), ("Description", "textarea"),
    ("Phone", "phone"), ("Website", "url"), ("BillingCity", "string"), ("Email__c", "email"),
]
CELLS = [
    "0015f00000BCvReAAL", "Edge Communications", "0055f000001AbcDAAS", "Customer - Direct",
    "Electronics", "139000000", "1000", "4.25", "12.5", "true", "false",
    "2024-01-02T03:04:05.000Z", "2024-03-04T05:06:07.000Z", "2024-03-04T05:06:07.000Z",
    "2024-05-06", 'Long text, with "quotes"\nand a line break', "(512) 757-6000",
    "http://edgecomm.com", "Austin", "info@edgecomm.com",
]
ACCOUNT_TYPES = {"Name": "string", "AccountNumber": "string", "NumberOfEmployees": "int",
                 "AnnualRevenue": "currency", "Description": "textarea", "Industry": "picklist"}
GROUP = 10_000  # the sink's default batch_size_rows: one loader group


def make_page(rows: int) -> bytes:
    header = ",".join(f'"{name}"' for name, _ in COLUMNS)
    row = ",".join('"' + cell.replace('"', '""') + '"' for cell in CELLS)
    return (header + "\n" + (row + "\n") * rows).encode("utf-8")


def bench_read(rows: int) -> float:
    page = make_page(rows)
    chunks = [page[i : i + 65536] for i in range(0, len(page), 65536)]
    typer = RecordTyper(dict(COLUMNS), stream="Account")
    start = time.perf_counter()
    count = sum(1 for _ in typer.iter_records(chunks))
    elapsed = time.perf_counter() - start
    assert count == rows
    return elapsed


def wide_record() -> dict[str, Any]:
    return {
        "Id": CELLS[0], "Name": CELLS[1], "OwnerId": CELLS[2], "Type": CELLS[3],
        "Industry": CELLS[4], "AnnualRevenue": Decimal("139000000"), "NumberOfEmployees": 1000,
        "Rating__c": Decimal("4.25"), "Share__c": Decimal("12.5"), "IsActive__c": True,
        "IsDeleted": False,
        "CreatedDate": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "LastModifiedDate": dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc),
        "SystemModstamp": "2024-03-04T05:06:07.000Z", "CloseDate__c": dt.date(2024, 5, 6),
        "Description": CELLS[15], "Phone": CELLS[16], "Website": CELLS[17],
        "BillingCity": CELLS[18], "Email__c": None,
    }


def bench_write(rows: int) -> float:
    types = dict(COLUMNS)
    record = wide_record()
    batcher = CsvBatcher(lambda key: Column(key, types[key]))
    start = time.perf_counter()
    written = 0
    for outcome in batcher.batches(record for _ in range(rows)):
        assert isinstance(outcome, CsvBatch)
        written += outcome.rows
    elapsed = time.perf_counter() - start
    assert written == rows
    return elapsed


def account_rows(count: int) -> list[dict[str, Any]]:
    """The records of ``bench/target_bench.py`` as the loader gets them (JSON numbers with a
    fraction are ``Decimal``, as the Singer SDK parses them)."""
    return [{"Name": f"Account {i}", "AccountNumber": f"AC-{i:08d}",
             "NumberOfEmployees": i % 5000, "AnnualRevenue": Decimal(str(round(i * 1.25, 2))),
             "Description": f"Customer number {i}, \"quoted\", with a comma",
             "Industry": "Energy" if i % 2 else None} for i in range(count)]


def per_record(batcher: CsvBatcher, items: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    out = [outcome for key, row in items if (outcome := batcher.add(row, key)) is not None]
    last = batcher.flush()
    return out if last is None else [*out, last]


def whole_group(batcher: CsvBatcher, items: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    return list(batcher.batches(items, keyed=True))


def encode_cpu(rows: int, make: Callable[[], CsvBatcher],
               encode: Callable[[CsvBatcher, list[tuple[int, dict[str, Any]]]], list[Any]],
               ) -> tuple[float, list[Any]]:
    """Best-of-three CPU seconds to encode ``rows`` Account records in loader-sized groups."""
    records = account_rows(rows)
    groups = [list(enumerate(records[start:start + GROUP], start))
              for start in range(0, rows, GROUP)]
    best = float("inf")
    produced: list[Any] = []
    for _ in range(3):
        start = time.process_time()
        produced = [outcome for group in groups for outcome in encode(make(), group)]
        best = min(best, time.process_time() - start)
    return best, produced


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    cells = rows * len(COLUMNS)
    for label, bench in (("read  (CSV bytes -> typed records)", bench_read),
                         ("write (records -> CSV batches)   ", bench_write)):
        elapsed = bench(rows)
        print(f"{label}: {rows:,} rows x {len(COLUMNS)} columns in {elapsed:.2f}s = "
              f"{rows / elapsed:,.0f} rows/s, {cells / elapsed:,.0f} cells/s")

    def resolver(key: str) -> Column:
        return Column(key, ACCOUNT_TYPES[key])

    limits = {
        "2.0": lambda: CsvBatcher(resolver, max_rows=10**9, max_bytes=MAX_UPLOAD_BYTES,
                                  max_chars=MAX_UPLOAD_BYTES),
        "1.0": lambda: CsvBatcher(resolver, max_rows=10_000, max_bytes=10_000_000,
                                  max_chars=10_000_000),
    }
    per = 100_000 / rows
    for api, make in limits.items():
        row_cpu, expected = encode_cpu(rows, make, per_record)
        group_cpu, got = encode_cpu(rows, make, whole_group)
        assert got == expected, "the whole-group batches differ from the per-record ones"
        print(f"target encoding, Bulk {api} limits, Account x 6 fields: CPU per 100k records "
              f"record by record {row_cpu * per:.3f}s, whole group {group_cpu * per:.3f}s "
              f"({row_cpu / group_cpu:.1f}x)")


if __name__ == "__main__":
    main()
