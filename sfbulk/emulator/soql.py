"""The emulator's SOQL engine: the subset of SOQL that Bulk queries accept, compiled to SQLite.

A hand-written tokenizer and recursive-descent parser turn SOQL text into a :class:`Select`;
:func:`compile_select` resolves it against a :class:`~sfbulk.emulator.metadata.Catalog` and
emits parameterised SQL over the store's table layout (one table per sObject, one column per
non-compound field; see ``docs/internals.md``). Literals are never interpolated into SQL.

Everything Bulk refuses is refused here with Salesforce's error code and message, so the
HTTP layers only have to wrap a :class:`SoqlError` in their own envelope
(``InvalidBatch : Failed to process query: CODE: message`` for 1.0, a JSON error array for 2.0).

Message provenance: the ``INVALID_FIELD`` ("No such column …"), ``INVALID_TYPE`` ("sObject type
… is not supported …"), ``INVALID_TYPE_FOR_OPERATION``, compound-field and subquery messages
are recorded Salesforce responses (``SALESFORCE-API.md`` §2.8, §3.7, §4.3); the located prefix
(snippet, caret, ``ERROR at Row:R:Column:C``) follows the recorded errors, whose snippet shows the
tokens of the offending line that lie within 32 characters of the error. Messages for the other
Bulk rejections (aggregates, GROUP BY, OFFSET, TYPEOF, base64 fields …) are not recorded anywhere
we could read; they use the recorded "… not supported in Bulk Query" form consistently.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sfbulk.ids import is_valid_id, to18

if TYPE_CHECKING:
    from sfbulk.emulator.metadata import Catalog, FieldDef, SObjectDef

__all__ = [
    "Comparison",
    "CompiledQuery",
    "Condition",
    "FieldPath",
    "Literal",
    "Logical",
    "Not",
    "OrderKey",
    "Select",
    "SoqlError",
    "check_root_object",
    "compile_select",
    "compile_soql",
    "format_utc",
    "is_pk_chunkable",
    "parse",
    "relative_date_range",
    "resolve_object",
    "tokenize",
]

# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------

MALFORMED_QUERY = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
INVALID_QUERY_FILTER_OPERATOR = "INVALID_QUERY_FILTER_OPERATOR"
FUNCTIONALITY_NOT_ENABLED = "FUNCTIONALITY_NOT_ENABLED"
INVALID_TYPE_FOR_OPERATION = "INVALID_TYPE_FOR_OPERATION"
INVALIDENTITY = "INVALIDENTITY"

_CUSTOM_FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom "
    "field name. Please reference your WSDL or the describe call for the appropriate names."
)
_CUSTOM_OBJECT_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity "
    "name. Please reference your WSDL or the describe call for the appropriate names."
)
_CUSTOM_RELATIONSHIP_HINT = (
    "If you are attempting to use a custom relationship, be sure to append the '__r' after the "
    "custom relationship name. Please reference your WSDL or the describe call for the "
    "appropriate names."
)
# Recorded (§2.8, ForceCLI/force#531) and recorded in forcedotcom/dataloader for subqueries.
COMPOUND_NOT_SUPPORTED = "Selecting compound data not supported in Bulk Query"
SUBQUERY_NOT_SUPPORTED = "Aggregate Relationships not supported in Bulk Query"
# Not recorded: same form as the recorded ones.
AGGREGATE_NOT_SUPPORTED = "Aggregate functions not supported in Bulk Query"
BASE64_NOT_SUPPORTED = "Selecting base64 data not supported in Bulk Query"

_MAX_RELATIONSHIP_LEVELS = 5
_INT32_MAX = 2_147_483_647


class SoqlError(Exception):
    """A query Salesforce would reject: ``code`` is the API fault code, ``message`` its text.

    ``str(error)`` is ``CODE: message``, the form Bulk 1.0 puts after
    ``InvalidBatch : Failed to process query:`` in a failed batch's ``stateMessage``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# ----------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------

IDENT = "ident"
STRING = "string"
NUMBER = "number"
DATE = "date"
DATETIME = "datetime"
OP = "op"
LPAREN = "("
RPAREN = ")"
COMMA = ","
DOT = "."
COLON = ":"
EOF = "<EOF>"

_STRING_ESCAPES = {
    "'": "'",
    '"': '"',
    "\\": "\\",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}


@dataclass(frozen=True)
class Token:
    """One lexical token: ``start``/``end`` are offsets in the query text (end exclusive).

    ``value`` is the decoded value (a string literal's text, a number, a date, a UTC datetime
    string); for strings ``like`` is the same literal as an SQLite LIKE pattern with ``\\`` as
    the escape character, so that ``\\%`` and ``\\_`` stay literal while ``%`` and ``_`` match.
    """

    kind: str
    text: str
    start: int
    end: int
    value: Any = None
    like: str | None = None

    def upper(self) -> str:
        return self.text.upper() if self.kind == IDENT else ""


def _is_ident_start(ch: str) -> bool:
    return ch.isascii() and (ch.isalpha() or ch == "_")


