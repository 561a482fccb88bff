"""Extract the public sample orgs (DX data trees): every value comes back as imported."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.tap.conftest import emulator_config, run_tap

PROJECTS = ["coral-cloud", "ebikes-lwc"]


def _plan_records(plan: Path) -> dict[str, list[dict[str, Any]]]:
    """Records per object, in the order the plan loads them (attributes dropped)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in json.loads(plan.read_text(encoding="utf-8")):
        for name in entry["files"]:
            data = json.loads((plan.parent / name).read_text(encoding="utf-8"),
                              parse_float=Decimal)
            for record in data["records"]:
                ref = record["attributes"].get("referenceId")
                fields = {k: v for k, v in record.items() if k != "attributes"}
                out.setdefault(entry["sobject"], []).append({"_ref": ref, **fields})
    return out


def _expected(value: Any, prop: dict[str, Any], refs: dict[str, str]) -> Any:
    """An imported value in the form the tap emits for a property of this schema."""
    if isinstance(value, str) and value.startswith("@") and value[1:] in refs:
        return refs[value[1:]]
    if value is None or value == "":
        return None
    types = prop.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "integer" in types:
        return int(Decimal(str(value)))
    if "number" in types:
        return Decimal(str(value))
    if "boolean" in types:
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if prop.get("format") == "date-time":
        text = str(value).replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


@pytest.mark.parametrize("project", PROJECTS)
def test_sample_org_extracts_every_record_as_imported(fixtures_dir, project: str) -> None:
    from sfbulk.emulator.app import EmulatorSettings, EmulatorState
    from sfbulk.emulator.server import run_in_thread
    from sfbulk.emulator.sfdx import import_sfdx
    from sfbulk.emulator.store import Org

    settings = EmulatorSettings()
    org = Org(username=settings.username)
    summary = import_sfdx(org, fixtures_dir / "sample-orgs" / project)
    assert summary.plan is not None
    expected = _plan_records(summary.plan)
    # An object whose metadata says enableBulkApi=false refuses every Bulk job (INVALIDENTITY,
    # which describe does not foretell): the tap reads it through REST query instead, and its
    # records must come out exactly as the Bulk-read objects' do.
    no_bulk = sorted(name for name in summary.records
                     if not org.catalog.get(name).bulk_queryable)
    with run_in_thread(EmulatorState(org=org, settings=settings)) as server:
        config = emulator_config(server, streams=sorted(summary.records),
                                 upper_bound_lag_seconds=0)
        run = run_tap(config)
        schemas = {name: stream.schema["properties"]
                   for name, stream in run.tap.streams.items()}
    assert no_bulk == (["Experience__c"] if project == "coral-cloud" else [])
    assert {s.name for s in run.tap.streams.values() if s.stats.status != "ok"} == set()
    assert {s.name for s in run.tap.streams.values() if s.stats.jobs == 0} == set(no_bulk)
    refs = dict(summary.refs)
    compared = 0
    for obj, count in summary.records.items():
        emitted = sorted(run.records.get(obj, []), key=lambda r: r["Id"])
        assert len(emitted) == count, obj
        wanted = expected[obj]
        assert len(wanted) == count, obj
        for position, (source, record) in enumerate(zip(wanted, emitted, strict=True)):
            if source["_ref"] in refs:
                assert record["Id"] == refs[source["_ref"]], (obj, position)
            for name, value in source.items():
                if name == "_ref":
                    continue
                column = next(k for k in schemas[obj] if k.lower() == name.lower())
                assert record[column] == _expected(value, schemas[obj][column], refs), (
                    obj, source["_ref"], name)
                compared += 1
    assert compared > 2 * sum(summary.records.values())
