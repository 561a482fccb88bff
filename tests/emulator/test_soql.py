"""Tests of the emulator's SOQL engine: parsing, Salesforce's rejections, and compiled results.

Error messages are compared whole: Bulk clients show them to users and some match on them.
Query results run through a real store (rows written with ``org.write``) and are compared
row by row.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from sfbulk.emulator.metadata import standard_catalog
from sfbulk.emulator.soql import (
    Comparison,
    Logical,
    Not,
    SoqlError,
    compile_select,
    compile_soql,
    is_pk_chunkable,
    parse,
    relative_date_range,
    tokenize,
)
from tests.conftest import FIXTURES

HINT_FIELD = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
HINT_OBJECT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity "
    "name. Please reference your WSDL or the describe call for the appropriate names."
)


@pytest.fixture(scope="module")
def catalog():
    return standard_catalog()


def _error(soql: str, catalog, **kwargs) -> SoqlError:
    with pytest.raises(SoqlError) as info:
        compile_soql(soql, catalog, **kwargs)
    return info.value


# ------------------------------------------------------------------------- recorded messages


def test_unknown_field_gives_the_recorded_invalid_field_message(catalog) -> None:
    err = _error("SELECT Id, BadField FROM Account", catalog)
    assert err.code == "INVALID_FIELD"
    assert err.message == (
        "\nSELECT Id, BadField FROM Account\n           ^\nERROR at Row:1:Column:12\n"
        f"No such column 'BadField' on entity 'Account'. {HINT_FIELD}"
    )
    assert str(err) == "INVALID_FIELD: " + err.message


def test_unknown_object_matches_the_recorded_rest_error_byte_for_byte(catalog) -> None:
    recorded = FIXTURES / "salesforce" / "rest" / "error_invalid_type_unknown_object.json"
    if not recorded.is_file():
        pytest.skip("../shared/fixtures is not beside this checkout")
    expected = json.loads(recorded.read_text())[0]
    # The recorded snippet starts 32 characters before the error: the query had "Id," before it.
    err = _error("SELECT Id,Name,BillingCity,IsDeleted FROM Accout", catalog)
    assert (err.code, err.message) == (expected["errorCode"], expected["message"])


def test_long_query_snippet_keeps_tokens_within_32_characters_of_the_error(catalog) -> None:
    fields = ", ".join(["Name", "Phone", "Website", "Industry", "Type", "Fax", "Nope__c"])
    err = _error(f"SELECT Id, {fields}, Description, NumberOfEmployees FROM Account", catalog)
    assert err.message == (
        "\nWebsite, Industry, Type, Fax, Nope__c, Description, NumberOfEmployees\n"
        "                              ^\nERROR at Row:1:Column:55\n"
        f"No such column 'Nope__c' on entity 'Account'. {HINT_FIELD}"
    )


def test_error_rows_and_columns_count_lines(catalog) -> None:
    err = _error("SELECT Id\nFROM Contact\nWHERE Accnt.Name = 'x'", catalog)
    assert err.code == "INVALID_FIELD"
    assert err.message.startswith("\nWHERE Accnt.Name = 'x'\n      ^\nERROR at Row:3:Column:7\n")
    assert "Didn't understand relationship 'Accnt' in field path." in err.message


def test_unknown_object_hint(catalog) -> None:
    err = _error("select id from Widget__c", catalog)
    assert err.code == "INVALID_TYPE"
    assert err.message == (
        "\nselect id from Widget__c\n               ^\nERROR at Row:1:Column:16\n"
        f"sObject type 'Widget__c' is not supported. {HINT_OBJECT}"
    )


def test_root_object_must_match_the_bulk_job(catalog) -> None:
    err = _error("SELECT Id FROM contact", catalog, expected_object="Account")
    assert (err.code, err.message) == (
        "INVALID_TYPE_FOR_OPERATION",
        "The root entity of the requested query (Contact) does not match the entity of the "
        "requested Bulk API Job (Account).",
    )
    # Case does not matter, as object names are case-insensitive.
    assert compile_soql("SELECT Id FROM contact", catalog, expected_object="CONTACT").object == (
        "Contact"
    )


# ------------------------------------------------------------------------------ syntax errors


@pytest.mark.parametrize(
    ("soql", "snippet", "column", "message"),
    [
        ("SELECT Id FROM", "SELECT Id FROM", 15, "unexpected token: <EOF>"),
        ("SELECT FROM Account", "SELECT FROM Account", 13, "unexpected token: Account"),
        ("SELECT Id, FROM Account", "SELECT Id, FROM Account", 17, "unexpected token: Account"),
        ("SELECT * FROM Account", "SELECT *", 8, "unexpected token: *"),
        ("SELECT Id FROM Account WHERE", "SELECT Id FROM Account WHERE", 29,
         "unexpected token: <EOF>"),
        ("SELECT Id FROM Account LIMIT 5 ORDER BY Id", "SELECT Id FROM Account LIMIT 5 ORDER BY Id",
         32, "unexpected token: ORDER"),
        ("SELECT Id FROM Account LIMIT x", "SELECT Id FROM Account LIMIT x", 30,
         "unexpected token: x"),
        ("SELECT Id FROM Account WHERE Name = 'x' AND Type = 'y' OR Id = null",
         "WHERE Name = 'x' AND Type = 'y' OR Id = null", 56, "unexpected token: OR"),
        ("SELECT Id FROM Account WHERE Name = 'x' AND NOT Type = 'y'",
         "FROM Account WHERE Name = 'x' AND NOT Type = 'y'", 45,
         "unexpected token: NOT"),
        ("SELECT Id FROM Account WHERE Name = :acctName",
         "SELECT Id FROM Account WHERE Name = :acctName", 37,
         "Bind variables only allowed in Apex code"),
        ("SELECT Id FROM Account WHERE Name = 'abc", "SELECT Id FROM Account WHERE Name = 'abc",
         37, "unexpected token: 'abc"),
        ("SELECT Id FROM Account WHERE Name = 'a\\qb'",
         "SELECT Id FROM Account WHERE Name = 'a\\q", 37,
         "Invalid string literal 'a\\q'. Illegal character sequence '\\q' in string literal."),
        ("SELECT Id FROM Account WHERE CreatedDate > 2021-01-01T00:00:00.1234567Z",
         "FROM Account WHERE CreatedDate > 2021-01-01T00:00:00.1234567Z", 44,
         "unexpected token: 2021-01-01T00:00:00.1234567Z"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2021-01-01T00:00:00",
         "FROM Account WHERE CreatedDate > 2021-01-01T00:00:00", 44,
         "unexpected token: 2021-01-01T00:00:00"),
        ("SELECT Id FROM Account WHERE CloseDate > 2021-02-30",
         "FROM Account WHERE CloseDate > 2021-02-30", 42,
         "unexpected token: 2021-02-30"),
        ("SELECT Id FROM Account LIMIT 2147483648", "SELECT Id FROM Account LIMIT 2147483648", 30,
         "numeric value out of range: 2147483648"),
        ("SELECT Id FROM Account c", "SELECT Id FROM Account c", 24, "unexpected token: c"),
    ],
)  # fmt: skip
def test_syntax_errors_are_malformed_query(soql, snippet, column, message) -> None:
    with pytest.raises(SoqlError) as info:
        parse(soql)
    caret = " " * (column - 1 - soql.index(snippet)) + "^"
    assert info.value.code == "MALFORMED_QUERY"
    assert info.value.message == f"\n{snippet}\n{caret}\nERROR at Row:1:Column:{column}\n{message}"


def test_keywords_are_case_insensitive_and_parentheses_group() -> None:
    q = parse(
        "select Id from Account where not (Name = 'a' or name like 'b%') "
        "and (Type != null) order by Name desc nulls last, Id limit 3"
    )
    assert isinstance(q.where, Logical) and q.where.op == "AND"
    first, second = q.where.items
    assert isinstance(first, Not) and isinstance(first.item, Logical) and first.item.op == "OR"
    assert isinstance(second, Comparison) and second.op == "!="
    assert [(k.field.text, k.descending, k.nulls_first) for k in q.order_by] == [
        ("Name", True, False),
        ("Id", False, True),
    ]
    assert q.limit == 3
    # NOT may open a parenthesised group after AND.
    q = parse("SELECT Id FROM Account WHERE Name != null AND (NOT AnnualRevenue > 0)")
    assert isinstance(q.where, Logical) and isinstance(q.where.items[1], Not)


def test_tap_salesforce_query_shape_parses() -> None:
    soql = (
        "SELECT Id,Name,SystemModstamp FROM Account WHERE SystemModstamp >= "
        "2021-01-01T00:00:00.000000Z  ORDER BY SystemModstamp ASC"
    )
    q = parse(soql)
    assert [f.text for f in q.fields] == ["Id", "Name", "SystemModstamp"]
    assert isinstance(q.where, Comparison)
    assert q.where.values[0].value == "2021-01-01T00:00:00.000Z"


# ------------------------------------------------------------------------------------ literals


@pytest.mark.parametrize(
    ("literal", "utc"),
    [
        ("2021-01-01T00:00:00Z", "2021-01-01T00:00:00.000Z"),
        ("2021-01-01T00:00:00.5Z", "2021-01-01T00:00:00.500Z"),
        ("2021-01-01T00:00:00.123Z", "2021-01-01T00:00:00.123Z"),
        ("2021-01-01T00:00:00.000000Z", "2021-01-01T00:00:00.000Z"),
        ("2021-01-01T00:00:00.123456Z", "2021-01-01T00:00:00.123Z"),
        ("2021-01-01T00:30:00+02:00", "2020-12-31T22:30:00.000Z"),
        ("2021-12-31T20:00:00.250-05:30", "2022-01-01T01:30:00.250Z"),
        ("2024-02-29T23:59:59.999999-00:00", "2024-02-29T23:59:59.999Z"),
    ],
)
def test_datetime_literals_normalise_to_stored_utc_text(literal, utc) -> None:
    (tok, _eof) = tokenize(literal)
    assert (tok.kind, tok.value) == ("datetime", utc)


def test_string_escapes_decode_and_keep_like_wildcards_apart() -> None:
    tok = tokenize(r"'it\'s \\ \"q\" \n\t 50\% a\_b %_'")[0]
    assert tok.value == 'it\'s \\ "q" \n\t 50% a_b %_'
    # In the LIKE form escaped wildcards stay escaped (\ is the ESCAPE character).
    assert tok.like == 'it\'s \\\\ "q" \n\t 50\\% a\\_b %_'


def test_numbers_and_signs() -> None:
    kinds = [(t.kind, t.value) for t in tokenize("-5 +2.50 10 2021-03-04")[:-1]]
    assert kinds == [("number", -5), ("number", 2.5), ("number", 10), ("date", "2021-03-04")]


TODAY = dt.date(2024, 3, 13)  # a Wednesday


@pytest.mark.parametrize(
    ("name", "n", "start", "end"),
    [
        ("TODAY", None, "2024-03-13", "2024-03-14"),
        ("YESTERDAY", None, "2024-03-12", "2024-03-13"),
        ("TOMORROW", None, "2024-03-14", "2024-03-15"),
        ("THIS_WEEK", None, "2024-03-10", "2024-03-17"),
        ("LAST_WEEK", None, "2024-03-03", "2024-03-10"),
        ("NEXT_WEEK", None, "2024-03-17", "2024-03-24"),
        ("THIS_MONTH", None, "2024-03-01", "2024-04-01"),
        ("LAST_MONTH", None, "2024-02-01", "2024-03-01"),
        ("NEXT_MONTH", None, "2024-04-01", "2024-05-01"),
        ("LAST_90_DAYS", None, "2023-12-14", "2024-03-14"),
        ("NEXT_90_DAYS", None, "2024-03-14", "2024-06-12"),
        ("THIS_QUARTER", None, "2024-01-01", "2024-04-01"),
        ("LAST_QUARTER", None, "2023-10-01", "2024-01-01"),
        ("NEXT_QUARTER", None, "2024-04-01", "2024-07-01"),
        ("THIS_YEAR", None, "2024-01-01", "2025-01-01"),
        ("LAST_YEAR", None, "2023-01-01", "2024-01-01"),
        ("NEXT_YEAR", None, "2025-01-01", "2026-01-01"),
        ("THIS_FISCAL_YEAR", None, "2024-01-01", "2025-01-01"),
        ("LAST_N_DAYS", 7, "2024-03-06", "2024-03-14"),
        ("NEXT_N_DAYS", 7, "2024-03-14", "2024-03-21"),
        ("N_DAYS_AGO", 3, "2024-03-10", "2024-03-11"),
        ("LAST_N_WEEKS", 2, "2024-02-25", "2024-03-10"),
        ("NEXT_N_WEEKS", 1, "2024-03-17", "2024-03-24"),
        ("N_WEEKS_AGO", 1, "2024-03-03", "2024-03-10"),
        ("LAST_N_MONTHS", 2, "2024-01-01", "2024-03-01"),
        ("NEXT_N_MONTHS", 10, "2024-04-01", "2025-02-01"),
        ("N_MONTHS_AGO", 14, "2023-01-01", "2023-02-01"),
        ("LAST_N_QUARTERS", 2, "2023-07-01", "2024-01-01"),
        ("N_QUARTERS_AGO", 1, "2023-10-01", "2024-01-01"),
        ("LAST_N_YEARS", 2, "2022-01-01", "2024-01-01"),
        ("NEXT_N_YEARS", 1, "2025-01-01", "2026-01-01"),
        ("N_YEARS_AGO", 4, "2020-01-01", "2021-01-01"),
    ],
)
def test_relative_date_ranges(name, n, start, end) -> None:
    lo, hi = relative_date_range(name, n, TODAY)
    assert (lo.isoformat(), hi.isoformat()) == (start, end)


# ------------------------------------------------------------------------------ Bulk rejections


@pytest.mark.parametrize(
    ("soql", "code", "message"),
    [
        ("SELECT COUNT() FROM Account", "FUNCTIONALITY_NOT_ENABLED",
         "Aggregate functions not supported in Bulk Query"),
        ("SELECT Name, SUM(AnnualRevenue) FROM Account", "FUNCTIONALITY_NOT_ENABLED",
         "Aggregate functions not supported in Bulk Query"),
        ("SELECT Name FROM Account GROUP BY Name", "FUNCTIONALITY_NOT_ENABLED",
         "GROUP BY not supported in Bulk Query"),
        ("SELECT Name FROM Account WHERE Name != null HAVING Name = 'x'",
         "FUNCTIONALITY_NOT_ENABLED", "HAVING not supported in Bulk Query"),
        ("SELECT Name FROM Account ORDER BY Name LIMIT 5 OFFSET 10", "FUNCTIONALITY_NOT_ENABLED",
         "OFFSET not supported in Bulk Query"),
        ("SELECT TYPEOF What WHEN Account THEN Name END FROM Task", "FUNCTIONALITY_NOT_ENABLED",
         "TYPEOF not supported in Bulk Query"),
        ("SELECT Name, (SELECT LastName FROM Contacts) FROM Account",
         "FUNCTIONALITY_NOT_ENABLED", "Aggregate Relationships not supported in Bulk Query"),
        ("SELECT Id FROM Account FOR UPDATE", "FUNCTIONALITY_NOT_ENABLED",
         "FOR UPDATE, FOR VIEW and FOR REFERENCE not supported in Bulk Query"),
        ("SELECT Id FROM Account WITH SECURITY_ENFORCED", "FUNCTIONALITY_NOT_ENABLED",
         "WITH not supported in Bulk Query"),
        ("SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Account)",
         "FUNCTIONALITY_NOT_ENABLED", "Semi join sub-selects not supported in Bulk Query"),
        ("SELECT Id, BillingAddress FROM Account", "FUNCTIONALITY_NOT_ENABLED",
         "Selecting compound data not supported in Bulk Query"),
        ("SELECT Id, Location__c FROM Store__c", "FUNCTIONALITY_NOT_ENABLED",
         "Selecting compound data not supported in Bulk Query"),
        ("SELECT Id, Account.BillingAddress FROM Contact", "FUNCTIONALITY_NOT_ENABLED",
         "Selecting compound data not supported in Bulk Query"),
        ("SELECT Id, Body FROM Attachment", "FUNCTIONALITY_NOT_ENABLED",
         "Selecting base64 data not supported in Bulk Query"),
        ("SELECT Id FROM CaseStatus", "INVALIDENTITY",
         "CaseStatus is not supported by the Bulk API"),
        ("SELECT Id, Name, name FROM Account", "INVALID_FIELD", "duplicate field selected: Name"),
    ],
)  # fmt: skip
def test_bulk_rejections(catalog, soql, code, message) -> None:
    err = _error(soql, catalog)
    assert (err.code, err.message) == (code, message)


def test_rest_queries_may_read_base64_and_status_objects(catalog) -> None:
    compiled = compile_soql("SELECT Id, Body FROM Attachment", catalog, bulk=False)
    assert compiled.columns == ["Id", "Body"]
    assert compiled.field_types == ["id", "base64"]
    assert compile_soql("SELECT Id FROM CaseStatus", catalog, bulk=False).object == "CaseStatus"


@pytest.mark.parametrize(
    ("soql", "pos_of", "code", "message"),
    [
        ("SELECT Id FROM Account WHERE CreatedDate > 2020-01-01", "2020",
         "INVALID_FIELD", "value of filter criterion for field 'CreatedDate' must be of type "
         "dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Opportunity WHERE CloseDate < 2020-01-01T00:00:00Z", "2020",
         "INVALID_FIELD", "value of filter criterion for field 'CloseDate' must be of type date "
         "and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE CreatedDate > '2020-01-01T00:00:00Z'", "'2020",
         "INVALID_FIELD", "value of filter criterion for field 'CreatedDate' must be of type "
         "dateTime and should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE Name = 5", "5", "INVALID_FIELD",
         "value of filter criterion for field 'Name' must be of type string and should be "
         "enclosed in quotes"),
        ("SELECT Id FROM Account WHERE NumberOfEmployees = '5'", "'5'", "INVALID_FIELD",
         "value of filter criterion for field 'NumberOfEmployees' must be of type integer and "
         "should not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE AnnualRevenue > true", "true", "INVALID_FIELD",
         "value of filter criterion for field 'AnnualRevenue' must be of type double and should "
         "not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE IsDeleted = 'false'", "'false'", "INVALID_FIELD",
         "value of filter criterion for field 'IsDeleted' must be of type boolean and should "
         "not be enclosed in quotes"),
        ("SELECT Id FROM Account WHERE Name = TODAY", "TODAY", "INVALID_FIELD",
         "value of filter criterion for field 'Name' must be of type string and should be "
         "enclosed in quotes"),
        ("SELECT Id FROM Contact WHERE AccountId = 'nope'", "'nope'",
         "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"),
        ("SELECT Id FROM Account WHERE Name INCLUDES ('a')", "INCLUDES",
         "INVALID_QUERY_FILTER_OPERATOR",
         "includes or excludes operator only valid on multipicklist field"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "Description", "INVALID_FIELD",
         "field 'Description' can not be filtered in query call"),
        ("SELECT Id FROM Account ORDER BY Description", "Description", "INVALID_FIELD",
         "field 'Description' can not be sorted in a query call"),
        ("SELECT Id FROM Account WHERE Owner.Nickname__c = 'x'", "Owner", "INVALID_FIELD",
         f"No such column 'Nickname__c' on entity 'User'. {HINT_FIELD}"),
        ("SELECT Id, Who.Bogus FROM Task", "Who", "INVALID_FIELD",
         f"No such column 'Bogus' on entity 'Name'. {HINT_FIELD}"),
        ("SELECT Id, Parent.Parent.Parent.Parent.Parent.Parent.Name FROM Account", "Parent",
         "INVALID_FIELD", "A driving SObject type can only be followed by up to 5 levels of "
         "parent relationships"),
    ],
)  # fmt: skip
def test_filter_and_field_errors_are_located(catalog, soql, pos_of, code, message) -> None:
    err = _error(soql, catalog)
    assert err.code == code
    column = soql.index(pos_of) + 1
    assert f"\nERROR at Row:1:Column:{column}\n{message}" in err.message
    assert err.message.endswith(message)


# ---------------------------------------------------------------------------------- compiling


def test_columns_use_api_name_spelling_and_types(catalog) -> None:
    compiled = compile_soql(
        "select id, NAME, account.name, ACCOUNT.owner.USERNAME, account.CreatedDate from contact",
        catalog,
    )
    sql, params, columns, types = compiled
    assert columns == [
        "Id",
        "Name",
        "Account.Name",
        "Account.Owner.Username",
        "Account.CreatedDate",
    ]
    assert types == ["id", "string", "string", "string", "datetime"]
    assert compiled.object == "Contact"
    assert params == []
    assert sql == (
        'SELECT t0."Id", t0."Name", t1."Name", t2."Username", t1."CreatedDate" '
        'FROM "Contact" AS t0 LEFT JOIN "Account" AS t1 ON t1."Id" = t0."AccountId" '
        'LEFT JOIN "User" AS t2 ON t2."Id" = t1."OwnerId" '
        'WHERE t0."IsDeleted" = 0 ORDER BY t0."Id"'
    )


def test_literals_are_parameters_never_sql_text(catalog) -> None:
    sql, params, _, _ = compile_soql(
        r"SELECT Id FROM Account WHERE Name = 'x\' OR Name != \'' AND Type IN ('a', 'b')",
        catalog,
    )
    assert params == ["x' OR Name != '", "a", "b"]
    assert "OR Name" not in sql and "'a'" not in sql


def test_pk_chunkability(catalog) -> None:
    assert is_pk_chunkable(parse("SELECT Id, Name FROM Account"), catalog)
    assert is_pk_chunkable(
        parse("SELECT Id FROM Account WHERE SystemModstamp >= 2021-01-01T00:00:00Z"), catalog
    )
    assert not is_pk_chunkable(parse("SELECT Id FROM Account ORDER BY Name"), catalog)
    assert not is_pk_chunkable(parse("SELECT Id FROM Account LIMIT 10"), catalog)
    assert not is_pk_chunkable(parse("SELECT Id FROM Contact WHERE AccountId != null"), catalog)
    assert not is_pk_chunkable(parse("SELECT Id FROM Organization"), catalog)
    assert not is_pk_chunkable(parse("SELECT Id FROM Nope"), catalog)


def test_id_range_bounds_the_scan(catalog) -> None:
    q = parse("SELECT Id FROM Account WHERE Name != null")
    sql, params, _, _ = compile_select(q, catalog, id_range=("001000000000001AAA", None))
    assert sql.endswith('AND t0."Id" >= ? ORDER BY t0."Id"')
    assert params == ["001000000000001AAA"]
    sql, params, _, _ = compile_select(q, catalog, True, id_range=("0015g", "0015h"))
    assert "IsDeleted" not in sql
    assert sql.endswith(
        'WHERE t0."Name" IS NOT NULL AND t0."Id" >= ? AND t0."Id" < ? ORDER BY t0."Id"'
    )
    assert params == ["0015g", "0015h"]


# ------------------------------------------------------------------------- results on real rows

NOW = dt.datetime(2024, 3, 13, 15, 30, tzinfo=dt.timezone.utc)  # a Wednesday


@pytest.fixture(scope="module")
def org():
    """A store holding a small, fixed data set; tests only read it."""
    from sfbulk.emulator.store import Org

    org = Org(clock=lambda: NOW)
    ids: dict[str, str] = {}

    def insert(obj: str, rows: list[dict]) -> list[str]:
        results = org.write(obj, "insert", rows)
        assert all(r.success for r in results), results
        return [r.id for r in results]

    accounts = insert(
        "Account",
        [
            {"Name": "Acme", "Type": "Prospect", "NumberOfEmployees": 10, "AnnualRevenue": 1000.5},
            {"Name": "acme labs", "NumberOfEmployees": 250, "Rating": "Hot"},
            {"Name": "50% off_sale", "Type": "Other", "NumberOfEmployees": 9},
            {"Name": "O'Brien \\ Sons", "Type": "Prospect", "AnnualRevenue": -3},
            {"Name": "x' OR Name != '", "Type": "Other"},
            {"Name": "Gone Ltd", "Type": "Prospect"},
        ],
    )
    ids.update(zip(["acme", "labs", "sale", "obrien", "inject", "gone"], accounts, strict=True))
    insert("Account", [{"Name": "Acme Child", "ParentId": ids["acme"]}])
    ids["child"] = org.execute_sql('SELECT "Id" FROM "Account" WHERE "Name" = ?', ["Acme Child"])[
        0
    ][0]
    assert org.write("Account", "delete", [{"Id": ids["gone"]}])[0].success
    contacts = insert(
        "Contact",
        [
            {"LastName": "Smith", "FirstName": "Ann", "AccountId": ids["acme"]},
            {"LastName": "Jones", "AccountId": ids["child"]},
            {"LastName": "Orphan"},
        ],
    )
    ids.update(zip(["smith", "jones", "orphan"], contacts, strict=True))
    (ids["lead"],) = insert("Lead", [{"LastName": "Lee", "Company": "Leeco"}])
    tasks = insert(
        "Task",
        [
            {"Subject": "call", "WhoId": ids["smith"], "WhatId": ids["acme"],
             "ActivityDate": "2024-03-13"},
            {"Subject": "mail", "WhoId": ids["lead"], "ActivityDate": "2024-03-06"},
            {"Subject": "none", "ActivityDate": "2024-02-29"},
        ],
    )  # fmt: skip
    ids.update(zip(["call", "mail", "none"], tasks, strict=True))
    samples = insert(
        "Type_Sample__c",
        [
            {"Name": "s0", "Multi_Picklist__c": "Red;Green", "Checkbox__c": True,
             "DateTime__c": "2021-01-01T00:00:00Z", "Date__c": "2021-01-01",
             "Account__c": ids["acme"], "Double__c": 1.5},
            {"Name": "s1", "Multi_Picklist__c": "Blue", "Checkbox__c": False,
             "DateTime__c": "2021-01-01T00:00:00.123Z", "Date__c": "2021-01-02", "Double__c": 10},
            {"Name": "s2", "DateTime__c": "2021-01-01T00:00:00.124Z", "Date__c": "2024-03-12"},
            {"Name": "s3", "Multi_Picklist__c": "Green;Blue;Red",
             "DateTime__c": "2024-03-12T23:59:59.999Z", "Date__c": "2024-03-13"},
        ],
    )  # fmt: skip
    ids.update(zip(["s0", "s1", "s2", "s3"], samples, strict=True))
    org.ids = ids
    return org


def run(org, soql: str, **kwargs) -> list[tuple]:
    """Compile against the org's catalog and run the SQL in the org's database."""
    sql, params, _columns, _types = compile_soql(soql, org.catalog, now=NOW, **kwargs)
    return org.execute_sql(sql, params)


def names(org, soql: str, **kwargs) -> list[str]:
    return [row[0] for row in run(org, soql, **kwargs)]


def test_unsorted_results_come_in_creation_order_without_deleted_rows(org) -> None:
    assert names(org, "SELECT Name FROM Account") == [
        "Acme", "acme labs", "50% off_sale", "O'Brien \\ Sons", "x' OR Name != '", "Acme Child",
    ]  # fmt: skip


def test_query_all_sees_soft_deleted_rows(org) -> None:
    rows = run(
        org, "SELECT Name, IsDeleted FROM Account WHERE Type = 'Prospect'", include_deleted=True
    )
    assert rows == [("Acme", 0), ("O'Brien \\ Sons", 0), ("Gone Ltd", 1)]
    assert run(org, "SELECT Name FROM Account WHERE IsDeleted = true", include_deleted=True) == [
        ("Gone Ltd",)
    ]
    assert run(org, "SELECT Name FROM Account WHERE IsDeleted = true") == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Name = 'ACME'", ["Acme"]),
        ("Name != 'acme'", ["acme labs", "50% off_sale", "O'Brien \\ Sons", "x' OR Name != '",
                            "Acme Child"]),
        ("Name <> 'acme'", ["acme labs", "50% off_sale", "O'Brien \\ Sons", "x' OR Name != '",
                            "Acme Child"]),
        ("Type = null", ["acme labs", "Acme Child"]),
        ("Type != null", ["Acme", "50% off_sale", "O'Brien \\ Sons", "x' OR Name != '"]),
        # SOQL's != and NOT IN keep rows whose value is null.
        ("Type != 'Prospect'", ["acme labs", "50% off_sale", "x' OR Name != '", "Acme Child"]),
        ("Type NOT IN ('Prospect', 'other')", ["acme labs", "Acme Child"]),
        ("Type IN ('prospect', 'OTHER')", ["Acme", "50% off_sale", "O'Brien \\ Sons",
                                            "x' OR Name != '"]),
        ("Type IN ('Other', null)", ["acme labs", "50% off_sale", "x' OR Name != '", "Acme Child"]),
        ("Type NOT IN ('Other', null)", ["Acme", "O'Brien \\ Sons"]),
        ("NumberOfEmployees > 9", ["Acme", "acme labs"]),
        ("NumberOfEmployees <= 10", ["Acme", "50% off_sale"]),
        ("AnnualRevenue < 0", ["O'Brien \\ Sons"]),
        ("AnnualRevenue >= 1000.5", ["Acme"]),
        ("AnnualRevenue > -3.5 AND AnnualRevenue < 1000", ["O'Brien \\ Sons"]),
        ("Name LIKE 'acme%'", ["Acme", "acme labs", "Acme Child"]),
        ("Name LIKE '%LAB_'", ["acme labs"]),
        ("Name LIKE '50\\% off\\_sale'", ["50% off_sale"]),
        ("Name LIKE '50\\%%'", ["50% off_sale"]),
        ("Name LIKE '_0\\_%'", []),
        ("Name LIKE '%\\\\%'", ["O'Brien \\ Sons"]),
        ("Name = 'O\\'Brien \\\\ Sons'", ["O'Brien \\ Sons"]),
        ("Name = 'x\\' OR Name != \\''", ["x' OR Name != '"]),
        ("Name = 'x\\' OR Name != \\'\\''", []),
        ("NOT Name LIKE 'acme%'", ["50% off_sale", "O'Brien \\ Sons", "x' OR Name != '"]),
        ("NOT Type = 'Prospect'", ["acme labs", "50% off_sale", "x' OR Name != '", "Acme Child"]),
        ("(Type = 'Other' OR Rating = 'Hot') AND NumberOfEmployees > 0", ["acme labs",
                                                                         "50% off_sale"]),
        ("Type = 'Other' OR (Rating = 'Hot' AND NumberOfEmployees > 0)", ["acme labs",
                                                                          "50% off_sale",
                                                                          "x' OR Name != '"]),
        ("NOT (Type = 'Other' OR Type = null)", ["Acme", "O'Brien \\ Sons"]),
        ("Parent.Name = 'acme'", ["Acme Child"]),
        ("Parent.Name != 'Acme'", ["Acme", "acme labs", "50% off_sale", "O'Brien \\ Sons",
                                   "x' OR Name != '"]),
        ("Owner.Username LIKE 'admin@%'", ["Acme", "acme labs", "50% off_sale", "O'Brien \\ Sons",
                                           "x' OR Name != '", "Acme Child"]),
        ("CreatedDate = TODAY", ["Acme", "acme labs", "50% off_sale", "O'Brien \\ Sons",
                                 "x' OR Name != '", "Acme Child"]),
        ("CreatedDate < YESTERDAY", []),
        ("CreatedDate >= 2024-03-13T15:30:00Z AND CreatedDate <= 2024-03-13T15:30:00.000000Z",
         ["Acme", "acme labs", "50% off_sale", "O'Brien \\ Sons", "x' OR Name != '",
          "Acme Child"]),
        ("CreatedDate > 2024-03-13T17:30:00+02:00", []),
        ("CreatedDate >= 2024-03-13T10:30:00-05:00", ["Acme", "acme labs", "50% off_sale",
                                                      "O'Brien \\ Sons", "x' OR Name != '",
                                                      "Acme Child"]),
    ],
)  # fmt: skip
def test_account_filters(org, where, expected) -> None:
    assert names(org, f"SELECT Name FROM Account WHERE {where}") == expected


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # Stored values carry milliseconds; literals with 0, 3 and 6 fraction digits compare
        # exactly, and digits below a millisecond are dropped as Salesforce keeps none.
        ("DateTime__c = 2021-01-01T00:00:00Z", ["s0"]),
        ("DateTime__c = 2021-01-01T00:00:00.123Z", ["s1"]),
        ("DateTime__c = 2021-01-01T00:00:00.123000Z", ["s1"]),
        ("DateTime__c > 2021-01-01T00:00:00.123Z", ["s2", "s3"]),
        ("DateTime__c >= 2021-01-01T00:00:00.000999Z", ["s0", "s1", "s2", "s3"]),
        ("DateTime__c > 2021-01-01T00:00:00.123999Z", ["s2", "s3"]),
        ("DateTime__c < 2021-01-01T01:00:00.124+01:00", ["s0", "s1"]),
        ("DateTime__c <= 2020-12-31T19:00:00.124-05:00", ["s0", "s1", "s2"]),
        ("DateTime__c = YESTERDAY", ["s3"]),
        ("DateTime__c = LAST_N_DAYS:1", ["s3"]),
        ("DateTime__c < THIS_YEAR", ["s0", "s1", "s2"]),
        ("DateTime__c != LAST_MONTH", ["s0", "s1", "s2", "s3"]),
        ("Date__c = 2021-01-02", ["s1"]),
        ("Date__c > 2021-01-01 AND Date__c < 2024-03-13", ["s1", "s2"]),
        ("Date__c = TODAY", ["s3"]),
        ("Date__c = YESTERDAY", ["s2"]),
        ("Date__c IN (YESTERDAY, 2021-01-01)", ["s0", "s2"]),
        ("Date__c > LAST_N_YEARS:3", ["s2", "s3"]),
        ("Date__c = THIS_WEEK", ["s2", "s3"]),
        ("Checkbox__c = true", ["s0"]),
        ("Checkbox__c = false", ["s1", "s2", "s3"]),
        ("Checkbox__c != TRUE", ["s1", "s2", "s3"]),
        ("Double__c > 1.5", ["s1"]),
        ("Double__c = null", ["s2", "s3"]),
        ("Multi_Picklist__c INCLUDES ('red')", ["s0", "s3"]),
        ("Multi_Picklist__c INCLUDES ('Red;Blue')", ["s3"]),
        ("Multi_Picklist__c INCLUDES ('Blue ; Red', 'Green')", ["s0", "s3"]),
        ("Multi_Picklist__c INCLUDES ('Blue', 'Red;Green')", ["s0", "s1", "s3"]),
        ("Multi_Picklist__c EXCLUDES ('Red')", ["s1", "s2"]),
        ("Multi_Picklist__c EXCLUDES ('Red;Blue')", ["s0", "s1", "s2"]),
        ("Multi_Picklist__c = 'blue'", ["s1"]),
        ("Account__r.Name = 'Acme'", ["s0"]),
        ("Account__c = null", ["s1", "s2", "s3"]),
    ],
)  # fmt: skip
def test_typed_filters(org, where, expected) -> None:
    assert names(org, f"SELECT Name FROM Type_Sample__c WHERE {where}") == expected


def test_id_filters_accept_15_character_ids(org) -> None:
    acme = org.ids["acme"]
    assert names(org, f"SELECT LastName FROM Contact WHERE AccountId = '{acme[:15]}'") == ["Smith"]
    assert names(org, f"SELECT Name FROM Account WHERE Id IN ('{acme}', '{org.ids['labs']}')") == [
        "Acme",
        "acme labs",
    ]


def test_relationship_paths_two_levels_deep(org) -> None:
    sql, params, columns, types = compile_soql(
        "SELECT LastName, account.name, Account.Parent.Name, Account.Owner.Username "
        "FROM Contact ORDER BY LastName",
        org.catalog,
    )
    assert columns == ["LastName", "Account.Name", "Account.Parent.Name", "Account.Owner.Username"]
    assert types == ["string", "string", "string", "string"]
    assert org.execute_sql(sql, params) == [
        ("Jones", "Acme Child", "Acme", "admin@emulator.example.com"),
        ("Orphan", None, None, None),
        ("Smith", "Acme", None, "admin@emulator.example.com"),
    ]


def test_custom_relationship_path(org) -> None:
    sql, params, columns, _ = compile_soql(
        "SELECT Name, Account__r.Name, Account__r.Owner.Username FROM Type_Sample__c "
        "WHERE Account__r.NumberOfEmployees > 0",
        org.catalog,
    )
    assert columns == ["Name", "Account__r.Name", "Account__r.Owner.Username"]
    assert org.execute_sql(sql, params) == [("s0", "Acme", "admin@emulator.example.com")]


def test_polymorphic_paths_follow_the_type_each_row_points_at(org) -> None:
    sql, params, columns, _ = compile_soql(
        "SELECT Subject, Who.LastName, What.Name FROM Task WHERE Who.LastName != null",
        org.catalog,
    )
    assert columns == ["Subject", "Who.LastName", "What.Name"]
    assert org.execute_sql(sql, params) == [("call", "Smith", "Acme"), ("mail", "Lee", None)]
    assert names(org, "SELECT Subject FROM Task WHERE ActivityDate = LAST_N_DAYS:7") == [
        "call",
        "mail",
    ]
    assert names(org, "SELECT Subject FROM Task WHERE ActivityDate < LAST_WEEK") == ["none"]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("Name", ["50% off_sale", "Acme", "Acme Child", "acme labs", "O'Brien \\ Sons",
                  "x' OR Name != '"]),
        ("Name DESC", ["x' OR Name != '", "O'Brien \\ Sons", "acme labs", "Acme Child", "Acme",
                       "50% off_sale"]),
        # Nulls come first by default, whatever the direction.
        ("Type, Name", ["Acme Child", "acme labs", "50% off_sale", "x' OR Name != '", "Acme",
                        "O'Brien \\ Sons"]),
        ("Type DESC, Name DESC", ["acme labs", "Acme Child", "O'Brien \\ Sons", "Acme",
                                  "x' OR Name != '", "50% off_sale"]),
        ("Type ASC NULLS LAST, NumberOfEmployees DESC NULLS LAST", [
            "50% off_sale", "x' OR Name != '", "Acme", "O'Brien \\ Sons", "acme labs",
            "Acme Child"]),
        ("Parent.Name NULLS LAST, Name", ["Acme Child", "50% off_sale", "Acme", "acme labs",
                                          "O'Brien \\ Sons", "x' OR Name != '"]),
    ],
)  # fmt: skip
def test_order_by(org, order, expected) -> None:
    assert names(org, f"SELECT Name FROM Account ORDER BY {order}") == expected


def test_limit_applies_after_sorting(org) -> None:
    assert names(org, "SELECT Name FROM Account ORDER BY Name DESC LIMIT 2") == [
        "x' OR Name != '",
        "O'Brien \\ Sons",
    ]
    assert names(org, "SELECT Name FROM Account LIMIT 1") == ["Acme"]
    assert names(org, "SELECT Name FROM Account LIMIT 0") == []


def test_pk_chunk_ranges_partition_the_rows(org) -> None:
    chunks = org.id_chunks("Account", 2)
    seen: list[str] = []
    for lo, hi in chunks:
        seen += names(org, "SELECT Name FROM Account", id_range=(lo, hi))
    assert seen == names(org, "SELECT Name FROM Account")
    lo, hi = chunks[0]
    assert names(org, "SELECT Name FROM Account", id_range=(lo, hi)) == ["Acme", "acme labs"]


def test_rest_mode_reads_base64(org) -> None:
    assert run(org, "SELECT Name, Blob__c FROM Type_Sample__c WHERE Name = 's0'", bulk=False) == [
        ("s0", None)
    ]


def test_polymorphic_type_names_the_object_each_row_points_at(org) -> None:
    sql, params, columns, types = compile_soql(
        "SELECT Subject, Who.Type, What.Type FROM Task WHERE Who.Type != 'contact' "
        "ORDER BY Who.Type DESC, Subject",
        org.catalog,
    )
    assert columns == ["Subject", "Who.Type", "What.Type"]
    assert types == ["combobox", "picklist", "picklist"]
    assert org.execute_sql(sql, params) == [("none", None, None), ("mail", "Lead", None)]
    assert names(org, "SELECT Subject FROM Task WHERE What.Type = 'Account'") == ["call"]


def test_store_query_runs_the_engine(org) -> None:
    cursor = org.query(
        "select name, account.NAME from contact where Account.Name like 'acme%' order by name",
        expected_object="Contact",
    )
    assert cursor.columns == ["Name", "Account.Name"]
    assert cursor.field_types == ["string", "string"]
    assert list(cursor) == [("Ann Smith", "Acme"), ("Jones", "Acme Child")]
    # Relative literals follow the org's clock (fixed at NOW here).
    assert list(org.query("SELECT Name FROM Type_Sample__c WHERE Date__c = TODAY")) == [("s3",)]
    with pytest.raises(SoqlError) as info:
        org.query("SELECT Id FROM Contact", expected_object="Account")
    assert info.value.code == "INVALID_TYPE_FOR_OPERATION"
    assert list(
        org.query("SELECT Name FROM Account WHERE Type = 'Prospect'", include_deleted=True)
    ) == [
        ("Acme",),
        ("O'Brien \\ Sons",),
        ("Gone Ltd",),
    ]
