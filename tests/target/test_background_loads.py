"""The promises of the target hold while a stream's batches load in the background: STATE
follows outcomes, failures past ``max_failed_records`` end the run with every record counted,
keys that differ only by case wait for each other, ``batch_size_rows`` 1 cuts exact batches,
and records that arrive slowly or in interleaved streams still load parents first."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_sfbulk.target import TargetSfBulk, TooManyFailedRecordsError
from tests.target.support import add_external_id, config, jobs, record, rows, schema, state

ACCOUNT = {"Name": {"type": "string"}, "External_Id__c": {"type": "string"}}
CONTACT = {"LastName": {"type": "string"}, "Account.External_Id__c": {"type": "string"}}
EXT = "External_Id__c"


class _Run:
    """A target over ``messages``, noting at each STATE it writes how many records of each
    stream had an outcome, and the most loads that ran at once."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.target = TargetSfBulk(config=cfg)
        self.states: list[tuple[Any, dict[str, int]]] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()
        write = self.target._write_state_message
        inner = self.target.loader.load

        def on_state(value: dict) -> None:
            self.states.append((value, {name: tally.accounted for name, tally
                                        in self.target.tally.streams().items()}))
            write(value)

        def load(mapper: Any, operation: str, batch: Any, external_id: Any = None) -> Any:
            with self._lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                return inner(mapper, operation, batch, external_id)
            finally:
                with self._lock:
                    self.running -= 1

        self.target._write_state_message = on_state  # type: ignore[method-assign]
        self.target.loader.load = load  # type: ignore[method-assign]

    def __call__(self, messages: list[dict[str, Any]] | Iterator[str]) -> str:
        source: Any = messages
        if isinstance(messages, list):
            source = io.StringIO("".join(json.dumps(m) + "\n" for m in messages))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.target.listen(source)
        return out.getvalue()


def test_failures_past_the_limit_while_loads_run_stop_with_every_record_counted(
        emulator, tmp_path: Path):
    # The first batch fails whole (3 records > max_failed_records 2) while later batches load
    # beside it; every STATE written must follow the outcomes of all records before it.
    emulator.state.faults.configure({"fail_batches": {"count": 1, "message": "InvalidBatch : x"},
                                     "processing_delay_seconds": 0.2})
    path = tmp_path / "failed.jsonl"
    messages: list[dict[str, Any]] = [schema("Account", ACCOUNT)]
    for i in range(12):
        messages.append(record("Account", {"Name": f"A{i}"}))
        if i % 3 == 2:
            messages.append(state({"at": i + 1}))
    run = _Run(config(emulator, batch_size_rows=3, max_parallel_jobs=3, max_failed_records=2,
                      failed_records_path=str(path)))
    with pytest.raises(TooManyFailedRecordsError, match=r"3 record\(s\) did not load") as err:
        run(messages)
    assert "Account: received 12, loaded 9" in str(err.value)
    assert run.most >= 2
    for value, accounted in run.states:
        assert accounted["Account"] >= value["at"], run.states
    tally = run.target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.not_loaded) == (12, 9, 3)
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # The emulator fails whichever batch it processes first: one whole batch, in order.
    first = int(failed[0]["record"]["Name"][1:])
    assert first % 3 == 0
    assert [f["record"] for f in failed] == [{"Name": f"A{i}"} for i in range(first, first + 3)]


def test_keys_differing_only_by_case_wait_for_each_other(emulator):
    add_external_id(emulator, "Account")  # case-insensitive, as most external ids
    emulator.state.faults.configure({"processing_delay_seconds": 0.2})
    messages = [schema("Account", ACCOUNT, [EXT]),
                record("Account", {EXT: "abc", "Name": "first"}),
                record("Account", {EXT: "x1", "Name": "x1"}),
                record("Account", {EXT: "ABC", "Name": "second"}),
                record("Account", {EXT: "x2", "Name": "x2"}),
                record("Account", {EXT: "Abc", "Name": "third"}),
                record("Account", {EXT: "aBC", "Name": "fourth"})]
    run = _Run(config(emulator, action="upsert", batch_size_rows=2, max_parallel_jobs=4))
    run(messages)
    assert run.most == 1
    assert sorted(rows(emulator, "SELECT Name FROM Account")) == [("fourth",), ("x1",), ("x2",)]
    tally = run.target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.collapsed) == (6, 6, 1)


