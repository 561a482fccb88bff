"""The main job: copy one Salesforce org into another with Meltano, then prove the copy.

``scripts/demo.sh`` installs everything and runs this module. It

1. starts two emulated orgs (``sfbulk-emulator``) on free loopback ports: a source seeded with
   the deterministic demo data (``--seed demo --records N``) or with a Salesforce DX project's
   data plan (``--import-sfdx DIR``), and an empty destination with the same metadata;
2. runs ``meltano --environment=demo run tap-sfbulk target-sfbulk`` against them. The copy
   plan (objects, upsert keys, parent references carried as relationship columns, source
   lookup ids dropped) is the ``demo`` environment of meltano.yml; for a DX project it is
   derived from the project (see :func:`sfdx_plan`) and handed to Meltano as environment
   variables, which take precedence over meltano.yml;
3. compares the orgs: records per object, every reference (each child points at the parent
   with the same key on both sides) and every copied field value; prints the figures with the
   API calls each org answered, and exits 1 when anything differs.

The emulators are stopped on every way out: success, failure, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import requests
import yaml

from sfbulk.auth import SalesforceAuth
from sfbulk.http import SalesforceClient

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECORDS = 3000
#: The Meltano command line of the copy (after ``meltano`` and its log level).
MELTANO_RUN_ARGS = (
    "--environment=demo",
    "run",
    "--full-refresh",
    "--refresh-catalog",
    "--state-id-suffix=scripts-demo",
    "tap-sfbulk",
    "target-sfbulk",
)
#: Field types a copy cannot carry as plain values (compound parents, binary, the record id).
_NOT_COPIED_TYPES = frozenset({"address", "location", "base64", "id", "reference"})


class DemoError(Exception):
    """The demo could not run (an org did not start, Meltano failed); the message says why."""


# ---------------------------------------------------------------------------------------------
# The copy plan


@dataclass
class ObjectCopy:
    """How one object is copied: the operation, its key and the parents it references.

    Attributes:
        name: The object (and stream) name.
        action: ``upsert`` (by ``key``) or ``insert``.
        key: External id field the records are upserted on and matched by when verifying;
            None for objects copied by insert (matched by their values instead).
        related: Relationship columns the tap adds and the target loads, one per reference:
            ``Account.External_Id__c`` carries ``AccountId`` as the parent's external id.
        exclude: Record keys the target drops: the source ``Id`` and every source lookup id,
            which mean nothing in the destination org.
        note: Anything the reader should know about how the object travels.
    """

    name: str
    action: str
    key: str | None
    related: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    note: str = ""


def meltano_demo_plan(meltano_yml: Path = ROOT / "meltano.yml") -> list[ObjectCopy]:
    """The copy plan of meltano.yml's ``demo`` environment, in load order."""
    project = yaml.safe_load(meltano_yml.read_text(encoding="utf-8"))
    env = next(e for e in project["environments"] if e["name"] == "demo")
    plugins = env["config"]["plugins"]
    tap = next(p for p in plugins["extractors"] if p["name"] == "tap-sfbulk")
    target = next(p for p in plugins["loaders"] if p["name"] == "target-sfbulk")
    related = tap["config"].get("related_fields", {})
    streams = target["config"]["streams"]
    plan = []
    for name, spec in streams.items():
        action = spec.get("action", target["config"].get("action", "insert"))
        key = spec.get("external_id_field", target["config"].get("external_id_field"))
        plan.append(
            ObjectCopy(
                name=name,
                action=action,
                key=key if action == "upsert" else None,
                related=list(related.get(name, [])),
                exclude=list(spec.get("exclude_fields", [])),
            )
        )
    return plan


