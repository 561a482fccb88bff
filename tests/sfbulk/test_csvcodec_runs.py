"""Whole-run encoding in ``CsvBatcher.batches``: the same batches and rejections as ``add``.

``batches()`` encodes runs of records that share their keys column by column; everything it
yields must be byte for byte what one ``add()`` per record and a last ``flush()`` give. Each
test feeds the same input through both and compares the outcomes whole.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfbulk.csvcodec import Column, CsvBatch, CsvBatcher, RejectedRecord, iter_csv_rows

UTC = dt.timezone.utc

#: Field types by lower-cased key; ``Name``/``name`` are one column (two keys, one field).
TYPES = {
    "name": ("Name", "string"), "descr": ("Description", "textarea"),
    "flag": ("Flag__c", "boolean"), "count": ("Count__c", "int"),
    "amount": ("Amount__c", "currency"), "ratio": ("Ratio__c", "double"),
    "pct": ("Pct__c", "percent"), "big": ("Big__c", "long"), "when": ("When__c", "datetime"),
    "day": ("Day__c", "date"), "file": ("Body", "base64"), "tags": ("Tags__c", "multipicklist"),
    "ref": ("Ref__c", "reference"), "account.ext__c": ("Account.Ext__c", "string"),
}
KEYS = ["Name", "Descr", "Flag", "Count", "Amount", "Ratio", "Pct", "Big", "When", "Day", "Tags",
        "Ref"]
#: Keys that are not a column of their own: a second key for Name, a refused field, a parent
#: reference, a dropped key, an unknown one.
ODD_KEYS = ["name", "File", "Account", "_sdc_batched_at", "Bad"]


def resolve(key: str) -> Column | None:
    low = key.lower()
    if low.startswith("_sdc"):
        return None
    if low == "bad":
        raise ValueError("Bad is not a field of Thing__c")
    found = TYPES.get(low)
    if found is None:
        raise ValueError(f"{key} is not a field of Thing__c")
    return Column(*found)


def per_record(batcher: CsvBatcher, items: list[tuple[Any, dict[str, Any]]],
               keyed: bool = True) -> list[CsvBatch | RejectedRecord]:
    """What repeated ``add()`` and a last ``flush()`` give."""
    out: list[CsvBatch | RejectedRecord] = []
    for key, row in items:
        outcome = batcher.add(row, key) if keyed else batcher.add(row)
        if outcome is not None:
            out.append(outcome)
    last = batcher.flush()
    if last is not None:
        out.append(last)
    return out


def whole(batcher: CsvBatcher, items: list[tuple[Any, dict[str, Any]]],
          keyed: bool = True) -> list[CsvBatch | RejectedRecord]:
    if keyed:
        return list(batcher.batches(items, keyed=True))
    return list(batcher.batches([row for _, row in items]))


def outcome_of(run: Any, make: Any, items: list[tuple[Any, dict[str, Any]]],
               keyed: bool) -> Any:
    try:
        return run(make(), items, keyed)
    except Exception as exc:  # a crash must be the same crash
        return (type(exc), str(exc))


def assert_same(make: Any, items: list[tuple[Any, dict[str, Any]]], keyed: bool = True) -> Any:
    expected = outcome_of(per_record, make, items, keyed)
    got = outcome_of(whole, make, items, keyed)
    assert got == expected  # batches compare their cells too
    for batch in got if isinstance(got, list) else []:
        if isinstance(batch, CsvBatch):
            assert_cells_read_back(batch)
    return got


def assert_cells_read_back(batch: CsvBatch) -> None:
    """A batch's cells are its rows as reading its CSV back gives them."""
    assert batch.cells is not None and len(batch.cells) == len(batch.columns)
    assert [list(row) for row in zip(*batch.cells, strict=True)] == \
        list(iter_csv_rows([batch.data]))[1:]


# -- strategies ---------------------------------------------------------------------------------

SPECIAL_TEXT = ["a,b", 'say "hi"', "line\nbreak", "cr\rhere", "crlf\r\n", "😀 emoji", "Zoë",
                "日本語", " padded ", "#N/A", "", "nul\0inside", "\ud800lone", ",", '"']
CLEAN_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                     min_size=1, max_size=10)


