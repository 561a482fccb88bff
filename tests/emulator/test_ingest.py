"""The ingest rules both Bulk APIs share: strict CSV, error cells, lock contention."""

from __future__ import annotations

import time

import pytest
import requests

from sfbulk.emulator.ingest import (
    BadRow,
    ParentLocks,
    Utf8Error,
    decode_utf8,
    error_cell,
    format_error_cell,
    lock_error,
    parent_keys,
    split_csv,
)
from sfbulk.emulator.metadata import standard_catalog
from sfbulk.emulator.store import RecordError
from tests.emulator.test_fidelity_audit import Client


def test_split_csv_with_other_delimiters_keeps_quoted_delimiters_and_line_breaks() -> None:
    assert split_csv('a|b\r\n"x|y"|"l1\nl2"\n\nplain|""""\n', "|") == [
        ["a", "b"], ["x|y", "l1\nl2"], ["plain", '"']
    ]
    assert split_csv("a\tb\nc,d\te\n", "\t") == [["a", "b"], ["c,d", "e"]]


def test_malformed_records_come_back_as_bad_rows_with_their_raw_text() -> None:
    records = split_csv('Name;Phone\n"a"b;1\nok;2\nx "y";3\n"open;4\nlost;5\n', ";")
    assert records[0] == ["Name", "Phone"]
    assert records[2] == ["ok", "2"]
    bad = [records[1], records[3], records[4]]
    assert all(isinstance(r, BadRow) for r in bad)
    assert [str(r) for r in bad] == [
        "Unexpected character 'b' after a closing quote",
        "Quote inside an unquoted value (check for spaces around quotes)",
        "Quoted value not closed before the end of the data",
    ]
    assert [r.raw for r in bad] == ['"a"b;1', 'x "y";3', '"open;4\nlost;5']
    assert len(records) == 5


def test_decode_utf8_refuses_instead_of_replacing() -> None:
    assert decode_utf8("\ufeffName\nÅsa\n".encode()) == "Name\nÅsa\n"
    with pytest.raises(Utf8Error, match=r"^invalid UTF-8 at byte 10$"):
        decode_utf8(b"Name\nAUD-U\xff\xfe\n")


def test_error_cells_have_no_space_before_the_dashes_without_fields() -> None:
    assert format_error_cell("MISSING_ARGUMENT", "Id not specified in an update call", ()) == (
        "MISSING_ARGUMENT:Id not specified in an update call:--"
    )
    assert format_error_cell("REQUIRED_FIELD_MISSING", "Required fields are missing: [A, B]",
                             ("A", "B")) == (
        "REQUIRED_FIELD_MISSING:Required fields are missing: [A, B]:A,B --"
    )
    assert error_cell([RecordError("X", "one", ["F"]), RecordError("Y", "two")]) == (
        "X:one:F -- Y:two:--"
    )
    assert error_cell([]) == ""


def test_lock_errors_strike_only_rows_whose_parent_is_held_by_other_work() -> None:
    contact = standard_catalog().get("Contact")
    keys = parent_keys(contact, [
        {"LastName": "A", "AccountId": "001000000000001AAA"},
        {"LastName": "B"},
        {"LastName": "C", "Account.External_Id__c": "E-1"},
        ("INVALID_FIELD", "not a row", ()),
    ])
    assert keys == [
        frozenset({"accountid=001000000000001AAA"}), frozenset(),
        frozenset({"account.external_id__c=E-1"}), frozenset(),
    ]
    locks = ParentLocks()
    assert locks.acquire(keys[0]) == set()
    assert locks.acquire(keys[0] | keys[2]) == {"accountid=001000000000001AAA"}
    assert locks.shared(keys[0] | keys[2]) == {"accountid=001000000000001AAA"}
    contended = locks.shared(keys[0])
    assert lock_error(keys[0], contended, lambda: True) == (
        "UNABLE_TO_LOCK_ROW",
        "unable to obtain exclusive access to this record or 1 records: 001000000000001AAA",
    )
    assert lock_error(keys[0], contended, lambda: False) is None
    assert lock_error(keys[1], contended, lambda: True) is None
    assert lock_error(keys[2], contended, lambda: True) is None
    locks.release(keys[0])
    assert locks.shared(keys[0]) == set()


def test_bulk2_lock_errors_hit_a_later_sub_batch_sharing_the_parent(emulator_factory) -> None:
    """A 2.0 job's sub-batches of 10,000 rows run in parallel at Salesforce: with every lock
    failing, the rows of the second sub-batch that share the first's parent fail, naming it."""
    server = emulator_factory(seed="demo")
    client = Client(server)
    requests.post(f"{server.url}/_emulator/faults", json={"lock_error_share": 1.0}, timeout=10)
    parent = client.rest("GET", "query", params={
        "q": "SELECT Id FROM Account ORDER BY Id LIMIT 1"}).json()["records"][0]["Id"]
    started = time.monotonic()
    csv = "LastName,AccountId\n" + f"L,{parent}\n" * 10_000 + f"Late,{parent}\nFree,\n"
    out = client.ingest2("insert", "Contact", csv)
    assert time.monotonic() - started < 30
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 10_002, 1)
    assert out["failedResults"].splitlines()[1:] == [
        '"","UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: '
        f'{parent}:--","Late","{parent}"'
    ]
    saved = client.rest("GET", "query", params={
        "q": "SELECT LastName FROM Contact WHERE LastName IN ('Late', 'Free')"}).json()
    assert [r["LastName"] for r in saved["records"]] == ["Free"]


def test_bulk2_malformed_rows_fail_alone_and_a_bad_header_fails_the_job(client_demo) -> None:
    client = client_demo
    out = client.ingest2("insert", "Account", 'Name;Phone\n"AUD-1";1\n"AUD-2"x;2\nAUD-3;3\n',
                         columnDelimiter="SEMICOLON")
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 3, 1)
    assert out["failedResults"].splitlines()[1:] == [
        '"";"INVALID_FIELD:Failed to parse CSV row: Unexpected character \'x\' after a closing '
        'quote:--";"""AUD-2""x;2"'
    ]
    bad_header = client.ingest2("insert", "Account", 'Name,"Phone"x\nA,1\n')
    assert (bad_header["info"]["state"], bad_header["info"]["errorMessage"]) == (
        "Failed",
        "InvalidBatch : Failed to parse CSV header: Unexpected character 'x' after a closing "
        "quote",
    )
    not_utf8 = client.ingest2("insert", "Account", b"Name\nAUD-U\xff\n")["info"]
    assert (not_utf8["state"], not_utf8["errorMessage"], not_utf8["numberRecordsProcessed"]) == (
        "Failed", "InvalidBatch : Failed to read the upload: invalid UTF-8 at byte 10", 0)


@pytest.fixture
def client_demo(emulator_factory) -> Client:
    return Client(emulator_factory(seed="demo"))
