"""Per-record outcomes, and joining Salesforce's result rows back to the rows that were sent.

Bulk API 1.0 answers one result row per request row, in request order, so a batch's results zip
with its rows (:func:`join_in_order`).

Bulk API 2.0 answers three CSVs (successful, failed, unprocessed) in no promised order, and they
echo only the uploaded columns: no column of ours can carry a row number. :class:`ResultJoiner`
makes the join exact anyway:

- Every echoed cell is normalised by its field's describe type, the way Salesforce converts it in
  ``successfulResults`` (``912260031`` comes back as ``9.12260031E8``, ``1`` as ``true``, a
  datetime in UTC with milliseconds); ``failedResults`` and ``unprocessedrecords`` echo the raw
  upload, which normalises to the same value.
- Update, upsert, delete and hardDelete rows are matched by their key column (``Id`` by its
  18-character form, the upsert key by value). Rows sharing a key were collapsed into one before
  the upload (see :mod:`target_sfbulk.loader`), so every key is unique within a job and the match
  is one to one.
- Insert rows have no key, so they are matched by their whole normalised content. Rows with the
  same content in one job were sent identically: Salesforce cannot tell them apart either, so they
  take the results for that content in input order, which is as exact as the question allows.

A result row that matches no sent row, or a sent row left without a result, means the outcome of
some record is unknown; that is an error (:class:`ResultJoinError`), never a guess.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any, NamedTuple

from sfbulk.csvcodec import NULL_CELL
from sfbulk.errors import SalesforceError
from sfbulk.ids import to18

SUCCESS = "success"
FAILED = "failed"
UNPROCESSED = "unprocessed"
REJECTED = "rejected"


class Outcome(NamedTuple):
    """What happened to one sent row (immutable; a named tuple, since one is made per record).

    Attributes:
        status: ``success``, ``failed``, ``unprocessed`` (Salesforce never processed it) or
            ``rejected`` (refused by the target before any job).
        id: The record id Salesforce reported.
        created: For a success, whether a record was created (upsert tells insert from update).
        code: Salesforce's status code (``REQUIRED_FIELD_MISSING``…) or ours.
        message: The error message.
        fields: Fields Salesforce named in the error.
        job_id, batch_id: Where the row was processed.
    """

    status: str
    id: str | None = None
    created: bool | None = None
    code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()
    job_id: str | None = None
    batch_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS


class ResultJoinError(SalesforceError):
    """Salesforce's results and the rows sent do not pair up, so some outcome is unknown."""


def parse_error_cell(cell: str) -> tuple[str, str, tuple[str, ...]]:
    """Split a result ``Error``/``sf__Error`` cell: ``CODE:message:field1,field2 --``.

    Several errors are joined by Salesforce with a newline or ``--``; the first code is kept and
    the whole text is the message.
    """
    text = cell.strip()
    if text.endswith("--"):
        text = text[:-2].rstrip()
    code, sep, rest = text.partition(":")
    if not sep or not code or not code.replace("_", "").isalnum():
        return ("UNKNOWN_EXCEPTION", cell.strip(), ())
    message, _, fields_text = rest.rpartition(":")
    if not message:  # "CODE:message" without a field part
        message, fields_text = rest, ""
    fields = tuple(f.strip() for f in fields_text.split(",") if f.strip())
    return code, message.strip(), fields


def _bool(cell: str) -> bool:
    return cell.strip().lower() == "true"


#: ``sf__Created`` cells as Salesforce writes them (others go through :func:`_bool`).
_CREATED = {"true": True, "false": False}


def outcome_from_bulk1(row: Mapping[str, Any], job_id: str | None,
                       batch_id: str | None) -> Outcome:
    """One Bulk 1.0 ingest result (CSV ``Id,Success,Created,Error`` or JSON/XML fields)."""
    success = row.get("Success", row.get("success"))
    success = _bool(success) if isinstance(success, str) else bool(success)
    created = row.get("Created", row.get("created"))
    created = _bool(created) if isinstance(created, str) else bool(created)
    record_id = row.get("Id", row.get("id")) or None
    if success:
        return Outcome(SUCCESS, record_id, created, job_id=job_id, batch_id=batch_id)
    errors = row.get("Error", row.get("errors"))
    if isinstance(errors, str):
        code, message, fields = parse_error_cell(errors)
    elif isinstance(errors, list) and errors:
        first = errors[0]
        code = str(first.get("statusCode") or "UNKNOWN_EXCEPTION")
        message = "; ".join(str(e.get("message", "")) for e in errors)
        fields = tuple(str(f) for f in (first.get("fields") or ()))
    else:
        code, message, fields = "UNKNOWN_EXCEPTION", "Salesforce reported no error text", ()
    return Outcome(FAILED, record_id, None, code, message, fields, job_id, batch_id)