def clean_values(kind: str) -> list[st.SearchStrategy[Any]]:
    """The kinds of column a field of ``kind`` most often gets, one of which a run's column is
    drawn from (so the column-by-column fast paths are taken)."""
    none = st.none()
    if kind in ("string", "textarea", "reference", "multipicklist"):
        return [CLEAN_TEXT | none | st.sampled_from(["a,b", 'q"q', "x\ny", "é😀", ""]),
                CLEAN_TEXT, CLEAN_TEXT.map(lambda text: text + ","),
                st.sampled_from(["plain", "ascii", "text"]),
                CLEAN_TEXT | st.sampled_from(["#N/A", "a\0b", "\ud800x", "\udcff"])]
    if kind == "boolean":
        return [st.booleans() | none, st.booleans()]
    if kind == "int":
        return [st.integers(-(2**31) - 2, 2**31 + 1) | none, st.integers(-(2**31), 2**31 - 1)]
    if kind == "long":
        return [st.integers(-(2**64), 2**64) | none]
    if kind in ("currency", "double", "percent"):
        decimals = st.decimals(allow_nan=False, allow_infinity=False, places=3)
        floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
        return [decimals, decimals | none, st.integers(-(10**20), 10**20),
                st.integers() | none, floats, floats | none, decimals | st.integers() | none,
                st.sampled_from([Decimal("1E+7"), Decimal("-0"), Decimal("0.000"),
                                 Decimal("1.5E-9"), 3, 0.1, 1e22, -0.0]),
                st.integers(-(10**9), 10**9).map(lambda n: n / 8) | none,
                st.sampled_from([0.5, 1e15, 1e16, 123456789.125, 1e-4, 1e-5, -2.5]),
                st.decimals() | st.integers() | none, st.floats() | none]
    if kind == "datetime":
        return [st.datetimes(min_value=dt.datetime(1700, 1, 2),
                             max_value=dt.datetime(3999, 1, 1), timezones=st.just(UTC)) | none]
    if kind == "date":
        return [st.dates(min_value=dt.date(1700, 1, 1), max_value=dt.date(4000, 12, 31)) | none]
    return [none | st.just("")]


ODD_VALUES = st.one_of(
    st.sampled_from(SPECIAL_TEXT), st.booleans(), st.integers(-(2**65), 2**65),
    st.decimals(), st.floats(), st.sampled_from([Decimal("sNaN"), Decimal("1E+7"), 1e-7, 1e16,
                                                 "1.5", "yes", "12", "2024-02-30", "13:61"]),
    st.lists(st.sampled_from(["a", "b;c", "d"]), max_size=3),
    st.just({"Ext__c": "E-1"}), st.just({"attributes": {"type": "Acc"}, "Ext__c": "x"}),
    st.just({"Ext__c": {"too": "deep"}}), st.just(dt.time(1, 2, 3)), st.just(object()),
    st.none(),
)


def kind_of(key: str) -> str:
    found = TYPES.get(key.lower())
    return found[1] if found else "string"


@st.composite
def runs(draw: st.DrawFn, max_runs: int = 6, max_run: int = 30) -> list[dict[str, Any]]:
    """Records in runs of one shape each; each column of a run is all one kind of value, or any
    mix, so the column-by-column path and its fallbacks are both taken."""
    rows: list[dict[str, Any]] = []
    # Shapes drawn as orders and parts of one set of keys, so a later run often finds its
    # columns already in the batch's header in another order, or among more columns.
    base = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=6, unique=True))
    if draw(st.integers(0, 4)) == 0:
        base.append(draw(st.sampled_from(ODD_KEYS)))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        order = draw(st.permutations(base))
        shapes.append(order[:draw(st.integers(1, len(order)))])
    for _ in range(draw(st.integers(1, max_runs))):
        keys = draw(st.sampled_from(shapes))
        length = draw(st.integers(1, max_run))
        columns = []
        for key in keys:
            strategy = draw(st.sampled_from(clean_values(kind_of(key))))
            if draw(st.integers(0, 4)) == 0:
                strategy = strategy | ODD_VALUES
            columns.append(draw(st.lists(strategy, min_size=length, max_size=length)))
        rows.extend(dict(zip(keys, values, strict=True))
                    for values in zip(*columns, strict=True))
    return rows