def sfdx_plan(project_dir: Path, plan_file: str | None = None) -> list[ObjectCopy]:
    """Derive a faithful copy plan from a Salesforce DX project's data plan.

    The project is loaded into a private in-memory org (exactly what the source emulator loads)
    and, for each object of the data plan, in plan order:

    - **Reach.** An object the Bulk API refuses (``enableBulkApi`` false in its metadata, as
      coral-cloud's Experience__c) is still copied: both plugins fall back to the REST API for
      it (``rest_fallback``, on by default) and say so in their logs.
    - **Key.** The first external id field whose values are present and unique in every row
      makes the copy an upsert on it (safe to re-run). Without one (coral-cloud's Experience__c,
      Guest_Review__c and Case; also its Contact, whose External_Id__c holds one value twice)
      the object is inserted: the destination starts empty, so an insert creates each source
      record exactly once, as ``sf data import tree`` itself does.
    - **References.** Each lookup the data fills becomes a relationship column on a parent
      field that identifies the parent: its external id field when the referenced parents'
      values are unique, else its name field when that is an idLookup field with unique values
      (custom objects' Name). A reference with neither cannot be carried and is an error.
      Lookups to objects the plan does not load (``OwnerId``) take the destination's default.
    - **Dropped.** ``Id`` and every lookup id of the source.

    Returns:
        The plan, in the data plan's (parents first) order.
    """
    from sfbulk.emulator.sfdx import import_sfdx
    from sfbulk.emulator.store import Org as Store

    org = Store()
    summary = import_sfdx(org, project_dir, plan=plan_file)
    plan: list[ObjectCopy] = []
    for name in summary.records:
        obj = org.catalog.get(name)
        if obj is None:  # pragma: no cover - import_sfdx only loads objects it knows
            raise DemoError(f"{name}: the data plan loads an object the project does not define")
        references = [
            f
            for f in obj.fields.values()
            if f.type == "reference"
            and f.createable
            and f.relationship_name
            and f.reference_to
            and f.reference_to[0] in summary.records
            and _has_values(org, name, f.name)
        ]
        candidates = [f.name for f in obj.fields.values() if f.external_id and f.name != "Id"]
        key = next((f for f in candidates if _unique_values(org, name, f)), None)
        related = []
        for ref in references:
            parent = org.catalog.get(ref.reference_to[0])
            parent_key = _parent_key(org, parent, name, ref.name) if parent else None
            if parent is None or parent_key is None:
                raise DemoError(
                    f"{name}.{ref.name}: the referenced {ref.reference_to[0]} records have no "
                    "external id or unique idLookup field to carry the reference by"
                )
            related.append(f"{ref.relationship_name}.{parent_key}")
        exclude = ["Id"] + [
            f.name for f in obj.fields.values() if f.type == "reference" and f.createable
        ]
        plan.append(
            ObjectCopy(
                name=name,
                action="upsert" if key else "insert",
                key=key,
                related=related,
                exclude=exclude,
                note=""
                if obj.bulk_queryable
                else "through REST: the Bulk API cannot access it (enableBulkApi is false)",
            )
        )
    return plan


def _rows(org: Any, soql_text: str) -> list[tuple[Any, ...]]:
    """Rows of a query on the private org, as REST reads them (objects Bulk refuses too)."""
    from sfbulk.emulator import soql

    compiled = soql.compile_select(soql.parse(soql_text), org.catalog, False, bulk=False)
    return [tuple(row) for row in org.execute_sql(compiled.sql, compiled.params)]


def _values(org: Any, obj: str, field_name: str) -> list[Any]:
    return [row[0] for row in _rows(org, f"SELECT {field_name} FROM {obj}")]


def _unique_values(org: Any, obj: str, field_name: str) -> bool:
    values = _values(org, obj, field_name)
    return bool(values) and None not in values and len(set(values)) == len(values)


def _has_values(org: Any, obj: str, field_name: str) -> bool:
    return any(value is not None for value in _values(org, obj, field_name))


def _parent_key(org: Any, parent: Any, child: str, lookup: str) -> str | None:
    """A field of ``parent`` whose value identifies each parent the child rows point at."""
    candidates = [f for f in parent.fields.values() if f.external_id and f.name != "Id"]
    candidates += [
        f
        for f in parent.fields.values()
        if f.id_lookup and not f.external_id and f.name != "Id" and f.type == "string"
    ]
    referenced = {v for v in _values(org, child, lookup) if v is not None}
    for candidate in candidates:
        rows = _rows(org, f"SELECT Id, {candidate.name} FROM {parent.name}")
        counts = collections.Counter(value for _id, value in rows)
        if all(
            value is not None and counts[value] == 1
            for record_id, value in rows
            if record_id in referenced
        ):
            return str(candidate.name)
    return None


def meltano_overrides(plan: Sequence[ObjectCopy]) -> dict[str, str]:
    """Environment variables that give Meltano ``plan`` instead of meltano.yml's demo plan."""
    streams: dict[str, dict[str, Any]] = {}
    for copy in plan:
        spec: dict[str, Any] = {"action": copy.action, "exclude_fields": copy.exclude}
        if copy.key:
            spec["external_id_field"] = copy.key
        streams[copy.name] = spec
    return {
        "TAP_SFBULK_STREAMS": json.dumps([copy.name for copy in plan]),
        "TAP_SFBULK__SELECT": json.dumps([f"{copy.name}.*" for copy in plan]),
        "TAP_SFBULK_RELATED_FIELDS": json.dumps(
            {copy.name: copy.related for copy in plan if copy.related}
        ),
        "TARGET_SFBULK_STREAMS": json.dumps(streams),
    }


