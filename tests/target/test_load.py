"""End-to-end loads against the emulator: every action on both APIs, values, keys and references."""

from __future__ import annotations

import json
import os
import stat

import pytest

from sfbulk.emulator.metadata import FieldDef
from sfbulk.errors import ConfigError
from target_sfbulk.target import TooManyFailedRecordsError
from tests.target.support import (
    add_external_id,
    config,
    jobs,
    record,
    rows,
    run,
    schema,
    state,
)

APIS = ["2.0", "1.0"]
PLAIN = {"Name": {"type": "string"}, "NumberOfEmployees": {"type": ["integer", "null"]}}
ACCOUNT = PLAIN | {"External_Id__c": {"type": "string"}}


def _accounts(server, names):
    return run(config(server, action="insert"),
               [schema("Account", {"Name": {"type": "string"}}),
                *[record("Account", {"Name": n}) for n in names]])


@pytest.mark.parametrize("api", APIS)
def test_insert_then_update_by_id(emulator, api):
    states, target = run(config(emulator, bulk_api=api),
                         [schema("account", PLAIN, []),  # stream name in any case
                          record("account", {"Name": "Acme", "NumberOfEmployees": 0}),
                          record("account", {"Name": "Beta", "NumberOfEmployees": 5}),
                          state({"bookmark": 1})])
    assert states == [{"bookmark": 1}]
    found = rows(emulator, "SELECT Id, Name, NumberOfEmployees FROM Account ORDER BY Name")
    assert [(n, e) for _, n, e in found] == [("Acme", 0), ("Beta", 5)]
    tally = target.tally.streams()["account"]
    assert (tally.received, tally.successful, tally.created) == (2, 2, 2)
    ids = {n: i for i, n, _ in found}
    run(config(emulator, bulk_api=api, action="update"),
        [schema("Account", {"Id": {"type": "string"}, "Name": {"type": "string"}}, ["Id"]),
         record("Account", {"Id": ids["Acme"], "Name": "Acme 2"}),
         record("Account", {"Id": ids["Beta"][:15], "Name": "Beta 2"})])
    assert rows(emulator, "SELECT Id, Name, NumberOfEmployees FROM Account ORDER BY Name") == [
        (ids["Acme"], "Acme 2", 0), (ids["Beta"], "Beta 2", 5)]


@pytest.mark.parametrize("api", APIS)
def test_upsert_is_idempotent_and_reports_updates(emulator, api):
    add_external_id(emulator, "Account")
    messages = [schema("Account", ACCOUNT, ["External_Id__c"]),
                record("Account", {"External_Id__c": "A1", "Name": "Acme"}),
                record("Account", {"External_Id__c": "B2", "Name": "Beta",
                                   "NumberOfEmployees": 3})]
    cfg = config(emulator, bulk_api=api, action="upsert")
    _, first = run(cfg, messages)
    before = rows(emulator, "SELECT Id, External_Id__c, Name, NumberOfEmployees FROM Account "
                            "ORDER BY External_Id__c")
    _, second = run(cfg, messages)
    after = rows(emulator, "SELECT Id, External_Id__c, Name, NumberOfEmployees FROM Account "
                           "ORDER BY External_Id__c")
    assert before == after
    assert [r[1:] for r in after] == [("A1", "Acme", None), ("B2", "Beta", 3)]
    one, two = first.tally.streams()["Account"], second.tally.streams()["Account"]
    assert (one.created, one.updated) == (2, 0)
    assert (two.created, two.updated) == (0, 2)


