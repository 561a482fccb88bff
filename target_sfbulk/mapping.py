"""From a Singer stream to the columns of one Salesforce ingest operation.

A :class:`FieldMapper` is built once per sink, from the object's describe, and answers two
questions:

- **Before any job** (:meth:`FieldMapper.check_schema`): which properties of the stream's SCHEMA
  the object does not have, or the operation cannot write (not createable for insert, not
  updateable for update, neither for upsert, anything but ``Id`` for delete). Under
  ``unknown_fields: reject`` (the default) the run stops there, naming every such field with its
  reason; under ``drop`` the fields are dropped with one warning that lists them.
- **Per record** (:meth:`FieldMapper.prepare`): the record as ``{column: value}`` with canonical
  column names (``name`` → ``Name``, ``account.external_id__c`` → ``Account.External_Id__c``),
  or a :class:`RecordRejected` naming the field and the reason. Keys the SCHEMA did not declare
  follow the same rule, decided once per key: rejected (that record fails locally) or dropped.

Key rules, in order: ``_sdc_*`` keys are Singer metadata (``_sdc_deleted_at`` marks a delete, the
rest are ignored); ``exclude_fields`` of the stream are dropped quietly (matched without regard to
case, also against the renamed name: copying ``Contact`` between orgs drops the source org's
``AccountId`` and keeps ``Account.External_Id__c``); ``field_renames`` map a record key to a field
or relationship column; what is left resolves case-insensitively against describe.

Values: a nested mapping under a relationship name is a parent reference
(``{"Account": {"External_Id__c": "A1"}}``); a mapping or list under a text field is stored as
compact JSON text, so a nested Singer property loads into a long text area. Two keys that land in
the same column with different values (``Name`` and ``name``) reject the record naming both; with
the same value they are one. Under ``null_handling: ignore`` a null leaves the field unchanged
(it is not sent) instead of clearing it.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Final, Literal

from sfbulk.csvcodec import Column
from sfbulk.describe import find_field, resolve_column, writable_fields
from sfbulk.errors import ConfigError
from sfbulk.ids import to18

logger = logging.getLogger(__name__)

OPERATIONS = ("insert", "update", "upsert", "delete", "hardDelete")
DELETE_OPERATIONS = frozenset({"delete", "hardDelete"})
#: Singer metadata key that marks a record as deleted in the source.
DELETED_AT = "_sdc_deleted_at"

_TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "combobox", "email",
                         "phone", "url", "encryptedstring", "anyType", "json"})
_NUMERIC_TYPES = frozenset({"int", "long", "double", "currency", "percent"})


class RecordRejected(ValueError):
    """A record that cannot be sent, with the reason and the record key at fault."""

    def __init__(self, reason: str, field: str | None = None, code: str = "INVALID_RECORD") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.code = code


@dataclass
class Prepared:
    """One record ready for the batcher: canonical column → value, plus what drives its job."""

    values: dict[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class _Drop:
    """A key that is not loaded; ``reason`` is shown once when it is not a quiet drop."""

    reason: str | None = None


@dataclass(frozen=True)
class _Field:
    column: Column
    text: bool  # a mapping or list value is stored as JSON text


@dataclass(frozen=True)
class _Relationship:
    """A key naming a relationship (``Account``): its value is a nested parent reference."""

    name: str


@dataclass(frozen=True)
class _Reject:
    reason: str


_Decision = _Drop | _Field | _Relationship | _Reject


class _Mark(enum.Enum):
    """Plans of :meth:`FieldMapper._step` besides a column name (enum members rather than bare
    objects so a type checker can tell them apart from a column name or a record plan)."""

    DELETED = "deleted"  # the ``_sdc_deleted_at`` key
    QUIET = "quiet"  # a key dropped without a word
    FULL = "full"  # a key only :meth:`FieldMapper._prepare_full` handles


_DELETED: Final = _Mark.DELETED
_QUIET: Final = _Mark.QUIET
_FULL: Final = _Mark.FULL
#: A record plan of :meth:`FieldMapper._shape`: its columns, how to pick their values from a
#: record (``None`` for all of them, in order), and the ``_sdc_deleted_at`` key or ``None``.
_Plan = tuple[tuple[str, ...], Callable[[Mapping[str, Any]], Sequence[Any]] | None, str | None]
#: Value classes a plain field stores as they are (no JSON text, no parent reference).
_PLAIN_VALUES = frozenset({str, int, float, bool, Decimal})
_values: Callable[[Mapping[str, Any]], Any] = dict.values  # type: ignore[assignment]


@dataclass
class FieldReport:
    """What :meth:`FieldMapper.check_schema` found among the stream's declared properties."""

    loaded: dict[str, str] = field(default_factory=dict)  # property -> column
    unknown: dict[str, str] = field(default_factory=dict)  # property -> reason
    unwritable: dict[str, str] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)

    @property
    def problems(self) -> dict[str, str]:
        return {**self.unknown, **self.unwritable}