def _is_ident_char(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


class _Lexer:
    """Turns SOQL text into tokens; date, datetime and signed-number literals are single tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.tokens: list[Token] = []

    def error(self, pos: int, message: str, upto: int | None = None) -> SoqlError:
        """A located ``MALFORMED_QUERY``; ``upto`` extends the snippet over the bad text."""
        return SoqlError(MALFORMED_QUERY, _locate(self.text, self.tokens, pos, message, upto))

    def run(self) -> list[Token]:
        text = self.text
        n = len(text)
        while self.pos < n:
            ch = text[self.pos]
            if ch.isspace():
                self.pos += 1
            elif _is_ident_start(ch):
                self._ident()
            elif ch.isdigit() or (ch in "+-" and self._digit_at(self.pos + 1)):
                self._number_or_date()
            elif ch == "'":
                self._string()
            elif ch in "(),.:":
                self.tokens.append(Token(ch, ch, self.pos, self.pos + 1))
                self.pos += 1
            elif ch in "=!<>":
                self._operator()
            else:
                raise self.error(self.pos, f"unexpected token: {ch}", self.pos + 1)
        self.tokens.append(Token(EOF, EOF, n, n))
        return self.tokens

    def _digit_at(self, i: int) -> bool:
        return i < len(self.text) and self.text[i].isdigit()

    def _ident(self) -> None:
        start = self.pos
        while self.pos < len(self.text) and _is_ident_char(self.text[self.pos]):
            self.pos += 1
        word = self.text[start : self.pos]
        self.tokens.append(Token(IDENT, word, start, self.pos, word))

    def _operator(self) -> None:
        start = self.pos
        two = self.text[start : start + 2]
        if two in ("!=", "<>", "<=", ">="):
            self.pos += 2
            op = "!=" if two == "<>" else two
        elif self.text[start] in "=<>":
            self.pos += 1
            op = self.text[start]
        else:
            raise self.error(start, f"unexpected token: {self.text[start]}", start + 1)
        self.tokens.append(Token(OP, self.text[start : self.pos], start, self.pos, op))

    def _run_of_digits(self, i: int) -> int:
        while i < len(self.text) and self.text[i].isdigit():
            i += 1
        return i

    def _word_end(self, i: int) -> int:
        """End of the run of characters that cannot separate tokens (for error messages)."""
        while i < len(self.text) and (_is_ident_char(self.text[i]) or self.text[i] in ".:+-"):
            i += 1
        return i

    def _number_or_date(self) -> None:
        text = self.text
        start = self.pos
        i = start + 1 if text[start] in "+-" else start
        digits_end = self._run_of_digits(i)
        if (
            text[start] not in "+-"
            and digits_end - start == 4
            and text[digits_end : digits_end + 1] == "-"
        ):
            self._date(start)
            return
        end = digits_end
        is_float = False
        if text[end : end + 1] == "." and self._digit_at(end + 1):
            end = self._run_of_digits(end + 1)
            is_float = True
        if end < len(text) and _is_ident_char(text[end]):
            bad_end = self._word_end(end)
            raise self.error(start, f"unexpected token: {text[start:bad_end]}", bad_end)
        literal = text[start:end]
        value: int | float = float(literal) if is_float else int(literal)
        self.tokens.append(Token(NUMBER, literal, start, end, value))
        self.pos = end

    def _date(self, start: int) -> None:
        text = self.text
        end = self._word_end(start)
        literal = text[start:end]
        value = _parse_date_or_datetime(literal)
        if value is None:
            raise self.error(start, f"unexpected token: {literal}", end)
        kind, normalised = value
        self.tokens.append(Token(kind, literal, start, end, normalised))
        self.pos = end

    def _string(self) -> None:
        text = self.text
        start = self.pos
        i = start + 1
        plain: list[str] = []
        like: list[str] = []
        while True:
            if i >= len(text):
                raise self.error(start, f"unexpected token: {text[start:]}", len(text))
            ch = text[i]
            if ch == "'":
                i += 1
                break
            if ch == "\\":
                nxt = text[i + 1 : i + 2]
                if nxt in ("%", "_"):
                    plain.append(nxt)
                    like.append("\\" + nxt)
                elif nxt in _STRING_ESCAPES:
                    decoded = _STRING_ESCAPES[nxt]
                    plain.append(decoded)
                    like.append("\\\\" if decoded == "\\" else decoded)
                else:
                    raise self.error(
                        start,
                        f"Invalid string literal '{text[start + 1 : i + 2]}'. Illegal character "
                        f"sequence '\\{nxt}' in string literal.",
                        i + 2,
                    )
                i += 2
                continue
            plain.append(ch)
            like.append(ch)
            i += 1
        self.tokens.append(Token(STRING, text[start:i], start, i, "".join(plain), "".join(like)))
        self.pos = i


def _parse_date_or_datetime(literal: str) -> tuple[str, str] | None:
    """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm:ss[.f{1,6}](Z|±hh:mm)``.

    Returns ``(DATE, 'YYYY-MM-DD')`` or ``(DATETIME, 'YYYY-MM-DDTHH:MM:SS.sssZ')`` in UTC,
    the exact text form the store keeps, so a plain text comparison orders correctly.
    Fractions beyond milliseconds are truncated, as Salesforce keeps milliseconds only.
    """
    if len(literal) < 10 or literal[4] != "-" or literal[7] != "-":
        return None
    y, m, d = literal[0:4], literal[5:7], literal[8:10]
    if not (y.isdigit() and m.isdigit() and d.isdigit()):
        return None
    try:
        day = dt.date(int(y), int(m), int(d))
    except ValueError:
        return None
    rest = literal[10:]
    if not rest:
        return DATE, day.isoformat()
    if len(rest) < 10 or rest[0] not in "Tt" or rest[3] != ":" or rest[6] != ":":
        return None
    hh, mi, ss = rest[1:3], rest[4:6], rest[7:9]
    if not (hh.isdigit() and mi.isdigit() and ss.isdigit()):
        return None
    i = 9
    micros = 0
    if rest[i : i + 1] == ".":
        j = i + 1
        while j < len(rest) and rest[j].isdigit():
            j += 1
        fraction = rest[i + 1 : j]
        if not 1 <= len(fraction) <= 6:
            return None
        micros = int(fraction.ljust(6, "0"))
        i = j
    zone = rest[i:]
    if zone in ("Z", "z"):
        offset = dt.timedelta(0)
    elif (
        len(zone) == 6
        and zone[0] in "+-"
        and zone[3] == ":"
        and zone[1:3].isdigit()
        and zone[4:6].isdigit()
    ):
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if zone[0] == "-":
            offset = -offset
    else:
        return None
    try:
        moment = dt.datetime(day.year, day.month, day.day, int(hh), int(mi), int(ss), micros)
    except ValueError:
        return None
    return DATETIME, format_utc(moment - offset)


def format_utc(moment: dt.datetime) -> str:
    """Format a UTC datetime (naive or aware) the way the store keeps it (``…T…:SS.sssZ``)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tokenize(text: str) -> list[Token]:
    """Split SOQL text into tokens (the last one is ``EOF``); raises ``MALFORMED_QUERY``."""
    return _Lexer(text).run()


def _locate(
    text: str, tokens: Sequence[Token], pos: int, message: str, upto: int | None = None
) -> str:
    """Prefix ``message`` with Salesforce's error location: snippet, caret line, row and column.

    The snippet is the tokens of the offending line that reach into the 32 characters either
    side of the error (leading commas dropped), as in the recorded messages.
    """
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    if line_end < 0:
        line_end = len(text)
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    near = [
        t
        for t in tokens
        if t.kind != EOF
        and t.start >= line_start
        and t.end <= line_end
        and t.end > pos - 32
        and t.start <= pos + 32
    ]
    while near and near[0].kind == COMMA and near[0].start < pos:
        near.pop(0)
    if near:
        first = min(near[0].start, pos)
        last = max(near[-1].end, pos)
    else:
        first = last = pos
    if upto is not None:
        last = max(last, min(upto, line_end))
    snippet = text[first:last]
    caret = " " * (pos - first) + "^"
    return f"\n{snippet}\n{caret}\nERROR at Row:{row}:Column:{column}\n{message}"


# ----------------------------------------------------------------------------------------------
# Syntax tree
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    """A field reference as written: ``segments`` (``('Account', 'Owner', 'Name')``) and where."""

    segments: tuple[str, ...]
    start: int
    end: int

    @property
    def text(self) -> str:
        return ".".join(self.segments)


@dataclass(frozen=True)
class Literal:
    """A filter value: ``kind`` is one of string, number, date, datetime, boolean, null, relative.

    ``value`` holds the decoded value (for ``relative``: ``(NAME, n or None)``); ``like`` the
    LIKE-pattern form of a string literal.
    """

    kind: str
    value: Any
    start: int
    end: int
    text: str
    like: str | None = None


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``op`` is one of ``= != < <= > >= LIKE IN NOT IN INCLUDES EXCLUDES``."""

    field: FieldPath
    op: str
    values: tuple[Literal, ...]
    start: int


@dataclass(frozen=True)
class Logical:
    """``AND``/``OR`` over two or more conditions (SOQL never mixes them without parentheses)."""

    op: str
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """``NOT condition``."""

    item: Condition


Condition = Comparison | Logical | Not


@dataclass(frozen=True)
class OrderKey:
    """One ``ORDER BY`` key; ``nulls_first`` defaults to True as in SOQL, whatever the direction."""

    field: FieldPath
    descending: bool
    nulls_first: bool


@dataclass
class Select:
    """A parsed SOQL query, with the source text and tokens kept for located error messages."""

    fields: list[FieldPath]
    object_name: str
    object_start: int
    where: Condition | None = None
    order_by: list[OrderKey] = field(default_factory=list)
    limit: int | None = None
    text: str = ""
    tokens: list[Token] = field(default_factory=list, repr=False)
    #: ``SELECT COUNT() FROM …`` (REST only): ``fields`` holds just ``Id`` so the query compiles
    #: like any other, and the caller answers with the number of rows instead of the rows.
    count_only: bool = False

    def error(self, code: str, pos: int, message: str) -> SoqlError:
        """A :class:`SoqlError` located at offset ``pos`` of the query text."""
        return SoqlError(code, _locate(self.text, self.tokens, pos, message))

    def conditions(self) -> Iterator[Comparison]:
        """Every comparison of the WHERE clause, depth first."""
        stack: list[Condition] = [self.where] if self.where is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, Comparison):
                yield node
            elif isinstance(node, Not):
                stack.append(node.item)
            else:
                stack.extend(reversed(node.items))


# ----------------------------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------------------------

_AGGREGATES = {"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"}
_RELATIVE_FIXED = {
    "TODAY", "YESTERDAY", "TOMORROW",
    "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK",
    "LAST_MONTH", "THIS_MONTH", "NEXT_MONTH",
    "LAST_90_DAYS", "NEXT_90_DAYS",
    "THIS_QUARTER", "LAST_QUARTER", "NEXT_QUARTER",
    "THIS_YEAR", "LAST_YEAR", "NEXT_YEAR",
    "THIS_FISCAL_QUARTER", "LAST_FISCAL_QUARTER", "NEXT_FISCAL_QUARTER",
    "THIS_FISCAL_YEAR", "LAST_FISCAL_YEAR", "NEXT_FISCAL_YEAR",
}  # fmt: skip
_RELATIVE_N = {
    "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO",
    "LAST_N_WEEKS", "NEXT_N_WEEKS", "N_WEEKS_AGO",
    "LAST_N_MONTHS", "NEXT_N_MONTHS", "N_MONTHS_AGO",
    "LAST_N_QUARTERS", "NEXT_N_QUARTERS", "N_QUARTERS_AGO",
    "LAST_N_YEARS", "NEXT_N_YEARS", "N_YEARS_AGO",
    "LAST_N_FISCAL_QUARTERS", "NEXT_N_FISCAL_QUARTERS", "N_FISCAL_QUARTERS_AGO",
    "LAST_N_FISCAL_YEARS", "NEXT_N_FISCAL_YEARS", "N_FISCAL_YEARS_AGO",
}  # fmt: skip
# Clauses Bulk refuses, by the keyword that opens them.
_BULK_CLAUSES = {
    "GROUP": "GROUP BY not supported in Bulk Query",
    "HAVING": "HAVING not supported in Bulk Query",
    "OFFSET": "OFFSET not supported in Bulk Query",
    "FOR": "FOR UPDATE, FOR VIEW and FOR REFERENCE not supported in Bulk Query",
    "WITH": "WITH not supported in Bulk Query",
    "USING": "USING SCOPE not supported in Bulk Query",
}


class _Parser:
    def __init__(self, text: str, bulk: bool = True) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.bulk = bulk

    # -- token helpers ---------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def unexpected(self, tok: Token | None = None) -> SoqlError:
        tok = tok or self.tok
        return SoqlError(
            MALFORMED_QUERY,
            _locate(self.text, self.tokens, tok.start, f"unexpected token: {tok.text}"),
        )

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind == IDENT and self.tok.upper() in words

    def expect_keyword(self, word: str) -> Token:
        if not self.at_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.unexpected()
        return self.advance()

    def bulk_unsupported(self, message: str) -> SoqlError:
        return SoqlError(FUNCTIONALITY_NOT_ENABLED, message)

    # -- grammar ---------------------------------------------------------------------------

    def select(self) -> Select:
        self.expect_keyword("SELECT")
        count = self.count_star()
        if count is not None:
            fields = [count]
        else:
            fields = [self.select_item()]
            while self.tok.kind == COMMA:
                self.advance()
                fields.append(self.select_item())
        self.expect_keyword("FROM")
        obj = self.expect(IDENT)
        query = Select(fields, obj.text, obj.start, text=self.text, tokens=self.tokens,
                       count_only=count is not None)
        word = self.tok.upper()
        if word and word not in _BULK_CLAUSES and word not in ("WHERE", "ORDER", "LIMIT"):
            # An alias (``FROM Contact c``) is not something Bulk jobs are built with; refuse
            # it like any other stray word rather than half-support it.
            raise self.unexpected()
        self.check_bulk_clause()
        if self.at_keyword("WHERE"):
            self.advance()
            query.where = self.condition()
        self.check_bulk_clause()
        if self.at_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            query.order_by = [self.order_key()]
            while self.tok.kind == COMMA:
                self.advance()
                query.order_by.append(self.order_key())
        self.check_bulk_clause()
        if self.at_keyword("LIMIT"):
            self.advance()
            query.limit = self.limit_value()
        self.check_bulk_clause()
        if self.tok.kind != EOF:
            raise self.unexpected()
        return query

    def count_star(self) -> FieldPath | None:
        """``COUNT()`` as the whole select list, outside Bulk: the ``Id`` path it counts."""
        tok = self.tok
        if (
            self.bulk
            or tok.kind != IDENT
            or tok.upper() != "COUNT"
            or self.peek().kind != LPAREN
            or self.peek(2).kind != RPAREN
            or not (self.peek(3).kind == IDENT and self.peek(3).upper() == "FROM")
        ):
            return None
        end = self.peek(2).end
        self.i += 3
        return FieldPath(("Id",), tok.start, end)

    def check_bulk_clause(self) -> None:
        if self.tok.kind == IDENT and self.tok.upper() in _BULK_CLAUSES:
            raise self.bulk_unsupported(_BULK_CLAUSES[self.tok.upper()])

    def select_item(self) -> FieldPath:
        tok = self.tok
        if tok.kind == LPAREN and self.peek().kind == IDENT and self.peek().upper() == "SELECT":
            raise self.bulk_unsupported(SUBQUERY_NOT_SUPPORTED)
        if tok.kind == IDENT and tok.upper() == "TYPEOF" and self.peek().kind == IDENT:
            raise self.bulk_unsupported("TYPEOF not supported in Bulk Query")
        if tok.kind == IDENT and self.peek().kind == LPAREN:
            if tok.upper() in _AGGREGATES:
                raise self.bulk_unsupported(AGGREGATE_NOT_SUPPORTED)
            raise self.unexpected(self.peek())
        path = self.field_path()
        if self.tok.kind == IDENT and self.tok.upper() != "FROM":
            # ``SELECT Name n FROM`` (an alias) is only legal in aggregate queries.
            raise self.unexpected()
        return path

    def field_path(self) -> FieldPath:
        first = self.expect(IDENT)
        segments = [first.text]
        end = first.end
        while self.tok.kind == DOT:
            self.advance()
            seg = self.expect(IDENT)
            segments.append(seg.text)
            end = seg.end
        return FieldPath(tuple(segments), first.start, end)

    def condition(self) -> Condition:
        """``[NOT] simple (AND simple)*`` or ``… (OR simple)*`` — mixing needs parentheses."""
        first: Condition
        if self.at_keyword("NOT"):
            self.advance()
            first = Not(self.simple())
        else:
            first = self.simple()
        if not self.at_keyword("AND", "OR"):
            return first
        op = self.tok.upper()
        items = [first]
        while self.at_keyword("AND", "OR"):
            if self.tok.upper() != op:
                raise self.unexpected()
            self.advance()
            if self.at_keyword("NOT"):
                raise self.unexpected()
            items.append(self.simple())
        return Logical(op, tuple(items))

    def simple(self) -> Condition:
        if self.tok.kind == LPAREN:
            self.advance()
            inner = self.condition()
            self.expect(RPAREN)
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        if self.tok.kind == IDENT and self.peek().kind == LPAREN:
            # Date functions (CALENDAR_YEAR(…)) and the like are not part of this subset.
            raise self.unexpected(self.peek())
        path = self.field_path()
        tok = self.tok
        if tok.kind == OP:
            self.advance()
            return Comparison(path, tok.value, (self.value(),), tok.start)
        word = tok.upper()
        if word == "LIKE":
            self.advance()
            value = self.value()
            return Comparison(path, "LIKE", (value,), tok.start)
        if word == "NOT" and self.peek().kind == IDENT and self.peek().upper() == "IN":
            self.advance()
            self.advance()
            return Comparison(path, "NOT IN", self.value_list(), tok.start)
        if word in ("IN", "INCLUDES", "EXCLUDES"):
            self.advance()
            return Comparison(path, word, self.value_list(), tok.start)
        raise self.unexpected()

    def value_list(self) -> tuple[Literal, ...]:
        self.expect(LPAREN)
        if self.at_keyword("SELECT"):
            raise self.bulk_unsupported("Semi join sub-selects not supported in Bulk Query")
        values = [self.value()]
        while self.tok.kind == COMMA:
            self.advance()
            values.append(self.value())
        self.expect(RPAREN)
        return tuple(values)

    def value(self) -> Literal:
        tok = self.tok
        if tok.kind == STRING:
            self.advance()
            return Literal("string", tok.value, tok.start, tok.end, tok.text, tok.like)
        if tok.kind == NUMBER:
            self.advance()
            return Literal("number", tok.value, tok.start, tok.end, tok.text)
        if tok.kind in (DATE, DATETIME):
            self.advance()
            return Literal(tok.kind, tok.value, tok.start, tok.end, tok.text)
        if tok.kind == COLON:
            raise SoqlError(
                MALFORMED_QUERY,
                _locate(
                    self.text, self.tokens, tok.start, "Bind variables only allowed in Apex code"
                ),
            )
        if tok.kind == IDENT:
            word = tok.upper()
            if word in ("TRUE", "FALSE"):
                self.advance()
                return Literal("boolean", word == "TRUE", tok.start, tok.end, tok.text)
            if word == "NULL":
                self.advance()
                return Literal("null", None, tok.start, tok.end, tok.text)
            if word in _RELATIVE_FIXED:
                self.advance()
                return Literal("relative", (word, None), tok.start, tok.end, tok.text)
            if word in _RELATIVE_N:
                self.advance()
                self.expect(COLON)
                num = self.tok
                if num.kind != NUMBER or not isinstance(num.value, int) or num.text[0] in "+-":
                    raise self.unexpected()
                self.advance()
                if num.value > _INT32_MAX:
                    raise SoqlError(
                        MALFORMED_QUERY,
                        _locate(
                            self.text,
                            self.tokens,
                            num.start,
                            f"numeric value out of range: {num.text}",
                        ),
                    )
                return Literal(
                    "relative",
                    (word, num.value),
                    tok.start,
                    num.end,
                    self.text[tok.start : num.end],
                )
        raise self.unexpected()

    def order_key(self) -> OrderKey:
        path = self.field_path()
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().upper() == "DESC"
        nulls_first = True
        if self.at_keyword("NULLS"):
            self.advance()
            if not self.at_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().upper() == "FIRST"
        return OrderKey(path, descending, nulls_first)

    def limit_value(self) -> int:
        tok = self.tok
        if tok.kind != NUMBER or not isinstance(tok.value, int) or tok.text[0] in "+-":
            raise self.unexpected()
        self.advance()
        if tok.value > _INT32_MAX:
            raise SoqlError(
                MALFORMED_QUERY,
                _locate(
                    self.text, self.tokens, tok.start, f"numeric value out of range: {tok.text}"
                ),
            )
        return tok.value


def parse(soql: str, *, bulk: bool = True) -> Select:
    """Parse SOQL text into a :class:`Select`.

    Args:
        soql: the query text.
        bulk: parse for the Bulk APIs. Without it (REST) ``SELECT COUNT() FROM …`` is accepted
            as a :attr:`Select.count_only` query; Bulk refuses every aggregate.

    Raises:
        SoqlError: ``MALFORMED_QUERY`` for syntax errors, ``FUNCTIONALITY_NOT_ENABLED`` for the
            constructs Bulk queries refuse (aggregates, subqueries, GROUP BY, OFFSET, TYPEOF …).
    """
    return _Parser(soql, bulk).select()


# ----------------------------------------------------------------------------------------------
# Relative date literals
# ----------------------------------------------------------------------------------------------

# name -> (unit, first unit counted from the current one, number of units, sign applied to ``n``
# for the first unit); a None offset or count is taken from the literal's ``n``.
_RELATIVE_SPANS: dict[str, tuple[str, int | None, int | None, int]] = {
    "TODAY": ("day", 0, 1, 0),
    "YESTERDAY": ("day", -1, 1, 0),
    "TOMORROW": ("day", 1, 1, 0),
    "THIS_WEEK": ("week", 0, 1, 0),
    "LAST_WEEK": ("week", -1, 1, 0),
    "NEXT_WEEK": ("week", 1, 1, 0),
    "THIS_MONTH": ("month", 0, 1, 0),
    "LAST_MONTH": ("month", -1, 1, 0),
    "NEXT_MONTH": ("month", 1, 1, 0),
    "THIS_QUARTER": ("quarter", 0, 1, 0),
    "LAST_QUARTER": ("quarter", -1, 1, 0),
    "NEXT_QUARTER": ("quarter", 1, 1, 0),
    "THIS_YEAR": ("year", 0, 1, 0),
    "LAST_YEAR": ("year", -1, 1, 0),
    "NEXT_YEAR": ("year", 1, 1, 0),
    # Salesforce: LAST_90_DAYS / LAST_N_DAYS:n include today; NEXT_… start tomorrow.
    "LAST_90_DAYS": ("day", -90, 91, 0),
    "NEXT_90_DAYS": ("day", 1, 90, 0),
    "LAST_N_DAYS": ("day", None, None, -1),
    "NEXT_N_DAYS": ("day", 1, None, 1),
    "N_DAYS_AGO": ("day", None, 1, -1),
    "LAST_N_WEEKS": ("week", None, None, -1),
    "NEXT_N_WEEKS": ("week", 1, None, 1),
    "N_WEEKS_AGO": ("week", None, 1, -1),
    "LAST_N_MONTHS": ("month", None, None, -1),
    "NEXT_N_MONTHS": ("month", 1, None, 1),
    "N_MONTHS_AGO": ("month", None, 1, -1),
    "LAST_N_QUARTERS": ("quarter", None, None, -1),
    "NEXT_N_QUARTERS": ("quarter", 1, None, 1),
    "N_QUARTERS_AGO": ("quarter", None, 1, -1),
    "LAST_N_YEARS": ("year", None, None, -1),
    "NEXT_N_YEARS": ("year", 1, None, 1),
    "N_YEARS_AGO": ("year", None, 1, -1),
}


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def relative_date_range(name: str, n: int | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The ``[start, end)`` dates a relative date literal covers, for a given current day.

    Weeks start on Sunday (the en_US locale); fiscal literals use the calendar year, the
    default fiscal year of a new org; ``LAST_N_DAYS:n`` spans today and the ``n`` days before.
    """
    key = name.replace("_FISCAL", "")
    unit, start, span, sign = _RELATIVE_SPANS[key]
    if key == "LAST_N_DAYS":
        assert n is not None
        start, span = -n, n + 1
    if start is None:
        assert n is not None
        start = sign * n
    if span is None:
        assert n is not None
        span = n
    if unit == "day":
        return today + dt.timedelta(days=start), today + dt.timedelta(days=start + span)
    if unit == "week":
        sunday = today - dt.timedelta(days=(today.weekday() + 1) % 7)
        return sunday + dt.timedelta(weeks=start), sunday + dt.timedelta(weeks=start + span)
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    first = dt.date(today.year, 1 if unit == "year" else today.month, 1)
    if unit == "quarter":
        first = dt.date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    return _add_months(first, start * months), _add_months(first, (start + span) * months)


# ----------------------------------------------------------------------------------------------
# Compiler
# ----------------------------------------------------------------------------------------------

_STRING_TYPES = frozenset(
    {
        "string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url",
        "encryptedstring", "anyType",
    }
)  # fmt: skip
_NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})
_ID_TYPES = frozenset({"id", "reference"})
_COMPOUND_TYPES = frozenset({"address", "location"})
# How Salesforce names a field's type in "value of filter criterion … must be of type X".
_FILTER_TYPE_NAMES = {
    "int": "integer",
    "long": "long",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "boolean": "boolean",
    "date": "date",
    "datetime": "dateTime",
    "time": "time",
    "id": "id",
    "reference": "id",
}


