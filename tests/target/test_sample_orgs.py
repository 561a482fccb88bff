"""Load Salesforce's public sample orgs (DX data-tree files) through the target into an empty org.

The sample apps' data plans are turned into Singer messages: one stream per sObject, one RECORD per
tree record. A tree record names its parent by ``@referenceId``; a load through the Bulk API names
a parent by an external id instead, so the org is prepared the way an admin prepares a migration:
every loaded object gets an external id field ``Sample_Ref__c`` holding the record's referenceId,
and ``ContactId: "@ContactRef155"`` becomes the relationship column
``Contact.Sample_Ref__c: "ContactRef155"``. All streams go in one run, children's files first,
so the target's parent-first ordering is what makes the references resolve.

Afterwards every record is read back and every field compared with the tree file, and every
reference must point at the record that had that referenceId.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sfbulk.emulator.metadata import FieldDef
from sfbulk.emulator.sfdx import import_sfdx
from tests.conftest import FIXTURES
from tests.target.support import config, record, run, schema, state

ORGS = FIXTURES / "sample-orgs"
#: Every data plan of the sample orgs: (org, plan file).
PLANS = [("coral-cloud", "data-plan.json"), ("coral-cloud", "data-plan-large.json"),
         ("ebikes-lwc", "sample-data-plan.json")]
REF = "Sample_Ref__c"


def _plan(org_dir: Path, plan_file: str) -> list[tuple[str, list[dict[str, Any]]]]:
    entries = json.loads((org_dir / "data" / plan_file).read_text(encoding="utf-8"))
    out = []
    for entry in entries:
        records: list[dict[str, Any]] = []
        for name in entry["files"]:
            tree = json.loads((org_dir / "data" / name).read_text(encoding="utf-8"))
            records.extend(tree["records"])
        out.append((entry["sobject"], records))
    return out


def _as_singer(org, plan) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    # Children first in the input: the target must still load parents first.
    for obj_name, records in reversed(plan):
        obj = org.catalog.get(obj_name)
        rows = []
        for tree_record in records:
            row: dict[str, Any] = {REF: tree_record["attributes"]["referenceId"]}
            for key, value in tree_record.items():
                if key == "attributes":
                    continue
                if isinstance(value, str) and value.startswith("@"):
                    relationship = obj.field(key).relationship_name
                    row[f"{relationship}.{REF}"] = value[1:]
                else:
                    row[key] = value
            rows.append(row)
        keys = sorted({k for row in rows for k in row})
        messages.append(schema(obj_name, {k: {} for k in keys}, [REF]))
        messages.extend(record(obj_name, row) for row in rows)
    messages.append(state({"loaded": True}))
    return messages


def _sql(org, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read stored rows directly: Experience__c, Session__c and Booking__c switch the Bulk API
    off in their metadata (enableBulkApi false), so a Bulk-style SOQL read is refused."""
    return org.execute_sql(sql, params)


def _same(field_type: str, stored: Any, given: Any) -> bool:
    if field_type == "boolean":
        return stored == (1 if given else 0)
    if field_type in ("double", "currency", "percent", "int", "long"):
        return Decimal(str(stored)) == Decimal(str(given))
    if field_type == "datetime":
        def instant(text: str) -> dt.datetime:
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return instant(stored) == instant(given)
    if field_type == "date":
        return stored == given[:10]
    return stored == given


@pytest.mark.parametrize(("name", "plan_file"), PLANS)
def test_sample_org_loads_every_record_and_reference(emulator, name, plan_file):
    org_dir = ORGS / name
    if not org_dir.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    org = emulator.state.org
    import_sfdx(org, org_dir, load_data=False)
    plan = _plan(org_dir, plan_file)
    for obj_name, _ in plan:
        org.add_field(obj_name, FieldDef(REF, "string", label="Sample reference", length=80,
                                         external_id=True, id_lookup=True, unique=True,
                                         custom=True, case_sensitive=True))
    states, target = run(config(emulator, action="upsert", max_parallel_jobs=4),
                         _as_singer(org, plan))
    assert states == [{"loaded": True}]
    ids_by_ref: dict[str, str] = {}
    for obj_name, records in plan:
        stored = dict(_sql(org, f'SELECT "{REF}", "Id" FROM "{obj_name}" WHERE "IsDeleted" = 0'))
        assert len(stored) == len(records), obj_name
        ids_by_ref.update(stored)
    checked = 0
    for obj_name, records in plan:
        obj = org.catalog.get(obj_name)
        for tree_record in records:
            ref = tree_record["attributes"]["referenceId"]
            fields = [k for k in tree_record if k != "attributes"]
            columns = ", ".join(f'"{f}"' for f in fields)
            (stored,) = _sql(org, f'SELECT {columns} FROM "{obj_name}" WHERE "{REF}" = ?', ref)
            for key, value in zip(fields, stored, strict=True):
                given = tree_record[key]
                if isinstance(given, str) and given.startswith("@"):
                    assert value == ids_by_ref[given[1:]], (obj_name, ref, key)
                else:
                    assert _same(obj.field(key).type, value, given), (obj_name, ref, key,
                                                                       value, given)
                checked += 1
    assert checked > 0
    assert target.tally.not_loaded == 0