def _fold(name: str) -> str:
    return name.lower()


class FieldMapper:
    """Maps one stream's record keys onto one object's ingest columns (see the module doc).

    Args:
        stream: The stream name (for messages).
        describe: The target object's describe.
        operation: ``insert``, ``update``, ``upsert``, ``delete`` or ``hardDelete``.
        parent_describe: Describe of a parent object by name, ``None`` when the org lacks it.
        external_id_field: The upsert key (API name, already validated).
        renames: ``field_renames`` of the stream: record key → field or relationship column.
        exclude: ``exclude_fields`` of the stream.
        unknown_fields: ``"reject"`` or ``"drop"``.
        null_handling: ``"clear"`` (null sets the field to null) or ``"ignore"`` (not sent).
    """

    def __init__(
        self,
        stream: str,
        describe: Mapping[str, Any],
        operation: str,
        parent_describe: Callable[[str], Mapping[str, Any] | None],
        *,
        external_id_field: str | None = None,
        renames: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        unknown_fields: str = "reject",
        null_handling: str = "clear",
    ) -> None:
        if operation not in OPERATIONS:
            raise ConfigError(f"stream {stream}: action must be one of {', '.join(OPERATIONS)}, "
                              f"not {operation!r}")
        if unknown_fields not in ("reject", "drop"):
            raise ConfigError("unknown_fields must be 'reject' or 'drop'")
        if null_handling not in ("clear", "ignore"):
            raise ConfigError("null_handling must be 'clear' or 'ignore'")
        self.stream = stream
        self.describe = describe
        self.object: str = describe.get("name", "?")
        self.operation = operation
        self.external_id_field = external_id_field
        self.unknown_fields = unknown_fields
        self.ignore_nulls = null_handling == "ignore"
        self._parent_describe = parent_describe
        self._renames = {_fold(key): value for key, value in (renames or {}).items()}
        self._exclude = {_fold(name) for name in exclude}
        self._decisions: dict[str, _Decision] = {}
        #: Per record key, what :meth:`prepare` does with it (see :meth:`_step`).
        self._steps: dict[str, str | _Mark] = {}
        #: Per record shape (its keys in order), the plan of :meth:`_shape`.
        self._shapes: dict[tuple[str, ...], _Plan | Literal[_Mark.FULL]] = {}
        #: Value classes :meth:`prepare` stores as they are; a null too unless it is left out.
        self._plain_values = _PLAIN_VALUES if null_handling == "ignore" else \
            _PLAIN_VALUES | {type(None)}
        self._warned: set[str] = set()
        self._writable = {f["name"] for f in writable_fields(
            describe, operation, external_id_field).fields}
        self._unwritable_reasons = writable_fields(describe, operation,
                                                   external_id_field).excluded
        self._columns: dict[str, Column] = {}
        #: Binary (base64) columns seen: they travel in Bulk 1.0 ZIP batches.
        self.binary_columns: set[str] = set()
        flags = {"insert": ("createable",), "update": ("updateable",),
                 "upsert": ("createable", "updateable")}.get(operation, ())
        for described in describe.get("fields", ()):
            if described.get("type") == "base64" and any(described.get(f) for f in flags):
                self._writable.add(described["name"])

    # -- decisions -------------------------------------------------------------------------------

    def _decide(self, key: str) -> _Decision:
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide_uncached(key)
            self._decisions[key] = decision
        return decision

    def _excluded(self, *names: str) -> bool:
        return any(_fold(name) in self._exclude for name in names)

    def _decide_uncached(self, key: str) -> _Decision:
        if key.startswith("_sdc_"):
            return _Drop()
        target = self._renames.get(_fold(key), key)
        if self._excluded(key, target):
            return _Drop()
        if self.operation in DELETE_OPERATIONS:
            # A delete sends Id alone; the rest of a source record is quietly ignored.
            if _fold(target) == "id":
                self._columns["Id"] = Column("Id", "id")
                return _Field(self._columns["Id"], text=False)
            return _Drop()
        if "." not in target and ":" not in target:
            described = find_field(self.describe, target)
            if described is None:
                relationship = self._relationship(target)
                if relationship is not None:
                    return _Relationship(relationship["relationshipName"])
        try:
            column = resolve_column(self.describe, target, self._parent_describe)
        except ValueError as exc:
            return self._unknown(key, str(exc))
        field_name = self._field_of(column.name)
        if field_name not in self._writable:
            reason = self._unwritable_reasons.get(field_name, "not writable")
            return self._unknown(key, f"{self.object}.{field_name} cannot be set by "
                                      f"{self.operation}: {reason}")
        self._columns[column.name] = column
        if column.field_type == "base64" and "." not in column.name:
            self.binary_columns.add(column.name)
        text = "." not in column.name and column.field_type in _TEXT_TYPES
        return _Field(column, text)

    def _unknown(self, key: str, reason: str) -> _Decision:
        if self.unknown_fields == "drop":
            return _Drop(reason)
        return _Reject(reason)

    def _relationship(self, name: str) -> dict[str, Any] | None:
        folded = _fold(name)
        for described in self.describe.get("fields", ()):
            if described.get("type") == "reference" and _fold(
                    described.get("relationshipName") or "") == folded:
                return described
        return None

    def _field_of(self, column: str) -> str:
        """The object's own field a column writes: ``Account.Ext__c`` writes ``AccountId``."""
        if "." not in column:
            return column
        relationship = column.rpartition(":")[2].partition(".")[0]
        reference = self._relationship(relationship)
        return reference["name"] if reference else relationship

    # -- before any job --------------------------------------------------------------------------

    def check_schema(self, properties: Mapping[str, Any]) -> FieldReport:
        """Sort the SCHEMA's properties into loaded, unknown, unwritable and excluded.

        Raises:
            ConfigError: Under ``unknown_fields: reject``, when any property cannot be loaded;
                the message names every one with its reason.
        """
        report = FieldReport()
        for key, prop in properties.items():
            if key.startswith("_sdc_"):
                continue
            self._check_property(key, prop, report)
        problems = report.problems
        if problems and self.unknown_fields == "reject":
            listed = "; ".join(f"{key}: {reason}" for key, reason in problems.items())
            raise ConfigError(
                f"stream {self.stream} → {self.object} ({self.operation}): {len(problems)} "
                f"field(s) cannot be loaded, and unknown_fields is 'reject' (set it to 'drop', "
                f"or use exclude_fields / field_renames): {listed}")
        if problems:
            logger.warning("Stream %s → %s (%s): dropping %d field(s) that cannot be loaded: %s",
                           self.stream, self.object, self.operation, len(problems),
                           "; ".join(f"{key}: {reason}" for key, reason in problems.items()))
            self._warned.update(problems)
        return report

    def _check_property(self, key: str, prop: Mapping[str, Any], report: FieldReport,
                        prefix: str = "") -> None:
        decision = self._decide(prefix + key)
        if isinstance(decision, _Relationship):
            nested = prop.get("properties") if isinstance(prop, Mapping) else None
            if not nested:
                report.unknown[key] = (f"{self.object}.{decision.name} is a relationship: give "
                                       "a parent reference such as {\"External_Id__c\": …}")
                return
            for sub_key, sub_prop in nested.items():
                if sub_key == "attributes":
                    continue
                self._check_property(f"{decision.name}.{sub_key}", sub_prop, report)
            return
        if isinstance(decision, _Field):
            report.loaded[key] = decision.column.name
        elif isinstance(decision, _Drop):
            if decision.reason is None:
                if self.operation not in DELETE_OPERATIONS:
                    report.excluded.append(key)
            else:
                bucket = report.unwritable if "cannot be set" in decision.reason else \
                    report.unknown
                bucket[key] = decision.reason
        else:
            bucket = report.unwritable if "cannot be set" in decision.reason else report.unknown
            bucket[key] = decision.reason

    # -- per record ------------------------------------------------------------------------------

    def field(self, name: str) -> dict[str, Any] | None:
        """The object's describe field called ``name`` (any case)."""
        return find_field(self.describe, name)

    def column(self, name: str) -> Column | None:
        """The batcher's resolver: canonical column names (from :meth:`prepare`) to columns."""
        return self._columns.get(name)

    def prepare(self, record: Mapping[str, Any]) -> Prepared:
        """Turn one record into canonical columns and values.

        Records with the same keys share a plan (:meth:`_shape`): when every key is a plain
        field, ``_sdc_deleted_at`` or quietly dropped, and every value is a scalar (or a null to
        send), the values are stored under their columns as they are. Anything else (a parent
        reference, a key to reject or to warn about, a mapping or list to store as JSON text,
        two keys landing in one column, a null to leave out) goes through
        :meth:`_prepare_full`, which gives the same result for plain keys and handles the rest.

        Raises:
            RecordRejected: A key cannot be loaded under the ``reject`` rule, a text value cannot
                be serialised, or two keys land in one column with different values.
        """
        keys = tuple(record)
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._shape(keys)
        if shape is _FULL:
            return self._prepare_full(record)
        columns, pick, deleted_at = shape
        values = record.values() if pick is None else pick(record)
        if not self._plain_values.issuperset(map(type, values)):
            return self._prepare_full(record)
        deleted = False
        if deleted_at is not None:
            flag = record[deleted_at]
            deleted = flag is not None and flag != ""
        return Prepared(dict(zip(columns, values, strict=True)), deleted)

    def prepare_many(self, records: Sequence[Mapping[str, Any]],
                     ) -> tuple[list[dict[str, Any] | RecordRejected], list[int]]:
        """:meth:`prepare` for a whole batch: each record's values (or the
        :class:`RecordRejected` it raised, in its place) and the positions of the records
        marked deleted.

        Records sharing their keys are mapped together: when their plan is plain and every
        value of the group is a scalar to store as it is (one check over all the values), the
        columns are zipped with each record's values by C loops, and a record whose keys are
        already its columns is its own row (rows are never written to). Any other group goes
        record by record through :meth:`prepare`, so the result is always what it gives.
        """
        count = len(records)
        rows: list[dict[str, Any] | RecordRejected] = [None] * count  # type: ignore[list-item]
        deleted: list[int] = []
        shapes = list(map(tuple, records))
        groups: dict[tuple[str, ...], list[int]] | None = None
        if count and shapes.count(shapes[0]) != count:
            groups = {}
            for position, keys in enumerate(shapes):
                group = groups.get(keys)
                if group is None:
                    groups[keys] = [position]
                else:
                    group.append(position)
        for keys, positions in (groups.items() if groups is not None else
                                ((shapes[0], range(count)),) if count else ()):
            members = records if groups is None else [records[i] for i in positions]
            if not self._prepare_group(keys, members, positions, rows, deleted):
                for position, record in zip(positions, members, strict=True):
                    try:
                        prepared = self.prepare(record)
                    except RecordRejected as exc:
                        rows[position] = exc
                        continue
                    rows[position] = prepared.values
                    if prepared.deleted:
                        deleted.append(position)
        if groups is not None and deleted:
            deleted.sort()
        return rows, deleted

    def _prepare_group(self, keys: tuple[str, ...], members: Sequence[Mapping[str, Any]],
                       positions: Sequence[int], rows: list[Any], deleted: list[int]) -> bool:
        """Map records sharing ``keys`` at once when their plan allows it (see
        :meth:`prepare_many`); ``False``, having changed nothing, when it does not."""
        shape = self._shapes.get(keys)
        if shape is None:
            shape = self._shape(keys)
        if shape is _FULL:
            return False
        columns, pick, deleted_at = shape
        values: list[Sequence[Any]] = list(map(_values, members)) if pick is None else \
            list(map(pick, members))
        if not self._plain_values.issuperset(map(type, chain.from_iterable(values))):
            return False
        if pick is None and columns == keys:
            made: Sequence[Any] = members
        else:
            made = list(map(dict, map(zip, repeat(columns), values)))
        if isinstance(positions, range) and positions == range(len(rows)):
            rows[:] = made
        else:
            for position, row in zip(positions, made, strict=True):
                rows[position] = row
        if deleted_at is not None:
            deleted.extend(position for position, record in zip(positions, members, strict=True)
                           if record[deleted_at] is not None and record[deleted_at] != "")
        return True

    def _shape(self, keys: tuple[str, ...]) -> _Plan | Literal[_Mark.FULL]:
        """The plan for records with these keys, in this order: (columns, how to pick their
        values from a record or None for all of them, the ``_sdc_deleted_at`` key or None), or
        ``_FULL`` when a key needs :meth:`_prepare_full`."""
        columns: list[str] = []
        kept: list[str] = []
        deleted_at = None
        shape: _Plan | Literal[_Mark.FULL] = _FULL
        for key in keys:
            step = self._steps.get(key)
            if step is None:
                step = self._step(key)
            if step.__class__ is str:
                columns.append(step)  # type: ignore[arg-type]
                kept.append(key)
            elif step is _DELETED:
                deleted_at = key
            elif step is not _QUIET:
                break
        else:
            if len(set(columns)) == len(columns):
                pick = None
                if len(kept) != len(keys):
                    pick = (lambda record: ()) if not kept else (
                        (lambda record, key=kept[0]: (record[key],)) if len(kept) == 1
                        else itemgetter(*kept))
                shape = (tuple(columns), pick, deleted_at)
        self._shapes[keys] = shape
        return shape

    def _step(self, key: str) -> str | _Mark:
        """The cached plan for one record key: its column (a plain field), ``_DELETED``,
        ``_QUIET`` (dropped without a word, or already warned about), or ``_FULL``."""
        if key == DELETED_AT:
            step: str | _Mark = _DELETED
        else:
            decision = self._decide(key)
            if isinstance(decision, _Field):
                step = decision.column.name
            elif isinstance(decision, _Drop) and (decision.reason is None
                                                  or key in self._warned):
                step = _QUIET
            else:  # relationships, rejections, and drops still to be warned about
                step = _FULL
        if step is not _FULL:
            self._steps[key] = step
        return step

    def _prepare_full(self, record: Mapping[str, Any]) -> Prepared:
        """:meth:`prepare` for any record: parent references, JSON text, duplicate columns,
        rejected and dropped keys."""
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        deleted = False
        for key, value in record.items():
            if key == DELETED_AT:
                deleted = value is not None and value != ""
                continue
            decision = self._decide(key)
            if isinstance(decision, _Field):
                if value is None and self.ignore_nulls:
                    continue
                if decision.text and isinstance(value, (Mapping, list, tuple)) and not (
                        decision.column.field_type == "multipicklist"
                        and isinstance(value, (list, tuple))):
                    value = _json_text(value, key)
                self._put(values, sources, decision.column.name, key, value)
            elif isinstance(decision, _Relationship):
                if value is None:
                    continue
                if not isinstance(value, Mapping):
                    raise RecordRejected(
                        f"{key}: {self.object}.{decision.name} is a relationship; its value must "
                        "be a parent reference such as {\"External_Id__c\": \"…\"}", key)
                self._put_reference(values, sources, key, decision.name, value)
            elif isinstance(decision, _Reject):
                raise RecordRejected(decision.reason, key, "INVALID_FIELD")
            elif decision.reason is not None and key not in self._warned:
                self._warned.add(key)
                logger.warning("Stream %s → %s: dropping field %s: %s", self.stream,
                               self.object, key, decision.reason)
                self._shapes.clear()  # the key is now a quiet drop: plans may get simpler
                self._steps.pop(key, None)  # warned once: from now on a quiet drop
        return Prepared(values, deleted)

    def _put_reference(self, values: dict[str, Any], sources: dict[str, str], key: str,
                       relationship: str, reference: Mapping[str, Any]) -> None:
        prefix = ""
        attributes = reference.get("attributes")
        if isinstance(attributes, Mapping) and attributes.get("type"):
            prefix = f"{attributes['type']}:"
        for sub_key, sub_value in reference.items():
            if sub_key == "attributes":
                continue
            if isinstance(sub_value, Mapping):
                raise RecordRejected(f"{key}.{sub_key}: only one level of parent reference is "
                                     "allowed", key)
            flat = f"{prefix}{relationship}.{sub_key}"
            decision = self._decide(flat)
            if isinstance(decision, _Reject):
                raise RecordRejected(decision.reason, f"{key}.{sub_key}", "INVALID_FIELD")
            if not isinstance(decision, _Field):
                continue
            if sub_value is None and self.ignore_nulls:
                continue
            self._put(values, sources, decision.column.name, f"{key}.{sub_key}", sub_value)

    @staticmethod
    def _put(values: dict[str, Any], sources: dict[str, str], column: str, key: str,
             value: Any) -> None:
        if column in values:
            if not _same(values[column], value):
                raise RecordRejected(
                    f"keys {sources[column]!r} and {key!r} both load {column} with different "
                    f"values", f"{sources[column]}, {key}", "DUPLICATE_VALUE")
            return
        values[column] = value
        sources[column] = key

    def self_links(self) -> list[tuple[str, str]]:
        """Relationship columns seen so far that name a parent of the object's own type by one
        of its fields: ``(column, key column)``, e.g. ``("Parent.External_Id__c",
        "External_Id__c")`` on Account (see :func:`target_sfbulk.ordering.generations`)."""
        links = []
        for name in self._columns:
            if "." not in name:
                continue
            prefix, _, path = name.rpartition(":")
            relationship, _, key = path.partition(".")
            reference = self._relationship(relationship)
            own = self.object.lower()
            if reference is None or (prefix and prefix.lower() != own) or own not in {
                    target.lower() for target in reference.get("referenceTo") or ()}:
                continue
            described = find_field(self.describe, key)
            if described is not None and described["name"] != "Id":
                links.append((name, described["name"]))
        return links

    # -- keys ------------------------------------------------------------------------------------

    def key_column(self) -> str | None:
        """The column that identifies a record within a job: Id, the upsert key, or none."""
        if self.operation == "upsert":
            return self.external_id_field
        if self.operation in ("update", "delete", "hardDelete"):
            return "Id"
        return None

    def key_normaliser(self, column: str | None) -> Callable[[Any], Any]:
        """How values of a key column compare: ids by their 18-character form, external ids
        without case unless the field is case-sensitive, numbers by value."""
        described = find_field(self.describe, column) if column else None
        kind = (described or {}).get("type", "string")
        if kind in ("id", "reference"):
            return _normal_id
        if kind in _NUMERIC_TYPES:
            return _normal_number
        if (described or {}).get("caseSensitive"):
            return _normal_text
        return _normal_folded