LIMITS = st.fixed_dictionaries({
    "max_rows": st.integers(1, 40),
    "max_bytes": st.integers(30, 3000),
    "max_chars": st.integers(30, 3000),
    "max_field_chars": st.integers(1, 60) | st.just(131_072),
    "max_record_chars": st.integers(1, 200) | st.just(400_000),
    "max_record_fields": st.integers(1, 7) | st.just(5_000),
    "max_header_chars": st.integers(5, 200),
    "line_ending": st.sampled_from(["\n", "\r\n"]),
})


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=runs(), limits=LIMITS, keyed=st.booleans())
def test_runs_give_what_add_gives_under_any_limits(rows: list[dict[str, Any]],
                                                   limits: dict[str, Any], keyed: bool) -> None:
    items = [(f"k{n}", row) for n, row in enumerate(rows)]
    assert_same(lambda: CsvBatcher(resolve, tz=UTC, **limits), items, keyed)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["currency", "double", "int", "long", "string", "boolean"]),
       values=st.lists(st.one_of(st.decimals(), st.decimals(places=2), st.integers(),
                                 st.floats(), st.none()), min_size=1, max_size=12)
       | st.lists(st.decimals(allow_nan=False, allow_infinity=False)
                  | st.integers(-(2**70), 2**70) | st.none(), min_size=1, max_size=12)
       | st.lists(st.floats(allow_nan=False) | st.none(), min_size=1, max_size=12))
def test_a_column_of_numbers_is_what_the_encoder_gives(kind: str, values: list[Any]) -> None:
    from sfbulk.csvcodec import _column_cells, _plan_of, _raw_encoder

    encode = _raw_encoder(kind, UTC)
    try:
        expected: Any = [encode(value) for value in values]
    except ValueError:
        expected = None
    got = _column_cells(_plan_of(kind), encode, values)
    assert got == expected if got is None or expected is None else list(got) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=runs(max_runs=3, max_run=60))
def test_runs_give_what_add_gives_under_default_limits(rows: list[dict[str, Any]]) -> None:
    items = list(enumerate(rows))
    assert_same(lambda: CsvBatcher(resolve, tz=UTC), items)


# -- exact cases --------------------------------------------------------------------------------


def account(n: int) -> dict[str, Any]:
    return {"Name": f"Account {n}", "Count": n, "Amount": Decimal(n) / 4,
            "Descr": f'Customer {n}, "quoted"', "Flag": n % 2 == 0, "Ref": None}


def test_one_run_of_typical_records_makes_the_expected_csv() -> None:
    items = [(n, account(n)) for n in range(3)]
    [batch] = assert_same(lambda: CsvBatcher(resolve), items)
    assert batch.keys == [0, 1, 2]
    assert batch.data == (
        b'Name,Count__c,Amount__c,Description,Flag__c,Ref__c\n'
        b'Account 0,0,0,"Customer 0, ""quoted""",true,#N/A\n'
        b'Account 1,1,0.25,"Customer 1, ""quoted""",false,#N/A\n'
        b'Account 2,2,0.5,"Customer 2, ""quoted""",true,#N/A\n')


@pytest.mark.parametrize("line_ending", ["\n", "\r\n"])
def test_batches_fill_to_the_exact_byte_limit_with_multibyte_text(line_ending: str) -> None:
    # Header "Name" + EOL, then each row "é<n>" is 2 chars and 3 bytes (+EOL): a byte limit that
    # is met exactly by 4 rows must close the batch at 4 rows, and the chars limit must not.
    eol = len(line_ending)
    limit = (4 + eol) + 4 * (3 + eol)
    items = [(n, {"Name": f"é{n % 10}"}) for n in range(10)]
    got = assert_same(lambda: CsvBatcher(resolve, max_bytes=limit, line_ending=line_ending),
                      items)
    assert [batch.rows for batch in got] == [4, 4, 2]
    assert [batch.size for batch in got] == [limit, limit, (4 + eol) + 2 * (3 + eol)]
    assert [batch.chars for batch in got] == [limit - 4, limit - 4, (4 + eol) + 2 * (2 + eol)]
    one_less = assert_same(lambda: CsvBatcher(resolve, max_bytes=limit - 1,
                                              line_ending=line_ending), items)
    assert [batch.rows for batch in one_less] == [3, 3, 3, 1]


