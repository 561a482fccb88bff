"""Bulk 1.0 JSON query results keep every digit of decimal numbers."""

from __future__ import annotations

import io
from decimal import Decimal

from sfbulk.bulk1 import iter_result_rows


def test_json_result_numbers_are_exact_decimals() -> None:
    body = io.BytesIO(
        b'[ {"attributes" : {"type" : "Opportunity"}, "Amount" : 12345678901234567.89,'
        b' "Probability" : 0.1, "NumberOfEmployees" : 9007199254740993, "Name" : "x"} ]'
    )
    rows = list(iter_result_rows(body, "JSON"))
    assert rows == [
        {
            "Amount": Decimal("12345678901234567.89"),
            "Probability": Decimal("0.1"),
            "NumberOfEmployees": 9007199254740993,
            "Name": "x",
        }
    ]
    assert str(rows[0]["Amount"]) == "12345678901234567.89"
