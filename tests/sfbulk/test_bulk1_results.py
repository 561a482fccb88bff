"""Bulk 1.0 ingest results read column by column give what reading them row by row gives."""

from __future__ import annotations

import csv
import io
import random

import pytest

from sfbulk.bulk1 import RowResult, parse_batch_results
from sfbulk.csvcodec import iter_csv_rows
from target_sfbulk.loader import _from_row, outcomes_from_rows


def _row_by_row(data: bytes) -> list[RowResult]:
    """The reading one row at a time: each named cell, ``or None``, ``true`` as a boolean."""
    rows = iter_csv_rows([data])
    header = next(rows, None)
    if header is None:
        return []
    index = {name.lower(): i for i, name in enumerate(header)}

    def cell(row: list[str], name: str) -> str:
        at = index.get(name)
        return row[at] if at is not None and at < len(row) else ""

    return [RowResult(cell(row, "id") or None, cell(row, "success").strip().lower() == "true",
                      cell(row, "created").strip().lower() == "true", cell(row, "error") or None)
            for row in rows]


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("seed", range(10))
def test_batch_results_read_as_row_by_row(seed):
    rng = random.Random(seed)
    header = rng.choice([["Id", "Success", "Created", "Error"], ["id", "success", "created",
                                                                   "error"],
                         ["Error", "Id", "Success"], ["Success", "Created", "Id", "Error"]])
    rows = []
    for i in range(rng.choice([1, 30, 400])):
        ok = rng.random() < 0.8
        values = {"id": f"001{i:015d}" if ok or rng.random() < 0.3 else "",
                  "success": rng.choice(["true", "TRUE", " true "]) if ok else "false",
                  "created": rng.choice(["true", "false", "True", ""]),
                  "error": "" if ok else rng.choice(["DUPLICATE_VALUE:dup, \"quoted\":Ext__c --",
                                                     "odd\nline"])}
        row = [values[name.lower()] for name in header]
        if rng.random() < 0.05:
            row = row[:rng.randrange(len(row))]  # a short row
        rows.append(row)
    data = _csv(header, rows)
    parsed = parse_batch_results(data, "text/csv")
    assert parsed == _row_by_row(data)
    assert all(type(r) is RowResult for r in parsed)
    assert outcomes_from_rows(parsed, "750J", "751B") == [_from_row(r, "750J", "751B")
                                                         for r in parsed]


def test_batch_results_exact_values():
    data = (b'"Id","Success","Created","Error"\n'
            b'"001000000000001AAA","true","true",""\n'
            b'"","false","false","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:'
            b'Name --"\n')
    assert parse_batch_results(data) == [
        RowResult("001000000000001AAA", True, True, None),
        RowResult(None, False, False,
                  "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --")]
    assert parse_batch_results(b"") == []
    assert parse_batch_results(b'"Id","Success","Created","Error"\n') == []
    assert parse_batch_results(b'"Id","Success"\n"001A","true"\n') == [
        RowResult("001A", True, False, None)]


def test_outcomes_from_rows_all_successes_and_empty():
    rows = [RowResult(f"001{i}", True, i % 2 == 0, None) for i in range(50)]
    assert outcomes_from_rows(rows, "750J", "751B") == [_from_row(r, "750J", "751B")
                                                       for r in rows]
    assert outcomes_from_rows([], None, None) == []
