"""Bad Singer input: each bad record is refused alone with an error naming the stream, the record
and the field, and lands in the failed-records output; input that is not a Singer stream stops
the run with one clear line. Every good record around the bad ones is loaded."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest

from target_sfbulk.target import TargetSfBulk
from tests.reliability.conftest import (
    command,
    messages_text,
    plugin_env,
    record_message,
    schema_message,
    target_config,
    write_config,
)

STREAM = "Type_Sample__c"
PROPERTIES = {
    "Ext_Id__c": {"type": "string"},
    "Name": {"type": "string"},
    "Int__c": {"type": ["integer", "null"]},
    "Double__c": {"type": ["number", "null"]},
    "DateTime__c": {"type": ["string", "null"], "format": "date-time"},
    "Text__c": {"type": ["string", "null"]},
    "Long_Text__c": {"type": ["string", "null"]},
}


def _record(key: str, **values) -> dict:
    return record_message(STREAM, {"Ext_Id__c": key, "Name": f"Name {key}", **values})


def _run(server, tmp_path, text: str | bytes, **config):
    """Run the target in-process on raw input; returns (states, error, failed entries)."""
    failed = tmp_path / "failed.jsonl"
    target = TargetSfBulk(config=target_config(server, action="upsert", max_failed_records=100,
                                               failed_records_path=str(failed), **config))
    out = io.StringIO()
    raw = text.encode("utf-8") if isinstance(text, str) else text
    # What the SDK's stdin is under a UTF-8 locale in CLI use: undecodable bytes are escaped.
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape")
    error = None
    try:
        with contextlib.redirect_stdout(out):
            target.listen(stream)
    except Exception as exc:
        error = exc
    finally:
        target.tally.close()
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    return [json.loads(line) for line in out.getvalue().splitlines()], error, entries


def _keys(server) -> list[str]:
    return sorted(r[0] for r in server.state.org.query(f"SELECT Ext_Id__c FROM {STREAM}"))


BAD_RECORDS = [
    ("value of the wrong type", {"Int__c": "many"}, "INVALID_VALUE", "Int__c",
     "'many' is not an integer"),
    ("NaN", {"Double__c": float("nan")}, "INVALID_VALUE", "Double__c", "not a finite number"),
    ("Infinity", {"Double__c": float("inf")}, "INVALID_VALUE", "Double__c",
     "not a finite number"),
    ("string over the field's length (255)", {"Text__c": "x" * 256}, "STRING_TOO_LONG",
     "Text__c", "data value too large"),
    ("a field over Bulk's 131,072-character limit", {"Long_Text__c": "y" * 131_073},
     "INVALID_VALUE", "Long_Text__c", "131072"),
    ("unknown field", {"Bogus__c": "x"}, "INVALID_FIELD", "Bogus__c", "has no field 'Bogus__c'"),
    ("unparseable date-time", {"DateTime__c": "yesterday"}, "INVALID_VALUE", "DateTime__c",
     "yesterday"),
]


@pytest.mark.parametrize(("case", "values", "code", "field", "text"), BAD_RECORDS,
                         ids=[b[0] for b in BAD_RECORDS])
def test_bad_record_is_refused_alone(emulator, observe, tmp_path, case, values, code, field,
                                     text):
    messages = [schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]), _record("G1"),
                _record("BAD", **values), _record("G2"), {"type": "STATE", "value": {"n": 3}}]
    states, error, entries = _run(emulator, tmp_path, messages_text(messages))
    assert error is None, error
    assert states == [{"n": 3}]
    assert _keys(emulator) == ["G1", "G2"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["stream"] == STREAM and entry["record"]["Ext_Id__c"] == "BAD"
    assert entry["error_code"] == code
    assert entry["fields"] == [field]
    assert text in entry["error_message"] and "\n" not in entry["error_message"]
    observe("bad input", case,
            f"record refused alone: `{code}` on {field} ({entry['status']}); the 2 good "
            "records loaded; entry in failed-records", before=3, after=len(_keys(emulator)))


def test_invalid_utf8_inside_a_record_is_refused_alone(emulator, observe, tmp_path):
    good = messages_text([schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]), _record("G1")])
    bad = b'{"type":"RECORD","stream":"Type_Sample__c","record":{"Ext_Id__c":"BAD",' \
          b'"Name":"caf\xe9 \xff"}}\n'
    rest = messages_text([_record("G2"), {"type": "STATE", "value": {"n": 3}}])
    _, error, entries = _run(emulator, tmp_path, good.encode() + bad + rest.encode())
    assert error is None, error
    assert _keys(emulator) == ["G1", "G2"]
    assert [e["record"]["Ext_Id__c"] for e in entries] == ["BAD"]
    assert entries[0]["status"] == "rejected"
    assert entries[0]["fields"] == ["Name"]
    assert "not valid UTF-8" in entries[0]["error_message"]
    observe("bad input", "invalid UTF-8 inside a record (UTF-8 locale: bytes escaped)",
            f"record refused alone: `{entries[0]['error_code']}`: "
            f"{entries[0]['error_message'][:60]}; the good records loaded",
            before=3, after=len(_keys(emulator)), fields=entries[0]["fields"])


def test_datetime_without_offset_takes_the_timezone_setting(emulator, observe, tmp_path):
    messages = [schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]),
                _record("NYC", DateTime__c="2024-01-02T03:04:05"),
                _record("UTC", DateTime__c="2024-01-02T03:04:05Z")]
    _, error, entries = _run(emulator, tmp_path, messages_text(messages),
                             timezone="America/New_York")
    assert error is None and entries == []
    stored = dict(emulator.state.org.query(f"SELECT Ext_Id__c, DateTime__c FROM {STREAM}"))
    assert stored == {"NYC": "2024-01-02T08:04:05.000Z", "UTC": "2024-01-02T03:04:05.000Z"}
    observe("bad input", "date-time without a timezone",
            "read in the `timezone` setting (America/New_York): 03:04:05 stored as 08:04:05Z; "
            "explicit Z kept", before=2, after=len(stored))


def test_schema_change_mid_stream(emulator, observe, tmp_path):
    narrow = {k: PROPERTIES[k] for k in ("Ext_Id__c", "Name")}
    messages = [schema_message(STREAM, narrow, ["Ext_Id__c"]), _record("A1"),
                schema_message(STREAM, narrow | {"Text__c": {"type": "string"}}, ["Ext_Id__c"]),
                _record("A2", Text__c="new column"), {"type": "STATE", "value": {"n": 2}}]
    states, error, entries = _run(emulator, tmp_path, messages_text(messages))
    assert error is None and entries == []
    assert states == [{"n": 2}]
    stored = sorted(emulator.state.org.query(f"SELECT Ext_Id__c, Text__c FROM {STREAM}"))
    assert stored == [("A1", None), ("A2", "new column")]
    observe("bad input", "SCHEMA change mid-stream (a column added)",
            "records before it loaded under the old schema, after it with the new column",
            before=2, after=len(stored))


def test_schema_change_to_an_unknown_field_stops_the_run(emulator, observe, tmp_path):
    narrow = {k: PROPERTIES[k] for k in ("Ext_Id__c", "Name")}
    messages = [schema_message(STREAM, narrow, ["Ext_Id__c"]), _record("A1"),
                {"type": "STATE", "value": {"n": 1}},
                schema_message(STREAM, narrow | {"Nope__c": {"type": "string"}},
                               ["Ext_Id__c"]),
                _record("A2", Nope__c="x")]
    states, error, _ = _run(emulator, tmp_path, messages_text(messages))
    assert error is not None
    assert "Nope__c" in str(error) and STREAM in str(error)
    # Whatever was loaded, no STATE may claim a record that was not.
    loaded = _keys(emulator)
    assert states == [] or (states == [{"n": 1}] and loaded == ["A1"]), (states, loaded)
    observe("bad input", "SCHEMA change mid-stream to an unknown field",
            f"stopped with `{str(error)[:90]}…`; STATE {states or 'none'}, loaded {loaded}: "
            "a rerun resends what STATE does not cover", before=2, after=len(loaded))


INVALID_STREAMS = [
    ("malformed Singer line", messages_text([schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]),
                                             _record("G1")]) + "{not json\n",
     "Invalid Singer input: Unable to parse line as JSON: {not json", {}),
    ("invalid UTF-8 (strict locale)",
     b'{"type":"SCHEMA","stream":"X","schema":{"type":"object"},"key_properties":[]}\n\xff\n',
     "Invalid Singer input: 'utf-8' codec can't decode byte 0xff",
     {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}),
]


@pytest.mark.parametrize(("case", "text", "message", "env"), INVALID_STREAMS,
                         ids=[c[0] for c in INVALID_STREAMS])
def test_input_that_is_not_singer_stops_with_one_line(emulator, observe, tmp_path, case, text,
                                                      message, env):
    config = write_config(tmp_path / "target.json", target_config(emulator, action="upsert"))
    raw = text.encode("utf-8") if isinstance(text, str) else text
    run = subprocess.run([command("target-sfbulk"), "--config", config], input=raw,
                         capture_output=True, env=plugin_env(**env), timeout=120)
    assert run.returncode == 1
    last = run.stderr.decode("utf-8", "replace").strip().splitlines()[-1]
    assert message in last, last
    assert "Traceback" not in last
    assert run.stdout == b""
    assert emulator.state.jobs.jobs() == []
    observe("bad input", case, f"exit 1 with one line: `{last.split('| ')[-1][:110]}`; no job",
            before=None, after=0)


@pytest.mark.parametrize(("case", "messages", "stream"), [
    ("RECORD before SCHEMA", [_record("G1")], STREAM),
    ("RECORD of an unknown stream", [schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]),
                                     record_message("Ghost", {"a": 1})], "Ghost"),
])
def test_record_without_schema_stops_before_any_job(emulator, observe, tmp_path, case,
                                                    messages, stream):
    from singer_sdk.exceptions import RecordsWithoutSchemaException

    _, error, entries = _run(emulator, tmp_path, messages_text(messages))
    # The command line turns this error into one line and exit 1, like the malformed line.
    assert isinstance(error, RecordsWithoutSchemaException), error
    assert f"A record for stream '{stream}' was encountered before a corresponding schema" \
        in str(error)
    assert entries == []
    assert emulator.state.jobs.jobs() == []
    observe("bad input", case, f"stopped before any job: `{str(error)[:100]}`", before=1,
            after=0)


def test_record_over_the_batch_size_limit_is_refused_alone(emulator, observe, tmp_path):
    from tests.reliability.conftest import run_target

    # A Bulk 1.0 batch holds at most 10 MB; with the limit lowered to 400 bytes, a record of
    # about 600 bytes fits no batch at all, while its neighbours still load.
    failed = tmp_path / "failed.jsonl"
    messages = [schema_message(STREAM, PROPERTIES, ["Ext_Id__c"]), _record("G1"),
                _record("BIG", Long_Text__c="z" * 600), _record("G2")]
    run = run_target(emulator, messages, bulk_api="1.0", action="upsert",
                     failed_records_path=str(failed), max_failed_records=10,
                     load={"max_batch_bytes": 400})
    assert run.error is None, run.error
    assert _keys(emulator) == ["G1", "G2"]
    entries = [json.loads(line) for line in failed.read_text().splitlines()]
    assert [(e["record"]["Ext_Id__c"], e["status"]) for e in entries] == [("BIG", "rejected")]
    assert "exceeds the batch size limits" in entries[0]["error_message"]
    observe("bad input", "a record over the batch size limit",
            f"record refused alone: `{entries[0]['error_message']}`; the 2 others loaded",
            before=3, after=len(_keys(emulator)))