# ---------------------------------------------------------------------------------------------
# Emulated orgs


@dataclass
class Org:
    """A running ``sfbulk-emulator`` process and what its start banner said."""

    label: str
    process: subprocess.Popen[str]
    url: str
    banner: dict[str, str]
    output: list[str]

    def credentials(self) -> dict[str, str]:
        """The org's login settings (password grant) from its banner."""
        return {
            "auth_type": "password",
            "login_url": self.url,
            "client_id": self.banner["client id"],
            "client_secret": self.banner["client secret"],
            "username": self.banner["username"],
            "password": self.banner["password"],
            "security_token": self.banner.get("security token", ""),
        }

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats``: API usage, jobs and records per object."""
        response = requests.get(f"{self.url}/_emulator/stats", timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s; idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_org(label: str, args: Sequence[str], timeout: float = 300.0) -> Org:
    """Start ``sfbulk-emulator ARGS`` on a free loopback port and wait for its banner."""
    command = [str(Path(sys.executable).parent / "sfbulk-emulator"), "--port", "0", *args]
    process = subprocess.Popen(  # noqa: S603 - our own console script
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name=f"{label}-emulator-output", daemon=True).start()
    banner: dict[str, str] = {}
    url = None
    deadline = time.monotonic() + timeout
    try:
        while url is None or "refresh token" not in banner:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DemoError(f"{label} org: no banner from sfbulk-emulator after {timeout:.0f}s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise DemoError(
                    f"{label} org: sfbulk-emulator exited with {process.wait()}: "
                    + " | ".join(output[-5:])
                )
            if line.startswith("listening on "):
                url = line.split()[2]
            elif ": " in line:
                name, _, value = line.partition(": ")
                banner[name.strip()] = value.strip()
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Org(label, process, url, banner, output)


# ---------------------------------------------------------------------------------------------
# Verification


class OrgReader:
    """Read-only REST access to one org through the project's own client."""

    def __init__(self, org: Org) -> None:
        self.client = SalesforceClient(SalesforceAuth.from_config(org.credentials()))
        self._describes: dict[str, dict[str, Any]] = {}

    def describe(self, name: str) -> dict[str, Any]:
        """The object's describe (cached)."""
        if name not in self._describes:
            self._describes[name] = self.client.rest("GET", f"/sobjects/{name}/describe").json()
        return self._describes[name]

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a REST query, following ``nextRecordsUrl``."""
        page = self.client.rest("GET", "/query", params={"q": soql}).json()
        while True:
            yield from page["records"]
            if page.get("done", True):
                return
            page = self.client.rest("GET", page["nextRecordsUrl"]).json()

    def close(self) -> None:
        """Release the HTTP session."""
        self.client.close()


def _path(record: Mapping[str, Any] | None, dotted: str) -> Any:
    """``Account.External_Id__c`` of a REST record (nested objects; None along the way)."""
    value: Any = record
    for part in dotted.split("."):
        if value is None:
            return None
        value = value.get(part)
    return value


@dataclass
class ObjectResult:
    """What the comparison found for one object."""

    name: str
    source: int
    destination: int
    references: int = 0
    resolved: int = 0
    fields: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Counts equal, every reference resolved, every value equal."""
        return (
            self.source == self.destination
            and self.resolved == self.references
            and not self.differences
        )


def copied_fields(describe: Mapping[str, Any], copy: ObjectCopy) -> list[str]:
    """Fields whose values the copy must carry unchanged: createable plain fields."""
    excluded = {name.lower() for name in copy.exclude}
    return [
        f["name"]
        for f in describe["fields"]
        if f.get("createable")
        and f["type"] not in _NOT_COPIED_TYPES
        and f["name"].lower() not in excluded
    ]