def _normal_id(value: Any) -> Any:
    text = str(value).strip()
    if len(text) in (15, 18) and text.isalnum():
        return to18(text)
    return text


def _normal_number(value: Any) -> Any:
    try:
        return Decimal(str(value).strip()).normalize()
    except ArithmeticError:
        return str(value)


def _normal_text(value: Any) -> Any:
    return str(value)


def _normal_folded(value: Any) -> Any:
    return str(value).casefold()


def _same(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return a is b
    return a == b


def _json_text(value: Any, key: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (TypeError, ValueError) as exc:
        raise RecordRejected(f"{key}: cannot store the value as JSON text: {exc}", key) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def choose_external_id(
    stream: str,
    describe: Mapping[str, Any],
    configured: str | None,
    key_properties: Sequence[str],
    renames: Mapping[str, str] | None = None,
) -> str:
    """The upsert key of a stream, validated against describe.

    The configured ``external_id_field`` wins; otherwise the stream's single key property (after
    ``field_renames``) when it is ``Id`` or an external-id field.

    Raises:
        ConfigError: No usable key, or the named field is neither ``Id`` nor an external id.
    """
    obj = describe.get("name", "?")
    name = configured
    origin = "external_id_field"
    if not name:
        folded = {_fold(k): v for k, v in (renames or {}).items()}
        if len(key_properties) == 1:
            name = folded.get(_fold(key_properties[0]), key_properties[0])
            origin = f"the stream's key property {key_properties[0]!r}"
        else:
            raise ConfigError(
                f"stream {stream} → {obj}: upsert needs external_id_field (the stream has "
                f"{len(key_properties)} key properties, so none can be taken as the key)")
    described = find_field(describe, name)
    if described is None:
        raise ConfigError(f"stream {stream} → {obj}: upsert key {name!r} ({origin}) is no field "
                          f"of {obj}")
    if described["name"] != "Id" and not described.get("externalId"):
        raise ConfigError(
            f"stream {stream} → {obj}: upsert key {obj}.{described['name']} ({origin}) is not an "
            "external id field (describe externalId=false); name an external id field or Id")
    return str(described["name"])
