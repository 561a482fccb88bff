"""The Salesforce Bulk CSV dialect, both ways: result pages to typed values, records to batches.

Reading (the tap's hot path):

- :func:`iter_csv_rows` turns one result page, given as an iterable of byte chunks straight off
  an HTTP stream, into rows of strings. RFC 4180: quoted cells may hold commas, doubled quotes and
  line breaks (LF, CRLF or a lone CR); a UTF-8 character split across two chunks is reassembled;
  fields of any size are accepted; NUL bytes are dropped, as tap-salesforce and salesforce-bulk
  do, because a Salesforce text value cannot hold one; the Bulk 1.0 body ``Records not found for
  this query`` is an empty result. Nothing but the current line is held in memory.
- :class:`RecordTyper` turns cells into JSON-ready values by the stream's JSON schema (or
  describe types): only an empty cell is null; ``true``/``false`` are booleans; integers are
  ``int`` (also when sent as ``47.0`` or ``9.0E7``); double, currency and percent become exact
  :class:`~decimal.Decimal` values, never floats, which the Singer SDK writes digit for digit
  (simplejson ``use_decimal``); a ``NaN``/``Infinity`` cell cannot be written as JSON, so it
  becomes null with a warning; datetimes become the SDK's own RFC 3339 form
  ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (UTC, fixed width, so bookmarks compare correctly as
  strings and the milliseconds survive); dates stay ``YYYY-MM-DD``; times become
  ``HH:MM:SS.sssZ``; the strings ``NA``, ``N/A``, ``None`` and ``null`` stay strings.

Writing (the target's hot path):

- :func:`encode_value` / :func:`make_encoder` turn one Python value into the cell text Salesforce
  expects for a field type: ``None`` becomes ``#N/A`` (set to null), booleans ``true``/``false``,
  numbers in plain notation, datetimes ``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC. Bad values raise
  :class:`ValueError` naming the field and the reason.
- :class:`CsvBatcher` packs records into UTF-8 CSV batches bounded by rows, bytes and characters,
  never splitting a record; the header is the union of the batch's columns; each batch remembers
  the key of every row so per-record results can be joined back; a record that breaks a
  per-record limit or has a bad value comes back alone as a :class:`RejectedRecord`.

Why ``#N/A`` and a literal ``"#N/A"`` cannot both exist: Salesforce decides null-ness on the
cell's value after unquoting, so quoting does not protect a text value equal to ``#N/A``; the
encoder refuses such a value instead of silently nulling the field. An empty string has no CSV
form either (an empty cell means "leave unchanged" and Salesforce stores empty text as null), so
``""`` is sent as ``#N/A``.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from operator import is_, is_not, itemgetter
from typing import Any, Final

from sfbulk.schema import value_kind

__all__ = [
    "NO_RECORDS_BODY",
    "NULL_CELL",
    "Column",
    "CsvBatch",
    "CsvBatcher",
    "RecordTyper",
    "RejectedRecord",
    "encode_value",
    "iter_csv_records",
    "iter_csv_rows",
    "make_encoder",
    "quote_cell",
    "resolve_timezone",
]

logger = logging.getLogger(__name__)

#: The whole body of a Bulk 1.0 CSV query result file that has no rows.
NO_RECORDS_BODY = "Records not found for this query"
#: The cell value that sets a field to null in an ingest batch.
NULL_CELL = "#N/A"

UTC = dt.timezone.utc

# Salesforce's documented limits for one ingest batch (Bulk 1.0) and for every record in 2.0.
MAX_BATCH_ROWS = 10_000
MAX_BATCH_BYTES = 10_000_000
MAX_BATCH_CHARS = 10_000_000
MAX_FIELD_CHARS = 131_072
MAX_RECORD_CHARS = 400_000
MAX_RECORD_FIELDS = 5_000
MAX_HEADER_CHARS = 32_000

# Salesforce's documented dateTime range ("1700-01-01T00:00:00Z GMT to 4000-12-31T00:00:00Z GMT").
MIN_YEAR = 1700
MAX_YEAR = 4000

INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _raise_field_size_limit() -> None:
    """Let the csv module read a field of any size a result page can hold.

    The default limit (131,072 characters) is exactly Salesforce's per-field maximum, so a long text
    area with a few escaped quotes would already trip it. The limit is process-wide and only ever
    raised here; the largest value a C ``long`` holds on every platform is used.
    """
    limit = 2**31 - 1
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


_raise_field_size_limit()


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A raw binary stream over an iterable of byte chunks, dropping NUL bytes on the way."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._view:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if b"\0" in chunk:
                chunk = chunk.replace(b"\0", b"")
            self._view = memoryview(chunk)
        size = min(len(buffer), len(self._view))
        buffer[:size] = self._view[:size]
        self._view = self._view[size:]
        return size


def iter_csv_rows(chunks: Iterable[bytes]) -> Iterator[list[str]]:
    """Yield the rows of one CSV result page, its header row first.

    Args:
        chunks: The page body as byte chunks (for example ``response.iter_content(65536)``); a
            UTF-8 character or a CRLF may be split across chunks. ``str`` chunks are accepted too.

    Yields:
        Each row as a list of cell strings, unquoted. Nothing for an empty body or for the Bulk 1.0
        ``Records not found for this query`` body. Blank lines are skipped.

    Raises:
        UnicodeDecodeError: The body is not UTF-8.
        csv.Error: The body is not well-formed CSV.
    """
    text = io.TextIOWrapper(
        io.BufferedReader(_ChunkReader(chunks), buffer_size=65536),
        encoding="utf-8-sig",
        newline="",
    )
    first = text.readline()
    if not first or first.strip() == NO_RECORDS_BODY:
        return
    # filter() drops the empty lists csv.reader gives for blank lines, at C speed.
    yield from filter(None, csv.reader(itertools.chain((first,), text), strict=True))


def iter_csv_records(chunks: Iterable[bytes]) -> Iterator[dict[str, str]]:
    """Yield one result page's rows as dicts keyed by its header, cells left as strings."""
    rows = iter_csv_rows(chunks)
    header = next(rows, None)
    if header is None:
        return
    width = len(header)
    for number, row in enumerate(rows, start=2):
        if len(row) != width:
            raise ValueError(f"CSV row {number} has {len(row)} cells but the header has {width}")
        yield dict(zip(header, row, strict=True))


_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NON_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity",
                         "-infinity", "snan"})
_DATETIME_FAST_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
    r"(Z|z|[+-]\d\d(?::?\d\d)?)?",
    re.ASCII,
)
_DATE_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)Z?", re.ASCII)
_TIME_RE = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?(Z|z|[+-]\d\d(?::?\d\d)?)?",
                      re.ASCII)
_BOOL_CELLS = {"true": True, "false": False}


class _BadCell(ValueError):
    """A cell that does not hold a value of its column's type."""


def _offset(text: str | None) -> dt.timezone | None:
    if text is None:
        return None
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
    return dt.timezone(sign * dt.timedelta(minutes=minutes))


def _parse_datetime(text: str, default_tz: dt.tzinfo) -> dt.datetime | None:
    """Parse an ISO 8601 date or datetime string; ``None`` when it is not one.

    A value without an offset is taken in ``default_tz``; a date alone means its midnight.
    Fractions past microseconds are cut off (Salesforce keeps milliseconds).
    """
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        value = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                            int(second or 0), micro)
    except ValueError:
        return None
    tz = _offset(offset)
    return value.replace(tzinfo=tz) if tz is not None else value.replace(tzinfo=default_tz)


