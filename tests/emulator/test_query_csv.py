"""SQLite-built query CSV (``jobs.spool_csv_query``) against the Python printers of both APIs.

The SQL path must give byte for byte what the Python printers give, whatever the stored values:
these tests store awkward values (quotes, commas, newlines, NUL, non-ASCII, REAL decimals,
integers either side of Java's 10^7 switch to E notation, booleans that are not 0/1, nulls) and
compare every path (keyset blocks, row by row for sorted queries, rows printed in Python,
wide rows split over several printf calls, LIMIT) with the printer applied to the raw rows.
"""

from __future__ import annotations

import random

import pytest

from sfbulk.emulator import bulk1, bulk2
from sfbulk.emulator.jobs import ResultFile, spool_csv_query
from sfbulk.emulator.metadata import FieldDef
from sfbulk.emulator.soql import compile_soql
from sfbulk.emulator.store import Org

FIELDS = "Id, Name, Description, NumberOfEmployees, AnnualRevenue, IsDeleted, CreatedDate"

AWKWARD_NAMES = ['plain', 'say "hi"', "a,b", "two\nlines", "crlf\r\nx", "", "naïve ☃", "nul\x00x"]
REVENUES = [0, 5, -5, 9_999_999, 10_000_000, -10_000_000, 123_456_789, 5 * 10**8, 10**14 + 1,
            10**15, 2**60, 1234.56, -0.5, 0.001, 1e-4, 1.5e20, None]


def _org(rows: int, seed: int = 7) -> Org:
    org = Org()
    rng = random.Random(seed)
    records = []
    for n in range(rows):
        records.append({
            "Name": rng.choice(AWKWARD_NAMES) + str(n),
            "Description": rng.choice([None, "x", '""', "é" * 3]),
            "NumberOfEmployees": rng.choice([None, 0, 7, -3, 2**40, 12.5]),
            "AnnualRevenue": rng.choice(REVENUES),
        })
    org.insert_raw("Account", records)
    # Booleans other than 0/1 cannot be written through the API; store one directly.
    org._conn.execute('UPDATE "Account" SET "IsDeleted" = 2 WHERE rowid = 3')
    return org


def _python_csv(org: Org, soql: str, printer) -> bytes:
    compiled = compile_soql(soql, org.catalog, True)
    rows = org.execute_sql(compiled.sql, compiled.params)
    return "".join(printer(rows)).encode("utf-8") if rows else b""


def _sql_csv(org: Org, soql: str, printer, **kw) -> tuple[bytes, ResultFile]:
    compiled = compile_soql(soql, org.catalog, True)
    result = ResultFile()
    count = sum(spool_csv_query(org, compiled, result, printer, **kw))
    result.finish()
    assert count == result.row_count
    return result.read_page(), result


@pytest.mark.parametrize("api", ["bulk1", "bulk2"])
@pytest.mark.parametrize("soql", [
    f"SELECT {FIELDS} FROM Account",
    f"SELECT {FIELDS} FROM Account ORDER BY Name DESC",
    f"SELECT {FIELDS} FROM Account LIMIT 1234",
    f"SELECT {FIELDS} FROM Account WHERE NumberOfEmployees > 0",
])
def test_sql_lines_equal_the_python_printer(api: str, soql: str) -> None:
    org = _org(1_200)
    compiled = compile_soql(soql, org.catalog, True)
    if api == "bulk1":
        printer = bulk1.csv_row_printer(compiled.field_types)
    else:
        printer = bulk2.csv_row_printer(compiled.field_types)
    expected = _python_csv(org, soql, printer)
    got, result = _sql_csv(org, soql, printer, block_rows=500)
    assert got == expected
    assert result.row_count == len(org.execute_sql(compiled.sql, compiled.params))


def test_bulk2_delimiters_and_crlf() -> None:
    org = _org(700)
    soql = f"SELECT {FIELDS} FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    for delimiter, newline in ((";", "\r\n"), ("\t", "\n"), ("|", "\r\n"), ("%", "\n")):
        printer = bulk2.csv_row_printer(compiled.field_types, delimiter, newline)
        got, _ = _sql_csv(org, soql, printer, delimiter=delimiter, newline=newline,
                          block_rows=128)
        assert got == _python_csv(org, soql, printer)


