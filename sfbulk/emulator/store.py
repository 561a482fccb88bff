"""The emulated org's records: one SQLite table per sObject, written the way Salesforce saves.

``Org.write`` is the single save path every API shares (Bulk 1.0, Bulk 2.0, REST, seeds through
``insert_raw``): it parses each value by its field's describe type, applies Salesforce's checks
and maintains the system fields, then reports one outcome per input row, in input order, with
Salesforce's status codes and messages. A batch is validated row by row in Python and applied
with ``executemany`` inside one transaction, so a 10,000-row batch takes a fraction of a second.

Message provenance: ``REQUIRED_FIELD_MISSING``, ``INVALID_FIELD_FOR_INSERT_UPDATE``,
``ENTITY_IS_DELETED``, ``MALFORMED_ID`` (``malformed id X``) and the ``Failed to deserialize
field at col N`` form of ``INVALID_FIELD`` are recorded responses (``../shared/fixtures``). The
other messages follow the forms Salesforce is widely reported to use; they are not recorded.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import operator
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from itertools import chain, repeat
from typing import Any

from sfbulk.emulator.metadata import Catalog, FieldDef, SObjectDef, standard_catalog
from sfbulk.ids import encode_base62, is_valid_id, make_id, to18

__all__ = [
    "BatchError",
    "Org",
    "QueryCursor",
    "RecordError",
    "RecordResult",
    "format_datetime",
    "parse_date",
    "parse_datetime",
]

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete", "undelete")
_OPERATION_BY_LOWER = {op.lower(): op for op in OPERATIONS}
_SQL_CHUNK = 900  # stay under SQLite's default limit of host parameters per statement
#: Rows a multi-row INSERT holds at most (fewer when their values would pass SQLite's limit).
INSERT_ROWS_PER_STATEMENT = 500
_FETCH_CHUNK = 1000
_INT32 = (-(2**31), 2**31 - 1)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
#: ``_EMAIL`` for a column of values without line feeds, joined one per line.
_EMAIL_LINES = re.compile(r"(?:[^@\s]+@[^@\s]+\.[^@\s]+\n)*")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})Z?$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?Z?$")
_REL_COLUMN = re.compile(r"^(?:(\w+):)?(\w+)\.(\w+)$")
_AUTO_NUMBER = re.compile(r"\{(0+)\}")
_PERMISSION_HINT = (
    "Please check the security settings of this field and verify that it is read/write for your "
    "profile or permission set."
)


# ------------------------------------------------------------------------------------------------
# Results and errors
# ------------------------------------------------------------------------------------------------


@dataclass
class RecordError:
    """One error of one record, as Salesforce reports it (``STATUS_CODE:message:fields --``)."""

    status_code: str
    message: str
    fields: list[str] = field(default_factory=list)


@dataclass
class RecordResult:
    """The outcome of one input row: the record id (when known), success, and whether created."""

    id: str | None
    success: bool
    created: bool
    errors: list[RecordError] = field(default_factory=list)


class BatchError(Exception):
    """A problem with the whole batch (unknown column...): no row is processed.

    ``str(error)`` is the message Bulk puts in the batch's ``stateMessage``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _RowError(Exception):
    """Raised by a value converter; becomes the row's RecordError."""

    def __init__(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.error = RecordError(code, message, list(fields))


# ------------------------------------------------------------------------------------------------
# Value parsing shared with the rest of the emulator
# ------------------------------------------------------------------------------------------------


def format_datetime(moment: dt.datetime) -> str:
    """Format as stored and as Bulk CSV writes it: ``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(text: str) -> str | None:
    """Parse an ingest dateTime (``…Z``, ``±hh:mm``, ``±hhmm``, optional fraction) to UTC storage.

    Returns None when ``text`` is not a dateTime. Without an offset the value is taken as UTC.
    """
    m = _DATETIME.match(text)
    if m is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    try:
        moment = dt.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
        )  # fmt: skip
    except ValueError:
        return None
    if offset and offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment -= sign * delta
    return format_datetime(moment)


def parse_date(text: str) -> str | None:
    """Parse an ingest date (``YYYY-MM-DD``, a trailing ``Z`` tolerated); None when invalid."""
    m = _DATE.match(text)
    if m is None:
        return None
    try:
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return None


def _parse_time(text: str) -> str | None:
    m = _TIME.match(text)
    if m is None:
        return None
    hour, minute, second, fraction = m.groups()
    if int(hour) > 23 or int(minute) > 59 or int(second or 0) > 59:
        return None
    millis = (fraction or "0")[:3].ljust(3, "0")
    return f"{hour}:{minute}:{second or '00'}.{millis}Z"


def _format_auto_number(pattern: str, number: int, today: dt.date) -> str:
    text = _AUTO_NUMBER.sub(lambda m: str(number).rjust(len(m[1]), "0"), pattern)
    return (
        text.replace("{YYYY}", f"{today.year:04d}")
        .replace("{YY}", f"{today.year % 100:02d}")
        .replace("{MM}", f"{today.month:02d}")
        .replace("{DD}", f"{today.day:02d}")
    )


# ------------------------------------------------------------------------------------------------
# Converters: one per field, turning a sent value into its stored form or raising _RowError
# ------------------------------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _deserialize_error(fdef: FieldDef, col: int, value: Any) -> _RowError:
    soap = fdef.soap_type or "xsd:anyType"
    return _RowError(
        "INVALID_FIELD",
        f"Failed to deserialize field at col {col}. Due to, '{value}' is not a valid value for "
        f"the type {soap}",
        [fdef.name],
    )


def _wrong_kind(fdef: FieldDef, value: Any) -> _RowError:
    return _RowError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        f"{fdef.label}: value not of required type: {value}",
        [fdef.name],
    )


def _text_converter(fdef: FieldDef) -> Converter:
    length = fdef.length
    name, label = fdef.name, fdef.label
    is_email = fdef.type == "email"
    restricted = set(fdef.picklist_values) if fdef.restricted_picklist else None
    multi = fdef.type == "multipicklist"

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (int, float, Decimal)):
            value = str(value)
        elif not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        if value == "":
            return None
        if length and len(value) > length:
            raise _RowError(
                "STRING_TOO_LONG",
                f"{label}: data value too large: {value} (max length={length})",
                [name],
            )
        if is_email and not _EMAIL.match(value):
            raise _RowError(
                "INVALID_EMAIL_ADDRESS", f"{label}: invalid email address: {value}", [name]
            )
        if restricted is not None:
            for item in value.split(";") if multi else (value,):
                if item not in restricted:
                    raise _RowError(
                        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                        f"{label}: bad value for restricted picklist field: {item}",
                        [name],
                    )
        return value

    return convert


def _number_converter(fdef: FieldDef, col: int) -> Converter:
    integral = fdef.type in ("int", "long")
    scale = fdef.scale
    quantum = Decimal(1).scaleb(-scale) if scale else Decimal(1)
    if fdef.type == "int":
        limit = None
    elif fdef.type == "long":
        limit = Decimal(10) ** (fdef.digits or 18)
    elif fdef.precision:
        limit = Decimal(10) ** max(fdef.precision - scale, 0)
    else:
        limit = None

    def out_of_range(value: Any) -> _RowError:
        return _RowError(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{fdef.label}: value outside of valid range on numeric field: {value}",
            [fdef.name],
        )

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise _wrong_kind(fdef, value)
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, (float, Decimal, str)):
            try:
                number = Decimal(
                    str(value).strip()
                    if isinstance(value, str)
                    else repr(value)
                    if isinstance(value, float)
                    else value
                )
            except InvalidOperation:
                raise _deserialize_error(fdef, col, value) from None
            if not number.is_finite():
                raise _deserialize_error(fdef, col, value)
        else:
            raise _wrong_kind(fdef, value)
        if integral:
            if number != number.to_integral_value():
                raise _deserialize_error(fdef, col, value)
            whole = int(number)
            if fdef.type == "int" and not _INT32[0] <= whole <= _INT32[1]:
                raise out_of_range(value)
            if limit is not None and abs(whole) >= limit:
                raise out_of_range(value)
            return whole
        rounded = number.quantize(quantum, rounding=ROUND_HALF_UP) if scale or limit else number
        if limit is not None and abs(rounded) >= limit:
            raise out_of_range(value)
        if rounded == rounded.to_integral_value() and not scale:
            return int(rounded)
        text = format(rounded, "f")
        return text

    return convert


def _boolean_converter(fdef: FieldDef, col: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int) and value in (0, 1):
            return value
        if isinstance(value, str):
            lowered = value.lower()
            if lowered in ("true", "1"):
                return 1
            if lowered in ("false", "0"):
                return 0
            raise _deserialize_error(fdef, col, value)
        raise _wrong_kind(fdef, value)

    return convert


def _date_converter(fdef: FieldDef, col: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            raise _wrong_kind(fdef, value)
        if isinstance(value, dt.date):
            return value.isoformat()
        if not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        parsed = parse_date(value)
        if parsed is None:
            raise _deserialize_error(fdef, col, value)
        return parsed

    return convert


def _datetime_converter(fdef: FieldDef, col: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            return format_datetime(value)
        if not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        parsed = parse_datetime(value)
        if parsed is None:
            raise _deserialize_error(fdef, col, value)
        return parsed

    return convert


def _time_converter(fdef: FieldDef, col: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, dt.time):
            return f"{value.strftime('%H:%M:%S')}.{value.microsecond // 1000:03d}Z"
        if not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        parsed = _parse_time(value)
        if parsed is None:
            raise _deserialize_error(fdef, col, value)
        return parsed

    return convert


def _base64_converter(fdef: FieldDef, col: int) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _deserialize_error(fdef, col, value) from None

    return convert


def _reference_converter(fdef: FieldDef) -> Converter:
    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            raise _wrong_kind(fdef, value)
        if value == "":
            return None
        checked = _checked_id(value)
        if checked is None:
            raise _RowError(
                "MALFORMED_ID", f"{fdef.label}: id value of incorrect type: {value}", [fdef.name]
            )
        return checked

    return convert


def _plain_converter(fdef: FieldDef) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, (dict, list)):
            raise _wrong_kind(fdef, value)
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)
        return text or None

    return convert


def make_converter(fdef: FieldDef, col: int = 0) -> Converter:
    """The function that turns a value sent for ``fdef`` into its stored form.

    ``col`` is the value's column position, quoted in deserialisation errors as Salesforce does.
    """
    t = fdef.type
    if t in ("string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone",
             "url", "encryptedstring"):  # fmt: skip
        return _text_converter(fdef)
    if t in ("int", "long", "double", "currency", "percent"):
        return _number_converter(fdef, col)
    if t == "boolean":
        return _boolean_converter(fdef, col)
    if t == "date":
        return _date_converter(fdef, col)
    if t == "datetime":
        return _datetime_converter(fdef, col)
    if t == "time":
        return _time_converter(fdef, col)
    if t == "base64":
        return _base64_converter(fdef, col)
    if t in ("reference", "id"):
        return _reference_converter(fdef)
    return _plain_converter(fdef)


# ------------------------------------------------------------------------------------------------
# Write plans: how each column of a batch is handled, built once per (object, operation, header)
# ------------------------------------------------------------------------------------------------


@dataclass
class _Column:
    key: str
    kind: str  # "id", "field" or "rel"
    fdef: FieldDef | None = None
    convert: Converter | None = None
    target: SObjectDef | None = None
    target_field: FieldDef | None = None
    target_convert: Converter | None = None


_ID, _FIELD, _REL = "id", "field", "rel"
_MISSING = object()
_PLAIN_TEXT_TYPES = frozenset({"string", "textarea", "picklist", "combobox", "phone", "url"})
_Handler = tuple[str, str, "Converter | None", bool, bool, bool, _Column]


@dataclass
class _Plan:
    obj: SObjectDef
    columns: dict[str, _Column]
    id_key: str | None
    _handlers: dict[str, dict[str, _Handler]] = field(default_factory=dict)
    #: Columns whose clean values are plain strings up to this length (no other checks).
    fast_text: dict[str, int] = field(default_factory=dict)
    #: Email columns whose values, when all are strings up to this length that look like
    #: addresses, are stored as given (checked for the whole column at once).
    fast_email: dict[str, int] = field(default_factory=dict)

    def handlers(self, op: str) -> dict[str, _Handler]:
        """Per column: (kind, field name, converter, blocked for op, is reference, is boolean)."""
        found = self._handlers.get(op)
        if found is None:
            found = {}
            for key, col in self.columns.items():
                fdef = col.fdef
                if col.kind == _ID or fdef is None:
                    found[key] = (_ID, "Id", None, False, False, False, col)
                    continue
                if op == "insert":
                    blocked = not fdef.createable
                elif op == "update":
                    blocked = not fdef.updateable
                else:
                    blocked = not (fdef.createable or fdef.updateable)
                convert = col.target_convert if col.kind == _REL else col.convert
                found[key] = (
                    col.kind, fdef.name, convert, blocked, fdef.type == "reference",
                    fdef.type == "boolean", col,
                )  # fmt: skip
            self._handlers[op] = found
        return found


class _Row:
    """One input row being saved: parsed values, pending lookups, and its outcome.

    A plain slotted class: a batch creates one per input row, so construction cost matters.
    """

    __slots__ = ("created", "error", "existing", "index", "record_id", "refs", "rels", "values")

    def __init__(self, index: int) -> None:
        self.index = index
        self.record_id: str | None = None
        self.values: dict[str, Any] = {}
        self.refs: list[tuple[FieldDef, str]] = []
        self.rels: list[tuple[_Column, Any]] = []
        self.error: RecordError | None = None
        self.created = False
        self.existing: dict[str, Any] | None = None

    def fail(self, code: str, message: str, fields: Sequence[str] = ()) -> None:
        if self.error is None:
            self.error = RecordError(code, message, list(fields))


def _duplicate_message(field_name: str, record_id: str) -> str:
    """Salesforce's DUPLICATE_VALUE message for a unique field, naming the record it repeats."""
    text = f"duplicate value found: {field_name} duplicates value on record with id: {record_id}"
    return text.rstrip()


_ID_CACHE: dict[str, str | None] = {}


def _checked_id(value: str) -> str | None:
    """``to18(value)`` when ``value`` is a well-formed id, else None; memoised, as batches
    repeat the same parent ids many times."""
    try:
        return _ID_CACHE[value]
    except KeyError:
        pass
    result = to18(value) if is_valid_id(value) else None
    if len(_ID_CACHE) > 200_000:
        _ID_CACHE.clear()
    _ID_CACHE[value] = result
    return result


def _valid_id(value: str) -> bool:
    return _checked_id(value) is not None


def _to18(value: str) -> str:
    checked = _checked_id(value)
    assert checked is not None
    return checked


_BLOCK_SUFFIX: dict[str, str] = {}
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def _block_char(block: str) -> str:
    char = _BLOCK_SUFFIX.get(block)
    if char is None:
        bits = sum(1 << i for i, ch in enumerate(block) if "A" <= ch <= "Z")
        char = _BLOCK_SUFFIX[block] = _SUFFIX_CHARS[bits]
    return char


_LOW2 = [encode_base62(n, 2) for n in range(62 * 62)]
#: The upper-case bits the low two counter digits add to the last block's check character:
#: they are characters 3 and 4 of that block.
_LOW2_BITS = [
    sum(1 << (3 + i) for i, ch in enumerate(low) if "A" <= ch <= "Z") for low in _LOW2
]


def _fast_ids(key_prefix: str, numbers: range, pod: str = "5g") -> list[str]:
    """``[make_id(key_prefix, n) for n in numbers]`` without recomputing shared parts.

    Numbers sharing the counter's high eight base-62 digits share everything but the low two
    digits, which come from a table along with their share of the last check character.
    """
    out: list[str] = []
    head = key_prefix + pod
    head_char = _block_char(head)
    low2, low2_bits, chars = _LOW2, _LOW2_BITS, _SUFFIX_CHARS
    if not numbers:
        return out
    if numbers.step != 1:
        return [make_id(key_prefix, n, pod) for n in numbers]
    first_high, last_high = numbers[0] // 3844, numbers[-1] // 3844
    for high_n in range(first_high, last_high + 1):
        low_start = max(numbers[0], high_n * 3844) - high_n * 3844
        low_stop = min(numbers[-1] + 1, (high_n + 1) * 3844) - high_n * 3844
        high = encode_base62(high_n, 8)
        prefix = head + high
        middle = head_char + _block_char(high[:5])
        tail = high[5:]
        tail_bits = sum(1 << i for i, ch in enumerate(tail) if "A" <= ch <= "Z")
        out.extend(
            [
                prefix + low2[low_n] + middle + chars[tail_bits | low2_bits[low_n]]
                for low_n in range(low_start, low_stop)
            ]
        )
    return out


#: Value types that hold no text, so no NUL character either.
_TEXTLESS_TYPES = frozenset((int, float, bool, Decimal, type(None)))


def _holds_nul(values: Sequence[Any]) -> bool:
    """Whether any text (or bytes) value of a column holds a NUL character.

    A column of strings (and nulls) is checked in one joined pass, a column of numbers with
    one pass over the value types; anything else value by value.
    """
    try:
        return "\x00" in "".join(values)  # a column of strings, the common case
    except TypeError:
        pass
    try:
        return "\x00" in "".join(filter(None, values))
    except TypeError:
        pass
    if _TEXTLESS_TYPES.issuperset(map(type, values)):
        return False
    for value in values:
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, (bytes, bytearray)) and b"\x00" in value:
            return True
    return False