def _read_int(cell: str) -> int:
    if cell.isascii() and cell.isdigit():
        return int(cell)
    if _NUMBER_RE.fullmatch(cell) is None:
        raise _BadCell("not an integer")
    value = Decimal(cell)
    if value != value.to_integral_value():
        raise _BadCell("not a whole number")
    return int(value)


def _read_number(cell: str) -> Decimal:
    if _NUMBER_RE.fullmatch(cell) is None:
        raise _BadCell("not a number")
    return Decimal(cell)


def _read_bool(cell: str) -> bool:
    value = _BOOL_CELLS.get(cell)
    if value is None:
        value = _BOOL_CELLS.get(cell.lower())
        if value is None:
            raise _BadCell("not true or false")
    return value


def _format_utc(value: dt.datetime) -> str:
    """The SDK's RFC 3339 form of an aware datetime, in UTC with microseconds."""
    return value.astimezone(UTC).isoformat("T", timespec="microseconds")


def _read_datetime(cell: str) -> str:
    if len(cell) == 24 and _DATETIME_FAST_RE.fullmatch(cell):
        return cell[:23] + "000+00:00"
    value = _parse_datetime(cell, UTC)
    if value is None:
        raise _BadCell("not a datetime")
    return _format_utc(value)


def _read_date(cell: str) -> str:
    match = _DATE_RE.fullmatch(cell)
    if match is None:
        raise _BadCell("not a date (YYYY-MM-DD)")
    try:
        dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise _BadCell("not a calendar date") from exc
    return cell[:10]


def _time_text(hour: int, minute: int, second: int, micro: int) -> str:
    if micro % 1000 == 0:
        return f"{hour:02d}:{minute:02d}:{second:02d}.{micro // 1000:03d}Z"
    return f"{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}Z"


def _parse_time(text: str) -> str | None:
    """Normalise a time of day to ``HH:MM:SS.sssZ`` (six fraction digits when needed)."""
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    micro = int((match[4] or "0")[:6].ljust(6, "0"))
    if hour > 23 or minute > 59 or second > 59:
        return None
    tz = _offset(match[5])
    if tz is not None and tz is not UTC:
        shift = tz.utcoffset(None)
        moment = dt.datetime(2000, 1, 1, hour, minute, second, micro) - shift
        hour, minute, second = moment.hour, moment.minute, moment.second
    return _time_text(hour, minute, second, micro)


def _read_time(cell: str) -> str:
    value = _parse_time(cell)
    if value is None:
        raise _BadCell("not a time (HH:MM:SS.sssZ)")
    return value


_READERS: dict[str, Callable[[str], Any]] = {
    "integer": _read_int,
    "number": _read_number,
    "boolean": _read_bool,
    "datetime": _read_datetime,
    "date": _read_date,
    "time": _read_time,
}

_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})


def _kind_of_property(prop: Mapping[str, Any]) -> str:
    """The value kind a JSON-schema property describes (see :func:`sfbulk.schema.value_kind`)."""
    types: set[str] = set()
    formats: set[str] = set()
    for part in [prop, *prop.get("anyOf", ()), *prop.get("oneOf", ())]:
        declared = part.get("type")
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(declared)
        if isinstance(part.get("format"), str):
            formats.add(part["format"])
    if "integer" in types:
        return "integer"
    if "number" in types:
        return "number"
    if "boolean" in types:
        return "boolean"
    if "string" in types:
        for fmt, kind in (("date-time", "datetime"), ("date", "date"), ("time", "time")):
            if fmt in formats:
                return kind
    return "string"


def _kind_of(spec: Any) -> str:
    if isinstance(spec, str):
        return value_kind(spec)
    if isinstance(spec, Mapping):
        declared = spec.get("type")
        if isinstance(declared, str) and declared not in _JSON_TYPES:
            return value_kind(declared)
        return _kind_of_property(spec)
    raise TypeError(f"cannot tell a column type from {spec!r}")