def test_wide_rows_and_relationship_columns() -> None:
    org = Org()
    for n in range(130):
        org.add_field("Account", FieldDef(f"Wide{n}__c", "string", f"Wide {n}", length=20,
                                          custom=True))
    org.sync_schema()
    ids = org.insert_raw("Account", [
        {"Name": f"A{n}", **{f"Wide{k}__c": f'v"{n}.{k}' for k in range(0, 130, n + 1)}}
        for n in range(50)
    ])
    org.insert_raw("Contact", [{"LastName": f"L{n}", "AccountId": ids[n % 50]} for n in range(300)])
    wide = "SELECT Id, " + ", ".join(f"Wide{n}__c" for n in range(130)) + " FROM Account"
    rel = "SELECT Id, LastName, Account.Name, Account.AnnualRevenue FROM Contact"
    for soql in (wide, rel):
        compiled = compile_soql(soql, org.catalog, True)
        printer = bulk1.csv_row_printer(compiled.field_types)
        got, _ = _sql_csv(org, soql, printer, block_rows=64)
        assert got == _python_csv(org, soql, printer)


def test_pages_inside_blocks_have_exact_offsets() -> None:
    org = _org(1_000)
    soql = f"SELECT {FIELDS} FROM Account WHERE AnnualRevenue < 10000000 AND IsDeleted = false"
    compiled = compile_soql(soql, org.catalog, True)
    printer = bulk1.csv_row_printer(compiled.field_types)
    expected = printer(org.execute_sql(compiled.sql, compiled.params))
    _, result = _sql_csv(org, soql, printer, block_rows=97)
    assert result.row_count == len(expected)
    for start, count in ((0, 1), (1, 96), (96, 2), (97, 97), (150, 400), (len(expected) - 1, 5)):
        want = "".join(expected[start : start + count]).encode("utf-8")
        assert result.read_page(start, count) == want
        assert result.page_bytes(start, count) == len(want)


def test_java_double_notation_in_sql() -> None:
    org = Org()
    values = [0, 1, -1, 9_999_999, -9_999_999, 10_000_000, 10_000_001, 120_000_000, -300_000,
              999_999_999_999_999, -999_999_999_999_999, 100_000_000_000_000]
    org.insert_raw("Account", [{"Name": str(v), "AnnualRevenue": v} for v in values])
    soql = "SELECT AnnualRevenue FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    got, _ = _sql_csv(org, soql, bulk1.csv_row_printer(compiled.field_types))
    assert got.decode().split("\n")[:-1] == [f'"{bulk1.java_double(float(v))}"' for v in values]
    assert got.startswith(b'"0.0"\n"1.0"\n"-1.0"\n"9999999.0"\n"-9999999.0"\n"1.0E7"\n')


def test_clean_values_never_reach_the_python_printer() -> None:
    org = Org()
    org.insert_raw("Account", [
        {"Name": f'Account "{n}"', "NumberOfEmployees": n, "AnnualRevenue": n * 1000}
        for n in range(2_500)
    ])
    soql = f"SELECT {FIELDS} FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    printer = bulk1.csv_row_printer(compiled.field_types)
    printed: list[int] = []

    def counting(rows):
        printed.append(len(rows))
        return printer(rows)

    got, result = _sql_csv(org, soql, counting, block_rows=1_000)
    assert printed == []
    assert result.row_count == 2_500
    assert got == _python_csv(org, soql, printer)
    assert got.splitlines()[10].split(b",")[1:] == [
        b'"Account ""10"""', b'""', b'"10"', b'"10000.0"', b'"false"',
        b'"' + org.execute_sql('SELECT CreatedDate FROM Account WHERE rowid = 11')[0][0].encode()
        + b'"',
    ]


# --- text with NUL: checked only once the org has stored some ------------------------------

CLEAN_NAMES = ['plain', 'say "hi"', '"', 'a,b', "two\nlines", 'q"\n"q', "crlf\r\nx", "naïve ☃",
               "trailing\\", "%s %w %%"]


def _clean_org(rows: int, seed: int = 11) -> Org:
    """Awkward values, but no text with NUL (and no REAL or non-0/1 booleans)."""
    org = Org()
    rng = random.Random(seed)
    org.insert_raw("Account", [
        {
            "Name": rng.choice(CLEAN_NAMES) + str(n),
            "Description": rng.choice([None, "x", '""', "é" * 3, "\n"]),
            "NumberOfEmployees": rng.choice([None, 0, 7, -3, 2**40]),
            "AnnualRevenue": rng.choice([None, 0, 5, -5, 10_000_000, 123_456_789]),
        }
        for n in range(rows)
    ])
    return org


