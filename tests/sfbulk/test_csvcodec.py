"""The Bulk CSV codec: streamed reading, typing, value encoding and size-bounded batching."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbulk.csvcodec import (
    NO_RECORDS_BODY,
    Column,
    CsvBatch,
    CsvBatcher,
    RecordTyper,
    RejectedRecord,
    encode_value,
    iter_csv_records,
    iter_csv_rows,
    quote_cell,
    resolve_timezone,
)

UTC = dt.timezone.utc
PARIS = ZoneInfo("Europe/Paris")


def split_bytes(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- reading ------------------------------------------------------------------------------------


def test_quoted_line_breaks_doubled_quotes_and_commas() -> None:
    body = (
        b'"Id","Text"\r\n'
        b'"1","a\nb"\r\n'
        b'"2","c\r\nd"\r\n'
        b'"3","e\rf"\r\n'
        b'"4","say ""hi"", then go"\r\n'
    )
    assert list(iter_csv_rows([body])) == [
        ["Id", "Text"],
        ["1", "a\nb"],
        ["2", "c\r\nd"],
        ["3", "e\rf"],
        ["4", 'say "hi", then go'],
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_rows(size: int) -> None:
    body = '"Id","Name"\r\n"1","Zoë 😀 ✓"\r\n"2","x\r\ny"\n"3",""\r'.encode()
    assert list(iter_csv_rows(split_bytes(body, size))) == [
        ["Id", "Name"], ["1", "Zoë 😀 ✓"], ["2", "x\r\ny"], ["3", ""],
    ]


def test_astral_character_split_across_chunks() -> None:
    emoji = "😀".encode()
    assert len(emoji) == 4
    chunks = [b'"A"\n"x', emoji[:1], emoji[1:3], emoji[3:] + b'y"\n']
    assert list(iter_csv_rows(chunks)) == [["A"], ["x😀y"]]


def test_nul_bytes_are_dropped_and_the_value_kept() -> None:
    chunks = [b'"Id","Name"\n"1","ab\x00c\x00"\n', b'\x00"2","d"\n']
    assert list(iter_csv_rows(chunks)) == [["Id", "Name"], ["1", "abc"], ["2", "d"]]


def test_field_far_past_the_default_csv_limit() -> None:
    big = "x" * 1_000_000 + '"' * 10
    body = b'"Id","Body"\n"1","' + big.replace('"', '""').encode() + b'"\n'
    rows = list(iter_csv_rows(split_bytes(body, 65536)))
    assert rows[1][1] == big
    assert csv.field_size_limit() >= 2**31 - 1


@pytest.mark.parametrize("body", [
    NO_RECORDS_BODY.encode(),
    NO_RECORDS_BODY.encode() + b"\n",
    b"",
])
def test_empty_results(body: bytes) -> None:
    assert list(iter_csv_rows([body])) == []
    assert list(RecordTyper({}).iter_records([body])) == []


def test_header_only_page_has_no_records() -> None:
    assert list(iter_csv_rows([b'"Id","Name"\n'])) == [["Id", "Name"]]
    assert list(iter_csv_records([b'"Id","Name"\n'])) == []


def test_records_by_header_and_width_check() -> None:
    assert list(iter_csv_records([b'"Id","Name"\n"1","a"\n'])) == [{"Id": "1", "Name": "a"}]
    with pytest.raises(ValueError, match="CSV row 3 has 1 cells but the header has 2"):
        list(iter_csv_records([b'"Id","Name"\n"1","a"\n"2"\n']))


def test_recorded_query_result_pages(fixtures_dir) -> None:
    page = (fixtures_dir / "salesforce/bulk2/doc_query_results.csv").read_bytes()
    records = list(iter_csv_records(split_bytes(page, 100)))
    assert len(records) == 13
    assert records[0] == {"Id": "0015f00000BCvReAAL", "Name": "Sample Account for Entitlements"}
    assert records[-1] == {"Id": "0015f00000C6beeAAB", "Name": "GenePoint"}
    ingest = (fixtures_dir / "salesforce/bulk1/doc_contact_insert_batch.csv").read_bytes()
    rows = list(iter_csv_rows([ingest]))
    assert rows[1][5] == 'Self-described as "the\ntop" branding guru on the West Coast'
    assert rows[2][4] == ""


def test_bulk2_echoed_results_read_with_unquoted_headers(fixtures_dir) -> None:
    page = (fixtures_dir / "salesforce/bulk2/doc_ingest_successfulResults_numeric_echo.csv")
    typer = RecordTyper({"AnnualRevenue": "currency", "NumberOfEmployees": "int",
                         "sf__Created": "boolean"})
    (record,) = typer.iter_records([page.read_bytes()])
    assert record["AnnualRevenue"] == Decimal("912260031")
    assert str(record["AnnualRevenue"]) == "912260031"
    assert record["NumberOfEmployees"] == 2676
    assert record["sf__Created"] is True
    assert record["sf__Id"] == "0018c00002FInboAAD"


# -- typing -------------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "Id": {"type": "string"},
        "Flag": {"type": ["boolean", "null"]},
        "Count": {"type": ["integer", "null"]},
        "Amount": {"type": ["number", "null"]},
        "When": {"type": ["string", "null"], "format": "date-time"},
        "Day": {"type": ["string", "null"], "format": "date"},
        "At": {"type": ["string", "null"], "format": "time"},
        "Text": {"type": ["string", "null"]},
        "Either": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    },
}


def typed(column: str, cell: str) -> object:
    return RecordTyper(SCHEMA).convert(column, cell)


@pytest.mark.parametrize(("column", "cell", "expected"), [
    ("Flag", "true", True),
    ("Flag", "false", False),
    ("Flag", "TRUE", True),
    ("Count", "47", 47),
    ("Count", "47.0", 47),
    ("Count", "9.0E7", 90000000),
    ("Count", "-3", -3),
    ("Either", "12", 12),
    ("When", "2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05.000000+00:00"),
    ("When", "2024-01-02T03:04:05.123+0000", "2024-01-02T03:04:05.123000+00:00"),
    ("When", "2024-01-02T03:04:05.123+00:00", "2024-01-02T03:04:05.123000+00:00"),
    ("When", "2024-01-02T04:04:05+01:00", "2024-01-02T03:04:05.000000+00:00"),
    ("When", "2024-01-01T23:30:00.5-0130", "2024-01-02T01:00:00.500000+00:00"),
    ("Day", "2024-02-29", "2024-02-29"),
    ("Day", "1940-06-07Z", "1940-06-07"),
    ("At", "10:11:12.345Z", "10:11:12.345Z"),
    ("At", "10:11:12Z", "10:11:12.000Z"),
    ("At", "10:11", "10:11:00.000Z"),
    ("Text", "NA", "NA"),
    ("Text", "N/A", "N/A"),
    ("Text", "None", "None"),
    ("Text", "null", "null"),
    ("Text", "#N/A", "#N/A"),
    ("Text", " ", " "),
    ("Unknown.Column", "x", "x"),
])
def test_cells_are_typed(column: str, cell: str, expected: object) -> None:
    value = typed(column, cell)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("cell", [
    "9.0E7", "1.6147805824397E13", "0.1", "123456789012345678.123456789", "-0.000001", "1E-10",
])
def test_numbers_are_exact_decimals(cell: str) -> None:
    value = typed("Amount", cell)
    assert isinstance(value, Decimal)
    assert value == Decimal(cell)
    assert str(value) == str(Decimal(cell))


def test_big_decimal_survives_json_serialisation_exactly() -> None:
    import simplejson

    value = typed("Amount", "123456789012345678.123456789")
    assert simplejson.dumps({"a": value}, use_decimal=True) == '{"a": 123456789012345678.123456789}'
    assert typed("Amount", "1.6147805824397E13") == Decimal("16147805824397")


@pytest.mark.parametrize("column", list(SCHEMA["properties"]))
def test_only_an_empty_cell_is_null(column: str) -> None:
    assert typed(column, "") is None


@pytest.mark.parametrize("cell", ["NaN", "Infinity", "-Infinity", "inf"])
def test_non_finite_numbers_become_null_with_one_warning(cell: str, caplog) -> None:
    typer = RecordTyper(SCHEMA, stream="Account")
    with caplog.at_level(logging.WARNING, logger="sfbulk.csvcodec"):
        assert typer.convert("Amount", cell) is None
        assert typer.convert("Amount", cell) is None
        assert typer.convert("Count", cell) is None
    assert typer.non_finite == {"Amount": 2, "Count": 1}
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["Account.Amount",
                                                                      "Account.Count"]


@pytest.mark.parametrize(("column", "cell", "message"), [
    ("Flag", "yes", "Account.Flag: cannot read 'yes' as boolean: not true or false"),
    ("Count", "4.5", "Account.Count: cannot read '4.5' as integer: not a whole number"),
    ("Count", "1_000", "Account.Count: cannot read '1_000' as integer: not an integer"),
    ("Amount", "12abc", "Account.Amount: cannot read '12abc' as number: not a number"),
    ("When", "yesterday", "Account.When: cannot read 'yesterday' as datetime: not a datetime"),
    ("Day", "2023-02-29", "Account.Day: cannot read '2023-02-29' as date: not a calendar date"),
    ("At", "25:00:00", "Account.At: cannot read '25:00:00' as time"),
])
def test_bad_cells_name_stream_column_and_value(column: str, cell: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        RecordTyper(SCHEMA, stream="Account").convert(column, cell)
    assert str(info.value).startswith(message)


def test_typer_from_describe_types_and_fields_case_insensitive() -> None:
    typer = RecordTyper({"NumberOfEmployees": "int", "CreatedDate": {"name": "CreatedDate",
                                                                       "type": "datetime"},
                         "Latitude": "double", "Mystery": "somethingNew"})
    row = typer.row_converter(["numberofemployees", "CreatedDate", "LATITUDE", "Mystery"])
    assert row(["12", "2020-05-06T07:08:09.010Z", "37.7749295", "raw"]) == {
        "numberofemployees": 12,
        "CreatedDate": "2020-05-06T07:08:09.010000+00:00",
        "LATITUDE": Decimal("37.7749295"),
        "Mystery": "raw",
    }
    with pytest.raises(ValueError, match="a CSV row has 1 cells but the header has 4"):
        row(["1"])


def test_typer_reads_pages_each_with_its_own_header() -> None:
    typer = RecordTyper(SCHEMA, stream="X")
    page1 = b'"Id","Count","Flag"\n"a","1","true"\n'
    page2 = b'"Flag","Id","Count"\n"false","b","2.0"\n'
    out = [*typer.iter_records([page1]), *typer.iter_records(split_bytes(page2, 5))]
    assert out == [{"Id": "a", "Count": 1, "Flag": True}, {"Flag": False, "Id": "b", "Count": 2}]
    assert typer.type_record({"Count": "3", "Text": ""}) == {"Count": 3, "Text": None}


# -- encoding values ----------------------------------------------------------------------------


@pytest.mark.parametrize(("field_type", "value", "expected"), [
    ("string", None, "#N/A"),
    ("string", "", "#N/A"),
    ("double", None, "#N/A"),
    ("boolean", True, "true"),
    ("boolean", False, "false"),
    ("boolean", "True", "true"),
    ("boolean", "false", "false"),
    ("boolean", "1", "true"),
    ("boolean", "0", "false"),
    ("boolean", " YES ", "true"),
    ("boolean", "no", "false"),
    ("boolean", 0, "false"),
    ("boolean", 1, "true"),
    ("int", 0, "0"),
    ("int", 47, "47"),
    ("int", "47.0", "47"),
    ("int", 47.0, "47"),
    ("int", Decimal("9.0E7"), "90000000"),
    ("int", "-2147483648", "-2147483648"),
    ("long", 2**40, "1099511627776"),
    ("double", 0, "0"),
    ("double", Decimal("1E+7"), "10000000"),
    ("double", Decimal("1.50"), "1.50"),
    ("currency", Decimal("-0.000001"), "-0.000001"),
    ("percent", 0.1, "0.1"),
    ("double", 1e22, "10000000000000000000000"),
    ("double", "1.6147805824397E13", "16147805824397"),
    ("double", "123456789012345678.123456789", "123456789012345678.123456789"),
    ("date", dt.date(2024, 2, 29), "2024-02-29"),
    ("date", "2024-02-29", "2024-02-29"),
    ("date", "1940-06-07Z", "1940-06-07"),
    ("datetime", dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "2024-01-02T03:04:05.678Z"),
    ("datetime", dt.datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000Z"),
    ("datetime", "2024-01-02T04:04:05.5+01:00", "2024-01-02T03:04:05.500Z"),
    ("datetime", "2024-01-02T03:04:05.123+0000", "2024-01-02T03:04:05.123Z"),
    ("datetime", "2024-01-02", "2024-01-02T00:00:00.000Z"),
    ("datetime", dt.date(2024, 1, 2), "2024-01-02T00:00:00.000Z"),
    ("time", dt.time(10, 11, 12, 345000), "10:11:12.345Z"),
    ("time", "10:11:12Z", "10:11:12.000Z"),
    ("string", 'He said "hi", then\nleft', 'He said "hi", then\nleft'),
    ("string", False, "false"),
    ("string", 0, "0"),
    ("string", Decimal("1E+2"), "100"),
    ("textarea", [1, "é"], '[1,"é"]'),
    ("multipicklist", ["Red", "Blue"], "Red;Blue"),
    ("multipicklist", "Red;Blue", "Red;Blue"),
    ("multipicklist", ["Red", "", "Blue"], "Red;Blue"),  # an empty item selects nothing
    ("multipicklist", [""], "#N/A"),  # nothing selected: the field is cleared, as by []
    ("multipicklist", [], "#N/A"),
    ("reference", "001000000000001AAA", "001000000000001AAA"),
    ("somethingNew", "kept", "kept"),
])
def test_encode_value(field_type: str, value: object, expected: str) -> None:
    assert encode_value(field_type, value) == expected


def test_naive_datetimes_are_in_the_configured_zone() -> None:
    naive = dt.datetime(2024, 7, 1, 12, 0, 0)
    assert encode_value("datetime", naive, PARIS) == "2024-07-01T10:00:00.000Z"
    assert encode_value("datetime", naive.replace(month=1), PARIS) == "2024-01-01T11:00:00.000Z"
    assert encode_value("datetime", "2024-07-01T12:00:00", PARIS) == "2024-07-01T10:00:00.000Z"
    aware = dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert encode_value("datetime", aware, PARIS) == "2024-07-01T12:00:00.000Z"


def test_date_field_given_a_datetime_takes_its_date_in_the_zone() -> None:
    late = dt.datetime(2024, 1, 1, 23, 30, tzinfo=UTC)
    assert encode_value("date", late) == "2024-01-01"
    assert encode_value("date", late, PARIS) == "2024-01-02"
    assert encode_value("date", "2024-01-01T23:30:00Z", PARIS) == "2024-01-02"
    assert encode_value("date", dt.datetime(2024, 1, 1, 23, 30), PARIS) == "2024-01-01"


@pytest.mark.parametrize(("field_type", "value", "reason"), [
    ("boolean", "maybe", "Flag__c: 'maybe' is not one of true/false/1/0/yes/no"),
    ("boolean", 2, "Flag__c: 2 is not a boolean"),
    ("int", "4.5", "Flag__c: '4.5' is not a whole number"),
    ("int", True, "Flag__c: True is not an integer"),
    ("int", 2**31, "Flag__c: 2147483648 is outside the int range -2147483648..2147483647"),
    ("int", "1_000", "Flag__c: '1_000' is not an integer"),
    ("double", float("nan"), "Flag__c: nan is not a finite number"),
    ("double", Decimal("Infinity"), "Flag__c: Decimal('Infinity') is not a finite number"),
    ("double", "12abc", "Flag__c: '12abc' is not a finite number"),
    ("double", True, "Flag__c: True is not a finite number"),
    ("date", "2023-02-29", "Flag__c: '2023-02-29' is not a calendar date"),
    ("date", "soon", "Flag__c: 'soon' is not an ISO 8601 date"),
    ("date", dt.date(1600, 1, 1), "Flag__c: year 1600 is outside Salesforce's range 1700-4000"),
    ("datetime", 1700000000, "Flag__c: 1700000000 is not a datetime"),
    ("datetime", "2024-13-01T00:00:00Z", "Flag__c: '2024-13-01T00:00:00Z' is not an ISO 8601"),
    ("time", "noon", "Flag__c: 'noon' is not a time of day"),
    ("string", "#N/A", "Flag__c: the text '#N/A' cannot be sent"),
    ("string", "a\0b", "Flag__c: text holds a NUL character"),
    ("string", {"a": 1}, "Flag__c: {'a': 1} (dict) is not text"),
    ("multipicklist", ["a;b"], "Flag__c: a multi-select picklist value cannot contain ';'"),
    ("base64", "aGk=", "Flag__c: base64 fields cannot be loaded through Bulk CSV"),
    ("address", "1 Main St", "Flag__c: a compound address field cannot be written"),
])
def test_bad_values_raise_with_field_and_reason(field_type: str, value: object,
                                                reason: str) -> None:
    with pytest.raises(ValueError) as info:
        encode_value(field_type, value, field="Flag__c")
    assert str(info.value).startswith(reason)


def test_resolve_timezone() -> None:
    assert resolve_timezone(None) is UTC
    assert resolve_timezone("UTC") is UTC
    assert resolve_timezone("Europe/Paris") == PARIS
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        resolve_timezone("Mars/Olympus")


@pytest.mark.parametrize(("text", "quoted"), [
    ("plain", "plain"),
    ("#N/A", "#N/A"),
    (" padded ", " padded "),
    ("a,b", '"a,b"'),
    ('say "x"', '"say ""x"""'),
    ("line\nbreak", '"line\nbreak"'),
    ("cr\ronly", '"cr\ronly"'),
])
def test_quote_cell(text: str, quoted: str) -> None:
    assert quote_cell(text) == quoted