@pytest.mark.parametrize("api", ["2.0", "1.0"])
def test_batch_size_rows_1_makes_one_job_per_record_and_state_waits(emulator, api):
    emulator.state.faults.configure({"processing_delay_seconds": 0.1})
    messages = [schema("Account", ACCOUNT), record("Account", {"Name": "a"}),
                record("Account", {"Name": "b"}), state({"at": 2}),
                record("Account", {"Name": "c"}), record("Account", {"Name": "d"}),
                state({"at": 4})]
    run = _Run(config(emulator, bulk_api=api, batch_size_rows=1, max_parallel_jobs=4))
    out = run(messages)
    assert out == '{"at": 4}\n'
    assert run.states == [({"at": 4}, {"Account": 4})]
    assert len(jobs(emulator)) == 4 and run.most >= 2
    assert sorted(rows(emulator, "SELECT Name FROM Account")) == [("a",), ("b",), ("c",), ("d",)]


def _slowly(messages: list[dict[str, Any]], pause: float) -> Iterator[str]:
    for message in messages:
        if message["type"] == "RECORD":
            time.sleep(pause)
        yield json.dumps(message) + "\n"


def test_records_arriving_slowly_fill_exact_batches_and_children_follow_parents(emulator):
    # About two records a second: the once-a-second catch-up, not the record count, accounts
    # for them; the parents' batch loads in the background when Contacts fill theirs.
    add_external_id(emulator, "Account")
    emulator.state.faults.configure({"processing_delay_seconds": 0.3})
    messages = [schema("Account", ACCOUNT, [EXT]), schema("Contact", CONTACT),
                record("Account", {EXT: "A1", "Name": "one"}),
                record("Account", {EXT: "A2", "Name": "two"}),
                record("Contact", {"LastName": "c1", "Account.External_Id__c": "A1"}),
                state({"at": "c1"}),
                record("Contact", {"LastName": "c2", "Account.External_Id__c": "A2"}),
                record("Account", {EXT: "A3", "Name": "three"}),
                state({"at": "a3"})]
    run = _Run(config(emulator, batch_size_rows=2, streams={"Account": {"action": "upsert"}}))
    out = run(_slowly(messages, 0.45))
    assert out == '{"at": "a3"}\n'
    ids = dict(rows(emulator, "SELECT External_Id__c, Id FROM Account"))
    assert sorted(rows(emulator, "SELECT LastName, AccountId FROM Contact")) == [
        ("c1", ids["A1"]), ("c2", ids["A2"])]
    assert sorted(job.processed for job in jobs(emulator)) == [1, 2, 2]
    streams = run.target.tally.streams()
    assert (streams["Account"].successful, streams["Contact"].successful) == (3, 2)


def test_a_parent_in_a_later_batch_or_a_cycle_fails_only_those_records(emulator, tmp_path):
    add_external_id(emulator, "Account")
    path = tmp_path / "failed.jsonl"
    props = {**ACCOUNT, "Parent": {"type": ["object", "null"],
                                   "properties": {EXT: {"type": "string"}}}}
    batch_1 = [{EXT: "child", "Name": "child", "Parent": {EXT: "later"}},
               {EXT: "X", "Name": "X", "Parent": {EXT: "Y"}},
               {EXT: "Y", "Name": "Y", "Parent": {EXT: "X"}}]
    batch_2 = [{EXT: "later", "Name": "later"}, {EXT: "grandchild", "Name": "grandchild",
                                                 "Parent": {EXT: "child"}}]
    messages = [schema("Account", props, [EXT]),
                *(record("Account", values) for values in batch_1 + batch_2),
                state({"done": True})]
    run = _Run(config(emulator, action="upsert", batch_size_rows=3, max_failed_records=10,
                      failed_records_path=str(path)))
    out = run(messages)
    assert out == '{"done": true}\n'
    tally = run.target.tally.streams()["Account"]
    assert (tally.received, tally.accounted) == (5, 5)
    stored = dict(rows(emulator, "SELECT External_Id__c, Parent.External_Id__c FROM Account"))
    failed = {json.loads(line)["record"][EXT]
              for line in path.read_text(encoding="utf-8").splitlines()}
    # "child" named a parent that came a batch later, and "grandchild" named "child"; of the
    # cycle X <-> Y, the one loaded first cannot find the other, nor then the other it.
    assert stored == {"later": None}
    assert failed == {"child", "grandchild", "X", "Y"}