@dataclass(frozen=True)
class SelectParts:
    """The pieces a compiled query was assembled from, for callers that select other
    expressions over the same rows (the Bulk spoolers build whole CSV lines in SQL).

    ``SELECT <exprs> FROM <source> WHERE <where…> ORDER BY <order…> LIMIT <limit>`` is the
    compiled query; the root table is always aliased ``t0``. ``expr_params`` holds the
    parameters of the select list (rare: polymorphic ``Type`` columns), ``where_params`` and
    ``order_params`` those of their clauses. ``sorted`` tells whether the query had an ORDER BY
    of its own (otherwise rows come in ``t0."Id"`` order, which keyset paging can follow).
    """

    exprs: tuple[str, ...]
    expr_params: tuple[Any, ...]
    source: str
    where: tuple[str, ...]
    where_params: tuple[Any, ...]
    order: tuple[str, ...]
    order_params: tuple[Any, ...]
    limit: int | None
    sorted: bool

    def sql(self, select: str, *, extra_where: Sequence[str] = (), order: bool = True,
            limit: bool = True) -> str:
        """The query with ``select`` as its select list and ``extra_where`` ANDed in.

        Parameters follow in the order ``where_params`` (then those of ``extra_where``, which
        the caller appends), ``order_params`` when ``order``, the limit when ``limit`` and the
        query has one; ``select`` must not use parameters.
        """
        text = f"SELECT {select} FROM {self.source}"
        where = [*self.where, *extra_where]
        if where:
            text += " WHERE " + " AND ".join(where)
        if order:
            text += " ORDER BY " + ", ".join(self.order)
        if limit and self.limit is not None:
            text += " LIMIT ?"
        return text


