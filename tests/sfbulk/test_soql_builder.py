"""Building SOQL: literal quoting, datetime literals, identifiers and injection attempts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sfbulk.soql import (
    Condition,
    build_select,
    check_identifier,
    format_date,
    format_datetime,
    format_value,
    quote_like,
    quote_literal,
)

UTC = dt.timezone.utc


@pytest.mark.parametrize(("value", "literal"), [
    ("plain", "'plain'"),
    ("O'Brien", r"'O\'Brien'"),
    ('say "hi"', r"""'say \"hi\"'"""),
    ("back\\slash", r"'back\\slash'"),
    ("two\nlines\r\ttab", r"'two\nlines\r\ttab'"),
    ("bell\bform\f", r"'bell\bform\f'"),
    ("50%_off", "'50%_off'"),
    ("", "''"),
    ("😀 Zoë", "'😀 Zoë'"),
])
def test_quote_literal(value: str, literal: str) -> None:
    assert quote_literal(value) == literal


def test_quote_like_escapes_wildcards_only_in_like() -> None:
    assert quote_like("50%_off") == r"'50\%\_off'"
    assert quote_like("Acme's", prefix=True) == r"'Acme\'s%'"
    assert quote_like("Inc", suffix=True) == "'%Inc'"
    assert quote_like("a\\b") == r"'a\\b'"


def test_nul_cannot_be_quoted() -> None:
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\0b")
    with pytest.raises(ValueError, match="NUL"):
        quote_like("a\0b")


@pytest.mark.parametrize("attack", [
    "x' OR Name != '",
    "x\\' OR Name != \\'",
    "x\\",
    "'; DELETE FROM Account",
    "x' OR Id LIKE '%",
])
def test_injection_attempts_stay_inside_one_literal(attack: str) -> None:
    soql = build_select("Account", ["Id"], [("Name", "=", attack)])
    literal = soql.split("Name = ", 1)[1]
    # Walk the literal the way SOQL does: it must end exactly at the last character.
    assert literal[0] == "'"
    i, decoded = 1, []
    while literal[i] != "'":
        if literal[i] == "\\":
            decoded.append({"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}.get(
                literal[i + 1], literal[i + 1]))
            i += 2
        else:
            decoded.append(literal[i])
            i += 1
    assert i == len(literal) - 1
    assert "".join(decoded) == attack


def test_format_datetime() -> None:
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert format_datetime(aware) == "2024-01-02T03:04:05Z"
    assert format_datetime(aware, millis=True) == "2024-01-02T03:04:05.678Z"
    paris = dt.datetime(2024, 7, 1, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert format_datetime(paris) == "2024-07-01T10:00:00Z"
    offset = dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert format_datetime(offset) == "2023-12-31T20:00:00Z"
    naive = dt.datetime(2024, 7, 1, 12, 0)
    assert format_datetime(naive, ZoneInfo("Europe/Paris")) == "2024-07-01T10:00:00Z"
    with pytest.raises(ValueError, match="naive datetime 2024-07-01T12:00:00 needs a time zone"):
        format_datetime(naive)
    with pytest.raises(TypeError):
        format_datetime(dt.date(2024, 1, 1))  # type: ignore[arg-type]


def test_format_date() -> None:
    assert format_date(dt.date(2024, 2, 29)) == "2024-02-29"
    assert format_date(dt.date(999, 1, 2)) == "0999-01-02"
    with pytest.raises(TypeError):
        format_date(dt.datetime(2024, 1, 1))


@pytest.mark.parametrize(("value", "literal"), [
    (None, "null"),
    (True, "true"),
    (False, "false"),
    (0, "0"),
    (-12, "-12"),
    (Decimal("1E+7"), "10000000"),
    (Decimal("0.10"), "0.10"),
    (0.1, "0.1"),
    ("a'b", r"'a\'b'"),
    (dt.date(2024, 1, 2), "2024-01-02"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC), "2024-01-02T03:04:05.250Z"),
    (["a", "b'c"], r"('a','b\'c')"),
])
def test_format_value(value: object, literal: str) -> None:
    assert format_value(value) == literal


def test_format_value_rejects_what_soql_cannot_say() -> None:
    with pytest.raises(ValueError, match="has no SOQL literal"):
        format_value(float("nan"))
    with pytest.raises(ValueError, match="at least one value"):
        format_value([])
    with pytest.raises(TypeError, match="no SOQL literal for bytes"):
        format_value(b"x")


def test_build_select_incremental_query() -> None:
    start = dt.datetime(2021, 1, 1, tzinfo=UTC)
    end = dt.datetime(2021, 2, 1, tzinfo=UTC)
    assert build_select(
        "Account", ["Id", "Name", "Owner.Name", "SystemModstamp"],
        where=[("SystemModstamp", ">=", start), Condition("SystemModstamp", "<", end)],
        order_by="SystemModstamp", limit=500,
    ) == ("SELECT Id,Name,Owner.Name,SystemModstamp FROM Account WHERE SystemModstamp >= "
          "2021-01-01T00:00:00Z AND SystemModstamp < 2021-02-01T00:00:00Z ORDER BY "
          "SystemModstamp ASC LIMIT 500")
    assert build_select("Custom__c", ["Id"]) == "SELECT Id FROM Custom__c"
    assert build_select("Lead", ["Id"], [("Status", "not  in", ["Open", "Closed"]),
                                         ("Name", "like", "Ac%")]) == (
        "SELECT Id FROM Lead WHERE Status NOT IN ('Open','Closed') AND Name LIKE 'Ac%'")
    assert build_select("Lead", ["Id"], [("Email", "!=", None)]) == (
        "SELECT Id FROM Lead WHERE Email != null")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sobject": "Account WHERE Id != null", "fields": ["Id"]}, "is not a Salesforce API name"),
    ({"sobject": "Account", "fields": ["Id, (SELECT Id FROM Contacts)"]}, "not a Salesforce API"),
    ({"sobject": "Account", "fields": ["Id", "Name FROM User --"]}, "not a Salesforce API name"),
    ({"sobject": "Account.Owner", "fields": ["Id"]}, "is not an object name"),
    ({"sobject": "Account", "fields": []}, "at least one field"),
    ({"sobject": "Account", "fields": ["Id", "id"]}, "field id is selected twice"),
    ({"sobject": "Account", "fields": ["Id"], "where": [("Name", "= 'x' OR Name", "y")]},
     "unsupported SOQL operator"),
    ({"sobject": "Account", "fields": ["Id"], "where": [("Name) OR (Id", "=", "y")]},
     "not a Salesforce API name"),
    ({"sobject": "Account", "fields": ["Id"], "where": [("Name", "IN", "x")]}, "needs a list"),
    ({"sobject": "Account", "fields": ["Id"], "where": [("Name", "<", None)]}, "null can only"),
    ({"sobject": "Account", "fields": ["Id"], "where": [("Name", "LIKE", 3)]}, "string pattern"),
    ({"sobject": "Account", "fields": ["Id"], "order_by": "Name DESC"}, "not a Salesforce API"),
    ({"sobject": "Account", "fields": ["Id"], "limit": 0}, "LIMIT must be a positive integer"),
    ({"sobject": "Account", "fields": ["Id"], "limit": "10; x"}, "LIMIT must be a positive"),
])
def test_build_select_refuses_anything_but_names_and_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_select(**kwargs)


def test_check_identifier() -> None:
    assert check_identifier("ns__Field__c") == "ns__Field__c"
    assert check_identifier("Parent__r.Ext__c") == "Parent__r.Ext__c"
    for bad in ("", "1Field", "Field ", "a..b", "Name'", "Zoë"):
        with pytest.raises(ValueError):
            check_identifier(bad)