def _all_emails(column: list[str]) -> bool:
    """``all(map(_EMAIL.match, column))`` for a column of strings, in one regex pass over the
    column joined by line feeds when no value holds one (a value ending in a line feed, which
    ``$`` lets through, is checked value by value)."""
    joined = "\n".join(column) + "\n"
    if joined.count("\n") == len(column):
        return _EMAIL_LINES.fullmatch(joined) is not None
    return all(map(_EMAIL.match, column))


def _sql_literal(value: Any) -> str | None:
    """``value`` as an SQL literal that stores exactly what binding it would, or None when it
    is of a kind better bound (floats, bytes, text with NUL)."""
    if value is None:
        return "NULL"
    if type(value) is bool:
        return "1" if value else "0"
    if type(value) is int:
        return str(value)
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _chunks(items: Sequence[Any], size: int = _SQL_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class QueryCursor:
    """Rows of a compiled query, fetched from SQLite in chunks as the caller iterates.

    The org's lock is held only while a chunk is fetched, so a long download never blocks writers.
    """

    def __init__(
        self,
        org: Org,
        cursor: sqlite3.Cursor,
        columns: list[str],
        field_types: list[str],
        object_name: str,
    ) -> None:
        self._org = org
        self._cursor = cursor
        self.columns = columns
        self.field_types = field_types
        self.object = object_name

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        while True:
            with self._org._lock:
                chunk = self._cursor.fetchmany(_FETCH_CHUNK)
            if not chunk:
                self.close()
                return
            yield from chunk

    def close(self) -> None:
        """Release the SQLite statement (iteration to the end does this itself)."""
        with self._org._lock:
            self._cursor.close()


# ------------------------------------------------------------------------------------------------
# The org
# ------------------------------------------------------------------------------------------------


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Org:
    """One emulated org: its catalog and a SQLite database holding every record.

    Args:
        db_path: SQLite file to use (WAL mode); None keeps the org in memory.
        catalog: the object definitions; a fresh :func:`standard_catalog` by default.
        clock: returns the current time; tests inject a fixed or stepping clock so system
            timestamps are deterministic.
        username: the org's user, who creates and owns every record written.
    """

    def __init__(
        self,
        db_path: str | None = None,
        catalog: Catalog | None = None,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        username: str = "admin@emulator.example.com",
    ) -> None:
        self.catalog = catalog if catalog is not None else standard_catalog()
        self.db_path = db_path
        self.clock = clock or _utc_now
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            db_path or ":memory:", check_same_thread=False, isolation_level=None
        )
        if db_path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._sequences: dict[str, int] = {}
        self._plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}
        self._columns: dict[str, set[str]] = {}
        self._text_nul = False
        self._max_params = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.org_id = make_id("00D", 1)
        self.user_id = make_id("005", 1)
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS _sfbulk_sequence (name TEXT PRIMARY KEY, value INTEGER)"
            )
            self.sync_schema()
            if db_path:
                self._text_nul = self._stored_text_holds_nul()
            self._ensure_org_rows(username)

    # --- schema ----------------------------------------------------------------------------
    def sync_schema(self) -> None:
        """Create the table of every catalog object, and any column a new field needs.

        Call after adding objects or fields to the catalog (``add_object``/``add_field`` do).
        Every table also has ``IsDeleted``, even for objects whose describe lacks it, so the
        SOQL engine can always filter soft-deleted rows.
        """
        with self._lock:
            self._plans.clear()
            for obj in self.catalog:
                self._sync_table(obj)

    @property
    def text_may_hold_nul(self) -> bool:
        """Whether some stored value may hold a NUL character.

        Set (under the org's lock, before the write commits) by every write whose values hold
        one, and never cleared: the Bulk query CSV printer in SQL checks each text cell for NUL
        only when it is set (``jobs.spool_csv_query``). A database file opened with data is
        scanned once.
        """
        return self._text_nul

    def _note_values(self, columns: Iterable[Sequence[Any]]) -> None:
        """Set :attr:`text_may_hold_nul` if any of these columns of values to store holds NUL
        (call inside the lock, before the write commits)."""
        if not self._text_nul and any(map(_holds_nul, columns)):
            self._text_nul = True

    def _stored_text_holds_nul(self) -> bool:
        """Scan every column of every object table for a value holding NUL (a reopened file)."""
        for obj in self.catalog:
            names = self._columns.get(obj.name) or ()
            for first in range(0, len(names), _SQL_CHUNK // 2):
                group = sorted(names)[first : first + _SQL_CHUNK // 2]
                test = " OR ".join(f"instr({_quote(name)}, char(0))" for name in group)
                found = self._conn.execute(
                    f"SELECT 1 FROM {_quote(obj.name)} WHERE {test} LIMIT 1"
                ).fetchone()
                if found:
                    return True
        return False

    def _sync_table(self, obj: SObjectDef) -> None:
        existing = self._columns.get(obj.name)
        if existing is None:
            rows = self._conn.execute(f"PRAGMA table_info({_quote(obj.name)})").fetchall()
            existing = {row[1] for row in rows}
        wanted = [(f.name, f.sql_type) for f in obj.column_fields() if f.name != "Id"]
        if "IsDeleted" not in {name for name, _ in wanted}:
            wanted.append(("IsDeleted", "INTEGER"))
        if not existing:
            cols = ", ".join(
                [f"{_quote('Id')} TEXT PRIMARY KEY"]
                + [f"{_quote(name)} {sql}" for name, sql in wanted]
            )
            self._conn.execute(f"CREATE TABLE {_quote(obj.name)} ({cols})")
            existing = {"Id", *(name for name, _ in wanted)}
        else:
            for name, sql in wanted:
                if name not in existing:
                    self._conn.execute(
                        f"ALTER TABLE {_quote(obj.name)} ADD COLUMN {_quote(name)} {sql}"
                    )
                    existing.add(name)
        # External ids and unique fields are indexed: upserts and uniqueness checks look them up
        # on every save. Other idLookup fields (Email, Name...) are not: their index would slow
        # every insert for the rare `ReportsTo.Email` column, which a table scan serves.
        for fdef in obj.fields.values():
            if fdef.name != "Id" and (fdef.external_id or fdef.unique):
                if fdef.is_compound or fdef.sql_type != "TEXT":
                    continue
                collate = "" if fdef.case_sensitive else " COLLATE NOCASE"
                self._conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {_quote('ix_' + obj.name + '_' + fdef.name)} "
                    f"ON {_quote(obj.name)} ({_quote(fdef.name)}{collate})"
                )
        self._columns[obj.name] = existing

    def add_object(self, obj: SObjectDef) -> SObjectDef:
        """Add (or replace) an object in the catalog and create its table."""
        with self._lock:
            self.catalog.add(obj)
            self.sync_schema()
        return obj

    def add_field(self, object_name: str, fdef: FieldDef) -> FieldDef:
        """Add a field to an object and its column to the table."""
        with self._lock:
            obj = self._object(object_name)
            obj.add_field(fdef)
            self.catalog.relink()
            self.sync_schema()
        return fdef

    def _object(self, name: str) -> SObjectDef:
        obj = self.catalog.get(name)
        if obj is None:
            raise BatchError(f"InvalidBatch : Unable to find object: {name}")
        return obj

    def _ensure_org_rows(self, username: str) -> None:
        if self.count("Organization", include_deleted=True) == 0:
            self.insert_raw(
                "Organization",
                [{"Id": self.org_id, "Name": "Emulated Org", "OrganizationType":
                  "Developer Edition", "InstanceName": "EMU1", "IsSandbox": 0,
                  "DefaultLocaleSidKey": "en_US", "LanguageLocaleKey": "en_US",
                  "TimeZoneSidKey": "GMT"}],
            )  # fmt: skip
        if self.count("User", include_deleted=True) == 0:
            self.insert_raw(
                "User",
                [{"Id": self.user_id, "Username": username, "LastName": "Admin",
                  "FirstName": "Emulator", "Name": "Emulator Admin", "Email": username,
                  "Alias": "admin", "CommunityNickname": "admin", "IsActive": 1,
                  "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US",
                  "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
                  "UserType": "Standard"}],
            )  # fmt: skip

    @property
    def username(self) -> str:
        """The org user's Username."""
        with self._lock:
            row = self._conn.execute(
                'SELECT "Username" FROM "User" WHERE "Id" = ?', (self.user_id,)
            ).fetchone()
        return str(row[0]) if row else ""

    # --- time and sequences -------------------------------------------------------------------
    def now(self) -> str:
        """The clock's current time in storage form (``YYYY-MM-DDTHH:MM:SS.sssZ``)."""
        return format_datetime(self.clock())

    def _next_numbers(self, name: str, count: int, floor: int = 0) -> range:
        """Reserve ``count`` consecutive numbers of sequence ``name`` (call inside the lock)."""
        current = self._sequences.get(name)
        if current is None:
            row = self._conn.execute(
                "SELECT value FROM _sfbulk_sequence WHERE name = ?", (name,)
            ).fetchone()
            current = row[0] if row else 0
        current = max(current, floor)
        self._sequences[name] = current + count
        self._conn.execute(
            "INSERT INTO _sfbulk_sequence(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (name, current + count),
        )
        return range(current + 1, current + count + 1)

    def new_ids(self, object_name: str, count: int) -> list[str]:
        """Reserve ``count`` fresh ids of an object, in creation order."""
        obj = self._object(object_name)
        if not obj.key_prefix:
            raise BatchError(f"InvalidBatch : Entity '{obj.name}' is not supported for creation")
        with self._lock:
            return [make_id(obj.key_prefix, n) for n in self._next_numbers(obj.key_prefix, count)]

    def _auto_numbers(self, obj: SObjectDef, fdef: FieldDef, count: int) -> list[str]:
        pattern = fdef.auto_number_format or "{0}"
        today = self.clock().date()
        return [
            _format_auto_number(pattern, n, today)
            for n in self._next_numbers(f"{obj.name}.{fdef.name}", count)
        ]

    # --- raw access (seeds, internal rows) ----------------------------------------------------
    def insert_raw(self, object_name: str, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Insert already-valid stored values directly, bypassing per-record checks.

        For seeding large demo orgs: ids, system fields (unless given), defaults, auto numbers
        and derived fields are still filled in, but values are neither parsed nor validated,
        so they must already be in storage form. Returns the new ids in order.
        """
        if not rows:
            return []
        obj = self._object(object_name)
        with self._lock:
            now = self.now()
            keys: dict[str, None] = dict.fromkeys(rows[0])
            known = keys.keys()
            for row in rows:
                if not known >= row.keys():
                    keys.update(dict.fromkeys(row))
            columns = self._insert_columns(obj, set(keys))
            position = {name: i for i, name in enumerate(columns.names)}
            count = len(rows)
            system = self._system_values(obj, now)
            given: dict[str, str] = {}
            for key in keys:
                fdef = obj.field(key)
                given[fdef.name if fdef is not None else key] = key
            column_values: list[Any] = []
            # Stored values come from the rows or are one value per column (ids, auto numbers
            # and derived values hold no NUL of their own): only those are checked for NUL.
            checked: list[Sequence[Any]] = []
            for name in columns.names:
                fallback = columns.defaults.get(name, system.get(name))
                if name in given:
                    key = given[name]
                    if fallback is None:
                        column_values.append([row.get(key) for row in rows])
                    else:
                        column_values.append(
                            [fallback if (v := row.get(key)) is None else v for row in rows]
                        )
                    checked.append(column_values[-1])
                else:
                    column_values.append([fallback] * count)
                    checked.append((fallback,))
            ids = column_values[position["Id"]]
            missing = [i for i, value in enumerate(ids) if not value]
            if missing:
                if not obj.key_prefix:
                    raise BatchError(f"InvalidBatch : Entity '{obj.name}' has no key prefix")
                fresh = _fast_ids(obj.key_prefix, self._next_numbers(obj.key_prefix, len(missing)))
                if len(missing) == count:
                    ids = column_values[position["Id"]] = fresh
                else:
                    for i, new_id in zip(missing, fresh, strict=True):
                        ids[i] = new_id
            for fdef in obj.fields.values():
                if fdef.auto_number and fdef.name in position and fdef.name not in given:
                    column_values[position[fdef.name]] = self._auto_numbers(obj, fdef, count)
            self._derive_columns(obj, position, column_values)
            records = list(zip(*column_values, strict=True))
            out_ids = list(ids)
            self._note_values(checked)
            self._conn.execute("BEGIN")
            try:
                self._insert_many(
                    f"INSERT INTO {_quote(obj.name)} ({', '.join(map(_quote, columns.names))}) "
                    "VALUES ",
                    f"({', '.join('?' * len(columns.names))})",
                    records,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._sequences.clear()
                raise
        return out_ids

    @dataclass
    class _InsertColumns:
        names: list[str]
        sql: str
        defaults: dict[str, Any]
        given: set[str]

    def _insert_columns(self, obj: SObjectDef, keys: set[str]) -> Org._InsertColumns:
        names = ["Id", "IsDeleted"]
        defaults: dict[str, Any] = {"IsDeleted": 0}
        given = set()
        for key in keys:
            known = obj.field(key)
            given.add(known.name if known is not None else key)
        for fdef in obj.column_fields():
            if fdef.name in ("Id", "IsDeleted"):
                continue
            if (
                fdef.name in given
                or fdef.defaulted_on_create
                or fdef.auto_number
                or fdef.type == "boolean"
                or fdef.name in _SYSTEM_FIELDS
                or fdef.name in _DERIVED_FIELDS
            ):
                names.append(fdef.name)
                if fdef.type == "boolean":
                    defaults[fdef.name] = int(bool(fdef.default_value))
                elif fdef.default_value is not None and fdef.defaulted_on_create:
                    defaults[fdef.name] = fdef.default_value
        cols = ", ".join(_quote(n) for n in names)
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {_quote(obj.name)} ({cols}) VALUES ({marks})"
        return Org._InsertColumns(names, sql, defaults, given)

    def _system_values(self, obj: SObjectDef, now: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            if name in obj.fields:
                values[name] = now
        for name in ("CreatedById", "LastModifiedById", "OwnerId"):
            if name in obj.fields:
                values[name] = self.user_id
        return values

    def _derive(self, obj: SObjectDef, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Fill fields Salesforce computes from others: person Name, Attachment BodyLength."""
        name = obj.fields.get("Name")
        if name is not None and not name.createable and "LastName" in obj.fields:

            def part(key: str) -> Any:
                if key in record:
                    return record[key]
                return old.get(key) if old else None

            if old is None or any(k in record for k in ("FirstName", "LastName")):
                pieces = [part("FirstName"), part("LastName")]
                record["Name"] = " ".join(str(p) for p in pieces if p) or None
        if "BodyLength" in obj.fields and "Body" in record:
            body = record["Body"]
            record["BodyLength"] = len(body) if body is not None else None

    # --- reads ------------------------------------------------------------------------------
    def count(self, object_name: str, include_deleted: bool = False) -> int:
        """How many rows the object holds (soft-deleted ones only when asked)."""
        obj = self._object(object_name)
        where = "" if include_deleted else ' WHERE "IsDeleted" = 0'
        with self._lock:
            row = self._conn.execute(f"SELECT COUNT(*) FROM {_quote(obj.name)}{where}").fetchone()
        return int(row[0])

    def retrieve(
        self, object_name: str, record_id: str, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        """One row as a dict of stored values (None when absent or soft-deleted)."""
        obj = self._object(object_name)
        if not is_valid_id(record_id):
            return None
        with self._lock:
            cursor = self._conn.execute(
                f'SELECT * FROM {_quote(obj.name)} WHERE "Id" = ?', (to18(record_id),)
            )
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        if row is None:
            return None
        record = dict(zip(names, row, strict=True))
        if record.get("IsDeleted") and not include_deleted:
            return None
        return record

    def execute_sql(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read-only statement under the org's lock and return all its rows (tests)."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def iter_sql(
        self, sql: str, params: Sequence[Any] = (), *, chunk_rows: int = _FETCH_CHUNK
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Run one read-only statement and yield its rows ``chunk_rows`` at a time.

        For result sets too large to hold (the Bulk query spoolers build whole CSV lines in
        SQL): the org's lock is held only while a chunk is fetched, as :class:`QueryCursor`
        does, so a long read never blocks writers for its whole length.
        """
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute(sql, params)
        try:
            while True:
                with self._lock:
                    chunk = cursor.fetchmany(chunk_rows)
                if not chunk:
                    return
                yield chunk
        finally:
            with self._lock:
                cursor.close()

    def query(
        self,
        soql: str,
        *,
        include_deleted: bool = False,
        expected_object: str | None = None,
    ) -> QueryCursor:
        """Run a SOQL query (compiled by :mod:`sfbulk.emulator.soql`) and stream its rows.

        ``expected_object`` is the object a Bulk job was created for: a query on another
        object fails as Salesforce fails it. Relative date literals use the org's clock.
        Raises ``soql.SoqlError``.
        """
        from sfbulk.emulator import soql as engine

        select = engine.parse(soql)
        compiled = engine.compile_select(
            select,
            self.catalog,
            include_deleted,
            expected_object=expected_object,
            now=self.clock(),
        )
        sql, params, columns, field_types = compiled
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute(sql, params)
        return QueryCursor(self, cursor, list(columns), list(field_types), select.object_name)

    def id_chunks(
        self, object_name: str, chunk_size: int, start_row: str | None = None
    ) -> list[tuple[str, str | None]]:
        """PK-chunking boundaries: ``Id >= lo AND Id < hi`` ranges of ``chunk_size`` rows each.

        Soft-deleted rows count toward a chunk's size (they are in the table), as in Salesforce.
        The last range is open (``hi`` None). ``start_row`` (15 or 18 characters) is the first
        chunk's lower bound.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk size must be positive: {chunk_size}")
        obj = self._object(object_name)
        lo = to18(start_row) if start_row else make_id(obj.key_prefix or "000", 0)
        table = _quote(obj.name)
        bounds = [lo]
        with self._lock:
            while True:
                row = self._conn.execute(
                    f'SELECT "Id" FROM {table} WHERE "Id" >= ? ORDER BY "Id" LIMIT 1 OFFSET ?',
                    (bounds[-1], chunk_size),
                ).fetchone()
                if row is None:
                    break
                bounds.append(row[0])
        return [
            (bound, bounds[i + 1] if i + 1 < len(bounds) else None)
            for i, bound in enumerate(bounds)
        ]

    # --- writes -----------------------------------------------------------------------------
    def write(
        self,
        object_name: str,
        operation: str,
        rows: Sequence[dict[str, Any]],
        *,
        external_id_field: str | None = None,
    ) -> list[RecordResult]:
        """Save a batch as Salesforce would and return one result per row, in input order.

        ``rows`` carry column names as sent (fields, ``Rel.ExtId__c``, ``Type:Rel.Field``)
        in any letter case. A missing key leaves a field unchanged, ``None`` sets it to null.
        Raises :class:`BatchError` for whole-batch problems (unknown object or column, an
        upsert key that is not an external id).
        """
        op = _OPERATION_BY_LOWER.get(operation.lower())
        if op is None:
            raise BatchError(f"InvalidJob : Invalid operation: {operation}")
        obj = self._object(object_name)
        if op in ("delete", "hardDelete", "undelete"):
            return self._delete_like(obj, op, rows)
        ext_field = None
        if op == "upsert":
            ext_field = self._upsert_key(obj, external_id_field)
        elif op == "insert" and not obj.createable:
            raise BatchError(f"InvalidBatch : Entity '{obj.name}' is not createable")
        elif op == "update" and not obj.updateable:
            raise BatchError(f"InvalidBatch : Entity '{obj.name}' is not updateable")
        order: dict[str, None] = dict.fromkeys(rows[0]) if rows else {}
        known = order.keys()
        for row in rows:
            if not known >= row.keys():
                for key in row:
                    order.setdefault(key)
        plan = self._plan(obj, op, tuple(order))
        # Every row's keys are among ``order``: rows of its length all have the same keys.
        if op == "insert" and rows and set(map(len, rows)) == {len(order)}:
            clean = self._clean_create_columns(
                plan, {key: list(map(operator.itemgetter(key), rows)) for key in order}
            )
            if clean is not None:
                return self._create_clean(obj, clean, len(rows))
        work = self._parse_rows(plan, op, rows)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._save(plan, op, work, ext_field)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._sequences.clear()
                raise
        return [
            RecordResult(w.record_id, False, False, [w.error])
            if w.error is not None
            else RecordResult(w.record_id, True, w.created, [])
            for w in work
        ]

    def write_rows(
        self,
        object_name: str,
        operation: str,
        header: Sequence[str],
        records: Sequence[Sequence[Any]],
        *,
        external_id_field: str | None = None,
    ) -> list[RecordResult]:
        """:meth:`write` for rows given as values in ``header`` order, each as long as the header
        (a CSV batch whose every cell is sent; CSV's empty and ``#N/A`` cells are the caller's
        to turn into left-out keys and None first): the same checks, results and stored values.

        A clean insert is taken a column at a time without building a dict per row; anything
        else is handed to :meth:`write` as dicts.
        """
        if (
            records
            and operation.lower() == "insert"
            and len({name.lower() for name in header}) == len(header)
            and set(map(len, records)) == {len(header)}
        ):
            obj = self._object(object_name)
            if obj.createable:
                plan = self._plan(obj, "insert", tuple(header))
                values = map(list, zip(*records, strict=True))
                clean = self._clean_create_columns(plan, dict(zip(header, values, strict=True)))
                if clean is not None:
                    return self._create_clean(obj, clean, len(records))
        return self.write(
            object_name, operation, list(map(dict, map(zip, repeat(header), records))),
            external_id_field=external_id_field,
        )

    def _clean_create_columns(
        self, plan: _Plan, by_key: dict[str, list[Any]]
    ) -> dict[str, list[Any]] | None:
        """An insert batch's values by field name when every row of it would be saved as sent,
        else None (the batch then takes the row-by-row path). ``by_key`` holds every row's
        value of each column as sent (every row has every column).

        That is the common load: every row has the same columns, each a plain text or email
        field the user may create, every value a non-empty string within the field's length
        (an address for email), every required field among them, none unique. The checks are
        those :meth:`_parse_rows` and :meth:`_save` would make, done a whole column at a time,
        so the batch is stored exactly as the general path would store it.
        """
        obj = plan.obj
        if not by_key or not obj.key_prefix:
            return None
        handlers = plan.handlers("insert")
        columns: dict[str, list[Any]] = {}
        for key, column in by_key.items():
            kind, name, _, blocked, is_ref, is_bool, _ = handlers[key]
            email = plan.fast_email.get(key, 0)
            limit = plan.fast_text.get(key, 0) or email
            if kind != _FIELD or blocked or is_ref or is_bool or not limit or name in columns:
                return None
            if set(map(type, column)) != {str}:
                return None
            lengths = set(map(len, column))
            if 0 in lengths or max(lengths) > limit:
                return None
            if email and not _all_emails(column):
                return None
            columns[name] = column
        for fdef in _required_fields(obj):
            if fdef.name not in columns and not fdef.defaulted_on_create:
                return None
        for fdef in obj.fields.values():
            if fdef.unique and fdef.name in columns:
                return None
        return columns

    def _create_clean(
        self, obj: SObjectDef, columns: dict[str, list[Any]], count: int
    ) -> list[RecordResult]:
        """Insert a batch :meth:`_clean_create_columns` passed: every row is created."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                ids = self._create_rows(obj, columns, count)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._sequences.clear()
                raise
        return list(map(RecordResult, ids, repeat(True), repeat(True), map(list, repeat(()))))

    def _upsert_key(self, obj: SObjectDef, name: str | None) -> FieldDef:
        if not name:
            raise BatchError("InvalidJob : External ID was blank for upsert")
        fdef = obj.field(name)
        if fdef is None or not (fdef.name == "Id" or fdef.external_id or fdef.id_lookup):
            raise BatchError(
                f"InvalidJob : Field name provided, {name} does not match an External ID, "
                f"Salesforce Id, or indexed field for {obj.name}"
            )
        return fdef

    def _plan(self, obj: SObjectDef, op: str, keys: tuple[str, ...]) -> _Plan:
        cache_key = (obj.name, op, keys)
        plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        columns: dict[str, _Column] = {}
        id_key = None
        for col, key in enumerate(keys):
            if key.lower() == "id":
                columns[key] = _Column(key, "id", obj.fields.get("Id"))
                id_key = key
                continue
            m = _REL_COLUMN.match(key) if "." in key else None
            if m is not None:
                columns[key] = self._relationship_column(obj, key, m)
                continue
            fdef = obj.field(key)
            if fdef is None or fdef.is_compound:
                raise BatchError(f"InvalidBatch : Field name not found : {key}")
            columns[key] = _Column(key, "field", fdef, make_converter(fdef, col))
        plan = _Plan(obj, columns, id_key)
        for key, column in columns.items():
            fdef = column.fdef
            if (
                column.kind == _FIELD
                and fdef is not None
                and fdef.type in _PLAIN_TEXT_TYPES
                and not (fdef.restricted_picklist and fdef.picklist_values)
                and fdef.length
            ):
                plan.fast_text[key] = fdef.length
            elif (
                column.kind == _FIELD
                and fdef is not None
                and fdef.type == "email"
                and not fdef.restricted_picklist
                and fdef.length
            ):
                plan.fast_email[key] = fdef.length
        self._plans[cache_key] = plan
        return plan

    def _relationship_column(self, obj: SObjectDef, key: str, m: re.Match[str]) -> _Column:
        type_name, rel_name, field_name = m.groups()
        ref = obj.relationship(rel_name)
        if ref is None or ref.type != "reference":
            raise BatchError(f"InvalidBatch : Field name not found : {key}")
        if ref.polymorphic and not type_name:
            raise BatchError(
                f"InvalidBatch : Polymorphic relationship {rel_name} needs an entity type, "
                f"as in {ref.reference_to[0]}:{key}"
            )
        if type_name and not ref.polymorphic:
            raise BatchError(
                f"InvalidBatch : Relationship {rel_name} is not polymorphic; "
                f"remove the entity type from {key}"
            )
        target_name = type_name or ref.reference_to[0]
        if target_name.lower() not in {t.lower() for t in ref.reference_to}:
            raise BatchError(
                f"InvalidBatch : {target_name} is not a valid entity type for {rel_name} in {key}"
            )
        target = self.catalog.get(target_name)
        if target is None:
            raise BatchError(f"InvalidBatch : Field name not found : {key}")
        tfield = target.field(field_name)
        if tfield is None:
            raise BatchError(f"InvalidBatch : Field name not found : {key}")
        if not (tfield.name == "Id" or tfield.external_id or tfield.id_lookup):
            raise BatchError(
                f"InvalidBatch : Field {tfield.name} on {target.name} is not an External ID or "
                f"indexed field and cannot be used in {key}"
            )
        return _Column(key, "rel", ref, None, target, tfield, make_converter(tfield))

    def _parse_rows(self, plan: _Plan, op: str, rows: Sequence[dict[str, Any]]) -> list[_Row]:
        """Parse every row's values in Python (no database access), one column at a time.

        Working column by column keeps the per-value cost to a dictionary lookup and, for the
        common clean values (short text, ISO dates, ids), an inline check without a call. A
        row keeps the first error of its columns in header order.
        """
        work = [_Row(i) for i in range(len(rows))]
        forbidden: dict[int, list[str]] = {}
        missing = _MISSING
        for key, (kind, name, convert, blocked, is_ref, is_bool, col) in plan.handlers(op).items():
            column = [row.get(key, missing) for row in rows]
            if kind == _ID:
                for w, value in zip(work, column, strict=True):
                    if value is missing or value is None or value == "":
                        continue
                    checked = _checked_id(value) if isinstance(value, str) else None
                    if checked is None:
                        w.fail("MALFORMED_ID", f"malformed id {value}")
                    else:
                        w.record_id = checked
                continue
            if blocked:
                for w, value in zip(work, column, strict=True):
                    if value is not missing:
                        forbidden.setdefault(w.index, []).append(name)
                continue
            assert convert is not None
            fdef = col.fdef
            assert fdef is not None
            pending: Iterable[tuple[_Row, Any]] = zip(work, column, strict=True)
            fast = plan.fast_text.get(key, 0)
            email = plan.fast_email.get(key, 0)
            if (fast or email) and missing not in column and set(map(type, column)) == {str}:
                lengths = set(map(len, column))
                if (
                    0 not in lengths
                    and max(lengths) <= (fast or email)
                    and (not email or all(map(_EMAIL.match, column)))
                ):
                    # Every value is a clean string: checked in bulk, assigned as is.
                    for w, value in zip(work, column, strict=True):
                        w.values[name] = value
                    continue
            if fast or (kind == _FIELD and (is_ref or fdef.type == "date")):
                slow: list[tuple[_Row, Any]] = []
                if fast:
                    for w, value in pending:
                        if value.__class__ is str and 0 < len(value) <= fast:
                            w.values[name] = value
                        elif value is not missing:
                            slow.append((w, value))
                elif is_ref:
                    cache = _ID_CACHE
                    for w, value in pending:
                        checked = cache.get(value) if value.__class__ is str else None
                        if checked is not None:
                            w.values[name] = checked
                            w.refs.append((fdef, checked))
                        elif value is not missing:
                            slow.append((w, value))
                else:
                    for w, value in pending:
                        if value.__class__ is str and len(value) == 10:
                            try:
                                w.values[name] = dt.date.fromisoformat(value).isoformat()
                                continue
                            except ValueError:
                                pass
                        if value is not missing:
                            slow.append((w, value))
                pending = slow
            null = 0 if is_bool else None
            for w, value in pending:
                if value is missing:
                    continue
                values = w.values
                if value is None:
                    values[name] = null
                    continue
                if kind == _REL:
                    values[name] = None
                    if value == "":
                        continue
                try:
                    stored = convert(value)
                except _RowError as exc:
                    w.fail(exc.error.status_code, exc.error.message, exc.error.fields)
                    continue
                if kind == _REL:
                    w.rels.append((col, stored))
                    continue
                values[name] = stored
                if is_ref and stored is not None:
                    w.refs.append((fdef, stored))
        for index, names in forbidden.items():
            w = work[index]
            if w.error is None:
                w.error = RecordError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {', '.join(names)}. {_PERMISSION_HINT}",
                    names,
                )
        for w in work:
            if w.error is not None:
                continue
            if op == "insert" and w.record_id:
                w.fail(
                    "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"]
                )
            elif op == "update" and w.record_id is None:
                w.fail("MISSING_ARGUMENT", "Id not specified in an update call")
        return work

    # --- the database half of a write (inside the lock and the transaction) ---------------------
    def _save(self, plan: _Plan, op: str, work: list[_Row], ext: FieldDef | None) -> None:
        obj = plan.obj
        self._resolve_relationships(work)
        if op == "update":
            self._load_existing(obj, [w for w in work if w.error is None])
        elif op == "upsert":
            assert ext is not None
            self._match_upsert(obj, work, ext)
        pending = [w for w in work if w.error is None]
        creates = [w for w in pending if w.existing is None]
        updates = [w for w in pending if w.existing is not None]
        if op == "upsert":
            self._upsert_permissions(obj, creates, updates)
        self._check_required_batch(obj, creates, creating=True)
        self._check_required_batch(obj, updates, creating=False)
        self._check_references([w for w in pending if w.error is None])
        twins = self._check_unique(obj, [w for w in pending if w.error is None])
        creates = [w for w in creates if w.error is None]
        updates = [w for w in updates if w.error is None]
        if creates:
            self._apply_creates(obj, creates)
        if updates:
            self._apply_updates(obj, updates)
        for dup, first, name in twins:
            if first.error is None and first.record_id and dup.error is not None:
                # The row it repeats was saved earlier in this batch: name the id it got.
                dup.error.message = _duplicate_message(name, first.record_id)

    def _select_in(
        self,
        table: str,
        columns: str,
        key: str,
        values: Sequence[Any],
        nocase: bool = False,
        extra: str = "",
    ) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = []
        collate = " COLLATE NOCASE" if nocase else ""
        for chunk in _chunks(list(values)):
            marks = ", ".join("?" for _ in chunk)
            found += self._conn.execute(
                f"SELECT {columns} FROM {_quote(table)} "
                f"WHERE {_quote(key)}{collate} IN ({marks}){extra}",
                list(chunk),
            ).fetchall()
        return found

    def _resolve_relationships(self, work: list[_Row]) -> None:
        """Turn ``Rel.ExtId`` values into parent ids; rows whose parent is missing fail."""
        wanted: dict[tuple[str, str], set[Any]] = {}
        columns: dict[tuple[str, str], _Column] = {}
        for w in work:
            if w.error is None:
                for col, value in w.rels:
                    assert col.target is not None and col.target_field is not None
                    k = (col.target.name, col.target_field.name)
                    wanted.setdefault(k, set()).add(value)
                    columns[k] = col
        lookup: dict[tuple[str, str], dict[Any, list[str]]] = {}
        for (target, fname), values in wanted.items():
            tfield = columns[(target, fname)].target_field
            assert tfield is not None
            nocase = tfield.type not in ("id",) and not tfield.case_sensitive
            rows = self._select_in(
                target,
                f'"Id", {_quote(fname)}',
                fname,
                sorted(values, key=str),
                nocase,
                ' AND "IsDeleted" = 0',
            )
            table: dict[Any, list[str]] = {}
            for rid, value in rows:
                norm = value.lower() if nocase and isinstance(value, str) else value
                table.setdefault(norm, []).append(rid)
            lookup[(target, fname)] = table
        for w in work:
            if w.error is not None:
                continue
            for col, value in w.rels:
                assert col.target is not None and col.target_field is not None
                assert col.fdef is not None
                k = (col.target.name, col.target_field.name)
                tfield = col.target_field
                nocase = tfield.type != "id" and not tfield.case_sensitive
                norm = value.lower() if nocase and isinstance(value, str) else value
                matches = lookup[k].get(norm, [])
                if not matches:
                    w.fail(
                        "INVALID_FIELD",
                        f"Foreign key external ID: {value} not found for field {tfield.name} "
                        f"in entity {col.target.name}",
                    )
                    break
                if len(matches) > 1:
                    w.fail(
                        "DUPLICATE_EXTERNAL_ID",
                        f"Foreign key external ID: {value} matched more than one record for field "
                        f"{tfield.name} in entity {col.target.name}: [{', '.join(matches)}]",
                    )
                    break
                w.values[col.fdef.name] = matches[0]

    def _fetch_rows(self, obj: SObjectDef, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The rows with these ids: just what a save needs (id, deletion, derived-field inputs)."""
        out: dict[str, dict[str, Any]] = {}
        wanted = ["Id", "IsDeleted"] + [n for n in ("FirstName", "LastName") if n in obj.fields]
        select = ", ".join(_quote(n) for n in wanted)
        for chunk in _chunks(list(ids)):
            marks = ", ".join("?" for _ in chunk)
            cursor = self._conn.execute(
                f'SELECT {select} FROM {_quote(obj.name)} WHERE "Id" IN ({marks})', list(chunk)
            )
            names = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                record = dict(zip(names, row, strict=True))
                out[record["Id"]] = record
        return out

    def _load_existing(self, obj: SObjectDef, work: list[_Row]) -> None:
        rows = self._fetch_rows(obj, sorted({w.record_id for w in work if w.record_id}))
        for w in work:
            record = rows.get(w.record_id or "")
            if record is None:
                if w.record_id and w.record_id[:3] != obj.key_prefix:
                    w.fail("MALFORMED_ID", f"malformed id {w.record_id}", ["Id"])
                else:
                    w.fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
            elif record.get("IsDeleted"):
                w.fail("ENTITY_IS_DELETED", "entity is deleted")
            else:
                w.existing = record

    def _match_upsert(self, obj: SObjectDef, work: list[_Row], ext: FieldDef) -> None:
        if ext.name == "Id":
            with_id = [w for w in work if w.error is None and w.record_id]
            self._load_existing(obj, with_id)
            return
        keyed: dict[Any, list[_Row]] = {}
        nocase = not ext.case_sensitive
        for w in work:
            if w.error is not None:
                continue
            value = w.values.get(ext.name)
            if value is None:
                w.fail("MISSING_ARGUMENT", f"{ext.name} not specified", [ext.name])
                continue
            norm = value.lower() if nocase and isinstance(value, str) else value
            keyed.setdefault(norm, []).append(w)
        for rows in keyed.values():
            if len(rows) > 1:
                for w in rows:
                    w.fail(
                        "DUPLICATE_VALUE",
                        f"Duplicate external id specified: {w.values.get(ext.name)}",
                        [ext.name],
                    )
        candidates = [k for k, rows in keyed.items() if len(rows) == 1]
        found = self._select_in(
            obj.name,
            f'"Id", {_quote(ext.name)}',
            ext.name,
            candidates,
            nocase,
            ' AND "IsDeleted" = 0',
        )
        matches: dict[Any, list[str]] = {}
        for rid, value in found:
            norm = value.lower() if nocase and isinstance(value, str) else value
            matches.setdefault(norm, []).append(rid)
        existing_ids: list[str] = []
        for norm in candidates:
            (w,) = keyed[norm]
            ids = matches.get(norm, [])
            if len(ids) > 1:
                w.fail(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{ext.name}: more than one record found for external id field: "
                    f"[{', '.join(sorted(ids))}]",
                    [ext.name],
                )
            elif ids:
                w.record_id = ids[0]
                existing_ids.append(ids[0])
        rows_by_id = self._fetch_rows(obj, existing_ids)
        for norm in candidates:
            (w,) = keyed[norm]
            if w.error is None and w.record_id:
                w.existing = rows_by_id[w.record_id]

    def _upsert_permissions(
        self, obj: SObjectDef, creates: list[_Row], updates: list[_Row]
    ) -> None:
        for rows, attr in ((creates, "createable"), (updates, "updateable")):
            for w in rows:
                bad = [n for n in w.values if not getattr(obj.fields[n], attr)]
                if bad:
                    bad.sort(key=list(obj.fields).index)
                    w.fail(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {', '.join(bad)}. {_PERMISSION_HINT}",
                        bad,
                    )

    def _check_required_batch(self, obj: SObjectDef, rows: list[_Row], *, creating: bool) -> None:
        """:meth:`_check_required` for many rows, looking closer only at rows that may fail.

        A row creating a record passes when every required field holds a value; a row updating
        one passes when it nulls none of them. Only the others take the field-by-field path,
        which names the missing fields.
        """
        required = _required_fields(obj)
        if not required:
            return
        # A value looked up with this fallback is None only when the row sets the field to
        # null, or (for a field that must be given on create) when a create leaves it out.
        fallbacks = [
            None if creating and not f.defaulted_on_create else _MISSING for f in required
        ]
        names = [f.name for f in required]
        suspects = [
            w for w in rows if w.error is None and None in map(w.values.get, names, fallbacks)
        ]
        for w in suspects:
            self._check_required(obj, w, creating=creating)

    def _check_required(self, obj: SObjectDef, w: _Row, *, creating: bool) -> None:
        if w.error is not None:
            return
        missing: list[str] = []
        for fdef in _required_fields(obj):
            if creating:
                value = w.values.get(fdef.name)
                if value is None and not (fdef.defaulted_on_create and fdef.name not in w.values):
                    missing.append(fdef.name)
            elif fdef.name in w.values and w.values[fdef.name] is None:
                missing.append(fdef.name)
        if missing:
            w.fail(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )

    def _check_references(self, work: list[_Row]) -> None:
        """Every reference must name an existing, undeleted row of an object it may point at."""
        by_object: dict[str, set[str]] = {}
        prefix_map = {o.key_prefix: o for o in self.catalog if o.key_prefix}
        for w in work:
            for fdef, ref_id in w.refs:
                target = prefix_map.get(ref_id[:3])
                allowed = {t.lower() for t in fdef.reference_to}
                if target is None or target.name.lower() not in allowed:
                    w.fail(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"{fdef.label}: invalid cross reference id",
                        [fdef.name],
                    )
                    break
                by_object.setdefault(target.name, set()).add(ref_id)
        state: dict[str, int] = {}
        for name, ids in by_object.items():
            for rid, deleted in self._select_in(name, '"Id", "IsDeleted"', "Id", sorted(ids)):
                state[rid] = deleted
        for w in work:
            if w.error is not None:
                continue
            for fdef, ref_id in w.refs:
                if ref_id not in state:
                    w.fail(
                        "INVALID_CROSS_REFERENCE_KEY",
                        f"{fdef.label}: invalid cross reference id",
                        [fdef.name],
                    )
                    break
                if state[ref_id]:
                    w.fail("ENTITY_IS_DELETED", "entity is deleted", [fdef.name])
                    break

    def _check_unique(
        self, obj: SObjectDef, work: list[_Row]
    ) -> list[tuple[_Row, _Row, str]]:
        """Unique fields (external ids marked unique, Username...) may not repeat a value.

        Salesforce saves a batch's rows in order, so a row repeating an earlier row's value fails
        naming the record that row became. Rows to be created have no id yet: they come back as
        ``(duplicate, first, field)`` for the caller to name once the creates are applied.
        """
        twins: list[tuple[_Row, _Row, str]] = []
        for fdef in obj.fields.values():
            if not fdef.unique or fdef.is_compound:
                continue
            nocase = not fdef.case_sensitive
            seen: dict[Any, _Row] = {}
            candidates: list[_Row] = []
            repeats: dict[int, list[_Row]] = {}
            for w in work:
                value = w.values.get(fdef.name)
                if w.error is not None or value is None:
                    continue
                norm = value.lower() if nocase and isinstance(value, str) else value
                first = seen.get(norm)
                if first is not None:
                    w.fail(
                        "DUPLICATE_VALUE",
                        _duplicate_message(fdef.name, first.record_id or ""),
                        [fdef.name],
                    )
                    twins.append((w, first, fdef.name))
                    repeats.setdefault(first.index, []).append(w)
                    continue
                seen[norm] = w
                candidates.append(w)
            if not candidates:
                continue
            found = self._select_in(
                obj.name,
                f'"Id", {_quote(fdef.name)}',
                fdef.name,
                [w.values[fdef.name] for w in candidates],
                nocase,
                ' AND "IsDeleted" = 0',
            )
            owners: dict[Any, str] = {}
            for rid, value in found:
                owners[value.lower() if nocase and isinstance(value, str) else value] = rid
            for w in candidates:
                value = w.values[fdef.name]
                owner = owners.get(value.lower() if nocase and isinstance(value, str) else value)
                if owner is not None and owner != w.record_id:
                    w.fail("DUPLICATE_VALUE", _duplicate_message(fdef.name, owner), [fdef.name])
                    # Its repeats in this batch duplicate the same stored record.
                    for dup in repeats.get(w.index, ()):
                        dup.error = RecordError(
                            "DUPLICATE_VALUE", _duplicate_message(fdef.name, owner), [fdef.name]
                        )
        return twins

    def _apply_creates(self, obj: SObjectDef, creates: list[_Row]) -> None:
        if not obj.key_prefix:
            for w in creates:
                w.fail("INVALID_TYPE", f"Entity '{obj.name}' is not supported for creation")
            return
        given: set[str] = set().union(*[w.values for w in creates])
        ids = self._create_rows(
            obj, {name: [w.values.get(name) for w in creates] for name in given}, len(creates)
        )
        for w, new_id in zip(creates, ids, strict=True):
            w.record_id = new_id
            w.created = True

    def _create_rows(self, obj: SObjectDef, given: dict[str, list[Any]], count: int) -> list[str]:
        """Insert ``count`` new records from the given values by field name (None: not given,
        so the default or system value); returns their new ids in order."""
        prefix = obj.key_prefix
        assert prefix, f"{obj.name} has no key prefix"
        now = self.now()
        ids = _fast_ids(prefix, self._next_numbers(prefix, count))
        columns = self._insert_columns(obj, set(given))
        position = {name: i for i, name in enumerate(columns.names)}
        autos_by_name = [
            (f.name, self._auto_numbers(obj, f, count))
            for f in obj.fields.values()
            if f.auto_number and f.name in position
        ]
        # Assemble column by column and zip into rows: far cheaper than filling each row.
        defaults = columns.defaults
        system = self._system_values(obj, now)
        auto_columns = dict(autos_by_name)
        column_values: list[Any] = []
        # Columns holding one value for every row (system fields, defaults) go into the
        # statement as literals: fewer values to bind per row.
        constants: dict[int, tuple[str, list[Any]]] = {}
        # Only given values and the one value of a constant column can hold NUL: ids, auto
        # numbers and derived values (made of given ones) have none of their own.
        checked: list[Sequence[Any]] = list(given.values())
        for name in columns.names:
            if name == "Id":
                column_values.append(ids)
            elif name in auto_columns:
                column_values.append(auto_columns[name])
            elif name in given:
                fallback = defaults.get(name, system.get(name))
                values = given[name]
                if fallback is None:
                    column_values.append(values)
                else:
                    column_values.append([fallback if v is None else v for v in values])
            else:
                value = defaults[name] if name in defaults else system.get(name)
                column_values.append([value] * count)
                checked.append((value,))
                literal = _sql_literal(value)
                if literal is not None:
                    constants[len(column_values) - 1] = (literal, column_values[-1])
        self._derive_columns(obj, position, column_values)
        self._note_values(checked)
        marks: list[str] = []
        bound: list[list[Any]] = []
        for index, values in enumerate(column_values):
            constant = constants.get(index)
            if constant is not None and constant[1] is values:  # not replaced by a derivation
                marks.append(constant[0])
            else:
                marks.append("?")
                bound.append(values)
        head = f"INSERT INTO {_quote(obj.name)} ({', '.join(map(_quote, columns.names))}) VALUES "
        self._insert_many(head, f"({', '.join(marks)})", list(zip(*bound, strict=True)))
        return ids

    def _insert_many(self, head: str, row_sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run ``head`` + ``row_sql`` for every row, many rows to a statement.

        One multi-row INSERT per :data:`INSERT_ROWS_PER_STATEMENT` rows costs less than a step
        per row, and the GIL is given up once per statement rather than once per row (a
        writer handing it back and forth with busy threads waits each time).
        """
        width = len(rows[0]) if rows else 0
        per = max(1, min(INSERT_ROWS_PER_STATEMENT, self._max_params // max(width, 1)))
        whole = len(rows) - len(rows) % per
        if whole:
            sql = head + ", ".join([row_sql] * per)
            for start in range(0, whole, per):
                self._conn.execute(sql, list(chain.from_iterable(rows[start : start + per])))
        if whole < len(rows):
            self._conn.executemany(head + row_sql, rows[whole:])

    def _derive_columns(
        self, obj: SObjectDef, position: dict[str, int], columns: list[list[Any]]
    ) -> None:
        """Fill derived columns (person Name, BodyLength) of column-wise rows in place."""
        if self._needs_derive(obj) and "LastName" in position and "Name" in position:
            lasts = columns[position["LastName"]]
            firsts = columns[position["FirstName"]] if "FirstName" in position else None
            if firsts is None:
                columns[position["Name"]] = list(lasts)
            elif all(firsts) and all(lasts):  # every row has both: joined without a Python step
                columns[position["Name"]] = list(map("{} {}".format, firsts, lasts))
            else:
                columns[position["Name"]] = [
                    f"{first} {last}" if first and last else (first or last)
                    for first, last in zip(firsts, lasts, strict=True)
                ]
        if "BodyLength" in position and "Body" in position:
            columns[position["BodyLength"]] = [
                len(body) if body is not None else None for body in columns[position["Body"]]
            ]

    @staticmethod
    def _needs_derive(obj: SObjectDef) -> bool:
        name = obj.fields.get("Name")
        person = name is not None and not name.createable and "LastName" in obj.fields
        return person or "BodyLength" in obj.fields

    def _apply_updates(self, obj: SObjectDef, updates: list[_Row]) -> None:
        now = self.now()
        stamp = {
            name: value
            for name, value in (
                ("LastModifiedDate", now),
                ("SystemModstamp", now),
                ("LastModifiedById", self.user_id),
            )
            if name in obj.fields
        }
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for w in updates:
            record = dict(w.values)
            self._derive(obj, record, w.existing)
            record.update(stamp)
            names = tuple(record)
            groups.setdefault(names, []).append((*record.values(), w.record_id))
        table = _quote(obj.name)
        for names, params in groups.items():
            self._note_values(params)
            sets = ", ".join(f"{_quote(n)} = ?" for n in names)
            self._conn.executemany(f'UPDATE {table} SET {sets} WHERE "Id" = ?', params)

    def _delete_like(
        self, obj: SObjectDef, op: str, rows: Sequence[dict[str, Any]]
    ) -> list[RecordResult]:
        """delete (to the recycle bin), hardDelete (gone) and undelete, by ``Id`` column."""
        if op in ("delete", "hardDelete") and not obj.deletable:
            raise BatchError(f"InvalidBatch : Entity '{obj.name}' is not deletable")
        if op == "undelete" and not obj.undeletable:
            raise BatchError(f"InvalidBatch : Entity '{obj.name}' is not undeletable")
        work: list[_Row] = []
        for i, row in enumerate(rows):
            w = _Row(i)
            value = next((v for k, v in row.items() if k.lower() == "id"), None)
            if value in (None, ""):
                w.fail(
                    "MISSING_ARGUMENT",
                    "Id not specified in a delete call"
                    if op != "undelete"
                    else "Id not specified in an undelete call",
                )
            elif not isinstance(value, str) or not is_valid_id(value):
                w.fail("MALFORMED_ID", f"malformed id {value}")
            else:
                w.record_id = to18(value)
            work.append(w)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                existing = self._fetch_rows(obj, sorted({w.record_id for w in work if w.record_id}))
                seen: set[str] = set()
                targets: list[str] = []
                for w in work:
                    if w.error is not None or w.record_id is None:
                        continue
                    record = existing.get(w.record_id)
                    if record is None:
                        w.fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
                    elif op == "delete" and record.get("IsDeleted"):
                        w.fail("ENTITY_IS_DELETED", "entity is deleted")
                    elif op == "undelete" and not record.get("IsDeleted"):
                        w.fail("UNDELETE_FAILED", "Entity is not in the recycle bin")
                    elif w.record_id in seen:
                        w.fail(
                            "DUPLICATE_VALUE",
                            f"duplicate value found: Id duplicates value on "
                            f"record with id: {w.record_id}",
                            ["Id"],
                        )
                    else:
                        seen.add(w.record_id)
                        targets.append(w.record_id)
                self._apply_delete(obj, op, targets)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return [
            RecordResult(w.record_id, w.error is None, False, [w.error] if w.error else [])
            for w in work
        ]

    def _apply_delete(self, obj: SObjectDef, op: str, ids: list[str], depth: int = 0) -> None:
        if not ids:
            return
        table = _quote(obj.name)
        now = self.now()
        params = [(i,) for i in ids]
        if op == "hardDelete":
            self._conn.executemany(f'DELETE FROM {table} WHERE "Id" = ?', params)
        else:
            flag = 1 if op == "delete" else 0
            sets = ['"IsDeleted" = ?']
            values: list[Any] = [flag]
            for name, value in (
                ("LastModifiedDate", now),
                ("SystemModstamp", now),
                ("LastModifiedById", self.user_id),
            ):
                if name in obj.fields:
                    sets.append(f"{_quote(name)} = ?")
                    values.append(value)
            self._conn.executemany(
                f'UPDATE {table} SET {", ".join(sets)} WHERE "Id" = ?',
                [(*values, i) for i in ids],
            )
        if op == "undelete" or depth > 5:
            return
        # Master-detail children go with their parent, as in Salesforce.
        for child in self.catalog:
            for fdef in child.fields.values():
                if fdef.cascade_delete and obj.name in fdef.reference_to:
                    kids = [r[0] for r in self._select_in(child.name, '"Id"', fdef.name, ids)]
                    self._apply_delete(child, op, kids, depth + 1)


_SYSTEM_FIELDS = frozenset(
    {"CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById", "SystemModstamp",
     "OwnerId"}
)  # fmt: skip
_DERIVED_FIELDS = frozenset({"Name", "BodyLength"})


def _required_fields(obj: SObjectDef) -> list[FieldDef]:
    """Fields a save may not leave null: not nillable and writable (booleans never null).

    Cached on the object and recomputed when its fields change.
    """
    key = (len(obj.fields), obj.generation)
    cached: tuple[tuple[int, int], list[FieldDef]] | None = getattr(obj, "_sfbulk_required", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    fields = [
        f
        for f in obj.fields.values()
        if not f.nillable
        and (f.createable or f.updateable)
        and f.type != "boolean"
        and not f.is_compound
    ]
    obj._sfbulk_required = (key, fields)  # type: ignore[attr-defined]
    return fields