def compare_object(
    source: OrgReader, destination: OrgReader, copy: ObjectCopy, counts: tuple[int, int]
) -> ObjectResult:
    """Compare one object's records, references and values between the orgs.

    Records are matched by the copy key when there is one. Objects copied by insert have no
    shared identity, so their rows (values plus parent keys) are compared as multisets.
    """
    result = ObjectResult(copy.name, *counts)
    fields = copied_fields(source.describe(copy.name), copy)
    dest_fields = {f["name"].lower() for f in destination.describe(copy.name)["fields"]}
    fields = [f for f in fields if f.lower() in dest_fields]
    result.fields = len(fields)
    columns = list(dict.fromkeys([*fields, *copy.related]))
    soql = f"SELECT {', '.join(columns)} FROM {copy.name}"

    def rows(reader: OrgReader) -> list[tuple[Any, ...]]:
        return [tuple(_path(r, c) for c in columns) for r in reader.query(soql)]

    source_rows, dest_rows = rows(source), rows(destination)
    ref_positions = [columns.index(c) for c in copy.related]
    for row in source_rows:
        result.references += sum(row[i] is not None for i in ref_positions)
    if copy.key:
        at = columns.index(copy.key)
        theirs = {row[at]: row for row in dest_rows}
        for row in source_rows:
            other = theirs.get(row[at])
            if other is None:
                result.differences.append(f"{copy.key}={row[at]}: missing in the destination")
                continue
            for i, column in enumerate(columns):
                if i in ref_positions:
                    if row[i] is not None and other[i] == row[i]:
                        result.resolved += 1
                    elif row[i] != other[i]:
                        result.differences.append(
                            f"{copy.key}={row[at]}: {column} is {other[i]!r}, source {row[i]!r}"
                        )
                elif row[i] != other[i]:
                    result.differences.append(
                        f"{copy.key}={row[at]}: {column} is {other[i]!r}, source {row[i]!r}"
                    )
    else:
        ours = collections.Counter(source_rows)
        theirs_counter = collections.Counter(dest_rows)
        matched = ours & theirs_counter
        for row, n in matched.items():
            result.resolved += n * sum(row[i] is not None for i in ref_positions)
        for row, n in (ours - theirs_counter).items():
            shown = dict(zip(columns, row, strict=True))
            result.differences.append(
                f"{n} source row(s) without an equal destination row: {_short(shown)}"
            )
        for row, n in (theirs_counter - ours).items():
            shown = dict(zip(columns, row, strict=True))
            result.differences.append(f"{n} destination row(s) not in the source: {_short(shown)}")
    return result


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Running