# -- batching -----------------------------------------------------------------------------------

TYPES = {"id": "id", "name": "string", "amount": "currency", "active": "boolean",
         "closedate": "date", "description": "textarea"}
NAMES = {"id": "Id", "name": "Name", "amount": "Amount", "active": "Active__c",
         "closedate": "CloseDate", "description": "Description"}


def resolver(key: str) -> Column | None:
    if key.startswith("_sdc_"):
        return None
    if key.lower() == "account.external_id__c":
        return Column("Account.External_Id__c", "string")
    if key.lower() == "lead:who.email":
        return Column("Lead:Who.Email", "email")
    folded = key.lower()
    if folded not in TYPES:
        raise ValueError(f"Opportunity has no field {key!r}")
    return Column(NAMES[folded], TYPES[folded])


def run(records, **limits) -> list[CsvBatch | RejectedRecord]:
    return list(CsvBatcher(resolver, **limits).batches(records))


def test_batch_header_is_the_union_and_absent_keys_are_empty_cells() -> None:
    out = run([
        {"name": "A", "amount": Decimal("1E+3"), "_sdc_extracted_at": "x"},
        {"NAME": "B", "active": False, "amount": None},
        {"name": 'C, "quoted"', "Account": {"External_Id__c": "EXT-1"}, "active": 0},
        {"Description": "two\nlines", "closedate": dt.date(2024, 5, 6)},
    ])
    (batch,) = out
    assert batch.columns == ["Name", "Amount", "Active__c", "Account.External_Id__c",
                             "Description", "CloseDate"]
    assert batch.keys == [0, 1, 2, 3]
    assert batch.data.decode() == (
        "Name,Amount,Active__c,Account.External_Id__c,Description,CloseDate\n"
        "A,1000,,,,\n"
        "B,#N/A,false,,,\n"
        '"C, ""quoted""",,false,EXT-1,,\n'
        ',,,,"two\nlines",2024-05-06\n'
    )
    assert batch.size == len(batch.data)
    assert batch.chars == len(batch.data.decode())
    assert list(iter_csv_rows([batch.data]))[3] == ['C, "quoted"', "", "false", "EXT-1", "", ""]