def join_in_order(rows: int, results: Sequence[Outcome], *, job_id: str | None,
                  batch_id: str | None) -> list[Outcome]:
    """Bulk 1.0: results come in request order; their count must equal the rows sent."""
    if len(results) != rows:
        raise ResultJoinError(
            f"batch has {rows} rows but Salesforce returned {len(results)} results",
            job_id=job_id, batch_id=batch_id)
    return list(results)


# --------------------------------------------------------------------------------------------------
# Normalising echoed cells
# --------------------------------------------------------------------------------------------------


def _norm_bool(cell: str) -> str:
    folded = cell.strip().lower()
    if folded in ("true", "1", "yes", "y"):
        return "true"
    if folded in ("false", "0", "no", "n"):
        return "false"
    return cell


def _norm_int(cell: str) -> str:
    try:
        number = Decimal(cell.strip())
    except InvalidOperation:
        return cell
    if number.is_finite() and number == number.to_integral_value():
        return str(int(number))
    return cell


def _norm_double(cell: str) -> str:
    # Salesforce holds these as Java doubles and echoes Double.toString: compare as doubles.
    try:
        return repr(float(cell.strip()))
    except ValueError:
        return cell


def _norm_date(cell: str) -> str:
    text = cell.strip()
    return text[:10] if len(text) >= 10 and text[4] == "-" and text[7] == "-" else cell


def _norm_datetime(cell: str) -> str:
    text = cell.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return cell
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _norm_id(cell: str) -> str:
    text = cell.strip()
    if len(text) in (15, 18) and text.isalnum():
        return to18(text)
    return cell


def _norm_folded(cell: str) -> str:
    return cell.casefold()


_BY_TYPE: dict[str, Callable[[str], str]] = {
    "boolean": _norm_bool,
    "int": _norm_int,
    "long": _norm_int,
    "double": _norm_double,
    "currency": _norm_double,
    "percent": _norm_double,
    "date": _norm_date,
    "datetime": _norm_datetime,
    "id": _norm_id,
    "reference": _norm_id,
}


def cell_normaliser(field_type: str | None, *, fold_case: bool = False) -> Callable[[str], str]:
    """How a column's cells compare between what was sent and what Salesforce echoed."""
    base = _BY_TYPE.get(field_type or "")
    if base is not None:

        def normalise(cell: str) -> str:
            return cell if cell == NULL_CELL or not cell else base(cell)

        return normalise
    return _norm_folded if fold_case else _identity


def _identity(cell: str) -> str:
    return cell


# --------------------------------------------------------------------------------------------------
# Bulk 2.0 join
# --------------------------------------------------------------------------------------------------


#: Rows sharing their text cells that a result row is compared with one by one; past this many,
#: those rows are indexed by their normalised typed cells instead.
_SCAN_LIMIT = 16