def test_an_org_without_nul_text_prints_every_row_in_sql() -> None:
    org = _clean_org(1_000)
    assert not org.text_may_hold_nul
    soql = f"SELECT {FIELDS} FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    for delimiter, newline in ((",", "\n"), (";", "\r\n"), ("|", "\n"), ("\t", "\r\n")):
        printer = bulk2.csv_row_printer(compiled.field_types, delimiter, newline)
        printed: list[int] = []

        def counting(rows, printer=printer, printed=printed):
            printed.append(len(rows))
            return printer(rows)

        got, result = _sql_csv(org, soql, counting, delimiter=delimiter, newline=newline,
                               block_rows=97)
        assert printed == []
        expected = printer(org.execute_sql(compiled.sql, compiled.params))
        assert got == "".join(expected).encode("utf-8")
        # Pages starting inside blocks: the line ends are found from the quotes alone.
        for start, count in ((0, 1), (1, 96), (96, 2), (97, 97), (150, 400), (999, 5),
                             (500, None), (3, 1)):
            stop = None if count is None else start + count
            want = "".join(expected[start:stop]).encode("utf-8")
            assert result.read_page(start, count) == want
            assert result.page_bytes(start, count) == len(want)


def test_nul_written_through_the_api_turns_the_checks_on() -> None:
    org = _clean_org(300)
    soql = "SELECT Id, Name, Description FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    printer = bulk1.csv_row_printer(compiled.field_types)
    created = org.write("Account", "insert", [{"Name": "plain"}, {"Name": "nul\x00inside"}])
    assert [r.success for r in created] == [True, True]
    assert org.text_may_hold_nul
    got, _ = _sql_csv(org, soql, printer, block_rows=64)
    assert got == _python_csv(org, soql, printer)
    assert b'"nul\x00inside"' in got


def test_nul_written_by_an_update_turns_the_checks_on() -> None:
    org = _clean_org(200)
    first = org.execute_sql('SELECT "Id" FROM "Account" ORDER BY "Id" LIMIT 1')[0][0]
    assert org.write("Account", "update", [{"Id": first, "Description": "a\x00b"}])[0].success
    assert org.text_may_hold_nul
    soql = "SELECT Id, Description FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    printer = bulk1.csv_row_printer(compiled.field_types)
    got, _ = _sql_csv(org, soql, printer, block_rows=50)
    assert got == _python_csv(org, soql, printer)
    assert got.startswith(f'"{first}","a\x00b"\n'.encode())


def test_nul_written_while_a_query_runs_redoes_the_block_with_checks() -> None:
    org = _clean_org(300)
    soql = "SELECT Id, Name FROM Account"
    compiled = compile_soql(soql, org.catalog, True)
    printer = bulk1.csv_row_printer(compiled.field_types)
    first = org.execute_sql('SELECT "Id" FROM "Account" ORDER BY "Id" LIMIT 1')[0][0]

    class Racing:
        """The org, with a NUL written just before the query's first block runs."""

        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str):
            return getattr(org, name)

        def execute_sql(self, sql, params=()):
            self.calls += 1
            if self.calls == 1:
                org.write("Account", "update", [{"Id": first, "Name": "late\x00nul"}])
            return org.execute_sql(sql, params)

    racing = Racing()
    result = ResultFile()
    count = sum(spool_csv_query(racing, compiled, result, printer, block_rows=100))
    result.finish()
    assert count == 300
    assert result.read_page() == _python_csv(org, soql, printer)
    assert result.read_page(0, 1) == f'"{first}","late\x00nul"\n'.encode()


def test_a_reopened_database_file_is_scanned_for_nul(tmp_path) -> None:
    clean, dirty = str(tmp_path / "clean.db"), str(tmp_path / "dirty.db")
    for path, name in ((clean, "no nul"), (dirty, "a\x00nul")):
        org = Org(path)
        org.write("Account", "insert", [{"Name": "plain"}, {"Name": name}])
        org._conn.close()
    reopened = [Org(clean), Org(dirty)]
    assert [org.text_may_hold_nul for org in reopened] == [False, True]
    for org in reopened:
        org._conn.close()


@pytest.mark.parametrize(("values", "expected"), [
    (["a", None, "", "b"], False),
    (["a", None, "x\x00"], True),
    ([1, 2.5, None, True], False),
    ([1, "x\x00"], True),
    ([b"\x01\x02", "text", 3], False),
    ([b"\x01\x00", 3], True),
    (("a", 0, "b\x00c"), True),
    ([], False),
])
def test_holds_nul(values, expected) -> None:
    from sfbulk.emulator.store import _holds_nul

    assert _holds_nul(values) is expected