def test_polymorphic_nested_reference_is_flattened() -> None:
    (batch,) = run([{"name": "T", "Who": {"attributes": {"type": "Lead"}, "Email": "a@b.c"}}])
    assert batch.data == b"Name,Lead:Who.Email\nT,a@b.c\n"


def test_batches_split_by_rows_and_keep_keys() -> None:
    batcher = CsvBatcher(resolver, max_rows=2)
    out = list(batcher.batches([("k1", {"name": "a"}), ("k2", {"name": "b"}),
                                ("k3", {"name": "c"})], keyed=True))
    assert [(b.sequence, b.keys, b.data) for b in out] == [
        (0, ["k1", "k2"], b"Name\na\nb\n"),
        (1, ["k3"], b"Name\nc\n"),
    ]


def test_batches_split_by_measured_bytes_never_inside_a_record() -> None:
    # Header "Name\n" is 5 bytes; each row "é…é\n" is 2*n+1 bytes but n+1 characters.
    records = [{"name": "é" * 10} for _ in range(5)]
    out = run(records, max_bytes=5 + 21 * 2)
    assert [b.rows for b in out] == [2, 2, 1]
    assert all(b.size <= 47 for b in out)
    assert [b.size for b in out] == [47, 47, 26]
    by_chars = run(records, max_chars=5 + 11 * 3)
    assert [b.rows for b in by_chars] == [3, 2]
    assert [b.chars for b in by_chars] == [38, 27]


