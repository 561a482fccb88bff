"""Reading Singer lines: the SDK's msgspec decoder, with the SDK's standard parser behind it.

Parsing JSON is most of the CPU a target spends on a plain record. singer-sdk ships a msgspec
decoder (``singer_sdk.contrib.msgspec``, the ``msgspec`` extra) configured like its standard
reader: floats become exact :class:`~decimal.Decimal` values, integers of any size stay ``int``.
On every line msgspec accepts, both give the same message.

msgspec is stricter in two places the standard parser is not, and there the line goes through
the SDK's standard reader so nothing changes: ``NaN``/``Infinity`` literals (the record is then
refused alone, naming the field, as before), and text with lone surrogates (input bytes that were
not UTF-8, escaped on reading). A line that neither accepts raises the standard reader's error.
"""

from __future__ import annotations

import typing as t
from collections import Counter, defaultdict

import msgspec
from singer_sdk.contrib.msgspec import decoder
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader

_decode = decoder.decode


class SingerLineReader(SimpleSingerReader):
    """The SDK's standard reader, parsing with msgspec first (see the module doc).

    ``record_takers`` maps a stream to a function that takes its RECORD messages' records
    directly, skipping the RECORD callback (the target registers one for a stream whose
    records need nothing else from the SDK, and clears them when streams may change);
    ``taken_chars`` counts the characters of the lines handed over that way, which the sinks
    use to estimate what they hold.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.record_takers: dict[t.Any, t.Callable[[dict], None]] = {}
        self.taken_chars = 0

    def deserialize_json(self, line: str) -> dict:
        """Parse one line: msgspec, or the standard parser for a line msgspec refuses."""
        try:
            return _decode(line)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, UnicodeEncodeError):
            return super().deserialize_json(line)

    def process_lines(self, file_input: t.IO[str] | None,
                      callbacks: dict[str, t.Callable[[dict], None]]) -> t.Counter[str]:
        """The SDK's loop over input lines, with its per-line checks made cheap for the usual
        message (a JSON object with a ``type``): same callbacks, errors and counts."""
        stats: dict[str, int] = defaultdict(int)
        deserialize = self.deserialize_json
        takers = self.record_takers
        taken = 0
        for line in file_input or self.default_input:
            self._current_message = line
            try:
                message = _decode(line)
            except (msgspec.DecodeError, UnicodeEncodeError):
                message = deserialize(line)
            if message.__class__ is not dict or "type" not in message:
                self.assert_line_requires(message, requires={"type"})
            kind = message["type"]
            if kind == "RECORD" and takers:
                take = takers.get(message.get("stream"))
                record = message.get("record")
                if take is not None and record.__class__ is dict:
                    self.taken_chars += len(line)
                    take(record)
                    taken += 1
                    continue
            callback = callbacks.get(kind)
            if callback is not None:
                callback(message)
            else:
                self._process_unknown_message(message)
            stats[kind] += 1
        if taken:
            stats["RECORD"] += taken
        return Counter(**stats)