def _getter(indexes: Sequence[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """``row -> tuple of the cells at indexes`` (always a tuple, unlike a bare itemgetter)."""
    if len(indexes) == 1:
        (only,) = indexes
        return lambda row: (row[only],)
    if not indexes:
        return lambda row: ()
    return itemgetter(*indexes)


class ResultJoiner:
    """Pairs Bulk 2.0 result rows with the rows of one upload (see the module doc).

    Keyed jobs index the upload by the normalised key. Inserts, matched by whole content, index
    it by the cells of text columns (which compare as they are, so need no normalising); the
    typed cells of a row with those text cells are then compared as sent, and only when they
    differ, normalised (Salesforce reformats numbers, booleans and datetimes in
    ``successfulResults``). When many rows share their text cells, those rows are indexed by
    their normalised typed cells. Either way a result row takes the first pending row, in upload
    order, whose normalised content equals its own.

    Args:
        header: The uploaded header (canonical column names).
        rows: The uploaded rows as cell strings (unquoted), in upload order.
        types: Describe type per column (relationship columns: the parent field's type).
        key_column: The column that identifies a row (``Id`` or the upsert key), or ``None`` to
            match on whole content (insert).
        fold_key_case: Whether the key compares without case (external ids that are not
            case-sensitive).
        job_id: For error messages.
    """

    def __init__(
        self,
        header: Sequence[str],
        rows: Iterable[Sequence[str]],
        types: Mapping[str, str],
        *,
        key_column: str | None = None,
        fold_key_case: bool = False,
        job_id: str | None = None,
    ) -> None:
        self.header = list(header)
        self.job_id = job_id
        width = len(self.header)
        self._keyed = key_column is not None and key_column in self.header
        if key_column is not None and self._keyed:
            at = self.header.index(key_column)
            self._key_at = at
            self._key_normal = cell_normaliser(types.get(key_column), fold_case=fold_key_case)
        normalisers = [cell_normaliser(types.get(name)) for name in self.header]
        #: Whole-content matching: text columns index the rows, typed ones are compared.
        self._plain = [i for i, f in enumerate(normalisers) if f is _identity]
        self._typed = [i for i, f in enumerate(normalisers) if f is not _identity]
        self._typed_normalisers = [normalisers[i] for i in self._typed]
        self._typed_cells: list[tuple[str, ...]] = []
        #: Keyed: normalised key -> positions. Content: text cells -> a position, a deque of
        #: positions in upload order, or a dict of normalised typed cells -> deque of positions.
        self._pending: dict[Any, Any] = {}
        self.rows = 0
        pending = self._pending
        key: str | tuple[str, ...]  # the normalised key, or a row's text cells
        if self._keyed:
            normal = self._key_normal
            for position, row in enumerate(rows):
                key = normal(row[at] if at < len(row) else "")
                queue = pending.get(key)
                if queue is None:
                    pending[key] = deque((position,))
                else:
                    queue.append(position)
                self.rows += 1
        else:
            plain_of = _getter(self._plain)
            typed_of = _getter(self._typed)
            sent = list(rows)
            if sent and min(map(len, sent)) < width:  # short rows: missing cells are empty
                sent = [row if len(row) >= width else [*row, *[""] * (width - len(row))]
                        for row in sent]
            # The cells are picked out by map() (C loops); only the indexing runs per row here.
            self._typed_cells = typed_cells = list(map(typed_of, sent))
            for position, key in enumerate(map(plain_of, sent)):
                entry = pending.get(key)
                if entry is None:
                    pending[key] = position
                elif entry.__class__ is int:
                    pending[key] = deque((entry, position))
                else:
                    entry.append(position)
            self.rows = len(typed_cells)
        self.outcomes: list[Outcome | None] = [None] * self.rows
        #: Why unprocessed rows were not processed, when known (the job's error message).
        self.unprocessed_reason = ("Salesforce did not process this record (the job stopped "
                                   "before reaching it)")

    def _normal(self, typed: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f(cell) for f, cell in zip(self._typed_normalisers, typed, strict=True))

    def _take_content(self, plain: Any, typed: tuple[str, ...]) -> int | None:
        """The first pending row (upload order) with these text cells and these typed cells
        after normalising, removed from the pending rows; ``None`` when there is none."""
        pending = self._pending
        entry = pending.get(plain)
        if entry is None:
            return None
        sent = self._typed_cells
        if entry.__class__ is int:
            if sent[entry] == typed or self._normal(sent[entry]) == self._normal(typed):
                del pending[plain]
                return entry
            return None
        if entry.__class__ is deque:
            if len(entry) <= _SCAN_LIMIT:
                normal = None
                for i, position in enumerate(entry):
                    if sent[position] != typed:
                        if normal is None:
                            normal = self._normal(typed)
                        if self._normal(sent[position]) != normal:
                            continue
                    del entry[i]
                    if not entry:
                        del pending[plain]
                    return position
                return None
            groups: dict[tuple[str, ...], deque[int]] = {}
            for position in entry:
                groups.setdefault(self._normal(sent[position]), deque()).append(position)
            pending[plain] = entry = groups
        queue = entry.get(self._normal(typed))
        if not queue:
            return None
        position = queue.popleft()
        return position

    def _positions(self, echoed_header: Sequence[str]) -> list[int]:
        """Where each uploaded column sits in a result page's header."""
        index = {name: i for i, name in enumerate(echoed_header)}
        missing = [name for name in self.header if name not in index]
        if missing:
            raise ResultJoinError(
                f"result page lacks the uploaded column(s) {', '.join(missing)}",
                job_id=self.job_id)
        return [index[name] for name in self.header]

    def add_records(self, kind: str, records: Iterable[Mapping[str, str]]) -> int:
        """Take result rows given as dicts by header (as :class:`sfbulk.bulk2.IngestResults`
        yields them)."""
        taken = 0
        header: list[str] | None = None
        rows: list[Sequence[str]] = []
        cells_of: Callable[[Mapping[str, str]], Sequence[str]] | None = None
        for record in records:
            if header is None:
                header = list(record)
                cells_of = _dict_cells(header)
            try:
                rows.append(cells_of(record))  # type: ignore[misc]
            except KeyError:  # a row without some header cell: missing cells are empty
                rows.append([record.get(name, "") for name in header])
            if len(rows) >= 10_000:
                taken += self.add_page(kind, [header, *rows])
                rows = []
        if header is not None and rows:
            taken += self.add_page(kind, [header, *rows])
        return taken

    def add_page(self, kind: str, page: Iterable[Sequence[str]]) -> int:
        """Take one result page (rows of cells, its header first).

        Args:
            kind: ``successful``, ``failed`` or ``unprocessed``.
            page: The page's rows, header first (as :func:`sfbulk.csvcodec.iter_csv_rows`).

        Returns:
            The number of result rows taken.
        """
        rows = iter(page)
        echoed = next(rows, None)
        if echoed is None:
            return 0
        positions = self._positions(echoed)
        need = max(positions) + 1 if positions else 0
        id_at = echoed.index("sf__Id") if "sf__Id" in echoed else None
        created_at = echoed.index("sf__Created") if "sf__Created" in echoed else None
        error_at = echoed.index("sf__Error") if "sf__Error" in echoed else None
        plain_of = _getter([positions[i] for i in self._plain])
        typed_of = _getter([positions[i] for i in self._typed])
        key_at = positions[self._key_at] if self._keyed else 0
        taken = 0
        outcomes = self.outcomes
        job_id = self.job_id
        keyed = self._keyed
        pending = self._pending
        sent = self._typed_cells
        key_normal = self._key_normal if keyed else _identity
        take_content = self._take_content
        new = tuple.__new__
        success = kind == "successful"
        failed = kind == "failed"
        unprocessed = new(Outcome, (UNPROCESSED, None, None, "UNPROCESSED",
                                    self.unprocessed_reason, (), job_id, None))
        for row in rows:
            if len(row) < need:
                row = [*row, *[""] * (need - len(row))]
            if keyed:
                queue = pending.get(key_normal(row[key_at]))
                position = queue.popleft() if queue else None
            else:
                plain = plain_of(row)
                typed = typed_of(row)
                entry = pending.get(plain)
                # The common case inline: one pending row with these text cells, typed cells
                # echoed as sent; anything else is settled by _take_content.
                if entry.__class__ is int and sent[entry] == typed:
                    del pending[plain]
                    position = entry
                else:
                    position = take_content(plain, typed)
            if position is None:
                sent_order = [row[i] for i in positions]
                raise ResultJoinError(
                    f"a {kind} result row matches no uploaded row (or more results than rows "
                    f"share its values): {_preview(sent_order)}", job_id=job_id)
            # Outcomes are built with tuple.__new__ (all eight fields, in order): one is made
            # per record, and the named tuple's keyword constructor costs several times more.
            if success:
                record_id = (row[id_at] if id_at is not None else "") or None
                if created_at is None:
                    created = None
                else:
                    cell = row[created_at]
                    created = _CREATED.get(cell)
                    if created is None:
                        created = _bool(cell)
                outcomes[position] = new(Outcome, (SUCCESS, record_id, created, None, None, (),
                                                   job_id, None))
            elif failed:
                record_id = (row[id_at] if id_at is not None else "") or None
                code, message, fields = parse_error_cell(row[error_at] if error_at is not None
                                                         else "")
                outcomes[position] = new(Outcome, (FAILED, record_id, None, code, message,
                                                   fields, job_id, None))
            else:
                outcomes[position] = unprocessed
            taken += 1
        return taken

    def finish(self, *, unprocessed_message: str | None = None) -> list[Outcome]:
        """Every row's outcome, in upload order.

        Args:
            unprocessed_message: When the job failed as a whole, rows without a result row are
                unprocessed with this reason; otherwise a row without a result is an error.

        Raises:
            ResultJoinError: Some row has no result (and the job did not fail as a whole).
        """
        missing = [i for i, outcome in enumerate(self.outcomes) if outcome is None]
        if missing and unprocessed_message is None:
            raise ResultJoinError(
                f"{len(missing)} of {self.rows} uploaded rows have no result row (first: row "
                f"{missing[0] + 1})", job_id=self.job_id)
        for i in missing:
            self.outcomes[i] = Outcome(UNPROCESSED, None, None, "UNPROCESSED",
                                       unprocessed_message, job_id=self.job_id)
        return [outcome for outcome in self.outcomes if outcome is not None]


def _dict_cells(header: Sequence[str]) -> Callable[[Mapping[str, str]], Sequence[str]]:
    """``record -> its cells in header order`` (raises KeyError for a missing one)."""
    if len(header) == 1:
        (only,) = header
        return lambda record: (record[only],)
    return itemgetter(*header)


def _preview(cells: Sequence[str]) -> str:
    text = ",".join(cells)
    return text if len(text) <= 120 else text[:117] + "..."