@pytest.mark.parametrize("api", APIS)
def test_duplicate_keys_in_one_job_collapse_last_wins(emulator, api):
    add_external_id(emulator, "Account")
    _, target = run(config(emulator, bulk_api=api, action="upsert"),
                    [schema("Account", ACCOUNT, ["External_Id__c"]),
                     record("Account", {"External_Id__c": "A1", "Name": "first",
                                        "NumberOfEmployees": 1}),
                     record("Account", {"External_Id__c": "a1", "Name": "second"}),
                     record("Account", {"External_Id__c": "B2", "Name": "other"})])
    assert rows(emulator, "SELECT External_Id__c, Name, NumberOfEmployees FROM Account "
                          "ORDER BY Name") == [("B2", "other", None), ("a1", "second", 1)]
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.collapsed) == (3, 3, 1)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("operation", ["delete", "hardDelete"])
def test_delete_and_hard_delete(emulator, api, operation):
    _accounts(emulator, ["Keep", "Drop1", "Drop2"])
    ids = dict(rows(emulator, "SELECT Name, Id FROM Account"))
    _, target = run(config(emulator, bulk_api=api, action=operation),
                    [schema("Account", {"Id": {"type": "string"}, "Name": {"type": "string"}},
                            ["Id"]),
                     record("Account", {"Id": ids["Drop1"], "Name": "ignored"}),
                     record("Account", {"Id": ids["Drop2"]})])
    assert rows(emulator, "SELECT Name FROM Account") == [("Keep",)]
    deleted = emulator.state.org.count("Account", include_deleted=True)
    assert deleted == (3 if operation == "delete" else 1)
    assert target.tally.streams()["Account"].successful == 2


@pytest.mark.parametrize("api", APIS)
def test_sdc_deleted_at_deletes_within_a_write_stream(emulator, api):
    add_external_id(emulator, "Account")
    _accounts(emulator, ["Gone"])
    gone = rows(emulator, "SELECT Id FROM Account")[0][0]
    run(config(emulator, bulk_api=api, action="upsert", hard_delete=True),
        [schema("Account", ACCOUNT | {"Id": {"type": "string"},
                                      "_sdc_deleted_at": {"type": ["null", "string"]}},
                ["External_Id__c"]),
         record("Account", {"External_Id__c": "N1", "Name": "New"}),
         record("Account", {"Id": gone, "External_Id__c": "G1", "Name": "Gone",
                            "_sdc_deleted_at": "2024-05-01T00:00:00Z"})])
    assert rows(emulator, "SELECT External_Id__c, Name FROM Account") == [("N1", "New")]
    assert emulator.state.org.count("Account", include_deleted=True) == 1  # hard deleted


@pytest.mark.parametrize("api", APIS)
def test_null_clears_absent_leaves_and_ignore_mode(emulator, api):
    add_external_id(emulator, "Account")
    props = ACCOUNT | {"Phone": {"type": ["string", "null"]}}
    cfg = config(emulator, bulk_api=api, action="upsert")
    run(cfg, [schema("Account", props, ["External_Id__c"]),
              record("Account", {"External_Id__c": "A", "Name": "a", "Phone": "1",
                                 "NumberOfEmployees": 7}),
              record("Account", {"External_Id__c": "B", "Name": "b", "Phone": "2",
                                 "NumberOfEmployees": 8}),
              record("Account", {"External_Id__c": "C", "Name": "c", "Phone": "3",
                                 "NumberOfEmployees": 9})])
    run(cfg, [schema("Account", props, ["External_Id__c"]),
              record("Account", {"External_Id__c": "A", "Phone": None}),  # clears
              record("Account", {"External_Id__c": "B", "NumberOfEmployees": 0})])  # absent Phone
    run(cfg | {"null_handling": "ignore"},
        [schema("Account", props, ["External_Id__c"]),
         record("Account", {"External_Id__c": "C", "Phone": None, "Name": "c2"})])
    assert rows(emulator, "SELECT External_Id__c, Name, Phone, NumberOfEmployees FROM Account "
                          "ORDER BY External_Id__c") == [
        ("A", "a", None, 7), ("B", "b", "2", 0), ("C", "c2", "3", 9)]


@pytest.mark.parametrize("api", APIS)
def test_relationship_columns_flat_nested_and_exclusions(emulator, api):
    add_external_id(emulator, "Account")
    run(config(emulator, bulk_api=api, action="upsert"),
        [schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "ACME", "Name": "Acme"}),
         record("Account", {"External_Id__c": "BETA", "Name": "Beta"})])
    accounts = dict(rows(emulator, "SELECT External_Id__c, Id FROM Account"))
    # A copy from another org: the source's AccountId is meaningless here and is excluded.
    contact_props = {"LastName": {"type": "string"}, "AccountId": {"type": "string"},
                     "Account.External_Id__c": {"type": "string"},
                     "Account": {"type": "object",
                                 "properties": {"External_Id__c": {"type": "string"}}}}
    _, target = run(
        config(emulator, bulk_api=api, action="insert", max_failed_records=1,
               streams={"contacts": {"object": "contact", "exclude_fields": ["accountid"]}}),
        [schema("contacts", contact_props),
         record("contacts", {"LastName": "Flat", "AccountId": "001000000000000AAA",
                             "Account.External_Id__c": "ACME"}),
         record("contacts", {"LastName": "Nested", "AccountId": "001000000000000AAA",
                             "Account": {"External_Id__c": "beta"}}),
         record("contacts", {"LastName": "Missing", "Account.External_Id__c": "NOPE"})])
    assert rows(emulator, "SELECT LastName, AccountId FROM Contact ORDER BY LastName") == [
        ("Flat", accounts["ACME"]), ("Nested", accounts["BETA"])]
    tally = target.tally.streams()["contacts"]
    assert (tally.successful, tally.failed) == (2, 1)
    assert dict(tally.codes) == {"INVALID_FIELD": 1}


