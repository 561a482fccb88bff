"""Helpers for the tap's tests: run the tap in-process against an emulator and collect messages."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import emulator_config  # noqa: F401 - re-exported for the tap tests

UTC = dt.timezone.utc


@dataclass
class TapRun:
    """What one tap run wrote, parsed (decimals kept exact)."""

    messages: list[dict[str, Any]]
    tap: Any
    error: BaseException | None = None
    raw: str = ""
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records.setdefault(message["stream"], []).append(message["record"])

    @property
    def states(self) -> list[dict[str, Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, Any]:
        return self.states[-1]

    def bookmark(self, stream: str) -> Any:
        return self.final_state["bookmarks"][stream].get("replication_key_value")

    def by_id(self, stream: str) -> dict[str, dict[str, Any]]:
        return {record["Id"]: record for record in self.records.get(stream, [])}


def run_tap(
    config: dict[str, Any],
    *,
    catalog: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    expect_error: type[BaseException] | None = None,
) -> TapRun:
    """Run a full sync in-process; stdout is captured and parsed line by line."""
    from tap_sfbulk.tap import TapSfBulk

    tap = TapSfBulk(config=config, catalog=catalog, state=state)
    buffer = io.StringIO()
    error: BaseException | None = None
    with contextlib.redirect_stdout(buffer):
        if expect_error is None:
            tap.sync_all()
        else:
            with pytest.raises(expect_error) as info:
                tap.sync_all()
            error = info.value
    messages = [json.loads(line, parse_float=Decimal) for line in buffer.getvalue().splitlines()]
    return TapRun(messages, tap, error, buffer.getvalue())


def discover(config: dict[str, Any]) -> dict[str, Any]:
    """The catalog the tap discovers for ``config``."""
    from tap_sfbulk.tap import TapSfBulk

    return TapSfBulk(config=config).catalog_dict


def select_only(catalog: dict[str, Any], *names: str) -> dict[str, Any]:
    """Mark only the named streams selected in a discovered catalog (in place) and return it."""
    for entry in catalog["streams"]:
        for item in entry["metadata"]:
            if item["breadcrumb"] == []:
                item["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


def at(seconds_ago: float) -> dt.datetime:
    """A UTC moment ``seconds_ago`` before now, whole milliseconds (as the org stores it)."""
    moment = dt.datetime.now(UTC) - dt.timedelta(seconds=seconds_ago)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def sdk_stamp(moment: dt.datetime) -> str:
    """A datetime in the tap's record/bookmark form."""
    return moment.astimezone(UTC).isoformat("T", timespec="microseconds")


def write_at(org: Any, moment: dt.datetime, obj: str, operation: str,
             rows: list[dict[str, Any]]) -> list[str]:
    """Write rows with the org's clock fixed at ``moment``; returns the record ids."""
    previous = org.clock
    org.clock = lambda: moment
    try:
        results = org.write(obj, operation, rows)
    finally:
        org.clock = previous
    failed = [r for r in results if not r.success]
    assert not failed, failed
    return [r.id for r in results]
