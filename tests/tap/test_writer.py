"""The tap's msgspec message writer: exact decimals, the SDK's line format, flushes per kind."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from singer_sdk.singerlib.encoding.simple import RecordMessage, SchemaMessage, StateMessage
from singer_sdk.singerlib.json import serialize_json

from tap_sfbulk.writer import BufferedSingerWriter, encode_message

EXTRACTED = dt.datetime(2024, 3, 5, 6, 7, 8, 123456, tzinfo=dt.timezone.utc)


def _record(record: dict) -> RecordMessage:
    return RecordMessage(stream="Account", record=record, time_extracted=EXTRACTED)


def test_decimals_keep_their_digits_and_lines_match_the_sdk_writer() -> None:
    record = {
        "Id": "001000000000001AAA",
        "AnnualRevenue": Decimal("9999999999999.99"),
        "Ratio__c": Decimal("0.1000000000000000055511151231257827"),
        "Zero__c": Decimal("-0.00"),
        "Exp__c": Decimal("1E+2"),
        "Long__c": 9007199254740993,
        "Big__c": 2**70,
        "Flag__c": True,
        "Empty__c": None,
        "Name": "Plain ASCII, \"quoted\"\nnew line",
    }
    line = encode_message(_record(record))
    assert line == (serialize_json(_record(record).to_dict()) + "\n").encode()
    assert line == (
        b'{"type":"RECORD","stream":"Account","record":{"Id":"001000000000001AAA",'
        b'"AnnualRevenue":9999999999999.99,"Ratio__c":0.1000000000000000055511151231257827,'
        b'"Zero__c":-0.00,"Exp__c":1E+2,"Long__c":9007199254740993,'
        b'"Big__c":1180591620717411303424,"Flag__c":true,"Empty__c":null,'
        b'"Name":"Plain ASCII, \\"quoted\\"\\nnew line"},'
        b'"time_extracted":"2024-03-05T06:07:08.123456+00:00"}\n'
    )
    parsed = json.loads(line, parse_float=Decimal)["record"]
    assert parsed["Ratio__c"] == Decimal("0.1000000000000000055511151231257827")
    assert str(parsed["AnnualRevenue"]) == "9999999999999.99"


def test_non_ascii_text_is_utf8_and_reads_back_equal() -> None:
    text = "São Paulo \u2013 東京 \u2028 😀"
    line = encode_message(_record({"Name": text}))
    assert "São Paulo".encode() in line
    assert json.loads(line)["record"]["Name"] == text


@pytest.mark.parametrize(("value", "written"), [
    ("lone \udc80 surrogate", '"lone \\udc80 surrogate"'),
    (Decimal("NaN"), "null"),
    (Decimal("Infinity"), "null"),
])
def test_values_msgspec_refuses_take_the_sdk_path(value: object, written: str) -> None:
    line = encode_message(_record({"Value": value}))
    assert line.decode() == serialize_json(_record({"Value": value}).to_dict()) + "\n"
    assert f'"Value":{written}'.encode() in line


class _Out(io.TextIOWrapper):
    """A text stdout over a bytes buffer that counts flushes."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", write_through=False)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()

    def lines(self) -> list[str]:
        return self.buffer.getvalue().decode().splitlines()  # type: ignore[attr-defined]


def test_records_gather_in_blocks_and_other_messages_flush(monkeypatch) -> None:
    out = _Out()
    monkeypatch.setattr("sys.stdout", out)
    writer = BufferedSingerWriter()
    out.write("text before\n")  # written through the text layer first: must stay first
    writer.write_message(SchemaMessage("Account", {"type": "object", "properties": {}}, ["Id"]))
    assert len(out.lines()) == 2
    flushes_after_schema = out.flushes
    for n in range(3):
        writer.write_message(_record({"Id": str(n), "Amount": Decimal("1.10")}))
    assert out.flushes == flushes_after_schema
    assert len(out.lines()) == 2  # gathered, not yet written
    writer.write_message(StateMessage({"bookmarks": {"Account": {"replication_key_value": "x"}}}))
    assert out.flushes == flushes_after_schema + 1
    lines = out.lines()
    assert lines[0] == "text before"
    assert [json.loads(line)["type"] for line in lines[1:]] == [
        "SCHEMA", "RECORD", "RECORD", "RECORD", "STATE"]
    assert '"Amount":1.10' in lines[2]

    # A full block is written without waiting for a STATE; flush() sends the rest.
    writer.BLOCK_BYTES = 1000
    size = len(encode_message(_record({"Id": "0", "Amount": Decimal("1.10")})))
    per_block = -(-1000 // size)
    for n in range(per_block + 1):
        writer.write_message(_record({"Id": str(n), "Amount": Decimal("1.10")}))
    assert len(out.lines()) == 6 + per_block
    writer.flush()
    assert len(out.lines()) == 6 + per_block + 1


class _RawPipe:
    """An unbuffered stdout's binary layer: takes at most 100 bytes a call; can be interrupted."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.interrupt_at_call: int | None = None
        self.calls = 0

    def write(self, data: bytes) -> int:
        self.calls += 1
        if self.calls == self.interrupt_at_call:
            raise SystemExit(143)  # a signal handler raising between two partial writes
        taken = bytes(data[:100])
        self.data += taken
        return len(taken)

    def flush(self) -> None:
        pass


class _UnbufferedOut(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = _RawPipe()


def test_partial_and_interrupted_writes_never_cut_or_repeat_a_line(monkeypatch) -> None:
    out = _UnbufferedOut()
    monkeypatch.setattr("sys.stdout", out)
    writer = BufferedSingerWriter()
    writer.BLOCK_BYTES = 10**9
    records = [_record({"Id": f"{n:018d}", "Amount": Decimal(f"{n}.25")}) for n in range(5)]
    for message in records:
        writer.write_message(message)
    out.buffer.interrupt_at_call = 3
    with pytest.raises(SystemExit):
        writer.flush()
    assert len(out.buffer.data) == 200  # two partial writes went out before the interruption
    writer.write_message(StateMessage({"bookmarks": {}}))  # the closing STATE after a signal
    lines = out.buffer.data.decode().splitlines()
    assert [json.loads(line)["record"]["Id"] for line in lines[:-1]] == [
        f"{n:018d}" for n in range(5)]
    assert json.loads(lines[-1]) == {"type": "STATE", "value": {"bookmarks": {}}}


def test_a_stdout_without_a_buffer_gets_text(monkeypatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    writer = BufferedSingerWriter()
    writer.write_message(_record({"Amount": Decimal("2.50")}))
    assert out.getvalue() == ""
    writer.flush()
    assert out.getvalue() == (
        '{"type":"RECORD","stream":"Account","record":{"Amount":2.50},'
        '"time_extracted":"2024-03-05T06:07:08.123456+00:00"}\n')