def test_a_new_column_widens_earlier_rows_within_the_byte_limit() -> None:
    # Two rows of "a\n" under header "Name\n" = 9 bytes; adding Amount widens both rows by a
    # comma and the header by ",Amount": 12 + 2 * 3 + 3 = 21 bytes, one more than 20.
    out = run([{"name": "a"}, {"name": "a"}, {"amount": 1}], max_bytes=20)
    assert [(b.columns, b.data) for b in out] == [
        (["Name"], b"Name\na\na\n"),
        (["Amount"], b"Amount\n1\n"),
    ]
    fits = run([{"name": "a"}, {"name": "a"}, {"amount": 1}], max_bytes=21)
    assert [b.data for b in fits] == [b"Name,Amount\na,\na,\n,1\n"]
    assert fits[0].size == 21


def test_records_of_one_shape_in_any_key_order_and_width() -> None:
    # Repeated key sets take the batcher's cached per-shape plan; the bytes must be exactly what
    # resolving every key gives: cells in header order, quoting only where needed, missing cells
    # empty, rows padded when a later record widens the header, values refused as before.
    out = run([
        {"name": "A", "amount": 1},
        {"name": 'B, "b"', "amount": Decimal("2.50")},
        {"amount": 3, "name": "C"},
        {"amount": 4},
        {"name": "cr\rlf", "amount": 2**40},
        {"name": "D", "amount": "x"},
        {"name": "E", "amount": 5, "active": True},
        {"name": "F", "amount": 6},
        {"name": None, "amount": None},
        {"name": {"nested": 1}, "amount": 7},
    ])
    batch, *rejected = [o for o in out if isinstance(o, CsvBatch)] + \
        [o for o in out if isinstance(o, RejectedRecord)]
    assert batch.data.decode() == (
        "Name,Amount,Active__c\n"
        "A,1,\n"
        '"B, ""b""",2.50,\n'
        "C,3,\n"
        ",4,\n"
        '"cr\rlf",1099511627776,\n'
        "E,5,true\n"
        "F,6,\n"
        "#N/A,#N/A,\n"
    )
    assert batch.keys == [0, 1, 2, 3, 4, 6, 7, 8]
    assert batch.size == len(batch.data) and batch.chars == len(batch.data.decode())
    assert [(r.key, r.field) for r in rejected] == [(5, "amount"), (9, "name.nested")]
    assert "'x' is not a finite number" in rejected[0].reason
    assert "has no field 'name.nested'" in rejected[1].reason


