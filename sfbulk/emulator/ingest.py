"""Ingest rules both Bulk APIs share: the strict CSV reader, error cells and lock contention.

Bulk API 1.0 batches and Bulk API 2.0 uploads are read by the same rules, so a file refused by one
API is refused by the other:

- The data must be UTF-8 (a leading byte order mark is dropped); anything else is refused whole
  (:class:`Utf8Error`): 1.0 fails the batch, 2.0 fails the job.
- A value is quoted (``"…"``, inner quotes doubled) or unquoted; a character other than the column
  delimiter or the line end after a closing quote, a quote inside an unquoted value (``"a", "b"``
  has spaces around its quotes) or a quote never closed makes that record a :class:`BadRow`, which
  fails alone (the rest of the data is processed). Rows end with LF or CRLF; blank lines are
  skipped.

Result files write an error as ``STATUS_CODE:message:field1,field2 --``; without fields
Salesforce writes ``STATUS_CODE:message:--`` (no space before the dashes), as in the Salesforce
CLI's tests against real orgs (``INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--``)
and the lock errors quoted from real loads.

``UNABLE_TO_LOCK_ROW`` (the ``lock_error_share`` fault) only strikes rows whose parent record
(a lookup id or a relationship column) is also being written by other work running at the same
time, and its message names that parent, as Salesforce's does.
"""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from typing import Any

from sfbulk.emulator.faults import lock_error_message


class Utf8Error(ValueError):
    """The data is not UTF-8; ``str(self)`` says where (``invalid UTF-8 at byte N``)."""


class BadRow(str):
    """A record that breaks the CSV rules: the text is the reason, ``raw`` the record as sent."""

    raw: str

    def __new__(cls, reason: str, raw: str) -> BadRow:
        self = super().__new__(cls, reason)
        self.raw = raw
        return self


def decode_utf8(data: bytes) -> str:
    """The data as text, without a leading byte order mark.

    Raises:
        Utf8Error: at the first byte that is not UTF-8 (never replaced: the value would be
            stored altered).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Utf8Error(f"invalid UTF-8 at byte {exc.start}") from None
    return text.removeprefix("\ufeff")


def check_utf8(blocks: Iterable[bytes]) -> None:
    """Refuse data that is not UTF-8 without holding it whole (the blocks of one upload, in order).

    Raises:
        Utf8Error: at the first byte that is not UTF-8, counted from the start of the data as
            :func:`decode_utf8` counts it.
    """
    offset = 0
    carry = b""
    for block in blocks:
        data = carry + block if carry else block
        try:
            consumed = codecs.utf_8_decode(data, "strict", False)[1]
        except UnicodeDecodeError as exc:
            raise Utf8Error(f"invalid UTF-8 at byte {offset + exc.start}") from None
        offset += consumed
        carry = data[consumed:]
    if carry:
        try:
            codecs.utf_8_decode(carry, "strict", True)
        except UnicodeDecodeError as exc:
            raise Utf8Error(f"invalid UTF-8 at byte {offset + exc.start}") from None


def decode_blocks(blocks: Iterable[bytes], errors: str = "strict") -> Iterator[str]:
    """The blocks of one UTF-8 stream as text, a leading byte order mark dropped; a character
    split between two blocks comes whole with the later one."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    first = True
    for block in blocks:
        text = decoder.decode(block)
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        if text:
            yield text
    text = decoder.decode(b"", True)
    if first and text:
        text = text.removeprefix("\ufeff")
    if text:
        yield text


_FIELD_PATTERNS: dict[str, re.Pattern[str]] = {}


def _field_pattern(delimiter: str) -> re.Pattern[str]:
    pattern = _FIELD_PATTERNS.get(delimiter)
    if pattern is None:
        pattern = re.compile(r'"((?:[^"]|"")*)"|([^' + re.escape(delimiter) + r'"\r\n]*)')
        _FIELD_PATTERNS[delimiter] = pattern
    return pattern


