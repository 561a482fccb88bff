"""Request bodies other than plain CSV: Bulk 1.0 JSON and XML batches, and ZIP batches.

CSV batches come from :class:`sfbulk.csvcodec.CsvBatcher`. JSON and XML batches (Bulk 1.0
``contentType`` JSON or XML) carry the same cells — every value encoded by the same
:func:`sfbulk.csvcodec.make_encoder` by the target field's type — shaped as Salesforce documents
them: null is JSON ``null`` / ``xsi:nil="true"``, and a relationship column becomes a nested
parent reference (``"Account": {"Ext__c": "A1"}``; a polymorphic one adds its type,
``"attributes": {"type": "Lead"}`` in JSON, ``<type>Lead</type>`` in XML).

Binary content (Attachment ``Body``, Document ``Body``, ContentVersion ``VersionData``) travels in
ZIP batches: ``request.txt`` at the zip's root holds the records, whose binary fields name a file
in the zip as ``#name``. A record gives a binary field either as base64 text or as ``#path`` (a file
under ``binary_root``; ``#`` never occurs in base64, so the two cannot be confused).
:class:`ZipBatcher` packs records so that each zip stays within Salesforce's limits: at most
10 MB zipped, 20 MB unzipped, 1,000 files and 10,000 records, file names at most 512 bytes.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from sfbulk.csvcodec import (
    MAX_BATCH_BYTES,
    MAX_BATCH_CHARS,
    MAX_BATCH_ROWS,
    MAX_FIELD_CHARS,
    MAX_RECORD_CHARS,
    NULL_CELL,
    Column,
    CsvBatch,
    CsvBatcher,
    RejectedRecord,
    make_encoder,
)

ASYNC_NS = "http://www.force.com/2009/06/asyncapi/dataload"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

MAX_ZIP_BYTES = 10_000_000
MAX_ZIP_UNZIPPED_BYTES = 20 * 1024 * 1024
MAX_ZIP_FILES = 1_000
MAX_ZIP_NAME_BYTES = 512
#: Room kept under the zip limit for request.txt's own compressed size and the zip directory.
_ZIP_HEADROOM = 256 * 1024
_ZIP_ENTRY_OVERHEAD = 128  # local header + central directory entry, beyond the name


@dataclass
class Payload:
    """One batch body and the key of each record in it, in order (like a :class:`CsvBatch`)."""

    sequence: int
    keys: list[Any]
    data: bytes
    columns: list[str] = field(default_factory=list)
    #: CSV: the rows' cells, unquoted, a list per column, when the batcher kept them.
    cells: list[list[str]] | None = None

    @property
    def rows(self) -> int:
        return len(self.keys)

    @property
    def size(self) -> int:
        return len(self.data)


def _nest(column: str, value: Any, into: dict[str, Any]) -> None:
    """Put a cell under its JSON shape: relationship columns become nested references."""
    if "." not in column:
        into[column] = value
        return
    type_prefix, _, path = column.rpartition(":")
    relationship, _, target = path.partition(".")
    reference = into.setdefault(relationship, {})
    if type_prefix:
        reference.setdefault("attributes", {"type": type_prefix})
    reference[target] = value


class StructuredBatcher:
    """Packs records into Bulk 1.0 JSON or XML batches within the row, byte and character limits.

    Args:
        resolver: Canonical column name → :class:`Column` (as :meth:`FieldMapper.column`).
        fmt: ``"JSON"`` or ``"XML"``.
        tz: Time zone of naive datetimes.
        max_rows, max_bytes: Batch limits.
    """

    def __init__(self, resolver: Callable[[str], Column | None], fmt: str, *,
                 tz: dt.tzinfo | None = None, max_rows: int = MAX_BATCH_ROWS,
                 max_bytes: int = MAX_BATCH_BYTES) -> None:
        if fmt not in ("JSON", "XML"):
            raise ValueError("fmt must be JSON or XML")
        self.fmt = fmt
        self._resolver = resolver
        self._tz = tz
        self.max_rows = max_rows
        self.max_bytes = min(max_bytes, MAX_BATCH_CHARS)
        self._encoders: dict[str, tuple[Column, Callable[[Any], str]] | None] = {}
        self._items: list[bytes] = []
        self._keys: list[Any] = []
        self._size = 0
        self._sequence = 0
        self._position = 0
        if fmt == "JSON":
            self._head, self._sep, self._tail = b"[", b",", b"]"
        else:
            self._head = (f'<?xml version="1.0" encoding="UTF-8"?><sObjects xmlns="{ASYNC_NS}" '
                          f'xmlns:xsi="{XSI_NS}">').encode()
            self._sep, self._tail = b"", b"</sObjects>"

    def _encoder(self, column: str) -> tuple[Column, Callable[[Any], str]] | None:
        if column not in self._encoders:
            resolved = self._resolver(column)
            self._encoders[column] = None if resolved is None else (
                resolved, make_encoder(resolved.field_type, tz=self._tz, field=resolved.name))
        return self._encoders[column]

    def _render(self, record: Mapping[str, Any]) -> bytes:
        cells: dict[str, Any] = {}
        chars = 0
        for column, value in record.items():
            resolved = self._encoder(column)
            if resolved is None:
                continue
            meta, encode = resolved
            text = encode(value)
            if len(text) > MAX_FIELD_CHARS:
                raise ValueError(f"{meta.name}: {len(text)} characters, over the "
                                 f"{MAX_FIELD_CHARS} per field")
            chars += len(text)
            if text == NULL_CELL:
                cell: Any = None
            elif meta.field_type == "boolean":
                cell = text == "true"
            else:
                cell = text
            _nest(meta.name, cell, cells)
        if chars > MAX_RECORD_CHARS:
            raise ValueError(f"{chars} characters, over the {MAX_RECORD_CHARS} per record")
        if not cells:
            raise ValueError("no field of this record can be loaded")
        if self.fmt == "JSON":
            return json.dumps(cells, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return _xml_sobject(cells).encode("utf-8")

    def add(self, record: Mapping[str, Any], key: Any = None) -> Payload | RejectedRecord | None:
        """Add one record; returns a closed batch, a rejected record, or ``None``."""
        position = self._position
        self._position += 1
        key = position if key is None else key
        try:
            item = self._render(record)
        except ValueError as exc:
            return RejectedRecord(key, record, str(exc))
        overhead = len(self._head) + len(self._tail)
        if len(item) + overhead > self.max_bytes:
            return RejectedRecord(key, record, "the record alone exceeds the batch size limits")
        closed = None
        grown = self._size + len(item) + (len(self._sep) if self._items else 0)
        if self._items and (len(self._items) >= self.max_rows
                            or grown + overhead > self.max_bytes):
            closed = self.flush()
            grown = len(item)
        self._items.append(item)
        self._keys.append(key)
        self._size = grown
        return closed

    def flush(self) -> Payload | None:
        if not self._items:
            return None
        data = self._head + self._sep.join(self._items) + self._tail
        payload = Payload(self._sequence, self._keys, data)
        self._sequence += 1
        self._items, self._keys, self._size = [], [], 0
        return payload


def _xml_sobject(cells: Mapping[str, Any]) -> str:
    parts = ["<sObject>"]
    for name, value in cells.items():
        if isinstance(value, dict):
            inner = ["<sObject>"]
            attributes = value.get("attributes")
            if attributes:
                inner.append(f"<type>{escape(attributes['type'])}</type>")
            for sub, sub_value in value.items():
                if sub == "attributes":
                    continue
                inner.append(_xml_cell(sub, sub_value))
            inner.append("</sObject>")
            parts.append(f"<{name}>{''.join(inner)}</{name}>")
        else:
            parts.append(_xml_cell(name, value))
    parts.append("</sObject>")
    return "".join(parts)


def _xml_cell(name: str, value: Any) -> str:
    if value is None:
        return f'<{name} xsi:nil="true"/>'
    if value is True or value is False:
        return f"<{name}>{'true' if value else 'false'}</{name}>"
    return f"<{name}>{escape(str(value))}</{name}>"


# --------------------------------------------------------------------------------------------------
# ZIP batches
# --------------------------------------------------------------------------------------------------


class BinaryError(ValueError):
    """A binary value that cannot be loaded (bad base64, missing file, too large)."""


def read_binary(value: Any, root: Path | None, field_name: str) -> bytes:
    """The bytes a record gives for a binary field: base64 text, or ``#path`` under ``root``."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise BinaryError(f"{field_name}: give base64 text or '#path', not "
                          f"{type(value).__name__}")
    if value.startswith("#"):
        if root is None:
            raise BinaryError(f"{field_name}: {value!r} names a file, but binary_root is not set")
        base = root.resolve()
        path = (base / value[1:]).resolve()
        if base not in path.parents and path != base:
            raise BinaryError(f"{field_name}: {value!r} points outside binary_root")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BinaryError(f"{field_name}: cannot read {value!r}: "
                              f"{exc.strerror or type(exc).__name__}") from None
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BinaryError(f"{field_name}: not valid base64 (or '#path' for a file)") from None