class RecordTyper:
    """Turns Bulk CSV cells into typed, JSON-ready values.

    Build one per stream and reuse it for every page: converters are compiled once per header.

    Args:
        schema_or_field_types: Either a JSON schema with ``properties`` (the stream's schema, as
            :func:`sfbulk.schema.object_json_schema` makes it), or a mapping of column name to a
            describe type (``"datetime"``), a describe field dict or a JSON-schema property.
            Columns it does not name (relationship columns such as ``Account.Name``) stay strings.
        stream: A name for messages (the sObject).

    A cell that cannot be read as its column's type raises :class:`ValueError` naming the stream,
    column, row and value. ``NaN``/``Infinity`` in a number column cannot be written as JSON: it
    becomes ``None`` and is counted in :attr:`non_finite` and logged once per column.
    """

    def __init__(self, schema_or_field_types: Mapping[str, Any], *, stream: str = "") -> None:
        specs = schema_or_field_types
        if isinstance(specs.get("properties"), Mapping):
            specs = specs["properties"]
        self.stream = stream
        self.kinds: dict[str, str] = {name: _kind_of(spec) for name, spec in specs.items()}
        self._folded = {name.lower(): kind for name, kind in self.kinds.items()}
        self._compiled: dict[tuple[str, ...], Callable[[list[str]], dict[str, Any]]] = {}
        self.non_finite: dict[str, int] = {}

    def kind(self, column: str) -> str:
        """The value kind of a column: exact name first, then case-insensitively, else string."""
        kind = self.kinds.get(column)
        if kind is None:
            kind = self._folded.get(column.lower(), "string")
        return kind

    def convert(self, column: str, cell: str) -> Any:
        """Type one cell of ``column``."""
        return self._converter(column, self.kind(column))(cell)

    def _converter(self, column: str, kind: str) -> Callable[[str], Any]:
        if kind == "string":
            return _string_or_none
        read = _READERS[kind]
        stream = self.stream

        def convert(cell: str) -> Any:
            if not cell:
                return None
            try:
                return read(cell)
            except (_BadCell, InvalidOperation) as exc:
                if kind in ("number", "integer") and cell.lower() in _NON_FINITE:
                    return self._non_finite(column, cell)
                shown = cell if len(cell) <= 80 else cell[:77] + "..."
                raise ValueError(
                    f"{stream or 'record'}.{column}: cannot read {shown!r} as {kind}: {exc}"
                ) from None

        return convert

    def _non_finite(self, column: str, cell: str) -> None:
        seen = self.non_finite.get(column, 0)
        self.non_finite[column] = seen + 1
        if not seen:
            logger.warning(
                "%s.%s: %r has no JSON number form; emitting null (further ones counted quietly)",
                self.stream or "record", column, cell)
        return None

    def row_converter(self, header: list[str]) -> Callable[[list[str]], dict[str, Any]]:
        """A function turning a row of cells under ``header`` into a typed record dict."""
        key = tuple(header)
        compiled = self._compiled.get(key)
        if compiled is None:
            names = list(header)
            converters = [self._converter(name, self.kind(name)) for name in names]
            width = len(names)
            stream = self.stream

            def compiled(row: list[str]) -> dict[str, Any]:
                if len(row) != width:
                    raise ValueError(
                        f"{stream or 'record'}: a CSV row has {len(row)} cells but the header has "
                        f"{width}"
                    )
                # Widths were checked above, so zip need not check them again.
                cells = zip(names, converters, row, strict=False)
                return {name: conv(cell) for name, conv, cell in cells}

            self._compiled[key] = compiled
        return compiled

    def type_record(self, record: Mapping[str, str]) -> dict[str, Any]:
        """Type a dict of cells (as :func:`iter_csv_records` yields them)."""
        return {name: self.convert(name, cell) for name, cell in record.items()}

    def iter_records(self, chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
        """Read one result page (its own header first) and yield typed records."""
        rows = iter_csv_rows(chunks)
        header = next(rows, None)
        if header is None:
            return
        convert = self.row_converter(header)
        for row in rows:
            yield convert(row)


def _string_or_none(cell: str) -> str | None:
    return cell or None


# --------------------------------------------------------------------------------------------------
# Writing: values
# --------------------------------------------------------------------------------------------------


def resolve_timezone(name: str | None) -> dt.tzinfo:
    """The ``tzinfo`` for an IANA zone name (``"Europe/Paris"``); UTC for ``None``/``""``/``UTC``.

    Raises:
        ValueError: The name is not a known time zone.
    """
    if not name or name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


_BOOL_INPUTS = {"true": "true", "false": "false", "1": "true", "0": "false", "yes": "true",
                "no": "false"}
_STRING_KINDS_REJECTED = {
    "base64": "base64 fields cannot be loaded through Bulk CSV (they need a ZIP attachment job)",
    "address": "a compound address field cannot be written; write its component fields",
    "location": "a compound location field cannot be written; write its Latitude and Longitude",
}


def _describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain_decimal(value: Decimal) -> str:
    """Plain positional notation, never an exponent: ``Decimal('1E+7')`` -> ``10000000``."""
    return format(value, "f")


def _as_decimal(value: Any) -> Decimal | None:
    """The exact decimal a JSON-ish value stands for, or ``None`` when it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and value not in (float("inf"),
                                                                        float("-inf")) else None
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        return Decimal(value)
    return None


def _check_year(year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year {year} is outside Salesforce's range {MIN_YEAR}-{MAX_YEAR}")


def _enc_bool(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        text = _BOOL_INPUTS.get(value.strip().lower())
        if text is not None:
            return text
        raise ValueError(f"{_describe_value(value)} is not one of true/false/1/0/yes/no")
    number = _as_decimal(value)
    # A signalling NaN cannot even be compared: it is simply not a boolean.
    if number is not None and number.is_finite() and number in (0, 1):
        return "true" if number == 1 else "false"
    raise ValueError(f"{_describe_value(value)} is not a boolean")


def _int_encoder(kind: str) -> Callable[[Any], str]:
    low, high = INT_BOUNDS.get(kind, INT_BOUNDS["long"])

    def encode(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            decimal = _as_decimal(value)
            if decimal is None or not decimal.is_finite():
                raise ValueError(f"{_describe_value(value)} is not an integer")
            if decimal != decimal.to_integral_value():
                raise ValueError(f"{_describe_value(value)} is not a whole number")
            number = int(decimal)
        if not low <= number <= high:
            raise ValueError(f"{number} is outside the {kind} range {low}..{high}")
        return str(number)

    return encode


def _enc_number(value: Any) -> str:
    decimal = _as_decimal(value)
    if decimal is None or not decimal.is_finite():
        raise ValueError(f"{_describe_value(value)} is not a finite number")
    return _plain_decimal(decimal)


def _utc_millis(value: dt.datetime) -> str:
    value = value.astimezone(UTC)
    _check_year(value.year)  # four-digit years, so the fixed-width slice below is exact
    return value.isoformat("T", timespec="milliseconds")[:23] + "Z"


def _datetime_encoder(tz: dt.tzinfo) -> Callable[[Any], str]:
    def encode(value: Any) -> str:
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo is not None else value.replace(tzinfo=tz)
        elif isinstance(value, dt.date):
            moment = dt.datetime(value.year, value.month, value.day, tzinfo=tz)
        elif isinstance(value, str):
            parsed = _parse_datetime(value.strip(), tz)
            if parsed is None:
                raise ValueError(f"{_describe_value(value)} is not an ISO 8601 datetime")
            moment = parsed
        else:
            raise ValueError(f"{_describe_value(value)} is not a datetime")
        return _utc_millis(moment)

    return encode


def _date_encoder(tz: dt.tzinfo) -> Callable[[Any], str]:
    def encode(value: Any) -> str:
        if isinstance(value, dt.datetime):
            day = value.astimezone(tz).date() if value.tzinfo is not None else value.date()
        elif isinstance(value, dt.date):
            day = value
        elif isinstance(value, str):
            text = value.strip()
            match = _DATE_RE.fullmatch(text)
            if match is not None:
                try:
                    day = dt.date(int(match[1]), int(match[2]), int(match[3]))
                except ValueError as exc:
                    raise ValueError(f"{_describe_value(value)} is not a calendar date") from exc
            else:
                parsed = _parse_datetime(text, tz)
                if parsed is None:
                    raise ValueError(f"{_describe_value(value)} is not an ISO 8601 date")
                day = parsed.astimezone(tz).date()
        else:
            raise ValueError(f"{_describe_value(value)} is not a date")
        _check_year(day.year)
        return day.isoformat()

    return encode


def _enc_time(value: Any) -> str:
    if isinstance(value, dt.time):
        return _time_text(value.hour, value.minute, value.second, value.microsecond)
    if isinstance(value, str):
        text = _parse_time(value.strip())
        if text is not None:
            return text
    raise ValueError(f"{_describe_value(value)} is not a time of day (HH:MM:SS.sssZ)")


def _check_text(text: str) -> str:
    if text == NULL_CELL:
        raise ValueError(
            "the text '#N/A' cannot be sent: Salesforce reads it as null, quoted or not")
    if "\0" in text:
        raise ValueError("text holds a NUL character, which Salesforce cannot store")
    return text


def _string_encoder(kind: str) -> Callable[[Any], str]:
    def encode(value: Any) -> str:
        if isinstance(value, str):
            return _check_text(value) if value else NULL_CELL
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, Decimal)):
            return str(value) if isinstance(value, int) else _enc_number(value)
        if isinstance(value, float):
            return _enc_number(value)
        if isinstance(value, (list, tuple)):
            if kind == "multipicklist":
                # An empty item selects nothing: [] and [""] both clear the field (an empty
                # cell would leave it unchanged, and alone on its line make no row at all).
                items = [text for text in map(str, value) if text]
                if any(";" in item for item in items):
                    raise ValueError("a multi-select picklist value cannot contain ';'")
                return _check_text(";".join(items)) if items else NULL_CELL
            return _check_text(json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                                          default=str))
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, (dt.date, dt.time)):
            return value.isoformat()
        raise ValueError(f"{_describe_value(value)} ({type(value).__name__}) is not text")

    return encode


def _raw_encoder(field_type: str, tz: dt.tzinfo) -> Callable[[Any], str]:
    """The encoder of :func:`make_encoder` without the field name in its errors."""
    rejected = _STRING_KINDS_REJECTED.get(field_type)
    kind = value_kind(field_type)
    if rejected is not None:
        def refuse(value: Any) -> str:
            if value is None or (value.__class__ is str and value == ""):
                return NULL_CELL
            raise ValueError(rejected)

        return refuse
    if kind == "string":
        inner = _string_encoder(field_type)

        def encode_text(value: Any) -> str:
            # Fast path: the common, valid text value goes straight through.
            if value.__class__ is str and value and value != NULL_CELL and "\0" not in value:
                return value
            if value is None:
                return NULL_CELL
            return inner(value)

        return encode_text
    if kind == "boolean":
        def encode_bool(value: Any) -> str:
            if value is True:
                return "true"
            if value is False:
                return "false"
            if value is None or (value.__class__ is str and value == ""):
                return NULL_CELL
            return _enc_bool(value)

        return encode_bool
    if kind == "integer":
        low, high = INT_BOUNDS.get(field_type, INT_BOUNDS["long"])
        whole = _int_encoder(field_type)

        def encode_int(value: Any) -> str:
            # Fast path: a plain int in range (bool is a subclass, so its class is not int).
            if value.__class__ is int and low <= value <= high:
                return str(value)
            if value is None or (value.__class__ is str and value == ""):
                return NULL_CELL
            return whole(value)

        return encode_int
    if kind == "number":
        def encode_number(value: Any) -> str:
            # Fast paths: an exact Decimal (JSON numbers with a fraction) or a plain int.
            cls = value.__class__
            if cls is Decimal:
                if value.is_finite():
                    return _plain_decimal(value)
            elif cls is int:
                return str(value)
            if value is None or (cls is str and value == ""):
                return NULL_CELL
            return _enc_number(value)

        return encode_number
    if kind == "datetime":
        inner = _datetime_encoder(tz)
    elif kind == "date":
        inner = _date_encoder(tz)
    else:
        inner = _enc_time

    def encode(value: Any) -> str:
        if value is None or (value.__class__ is str and value == ""):
            return NULL_CELL
        return inner(value)

    return encode


def make_encoder(field_type: str, *, tz: dt.tzinfo | None = None,
                 field: str = "") -> Callable[[Any], str]:
    """Build the function that encodes values of one field into cell text (not yet quoted).

    Args:
        field_type: The describe type of the target field (``"datetime"``, ``"currency"``…).
        tz: Where naive datetimes are, and in which zone a datetime given to a date field is
            dated; UTC when ``None``.
        field: The field's name, used in error messages.

    Returns:
        ``encode(value) -> str``: ``None`` and ``""`` give ``#N/A``. It raises :class:`ValueError`
        ``"<field>: <reason>"`` for a value the field cannot take.
    """
    inner = _raw_encoder(field_type, tz or UTC)
    label = field or field_type

    def encode(value: Any) -> str:
        try:
            return inner(value)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None

    return encode


def encode_value(field_type: str, value: Any, tz: dt.tzinfo | None = None, *,
                 field: str = "") -> str:
    """Encode one value for a field of ``field_type`` (see :func:`make_encoder`)."""
    return make_encoder(field_type, tz=tz, field=field)(value)


_NEEDS_QUOTES = re.compile(r'[",\r\n]')


def quote_cell(text: str) -> str:
    """Quote a cell only when it must be (comma, quote or line break); quotes are doubled.

    ``#N/A`` is never quoted; leading and trailing spaces are kept as they are (Salesforce does not
    trim cells).
    """
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------------
# Writing: batches
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """Where a record key goes: the batch header name and the describe type used to encode it.

    ``name`` is what Salesforce expects in the header: a field's API name (``Name``) or a
    relationship column (``Account.External_Id__c``, ``Lead:Who.Email``).
    """

    name: str
    field_type: str


#: Maps a record key (a field name in any case, or a flattened ``Rel.Field``/``Type:Rel.Field``)
#: to its :class:`Column`; returns ``None`` to drop the key quietly (Singer metadata columns…) and
#: raises :class:`ValueError` with a reason for a key that cannot be loaded.
ColumnResolver = Callable[[str], "Column | None"]


@dataclass
class RejectedRecord:
    """A record the batcher refused on its own, before Salesforce saw it."""

    key: Any
    record: Mapping[str, Any]
    reason: str
    field: str | None = None


@dataclass
class CsvBatch:
    """One ingest batch: UTF-8 CSV bytes (header first) and the key of every row, in order."""

    sequence: int
    columns: list[str]
    keys: list[Any]
    data: bytes
    chars: int
    #: The rows' cells, unquoted, a list per column (``cells[c][r]``): what reading ``data``
    #: back would give, without reading it.
    cells: list[list[str]] | None = None

    @property
    def rows(self) -> int:
        return len(self.keys)

    @property
    def size(self) -> int:
        return len(self.data)


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _flatten_reference(key: str, value: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Flatten a parent reference by an indexed field into relationship columns.

    ``{"Account": {"External_Id__c": "A1"}}`` gives ``Account.External_Id__c``; a nested
    ``{"attributes": {"type": "Lead"}, "Email": …}`` under ``Who`` gives ``Lead:Who.Email``.
    """
    attributes = value.get("attributes")
    prefix = ""
    if isinstance(attributes, Mapping) and attributes.get("type"):
        prefix = f"{attributes['type']}:"
    pairs = []
    for sub_key, sub_value in value.items():
        if sub_key == "attributes":
            continue
        if isinstance(sub_value, Mapping):
            raise ValueError(f"{key}.{sub_key}: only one level of parent reference is allowed")
        pairs.append((f"{prefix}{key}.{sub_key}", sub_value))
    return pairs