class CompiledQuery(tuple):
    """``(sql, params, columns, field_types)``, also readable by name, plus ``object``.

    ``columns`` are the header names Bulk writes (``Id``, ``Account.Name``), ``field_types``
    the describe type of each column, ``object`` the API name of the queried sObject, and
    ``parts`` the :class:`SelectParts` it was built from (None when built by hand).
    """

    object: str
    parts: SelectParts | None

    def __new__(
        cls,
        sql: str,
        params: list[Any],
        columns: list[str],
        field_types: list[str],
        object_name: str,
        parts: SelectParts | None = None,
    ) -> CompiledQuery:
        self = super().__new__(cls, (sql, params, columns, field_types))
        self.object = object_name
        self.parts = parts
        return self

    @property
    def sql(self) -> str:
        return self[0]

    @property
    def params(self) -> list[Any]:
        return self[1]

    @property
    def columns(self) -> list[str]:
        return self[2]

    @property
    def field_types(self) -> list[str]:
        return self[3]


@dataclass
class _Resolved:
    """A field path resolved to an SQL expression over the joined tables."""

    sql: str
    params: list[Any]
    fdef: FieldDef
    header: str


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Compiler:
    def __init__(
        self,
        select: Select,
        catalog: Catalog,
        *,
        include_deleted: bool,
        now: dt.datetime | None,
        bulk: bool,
    ) -> None:
        self.select = select
        self.catalog = catalog
        self.include_deleted = include_deleted
        self.bulk = bulk
        if now is None:
            now = dt.datetime.now(dt.timezone.utc)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=dt.timezone.utc)
        self.today = now.astimezone(dt.timezone.utc).date()
        self.root = resolve_object(select, catalog, bulk=bulk)
        self.joins: list[str] = []
        self.join_aliases: dict[tuple[str, str, str], str] = {}

    # -- paths -----------------------------------------------------------------------------

    def join(self, alias: str, ref: FieldDef, target: SObjectDef) -> str:
        key = (alias, ref.name, target.name)
        found = self.join_aliases.get(key)
        if found is None:
            found = f"t{len(self.join_aliases) + 1}"
            self.join_aliases[key] = found
            self.joins.append(
                f"LEFT JOIN {_quote(target.name)} AS {found} "
                f'ON {found}."Id" = {alias}.{_quote(ref.name)}'
            )
        return found

    def resolve(self, path: FieldPath) -> _Resolved:
        """Resolve a path, joining parents; a polymorphic hop follows every possible target.

        Ids are unique across objects, so joining each target table on the id only matches the
        type the row really points at; the value is the COALESCE of the branches.
        """
        select = self.select
        segments = list(path.segments)
        if (
            len(segments) > 1
            and segments[0].lower() == self.root.name.lower()
            and self.root.relationship(segments[0]) is None
        ):
            segments = segments[1:]  # ``SELECT Account.Name FROM Account`` qualifies by object
        if len(segments) - 1 > _MAX_RELATIONSHIP_LEVELS:
            raise select.error(
                INVALID_FIELD,
                path.start,
                "A driving SObject type can only be followed by up to 5 levels of parent "
                "relationships",
            )
        # A branch is one way down the path: the object reached, the hops taken, the header.
        branches: list[tuple[SObjectDef, list[tuple[FieldDef, SObjectDef]], list[str]]] = [
            (self.root, [], [])
        ]
        polymorphic = False
        for seg in segments[:-1]:
            next_branches: list[
                tuple[SObjectDef, list[tuple[FieldDef, SObjectDef]], list[str]]
            ] = []
            polymorphic = False
            for obj, hops, header in branches:
                ref = obj.relationship(seg)
                if ref is None or not ref.relationship_name:
                    continue
                targets = [t for t in (self.catalog.get(n) for n in ref.reference_to) if t]
                polymorphic = polymorphic or len(ref.reference_to) > 1
                for target in targets:
                    next_branches.append(
                        (target, [*hops, (ref, target)], [*header, ref.relationship_name])
                    )
            if not next_branches:
                raise select.error(
                    INVALID_FIELD,
                    path.start,
                    f"Didn't understand relationship '{seg}' in field path. "
                    + _CUSTOM_RELATIONSHIP_HINT,
                )
            branches = next_branches
        last = segments[-1]
        if polymorphic and last.lower() == "type":
            # Polymorphic parents are read through the Name entity, whose Type is the object.
            return self.polymorphic_type(branches)
        hits: list[tuple[str, FieldDef, list[str]]] = []
        for obj, hops, header in branches:
            fdef = obj.field(last)
            if fdef is None:
                continue
            alias = "t0"
            for ref, target in hops:  # join only the tables a branch that resolves needs
                alias = self.join(alias, ref, target)
            hits.append((alias, fdef, header))
        if not hits:
            entity = "Name" if polymorphic else branches[0][0].name
            raise select.error(
                INVALID_FIELD,
                path.start,
                f"No such column '{last}' on entity '{entity}'. {_CUSTOM_FIELD_HINT}",
            )
        alias, fdef, header = hits[0]
        if len(hits) == 1:
            sql = f"{alias}.{_quote(fdef.name)}"
        else:
            sql = "COALESCE(" + ", ".join(f"{a}.{_quote(f.name)}" for a, f, _ in hits) + ")"
        return _Resolved(sql, [], fdef, ".".join([*header, fdef.name]))

    def polymorphic_type(
        self, branches: list[tuple[SObjectDef, list[tuple[FieldDef, SObjectDef]], list[str]]]
    ) -> _Resolved:
        """``What.Type``: the object a polymorphic reference points at, told by its key prefix."""
        from sfbulk.emulator.metadata import FieldDef

        _obj, hops, header = branches[0]
        alias = "t0"
        for ref, target in hops[:-1]:
            alias = self.join(alias, ref, target)
        ref = hops[-1][0]
        column = f"{alias}.{_quote(ref.name)}"
        whens: list[str] = []
        params: list[Any] = []
        for name in ref.reference_to:
            pointed = self.catalog.get(name)
            if pointed is not None and pointed.key_prefix:
                whens.append("WHEN ? THEN ?")
                params.extend([pointed.key_prefix, pointed.name])
        if not whens:
            return _Resolved("NULL", [], FieldDef("Type", "picklist"), ".".join([*header, "Type"]))
        sql = f"CASE substr({column}, 1, 3) {' '.join(whens)} END"
        return _Resolved(sql, params, FieldDef("Type", "picklist"), ".".join([*header, "Type"]))

    # -- clauses ---------------------------------------------------------------------------

    def select_list(self) -> tuple[list[str], list[Any], list[str], list[str]]:
        exprs: list[str] = []
        params: list[Any] = []
        columns: list[str] = []
        types: list[str] = []
        seen: set[str] = set()
        for path in self.select.fields:
            res = self.resolve(path)
            if res.fdef.type in _COMPOUND_TYPES:
                if self.bulk:
                    raise SoqlError(FUNCTIONALITY_NOT_ENABLED, COMPOUND_NOT_SUPPORTED)
                raise self.select.error(
                    INVALID_FIELD, path.start, f"Compound field '{res.header}' has no column here"
                )
            if res.fdef.type == "base64" and self.bulk:
                raise SoqlError(FUNCTIONALITY_NOT_ENABLED, BASE64_NOT_SUPPORTED)
            if res.header.lower() in seen:
                raise SoqlError(INVALID_FIELD, f"duplicate field selected: {res.header}")
            seen.add(res.header.lower())
            exprs.append(res.sql)
            params.extend(res.params)
            columns.append(res.header)
            types.append(res.fdef.type)
        return exprs, params, columns, types

    def condition(self, node: Condition, params: list[Any]) -> str:
        if isinstance(node, Comparison):
            return self.comparison(node, params)
        if isinstance(node, Not):
            # SOQL logic is two-valued: a comparison on a null is false, so its negation is true.
            return f"NOT coalesce({self.condition(node.item, params)}, 0)"
        joiner = f" {node.op} "
        return "(" + joiner.join(self.condition(item, params) for item in node.items) + ")"

    def type_error(self, fdef: FieldDef, lit: Literal) -> SoqlError:
        quoted = fdef.type in _STRING_TYPES or fdef.type in _ID_TYPES
        type_name = _FILTER_TYPE_NAMES.get(fdef.type, "string")
        advice = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
        return self.select.error(
            INVALID_FIELD,
            lit.start,
            f"value of filter criterion for field '{fdef.name}' must be of type {type_name} and "
            f"{advice}",
        )

    def scalar(self, fdef: FieldDef, lit: Literal) -> Any:
        """The SQL parameter a literal compares as, or a type error as Salesforce reports it."""
        ftype = fdef.type
        if lit.kind == "null":
            return None
        if ftype in _STRING_TYPES:
            if lit.kind != "string":
                raise self.type_error(fdef, lit)
            return lit.value
        if ftype in _ID_TYPES:
            if lit.kind != "string":
                raise self.type_error(fdef, lit)
            if not is_valid_id(lit.value):
                raise self.select.error(
                    INVALID_QUERY_FILTER_OPERATOR, lit.start, f"invalid ID field: {lit.value}"
                )
            return to18(lit.value)
        if ftype == "boolean":
            if lit.kind != "boolean":
                raise self.type_error(fdef, lit)
            return 1 if lit.value else 0
        if ftype in _NUMBER_TYPES:
            if lit.kind != "number":
                raise self.type_error(fdef, lit)
            return lit.value
        if ftype == "date":
            if lit.kind != "date":
                raise self.type_error(fdef, lit)
            return lit.value
        if ftype == "datetime":
            if lit.kind != "datetime":
                raise self.type_error(fdef, lit)
            return lit.value
        raise self.type_error(fdef, lit)

    def relative_bounds(self, fdef: FieldDef, lit: Literal) -> tuple[str, str]:
        if fdef.type not in ("date", "datetime"):
            raise self.type_error(fdef, lit)
        name, n = lit.value
        start, end = relative_date_range(name, n, self.today)
        if fdef.type == "date":
            return start.isoformat(), end.isoformat()
        return start.isoformat() + "T00:00:00.000Z", end.isoformat() + "T00:00:00.000Z"

    def comparison(self, node: Comparison, params: list[Any]) -> str:
        res = self.resolve(node.field)
        fdef = res.fdef
        expr = res.sql
        if fdef.type in _COMPOUND_TYPES or fdef.filterable is False:
            raise self.select.error(
                INVALID_FIELD,
                node.field.start,
                f"field '{fdef.name}' can not be filtered in query call",
            )
        params.extend(res.params)
        collated = f"{expr} COLLATE NOCASE" if fdef.type in _STRING_TYPES else expr
        op = node.op
        if op == "LIKE":
            lit = node.values[0]
            if fdef.type not in _STRING_TYPES:
                raise self.select.error(
                    INVALID_QUERY_FILTER_OPERATOR,
                    node.start,
                    f"invalid operator on field '{fdef.name}': LIKE applies to text fields only",
                )
            if lit.kind != "string":
                raise self.type_error(fdef, lit)
            params.append(lit.like)
            return f"{expr} LIKE ? ESCAPE '\\'"
        if op in ("INCLUDES", "EXCLUDES"):
            return self.includes(node, fdef, expr, params)
        if op in ("IN", "NOT IN"):
            return self.in_list(node, fdef, expr, collated, params)
        lit = node.values[0]
        if lit.kind == "relative":
            lo, hi = self.relative_bounds(fdef, lit)
            return self.range_comparison(op, expr, lo, hi, params)
        value = self.scalar(fdef, lit)
        if value is None:
            if op == "=":
                return f"{expr} IS NULL"
            if op == "!=":
                return f"{expr} IS NOT NULL"
            return "0"  # an ordering comparison with null matches nothing
        params.append(value)
        if op == "!=":
            return f"{collated} IS NOT ?"  # SOQL's != matches null values too
        return f"{collated} {op} ?"

    @staticmethod
    def range_comparison(op: str, expr: str, lo: str, hi: str, params: list[Any]) -> str:
        if op == "=":
            params.extend([lo, hi])
            return f"({expr} >= ? AND {expr} < ?)"
        if op == "!=":
            params.extend([lo, hi])
            return f"({expr} IS NULL OR {expr} < ? OR {expr} >= ?)"
        bound, sql_op = {"<": (lo, "<"), "<=": (hi, "<"), ">": (hi, ">="), ">=": (lo, ">=")}[op]
        params.append(bound)
        return f"{expr} {sql_op} ?"

    def in_list(
        self, node: Comparison, fdef: FieldDef, expr: str, collated: str, params: list[Any]
    ) -> str:
        terms: list[str] = []
        plain: list[Any] = []
        has_null = False
        term_params: list[Any] = []
        for lit in node.values:
            if lit.kind == "relative":
                lo, hi = self.relative_bounds(fdef, lit)
                terms.append(self.range_comparison("=", expr, lo, hi, term_params))
                continue
            value = self.scalar(fdef, lit)
            if value is None:
                has_null = True
            else:
                plain.append(value)
        parts: list[str] = []
        if plain:
            parts.append(f"{collated} IN ({', '.join('?' * len(plain))})")
            params.extend(plain)
        parts.extend(terms)
        params.extend(term_params)
        if has_null:
            parts.append(f"{expr} IS NULL")
        matched = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
        if node.op == "IN":
            return matched
        return f"NOT coalesce({matched}, 0)"

    def includes(self, node: Comparison, fdef: FieldDef, expr: str, params: list[Any]) -> str:
        if fdef.type != "multipicklist":
            raise self.select.error(
                INVALID_QUERY_FILTER_OPERATOR,
                node.start,
                "includes or excludes operator only valid on multipicklist field",
            )
        alternatives: list[str] = []
        for lit in node.values:
            if lit.kind != "string":
                raise self.type_error(fdef, lit)
            wanted = [part.strip().lower() for part in lit.value.split(";") if part.strip()]
            if not wanted:
                alternatives.append("0")
                continue
            needles = []
            for part in wanted:
                needles.append(f"instr(';' || lower({expr}) || ';', ?) > 0")
                params.append(f";{part};")
            alternatives.append("(" + " AND ".join(needles) + ")")
        matched = "(" + " OR ".join(alternatives) + ")"
        if node.op == "INCLUDES":
            return f"({expr} IS NOT NULL AND {matched})"
        return f"({expr} IS NULL OR NOT {matched})"

    def order_by(self, params: list[Any]) -> list[str]:
        keys: list[str] = []
        for key in self.select.order_by:
            res = self.resolve(key.field)
            params.extend(res.params)
            if res.fdef.sortable is False or res.fdef.type in _COMPOUND_TYPES:
                raise self.select.error(
                    INVALID_FIELD,
                    key.field.start,
                    f"field '{res.fdef.name}' can not be sorted in a query call",
                )
            expr = res.sql
            if res.fdef.type in _STRING_TYPES:
                expr += " COLLATE NOCASE"
            direction = "DESC" if key.descending else "ASC"
            nulls = "NULLS FIRST" if key.nulls_first else "NULLS LAST"
            keys.append(f"{expr} {direction} {nulls}")
        return keys

    def compile(self, id_range: tuple[str, str | None] | None) -> CompiledQuery:
        exprs, params, columns, types = self.select_list()
        where: list[str] = []
        if not self.include_deleted:  # every table has IsDeleted, even where describe has not
            where.append('t0."IsDeleted" = 0')
        where_params: list[Any] = []
        if self.select.where is not None:
            where.append(self.condition(self.select.where, where_params))
        if id_range is not None:
            lo, hi = id_range
            where.append('t0."Id" >= ?')
            where_params.append(lo)
            if hi is not None:
                where.append('t0."Id" < ?')
                where_params.append(hi)
        order_params: list[Any] = []
        order = self.order_by(order_params)
        # Unsorted results come in creation order, and PK chunks in id order; the Id tiebreak
        # makes sorted results deterministic too.
        order.append('t0."Id"')
        source = f"{_quote(self.root.name)} AS t0"
        if self.joins:
            source += " " + " ".join(self.joins)
        parts = SelectParts(
            exprs=tuple(exprs),
            expr_params=tuple(params),
            source=source,
            where=tuple(where),
            where_params=tuple(where_params),
            order=tuple(order),
            order_params=tuple(order_params),
            limit=self.select.limit,
            sorted=bool(self.select.order_by),
        )
        sql = parts.sql(", ".join(exprs))
        all_params = params + where_params + order_params
        if self.select.limit is not None:
            all_params.append(self.select.limit)
        return CompiledQuery(sql, all_params, columns, types, self.root.name, parts)


