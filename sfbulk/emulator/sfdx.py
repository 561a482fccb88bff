"""Recreate a Salesforce DX project's schema and sample data in the emulated org.

``import_sfdx`` does what ``sf project deploy`` plus ``sf data import tree --plan`` would do to
a scratch org: it loads the project's object and field metadata (``load_metadata_source``), then
the records of a data plan, in plan order, resolving ``@referenceId`` values to the ids of records
saved by earlier plan entries. Records go through :meth:`Org.write`, so they are validated as
Salesforce validates them; a record that fails stops the import with an error naming the file,
the record's referenceId and the offending fields.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfbulk.emulator.metadata import SObjectDef, load_metadata_source
from sfbulk.emulator.store import BatchError, Org

__all__ = ["ImportSummary", "SfdxImportError", "find_plans", "import_sfdx"]

LOG = logging.getLogger(__name__)
_SKIP_DIRS = frozenset({".git", "node_modules", ".sfdx", ".sf", "__pycache__"})


class SfdxImportError(ValueError):
    """A project that cannot be imported: names the file, record and field at fault."""


@dataclass
class ImportSummary:
    """What an import did: objects whose metadata was loaded, the plan used, records per object,
    and the id saved for every referenceId (by plan entries with ``saveRefs``)."""

    objects: list[str] = field(default_factory=list)
    plan: Path | None = None
    records: dict[str, int] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


def _walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name not in _SKIP_DIRS:
                yield from _walk(path)
        else:
            yield path


def _is_plan(path: Path) -> bool:
    name = path.name
    return name.endswith(".json") and (
        name.startswith("data-plan") or name.endswith("-plan.json") or "-plan-" in name
    )


def find_plans(project_dir: str | Path) -> list[Path]:
    """Every data plan file in the project (``data-plan*.json``, ``*-plan.json``), sorted."""
    return [p for p in _walk(Path(project_dir)) if _is_plan(p)]


def _default_plan(plans: list[Path]) -> Path | None:
    """Prefer ``data-plan.json`` / ``sample-data-plan.json``, else the first plan that is not a
    "large" variant, else the first plan."""
    for preferred in ("data-plan.json", "sample-data-plan.json"):
        for plan in plans:
            if plan.name == preferred:
                return plan
    small = [p for p in plans if "large" not in p.name.lower()]
    candidates = small or plans
    return candidates[0] if candidates else None


def _choose_plan(project: Path, plan: str | Path | None) -> Path | None:
    plans = find_plans(project)
    if plan is None:
        return _default_plan(plans)
    candidate = Path(plan)
    for option in (candidate, project / candidate):
        if option.is_file():
            return option
    for found in plans:
        if found.name == candidate.name or found.stem == candidate.name:
            return found
    names = ", ".join(str(p.relative_to(project)) for p in plans) or "none"
    raise SfdxImportError(f"{project}: no data plan {plan!r} (plans found: {names})")


def _metadata_dirs(project: Path) -> list[Path]:
    """The package directories of ``sfdx-project.json``, or the project itself without one."""
    config = project / "sfdx-project.json"
    if not config.is_file():
        return [project]
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SfdxImportError(f"{config}: not valid JSON: {exc}") from exc
    dirs = [project / entry["path"] for entry in data.get("packageDirectories", [])
            if isinstance(entry, dict) and entry.get("path")]  # fmt: skip
    return [d for d in dirs if d.is_dir()] or [project]


def import_sfdx(
    org: Org, project_dir: str | Path, plan: str | Path | None = None, load_data: bool = True
) -> ImportSummary:
    """Load a DX project's metadata into ``org`` and, unless ``load_data`` is False, a data plan.

    Args:
        org: the org to fill; its catalog gains the project's objects and fields.
        project_dir: the project root (with ``sfdx-project.json``, or any folder holding
            ``objects/`` folders and data plans).
        plan: a plan file (path, or name found in the project); by default the project's
            regular plan (``data-plan.json``/``sample-data-plan.json``, never a "large" one).
        load_data: False loads only the metadata.

    Raises:
        SfdxImportError: a missing plan or data file, an unresolvable reference, or a record
            Salesforce would refuse (naming the file, referenceId and fields).
    """
    project = Path(project_dir)
    if not project.is_dir():
        raise SfdxImportError(f"{project}: not a directory")
    summary = ImportSummary()
    for directory in _metadata_dirs(project):
        for name in load_metadata_source(org.catalog, directory):
            if name not in summary.objects:
                summary.objects.append(name)
    org.sync_schema()
    if not load_data:
        return summary
    chosen = _choose_plan(project, plan)
    if chosen is None:
        return summary
    summary.plan = chosen
    try:
        entries = json.loads(chosen.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SfdxImportError(f"{chosen}: not valid JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise SfdxImportError(f"{chosen}: a data plan is a JSON list of entries")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or "sobject" not in entry:
            raise SfdxImportError(f"{chosen}: entry {position} has no sobject")
        for file_name in entry.get("files", []):
            _import_file(
                org,
                chosen.parent / file_name,
                entry["sobject"],
                summary,
                save_refs=bool(entry.get("saveRefs", False)),
                resolve_refs=bool(entry.get("resolveRefs", False)),
            )
    LOG.info("imported %s from %s: %s", project.name, chosen.name, summary.records)
    return summary


def _import_file(
    org: Org,
    path: Path,
    sobject: str,
    summary: ImportSummary,
    *,
    save_refs: bool,
    resolve_refs: bool,
) -> None:
    if not path.is_file():
        raise SfdxImportError(f"{path}: data file named by the plan does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SfdxImportError(f"{path}: not valid JSON: {exc}") from exc
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise SfdxImportError(f"{path}: an SObject Tree file has a top-level 'records' list")
    _insert_tree(org, path, sobject, records, summary, save_refs, resolve_refs, None)


def _insert_tree(
    org: Org,
    path: Path,
    sobject: str,
    records: list[dict[str, Any]],
    summary: ImportSummary,
    save_refs: bool,
    resolve_refs: bool,
    parent: tuple[str, list[str]] | None,
) -> None:
    """Insert one level of records, then their nested children (``"Contacts": {"records":…}``).

    ``parent`` is (child's lookup field, parent ids by record position) for nested levels.
    """
    obj = org.catalog.get(sobject)
    if obj is None:
        raise SfdxImportError(f"{path}: object {sobject} is not in the org's schema")
    rows: list[dict[str, Any]] = []
    ref_ids: list[str] = []
    nested: list[tuple[int, str, list[dict[str, Any]]]] = []
    for index, record in enumerate(records):
        attributes = record.get("attributes") or {}
        ref = str(attributes.get("referenceId") or f"{sobject}#{index + 1}")
        rtype = attributes.get("type")
        if rtype and str(rtype).lower() != obj.name.lower():
            raise SfdxImportError(
                f"{path}: record {ref} has type {rtype} in a plan entry for {obj.name}"
            )
        row: dict[str, Any] = {}
        for key, value in record.items():
            if key == "attributes":
                continue
            if isinstance(value, dict) and isinstance(value.get("records"), list):
                nested.append((index, key, value["records"]))
                continue
            if isinstance(value, str) and value.startswith("@") and resolve_refs:
                target = summary.refs.get(value[1:])
                if target is None:
                    raise SfdxImportError(
                        f"{path}: record {ref} field {key} references {value}, which no earlier "
                        "plan entry saved (saveRefs)"
                    )
                value = target
            row[key] = value
        if parent is not None:
            row[parent[0]] = parent[1][index]
        rows.append(row)
        ref_ids.append(ref)
    try:
        results = org.write(obj.name, "insert", rows)
    except BatchError as exc:
        raise SfdxImportError(f"{path}: {obj.name} records refused: {exc}") from exc
    for ref, result in zip(ref_ids, results, strict=True):
        if not result.success:
            error = result.errors[0]
            fields = ", ".join(error.fields) or "-"
            raise SfdxImportError(
                f"{path}: record {ref} ({obj.name}) failed: {error.status_code}: "
                f"{error.message} (fields: {fields})"
            )
    ids = [r.id or "" for r in results]
    if save_refs:
        summary.refs.update(zip(ref_ids, ids, strict=True))
    summary.records[obj.name] = summary.records.get(obj.name, 0) + len(rows)
    for index, relationship, children in nested:
        child_obj, lookup = _child_relationship(org, obj, relationship, path)
        _insert_tree(
            org,
            path,
            child_obj.name,
            children,
            summary,
            save_refs,
            resolve_refs,
            (lookup, [ids[index]] * len(children)),
        )


def _child_relationship(
    org: Org, parent: SObjectDef, name: str, path: Path
) -> tuple[SObjectDef, str]:
    for rel in parent.child_relationships:
        if rel.relationship_name and rel.relationship_name.lower() == name.lower():
            child = org.catalog.get(rel.child_sobject)
            if child is not None:
                return child, rel.field
    raise SfdxImportError(f"{path}: {parent.name} has no child relationship {name}")
