"""Bulk 2.0 uploads are read block by block: the records and errors match a whole-text read."""

from __future__ import annotations

import pytest

from sfbulk.emulator import bulk2
from sfbulk.emulator.ingest import (
    BadRow,
    Utf8Error,
    check_utf8,
    decode_blocks,
    iter_csv,
    iter_csv_blocks,
)
from tests.emulator.test_fidelity_audit import Client

TRICKY = (
    'Name,Note\r\n"a,1","two\nlines"\nplain,"say ""hi"""\n\n'
    '"x"y,skipped\nb"c,"d\nlast,"never closed\nrest,of,data\n'
)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def _rows(rows: object) -> list[object]:
    return [(r, r.raw) if isinstance(r, BadRow) else r for r in rows]  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_records_read_in_pieces_match_one_read(size: int) -> None:
    expected = [
        ["Name", "Note"],
        ["a,1", "two\nlines"],
        ["plain", 'say "hi"'],
        ("Unexpected character 'y' after a closing quote", '"x"y,skipped'),
        ("Quote inside an unquoted value (check for spaces around quotes)", 'b"c,"d'),
        ("Quoted value not closed before the end of the data",
         'last,"never closed\nrest,of,data'),
    ]
    assert _rows(iter_csv(TRICKY)) == expected
    assert _rows(iter_csv_blocks(_pieces(TRICKY, size))) == expected


def test_utf8_errors_count_bytes_from_the_start_across_blocks() -> None:
    data = "Name\nÉté€\n".encode() + b"\xe2\x82" + b"\nX\n"
    with pytest.raises(Utf8Error, match=r"^invalid UTF-8 at byte 14$"):
        check_utf8([data[i:i + 4] for i in range(0, len(data), 4)])
    with pytest.raises(Utf8Error, match=r"^invalid UTF-8 at byte 3$"):
        check_utf8([b"ab", b"c\xc3"])  # cut short at the end
    check_utf8([b"\xef\xbb", b"\xbfN\xc3", b"\xa9\n"])


def test_decoded_blocks_drop_the_byte_order_mark_and_keep_split_characters_whole() -> None:
    blocks = [b"\xef", b"\xbb\xbfN\xe2\x82", b"\xac\n"]
    assert list(decode_blocks(blocks)) == ["N", "€\n"]
    assert "".join(decode_blocks([b"a\xff", b"\xc3"], "replace")) == "a\ufffd\ufffd"


def test_bulk2_job_read_in_small_blocks_stores_and_reports_like_one_read(
    emulator_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk2, "UPLOAD_BLOCK_BYTES", 5)
    client = Client(emulator_factory(seed="demo"))
    out = client.ingest2(
        "insert", "Account",
        'Name,Description\n"BLK-1","one\ntwo"\nBLK-2,"q""x"\n"BLK-3"z,3\nBLK-4,\n',
    )
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 4, 1)
    assert out["failedResults"].splitlines()[1:] == [
        '"","INVALID_FIELD:Failed to parse CSV row: Unexpected character \'z\' after a closing '
        'quote:--","""BLK-3""z,3"'
    ]
    saved = client.rest("GET", "query", params={
        "q": "SELECT Name, Description FROM Account WHERE Name LIKE 'BLK-%' ORDER BY Name"}).json()
    assert [(r["Name"], r["Description"]) for r in saved["records"]] == [
        ("BLK-1", "one\ntwo"), ("BLK-2", 'q"x'), ("BLK-4", None)]
    late_bad_byte = client.ingest2("insert", "Account", b"Name\nBLK-5\nBLK-6\xff\n")["info"]
    assert (late_bad_byte["state"], late_bad_byte["errorMessage"],
            late_bad_byte["numberRecordsProcessed"]) == (
        "Failed", "InvalidBatch : Failed to read the upload: invalid UTF-8 at byte 16", 0)
    assert client.rest("GET", "query", params={
        "q": "SELECT Id FROM Account WHERE Name = 'BLK-5'"}).json()["totalSize"] == 0


def test_bulk2_fast_path_takes_only_sub_batches_of_full_rows() -> None:
    assert bulk2._all_full_rows([["A", "1"], ["B", "2"]], 2, True) is True
    assert bulk2._all_full_rows([["A", "1"], ["B", ""]], 2, False) is False
    assert bulk2._all_full_rows([["A", "1"], ["B", "#N/A"]], 2, False) is False
    assert bulk2._all_full_rows([["A", "1"], ["B"]], 2, False) is False
    assert bulk2._all_full_rows([["A", "1"], BadRow("reason", "B,2")], 2, False) is False
    long_row = [["A", "1"], ["B", "9" * bulk2.MAX_FIELD_CHARACTERS]]
    assert bulk2._all_full_rows(long_row, 2, False) is True  # the upload is too small to hold it
    assert bulk2._all_full_rows(long_row, 2, True) is False
