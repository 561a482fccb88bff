"""Objects the Bulk API refuses are read through REST query: same records, same state."""

from __future__ import annotations

import logging

import pytest

from tap_sfbulk.tap import StreamSyncError
from tests.tap.conftest import at, emulator_config, run_tap, sdk_stamp, write_at


def _switch_bulk_off(server, name: str = "Store__c") -> None:
    """As an object whose metadata says enableBulkApi=false: every Bulk job is refused."""
    obj = server.state.org.catalog.get(name)
    obj.bulk_api = False
    obj.bulk_queryable = False


@pytest.mark.parametrize("bulk_api", ["2.0", "1.0"])
def test_refused_object_is_read_through_rest_with_a_warning(emulator_factory, caplog,
                                                            bulk_api: str) -> None:
    server = emulator_factory(seed="demo", records=20, query_page_size=200)
    config = emulator_config(server, bulk_api=bulk_api, streams=["Store__c", "Account"],
                             upper_bound_lag_seconds=0,
                             related_fields={"Store__c": ["Owner.Username"]})
    through_bulk = run_tap(config)
    _switch_bulk_off(server)
    caplog.set_level(logging.WARNING)
    through_rest = run_tap(config)
    assert through_rest.records["Store__c"] == through_bulk.records["Store__c"]
    assert len(through_rest.records["Store__c"]) == 8
    assert {r["Owner.Username"] for r in through_rest.records["Store__c"]} == {
        server.state.settings.username}
    assert through_rest.records["Account"] == through_bulk.records["Account"]
    assert through_rest.final_state == through_bulk.final_state
    stream = through_rest.tap.streams["Store__c"]
    assert (stream.stats.status, stream.stats.jobs, stream.stats.job_ids) == ("ok", 0, [])
    code = "INVALIDENTITY" if bulk_api == "2.0" else "InvalidEntity"
    assert (f"Store__c: the Bulk API refuses this object ({code}: " in caplog.text
            and "read through the REST query API instead" in caplog.text)


def test_incremental_runs_through_rest_keep_bookmark_semantics(emulator) -> None:
    org = emulator.state.org
    _switch_bulk_off(emulator)
    moment = at(120)
    first_ids = write_at(org, moment, "Store__c", "insert",
                         [{"Name": "Harbour", "Store_Code__c": "H1"},
                          {"Name": "Market", "Store_Code__c": "M1"}])
    config = emulator_config(emulator, streams=["Store__c"], upper_bound_lag_seconds=0,
                             lookback_seconds=0)
    first = run_tap(config)
    assert sorted(first.by_id("Store__c")) == sorted(first_ids)
    assert first.bookmark("Store__c") == sdk_stamp(moment)
    later = at(30)
    new_ids = write_at(org, later, "Store__c", "insert", [{"Name": "Quay", "Store_Code__c": "Q1"}])
    second = run_tap(config, state=first.final_state)
    # The rows sitting exactly on the bookmark (the window is inclusive) and the new one.
    assert sorted(second.by_id("Store__c")) == sorted([*first_ids, *new_ids])
    assert second.bookmark("Store__c") == sdk_stamp(later)
    state = second.final_state
    third = run_tap(config, state=state)
    assert list(third.by_id("Store__c")) == new_ids
    assert third.bookmark("Store__c") == sdk_stamp(later)


def test_fallback_off_fails_the_stream_with_salesforce_code(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=20)
    _switch_bulk_off(server)
    config = emulator_config(server, streams=["Store__c"], upper_bound_lag_seconds=0,
                             rest_fallback=False)
    run = run_tap(config, expect_error=StreamSyncError)
    assert "Store__c: INVALIDENTITY: Store__c is not supported by the Bulk API" in str(run.error)
    assert "Store__c" not in run.records
