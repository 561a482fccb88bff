"""A stream's batches load side by side (up to max_parallel_jobs) when they cannot clash, and
STATE still waits for every record before it."""

from __future__ import annotations

import contextlib
import io
import threading
from typing import Any

import pytest

from target_sfbulk.target import TargetSfBulk
from tests.target.support import add_external_id, config, lines, record, rows, schema, state

PROPS = {"Name": {"type": "string"}, "External_Id__c": {"type": "string"}}


class _Watch:
    """Wraps the loader's ``load`` to record how many loads ran at once, and their keys."""

    def __init__(self, target: TargetSfBulk) -> None:
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        inner = target.loader.load

        def load(mapper: Any, operation: str, batch: Any, external_id: Any = None) -> Any:
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            try:
                return inner(mapper, operation, batch, external_id)
            finally:
                with self.lock:
                    self.running -= 1

        target.loader.load = load  # type: ignore[method-assign]


def _run(cfg: dict[str, Any], messages: list[dict[str, Any]],
         on_state: Any = None) -> tuple[TargetSfBulk, _Watch, str]:
    target = TargetSfBulk(config=cfg)
    watch = _Watch(target)
    if on_state is not None:
        write = target._write_state_message

        def wrapped(value: dict) -> None:
            on_state(value)
            write(value)

        target._write_state_message = wrapped  # type: ignore[method-assign]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        target.listen(io.StringIO(lines(messages)))
    return target, watch, out.getvalue()


@pytest.mark.parametrize("api", ["2.0", "1.0"])
def test_insert_batches_of_one_stream_overlap_and_state_waits_for_all(emulator, api):
    emulator.state.faults.configure({"processing_delay_seconds": 0.2})
    messages = [schema("Account", PROPS)]
    messages += [record("Account", {"Name": f"A{i}", "External_Id__c": f"K{i}"})
                 for i in range(12)]
    messages.append(state({"at": 12}))
    seen_at_state: list[int] = []
    target, watch, out = _run(
        config(emulator, bulk_api=api, batch_size_rows=3, max_parallel_jobs=3), messages,
        on_state=lambda _: seen_at_state.append(
            len(rows(emulator, "SELECT Id FROM Account"))))
    assert 2 <= watch.most <= 3
    assert seen_at_state == [12] and '"at": 12' in out
    assert target.tally.streams()["Account"].successful == 12


def test_upserts_sharing_a_key_wait_for_each_other_and_the_last_value_wins(emulator):
    add_external_id(emulator, "Account")
    emulator.state.faults.configure({"processing_delay_seconds": 0.2})
    messages = [schema("Account", PROPS, key=["External_Id__c"])]
    for value in ("first", "second", "third"):
        messages.append(record("Account", {"Name": value, "External_Id__c": "SAME"}))
        messages.append(record("Account", {"Name": f"other {value}",
                                           "External_Id__c": f"K-{value}"}))
    _, watch, _ = _run(config(emulator, action="upsert", batch_size_rows=2,
                              max_parallel_jobs=4), messages)
    assert watch.most == 1
    assert rows(emulator, "SELECT Name FROM Account WHERE External_Id__c = 'SAME'") == [
        ("third",)]


def test_upserts_with_distinct_keys_overlap(emulator):
    add_external_id(emulator, "Account")
    emulator.state.faults.configure({"processing_delay_seconds": 0.2})
    messages = [schema("Account", PROPS, key=["External_Id__c"])]
    messages += [record("Account", {"Name": f"N{i}", "External_Id__c": f"K{i}"})
                 for i in range(8)]
    _, watch, _ = _run(config(emulator, action="upsert", batch_size_rows=2,
                              max_parallel_jobs=4), messages)
    assert watch.most >= 2
    assert len(rows(emulator, "SELECT Id FROM Account")) == 8


def test_one_job_at_a_time_when_max_parallel_jobs_is_1(emulator):
    emulator.state.faults.configure({"processing_delay_seconds": 0.1})
    messages = [schema("Account", PROPS)]
    messages += [record("Account", {"Name": f"A{i}"}) for i in range(6)]
    _, watch, _ = _run(config(emulator, batch_size_rows=2, max_parallel_jobs=1), messages)
    assert watch.most == 1


def test_an_error_in_a_background_load_ends_the_run(emulator):
    messages = [schema("Account", PROPS)]
    messages += [record("Account", {"Name": f"A{i}"}) for i in range(6)]
    messages.append(state({"at": 6}))
    target = TargetSfBulk(config=config(emulator, batch_size_rows=2, max_parallel_jobs=3))
    inner = target.loader.load
    calls = []

    def load(mapper: Any, operation: str, batch: Any, external_id: Any = None) -> Any:
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("the second load broke")
        return inner(mapper, operation, batch, external_id)

    target.loader.load = load  # type: ignore[method-assign]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(RuntimeError, match="second load"):
        target.listen(io.StringIO(lines(messages)))
    assert out.getvalue() == ""  # no STATE for records whose outcome is unknown