_SCALARS = frozenset({str, int, float, bool, Decimal, type(None), dt.datetime, dt.date, list})


class _Missing(enum.Enum):
    """A cache miss (an enum member rather than a bare object so a type checker can tell it
    apart from a cached value, ``None`` included)."""

    UNSEEN = "unseen"


_UNSEEN: Final = _Missing.UNSEEN


@dataclass
class _OpenBatch:
    """The batch being filled: its header so far and its rows as joined lines (no line ending).

    Columns are only ever appended, so a row written when the batch had fewer columns lacks only
    trailing cells: ``widths`` records ``(first row, column count)`` each time the count grows,
    and the missing empty cells are added when the batch closes.
    """

    columns: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    widths: list[tuple[int, int]] = field(default_factory=list)
    #: Per record shape: where its cells go in this batch's rows (None: in order, full width).
    layouts: dict[tuple[str, ...], tuple[int, ...] | None] = field(default_factory=dict)
    #: The rows' cells, unquoted, a list per column, every one as long as ``lines`` (a row
    #: written before a column was added has the empty cell there, as its line will).
    cells: list[list[str]] = field(default_factory=list)
    body_chars: int = 0
    body_bytes: int = 0
    header_chars: int = 0
    header_bytes: int = 0


@dataclass(frozen=True)
class _Shape:
    """A record shape (its keys, in order) whose every key is a distinct column: such records
    are encoded cell by cell without resolving, flattening or duplicate checks, and a run of
    them column by column (``plans``: each column's :data:`_Plan`)."""

    names: tuple[str, ...]
    encoders: tuple[Callable[[Any], str], ...]
    plans: tuple[_Plan, ...] = ()


# --------------------------------------------------------------------------------------------------
# Writing: a whole column of one run of same-shaped records at once
# --------------------------------------------------------------------------------------------------

