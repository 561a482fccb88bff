"""Building SOQL for Bulk queries, with literals that cannot break out of their quotes.

Only what the tap needs: ``SELECT f1,f2 FROM Obj [WHERE c1 AND c2…] [ORDER BY f ASC] [LIMIT n]``.
Identifiers are checked against the API-name shape (letters, digits, underscores, dotted for
relationship paths), so a field or object name can never smuggle SOQL in; values go through
:func:`quote_literal`, :func:`format_datetime` or :func:`format_date`, or are given as
:class:`Condition` objects that format them by type.

SOQL string escapes (SOQL and SOSL reference, "Quoted String Escape Sequences"): ``\\n``,
``\\r``, ``\\t``, ``\\b``, ``\\f``, ``\\"``, ``\\'`` and ``\\\\``; in a ``LIKE`` pattern ``\\%`` and
``\\_`` stand for a literal percent sign and underscore.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "Condition",
    "build_select",
    "check_identifier",
    "format_date",
    "format_datetime",
    "format_value",
    "quote_like",
    "quote_literal",
]

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_LIKE_TABLE = str.maketrans({**_ESCAPES, "%": "\\%", "_": "\\_"})
_IDENTIFIER_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*", re.ASCII)
_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">=", "LIKE", "IN", "NOT IN", "INCLUDES",
                        "EXCLUDES"})
UTC = dt.timezone.utc


def quote_literal(value: str) -> str:
    """A SOQL string literal: single-quoted, with backslash escapes for every special character.

    ``%`` and ``_`` are left alone: they are only special inside ``LIKE`` (see :func:`quote_like`).
    NUL cannot be written in SOQL at all and raises :class:`ValueError`.
    """
    if "\0" in value:
        raise ValueError("a SOQL string literal cannot contain a NUL character")
    return "'" + value.translate(_ESCAPE_TABLE) + "'"


def quote_like(value: str, *, prefix: bool = False, suffix: bool = False) -> str:
    """A ``LIKE`` pattern matching ``value`` literally, optionally as a prefix/suffix match.

    Args:
        value: The text to match; its ``%`` and ``_`` are escaped.
        prefix: Match values that start with ``value`` (appends an unescaped ``%``).
        suffix: Match values that end with ``value`` (prepends an unescaped ``%``).
    """
    if "\0" in value:
        raise ValueError("a SOQL string literal cannot contain a NUL character")
    body = value.translate(_LIKE_TABLE)
    return "'" + ("%" if suffix else "") + body + ("%" if prefix else "") + "'"


def format_datetime(value: dt.datetime, tz: dt.tzinfo | None = None, *,
                    millis: bool = False) -> str:
    """A SOQL dateTime literal in UTC: ``2024-01-02T03:04:05Z`` (or ``…05.678Z`` with ``millis``).

    Args:
        value: An aware datetime; a naive one only together with ``tz``, its zone.
        tz: The zone of a naive ``value``.
        millis: Keep milliseconds (the rest of the fraction is cut off, never rounded up, so a
            ``>=`` bound never skips a row).

    Raises:
        ValueError: ``value`` is naive and no ``tz`` was given.
    """
    if not isinstance(value, dt.datetime):
        raise TypeError(f"format_datetime needs a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        if tz is None:
            raise ValueError(f"naive datetime {value.isoformat()} needs a time zone")
        value = value.replace(tzinfo=tz)
    value = value.astimezone(UTC)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}")
    if millis:
        text += f".{value.microsecond // 1000:03d}"
    return text + "Z"


def format_date(value: dt.date) -> str:
    """A SOQL date literal ``YYYY-MM-DD`` (a datetime is refused: say which day you mean)."""
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError(f"format_date needs a date, not {type(value).__name__}")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def format_value(value: Any) -> str:
    """The SOQL literal for a Python value: string, bool, int, Decimal, float, date, datetime,
    ``None`` (``null``) or a sequence of these (for ``IN``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote_literal(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (Decimal, float)):
        number = Decimal(repr(value)) if isinstance(value, float) else value
        if not number.is_finite():
            raise ValueError(f"{value!r} has no SOQL literal")
        return format(number, "f")
    if isinstance(value, dt.datetime):
        return format_datetime(value, millis=value.microsecond != 0)
    if isinstance(value, dt.date):
        return format_date(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        if not items:
            raise ValueError("an IN list needs at least one value")
        return "(" + ",".join(format_value(item) for item in items) + ")"
    raise TypeError(f"no SOQL literal for {type(value).__name__}")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is an API name or a dotted relationship path, else raise ValueError."""
    if not isinstance(name, str) or _IDENTIFIER_RE.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a Salesforce API name")
    return name


@dataclass(frozen=True)
class Condition:
    """One ``field operator value`` comparison, with the value formatted by its Python type."""

    field: str
    operator: str
    value: Any

    def to_soql(self) -> str:
        operator = " ".join(self.operator.upper().split())
        if operator not in _OPERATORS:
            raise ValueError(f"unsupported SOQL operator {self.operator!r}")
        if operator in ("IN", "NOT IN", "INCLUDES", "EXCLUDES") and not isinstance(
                self.value, (list, tuple, set, frozenset)):
            raise ValueError(f"{operator} needs a list of values")
        if self.value is None and operator not in ("=", "!="):
            raise ValueError("null can only be compared with = or !=")
        if operator == "LIKE" and not isinstance(self.value, str):
            raise ValueError("LIKE needs a string pattern")
        value = format_value(self.value) if operator != "LIKE" else _like_literal(self.value)
        return f"{check_identifier(self.field)} {operator} {value}"


def _like_literal(pattern: str) -> str:
    """A LIKE pattern given by the caller (``%`` and ``_`` are wildcards); quotes escaped."""
    if "\0" in pattern:
        raise ValueError("a SOQL string literal cannot contain a NUL character")
    return "'" + pattern.translate(_ESCAPE_TABLE) + "'"


def build_select(
    sobject: str,
    fields: Sequence[str],
    where: Iterable[Condition | tuple[str, str, Any]] = (),
    order_by: str | Sequence[str] | None = None,
    limit: int | None = None,
) -> str:
    """``SELECT f1,f2 FROM Obj WHERE c1 AND c2 ORDER BY f ASC LIMIT n``.

    Args:
        sobject: The object API name.
        fields: Field names or relationship paths (``Account.Name``), in result-column order.
        where: Conditions joined with ``AND``: :class:`Condition` objects or
            ``(field, operator, value)`` tuples. Values are formatted by type, so a ``str`` is
            always a quoted literal and a ``datetime`` an unquoted dateTime literal.
        order_by: A field or fields to sort ascending (sorting defeats PK chunking).
        limit: A positive row limit.

    Raises:
        ValueError: A name is not an API name, a field repeats, an operator or value is invalid.
    """
    if not fields:
        raise ValueError("a SELECT needs at least one field")
    seen: set[str] = set()
    for name in fields:
        check_identifier(name)
        if name.lower() in seen:
            raise ValueError(f"field {name} is selected twice")
        seen.add(name.lower())
    parts = [f"SELECT {','.join(fields)} FROM {check_identifier(sobject)}"]
    if "." in sobject:
        raise ValueError(f"{sobject!r} is not an object name")
    conditions = [c if isinstance(c, Condition) else Condition(*c) for c in where]
    if conditions:
        parts.append("WHERE " + " AND ".join(c.to_soql() for c in conditions))
    if order_by:
        keys = [order_by] if isinstance(order_by, str) else list(order_by)
        parts.append("ORDER BY " + ",".join(f"{check_identifier(k)} ASC" for k in keys))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"LIMIT must be a positive integer, not {limit!r}")
        parts.append(f"LIMIT {limit}")
    return " ".join(parts)
