"""Which path a RECORD takes through the SDK, and that both load the same way.

Streams without stream maps, validation or added metadata skip the SDK steps that do nothing for
them; any of those features sends records through the SDK's own handling.
"""

from __future__ import annotations

import json

import pytest
from singer_sdk.exceptions import MissingKeyPropertiesError

from tests.target.support import config, jobs, record, rows, run, schema, state

PROPS = {"Name": {"type": "string"}, "NumberOfEmployees": {"type": ["integer", "null"]}}


def _paths(target) -> dict[str, bool]:
    return {stream: known[2] is not None for stream, known in target._plain_sinks.items()}


def test_plain_stream_drops_metadata_counts_and_drains_by_batch_size(emulator, tmp_path):
    failed = tmp_path / "failed.jsonl"
    states, target = run(
        config(emulator, batch_size_rows=2, max_failed_records=5,
               failed_records_path=str(failed)),
        [schema("Account", PROPS),
         record("Account", {"Name": "A", "NumberOfEmployees": 1,
                            "_sdc_extracted_at": "2024-01-01T00:00:00Z", "_sdc_sequence": 7}),
         record("Account", {"Name": "B", "NumberOfEmployees": "many",
                            "_sdc_received_at": "2024-01-01T00:00:00Z"}),
         record("Account", {"Name": "C", "NumberOfEmployees": None}),
         state({"n": 3})])
    assert _paths(target) == {"Account": True}
    assert states == [{"n": 3}]
    assert sorted(rows(emulator, "SELECT Name, NumberOfEmployees FROM Account")) == [
        ("A", 1), ("C", None)]
    (entry,) = [json.loads(line) for line in failed.read_text().splitlines()]
    assert entry["record"] == {"Name": "B", "NumberOfEmployees": "many"}
    sink = target._sinks_active["Account"]
    assert sink._total_records_read == 3
    # batch_size_rows 2: A and B (refused while mapping) fill the first batch, C the second.
    assert len(jobs(emulator)) == 2
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.rejected) == (3, 2, 1)


def test_stream_maps_take_the_sdk_path(emulator):
    _, target = run(
        config(emulator, stream_maps={"Account": {"Name": "Name.upper()"}}),
        [schema("Account", PROPS), record("Account", {"Name": "mapped", "NumberOfEmployees": 2})])
    assert _paths(target) == {"Account": False}
    assert rows(emulator, "SELECT Name, NumberOfEmployees FROM Account") == [("MAPPED", 2)]


def test_validation_takes_the_sdk_path(emulator):
    _, target = run(
        config(emulator, validate_records=True),
        [schema("Account", PROPS), record("Account", {"Name": "valid", "NumberOfEmployees": 3})])
    assert _paths(target) == {"Account": False}
    assert rows(emulator, "SELECT Name FROM Account") == [("valid",)]


def test_missing_key_property_stops_the_run_as_in_the_sdk(emulator):
    with pytest.raises(MissingKeyPropertiesError, match="missing one or more key_properties"):
        run(config(emulator), [schema("Account", PROPS, ["Name"]),
                               record("Account", {"NumberOfEmployees": 3})])


def test_taken_records_fill_batches_exactly_and_state_follows_their_outcomes(emulator, caplog):
    # Records of a plain stream are held and accounted in steps; batch_size_rows must still cut
    # batches at exactly its row count, and STATE must wait for every record before it.
    caplog.set_level("INFO")
    messages = [schema("Account", PROPS)]
    messages += [record("Account", {"Name": f"R{i}", "NumberOfEmployees": i}) for i in range(7)]
    messages += [state({"n": 7}), record("Account", {"Name": "late", "NumberOfEmployees": 8})]
    states, target = run(config(emulator, batch_size_rows=3), messages)
    assert states == [{"n": 7}]
    sizes = sorted(job.processed for job in jobs(emulator))
    assert sizes == [2, 3, 3]  # 3 + 3, then R6 and "late" drained together at the end
    assert len(rows(emulator, "SELECT Name FROM Account")) == 8
    sink = target._sinks_active["Account"]
    assert sink._total_records_read == 8 and sink._held == []
    assert target.tally.streams()["Account"].received == 8
    assert "8 records" in caplog.text


def test_wide_records_are_accounted_in_small_steps(emulator):
    # About 200 kB of text per record: the step shrinks so pending bytes are checked often.
    messages = [schema("Account", {"Name": {"type": "string"}, "Description": {"type": "string"}})]
    messages += [record("Account", {"Name": f"W{i}", "Description": "x" * 30_000})
                 for i in range(12)]
    _, target = run(config(emulator), messages)
    sink = target._sinks_active["Account"]
    assert sink._take_step <= (1 << 20) // 30_000
    assert len(rows(emulator, "SELECT Name FROM Account")) == 12


def test_state_after_every_record_still_cuts_batches_at_batch_size_rows(emulator):
    # Each STATE catches the sink up on the record it holds; those records count towards the
    # row that fills the batch as much as records caught up every step.
    messages = [schema("Account", PROPS)]
    for i in range(7):
        messages += [record("Account", {"Name": f"R{i}"}), state({"at": i + 1})]
    states, target = run(config(emulator, batch_size_rows=2), messages)
    assert states == [{"at": 7}]
    assert sorted(job.processed for job in jobs(emulator)) == [1, 2, 2, 2]
    assert target.tally.streams()["Account"].successful == 7
