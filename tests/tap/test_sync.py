"""End-to-end syncs against the emulator: what reaches stdout, value for value."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
from decimal import Decimal

import pytest

from tap_sfbulk.tap import StreamSyncError
from tests.tap.conftest import (
    at,
    discover,
    emulator_config,
    run_tap,
    sdk_stamp,
    select_only,
    write_at,
)

OPEN_STATES = {"Open", "UploadComplete", "InProgress"}


def org_rows(server, soql: str) -> list[tuple]:
    return list(server.state.org.query(soql))


def assert_no_open_jobs(server) -> None:
    states = {}
    for job in server.state.jobs.jobs():
        state = getattr(job, "state", None)
        states[getattr(job, "id", "?")] = state
    assert not {k: v for k, v in states.items() if v in OPEN_STATES}, states


def _demo_ids(server, obj: str) -> set[str]:
    return {row[0] for row in org_rows(server, f"SELECT Id FROM {obj}")}


# ------------------------------------------------------------------------------ full table


@pytest.mark.parametrize("bulk_api", ["2.0", "1.0"])
def test_full_sync_reads_every_row_of_every_stream(demo_emulator, bulk_api: str) -> None:
    config = emulator_config(demo_emulator, bulk_api=bulk_api, upper_bound_lag_seconds=0,
                             streams=["Account", "Contact", "Opportunity", "Case"],
                             pk_chunking="off")
    run = run_tap(config)
    for obj in ("Account", "Contact", "Opportunity", "Case"):
        assert set(run.by_id(obj)) == _demo_ids(demo_emulator, obj), obj
        assert len(run.records[obj]) == len(_demo_ids(demo_emulator, obj))
    names = dict(org_rows(demo_emulator, "SELECT Id, Name FROM Account"))
    assert {i: r["Name"] for i, r in run.by_id("Account").items()} == names
    # Well-formed stream: SCHEMA before its records, a final STATE with all bookmarks.
    first = {}
    for index, message in enumerate(run.messages):
        first.setdefault((message["type"], message.get("stream")), index)
    for obj in ("Account", "Contact"):
        assert first[("SCHEMA", obj)] < first[("RECORD", obj)]
    assert run.messages[-1]["type"] == "STATE"
    for obj in ("Account", "Contact", "Opportunity", "Case"):
        stamps = [r["SystemModstamp"] for r in run.records[obj]]
        assert run.bookmark(obj) == max(stamps)
    assert "progress_markers" not in json.dumps(run.final_state)
    assert_no_open_jobs(demo_emulator)


def test_full_table_stream_from_catalog(demo_emulator) -> None:
    config = emulator_config(demo_emulator, streams=["Store__c"], upper_bound_lag_seconds=0)
    catalog = discover(config)
    entry = catalog["streams"][0]
    entry["replication_method"] = "FULL_TABLE"
    entry["replication_key"] = None
    for item in entry["metadata"]:
        if item["breadcrumb"] == []:
            item["metadata"]["forced-replication-method"] = "FULL_TABLE"
            item["metadata"]["replication-key"] = None
            item["metadata"]["selected"] = True
        elif item["breadcrumb"] == ["properties", "Opened__c"]:
            item["metadata"]["selected"] = False
    run = run_tap(config, catalog=catalog)
    records = run.records["Store__c"]
    assert len(records) == 8
    assert all("Opened__c" not in r for r in records)
    assert {r["Store_Code__c"] for r in records} == {f"ST-{i:03d}" for i in range(1, 9)}
    assert "replication_key_value" not in json.dumps(run.final_state)


# ------------------------------------------------------------------------------ Bulk 1.0


def test_pk_chunking_splits_the_query_and_reads_every_chunk(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=60)
    config = emulator_config(server, bulk_api="1.0", pk_chunking="on", pk_chunk_size=5,
                             streams=["Contact"], upper_bound_lag_seconds=0)
    run = run_tap(config)
    assert set(run.by_id("Contact")) == _demo_ids(server, "Contact")
    assert len(run.records["Contact"]) == 24
    stream = run.tap.streams["Contact"]
    jobs = [server.state.jobs.get(job_id) for job_id in stream.stats.job_ids]
    assert len(jobs) == 1
    job = jobs[0]
    # One original batch (NotProcessed) and one batch per chunk of five ids.
    states = [batch.state for batch in job.batches]
    assert states.count("NotProcessed") == 1
    chunks = [batch for batch in job.batches if batch.chunk is not None]
    assert len(chunks) == 5
    assert sum(batch.records_processed for batch in chunks) == 24
    assert job.state == "Closed"
    assert_no_open_jobs(server)


def test_pk_chunking_auto_and_off(emulator_factory, caplog) -> None:
    server = emulator_factory(seed="demo", records=20)
    caplog.set_level(logging.INFO)
    run = run_tap(emulator_config(server, bulk_api="1.0", pk_chunking="off",
                                  streams=["Store__c"], upper_bound_lag_seconds=0))
    assert len(run.records["Store__c"]) == 8
    run = run_tap(emulator_config(server, bulk_api="1.0", pk_chunking="on",
                                  streams=["Store__c"], upper_bound_lag_seconds=0))
    assert len(run.records["Store__c"]) == 8
    run = run_tap(emulator_config(server, bulk_api="1.0", pk_chunking="auto",
                                  streams=["Store__c"], upper_bound_lag_seconds=0))
    assert len(run.records["Store__c"]) == 8


@pytest.mark.parametrize(("chunk_size", "chunked"), [(10, True), (16, False), (1000, False)])
def test_pk_chunking_auto_chunks_only_tables_larger_than_a_chunk(
        emulator_factory, caplog, chunk_size: int, chunked: bool) -> None:
    """``auto`` counts the rows with REST ``SELECT COUNT()`` and chunks only above a chunk."""
    server = emulator_factory(seed="demo", records=40)
    caplog.set_level(logging.INFO, logger="tap-sfbulk")
    run = run_tap(emulator_config(server, bulk_api="1.0", pk_chunking="auto",
                                  pk_chunk_size=chunk_size, streams=["Contact"],
                                  upper_bound_lag_seconds=0))
    assert set(run.by_id("Contact")) == _demo_ids(server, "Contact")
    assert len(run.records["Contact"]) == 16
    assert f"Contact holds 16 rows; PK chunking {'on' if chunked else 'off'}" in caplog.text
    [job] = server.state.jobs.jobs()
    if chunked:
        assert job.pk_chunking is not None and job.pk_chunking.chunk_size == chunk_size
        assert len(job.batches) == 1 + 2  # the original batch and two chunks of ten ids
    else:
        assert job.pk_chunking is None and len(job.batches) == 1


def test_bulk1_multiple_result_files(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=40, result_rows_per_file=3)
    config = emulator_config(server, bulk_api="1.0", pk_chunking="off", streams=["Contact"],
                             upper_bound_lag_seconds=0)
    run = run_tap(config)
    assert len(run.records["Contact"]) == 16
    assert set(run.by_id("Contact")) == _demo_ids(server, "Contact")


def test_bulk1_content_types_give_identical_records(demo_emulator) -> None:
    outputs = {}
    for content_type in ("CSV", "JSON", "XML"):
        config = emulator_config(
            demo_emulator, bulk_api="1.0", query_content_type=content_type, pk_chunking="off",
            streams=["Type_Sample__c", "Account"], upper_bound_lag_seconds=0,
            related_fields={"Type_Sample__c": ["Account__r.Name"]},
        )
        run = run_tap(config)
        outputs[content_type] = {name: sorted(records, key=lambda r: r["Id"])
                                 for name, records in run.records.items()}
    assert outputs["CSV"] == outputs["JSON"] == outputs["XML"]
    samples = {r["Name"]: r for r in outputs["JSON"]["Type_Sample__c"]}
    assert samples["Nulls"]["Account__r.Name"] is None
    assert samples["All types"]["Account__r.Name"] == "Acme Inc. 1"
    assert samples["All types"]["Currency__c"] == Decimal("9999999999999.99")


# ------------------------------------------------------------------------------ Bulk 2.0


def test_bulk2_multi_page_results(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=40)
    config = emulator_config(server, streams=["Contact"], bulk2_page_size=3,
                             upper_bound_lag_seconds=0)
    run = run_tap(config)
    assert len(run.records["Contact"]) == 16
    assert set(run.by_id("Contact")) == _demo_ids(server, "Contact")
    stats = run.tap.streams["Contact"].stats
    # create, at least one poll, six pages (16 rows, 3 per page)
    assert stats.jobs == 1
    assert stats.api_calls >= 1 + 1 + 6


def test_bulk2_asks_for_large_pages_by_default(emulator_factory, monkeypatch) -> None:
    """One results call per 500,000 rows, whatever smaller page the org would pick itself."""
    from sfbulk.bulk2 import Bulk2

    asked: list[int | None] = []
    pages: list[int] = []
    original = Bulk2.iter_query_pages

    def recording(self, job_id, max_records=None):
        asked.append(max_records)
        for number, rows in original(self, job_id, max_records):
            pages.append(number)
            yield number, rows

    monkeypatch.setattr(Bulk2, "iter_query_pages", recording)
    server = emulator_factory(seed="demo", records=40, bulk2_page_rows=5)
    run = run_tap(emulator_config(server, streams=["Contact"], upper_bound_lag_seconds=0))
    assert len(run.records["Contact"]) == 16
    assert asked == [500_000]
    assert pages == [1]  # the emulator's own default (5 rows) would have taken four calls

    asked.clear()
    pages.clear()
    run = run_tap(emulator_config(server, streams=["Contact"], upper_bound_lag_seconds=0,
                                  bulk2_page_size=6))
    assert (asked, pages) == ([6], [1, 2, 3])
    refused = run_tap(emulator_config(server, streams=["Contact"], bulk2_page_size=0),
                      expect_error=StreamSyncError)
    assert "Contact: bulk2_page_size must be at least 1, not 0" in str(refused.error)


def test_session_expiring_mid_download_is_renewed(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=40)
    config = emulator_config(server, streams=["Contact"], bulk2_page_size=2,
                             upper_bound_lag_seconds=0)
    # The session dies after four more API calls: in the middle of the result pages.
    server.state.faults.configure({"expire_session_after": 4})
    run = run_tap(config)
    assert set(run.by_id("Contact")) == _demo_ids(server, "Contact")
    assert run.tap.connection.auth.token_requests >= 2


def test_failed_job_fails_the_stream_with_salesforce_message(emulator_factory) -> None:
    server = emulator_factory(seed="demo", records=20)
    server.state.faults.configure(
        {"fail_batches": {"count": 1, "message": "InternalServerError : Retried more than 15 "
                                                 "times"}})
    config = emulator_config(server, streams=["Account"], upper_bound_lag_seconds=0)
    run = run_tap(config, expect_error=StreamSyncError)
    assert "Account" in str(run.error)
    assert "Retried more than 15 times" in str(run.error)
    assert "Account" not in run.records
    assert run.final_state["bookmarks"].get("Account", {}).get("replication_key_value") is None
    assert_no_open_jobs(server)


def test_invalid_entity_fails_one_stream_and_others_finish(demo_emulator, caplog) -> None:
    # rest_fallback off: with it on, the refused stream would be read through REST instead.
    config = emulator_config(demo_emulator, streams=["Account", "Store__c"],
                             continue_on_stream_error=True, upper_bound_lag_seconds=0,
                             rest_fallback=False)
    catalog = select_only(discover(config), "Account", "Store__c")
    # CaseStatus is not discovered (Bulk cannot read it); a hand-written catalog still asks.
    catalog["streams"].append({
        "tap_stream_id": "CaseStatus", "stream": "CaseStatus",
        "schema": {"type": "object", "properties": {"Id": {"type": "string"},
                                                    "MasterLabel": {"type": ["string", "null"]}}},
        "key_properties": ["Id"],
        "metadata": [{"breadcrumb": [], "metadata": {"selected": True}}],
    })
    caplog.set_level(logging.INFO)
    run = run_tap(config, catalog=catalog, expect_error=StreamSyncError)
    message = str(run.error)
    assert message.startswith("1 of 3 streams failed: CaseStatus:")
    assert "INVALIDENTITY" in message or "InvalidEntity" in message
    assert len(run.records["Account"]) == len(_demo_ids(demo_emulator, "Account"))
    assert len(run.records["Store__c"]) == 8
    assert set(run.final_state["bookmarks"]) >= {"Account", "Store__c"}
    assert "Run summary" in caplog.text
    summary = caplog.text[caplog.text.index("Run summary"):]
    assert "CaseStatus" in summary and "failed" in summary


def test_stop_on_first_stream_error(demo_emulator) -> None:
    config = emulator_config(demo_emulator, streams=["Store__c"], upper_bound_lag_seconds=0,
                             soql_filter={"Store__c": "No_Such_Field__c = 1"})
    run = run_tap(config, expect_error=Exception)
    assert "No_Such_Field__c" in str(run.error)
    assert "Store__c" not in run.records


# ------------------------------------------------------------------------------ values


def test_type_zoo_values_are_exact(demo_emulator) -> None:
    config = emulator_config(demo_emulator, streams=["Type_Sample__c"],
                             upper_bound_lag_seconds=0)
    run = run_tap(config)
    rows = {r["Name"]: r for r in run.records["Type_Sample__c"]}
    full = rows["All types"]
    assert full["Long__c"] == 9007199254740993
    assert full["Int__c"] == 2147483647
    assert full["Double__c"] == Decimal("-1234.5678")
    assert full["Percent__c"] == Decimal("12.5")
    assert full["Checkbox__c"] is True
    assert full["Date__c"] == "2024-02-29"
    assert full["DateTime__c"] == "2024-02-29T21:59:59.999000+00:00"
    assert full["Time__c"] == "13:45:30.250Z"
    assert full["Long_Text__c"] == 'Line 1\nLine 2 with "quotes"\nLine 3 — ünïcödé 🎉'
    assert full["Vector__c"] == "[0.1, 0.2, 0.3]"
    assert full["Any__c"] == "42"
    # Compound parents are never emitted; their components are.
    assert "Address__c" not in full and "Location__c" not in full and "Blob__c" not in full
    assert full["Address__Street__s"] == "1 Infinite Loop\nBuilding 2"
    assert full["Address__Latitude__s"] == Decimal("37.331741")
    assert full["Location__Longitude__s"] == Decimal("2.294481")
    edges = rows["Edges"]
    assert edges["Text__c"] == "Ελληνικά και emoji 🚀"
    assert edges["Int__c"] == -2147483648
    assert edges["Double__c"] == Decimal("1.5E7")
    assert edges["Checkbox__c"] is False
    nulls = rows["Nulls"]
    assert nulls["Text__c"] is None and nulls["Long__c"] is None and nulls["Date__c"] is None


def test_codec_edge_values_round_trip(emulator) -> None:
    texts = ["NA", "N/A", "null", "None", 'a "quoted", comma', "line1\r\nline2\nline3",
             "emoji 😀🎉 and Ελληνικά", "  spaced  ", "#N/A text"]
    rows = [{"Name": f"Edge {i}", "Text__c": text, "Long__c": str(10**17 + i),
             "Double__c": "123456789012.1234", "Currency__c": "12345678901234.56"}
            for i, text in enumerate(texts)]
    # "#N/A text" is ordinary text; only the whole cell "#N/A" means null.
    write_at(emulator.state.org, at(60), "Type_Sample__c", "insert", rows)
    run = run_tap(emulator_config(emulator, streams=["Type_Sample__c"]))
    got = {r["Name"]: r for r in run.records["Type_Sample__c"]}
    for i, text in enumerate(texts):
        record = got[f"Edge {i}"]
        assert record["Text__c"] == text, i
        assert record["Long__c"] == 10**17 + i
        assert record["Double__c"] == Decimal("123456789012.1234")
        assert record["Currency__c"] == Decimal("12345678901234.56")
    # The emitted JSON carries the digits verbatim, as JSON numbers.
    assert '"Double__c":123456789012.1234,' in run.raw
    assert '"Currency__c":12345678901234.56,' in run.raw
    assert f'"Long__c":{10**17},' in run.raw


def test_compound_address_and_geolocation_components(demo_emulator) -> None:
    run = run_tap(emulator_config(demo_emulator, streams=["Account", "Store__c"],
                                  upper_bound_lag_seconds=0))
    account = run.records["Account"][0]
    assert "BillingAddress" not in account and "ShippingAddress" not in account
    assert {"BillingStreet", "BillingCity", "BillingLatitude", "BillingLongitude"} <= set(account)
    stores = {r["Name"]: r for r in run.records["Store__c"]}
    assert stores["Paris Store"]["Location__Latitude__s"] == Decimal("48.862500")
    assert stores["Paris Store"]["Location__Longitude__s"] == Decimal("2.336400")
    assert "Location__c" not in stores["Paris Store"]


def test_related_fields_and_soql_filter(demo_emulator) -> None:
    config = emulator_config(
        demo_emulator, streams=["Contact", "Account"], upper_bound_lag_seconds=0,
        related_fields={"Contact": ["Account.External_Id__c", "Account.Name"]},
        soql_filter={"account": "Industry = 'Banking' OR Industry = 'Retail'"},
    )
    run = run_tap(config)
    accounts = {row[0]: row for row in org_rows(
        demo_emulator, "SELECT Id, External_Id__c, Name, Industry FROM Account")}
    for contact in run.records["Contact"]:
        parent = accounts.get(contact["AccountId"])
        if parent is None:
            assert contact["Account.External_Id__c"] is None
        else:
            assert contact["Account.External_Id__c"] == parent[1]
            assert contact["Account.Name"] == parent[2]
    wanted = {i for i, row in accounts.items() if row[3] in ("Banking", "Retail")}
    assert set(run.by_id("Account")) == wanted


# ------------------------------------------------------------------------------ incremental


def test_incremental_second_run_reads_only_changes(emulator) -> None:
    org = emulator.state.org
    base = at(600)
    ids = [write_at(org, base + dt.timedelta(seconds=i), "Account", "insert",
                    [{"Name": f"Acct {i}"}])[0] for i in range(5)]
    config = emulator_config(emulator, streams=["Account"], lookback_seconds=0)
    first = run_tap(config)
    assert set(first.by_id("Account")) == set(ids)
    assert first.bookmark("Account") == sdk_stamp(base + dt.timedelta(seconds=4))

    changed = base + dt.timedelta(seconds=100)
    write_at(org, changed, "Account", "update", [{"Id": ids[1], "Name": "Acct 1 changed"}])
    second = run_tap(config, state=first.final_state)
    # The changed row, and the row sitting exactly on the bookmark (the window is inclusive).
    assert set(second.by_id("Account")) == {ids[1], ids[4]}
    assert second.by_id("Account")[ids[1]]["Name"] == "Acct 1 changed"
    assert second.bookmark("Account") == sdk_stamp(changed)

    # A run that finds nothing leaves the bookmark where it was.
    state = json.loads(json.dumps(second.final_state))
    later = sdk_stamp(base + dt.timedelta(seconds=300))
    state["bookmarks"]["Account"]["replication_key_value"] = later
    third = run_tap(config, state=state)
    assert "Account" not in third.records
    assert third.bookmark("Account") == later


def test_lookback_catches_a_row_committed_late(emulator) -> None:
    org = emulator.state.org
    base = at(900)
    write_at(org, base, "Account", "insert", [{"Name": "Early"}])
    write_at(org, base + dt.timedelta(seconds=200), "Account", "insert", [{"Name": "Later"}])
    config = emulator_config(emulator, streams=["Account"], lookback_seconds=120)
    first = run_tap(config)
    assert first.bookmark("Account") == sdk_stamp(base + dt.timedelta(seconds=200))
    # A transaction that began earlier commits now, stamped 60 s below the bookmark.
    late = write_at(org, base + dt.timedelta(seconds=140), "Account", "insert",
                    [{"Name": "Late commit"}])[0]
    with_lookback = run_tap(config, state=first.final_state)
    assert late in with_lookback.by_id("Account")
    assert with_lookback.bookmark("Account") == first.bookmark("Account")
    without = run_tap(dict(config, lookback_seconds=0), state=first.final_state)
    assert late not in without.by_id("Account")


def test_start_date_bounds_a_first_run(emulator, caplog) -> None:
    org = emulator.state.org
    base = at(3600)
    old = write_at(org, base, "Account", "insert", [{"Name": "Old"}])[0]
    new = write_at(org, base + dt.timedelta(seconds=1800), "Account", "insert",
                   [{"Name": "New"}])[0]
    caplog.set_level(logging.INFO)
    start = (base + dt.timedelta(seconds=900)).isoformat()
    run = run_tap(emulator_config(emulator, streams=["Account"], start_date=start))
    assert set(run.by_id("Account")) == {new}
    assert old not in run.by_id("Account")
    assert f"Effective start: {start}" in caplog.text
    everything = run_tap(emulator_config(emulator, streams=["Account"]))
    assert set(everything.by_id("Account")) == {old, new}
    assert "all history (no start_date)" in caplog.text


def test_upper_bound_leaves_fresh_rows_for_the_next_run(emulator) -> None:
    org = emulator.state.org
    settled = write_at(org, at(120), "Account", "insert", [{"Name": "Settled"}])[0]
    fresh = write_at(org, at(1), "Account", "insert", [{"Name": "Fresh"}])[0]
    config = emulator_config(emulator, streams=["Account"], upper_bound_lag_seconds=30)
    run = run_tap(config)
    assert set(run.by_id("Account")) == {settled}
    assert fresh not in run.by_id("Account")


def test_query_all_returns_deleted_rows(emulator) -> None:
    org = emulator.state.org
    ids = write_at(org, at(300), "Account", "insert", [{"Name": "Kept"}, {"Name": "Gone"}])
    write_at(org, at(200), "Account", "delete", [{"Id": ids[1]}])
    config = emulator_config(emulator, streams=["Account"])
    normal = run_tap(config)
    assert set(normal.by_id("Account")) == {ids[0]}
    for bulk_api in ("2.0", "1.0"):
        everything = run_tap(dict(config, include_deleted=True, bulk_api=bulk_api))
        rows = everything.by_id("Account")
        assert set(rows) == set(ids), bulk_api
        assert rows[ids[1]]["IsDeleted"] is True
        assert rows[ids[0]]["IsDeleted"] is False


# ------------------------------------------------------------------------------ parallel & batch


def test_parallel_streams_keep_output_well_formed(demo_emulator) -> None:
    names = ["Account", "Contact", "Opportunity", "Case", "Store__c", "Type_Sample__c"]
    config = emulator_config(demo_emulator, streams=names, max_parallel_streams=6,
                             bulk2_page_size=2, upper_bound_lag_seconds=0)
    run = run_tap(config)
    seen_schema: set[str] = set()
    for message in run.messages:
        if message["type"] == "SCHEMA":
            seen_schema.add(message["stream"])
        elif message["type"] == "RECORD":
            assert message["stream"] in seen_schema
    for name in names:
        assert set(run.by_id(name)) == _demo_ids(demo_emulator, name), name
    assert set(run.final_state["bookmarks"]) == set(names)
    sequential = run_tap(dict(config, max_parallel_streams=1))
    for name in names:
        assert sorted(sequential.records[name], key=lambda r: r["Id"]) == sorted(
            run.records[name], key=lambda r: r["Id"])


def test_batch_messages_write_gzipped_jsonl(demo_emulator, tmp_path) -> None:
    config = emulator_config(
        demo_emulator, streams=["Type_Sample__c", "Account"], upper_bound_lag_seconds=0,
        batch_config={"encoding": {"format": "jsonl", "compression": "gzip"},
                      "storage": {"root": f"file://{tmp_path}", "prefix": "out-"},
                      "batch_size": 2},
    )
    run = run_tap(config)
    batches = [m for m in run.messages if m["type"] == "BATCH"]
    assert not run.records
    by_stream: dict[str, list[dict]] = {}
    for message in batches:
        assert message["encoding"] == {"format": "jsonl", "compression": "gzip"}
        for url in message["manifest"]:
            path = url.removeprefix("file://")
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    by_stream.setdefault(message["stream"], []).append(
                        json.loads(line, parse_float=Decimal))
    assert len(by_stream["Type_Sample__c"]) == 3
    assert len(by_stream["Account"]) == len(_demo_ids(demo_emulator, "Account"))
    assert len([m for m in batches if m["stream"] == "Type_Sample__c"]) == 2
    sample = {r["Name"]: r for r in by_stream["Type_Sample__c"]}["All types"]
    assert sample["Long__c"] == 9007199254740993
    assert sample["Currency__c"] == Decimal("9999999999999.99")
    stamps = [r["SystemModstamp"] for r in by_stream["Account"]]
    assert run.bookmark("Account") == max(stamps)
    assert "progress_markers" not in json.dumps(run.final_state)


@pytest.mark.parametrize("bulk_api", ["2.0", "1.0"])
def test_job_timeout_aborts_the_job(emulator_factory, bulk_api: str) -> None:
    server = emulator_factory(seed="demo", records=20)
    server.state.faults.configure({"never_finish": True})
    config = emulator_config(server, streams=["Account"], job_timeout_seconds=1.5,
                             bulk_api=bulk_api, pk_chunking="off",
                             poll_interval_max_seconds=0.5, upper_bound_lag_seconds=0)
    run = run_tap(config, expect_error=StreamSyncError)
    assert "Account:" in str(run.error) and "after 2 s" in str(run.error)
    jobs = server.state.jobs.jobs()
    assert [job.state for job in jobs] == ["Aborted"]


@pytest.mark.parametrize("bulk_api", ["2.0", "1.0"])
def test_job_aborted_by_someone_else_fails_the_stream(emulator_factory, bulk_api: str) -> None:
    """An abort from outside ends the stream within a few polls, not at the job timeout.

    On Bulk 1.0 the running batch keeps running after an abort (only queued batches turn
    NotProcessed), so the batch list never shows it: the wait must read the job's state.
    """
    import threading
    import time

    from sfbulk.bulk1 import Bulk1
    from sfbulk.bulk2 import Bulk2
    from tap_sfbulk.connection import Connection

    server = emulator_factory(seed="demo", records=20)
    server.state.faults.configure({"never_finish": True})
    config = emulator_config(server, streams=["Account"], poll_interval_max_seconds=0.2,
                             upper_bound_lag_seconds=0, bulk_api=bulk_api, pk_chunking="off",
                             job_timeout_seconds=60)
    admin = Connection(config).new_client()
    aborted_at: list[float] = []

    def abort_when_running() -> None:
        for _ in range(400):
            jobs = server.state.jobs.jobs()
            if jobs and _running(server, jobs[0]):
                if bulk_api == "2.0":
                    Bulk2(admin).abort_query_job(jobs[0].id)
                else:
                    Bulk1(admin).abort_job(jobs[0].id)
                aborted_at.append(time.monotonic())
                return
            time.sleep(0.05)

    aborter = threading.Thread(target=abort_when_running)
    aborter.start()
    run = run_tap(config, expect_error=StreamSyncError)
    noticed_after = time.monotonic() - aborted_at[0]
    aborter.join()
    assert "Account:" in str(run.error)
    assert "Aborted" in str(run.error) or "aborted" in str(run.error)
    assert "Account" not in run.records
    assert noticed_after < 15, noticed_after  # a few 0.2 s polls, not the 60 s timeout
    assert [job.state for job in server.state.jobs.jobs()] == ["Aborted"]


def _running(server, job) -> bool:
    """Whether the emulator is processing the job (its query batch is InProgress)."""
    batches = getattr(job, "batches", None)
    if batches is None:
        return job.state == "InProgress"
    return any(batch.state == "InProgress" for batch in batches)
