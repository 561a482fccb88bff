"""Bulk 1.0 CSV batches: the full-rows fast path builds exactly the rows the general path does."""

from __future__ import annotations

import pytest

from sfbulk.emulator import bulk1
from sfbulk.emulator.bulk1 import MAX_FIELD_CHARACTERS, parse_csv_batch

BATCHES = {
    "full": b'Name,Phone\nA,1\n"B, Inc.",2\n',
    "empty cell": b"Name,Phone\nA,1\nB,\n",
    "null cell": b"Name,Phone\nA,#N/A\nB,2\n",
    "short row": b"Name,Phone\nA,1\nB\n",
    "bad row": b'Name,Phone\nA,1\n"B"x,2\n',
    "long cell": b"Name,Phone\nA,1\nB," + b"9" * (MAX_FIELD_CHARACTERS + 1) + b"\n",
}
EXPECTED = {
    "full": [{"Name": "A", "Phone": "1"}, {"Name": "B, Inc.", "Phone": "2"}],
    "empty cell": [{"Name": "A", "Phone": "1"}, {"Name": "B"}],
    "null cell": [{"Name": "A", "Phone": None}, {"Name": "B", "Phone": "2"}],
    "short row": [
        {"Name": "A", "Phone": "1"},
        ("INVALID_FIELD", "Row has 1 values but the header has 2 fields", ()),
    ],
    "bad row": [
        {"Name": "A", "Phone": "1"},
        ("INVALID_FIELD",
         "Failed to parse CSV row: Unexpected character 'x' after a closing quote", ()),
    ],
    "long cell": [
        {"Name": "A", "Phone": "1"},
        ("LIMIT_EXCEEDED",
         f"Field value exceeds the maximum of {MAX_FIELD_CHARACTERS} characters", ("Phone",)),
    ],
}


@pytest.mark.parametrize("name", list(BATCHES))
def test_rows_match_the_general_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = parse_csv_batch(BATCHES[name])
    assert (fast.rows, fast.columns) == (EXPECTED[name], ["Name", "Phone"])
    monkeypatch.setattr(bulk1, "_all_full_rows", lambda *args: False)
    assert parse_csv_batch(BATCHES[name]).rows == EXPECTED[name]


def test_fast_path_takes_only_full_batches() -> None:
    assert bulk1._all_full_rows([["A", "1"], ["B", "2"]], 2, 10) is True
    assert bulk1._all_full_rows([["A", "1"], ["B", ""]], 2, 10) is False
    assert bulk1._all_full_rows([["A", "1"], ["B", "#N/A"]], 2, 10) is False
    assert bulk1._all_full_rows([["A", "1"], ["B"]], 2, 10) is False
    assert bulk1._all_full_rows([["A", "1"], ["B", "12345678901"]], 2, 10) is False
    assert bulk1._all_full_rows([], 2, 10) is False