def test_chars_limit_and_rows_limit_at_their_boundaries() -> None:
    items = [(n, {"Name": f"x{n}"}) for n in range(10)]  # "Name\n" then "xN\n": 5 + 3 each
    by_chars = assert_same(lambda: CsvBatcher(resolve, max_chars=5 + 3 * 3), items)
    assert [batch.rows for batch in by_chars] == [3, 3, 3, 1]
    by_rows = assert_same(lambda: CsvBatcher(resolve, max_rows=5), items)
    assert [batch.keys for batch in by_rows] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_field_and_record_limits_at_their_boundaries_inside_a_run() -> None:
    # max_field_chars 5: "abcde" fits, "abcdef" is rejected; a quoted cell counts unquoted.
    values = ["abc", "abcde", "abcdef", 'a"b,c', "ab", "a,b,c,d", "x"]
    items = [(n, {"Name": value, "Descr": "d"}) for n, value in enumerate(values)]
    got = assert_same(lambda: CsvBatcher(resolve, max_field_chars=5, max_record_chars=7),
                      items)
    rejected = [(o.key, o.reason, o.field) for o in got if isinstance(o, RejectedRecord)]
    assert rejected == [(2, "Name: 6 characters, over the 5 per field", "Name"),
                        (5, "Name: 7 characters, over the 5 per field", "Name")]
    [batch] = [o for o in got if isinstance(o, CsvBatch)]
    assert batch.keys == [0, 1, 3, 4, 6]
    assert batch.data == b'Name,Description\nabc,d\nabcde,d\n"a""b,c",d\nab,d\nx,d\n'
    # A record of exactly 7 characters fits the record limit; 8 do not.
    items = [(0, {"Name": "abcde", "Descr": "fg"}), (1, {"Name": "abcde", "Descr": "fgh"}),
             (2, {"Name": "a", "Descr": "b"}), (3, {"Name": "c", "Descr": "d"})]
    got = assert_same(lambda: CsvBatcher(resolve, max_record_chars=7), items)
    assert [(o.key, o.reason) for o in got if isinstance(o, RejectedRecord)] == [
        (1, "8 characters, over the 7 per record")]


def test_a_bad_value_in_a_long_run_is_rejected_in_place() -> None:
    items = [(n, {"Name": f"N{n}", "Count": n}) for n in range(50)]
    items[20] = (20, {"Name": "N20", "Count": 2**31})
    items[30] = (30, {"Name": "#N/A", "Count": 30})
    items[40] = (40, {"Name": "bad \ud800 text", "Count": 40})
    got = assert_same(lambda: CsvBatcher(resolve, max_rows=15), items)
    assert [(o.key, o.reason, o.field) for o in got if isinstance(o, RejectedRecord)] == [
        (20, "Count__c: 2147483648 is outside the int range -2147483648..2147483647", "Count"),
        (30, "Name: the text '#N/A' cannot be sent: Salesforce reads it as null, quoted or not",
         "Name"),
        (40, "Name: the text is not valid UTF-8 (undecodable input bytes)", "Name"),
    ]
    assert [o.rows for o in got if isinstance(o, CsvBatch)] == [15, 15, 15, 2]


def test_later_runs_grow_the_header_and_reuse_columns_in_another_order() -> None:
    items = [(n, {"Name": f"A{n}"}) for n in range(5)]
    items += [(n, {"Count": n, "Name": f"B{n}"}) for n in range(5, 10)]
    items += [(n, {"Count": n}) for n in range(10, 15)]
    items += [(n, {"Flag": True, "Name": f"C{n}"}) for n in range(15, 20)]
    [batch] = assert_same(lambda: CsvBatcher(resolve), items)
    lines = batch.data.decode().splitlines()
    assert lines[0] == "Name,Count__c,Flag__c"
    assert lines[1:3] == ["A0,,", "A1,,"]
    assert lines[6:8] == ["B5,5,", "B6,6,"]
    assert lines[11:13] == [",10,", ",11,"]
    assert lines[16:18] == ["C15,,true", "C16,,true"]