@pytest.mark.parametrize("api", APIS)
def test_union_header_when_later_records_add_fields(emulator, api):
    run(config(emulator, bulk_api=api),
        [schema("Account", PLAIN | {"Phone": {"type": "string"}}),
         record("Account", {"Name": "only name"}),
         record("Account", {"Name": "with phone", "Phone": "555"}),
         record("Account", {"Name": "with count", "NumberOfEmployees": 4})])
    assert rows(emulator, "SELECT Name, Phone, NumberOfEmployees FROM Account ORDER BY Name") == [
        ("only name", None, None), ("with count", None, 4), ("with phone", "555", None)]


@pytest.mark.parametrize("api", APIS)
def test_awkward_text_round_trips_exactly(emulator, api):
    long_emoji = "😀" * 255  # Account.Name holds 255 characters, emoji included
    values = ['plain', 'comma, and "quotes"', "line\nbreak\r\nand CR\r", "emoji 🎉 and ünïcödé",
              "中文字符串", "  padded  ", "trailing backslash \\", long_emoji,
              "#N/A is only null alone: #N/A", "'single'"]
    run(config(emulator, bulk_api=api),
        [schema("Account", {"Name": {"type": "string"}, "Description": {"type": "string"}}),
         *[record("Account", {"Name": v, "Description": v * 3}) for v in values]])
    stored = rows(emulator, "SELECT Name, Description FROM Account")
    assert sorted(stored) == sorted((v, v * 3) for v in values)


@pytest.mark.parametrize("api", APIS)
def test_too_long_text_fails_that_record_only(emulator, api, tmp_path):
    path = tmp_path / "failed.jsonl"
    with pytest.raises(TooManyFailedRecordsError):
        run(config(emulator, bulk_api=api, failed_records_path=str(path)),
            [schema("Account", {"Name": {"type": "string"}}),
             record("Account", {"Name": "x" * 256}), record("Account", {"Name": "ok"})])
    assert rows(emulator, "SELECT Name FROM Account") == [("ok",)]
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(f["status"], f["error_code"], f["record"]["Name"][:3]) for f in failed] == [
        ("failed", "STRING_TOO_LONG", "xxx")]


@pytest.mark.parametrize("api", APIS)
def test_dates_and_datetimes_across_time_zones(emulator, api):
    props = {"Name": {"type": "string"}, "Date__c": {"type": "string", "format": "date"},
             "DateTime__c": {"type": "string", "format": "date-time"},
             "Checkbox__c": {"type": "boolean"}, "Currency__c": {"type": "number"}}
    run(config(emulator, bulk_api=api, timezone="America/New_York",
               streams={"samples": {"object": "Type_Sample__c"}}),
        [schema("samples", props),
         record("samples", {"Name": "naive", "DateTime__c": "2024-01-15T10:30:00",
                            "Date__c": "2024-01-15T23:30:00", "Checkbox__c": "False",
                            "Currency__c": 0}),
         record("samples", {"Name": "offset", "DateTime__c": "2024-07-01T10:30:00+02:00",
                            "Date__c": "2024-07-01", "Checkbox__c": False,
                            "Currency__c": "912260031.25"}),
         record("samples", {"Name": "utc", "DateTime__c": "2024-03-10T06:59:59.999Z",
                            "Date__c": "2024-03-10T03:00:00Z", "Checkbox__c": True,
                            "Currency__c": 1.5})])
    assert rows(emulator, "SELECT Name, DateTime__c, Date__c, Checkbox__c, Currency__c FROM "
                          "Type_Sample__c ORDER BY Name") == [
        ("naive", "2024-01-15T15:30:00.000Z", "2024-01-15", 0, 0),
        ("offset", "2024-07-01T08:30:00.000Z", "2024-07-01", 0, 912260031.25),
        # 03:00 UTC on March 10th is still March 9th in New York.
        ("utc", "2024-03-10T06:59:59.999Z", "2024-03-09", 1, 1.5)]