def resolve_object(select: Select, catalog: Catalog, *, bulk: bool = True) -> SObjectDef:
    """The sObject a query reads, or the error Salesforce gives for an unknown one.

    Raises:
        SoqlError: ``INVALID_TYPE`` for an unknown or unqueryable object; ``INVALIDENTITY`` when
            ``bulk`` and the object cannot be bulk-queried.
    """
    obj = catalog.get(select.object_name)
    if obj is None or not obj.queryable:
        raise select.error(
            INVALID_TYPE,
            select.object_start,
            f"sObject type '{select.object_name}' is not supported. {_CUSTOM_OBJECT_HINT}",
        )
    if bulk and not obj.bulk_queryable:
        raise SoqlError(INVALIDENTITY, f"{obj.name} is not supported by the Bulk API")
    return obj


def check_root_object(select: Select, expected_object: str, catalog: Catalog | None = None) -> None:
    """Refuse a query whose FROM object is not the Bulk job's object, as Bulk 1.0 does.

    Names compare case-insensitively; with a ``catalog`` the message spells both in API-name
    case (and an unknown FROM object fails first, with ``INVALID_TYPE``).

    Raises:
        SoqlError: ``INVALID_TYPE_FOR_OPERATION`` naming both objects.
    """
    query_name = select.object_name
    expected_name = expected_object
    if catalog is not None:
        query_name = resolve_object(select, catalog, bulk=False).name
        expected = catalog.get(expected_object)
        expected_name = expected.name if expected is not None else expected_object
    if query_name.lower() != expected_name.lower():
        raise SoqlError(
            INVALID_TYPE_FOR_OPERATION,
            f"The root entity of the requested query ({query_name}) does not match the entity "
            f"of the requested Bulk API Job ({expected_name}).",
        )


