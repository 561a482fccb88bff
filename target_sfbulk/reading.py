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

import msgspec
from singer_sdk.contrib.msgspec import decoder
from singer_sdk.singerlib.encoding.simple import SimpleSingerReader

_decode = decoder.decode


class SingerLineReader(SimpleSingerReader):
    """The SDK's standard reader, parsing with msgspec first (see the module doc)."""

    def deserialize_json(self, line: str) -> dict:
        """Parse one line: msgspec, or the standard parser for a line msgspec refuses."""
        try:
            return _decode(line)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, UnicodeEncodeError):
            return super().deserialize_json(line)