def _skip_bad_row(text: str, pos: int) -> int:
    """Position after the end of the malformed row that contains ``pos`` (quotes respected)."""
    quoted = False
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == '"':
            quoted = not quoted
        elif ch == "\n" and not quoted:
            return pos + 1
        pos += 1
    return n


def _raw_row(text: str, start: int, end: int) -> str:
    return text[start:end].removesuffix("\n").removesuffix("\r")


def iter_csv(text: str, delimiter: str = ",") -> Iterator[list[str] | BadRow]:
    """Records of Bulk CSV as raw cells (quotes removed, nothing trimmed), or a :class:`BadRow`.

    Lines without a quote are split directly; only records holding a quote go through the
    field-by-field reader, so plain data costs one ``split`` per line.
    """
    match = _field_pattern(delimiter).match
    pos = 0
    n = len(text)
    while pos < n:
        quote = text.find('"', pos)
        stop = n if quote < 0 else text.rfind("\n", pos, quote) + 1
        if stop > pos:
            section = text[pos:stop]
            if "\r" in section:
                for line in section.split("\n"):
                    if line.endswith("\r"):
                        line = line[:-1]
                    if line:
                        yield line.split(delimiter)
            else:  # LF only: every non-empty line split in C
                yield from map(str.split, filter(None, section.split("\n")), repeat(delimiter))
            pos = stop
            continue
        start = pos
        cells: list[str] = []
        error: str | None = None
        while True:
            m = match(text, pos)
            assert m is not None  # the second alternative matches the empty string
            quoted = m.group(1)
            cells.append(quoted.replace('""', '"') if quoted is not None else m.group(2))
            pos = m.end()
            if pos >= n:
                break
            ch = text[pos]
            if ch == delimiter:
                pos += 1
                continue
            if ch == "\n":
                pos += 1
                break
            if ch == "\r" and text.startswith("\r\n", pos):
                pos += 2
                break
            if quoted is not None:
                error = f"Unexpected character {ch!r} after a closing quote"
                pos = _skip_bad_row(text, pos)
            elif ch == '"' and m.end() == m.start():
                error = "Quoted value not closed before the end of the data"
                pos = n
            else:
                error = "Quote inside an unquoted value (check for spaces around quotes)"
                pos = _skip_bad_row(text, pos)
            break
        if error is not None:
            yield BadRow(error, _raw_row(text, start, pos))
        elif cells != [""]:
            yield cells


def _record_end(block: str, open_quote: bool) -> int:
    """Position after the last line end of ``block`` that ends a record, or -1.

    A line end ends a record when an even number of quotes came before it since the last
    record end (``open_quote`` says whether that count is odd where ``block`` starts): a quoted
    value holds an even number (doubled inner quotes included), and a malformed record is
    skipped to the first line end with an even count, so :func:`iter_csv` cuts at exactly
    these places.
    """
    end = block.rfind("\n")
    if end < 0:
        return -1
    odd = (block.count('"') - block.count('"', end)) % 2 == 1
    while open_quote != odd:  # an odd count before this line end: it is inside a value
        previous = block.rfind("\n", 0, end)
        if previous < 0:
            return -1
        if block.count('"', previous, end) % 2:
            odd = not odd
        end = previous
    return end + 1


def iter_csv_blocks(blocks: Iterable[str], delimiter: str = ",") -> Iterator[list[str] | BadRow]:
    """:func:`iter_csv` over text that arrives in pieces (a spooled upload read block by block):
    the same records, with only about one block in memory at a time.

    Each piece is cut at its last record end; the rest waits for the next piece. A record that
    never ends (a quote never closed) waits to the end of the data, where :func:`iter_csv`
    reports it with everything after it, as it would in one piece.
    """
    waiting: list[str] = []
    open_quote = False
    for block in blocks:
        end = _record_end(block, open_quote)
        if end < 0:
            waiting.append(block)
            if block.count('"') % 2:
                open_quote = not open_quote
            continue
        waiting.append(block[:end])
        yield from iter_csv("".join(waiting), delimiter)
        rest = block[end:]
        waiting = [rest] if rest else []
        open_quote = rest.count('"') % 2 == 1
    if waiting:
        yield from iter_csv("".join(waiting), delimiter)