#: How a column's cells can be made for a whole run: ``(kind, low, high)``, where kind is
#: ``"text"``, ``"bool"``, ``"int"`` (``low``/``high`` its range), ``"number"`` or ``"any"`` (only
#: the field's own encoder, value by value).
_Plan = tuple[str, int, int]
_ANY_PLAN: _Plan = ("any", 0, 0)
_NoneType = type(None)
_TEXT_TYPES = frozenset({str, _NoneType})
_BOOL_TYPES = frozenset({bool, _NoneType})
_INT_TYPES = frozenset({int, _NoneType})
_DECIMAL_TYPES = frozenset({int, Decimal, _NoneType})
_FLOAT_TYPES = frozenset({float, _NoneType})
#: ``dict.get(value, value)`` through these turns the values a field sends as null into the
#: null cell and leaves every other value as it is, in one C loop over a column.
_TEXT_NULLS: Final[dict[Any, Any]] = {None: NULL_CELL, "": NULL_CELL}
_NONE_NULL: Final[dict[Any, Any]] = {None: NULL_CELL}
_BOOL_CELLS_OUT: Final[dict[Any, Any]] = {True: "true", False: "false", None: NULL_CELL}
_NONE_ZERO: Final[dict[Any, Any]] = {None: Decimal(0)}
_not_none = partial(is_not, None)
_is_none = partial(is_, None)
_to_decimal: Callable[[Any], Decimal] = Decimal
#: The shortest run worth encoding column by column; shorter ones go record by record.
_MIN_RUN = 4
#: How many records :meth:`CsvBatcher.batches` takes from its input at a time.
_CHUNK = 65_536


def _plan_of(field_type: str) -> _Plan:
    """The run plan of a field type: which value types its encoder passes through or formats
    in a way a C loop can repeat exactly (see :func:`_raw_encoder`)."""
    if field_type in _STRING_KINDS_REJECTED:
        return _ANY_PLAN
    kind = value_kind(field_type)
    if kind == "string":
        return ("text", 0, 0)
    if kind == "boolean":
        return ("bool", 0, 0)
    if kind == "integer":
        low, high = INT_BOUNDS.get(field_type, INT_BOUNDS["long"])
        return ("int", low, high)
    if kind == "number":
        return ("number", 0, 0)
    return _ANY_PLAN


def _with_nulls(values: Sequence[Any], texts: Iterable[str]) -> list[str]:
    """``texts`` with the null cell wherever the value is ``None`` (a C loop: each pair's item
    is picked by ``value is None``, so no value needs hashing)."""
    return list(map(tuple.__getitem__, zip(texts, itertools.repeat(NULL_CELL)),
                    map(_is_none, values)))


def _fast_cells(plan: _Plan, values: Sequence[Any]) -> Sequence[Any] | None:
    """:func:`_column_cells` by C loops alone, or ``None`` when the column's value types (or
    values) are not ones the plan's loops reproduce exactly.

    A NUL character in a text value is not looked for here: :func:`_quote_column` finds any
    NUL in a column's cells, and the run goes record by record.
    """
    kind = plan[0]
    types = set(map(type, values))
    nulls = _NoneType in types
    if kind == "text" and types <= _TEXT_TYPES:
        # encode_text passes a non-empty str through; None and "" are the null cell; the
        # text "#N/A" is refused.
        if NULL_CELL in values:
            return None
        return list(map(_TEXT_NULLS.get, values, values)) if nulls or "" in values else values
    if kind == "bool" and types <= _BOOL_TYPES:
        return list(map(_BOOL_CELLS_OUT.__getitem__, values))
    present = list(filter(_not_none, values)) if nulls else values
    if kind in ("int", "number") and types <= _INT_TYPES:
        if kind == "int" and present and (min(present) < plan[1] or max(present) > plan[2]):
            return None
        return _with_nulls(values, map(str, values)) if nulls else list(map(str, values))
    if kind == "number" and types <= _DECIMAL_TYPES:
        # An int gives str(int). A Decimal gives format(value, "f") (_plain_decimal), which is
        # str(value) when that has no exponent ("E") and is finite (no "NaN", "sNaN",
        # "Infinity"): str writes a plain form exactly when format "f" would write the same.
        texts = list(map(str, values))
        shown = "".join(map(str, present)) if nulls else "".join(texts)
        if "E" not in shown and "N" not in shown and "I" not in shown:
            return _with_nulls(values, texts) if nulls else texts
        if not all(map(Decimal.is_finite, map(_to_decimal, present))):
            return None
        numbers = map(_to_decimal, map(_NONE_ZERO.get, values, values)) if nulls \
            else map(_to_decimal, values)
        texts = list(map(format, numbers, itertools.repeat("f")))
        return _with_nulls(values, texts) if nulls else texts
    if kind == "number" and types <= _FLOAT_TYPES:
        # A finite float gives format(Decimal(repr(value)), "f"), which is repr(value) itself
        # whenever repr has no exponent (and no "inf"/"nan"): a plain decimal keeps its digits.
        texts = list(map(repr, values))
        shown = "".join(map(repr, present)) if nulls else "".join(texts)
        if "e" in shown or "n" in shown:
            return None
        return _with_nulls(values, texts) if nulls else texts
    return None


def _column_cells(plan: _Plan, encode: Callable[[Any], str],
                  values: Sequence[Any]) -> Sequence[Any] | None:
    """The unquoted cells of one column of a run, exactly as ``encode`` gives them value by
    value; ``None`` when some value does not encode (the run then goes record by record, so the
    record is rejected, or its reference flattened, as :meth:`CsvBatcher.add` does).

    Where every value's type is one the plan knows, the cells come from C loops over the whole
    column (``map`` with built-in functions and ``dict.get``); otherwise ``encode`` is mapped.
    """
    try:
        cells = _fast_cells(plan, values)
    except Exception:  # any surprise: let the field's own encoder decide, value by value
        cells = None
    if cells is not None:
        return cells
    try:
        return list(map(encode, values))
    except Exception:  # the record-by-record path raises or rejects it in place
        return None


#: A cell that needs no quotes, between NUL separators.
_PLAIN_BETWEEN_NULS = re.compile('\0[^",\r\n\0]*\0')


def _quote_column(cells: Sequence[str]) -> tuple[Sequence[str], bool] | None:
    """Quote the cells of a column that need it (as :func:`quote_cell`), with C loops.

    Returns:
        The cells and whether they are all ASCII; ``None`` when a cell holds a NUL character
        (no encoder passes one: the text encoders refuse it, so the record path rejects it).
    """
    text = "\0".join(cells)
    if text.count("\0") != len(cells) - 1:
        return None
    ascii_only = text.isascii()
    if '"' not in text and "," not in text and "\n" not in text and "\r" not in text:
        return cells, ascii_only
    every = ('"' + text.replace('"', '""').replace("\0", '"\0"') + '"').split("\0")
    # Every cell needs quotes when each holds the same one of the characters (the usual case:
    # a text column whose values all hold a comma), or else when no cell lacks them all.
    if any(all(map(str.__contains__, cells, itertools.repeat(char))) for char in '",\n\r'
           if char in text) or _PLAIN_BETWEEN_NULS.search("\0" + text + "\0") is None:
        return every, ascii_only
    # Pick each cell's quoted or plain form: pair[True] is the quoted one. (The match objects
    # are dropped as they come: a list of them would wake the cyclic GC.)
    return list(map(tuple.__getitem__, zip(cells, every, strict=True),
                    map(bool, map(_NEEDS_QUOTES.search, cells)))), ascii_only


def _fitting(prefix: Sequence[int], start: int, count: int, room: int, extra: int) -> int:
    """How many of the next ``count`` lines from ``start`` fit in ``room``: the largest ``c``
    with ``prefix[start + c] - prefix[start] + c * extra <= room`` (prefix sums of line sizes,
    ``extra`` added per line)."""
    base = prefix[start]
    if prefix[start + count] - base + count * extra <= room:
        return count
    low, high = 0, count  # low fits, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if prefix[start + middle] - base + middle * extra <= room:
            low = middle
        else:
            high = middle
    return low