def test_bad_value_fails_its_record_not_the_batch(emulator, tmp_path):
    path = tmp_path / "failed.jsonl"
    _, target = run(config(emulator, max_failed_records=5, failed_records_path=str(path),
                           streams={"samples": {"object": "Type_Sample__c"}}),
                    [schema("samples", {"Name": {"type": "string"},
                                        "Int__c": {"type": ["integer", "string"]},
                                        "DateTime__c": {"type": "string"}}),
                     record("samples", {"Name": "good", "Int__c": 3}),
                     record("samples", {"Name": "bad int", "Int__c": "three"}),
                     record("samples", {"Name": "bad date", "DateTime__c": "yesterday"})])
    assert rows(emulator, "SELECT Name, Int__c FROM Type_Sample__c") == [("good", 3)]
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [(f["status"], f["record"]["Name"]) for f in failed] == [
        ("rejected", "bad int"), ("rejected", "bad date")]
    assert "Int__c: 'three' is not an integer" in failed[0]["error_message"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert target.tally.unbalanced() == {}


def test_unknown_fields_stop_before_any_job(emulator):
    with pytest.raises(ConfigError, match="Bogus__c: Account has no field 'Bogus__c'"):
        run(config(emulator), [schema("Account", {"Name": {"type": "string"},
                                                  "Bogus__c": {"type": "string"}}),
                               record("Account", {"Name": "x", "Bogus__c": "y"})])
    assert jobs(emulator) == []
    run(config(emulator, unknown_fields="drop"),
                    [schema("Account", {"Name": {"type": "string"},
                                        "Bogus__c": {"type": "string"}}),
                     record("Account", {"Name": "x", "Bogus__c": "y"})])
    assert rows(emulator, "SELECT Name FROM Account") == [("x",)]


def test_upsert_key_must_be_an_external_id(emulator):
    with pytest.raises(ConfigError, match=r"Account.Name .* is not an external id field"):
        run(config(emulator, action="upsert", external_id_field="Name"),
            [schema("Account", {"Name": {"type": "string"}})])
    assert jobs(emulator) == []


def test_unknown_object_names_the_setting(emulator):
    with pytest.raises(ConfigError, match=r"the org has no object .widgets. .*streams.widgets"):
        run(config(emulator), [schema("widgets", {"Name": {"type": "string"}})])


@pytest.mark.parametrize("content_type", ["JSON", "XML"])
def test_bulk1_json_and_xml_batches(emulator, content_type):
    add_external_id(emulator, "Account")
    emulator.state.org.add_field("Contact", FieldDef("Vip__c", "boolean", label="VIP",
                                                     nillable=False, custom=True,
                                                     defaulted_on_create=True,
                                                     default_value=False))
    run(config(emulator, bulk_api="1.0", action="upsert"),
        [schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "P", "Name": "Parent"})])
    run(config(emulator, bulk_api="1.0", content_type=content_type,
               streams={"Contact": {"field_renames": {"acct": "Account.External_Id__c"}}}),
        [schema("Contact", {"LastName": {"type": "string"}, "Email": {"type": ["string", "null"]},
                            "Vip__c": {"type": "boolean"}, "acct": {"type": "string"}}),
         record("Contact", {"LastName": 'Ä <&> "q"', "Email": None, "Vip__c": False,
                            "acct": "P"}),
         record("Contact", {"LastName": "Two", "Vip__c": True})])
    parent = rows(emulator, "SELECT Id FROM Account")[0][0]
    assert rows(emulator, "SELECT LastName, Email, Vip__c, AccountId FROM Contact "
                          "ORDER BY LastName") == [("Two", None, 1, None),
                                                   ('Ä <&> "q"', None, 0, parent)]


