"""Ingest result lines built with joins for a whole batch are the bytes of the row-by-row way.

Bulk 2.0 successfulResults are compared with ``csv.writer`` (``QUOTE_ALL``), Bulk 1.0 result
files with the per-outcome lines, page by page (so the line ends the result file finds from
the quotes are checked too).
"""

from __future__ import annotations

import csv

import pytest

from sfbulk.emulator import bulk1, bulk2
from sfbulk.emulator.store import RecordError, RecordResult


class _Lines(list):
    write = list.append


def _writer_lines(rows: list[list[str]], results: list[RecordResult], delimiter: str,
                  newline: str) -> bytes:
    lines = _Lines()
    writer = csv.writer(lines, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator=newline)
    writer.writerows(
        [[r.id or "", "true" if r.created else "false", *row] for row, r in zip(rows, results)]
    )
    return "".join(lines).encode("utf-8")


ROWS = [
    ["plain", "a,b", "Zoë ☃"],
    ["two\nlines", "", "tab\there"],
    ["crlf\r\nx", "semi;colon", "pipe|x"],
    ["back\\slash", "%s", " spaced "],
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|", "^", "`"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_bulk2_success_lines_equal_csv_writer(delimiter: str, newline: str) -> None:
    results = [RecordResult(f"003000000000{n:03d}AAA", True, n % 2 == 0) for n in range(4)]
    got = bulk2._success_lines(ROWS, results, delimiter, newline)
    assert got == _writer_lines(ROWS, results, delimiter, newline)


def test_bulk2_success_lines_leave_other_sub_batches_to_the_writer() -> None:
    ok = [RecordResult(f"003000000000{n:03d}AAA", True, True) for n in range(2)]
    assert bulk2._success_lines([["say \"hi\""], ["x"]], ok, ",", "\n") is None
    failed = [ok[0], RecordResult(None, False, False, [RecordError("X", "y", [])])]
    assert bulk2._success_lines([["a"], ["b"]], failed, ",", "\n") is None
    assert bulk2._success_lines([], [], ",", "\n") is None


def test_bulk2_success_lines_make_pages_with_exact_offsets() -> None:
    results = [RecordResult(f"003000000000{n:03d}AAA", True, True) for n in range(4)]
    block = bulk2._success_lines(ROWS, results, ";", "\r\n")
    assert block is not None
    result = bulk2.ResultFile(b"header\r\n")
    result.extend_block(block, None, len(ROWS))
    result.finish()
    expected = [_writer_lines([row], [r], ";", "\r\n") for row, r in zip(ROWS, results)]
    for start in range(4):
        for count in range(1, 5 - start):
            want = b"header\r\n" + b"".join(expected[start : start + count])
            assert result.read_page(start, count) == want
            assert result.page_bytes(start, count) == len(want)


def _pages(result: bulk1.ResultFile) -> list[bytes]:
    return [result.read_page(start, count) for start in range(result.row_count)
            for count in (1, 2, result.row_count)]


def test_bulk1_created_results_equal_the_line_by_line_file(monkeypatch) -> None:
    outcomes = [RecordResult(f"001000000000{n:03d}AAA", True, True) for n in range(5)]
    fast = bulk1.encode_ingest_results(outcomes, "CSV")
    monkeypatch.setattr(bulk1, "_created_ids", lambda outcomes: None)
    slow = bulk1.encode_ingest_results(outcomes, "CSV")
    assert fast.read_page() == slow.read_page()
    assert fast.read_page().splitlines()[1] == b'"001000000000000AAA","true","true",""'
    assert _pages(fast) == _pages(slow)


@pytest.mark.parametrize("outcomes", [
    [RecordResult("001000000000001AAA", True, False)],  # an upsert's update
    [RecordResult("001000000000001AAA", True, True),
     RecordResult(None, False, False, [RecordError("REQUIRED_FIELD_MISSING", "m", ["Name"])])],
    [],
])
def test_bulk1_other_outcomes_take_the_line_by_line_way(outcomes) -> None:
    assert bulk1._created_ids(outcomes) is None
