"""Input order holds across the target's fast paths: records of one stream reach Salesforce in
the order they came whatever message splits them (a SCHEMA that replaces the stream's sink, a
BATCH message), parents load before children, and a stream's batches that write the same
records never run at once even when they name them by different keys."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import threading
from pathlib import Path
from typing import Any

from target_sfbulk.target import TargetSfBulk
from tests.target.support import (
    add_external_id,
    config,
    lines,
    record,
    rows,
    run,
    schema,
    state,
)

ACCOUNT = {"Name": {"type": "string"}, "External_Id__c": {"type": "string"}}
CONTACT = {"LastName": {"type": "string"}, "Account.External_Id__c": {"type": "string"}}


class _Watch:
    """Wraps the loader's ``load`` to record the operations of the loads running at once."""

    def __init__(self, target: TargetSfBulk) -> None:
        self.running: list[str] = []
        self.together: list[tuple[str, ...]] = []
        self.lock = threading.Lock()
        inner = target.loader.load

        def load(mapper: Any, operation: str, batch: Any, external_id: Any = None) -> Any:
            with self.lock:
                self.running.append(operation)
                self.together.append(tuple(sorted(self.running)))
            try:
                return inner(mapper, operation, batch, external_id)
            finally:
                with self.lock:
                    self.running.remove(operation)

        target.loader.load = load  # type: ignore[method-assign]


def _run(cfg: dict[str, Any], messages: list[dict[str, Any]]) -> tuple[TargetSfBulk, _Watch,
                                                                         list[Any]]:
    target = TargetSfBulk(config=cfg)
    watch = _Watch(target)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(lines(messages)))
    return target, watch, [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_schema_change_keeps_the_order_of_a_streams_records(emulator):
    # K1 is pending in the first sink when a new SCHEMA replaces it; the new sink fills and
    # drains first. The older value must not land last.
    add_external_id(emulator, "Account")
    wider = {**ACCOUNT, "Phone": {"type": "string"}}
    states, target = run(
        config(emulator, action="upsert", batch_size_rows=2),
        [schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "K1", "Name": "old"}),
         schema("Account", wider, ["External_Id__c"]),
         record("Account", {"External_Id__c": "K1", "Name": "new", "Phone": "1"}),
         record("Account", {"External_Id__c": "K2", "Name": "other", "Phone": "2"}),
         state({"at": 3})])
    assert states == [{"at": 3}]
    assert sorted(rows(emulator, "SELECT External_Id__c, Name FROM Account")) == [
        ("K1", "new"), ("K2", "other")]
    assert target.tally.streams()["Account"].received == 3


def test_parents_pending_in_a_replaced_sink_load_before_children(emulator):
    # The Account records wait in a sink that a new Account SCHEMA replaced; the Contacts that
    # name them fill their batch first.
    add_external_id(emulator, "Account")
    wider = {**ACCOUNT, "Phone": {"type": "string"}}
    states, target = run(
        config(emulator, batch_size_rows=2, streams={"Account": {"action": "upsert"}}),
        [schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "A1", "Name": "Acme"}),
         schema("Account", wider, ["External_Id__c"]),
         schema("Contact", CONTACT),
         record("Contact", {"LastName": "one", "Account.External_Id__c": "A1"}),
         record("Contact", {"LastName": "two", "Account.External_Id__c": "A1"}),
         state({"done": True})])
    assert states == [{"done": True}]
    (account,) = rows(emulator, "SELECT Id FROM Account")
    assert sorted(rows(emulator, "SELECT LastName, AccountId FROM Contact")) == [
        ("one", account[0]), ("two", account[0])]
    assert target.tally.streams()["Contact"].failed == 0


def test_records_before_a_batch_message_load_before_its_records(emulator, tmp_path: Path):
    add_external_id(emulator, "Account")
    path = tmp_path / "part.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"External_Id__c": "K1", "Name": "from batch"}) + "\n")
    states, target = run(
        config(emulator, action="upsert"),
        [schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "K1", "Name": "from record"}),
         {"type": "BATCH", "stream": "Account",
          "encoding": {"format": "jsonl", "compression": "gzip"}, "manifest": [path.as_uri()]},
         state({"after": "batch"})])
    assert states == [{"after": "batch"}]
    assert rows(emulator, "SELECT Name FROM Account") == [("from batch",)]
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful) == (2, 2)


def test_deletes_and_upserts_of_the_same_records_never_load_at_once(emulator):
    # Batch 1 deletes two accounts by Id; batch 2 upserts them by external id. The keys differ
    # in kind (Id, External_Id__c) but name the same records, so the loads must not overlap:
    # the upserts run after the deletes and create the accounts anew.
    add_external_id(emulator, "Account")
    emulator.state.org.insert_raw("Account", [{"Name": "first", "External_Id__c": "K1"},
                                              {"Name": "second", "External_Id__c": "K2"}])
    ids = dict(rows(emulator, "SELECT External_Id__c, Id FROM Account"))
    emulator.state.faults.configure({"processing_delay_seconds": 0.3})
    props = {**ACCOUNT, "Id": {"type": "string"}, "_sdc_deleted_at": {"type": ["null", "string"]}}
    messages = [schema("Account", props, ["External_Id__c"])]
    messages += [record("Account", {"Id": ids[key], "External_Id__c": key,
                                    "_sdc_deleted_at": "2024-01-01T00:00:00Z"})
                 for key in ("K1", "K2")]
    messages += [record("Account", {"External_Id__c": key, "Name": f"again {key}"})
                 for key in ("K1", "K2")]
    target, watch, _ = _run(config(emulator, action="upsert", batch_size_rows=2,
                                   max_parallel_jobs=4), messages)
    assert all(len(ops) == 1 for ops in watch.together), watch.together
    stored = sorted(rows(emulator, "SELECT External_Id__c, Name, Id FROM Account"))
    assert [(key, name) for key, name, _ in stored] == [("K1", "again K1"), ("K2", "again K2")]
    assert {row[2] for row in stored}.isdisjoint(ids.values())
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful) == (4, 4)
