"""The target's Singer line reader gives exactly the SDK standard reader's messages and errors."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine

from target_sfbulk.reading import SingerLineReader

LINES = [
    '{"type":"RECORD","stream":"s","record":{"a":1.25,"b":1e5,"c":-0,"d":-0.0}}\n',
    '{"type":"RECORD","stream":"s","record":{"big":123456789012345678901234567890}}',
    '  {"type":"STATE","value":{"k":[1,2.50,null,true,"\\u00e9\\ud83d\\ude00"]}}  \n',
    '{"type":"RECORD","stream":"s","record":{"a":1,"a":2}}',
]


@pytest.mark.parametrize("line", LINES)
def test_same_message_as_the_standard_reader(line: str) -> None:
    ours = SingerLineReader().deserialize_json(line)
    assert ours == SimpleSingerReader().deserialize_json(line)
    assert repr(ours) == repr(SimpleSingerReader().deserialize_json(line))


def test_numbers_are_exact() -> None:
    record = SingerLineReader().deserialize_json(LINES[0])["record"]
    assert record == {"a": Decimal("1.25"), "b": Decimal("1E+5"), "c": 0, "d": Decimal("-0.0")}
    assert type(record["c"]) is int


def test_lines_msgspec_refuses_go_through_the_standard_parser() -> None:
    reader = SingerLineReader()
    assert math.isnan(reader.deserialize_json('{"record":{"x":NaN}}')["record"]["x"])
    assert reader.deserialize_json('{"record":{"x":Infinity}}')["record"]["x"] == math.inf
    # Undecodable input bytes reach the reader as lone surrogates (surrogateescape).
    assert reader.deserialize_json('{"n":"caf\udce9"}') == {"n": "caf\udce9"}
    assert reader.deserialize_json('{"n":"\\ud800"}') == {"n": "\ud800"}


@pytest.mark.parametrize("line", ["", "not json", '{"type":"STATE"} trailing', "{"])
def test_invalid_lines_raise_the_standard_error(line: str) -> None:
    with pytest.raises(InvalidInputLine, match="Unable to parse line as JSON"):
        SingerLineReader().deserialize_json(line)