def test_oversized_record_and_field_are_rejected_alone() -> None:
    out = run([
        {"name": "ok"},
        {"name": "x" * 11},
        {"name": "y" * 8, "description": "z" * 8},
        {"name": "fine"},
    ], max_field_chars=10, max_record_chars=15)
    assert [type(o).__name__ for o in out] == ["RejectedRecord", "RejectedRecord", "CsvBatch"]
    first, second, batch = out
    assert (first.key, first.field, first.reason) == (
        1, "name", "Name: 11 characters, over the 10 per field")
    assert (second.key, second.field, second.reason) == (
        2, None, "16 characters, over the 15 per record")
    assert batch.keys == [0, 3]
    assert batch.data == b"Name\nok\nfine\n"


def test_bad_values_unknown_and_duplicate_fields_are_rejected_with_reasons() -> None:
    out = run([
        {"name": "a", "active": "maybe"},
        {"name": "b", "Nope__c": 1},
        {"name": "c", "NAME": "d"},
        {"_sdc_sequence": 1},
        {"name": "#N/A"},
        {"name": "e", "Account": {"Parent": {"Ext__c": 1}}},
        {"name": "f"},
    ])
    rejected = [(o.key, o.field, o.reason) for o in out if isinstance(o, RejectedRecord)]
    assert rejected == [
        (0, "active", "Active__c: 'maybe' is not one of true/false/1/0/yes/no"),
        (1, "Nope__c", "Opportunity has no field 'Nope__c'"),
        (2, "NAME", "'NAME' and 'name' both load Name"),
        (3, None, "no field of this record can be loaded"),
        (4, "name", "Name: the text '#N/A' cannot be sent: Salesforce reads it as null, "
                    "quoted or not"),
        (5, None, "Account.Parent: only one level of parent reference is allowed"),
    ]
    (batch,) = [o for o in out if isinstance(o, CsvBatch)]
    assert batch.keys == [6]


