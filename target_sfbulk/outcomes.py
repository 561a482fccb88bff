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
from itertools import compress, islice, repeat
from operator import itemgetter, ne
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

#: Result rows read from a page at a time (the page is consumed in blocks of this many rows).
_BLOCK_ROWS = 10_000

#: A run of result rows that cannot be taken whole is halved until it is this short; then its
#: rows are joined one by one.
_BULK_MIN = 32

#: Text columns tried, in upload order, for one whose every cell differs (see ResultJoiner).
_UNIQUE_TRIES = 3


def _getter(indexes: Sequence[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """``row -> tuple of the cells at indexes`` (always a tuple, unlike a bare itemgetter)."""
    if len(indexes) == 1:
        (only,) = indexes
        return lambda row: (row[only],)
    if not indexes:
        return lambda row: ()
    return itemgetter(*indexes)


def _padded(rows: list[Sequence[str]], width: int) -> list[Sequence[str]]:
    """``rows`` with every row at least ``width`` cells long (missing cells are empty)."""
    if not rows or min(map(len, rows)) >= width:
        return rows
    return [row if len(row) >= width else [*row, *[""] * (width - len(row))] for row in rows]


def _none_if_empty(cells: list[str]) -> list[str | None]:
    """``[cell or None for cell in cells]``, without the loop when no cell is empty."""
    if "" not in cells:
        return cells  # type: ignore[return-value]
    if cells.count("") == len(cells):
        return [None] * len(cells)
    return [cell or None for cell in cells]


def _created_flags(cells: list[str]) -> list[bool]:
    """``sf__Created`` cells as booleans (Salesforce writes ``true``/``false``)."""
    flags = list(map(_CREATED.get, cells))
    if None in flags:
        return [_CREATED[cell] if cell in _CREATED else _bool(cell) for cell in cells]
    return flags  # type: ignore[return-value]


def _put(outcomes: list[Outcome | None], positions: Iterable[int],
         values: Iterable[Outcome]) -> None:
    """``outcomes[p] = v`` for every pair, by a C loop."""
    deque(map(outcomes.__setitem__, positions, values), maxlen=0)


#: The 5-character upper-case patterns of an id block (``1`` upper, ``0`` not) -> suffix letter.
_ID_BITS = str.maketrans({**{c: "1" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
                          **{c: "0" for c in "abcdefghijklmnopqrstuvwxyz0123456789"}})
_ID_BLOCK = {"".join("1" if bits >> i & 1 else "0" for i in range(5)):
             "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits] for bits in range(32)}


def _norm_id_key(cell: str) -> str:
    """What :func:`cell_normaliser` gives for an ``id`` cell, with the 18-character form
    computed by table look-ups (:func:`sfbulk.ids.to18` gives the same, one bit at a time)."""
    if not cell or cell == NULL_CELL:
        return cell
    text = cell.strip()
    if len(text) not in (15, 18) or not text.isalnum():
        return cell
    bits = text[:15].translate(_ID_BITS)
    get = _ID_BLOCK.get
    first, second, third = get(bits[:5]), get(bits[5:10]), get(bits[10:])
    if first is None or second is None or third is None:  # a letter outside A-Z, a-z, 0-9
        return to18(text)
    return text[:15] + first + second + third


def _key_normaliser(field_type: str | None, fold_case: bool) -> Callable[[str], str]:
    """:func:`cell_normaliser` for key columns, with the id case made cheaper."""
    if field_type in ("id", "reference"):
        return _norm_id_key
    return cell_normaliser(field_type, fold_case=fold_case)


def _normal_keys(normal: Callable[[str], str], cells: list[str]) -> list[str]:
    """Every key cell normalised (by C loops where the normaliser is a plain method)."""
    if normal is _identity:
        return cells
    if normal is _norm_folded:
        return list(map(str.casefold, cells))
    return list(map(normal, cells))


class _Page:
    """What joining one result page needs, worked out once from its header."""

    __slots__ = ("contiguous", "created_at", "echoed_of", "error_at", "id_at", "key_at", "kind",
                 "need", "plain_of", "positions", "typed_of", "unique_at")

    def __init__(self, joiner: ResultJoiner, kind: str, echoed: Sequence[str]) -> None:
        self.kind = kind
        self.positions = positions = joiner._positions(echoed)
        self.need = max(positions) + 1 if positions else 0
        self.id_at = echoed.index("sf__Id") if "sf__Id" in echoed else None
        self.created_at = echoed.index("sf__Created") if "sf__Created" in echoed else None
        self.error_at = echoed.index("sf__Error") if "sf__Error" in echoed else None
        self.plain_of = _getter([positions[i] for i in joiner._plain])
        self.typed_of = _getter([positions[i] for i in joiner._typed])
        self.key_at = positions[joiner._key_at] if joiner._keyed else 0
        self.unique_at = positions[joiner._unique_at] if joiner._unique_at is not None else None
        #: The uploaded columns of a row in upload order: a list when they sit side by side in
        #: the page (as Salesforce writes them), else a tuple.
        first = positions[0] if positions else 0
        self.contiguous = positions == list(range(first, first + len(positions)))
        self.echoed_of: Callable[[Sequence[str]], Sequence[str]] = (
            itemgetter(slice(first, first + len(positions))) if self.contiguous
            else _getter(positions))


class ResultJoiner:
    """Pairs Bulk 2.0 result rows with the rows of one upload (see the module doc).

    Keyed jobs index the upload by the normalised key. Inserts, matched by whole content, index
    it by the cells of text columns (which compare as they are, so need no normalising); the
    typed cells of a row with those text cells are then compared as sent, and only when they
    differ, normalised (Salesforce reformats numbers, booleans and datetimes in
    ``successfulResults``). When many rows share their text cells, those rows are indexed by
    their normalised typed cells. Either way a result row takes the first pending row, in upload
    order, whose normalised content equals its own.

    That is the rule row by row. Most result rows meet the simplest case of it. Given the
    upload's cells by column, the joiner first takes result rows that are the uploaded rows in
    upload order, comparing columns and indexing nothing (:meth:`_take_in_order`); at the first
    block that is not, it indexes the rows still pending and goes on as follows. A page is
    joined in runs (:meth:`_take_run`): a run whose every row goes to a different pending row,
    the only one it can go to (insert: the only row with its text cells, typed cells equal once
    normalised; keyed: the one row whose key is exactly its key cell, when no two uploaded keys
    normalise alike), is taken whole by C loops; any other run is halved, and a short one goes
    row by row. Row by row, a run gives the same pairs (and the same error, at the same row) as
    taking it whole would, so the outcome never depends on the path.

    Args:
        header: The uploaded header (canonical column names).
        rows: The uploaded rows as cell strings (unquoted), in upload order; ``None`` when
            ``columns`` gives them.
        types: Describe type per column (relationship columns: the parent field's type).
        key_column: The column that identifies a row (``Id`` or the upsert key), or ``None`` to
            match on whole content (insert).
        fold_key_case: Whether the key compares without case (external ids that are not
            case-sensitive).
        job_id: For error messages.
        bulk: Whether runs of rows may be taken whole (``False`` joins every row on its own;
            the outcome is the same, only slower).
        columns: The upload's cells column by column (``columns[c][r]``, as the batcher kept
            them).
    """

    def __init__(
        self,
        header: Sequence[str],
        rows: Iterable[Sequence[str]] | None,
        types: Mapping[str, str],
        *,
        key_column: str | None = None,
        fold_key_case: bool = False,
        job_id: str | None = None,
        bulk: bool = True,
        columns: Sequence[Sequence[str]] | None = None,
    ) -> None:
        self.header = list(header)
        self.job_id = job_id
        self.bulk = bulk
        self._types = types
        self._fold_key_case = fold_key_case
        self._keyed = key_column is not None and key_column in self.header
        self._key_column = key_column
        normalisers = [cell_normaliser(types.get(name)) for name in self.header]
        #: Whole-content matching: text columns index the rows, typed ones are compared.
        self._plain = [i for i, f in enumerate(normalisers) if f is _identity]
        self._typed = [i for i, f in enumerate(normalisers) if f is not _identity]
        self._typed_normalisers = [normalisers[i] for i in self._typed]
        self._plain_of = _getter(self._plain)
        self._typed_of = _getter(self._typed)
        self._typed_cells: list[tuple[str, ...]] = []
        #: Content: text cells -> a position, a deque of positions in upload order, or a dict of
        #: normalised typed cells -> deque of positions.
        self._pending: dict[Any, Any] = {}
        #: Keyed: every row's normalised key, each key cell as sent -> its position (when no two
        #: keys normalise alike), and normalised key -> positions, built when first needed.
        self._key_at = 0
        self._key_normal: Callable[[str], str] = _identity
        self._keys: list[str] = []
        self._raw_keys: dict[str, int] | None = None
        self._queues: dict[str, deque[int]] | None = None
        #: Content: the uploaded rows, and a text column no two rows share with each cell ->
        #: its row (when there is one); the pending rows are then indexed only when first needed.
        self._sent: list[Sequence[str]] = []
        self._unique_at: int | None = None
        self._unique: dict[str, int] | None = None
        self._indexed = False
        #: In order: the uploaded cells by column, and the rows before ``_cursor`` (all taken),
        #: while every result row so far was the next uploaded row (see :meth:`_take_in_order`).
        self._columns: Sequence[Sequence[str]] | None = None
        self._cursor = 0
        if columns and bulk:
            self._columns = columns
            self.rows = len(columns[0])
            self.outcomes: list[Outcome | None] = [None] * self.rows
        else:
            sent = _rows_of(columns or []) if rows is None else rows
            self._index_upload(sent if isinstance(sent, list) else list(sent))
        #: Why unprocessed rows were not processed, when known (the job's error message).
        self.unprocessed_reason = ("Salesforce did not process this record (the job stopped "
                                   "before reaching it)")

    def _index_upload(self, sent: list[Sequence[str]]) -> None:
        """Index the uploaded rows for joining result rows wherever they come from (rows
        already given an outcome stay taken)."""
        width = len(self.header)
        if self._keyed:
            assert self._key_column is not None
            at = self._key_at = self.header.index(self._key_column)
            self._key_normal = _key_normaliser(self._types.get(self._key_column),
                                               self._fold_key_case)
            if sent and min(map(len, sent)) <= at:
                cells = [row[at] if at < len(row) else "" for row in sent]
            else:
                cells = list(map(itemgetter(at), sent))
            self._keys = _normal_keys(self._key_normal, cells)
            count = len(cells)
            if len(set(self._keys)) == count:
                self._raw_keys = dict(zip(cells, range(count), strict=True))
        else:
            self._sent = sent = _padded(sent, width)  # short rows: missing cells are empty
            count = len(sent)
            # A text column whose every cell differs is the cheap way in: each row is then the
            # only one with its text cells, and a result row can be found by that one cell.
            for at in self._plain[:_UNIQUE_TRIES]:
                index = dict(zip(map(itemgetter(at), sent), range(count), strict=True))
                if len(index) == count:
                    self._unique_at, self._unique = at, index
                    break
        if self._columns is None:
            self.rows = count
            self.outcomes = [None] * count
        if not self._keyed and self._unique is None:
            self._index_content()

    # -- row by row ------------------------------------------------------------------------------

    def _index_content(self) -> None:
        """Index the pending rows by their text cells (and keep their typed cells)."""
        sent = self._sent
        # The cells are picked out by map() (C loops); only the indexing runs per row here.
        self._typed_cells = list(map(self._typed_of, sent))
        outcomes = self.outcomes
        positions: Sequence[int] = range(self.rows)
        if outcomes.count(None) != self.rows:  # some rows were taken in runs already
            positions = [i for i, outcome in enumerate(outcomes) if outcome is None]
        keys = list(map(self._plain_of, map(sent.__getitem__, positions)))
        pending: dict[Any, Any] = dict(zip(keys, positions, strict=True))
        if len(pending) != len(keys):  # some rows share their text cells
            pending = {}
            for position, key in zip(positions, keys, strict=True):
                entry = pending.get(key)
                if entry is None:
                    pending[key] = position
                elif entry.__class__ is int:
                    pending[key] = deque((entry, position))
                else:
                    entry.append(position)
        self._pending = pending
        self._indexed = True

    def _normal(self, typed: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(f(cell) for f, cell in zip(self._typed_normalisers, typed, strict=True))

    def _take_key(self, key: str) -> int | None:
        """The first pending row (upload order) with this normalised key, now taken; ``None``
        when there is none."""
        queues = self._queues
        if queues is None:
            queues = self._queues = {}
            for position, normal in enumerate(self._keys):
                queue = queues.get(normal)
                if queue is None:
                    queues[normal] = deque((position,))
                else:
                    queue.append(position)
        queue = queues.get(key)
        outcomes = self.outcomes
        while queue:
            position = queue.popleft()
            if outcomes[position] is None:  # rows taken in a run are still queued: skip them
                return position
        return None

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

    def _take_rows(self, page: _Page, rows: Sequence[Sequence[str]]) -> None:
        """Join rows one by one (already padded to the page's width)."""
        if not self._keyed and not self._indexed:
            self._index_content()
        outcomes = self.outcomes
        job_id = self.job_id
        keyed = self._keyed
        pending = self._pending
        sent = self._typed_cells
        key_normal = self._key_normal if keyed else _identity
        take_content = self._take_content
        take_key = self._take_key
        plain_of, typed_of, key_at = page.plain_of, page.typed_of, page.key_at
        id_at, created_at, error_at = page.id_at, page.created_at, page.error_at
        kind = page.kind
        new = tuple.__new__
        success = kind == "successful"
        failed = kind == "failed"
        unprocessed = new(Outcome, (UNPROCESSED, None, None, "UNPROCESSED",
                                    self.unprocessed_reason, (), job_id, None))
        for row in rows:
            if keyed:
                position = take_key(key_normal(row[key_at]))
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
                sent_order = [row[i] for i in page.positions]
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

    # -- runs taken whole ------------------------------------------------------------------------

    def _run_positions(self, page: _Page, rows: list[Sequence[str]], keys: list[Any] | None,
                       typed: list[tuple[str, ...]] | None) -> list[int] | None:
        """Where a run of result rows goes when it can be taken whole, its rows now taken from
        the pending ones; ``None`` (nothing changed) when some row needs the row-by-row rule.

        Args:
            page: The page the rows come from.
            rows: The rows.
            keys: Keyed: each row's key cell as echoed. Content without a column of distinct
                cells: each row's text cells.
            typed: Content without a column of distinct cells: each row's typed cells.
        """
        count = len(rows)
        outcomes = self.outcomes
        if self._keyed:
            raw = self._raw_keys
            if raw is None or keys is None:
                return None  # two uploaded keys normalise alike: which one is first matters
            found = list(map(raw.get, keys))
            if (None in found or len(set(found)) != count
                    or list(map(outcomes.__getitem__, found)).count(None) != count):  # type: ignore[arg-type]
                return None
            return found  # type: ignore[return-value]
        if self._unique is not None and page.unique_at is not None:
            # Each row found by its cell of the distinct column: the only row with its text
            # cells, so the row it goes to when the rest of its content is what was sent.
            found = list(map(self._unique.get, map(itemgetter(page.unique_at), rows)))
            if (None in found or len(set(found)) != count
                    or list(map(outcomes.__getitem__, found)).count(None) != count):  # type: ignore[arg-type]
                return None
            echoed = list(map(page.echoed_of, rows))
            sent: list[Any] = list(map(self._sent.__getitem__, found))  # type: ignore[arg-type]
            if not page.contiguous:
                sent = list(map(tuple, sent))
            if sent != echoed:
                same = self._same_content
                for mine, theirs in compress(zip(sent, echoed, strict=True),
                                             map(ne, sent, echoed)):
                    if not same(mine, theirs):
                        return None
            if self._indexed:
                deque(map(self._pending.__delitem__, map(page.plain_of, rows)), maxlen=0)
            return found  # type: ignore[return-value]
        if keys is None or typed is None:
            return None
        pending = self._pending
        entries: list[Any] = list(map(pending.get, keys))
        # Each row the only pending row with its text cells, no two rows the same one.
        if set(map(type, entries)) != {int} or len(set(entries)) != count:
            return None
        sent = list(map(self._typed_cells.__getitem__, entries))
        if sent != typed:
            normal = self._normal
            for mine, theirs in compress(zip(sent, typed, strict=True), map(ne, sent, typed)):
                if normal(mine) != normal(theirs):
                    return None
        deque(map(pending.__delitem__, keys), maxlen=0)
        return entries

    def _same_content(self, sent: Sequence[str], echoed: Sequence[str]) -> bool:
        """Whether an echoed row (in upload column order) has a sent row's content: the same
        text cells, and typed cells the same as sent or once normalised."""
        plain_of = self._plain_of
        if plain_of(sent) != plain_of(echoed):
            return False
        mine, theirs = self._typed_of(sent), self._typed_of(echoed)
        return mine == theirs or self._normal(mine) == self._normal(theirs)

    def _take_run(self, page: _Page, rows: list[Sequence[str]], keys: list[Any] | None,
                  typed: list[tuple[str, ...]] | None) -> None:
        """Join a run of rows: whole when :meth:`_run_positions` allows, else in halves, and a
        short run row by row."""
        positions = self._run_positions(page, rows, keys, typed)
        if positions is None:
            count = len(rows)
            if count <= _BULK_MIN:
                self._take_rows(page, rows)
                return
            half = count // 2
            self._take_run(page, rows[:half], keys[:half] if keys is not None else None,
                           typed[:half] if typed is not None else None)
            self._take_run(page, rows[half:], keys[half:] if keys is not None else None,
                           typed[half:] if typed is not None else None)
            return
        _put(self.outcomes, positions, self._made(page, rows))

    def _made(self, page: _Page, rows: list[Sequence[str]]) -> Iterable[Outcome]:
        """The outcomes of a run of result rows of ``page``, in the rows' order (C loops)."""
        job_id = self.job_id
        count = len(rows)
        id_of = itemgetter(page.id_at) if page.id_at is not None else None
        ids = _none_if_empty(list(map(id_of, rows))) if id_of else repeat(None)
        new = tuple.__new__
        if page.kind == "successful":
            created: Iterable[bool | None] = (
                _created_flags(list(map(itemgetter(page.created_at), rows)))
                if page.created_at is not None else repeat(None))
            return map(new, repeat(Outcome),
                       zip(repeat(SUCCESS), ids, created, repeat(None), repeat(None), repeat(()),
                           repeat(job_id), repeat(None)))
        if page.kind == "failed":
            cells = (list(map(itemgetter(page.error_at), rows)) if page.error_at is not None
                     else [""] * count)
            # Failures in one job mostly share a few messages: each is parsed once.
            parsed = {cell: parse_error_cell(cell) for cell in set(cells)}
            return map(new, repeat(Outcome),
                       (((FAILED, record_id, None, *parsed[cell], job_id, None))
                        for record_id, cell in zip(ids, cells, strict=False)))
        return repeat(new(Outcome, (UNPROCESSED, None, None, "UNPROCESSED",
                                    self.unprocessed_reason, (), job_id, None)), count)

    # -- in upload order -------------------------------------------------------------------------

    def _take_in_order(self, page: _Page, rows: list[Sequence[str]]) -> bool:
        """Take a block of result rows that are, exactly, the next uploaded rows.

        While every result row so far was the uploaded row after the last one taken, all rows
        before ``_cursor`` are taken, so the row at the cursor is the first pending row of all:
        a result row whose echoed cells equal its cells goes there by the row-by-row rule too.
        The cells are compared a column at a time (C loops), and no index is built. Returns
        ``False``, having changed nothing, when some row is not its uploaded row (or the block
        runs past the upload).
        """
        assert self._columns is not None
        start = self._cursor
        end = start + len(rows)
        if end > self.rows:
            return False
        for at, sent in zip(page.positions, self._columns, strict=True):
            if list(map(itemgetter(at), rows)) != sent[start:end]:
                return False
        self.outcomes[start:end] = islice(self._made(page, rows), len(rows))
        self._cursor = end
        return True

    def _stop_in_order(self) -> None:
        """Index the rows still pending, for joining the rest of the results wherever they come
        from."""
        assert self._columns is not None
        self._index_upload(_rows_of(self._columns))
        self._columns = None

    # -- pages -----------------------------------------------------------------------------------

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
            if len(rows) >= _BLOCK_ROWS:
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

        Raises:
            ResultJoinError: The page lacks an uploaded column, or a row matches no pending
                uploaded row.
        """
        rows = iter(page)
        echoed = next(rows, None)
        if echoed is None:
            return 0
        shape = _Page(self, kind, echoed)
        taken = 0
        while True:
            block = _padded(list(islice(rows, _BLOCK_ROWS)), shape.need)
            if not block:
                return taken
            if self._columns is not None:
                if self._take_in_order(shape, block):
                    taken += len(block)
                    continue
                self._stop_in_order()
                shape = _Page(self, kind, echoed)  # it names the columns the indexes use
            if not self.bulk:
                self._take_rows(shape, block)
            elif self._keyed:
                self._take_run(shape, block, list(map(itemgetter(shape.key_at), block)), None)
            elif self._unique is not None:
                self._take_run(shape, block, None, None)
            else:
                self._take_run(shape, block, list(map(shape.plain_of, block)),
                               list(map(shape.typed_of, block)))
            taken += len(block)

    def finish(self, *, unprocessed_message: str | None = None) -> list[Outcome]:
        """Every row's outcome, in upload order.

        Args:
            unprocessed_message: When the job failed as a whole, rows without a result row are
                unprocessed with this reason; otherwise a row without a result is an error.

        Raises:
            ResultJoinError: Some row has no result (and the job did not fail as a whole).
        """
        if None not in self.outcomes:
            return list(self.outcomes)  # type: ignore[arg-type]
        missing = [i for i, outcome in enumerate(self.outcomes) if outcome is None]
        if unprocessed_message is None:
            raise ResultJoinError(
                f"{len(missing)} of {self.rows} uploaded rows have no result row (first: row "
                f"{missing[0] + 1})", job_id=self.job_id)
        for i in missing:
            self.outcomes[i] = Outcome(UNPROCESSED, None, None, "UNPROCESSED",
                                       unprocessed_message, job_id=self.job_id)
        return [outcome for outcome in self.outcomes if outcome is not None]


def _rows_of(columns: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    """Rows of cells from cells given column by column."""
    return list(map(list, zip(*columns, strict=True)))


def _dict_cells(header: Sequence[str]) -> Callable[[Mapping[str, str]], Sequence[str]]:
    """``record -> its cells in header order`` (raises KeyError for a missing one)."""
    if len(header) == 1:
        (only,) = header
        return lambda record: (record[only],)
    return itemgetter(*header)


def _preview(cells: Sequence[str]) -> str:
    text = ",".join(cells)
    return text if len(text) <= 120 else text[:117] + "..."