def split_csv(text: str, delimiter: str = ",") -> list[list[str] | BadRow]:
    """Every record of :func:`iter_csv` in a list."""
    return list(iter_csv(text, delimiter))


def bad_row_error(row: BadRow) -> tuple[str, str, tuple[str, ...]]:
    """The record error a malformed CSV row fails with: ``(status_code, message, fields)``."""
    return ("INVALID_FIELD", f"Failed to parse CSV row: {row}", ())


# --------------------------------------------------------------------------------------------
# Error cells


def format_error_cell(status_code: str, message: str, fields: Iterable[str]) -> str:
    """``STATUS_CODE:message:field1,field2 --``, or ``STATUS_CODE:message:--`` without fields."""
    names = ",".join(fields)
    return f"{status_code}:{message}:{names} --" if names else f"{status_code}:{message}:--"


def error_cell(errors: Iterable[Any]) -> str:
    """The result cell of a row's errors (objects with ``status_code``, ``message`` and
    ``fields``), space-separated; empty without errors."""
    return " ".join(
        format_error_cell(e.status_code, e.message, e.fields or ()) for e in errors
    )


# --------------------------------------------------------------------------------------------
# Lock contention


def parent_keys(obj: Any, rows: Sequence[Any]) -> list[frozenset[str]]:
    """For each row (a dict; anything else has none), the parent references it writes: lookup
    ids and relationship columns, as ``column=value`` keys."""
    records = [row for row in rows if isinstance(row, dict)]
    # Classify each column once for the batch, then look only at the reference columns.
    references: list[str] = []
    for name in set().union(*records) if records else ():
        if "." in name:
            references.append(name)
        else:
            definition = obj.field(name) if obj is not None else None
            if definition is not None and definition.type == "reference":
                references.append(name)
    if not references:
        return [frozenset()] * len(rows)
    lowered = [(name, name.lower()) for name in references]
    keys = []
    for row in rows:
        found = set()
        if isinstance(row, dict):
            for name, lower in lowered:
                value = row.get(name)
                if value is None or isinstance(value, bytes):
                    continue
                found.add(f"{lower}={value}")
        keys.append(frozenset(found))
    return keys


class ParentLocks:
    """Parents held by ingest work in progress, counted per holder, so work can tell which of
    its parents other work writes at the same time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def acquire(self, keys: Iterable[str]) -> set[str]:
        """Hold ``keys``; returns those other work held already."""
        with self._lock:
            contended = {key for key in keys if self._held.get(key, 0) > 0}
            for key in keys:
                self._held[key] = self._held.get(key, 0) + 1
        return contended

    def shared(self, keys: Iterable[str]) -> set[str]:
        """Of ``keys`` (held by the caller), those other work holds too right now."""
        with self._lock:
            return {key for key in keys if self._held.get(key, 0) > 1}

    def release(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                remaining = self._held.get(key, 0) - 1
                if remaining > 0:
                    self._held[key] = remaining
                else:
                    self._held.pop(key, None)


def lock_error(
    keys: frozenset[str], contended: set[str], roll: Callable[[], bool]
) -> tuple[str, str] | None:
    """``(status_code, message)`` when a row writing parents ``keys`` fails to lock one of the
    ``contended`` ones (``roll`` draws the fault's share), else None."""
    if not contended or not keys:
        return None
    locked = keys & contended
    if not locked or not roll():
        return None
    parent = sorted(locked)[0].split("=", 1)[1]
    return "UNABLE_TO_LOCK_ROW", lock_error_message(parent)