def test_record_too_big_for_any_batch_is_rejected_without_closing_the_open_one() -> None:
    batcher = CsvBatcher(resolver, max_bytes=12)
    assert batcher.add({"name": "abc"}) is None
    rejected = batcher.add({"name": "x" * 20})
    assert isinstance(rejected, RejectedRecord)
    assert rejected.reason == "the record alone exceeds the batch size limits"
    assert batcher.add({"name": "d"}) is None
    last = batcher.flush()
    assert last is not None and last.data == b"Name\nabc\nd\n" and last.keys == [0, 2]
    assert batcher.flush() is None


def test_crlf_line_endings_and_header_limit() -> None:
    (batch,) = CsvBatcher(resolver, line_ending="\r\n").batches([{"name": "a"}, {"amount": 2}])
    assert batch.data == b"Name,Amount\r\na,\r\n,2\r\n"
    assert batch.size == len(batch.data)
    out = run([{"name": "a"}, {"description": "b"}], max_header_chars=12)
    assert [b.columns for b in out] == [["Name"], ["Description"]]


def test_many_records_respect_every_limit() -> None:
    records = [{"name": f"n{i}" * (i % 7 + 1), "amount": Decimal(i) / 7 if i % 3 else None,
                **({"description": "d\n" * (i % 5)} if i % 4 == 0 else {})} for i in range(500)]
    out = run(records, max_rows=40, max_bytes=1500, max_chars=1400)
    batches = [o for o in out if isinstance(o, CsvBatch)]
    assert all(isinstance(o, CsvBatch) for o in out)
    assert [k for b in batches for k in b.keys] == list(range(500))
    for batch in batches:
        assert batch.rows <= 40 and batch.size <= 1500 and batch.chars <= 1400
        assert batch.size == len(batch.data) and batch.chars == len(batch.data.decode())
        rows = list(iter_csv_rows([batch.data]))
        assert rows[0] == batch.columns and len(rows) == batch.rows + 1