@pytest.mark.parametrize("api", APIS)
def test_false_and_zero_survive_runs_of_same_shaped_records(emulator, api):
    # Enough records of one shape for the batcher to encode them column by column; falsy
    # values in every position of the run, and text that only looks falsy.
    props = {"Name": {"type": "string"}, "Checkbox__c": {"type": "boolean"},
             "Int__c": {"type": "integer"}, "Currency__c": {"type": "number"},
             "Text__c": {"type": "string"}}
    values = [(f"r{i:02d}", i % 2 == 1, i % 3, [0, 0.0, 1.5][i % 3], ["0", "false", ""][i % 3])
              for i in range(30)]
    messages = [schema("samples", props)]
    messages += [record("samples", {"Name": n, "Checkbox__c": c, "Int__c": k, "Currency__c": m,
                                    "Text__c": x}) for n, c, k, m, x in values]
    _, target = run(config(emulator, bulk_api=api,
                           streams={"samples": {"object": "Type_Sample__c"}}), messages)
    assert target.tally.streams()["samples"].successful == 30
    stored = rows(emulator, "SELECT Name, Checkbox__c, Int__c, Currency__c, Text__c "
                            "FROM Type_Sample__c ORDER BY Name")
    assert stored == [(n, int(c), k, m, x or None) for n, c, k, m, x in values]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("action", ["insert", "upsert"])
def test_failures_inside_runs_of_results_reach_exactly_their_records(emulator, tmp_path, api,
                                                                     action):
    # Results are joined in runs; records that Salesforce refuses (a required Name cleared)
    # sit inside those runs and must get their own failure, and nothing else.
    add_external_id(emulator, "Account")
    path = tmp_path / "failed.jsonl"
    records = [{"External_Id__c": f"K{i:02d}", "Name": None if i % 7 == 3 else f"N{i:02d}",
                "NumberOfEmployees": i} for i in range(40)]
    _, target = run(config(emulator, bulk_api=api, action=action, max_failed_records=10,
                           failed_records_path=str(path)),
                    [schema("Account", ACCOUNT | {"Name": {"type": ["string", "null"]}},
                            ["External_Id__c"]),
                     *(record("Account", values) for values in records)])
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [f["record"] for f in failed] == [r for r in records if r["Name"] is None]
    assert {f["error_code"] for f in failed} == {"REQUIRED_FIELD_MISSING"}
    assert sorted(rows(emulator, "SELECT External_Id__c, Name, NumberOfEmployees FROM Account")) \
        == [(r["External_Id__c"], r["Name"], r["NumberOfEmployees"]) for r in records
            if r["Name"] is not None]
    tally = target.tally.streams()["Account"]
    assert (tally.received, tally.successful, tally.failed) == (40, 34, 6)


@pytest.mark.parametrize(("names", "downloaded"), [
    (["A", "B", "C"], ["successfulResults"]),
    (["A", None, "C"], ["successfulResults", "failedResults"]),
    ([None, None], ["failedResults"]),
])
def test_bulk2_downloads_only_result_sets_the_job_counts_say_hold_rows(emulator, tmp_path,
                                                                        monkeypatch, names,
                                                                        downloaded):
    # A JobComplete job's counts are final: an empty failedResults or unprocessedrecords is
    # not asked for (an API call saved per job), and every record still gets its outcome.
    from sfbulk.bulk2 import Bulk2

    asked: list[str] = []
    real = Bulk2.iter_ingest_result_pages

    def spy(self, job_id, which, *args, **kwargs):
        asked.append(which)
        return real(self, job_id, which, *args, **kwargs)

    monkeypatch.setattr(Bulk2, "iter_ingest_result_pages", spy)
    path = tmp_path / "failed.jsonl"
    _, target = run(config(emulator, bulk_api="2.0", action="insert", max_failed_records=10,
                           failed_records_path=str(path)),
                    [schema("Account", {"Name": {"type": ["string", "null"]}}),
                     *(record("Account", {"Name": name}) for name in names)])
    assert asked == downloaded
    tally = target.tally.streams()["Account"]
    good = [name for name in names if name is not None]
    assert (tally.successful, tally.failed) == (len(good), len(names) - len(good))
    assert sorted(n for (n,) in rows(emulator, "SELECT Name FROM Account")) == good
    failed = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {f["error_code"] for f in failed} <= {"REQUIRED_FIELD_MISSING"}
    assert len(failed) == len(names) - len(good)