_NO_SHAPE = object()


class CsvBatcher:
    """Packs records into Salesforce ingest CSV batches within every size limit.

    Memory is bounded by one batch: rows are kept as encoded cells until the batch closes, then
    joined under the final header. When a later record brings a new column, the header grows and
    every earlier row gets an empty cell there (empty = leave unchanged), which the size accounting
    includes exactly: ``batch.size`` equals ``len(batch.data)`` and never exceeds ``max_bytes``.

    Args:
        resolver: See :data:`ColumnResolver`; results are cached per key.
        tz: Time zone of naive datetimes (see :func:`make_encoder`).
        max_rows, max_bytes, max_chars: Per-batch limits (header included in bytes and chars).
        max_field_chars, max_record_chars, max_record_fields: Per-record limits; a record over one
            is rejected alone.
        line_ending: ``"\\n"`` (LF, the default) or ``"\\r\\n"``; it must match the job's
            ``lineEnding``.
    """

    def __init__(
        self,
        resolver: ColumnResolver,
        *,
        tz: dt.tzinfo | None = None,
        max_rows: int = MAX_BATCH_ROWS,
        max_bytes: int = MAX_BATCH_BYTES,
        max_chars: int = MAX_BATCH_CHARS,
        max_field_chars: int = MAX_FIELD_CHARS,
        max_record_chars: int = MAX_RECORD_CHARS,
        max_record_fields: int = MAX_RECORD_FIELDS,
        max_header_chars: int = MAX_HEADER_CHARS,
        line_ending: str = "\n",
    ) -> None:
        if line_ending not in ("\n", "\r\n"):
            raise ValueError("line_ending must be LF or CRLF")
        if min(max_rows, max_bytes, max_chars, max_field_chars, max_record_chars,
               max_record_fields, max_header_chars) < 1:
            raise ValueError("every batch limit must be positive")
        self._resolver = resolver
        self._tz = tz or UTC
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.max_field_chars = max_field_chars
        self.max_record_chars = max_record_chars
        self.max_record_fields = max_record_fields
        self.max_header_chars = max_header_chars
        self.line_ending = line_ending
        self._columns: dict[str, Any] = {}
        self._shapes: dict[tuple[str, ...], Any] = {}
        self._plans: dict[str, _Plan] = {}
        #: A quoted line no longer than this holds no field or record over its character limit.
        self._plain_chars = min(max_field_chars, max_record_chars)
        self._open = _OpenBatch()
        self._position = 0
        self._sequence = 0

    # -- resolving and encoding --------------------------------------------------------------

    def _resolve(self, key: str) -> tuple[str, str, Callable[[Any], str]] | None:
        """Resolve and cache one key: (column name, quoted header, encoder) or None to skip."""
        try:
            column = self._resolver(key)
        except ValueError as exc:
            self._columns[key] = exc
            raise _Rejection(str(exc), key) from None
        entry = None if column is None else (
            column.name, quote_cell(column.name), _raw_encoder(column.field_type, self._tz))
        self._columns[key] = entry
        if column is not None:
            self._plans[key] = _plan_of(column.field_type)
        return entry

    def _encode(self, record: Mapping[str, Any]) -> tuple[list[tuple[str, str, str]], int, int]:
        """Encode a record's cells: ([(column, quoted header, quoted cell)], chars, bytes).

        Raises:
            _Rejection: A key cannot be loaded, a value is bad or a per-record limit is broken.
        """
        cells: list[tuple[str, str, str]] = []
        seen: dict[str, str] = {}
        columns = self._columns
        max_field = self.max_field_chars
        record_chars = cell_chars = cell_bytes = 0
        nested: list[tuple[str, Any]] = []
        for items in (record.items(), nested):
            for key, value in items:
                if value.__class__ not in _SCALARS and isinstance(value, Mapping):
                    nested.extend(_flatten_reference(key, value))
                    continue
                entry = columns.get(key, _UNSEEN)
                if entry is _UNSEEN:
                    entry = self._resolve(key)
                elif entry.__class__ is not tuple:
                    if entry is None:
                        continue
                    raise _Rejection(str(entry), key)
                if entry is None:
                    continue
                name, header, encode = entry
                if name in seen:
                    raise _Rejection(f"{key!r} and {seen[name]!r} both load {name}", key)
                seen[name] = key
                try:
                    text = encode(value)
                except ValueError as exc:
                    raise _Rejection(f"{name}: {exc}", key) from None
                size = len(text)
                if size > max_field:
                    raise _Rejection(f"{name}: {size} characters, over the {max_field} per "
                                     "field", key)
                record_chars += size
                if '"' in text or "," in text or "\n" in text or "\r" in text:
                    text = '"' + text.replace('"', '""') + '"'
                    size = len(text)
                cell_chars += size
                if text.isascii():
                    cell_bytes += size
                else:
                    try:
                        cell_bytes += len(text.encode("utf-8"))
                    except UnicodeEncodeError:
                        # Lone surrogates: input bytes that were not UTF-8, escaped on reading.
                        raise _Rejection(f"{name}: the text is not valid UTF-8 (undecodable "
                                         "input bytes)", key) from None
                cells.append((name, header, text))
        if record_chars > self.max_record_chars:
            raise _Rejection(f"{record_chars} characters, over the {self.max_record_chars} per "
                             "record")
        if len(cells) > self.max_record_fields:
            raise _Rejection(f"{len(cells)} fields, over the {self.max_record_fields} per record")
        if not cells:
            raise _Rejection("no field of this record can be loaded")
        return cells, cell_chars, cell_bytes

    # -- batching -------------------------------------------------------------------------------

    def add(self, record: Mapping[str, Any], key: Any = None) -> CsvBatch | RejectedRecord | None:
        """Add one record.

        Args:
            record: Field name to value; nested mappings are parent references.
            key: How results will name this record; its input position (0, 1, …) by default.

        Returns:
            The batch that this record closed (it did not fit, so it starts the next one), a
            :class:`RejectedRecord` when the record cannot be loaded at all, or ``None``.
        """
        position = self._position
        self._position += 1
        if key is None:
            key = position
        shape = self._shapes.get(tuple(record), _NO_SHAPE)
        if shape is _NO_SHAPE:
            shape = self._shape(record)
        if shape is not None and self._add_plain(shape, record, key):
            return None
        return self._add_any(record, key)

    def _shape(self, record: Mapping[str, Any]) -> _Shape | None:
        """Cache the plan for records with these keys: a :class:`_Shape`, or ``None`` when some
        key is not a column of its own (dropped, refused, a parent reference, a duplicate)."""
        keys = tuple(record)
        entries = []
        try:
            for key in keys:
                entry = self._columns.get(key, _UNSEEN)
                if entry is _UNSEEN:
                    entry = self._resolve(key)
                entries.append(entry)
        except _Rejection:
            entries.append(None)
        shape = None
        if entries and all(entry.__class__ is tuple for entry in entries):
            names = tuple(name for name, _, _ in entries)
            if len(set(names)) == len(names) and len(names) <= self.max_record_fields:
                shape = _Shape(names, tuple(encode for _, _, encode in entries),
                               tuple(self._plans.get(key, _ANY_PLAN) for key in keys))
        self._shapes[keys] = shape
        return shape

    def _add_plain(self, shape: _Shape, record: Mapping[str, Any], key: Any) -> bool:
        """Add a record of a known shape to the open batch when it simply fits there.

        Returns ``False``, having changed nothing, whenever :meth:`_add_any` must decide: a
        value that does not encode (or is a parent reference), a line long enough that a field
        or record limit might break, a column the open batch lacks, or a batch limit.
        """
        try:
            # The shape is keyed by this record's keys, so the lengths match.
            cells = [encode(value) for encode, value in zip(shape.encoders, record.values(),
                                                            strict=False)]
        except ValueError:
            return False
        raw = cells
        line = ",".join(cells)
        # One scan of the line tells whether any cell needs quoting (a comma beyond the
        # separators, a quote or a line break); only then is each cell looked at.
        if '"' in line or "\n" in line or "\r" in line or \
                line.count(",") != len(cells) - 1:
            cells = [text if _NEEDS_QUOTES.search(text) is None
                     else '"' + text.replace('"', '""') + '"' for text in cells]
            line = ",".join(cells)
        if len(line) > self._plain_chars:
            return False
        batch = self._open
        layout = batch.layouts.get(shape.names, _UNSEEN)
        if layout is _UNSEEN:
            index = batch.index
            if any(name not in index for name in shape.names):
                return False
            positions = tuple(index[name] for name in shape.names)
            layout = None if positions == tuple(range(len(batch.columns))) else positions
            batch.layouts[shape.names] = layout
        if layout is not None:
            row = [""] * len(batch.columns)
            placed = [""] * len(batch.columns)
            for position, cell, text in zip(layout, cells, raw, strict=True):
                row[position], placed[position] = cell, text
            line = ",".join(row)
            raw = placed
        if len(batch.lines) >= self.max_rows:
            return False
        chars = len(line) + len(self.line_ending)
        try:
            size = chars if line.isascii() else len(line.encode("utf-8")) + len(self.line_ending)
        except UnicodeEncodeError:
            return False  # undecodable input text: the full path rejects it, naming the field
        body_chars = batch.body_chars + chars
        body_bytes = batch.body_bytes + size
        if batch.header_chars + body_chars > self.max_chars or \
                batch.header_bytes + body_bytes > self.max_bytes:
            return False
        batch.lines.append(line)
        for column, cell in zip(batch.cells, raw, strict=True):
            column.append(cell)
        batch.keys.append(key)
        batch.body_chars = body_chars
        batch.body_bytes = body_bytes
        return True

    def _add_any(self, record: Mapping[str, Any], key: Any) -> CsvBatch | RejectedRecord | None:
        """:meth:`add` for any record: resolve and check every key and value."""
        try:
            encoded = self._encode(record)
        except _Rejection as exc:
            return RejectedRecord(key, record, exc.reason, exc.field)
        except ValueError as exc:  # a malformed nested reference
            return RejectedRecord(key, record, str(exc))
        cells = encoded[0]
        batch = self._open
        fit = self._fit(batch, encoded)
        if fit is not None:
            self._append(batch, cells, key, fit)
            return None
        alone = self._fit(_OpenBatch(), encoded)
        if alone is None:
            return RejectedRecord(key, record, "the record alone exceeds the batch size limits")
        closed = self._close()
        self._append(self._open, cells, key, alone)
        return closed

    def flush(self) -> CsvBatch | None:
        """Close and return the open batch, if it has rows."""
        return self._close()

    def batches(self, records: Iterable[Any], *,
                keyed: bool = False) -> Iterator[CsvBatch | RejectedRecord]:
        """Batch a whole stream of records, yielding batches and rejected records as they come.

        The result is exactly what :meth:`add` for each record and a last :meth:`flush` give;
        but runs of consecutive records with the same keys are encoded column by column (see
        :meth:`_add_run`), which is several times cheaper for the usual stream of one shape.

        Args:
            records: Records, or ``(key, record)`` pairs when ``keyed`` is true.
            keyed: Whether ``records`` holds pairs.
        """
        items = iter(records)
        while chunk := list(itertools.islice(items, _CHUNK)):
            if keyed and set(map(len, chunk)) == {2} and set(map(type, chunk)) <= {tuple, list}:
                keys: list[Any] | None = list(map(itemgetter(0), chunk))
                rows: list[Any] = list(map(itemgetter(1), chunk))
            elif keyed:
                # Not all plain pairs: unpack each as add() callers do, failing where they fail.
                for item in chunk:
                    key, record = item
                    yield from self._add_one(record, key)
                continue
            else:
                keys, rows = None, chunk
            yield from self._add_rows(rows, keys)
        last = self.flush()
        if last is not None:
            yield last

    def _add_one(self, record: Mapping[str, Any],
                 key: Any) -> Iterator[CsvBatch | RejectedRecord]:
        outcome = self.add(record, key)
        if outcome is not None:
            yield outcome

    def _add_rows(self, rows: list[Any],
                  keys: list[Any] | None) -> Iterator[CsvBatch | RejectedRecord]:
        """:meth:`add` each of ``rows`` (with its key; its position when the key is ``None``),
        runs of the same keys together."""
        count = len(rows)
        start = self._position
        if keys is None:
            keys = list(range(start, start + count))
        elif any(map(_is_none, keys)):  # by identity, as add() tells a missing key
            keys = [start + n if key is None else key for n, key in enumerate(keys)]
        if not set(map(type, rows)) <= {dict}:
            for record, key in zip(rows, keys, strict=True):
                yield from self._add_one(record, key)
            return
        # Every tuple of keys made here is freed at once: holding one per record would make
        # the cyclic GC run (over every live record) for containers that cannot form a cycle.
        if len(set(map(tuple, rows))) == 1:
            bounds = [(0, count)]
        else:
            bounds = []
            first = 0
            for _, group in itertools.groupby(map(tuple, rows)):
                last = first + sum(1 for _ in group)
                bounds.append((first, last))
                first = last
        for first, last in bounds:
            if last - first < _MIN_RUN:
                for index in range(first, last):
                    yield from self._add_one(rows[index], keys[index])
                continue
            yield from self._add_run(rows[first:last], keys[first:last])

    def _encode_run(self, shape: _Shape, rows: list[dict[str, Any]],
                    ) -> tuple[list[Sequence[str]], list[Sequence[str]], list[str], list[int],
                               list[int], list[int]] | None:
        """Encode a run of records with ``shape``'s keys column by column.

        Returns:
            The run's quoted cells by column, its unquoted cells by column, each record's own
            line (its cells joined, as
            :meth:`_add_plain` makes it before any layout), the lines' lengths, and the prefix
            sums of the lines' characters and of their UTF-8 bytes; or ``None`` when some value
            does not encode or some text is not valid UTF-8, for the record-by-record path to
            reject in place.
        """
        columns: list[Sequence[str]] = []
        raw: list[Sequence[str]] = []
        ascii_only = True
        for key, plan, encode in zip(rows[0], shape.plans, shape.encoders, strict=True):
            # One column at a time, by key: transposing with zip(*map(dict.values, rows))
            # would hold a view object per record, and their number would wake the cyclic GC.
            cells = _column_cells(plan, encode, list(map(itemgetter(key), rows)))
            quoted = None if cells is None else _quote_column(cells)
            if quoted is None:
                return None
            raw.append(cells)  # type: ignore[arg-type]
            columns.append(quoted[0])
            ascii_only = ascii_only and quoted[1]
        lines = list(map(",".join, zip(*columns, strict=True)))
        lengths = list(map(len, lines))
        chars = list(itertools.accumulate(lengths, initial=0))
        if ascii_only:
            return columns, raw, lines, lengths, chars, chars
        try:
            sizes = list(itertools.accumulate(map(len, map(str.encode, lines)), initial=0))
        except UnicodeEncodeError:  # lone surrogates: the full path names the field
            return None
        return columns, raw, lines, lengths, chars, sizes

    def _add_run(self, rows: list[dict[str, Any]],
                 keys: list[Any]) -> Iterator[CsvBatch | RejectedRecord]:
        """Add a run of records that share their keys, exactly as :meth:`add` would one by one.

        The run is encoded at once (:meth:`_encode_run`); then as many records as fit the open
        batch (rows, characters, bytes, exact prefix sums) are appended with their lines laid
        out for its header. A record :meth:`_add_plain` would refuse goes through :meth:`add`
        itself: the first one into a batch lacking the run's columns (the header grows), the one
        that does not fit (the batch closes, or the record is rejected), a line long enough that
        a field or record limit might break. A run that does not encode goes record by record.
        """
        shape = self._shapes.get(tuple(rows[0]), _NO_SHAPE)
        if shape is _NO_SHAPE:
            shape = self._shape(rows[0])
        encoded = None if shape is None else self._encode_run(shape, rows)
        if encoded is None:
            for record, key in zip(rows, keys, strict=True):
                yield from self._add_one(record, key)
            return
        columns, raw, lines, lengths, chars, sizes = encoded
        names = shape.names
        total = len(rows)
        plain = self._plain_chars
        if max(lengths) > plain:
            long = [n for n, length in enumerate(lengths) if length > plain]
        else:
            long = []
        long.append(total)
        eol = len(self.line_ending)
        position = 0
        next_long = 0
        while position < total:
            while long[next_long] < position:
                next_long += 1
            stop = long[next_long]
            if stop == position:
                yield from self._add_one(rows[position], keys[position])
                position += 1
                continue
            batch = self._open
            layout = batch.layouts.get(names, _UNSEEN)
            if layout is _UNSEEN:
                index = batch.index
                if any(name not in index for name in names):
                    yield from self._add_one(rows[position], keys[position])
                    position += 1
                    continue
                positions = tuple(index[name] for name in names)
                layout = None if positions == tuple(range(len(batch.columns))) else positions
                batch.layouts[names] = layout
            width = len(batch.columns)
            extra = width - len(names) + eol  # the empty cells' commas and the line ending
            count = min(stop - position, self.max_rows - len(batch.lines))
            if count > 0:
                count = _fitting(chars, position, count,
                                 self.max_chars - batch.header_chars - batch.body_chars, extra)
            if count > 0:
                count = _fitting(sizes, position, count,
                                 self.max_bytes - batch.header_bytes - batch.body_bytes, extra)
            if count == 0:
                yield from self._add_one(rows[position], keys[position])
                position += 1
                continue
            end = position + count
            if layout is None:
                batch.lines.extend(lines[position:end])
                for column, cells in zip(batch.cells, raw, strict=True):
                    column.extend(cells[position:end])
            else:
                laid: list[Iterable[str]] = [itertools.repeat("")] * width
                for place, cells in zip(layout, columns, strict=True):
                    laid[place] = cells[position:end]
                batch.lines.extend(map(",".join, zip(*laid, strict=False)))
                unquoted: list[Sequence[str] | None] = [None] * width
                for place, cells in zip(layout, raw, strict=True):
                    unquoted[place] = cells
                for column, given in zip(batch.cells, unquoted, strict=True):
                    column.extend([""] * count if given is None else given[position:end])
            batch.keys.extend(keys[position:end])
            batch.body_chars += chars[end] - chars[position] + count * extra
            batch.body_bytes += sizes[end] - sizes[position] + count * extra
            self._position += count
            position = end

    def _fit(self, batch: _OpenBatch,
             encoded: tuple[list[tuple[str, str, str]], int, int]) -> tuple[int, ...] | None:
        """The batch's new sizes with this record added, or ``None`` when a limit would break."""
        if len(batch.lines) >= self.max_rows:
            return None
        cells, cell_chars, cell_bytes = encoded
        index = batch.index
        new_headers = [header for name, header, _ in cells if name not in index]
        columns = len(batch.columns) + len(new_headers)
        eol = len(self.line_ending)
        header_chars = batch.header_chars
        header_bytes = batch.header_bytes
        if new_headers:
            added_chars = sum(len(h) for h in new_headers) + len(new_headers)
            added_bytes = sum(_utf8_len(h) for h in new_headers) + len(new_headers)
            if not batch.columns:  # the first column has no comma but the header gets its EOL
                added_chars += eol - 1
                added_bytes += eol - 1
            header_chars += added_chars
            header_bytes += added_bytes
            if header_chars - eol > self.max_header_chars:
                return None
        # Existing rows gain one comma per new column.
        widen = len(new_headers) * len(batch.lines)
        body_chars = batch.body_chars + widen + cell_chars + columns - 1 + eol
        body_bytes = batch.body_bytes + widen + cell_bytes + columns - 1 + eol
        if header_chars + body_chars > self.max_chars or header_bytes + body_bytes > self.max_bytes:
            return None
        return header_chars, header_bytes, body_chars, body_bytes

    def _append(self, batch: _OpenBatch, cells: list[tuple[str, str, str]], key: Any,
                sizes: tuple[int, ...]) -> None:
        index = batch.index
        for name, header, _ in cells:
            if name not in index:
                index[name] = len(batch.columns)
                batch.columns.append(header)
                batch.cells.append([""] * len(batch.lines))  # earlier rows: the empty cell
        width = len(batch.columns)
        if not batch.widths or batch.widths[-1][1] != width:
            batch.widths.append((len(batch.lines), width))
            batch.layouts.clear()  # layouts name the full width: recompute them
        row = [""] * width
        for name, _, cell in cells:
            row[index[name]] = cell
        batch.lines.append(",".join(row))
        for column, cell in zip(batch.cells, row, strict=True):
            # A quoted cell starts with a quote (an unquoted one cannot hold one).
            column.append(cell[1:-1].replace('""', '"') if cell[:1] == '"' else cell)
        batch.keys.append(key)
        batch.header_chars, batch.header_bytes, batch.body_chars, batch.body_bytes = sizes

    def _close(self) -> CsvBatch | None:
        batch = self._open
        if not batch.lines:
            return None
        self._open = _OpenBatch()
        width = len(batch.columns)
        lines = batch.lines
        # Rows written before the header last grew get their missing trailing empty cells.
        bounds = [start for start, _ in batch.widths[1:]] + [len(lines)]
        for (start, columns), stop in zip(batch.widths, bounds, strict=True):
            if columns < width:
                pad = "," * (width - columns)
                lines[start:stop] = [line + pad for line in lines[start:stop]]
        eol = self.line_ending
        # The empty last item gives the final line ending without copying the text again.
        text = eol.join([",".join(batch.columns), *lines, ""])
        names = list(batch.index)
        sequence = self._sequence
        self._sequence += 1
        rows = len(lines)
        cells = batch.cells if all(len(column) == rows for column in batch.cells) else None
        return CsvBatch(sequence, names, batch.keys, text.encode("utf-8"), len(text), cells)


class _Rejection(Exception):
    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field

