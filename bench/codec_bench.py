"""Throughput of the Bulk CSV codec on a 20-column row (the tap's and the target's hot paths).

Run: ``.venv/bin/python bench/codec_bench.py [rows]``. Prints rows/s and cells/s for reading
(bytes → typed records, as the tap does) and for writing (records → CSV batches, as the target
does).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from decimal import Decimal

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


def bench_write(rows: int) -> float:
    types = dict(COLUMNS)
    record = {
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
    batcher = CsvBatcher(lambda key: Column(key, types[key]))
    start = time.perf_counter()
    written = 0
    for outcome in batcher.batches(record for _ in range(rows)):
        assert isinstance(outcome, CsvBatch)
        written += outcome.rows
    elapsed = time.perf_counter() - start
    assert written == rows
    return elapsed


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    cells = rows * len(COLUMNS)
    for label, bench in (("read  (CSV bytes -> typed records)", bench_read),
                         ("write (records -> CSV batches)   ", bench_write)):
        elapsed = bench(rows)
        print(f"{label}: {rows:,} rows x {len(COLUMNS)} columns in {elapsed:.2f}s = "
              f"{rows / elapsed:,.0f} rows/s, {cells / elapsed:,.0f} cells/s")


if __name__ == "__main__":
    main()