def test_header_growth_that_breaks_the_header_limit_closes_the_batch() -> None:
    items = [(n, {"Name": f"A{n}"}) for n in range(5)]
    items += [(n, {"Name": f"B{n}", "Count": n}) for n in range(5, 10)]
    got = assert_same(lambda: CsvBatcher(resolve, max_header_chars=len("Name,Count_")), items)
    assert [(o.columns, o.keys) for o in got if isinstance(o, CsvBatch)] == [
        (["Name"], [0, 1, 2, 3, 4])]
    assert {o.reason for o in got if isinstance(o, RejectedRecord)} == {
        "the record alone exceeds the batch size limits"}


def test_missing_keys_are_positions_and_unkeyed_records_count_on() -> None:
    batcher = CsvBatcher(resolve)
    assert batcher.add({"Name": "first"}) is None  # position 0, open batch kept
    items = [(None if n % 3 == 0 else f"k{n}", {"Name": f"N{n}"}) for n in range(10)]
    [batch] = list(batcher.batches(items, keyed=True))
    assert batch.keys == [0, 1, "k1", "k2", 4, "k4", "k5", 7, "k7", "k8", 10]
    assert [o.keys for o in assert_same(lambda: CsvBatcher(resolve), items, keyed=False)] == [
        list(range(10))]


def test_records_that_are_not_dicts_and_items_that_are_not_pairs() -> None:
    from collections import OrderedDict

    items: list[Any] = [(n, OrderedDict(Name=f"N{n}", Count=n)) for n in range(6)]
    [batch] = assert_same(lambda: CsvBatcher(resolve), items)
    assert batch.rows == 6
    triples = [(0, {"Name": "a"}, "extra")] * 5
    with pytest.raises(ValueError, match="too many values to unpack"):
        list(CsvBatcher(resolve).batches(triples, keyed=True))


def test_runs_across_input_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    import sfbulk.csvcodec as codec

    monkeypatch.setattr(codec, "_CHUNK", 7)
    items = [(n, account(n)) for n in range(40)]
    items[12] = (12, {"Name": "other shape"})
    got = assert_same(lambda: CsvBatcher(resolve, max_rows=9), items)
    assert [o.rows for o in got] == [9, 9, 9, 9, 4]


def test_numbers_are_written_as_the_encoder_writes_them() -> None:
    values: list[Any] = [Decimal("1E+7"), Decimal("-0"), Decimal("0.000"), Decimal("1.5E-9"), 3,
                         Decimal("12.50"), None, -7, Decimal("-1E-3")]
    [batch] = assert_same(lambda: CsvBatcher(resolve),
                          [(n, {"Amount": value}) for n, value in enumerate(values)])
    assert batch.data.decode().split("\n")[1:-1] == [
        "10000000", "-0", "0.000", "0.0000000015", "3", "12.50", "#N/A", "-7", "-0.001"]
    floats = [0.5, 1e15, -0.0, 123456789.125, 1e-4, None, 2.0]
    [batch] = assert_same(lambda: CsvBatcher(resolve),
                          [(n, {"Ratio": value}) for n, value in enumerate(floats)])
    assert batch.data.decode().split("\n")[1:-1] == [
        "0.5", "1000000000000000.0", "-0.0", "123456789.125", "0.0001", "#N/A", "2.0"]
    with_exponent = [1e16, 1e-5, 2.5, 3.0]
    [batch] = assert_same(lambda: CsvBatcher(resolve),
                          [(n, {"Ratio": value}) for n, value in enumerate(with_exponent)])
    assert batch.data.decode().split("\n")[1:-1] == ["10000000000000000", "0.00001", "2.5", "3.0"]
    not_finite = [1.5, float("inf"), 2.5, float("nan"), 3.5]
    got = assert_same(lambda: CsvBatcher(resolve),
                      [(n, {"Ratio": value}) for n, value in enumerate(not_finite)])
    assert [(o.key, o.reason) for o in got if isinstance(o, RejectedRecord)] == [
        (1, "Ratio__c: inf is not a finite number"), (3, "Ratio__c: nan is not a finite number")]
    assert [o.data for o in got if isinstance(o, CsvBatch)] == [b"Ratio__c\n1.5\n2.5\n3.5\n"]