@dataclass
class _OpenZip:
    records: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    unzipped: int = 0
    zipped: int = 0
    request: int = 0  # bytes request.txt may take, at most (see _request_bytes)


def _request_bytes(row: Mapping[str, Any]) -> int:
    """At most how many bytes a row takes in ``request.txt``, in any of its formats: each
    value's text (quotes doubled) with its column named twice (an XML element's tags, beside
    JSON's key and CSV's header) and room for the markup."""
    size = 16
    for column, value in row.items():
        text = "" if value is None else str(value)
        size += 2 * len(text.encode("utf-8", "surrogatepass")) + 2 * len(column) + 16
    return size


class ZipBatcher:
    """Packs records with binary fields into ZIP batches (``request.txt`` + files).

    Args:
        resolver: Canonical column name → :class:`Column`; binary columns have type ``base64``.
        binary_columns: The canonical names of the binary columns.
        fmt: ``CSV``, ``JSON`` or ``XML``: the format of ``request.txt``.
        tz: Time zone of naive datetimes.
        root: ``binary_root``: where ``#path`` values are read from.
        max_zip_bytes: Zipped size limit (tests lower it).
    """

    def __init__(self, resolver: Callable[[str], Column | None], binary_columns: Iterable[str],
                 fmt: str = "CSV", *, tz: dt.tzinfo | None = None, root: Path | None = None,
                 max_zip_bytes: int = MAX_ZIP_BYTES,
                 max_unzipped_bytes: int = MAX_ZIP_UNZIPPED_BYTES,
                 max_files: int = MAX_ZIP_FILES) -> None:
        self._resolver = resolver
        self.binary = set(binary_columns)
        self.fmt = fmt
        self._tz = tz
        self._root = root
        self.max_zip_bytes = max_zip_bytes
        self.max_unzipped_bytes = max_unzipped_bytes
        self.max_files = max_files
        self._open = _OpenZip()
        self._counter = 0
        self._sequence = 0
        self._position = 0

    def _request_resolver(self, column: str) -> Column | None:
        if column in self.binary:
            return Column(column, "string")  # the cell is '#name'
        return self._resolver(column)

    def add(self, record: Mapping[str, Any], key: Any = None) -> list[Payload | RejectedRecord]:
        """Add one record; returns the batches it closed and/or its rejection (maybe empty)."""
        position = self._position
        self._position += 1
        key = position if key is None else key
        files: dict[str, bytes] = {}
        row = dict(record)
        try:
            for column in self.binary:
                if column not in row or row[column] is None:
                    continue
                content = read_binary(row[column], self._root, column)
                self._counter += 1
                name = f"f{self._counter:07d}"
                files[name] = content
                row[column] = f"#{name}"
        except BinaryError as exc:
            return [RejectedRecord(key, record, str(exc))]
        zipped = sum(len(zlib.compress(c, 6)) + _ZIP_ENTRY_OVERHEAD + 8 for c in files.values())
        unzipped = sum(len(c) for c in files.values())
        limit = self.max_zip_bytes - _ZIP_HEADROOM
        # request.txt is one of the zip's files, and its bytes count unzipped (and, not
        # compressed at all at worst, zipped); it is also a batch of at most 10,000,000
        # characters.
        request = _request_bytes(row)
        if zipped + request > limit or \
                unzipped + request > self.max_unzipped_bytes - _ZIP_HEADROOM:
            return [RejectedRecord(key, record,
                                   f"binary content of {unzipped} bytes ({zipped} zipped) exceeds "
                                   f"what one ZIP batch may hold ({self.max_zip_bytes} bytes "
                                   f"zipped, {self.max_unzipped_bytes} unzipped)")]
        out: list[Payload | RejectedRecord] = []
        batch = self._open
        if batch.records and (
                len(batch.records) >= MAX_BATCH_ROWS
                or len(batch.files) + len(files) + 1 > self.max_files
                or batch.zipped + zipped + batch.request + request > limit
                or batch.unzipped + unzipped + batch.request + request
                > self.max_unzipped_bytes - _ZIP_HEADROOM
                or batch.request + request > MAX_BATCH_CHARS):
            out.extend(self.flush())
            batch = self._open
        batch.records.append((key, row))
        batch.files.update(files)
        batch.zipped += zipped
        batch.unzipped += unzipped
        batch.request += request
        return out

    def flush(self) -> list[Payload | RejectedRecord]:
        """Close the open zip: the request is encoded now, so a bad value rejects its record."""
        batch = self._open
        self._open = _OpenZip()
        if not batch.records:
            return []
        out: list[Payload | RejectedRecord] = []
        if self.fmt == "CSV":
            encoder: Any = CsvBatcher(self._request_resolver, tz=self._tz,
                                      max_rows=MAX_BATCH_ROWS + 1,
                                      max_bytes=MAX_BATCH_BYTES * 10,
                                      max_chars=MAX_BATCH_CHARS * 10)
        else:
            encoder = StructuredBatcher(self._request_resolver, self.fmt, tz=self._tz,
                                        max_rows=MAX_BATCH_ROWS + 1,
                                        max_bytes=MAX_BATCH_BYTES * 10)
        keys: list[Any] = []
        used: set[str] = set()
        for key, row in batch.records:
            result = encoder.add(row, key)
            if isinstance(result, RejectedRecord):
                out.append(result)
                continue
            keys.append(key)
            used.update(v[1:] for c, v in row.items() if c in self.binary and isinstance(v, str))
        closed = encoder.flush()
        if closed is None:
            return out
        request = closed.data
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("request.txt", request)
            for name, content in batch.files.items():
                if name in used:
                    archive.writestr(name, content)
        out.append(Payload(self._sequence, list(closed.keys), buffer.getvalue(),
                           list(getattr(closed, "columns", []))))
        self._sequence += 1
        return out


def as_payload(batch: CsvBatch) -> Payload:
    """A CSV batch in the common :class:`Payload` shape."""
    return Payload(batch.sequence, list(batch.keys), batch.data, list(batch.columns),
                   batch.cells)