# -- properties -------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
               min_size=1, max_size=40).filter(lambda s: s != "#N/A")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(TEXT, min_size=1, max_size=8), chunk=st.integers(1, 17))
def test_any_string_written_is_read_back_identical(values: list[str], chunk: int) -> None:
    records = [{"description": v} if i % 2 else {"name": v} for i, v in enumerate(values)]
    (batch,) = run(records)
    rows = list(iter_csv_rows(split_bytes(batch.data, chunk)))
    header, body = rows[0], rows[1:]
    read = [row[header.index("Description" if i % 2 else "Name")] for i, row in enumerate(body)]
    assert read == values


@settings(max_examples=150, deadline=None)
@given(value=st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_round_trips(value: Decimal) -> None:
    cell = encode_value("double", value)
    assert "E" not in cell and "e" not in cell
    (batch,) = run([{"amount": value}])
    (record,) = RecordTyper({"Amount": "currency"}).iter_records([batch.data])
    assert record["Amount"] == value
    assert json.loads(json.dumps(str(record["Amount"]))) == str(record["Amount"])


def test_a_record_that_selects_nothing_is_a_row_of_its_own() -> None:
    # Alone in a batch, an empty cell would be a blank line: no row at all when read back.
    from sfbulk.csvcodec import Column, CsvBatcher, iter_csv_rows

    batcher = CsvBatcher(lambda key: Column("Tags__c", "multipicklist"))
    (batch,) = batcher.batches([{"Tags": ["a"]}, {"Tags": [""]}, {"Tags": ["b"]}])
    assert batch.data == b"Tags__c\na\n#N/A\nb\n"
    assert list(iter_csv_rows([batch.data]))[1:] == [["a"], ["#N/A"], ["b"]]
    assert batch.cells == [["a", "#N/A", "b"]] and batch.rows == 3