def compile_select(
    select: Select,
    catalog: Catalog,
    include_deleted: bool = False,
    *,
    expected_object: str | None = None,
    id_range: tuple[str, str | None] | None = None,
    now: dt.datetime | None = None,
    bulk: bool = True,
) -> CompiledQuery:
    """Compile a parsed query to SQLite SQL over the store's tables.

    Args:
        select: the parsed query.
        catalog: the org's objects and fields.
        include_deleted: ``queryAll``: also return soft-deleted rows.
        expected_object: the Bulk job's object; a different FROM object is refused.
        id_range: a PK chunk ``(lo, hi)``: only ids with ``lo <= Id < hi`` (``hi`` None: no
            upper bound). Ids sort in base-62 order under SQLite's binary collation.
        now: the current time for relative date literals (UTC; default: the clock).
        bulk: apply the Bulk-only rejections (compound and base64 fields, objects Bulk cannot
            query); REST queries pass False.

    Returns:
        ``(sql, params, columns, field_types)`` as a :class:`CompiledQuery`.

    Raises:
        SoqlError: with Salesforce's code and message for anything Salesforce would reject.
    """
    compiler = _Compiler(select, catalog, include_deleted=include_deleted, now=now, bulk=bulk)
    if expected_object is not None:
        check_root_object(select, expected_object, catalog)
    return compiler.compile(id_range)


def compile_soql(
    soql: str, catalog: Catalog, include_deleted: bool = False, **kwargs: Any
) -> CompiledQuery:
    """Parse and compile in one step (see :func:`compile_select` for the keyword arguments)."""
    return compile_select(parse(soql), catalog, include_deleted, **kwargs)


def is_pk_chunkable(select: Select, catalog: Catalog) -> bool:
    """Whether Bulk would split this query into PK chunks (§2.9).

    The object must support PK chunking, and the query must neither sort, nor limit, nor
    filter on a field with "id" in its name, each of which makes Salesforce skip chunking.
    """
    obj = catalog.get(select.object_name)
    if obj is None or not obj.pk_chunking:
        return False
    if select.order_by or select.limit is not None:
        return False
    return not any("id" in cmp.field.segments[-1].lower() for cmp in select.conditions())
