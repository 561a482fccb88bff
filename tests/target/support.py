"""Helpers for the target's end-to-end tests: run the target in-process and read the org back."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sfbulk.emulator.metadata import FieldDef
from target_sfbulk.target import TargetSfBulk
from tests.conftest import emulator_config


def config(server: Any, **overrides: Any) -> dict[str, Any]:
    """A target config for ``server`` with fast polling."""
    base = {"poll_interval_seconds": 0.02, "poll_interval_max_seconds": 0.2,
            "lock_retry_wait_seconds": 0.01}
    base.update(overrides)
    return emulator_config(server, **base)


def schema(stream: str, properties: Mapping[str, Any], key: Iterable[str] = ()) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": {"type": "object",
                                                           "properties": dict(properties)},
            "key_properties": list(key)}


def record(stream: str, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": dict(values)}


def state(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


def lines(messages: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(m) + "\n" for m in messages)


def run(cfg: Mapping[str, Any], messages: Iterable[Mapping[str, Any]], *,
        out: io.StringIO | None = None, **load: Any) -> tuple[list[Any], TargetSfBulk]:
    """Run the target over ``messages``; returns the STATE values it wrote, and the target.

    ``load`` overrides fields of the loader's :class:`LoadSettings` (e.g. ``max_batch_rows``),
    to reach Salesforce's limits with small inputs; ``out`` collects stdout when given.
    """
    target = TargetSfBulk(config=dict(cfg))
    if load:
        target.loader.settings = dataclasses.replace(target.loader.settings, **load)
    out = out if out is not None else io.StringIO()
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(lines(messages)))
    return [json.loads(line) for line in out.getvalue().splitlines()], target


def rows(server: Any, soql: str) -> list[tuple[Any, ...]]:
    """Stored values of a query against the emulated org."""
    return list(server.state.org.query(soql))


def add_external_id(server: Any, obj: str, name: str = "External_Id__c", *,
                    case_sensitive: bool = False) -> None:
    """Give ``obj`` an external id text field (the way a real org's admin would)."""
    server.state.org.add_field(obj, FieldDef(name, "string", label=name, length=80,
                                             external_id=True, id_lookup=True, unique=True,
                                             custom=True, case_sensitive=case_sensitive))


def jobs(server: Any) -> list[Any]:
    """Every Bulk job the emulator knows (both APIs)."""
    return list(server.state.jobs.jobs())
