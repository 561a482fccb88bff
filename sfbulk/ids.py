"""Salesforce record ids: 15-character base-62 ids and their 18-character case-safe form."""

from __future__ import annotations

import itertools
import threading

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def case_safe_suffix(id15: str) -> str:
    """Return the three check characters Salesforce appends to a 15-character id.

    Each 5-character block yields one character: bit i is set when character i of the
    block is an upper-case letter, and the 5-bit number indexes ``A-Z0-5``.
    """
    if len(id15) != 15:
        raise ValueError(f"a Salesforce id has 15 characters before its suffix: {id15!r}")
    out = []
    for block in range(3):
        bits = 0
        for i, ch in enumerate(id15[block * 5 : block * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(sf_id: str) -> str:
    """Return the 18-character form of a 15- or 18-character id (re-checking an 18-char one)."""
    if len(sf_id) == 18:
        return sf_id[:15] + case_safe_suffix(sf_id[:15])
    return sf_id + case_safe_suffix(sf_id)


def is_valid_id(value: str) -> bool:
    """Tell whether ``value`` is a well-formed 15- or 18-character id (18: with its suffix)."""
    if len(value) not in (15, 18) or any(ch not in _BASE62 for ch in value[:15]):
        return False
    return len(value) == 15 or value[15:] == case_safe_suffix(value[:15])


def encode_base62(number: int, width: int) -> str:
    """Encode ``number`` in base 62, left-padded with zeros to ``width`` characters."""
    chars = []
    while number:
        number, rem = divmod(number, 62)
        chars.append(_BASE62[rem])
    text = "".join(reversed(chars)) or "0"
    if len(text) > width:
        raise ValueError(f"{number} does not fit in {width} base-62 characters")
    return text.rjust(width, "0")


def decode_base62(text: str) -> int:
    """Decode a base-62 string (the inverse of :func:`encode_base62`)."""
    number = 0
    for ch in text:
        number = number * 62 + _BASE62.index(ch)
    return number


def make_id(key_prefix: str, number: int, pod: str = "5g") -> str:
    """Build the 18-character id of record ``number`` of an object with ``key_prefix``.

    The layout mirrors real ids: a 3-character key prefix, a 2-character pod/instance part,
    then a 10-character base-62 counter, then the case-safe suffix. Ids made this way sort in
    creation order, which PK chunking relies on.
    """
    id15 = key_prefix + pod + encode_base62(number, 10)
    return id15 + case_safe_suffix(id15)


class IdFactory:
    """Thread-safe source of fresh ids for one key prefix."""

    def __init__(self, key_prefix: str, start: int = 1, pod: str = "5g") -> None:
        self.key_prefix = key_prefix
        self.pod = pod
        self._counter = itertools.count(start)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            number = next(self._counter)
        return make_id(self.key_prefix, number, self.pod)