def run_meltano(meltano: str, env: Mapping[str, str], log_path: Path, timeout: float) -> int:
    """``meltano`` with :data:`MELTANO_RUN_ARGS`; its output goes to ``log_path``.

    ``--full-refresh`` because both orgs are new on every demo run, so a bookmark from an earlier
    run means nothing; ``--refresh-catalog`` because the orgs' schema may differ (a DX project);
    ``--state-id-suffix`` because Meltano still saves the run's bookmarks, and under the plain
    ``demo:tap-sfbulk-to-target-sfbulk`` id they would become the starting point of the user's
    own ``meltano --environment=demo run tap-sfbulk target-sfbulk``, which would then silently
    skip every record older than the demo's bookmarks.
    Returns the exit code (a run still going after ``timeout`` is stopped: 124).
    """
    command = [meltano, "--log-level=info", *MELTANO_RUN_ARGS]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(  # noqa: S603 - the Meltano installed by demo.sh
            command,
            cwd=ROOT,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            return 124
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()


def meltano_env(plan_env: Mapping[str, str], source: Org, destination: Org) -> dict[str, str]:
    """The process environment for Meltano: both orgs' logins as setting variables."""
    env = dict(os.environ)
    env.update(plan_env)
    env.update(
        {
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_DISABLE_TRACKING": "true",
            "MELTANO_VENV_BACKEND": "uv",
            "MELTANO_PROJECT_ROOT": str(ROOT),
        }
    )
    for prefix, org in (("TAP_SFBULK_", source), ("TARGET_SFBULK_", destination)):
        for name, value in org.credentials().items():
            env[prefix + name.upper()] = value
    return env


def print_report(
    results: Sequence[ObjectResult], usage: Mapping[str, Mapping[str, Any]], out: Any
) -> None:
    """The per-object table and the API calls each org answered."""
    print("", file=out)
    print(
        f"{'Object':<18}{'Source':>8}{'Destination':>13}{'References':>16}{'Fields':>8}  Values",
        file=out,
    )
    for r in results:
        refs = f"{r.resolved}/{r.references}" if r.references else "-"
        values = "equal" if not r.differences else f"{len(r.differences)} differ"
        print(
            f"{r.name:<18}{r.source:>8}{r.destination:>13}{refs:>16}{r.fields:>8}  {values}",
            file=out,
        )
    print("", file=out)
    for side in ("source", "destination"):
        stats = usage[side]
        calls = stats["usage"]["DailyApiRequests"]["Used"]
        jobs = stats["jobs"]["total"]
        batches = stats["usage"].get("DailyBulkApiBatches", {}).get("Used", 0)
        queries = stats["usage"].get("DailyBulkV2QueryJobs", {}).get("Used", 0)
        print(
            f"API calls ({side}): {calls} requests, {jobs} Bulk jobs "
            f"({queries} Bulk 2.0 query jobs, {batches} Bulk batches/ingest jobs)",
            file=out,
        )
    for r in results:
        for line in r.differences[:5]:
            print(f"DIFFERENCE {r.name}: {line}", file=out)
        if len(r.differences) > 5:
            print(f"DIFFERENCE {r.name}: … and {len(r.differences) - 5} more", file=out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The demo's command line (``scripts/demo.sh`` passes its arguments through)."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Copy an emulated Salesforce org into an empty one with Meltano and verify it.",
    )
    parser.add_argument(
        "--records",
        type=int,
        default=DEFAULT_RECORDS,
        metavar="N",
        help=f"demo records in the source org (default {DEFAULT_RECORDS})",
    )
    parser.add_argument(
        "--import-sfdx",
        metavar="DIR",
        type=Path,
        help="seed the source org from a Salesforce DX project instead",
    )
    parser.add_argument("--plan", metavar="FILE", help="data plan of the DX project to load")
    parser.add_argument(
        "--meltano",
        default=str(ROOT / ".venv-meltano" / "bin" / "meltano"),
        help="the meltano executable (scripts/demo.sh installs it)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="longest the Meltano run may take (default 1800)",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=ROOT / "output" / "demo" / "meltano.log",
        help="where Meltano's output is written (default output/demo/meltano.log)",
    )
    args = parser.parse_args(argv)
    if args.plan and not args.import_sfdx:
        parser.error("--plan needs --import-sfdx")
    if args.records < 1:
        parser.error("--records must be at least 1")
    return args


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when the destination equals the source, 1 otherwise."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    out = sys.stdout
    if args.import_sfdx:
        project = args.import_sfdx.resolve()
        plan = sfdx_plan(project, args.plan)
        plan_env = meltano_overrides(plan)
        extra = ["--plan", args.plan] if args.plan else []
        source_args = ["--import-sfdx", str(project), *extra]
        dest_args = ["--import-sfdx", str(project), *extra, "--no-data"]
        what = f"the Salesforce DX project {project}"
    else:
        plan = meltano_demo_plan()
        plan_env = {}
        source_args = ["--seed", "demo", "--records", str(args.records)]
        dest_args = ["--seed", "empty"]
        what = f"{args.records} demo records"
    print(f"copy plan ({what}):", file=out)
    for copy in plan:
        how = f"upsert on {copy.key}" if copy.key else "insert"
        refs = f", parents by {', '.join(copy.related)}" if copy.related else ""
        note = f"; {copy.note}" if copy.note else ""
        print(f"  {copy.name}: {how}{refs}; dropped: {', '.join(copy.exclude)}{note}", file=out)
    if not plan:
        raise DemoError(f"nothing to copy from {what}")

    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        source = start_org("source", source_args)
        stack.callback(source.stop)
        destination = start_org("destination", dest_args)
        stack.callback(destination.stop)
        print(
            f"source org {source.url}, destination org {destination.url} "
            f"({time.monotonic() - started:.1f}s)",
            file=out,
            flush=True,
        )

        started = time.monotonic()
        code = run_meltano(
            args.meltano, meltano_env(plan_env, source, destination), args.log, args.timeout
        )
        elapsed = time.monotonic() - started
        if code != 0:
            print(
                f"meltano run failed with exit code {code} after {elapsed:.1f}s; "
                f"last lines of {args.log}:",
                file=out,
            )
            lines = args.log.read_text(encoding="utf-8", errors="replace").splitlines()
            for line in lines[-40:]:
                print(f"  {line}", file=out)
            print("demo: FAILED", file=out)
            return 1
        print(f"meltano run finished in {elapsed:.1f}s (log: {args.log})", file=out, flush=True)

        usage = {"source": source.stats(), "destination": destination.stats()}
        readers = [OrgReader(source), OrgReader(destination)]
        for reader in readers:
            stack.callback(reader.close)
        results = [
            compare_object(
                readers[0],
                readers[1],
                copy,
                (
                    int(usage["source"]["records"].get(copy.name, 0)),
                    int(usage["destination"]["records"].get(copy.name, 0)),
                ),
            )
            for copy in plan
        ]
        print_report(results, usage, out)
        if all(r.ok for r in results):
            total = sum(r.destination for r in results)
            print(f"demo: OK ({total} records in {len(results)} objects copied)", file=out)
            return 0
        print("demo: FAILED (the destination differs from the source)", file=out)
        return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoError as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        sys.exit(130)
