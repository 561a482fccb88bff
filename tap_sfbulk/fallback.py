"""Extract through REST when the Bulk API refuses the object itself.

An object whose "Allow Bulk API Access" is off (metadata ``enableBulkApi=false``) refuses every
Bulk job at creation with ``INVALIDENTITY`` (2.0) or ``InvalidEntity`` (1.0), and describe does
not tell beforehand. With the ``rest_fallback`` setting on (the default) such a stream reads the
same SOQL through the REST query API instead: the rows come back as the same CSV cells
(:func:`sfbulk.rest.iter_rest_query`), are typed by the same typer, and the bookmark is kept the
same way (the maximum seen), so records and state are what Bulk would have given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sfbulk.errors import SalesforceError
from sfbulk.rest import is_bulk_refusal, iter_rest_query

if TYPE_CHECKING:
    from sfbulk.csvcodec import RecordTyper
    from sfbulk.http import SalesforceClient
    from tap_sfbulk.streams import SObjectStream

logger = logging.getLogger(__name__)


def with_rest_fallback(
    stream: SObjectStream,
    bulk_records: Iterator[dict[str, Any]],
    client: SalesforceClient,
    soql: str,
    columns: list[str],
    typer: RecordTyper,
    include_deleted: bool,
) -> Iterator[dict[str, Any]]:
    """Yield ``bulk_records``; if Bulk refuses the object before the first row, read REST.

    Only a refusal of the object at job creation switches: any other failure, or one after
    rows were emitted, propagates as before.
    """
    if not stream.config.get("rest_fallback", True):
        yield from bulk_records
        return
    try:
        first = next(bulk_records)
    except StopIteration:
        return
    except SalesforceError as exc:
        if not is_bulk_refusal(exc):
            raise
        stream.stats.jobs = max(0, stream.stats.jobs - 1)  # the job was never created
        logger.warning(
            "%s: the Bulk API refuses this object (%s: %s), so it is read through the REST "
            "query API instead (one API call per 2,000 rows); turn rest_fallback off to fail "
            "the stream instead", stream.name, exc.code, exc.message)
        yield from rest_records(stream, client, soql, columns, typer, include_deleted)
        return
    yield first
    yield from bulk_records


def rest_records(
    stream: SObjectStream,
    client: SalesforceClient,
    soql: str,
    columns: list[str],
    typer: RecordTyper,
    include_deleted: bool,
) -> Iterator[dict[str, Any]]:
    """The stream's records read through REST query, typed as the Bulk path types them."""
    types: Mapping[str, str] = {name: stream.spec.field_types.get(name, "string")
                                for name in columns}
    convert = typer.row_converter(list(columns))
    for row in iter_rest_query(client, soql, include_deleted, columns=columns,
                               field_types=types):
        yield convert(list(row.values()))
