"""The whole-batch insert path of ``Org.write`` stores and answers exactly what the row-by-row
path does.

Each case writes the same batch into two orgs on the same fixed clock: one as it is, one with
the whole-batch path switched off. Stored rows (values and SQLite storage classes), results and
the org's NUL flag must be identical; the cases also say which batches take the fast path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from sfbulk.emulator.bulk1 import parse_csv_batch
from sfbulk.emulator.store import Org, _sql_literal

UTC = dt.timezone.utc


def _clock() -> dt.datetime:
    return dt.datetime(2024, 3, 1, 12, 30, 45, 123000, tzinfo=UTC)


def _pair(monkeypatch: pytest.MonkeyPatch) -> tuple[Org, Org, list[bool]]:
    """A fast org (recording whether each insert took the whole-batch path) and a slow one."""
    fast, slow = Org(clock=_clock), Org(clock=_clock)
    taken: list[bool] = []
    original = Org._clean_create_columns

    def spy(self: Org, *args: Any) -> Any:
        found = original(self, *args)
        if self is fast:
            taken.append(found is not None)
        return None if self is slow else found

    monkeypatch.setattr(Org, "_clean_create_columns", spy)
    return fast, slow, taken


def _table(org: Org, name: str) -> list[tuple[Any, ...]]:
    columns = [row[1] for row in org.execute_sql(f'PRAGMA table_info("{name}")')]
    select = ", ".join(f'"{c}", typeof("{c}")' for c in columns)
    return org.execute_sql(f'SELECT {select} FROM "{name}" ORDER BY rowid')


def _same(fast: Org, slow: Org, obj: str, rows: list[dict[str, Any]]) -> list[Any]:
    got = fast.write(obj, "insert", rows)
    want = slow.write(obj, "insert", rows)
    assert got == want
    assert _table(fast, obj) == _table(slow, obj)
    assert fast.text_may_hold_nul == slow.text_may_hold_nul
    return got


def _contacts(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"FirstName": f"First{n}", "LastName": f"Last {n}", "Email": f"p{n}@example.com",
         "Title": 'Says "hi", twice', "LeadSource": "Web"}
        for n in range(start, start + count)
    ]


def test_a_clean_batch_takes_the_fast_path_and_stores_the_same(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    results = _same(fast, slow, "Contact", _contacts(250))
    assert taken == [True]
    assert all(r.success and r.created and r.errors == [] for r in results)
    # The derived Name, system fields and booleans defaulted like the general path.
    row = fast.execute_sql(
        'SELECT "Name", "CreatedDate", "OwnerId", "IsEmailBounced", "IsDeleted" FROM "Contact" '
        "ORDER BY rowid LIMIT 1"
    )
    assert row == [("First0 Last 0", "2024-03-01T12:30:45.123Z", fast.user_id, 0, 0)]
    # A second batch continues the id sequence.
    second = _same(fast, slow, "Contact", _contacts(10, 250))
    assert taken == [True, True]
    assert second[0].id > results[-1].id


def test_csv_batches_with_quotes_and_non_ascii(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    data = (
        'LastName,FirstName,Title,Description\n'
        '"O\'Brien","Zoë","a ""quoted"" title","line one\nline two"\n'
        "Smith,John,CEO,plain\n"
    ).encode()
    _same(fast, slow, "Contact", parse_csv_batch(data).rows)
    assert taken == [True]


@pytest.mark.parametrize(("rows", "reason"), [
    ([{"LastName": "A", "Email": "a@example.com"}, {"LastName": "B"}], "mixed shapes"),
    ([{"LastName": "A"}, {"LastName": "x" * 81}, {"LastName": "C"}], "too long mid-batch"),
    ([{"LastName": "A", "Email": "a@example.com"}, {"LastName": "B", "Email": "not-an-email"}],
     "bad email"),
    ([{"LastName": "A", "Title": None}, {"LastName": "B", "Title": "T"}], "null (#N/A)"),
    ([{"LastName": "A", "Title": ""}], "empty value"),
    ([{"FirstName": "NoLast"}, {"FirstName": "Other"}], "required field missing"),
    ([{"LastName": "A", "Birthdate": "2000-02-29"}], "date column"),
    ([{"LastName": "A", "Id": "003000000000001AAA"}], "id in an insert"),
    ([{"LastName": "A", "Name": "read only"}], "field not createable"),
    ([{"LastName": "A", "LastName ": "B"}], "unknown column"),
    ([{"LastName": "A", "lastname": "B"}], "the same field twice"),
])
def test_batches_the_fast_path_refuses_keep_their_outcomes(monkeypatch, rows, reason) -> None:
    fast, slow, taken = _pair(monkeypatch)
    try:
        _same(fast, slow, "Contact", rows)
    except Exception as exc:  # a whole-batch error must be the same error on both paths
        with pytest.raises(type(exc)) as again:
            slow.write("Contact", "insert", rows)
        assert str(again.value) == str(exc)
    assert True not in taken, reason


def test_relationship_and_reference_columns_take_the_general_path(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    for org in (fast, slow):
        org.write("Account", "insert", [{"Name": "Parent"}])
    parent = fast.execute_sql('SELECT "Id" FROM "Account"')[0][0]
    _same(fast, slow, "Contact", [{"LastName": "A", "AccountId": parent},
                                  {"LastName": "B", "AccountId": "001000000000000AAA"}])
    _same(fast, slow, "Contact", [{"LastName": "C", "ReportsTo.Email": "nobody@example.com"}])
    assert taken == [True, False, False]  # the Account insert was clean


def test_errors_in_the_middle_of_a_csv_batch(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    data = (
        b"LastName,Email,Title\n"
        b"A,a@example.com,T\n"
        b"B,broken,T\n"
        b"C,c@example.com,#N/A\n"
        b"D,,T\n"
    )
    results = _same(fast, slow, "Contact", parse_csv_batch(data).rows)
    assert True not in taken
    assert [r.success for r in results] == [True, False, True, True]


def test_other_objects_defaults_auto_numbers_and_unique_fields(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    _same(fast, slow, "Account", [{"Name": f"Acme {n}", "Phone": "555"} for n in range(20)])
    _same(fast, slow, "Case", [{"Subject": f"Broken {n}", "Origin": "Web"} for n in range(5)])
    _same(fast, slow, "Type_Sample__c", [{"Name": "a", "Ext_Id__c": "E1"},
                                         {"Name": "b", "Ext_Id__c": "E1"}])
    assert taken[:2] == [True, True]
    assert taken[2] is False  # an external id: checked for repeats row by row


def test_text_with_nul_in_a_clean_batch_sets_the_flag(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    _same(fast, slow, "Contact", [{"LastName": "nul\x00here"}, {"LastName": "plain"}])
    assert taken == [True]
    assert fast.text_may_hold_nul


@pytest.mark.parametrize(("value", "literal"), [
    (None, "NULL"), (True, "1"), (False, "0"), (0, "0"), (-12, "-12"),
    ("it's", "'it''s'"), ("", "''"), (1.5, None), (b"x", None), ("a\x00b", None),
])
def test_sql_literals(value, literal) -> None:
    assert _sql_literal(value) == literal
    if literal is not None:
        org = Org()
        assert org.execute_sql(f"SELECT {literal}, typeof({literal})") == org.execute_sql(
            "SELECT ?, typeof(?)", (value, value)
        )


# --- write_rows: cells in header order ------------------------------------------------------


def _same_rows(fast: Org, slow: Org, obj: str, header: list[str], records: list[list[str]],
               operation: str = "insert") -> list[Any]:
    """``fast.write_rows`` against ``slow.write`` of the same rows as dicts."""
    dicts = [dict(zip(header, record)) for record in records]
    try:
        want = slow.write(obj, operation, dicts)
    except Exception as exc:
        with pytest.raises(type(exc)) as got_error:
            fast.write_rows(obj, operation, header, records)
        assert str(got_error.value) == str(exc)
        return []
    got = fast.write_rows(obj, operation, header, records)
    assert got == want
    assert _table(fast, obj) == _table(slow, obj)
    return got


def test_write_rows_of_a_clean_insert(monkeypatch) -> None:
    fast, slow, taken = _pair(monkeypatch)
    header = ["FirstName", "LastName", "Email", "Title"]
    records = [[f"F{n}", f"L{n}", f"p{n}@example.com", 'a "b", c'] for n in range(40)]
    results = _same_rows(fast, slow, "Contact", header, records)
    assert taken == [True]
    assert len(results) == 40 and all(r.created for r in results)


@pytest.mark.parametrize(("obj", "header", "records", "operation"), [
    ("Contact", ["LastName", "Email"], [["A", "a@example.com"], ["B", "broken"]], "insert"),
    ("Contact", ["LastName", "Bogus__c"], [["A", "x"]], "insert"),
    ("Contact", ["LastName", "lastname"], [["A", "B"]], "insert"),
    ("Contact", ["LastName", "Title"], [["A", "x"], ["B"]], "insert"),
    ("Contact", ["Id", "LastName"], [["003000000000001AAA", "A"]], "update"),
    ("Contact", ["LastName"], [], "insert"),
    ("Organization", ["Name"], [["x"]], "insert"),
    ("Nope__c", ["Name"], [["x"]], "insert"),
])
def test_write_rows_hands_everything_else_to_write(monkeypatch, obj, header, records,
                                                   operation) -> None:
    fast, slow, taken = _pair(monkeypatch)
    _same_rows(fast, slow, obj, header, records, operation)
    assert True not in taken


@pytest.mark.parametrize("column", [
    ["a@b.c"], ["a@b.c\n"], ["a@b"], ["a b@c.d"], ["a@b.c", "x@y.z"], ["@b.c"], ["a@@b.c"],
    ["a@b.c\nd@e.f"], ["a@b..c"], ["é@ü.com"], ["a@b.c\t"], ["a@b.c", "a@b.c\n"], [""],
    ["a@b.c", ""], ["x@y.z\r"], ["a.b@c"], ["a@.c"], ["a@b.", "q@r.s"],
])
def test_a_column_of_emails_is_checked_as_value_by_value(column) -> None:
    from sfbulk.emulator.store import _EMAIL, _all_emails

    assert _all_emails(column) == all(map(_EMAIL.match, column))


def test_emails_with_line_feeds_store_the_same(monkeypatch) -> None:
    fast, slow, _ = _pair(monkeypatch)
    _same(fast, slow, "Contact", [{"LastName": "A", "Email": "a@b.c\n"},
                                  {"LastName": "B", "Email": "b@c.d"}])
    _same(fast, slow, "Contact", [{"LastName": "C", "Email": "a@b.c\nd@e.f"}])


@pytest.mark.parametrize(("per_statement", "max_params"), [(7, 250_000), (500, 40), (1, 250_000)])
def test_multi_row_inserts_store_what_row_by_row_inserts_do(monkeypatch, per_statement,
                                                           max_params) -> None:
    from sfbulk.emulator import store

    one = Org(clock=_clock)
    many = Org(clock=_clock)
    many._max_params = max_params
    clean = _contacts(23)
    mixed = [{"LastName": f"L{n}", "Title": None if n % 3 else "T"} for n in range(23)]
    for org, per in ((one, 1), (many, per_statement)):
        monkeypatch.setattr(store, "INSERT_ROWS_PER_STATEMENT", per)
        org.write("Contact", "insert", clean)
        org.write("Contact", "insert", mixed)
        org.insert_raw("Account", [{"Name": f"A{n}"} for n in range(23)])
    for table in ("Contact", "Account"):
        assert _table(many, table) == _table(one, table)
    assert len(_table(many, "Contact")) == 46
