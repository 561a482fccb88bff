"""Joining results to rows, the failed-records file and load ordering."""

from __future__ import annotations

import json
import os
import stat

import pytest

from target_sfbulk.failures import RunTally
from target_sfbulk.ordering import waves
from target_sfbulk.outcomes import (
    FAILED,
    REJECTED,
    SUCCESS,
    UNPROCESSED,
    Outcome,
    ResultJoiner,
    ResultJoinError,
    join_in_order,
    outcome_from_bulk1,
    parse_error_cell,
)


def test_parse_error_cell_shapes():
    assert parse_error_cell("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:"
                            "LastName --") == (
        "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ("LastName",))
    assert parse_error_cell("UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this "
                            "record: --") == (
        "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", ())
    assert parse_error_cell("something odd") == ("UNKNOWN_EXCEPTION", "something odd", ())


def test_bulk1_rows_in_order():
    rows = [{"Id": "001000000000001AAA", "Success": "true", "Created": "true", "Error": ""},
            {"Id": "", "Success": "false", "Created": "false",
             "Error": "INVALID_EMAIL_ADDRESS:Email: invalid email address: x:Email --"}]
    outcomes = [outcome_from_bulk1(r, "750J", "751B") for r in rows]
    assert outcomes[0] == Outcome(SUCCESS, "001000000000001AAA", True, job_id="750J",
                                  batch_id="751B")
    assert outcomes[1] == Outcome(FAILED, None, None, "INVALID_EMAIL_ADDRESS",
                                  "Email: invalid email address: x", ("Email",), "750J", "751B")
    assert join_in_order(2, outcomes, job_id="750J", batch_id="751B") == outcomes
    with pytest.raises(ResultJoinError, match="batch has 3 rows but Salesforce returned 2"):
        join_in_order(3, outcomes, job_id="750J", batch_id="751B")


def test_bulk1_json_results():
    outcome = outcome_from_bulk1({"success": False, "created": False, "id": None,
                                  "errors": [{"statusCode": "DUPLICATE_VALUE",
                                              "message": "dup", "fields": ["Ext__c"]}]},
                                 "750J", "751B")
    assert outcome == Outcome(FAILED, None, None, "DUPLICATE_VALUE", "dup", ("Ext__c",),
                              "750J", "751B")


def test_bulk2_insert_join_by_converted_content_in_any_order():
    header = ["Name", "Amount__c", "Active__c", "Start__c", "Day__c"]
    rows = [["A", "912260031", "1", "2024-01-01T10:00:00+02:00", "2024-01-01"],
            ["B", "0.1", "false", "2024-01-01T08:00:00.000Z", "2024-01-02"],
            ["A", "912260031", "1", "2024-01-01T10:00:00+02:00", "2024-01-01"],
            ["C", "#N/A", "true", "#N/A", ""]]
    types = {"Name": "string", "Amount__c": "currency", "Active__c": "boolean",
             "Start__c": "datetime", "Day__c": "date"}
    joiner = ResultJoiner(header, rows, types, job_id="750J")
    ok = [["sf__Id", "sf__Created", *header],
          ["a02000000000003AAA", "true", "C", "#N/A", "true", "#N/A", ""],
          ["a02000000000001AAA", "true", "A", "9.12260031E8", "true", "2024-01-01T08:00:00.000Z",
           "2024-01-01"],
          ["a02000000000002AAA", "true", "A", "9.12260031E8", "true", "2024-01-01T08:00:00.000Z",
           "2024-01-01"]]
    failed = [["sf__Id", "sf__Error", *header],
              ["", "FIELD_CUSTOM_VALIDATION_EXCEPTION:too small:Amount__c --", "B", "0.1",
               "false", "2024-01-01T08:00:00.000Z", "2024-01-02"]]
    assert joiner.add_page("successful", ok) == 3
    assert joiner.add_page("failed", failed) == 1
    assert joiner.add_page("unprocessed", [header]) == 0
    outcomes = joiner.finish()
    assert [o.status for o in outcomes] == [SUCCESS, FAILED, SUCCESS, SUCCESS]
    # Identical rows take the results for their content in input order.
    assert [o.id for o in outcomes] == ["a02000000000001AAA", None, "a02000000000002AAA",
                                        "a02000000000003AAA"]
    assert outcomes[1].code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert outcomes[1].fields == ("Amount__c",)


def test_bulk2_insert_join_when_many_rows_share_their_text():
    # 40 rows with one Name differ only in a number that Salesforce echoes reformatted, plus 20
    # identical rows: past a few rows sharing their text cells, the joiner indexes them by their
    # normalised numbers; identical rows still take their results in input order.
    header = ["Name", "Amount__c"]
    rows = [["Same", str(i * 10_000_000)] for i in range(40)] + [["Twin", "5"]] * 20
    joiner = ResultJoiner(header, rows, {"Name": "string", "Amount__c": "double"}, job_id="750J")
    page = [["sf__Id", "sf__Created", "Amount__c", "Name"]]
    page += [[f"id{i}", "true", f"{i}.0E7" if i else "0.0", "Same"] for i in reversed(range(40))]
    page += [[f"twin{i}", "true", "5.0", "Twin"] for i in range(20)]
    assert joiner.add_page("successful", page) == 60
    outcomes = joiner.finish()
    assert [o.id for o in outcomes] == [f"id{i}" for i in range(40)] + \
        [f"twin{i}" for i in range(20)]
    with pytest.raises(ResultJoinError, match="matches no uploaded row"):
        joiner.add_page("successful", [page[0], ["x", "true", "5.0", "Twin"]])


def test_bulk2_keyed_join_ignores_other_columns():
    header = ["Ext__c", "Name"]
    rows = [["k1", "one"], ["K2", "two"]]
    joiner = ResultJoiner(header, rows, {"Ext__c": "string", "Name": "string"},
                          key_column="Ext__c", fold_key_case=True, job_id="750J")
    joiner.add_page("successful", [["sf__Id", "sf__Created", "Ext__c", "Name"],
                                   ["a0100000000000BAAA", "false", "k2", "TWO (trimmed?)"],
                                   ["a0100000000000AAAA", "true", "K1", "one"]])
    outcomes = joiner.finish()
    assert [(o.id, o.created) for o in outcomes] == [("a0100000000000AAAA", True),
                                                     ("a0100000000000BAAA", False)]


def test_bulk2_unmatched_and_missing_results_are_errors():
    joiner = ResultJoiner(["Name"], [["A"]], {"Name": "string"}, job_id="750J")
    with pytest.raises(ResultJoinError, match="matches no uploaded row"):
        joiner.add_page("successful", [["sf__Id", "sf__Created", "Name"], ["x", "true", "Z"]])
    joiner = ResultJoiner(["Name"], [["A"], ["B"]], {"Name": "string"}, job_id="750J")
    joiner.add_page("successful", [["sf__Id", "sf__Created", "Name"], ["x", "true", "B"]])
    with pytest.raises(ResultJoinError, match="1 of 2 uploaded rows have no result row"):
        joiner.finish()
    outcomes = joiner.finish(unprocessed_message="job Failed: boom")
    assert outcomes[0] == Outcome(UNPROCESSED, None, None, "UNPROCESSED", "job Failed: boom",
                                  job_id="750J")
    with pytest.raises(ResultJoinError, match="lacks the uploaded column"):
        ResultJoiner(["Name"], [["A"]], {}).add_page("failed", [["sf__Id", "sf__Error"]])


def test_failed_records_file_is_private_and_complete(tmp_path):
    path = tmp_path / "out" / "failed.jsonl"
    tally = RunTally(path)
    tally.received("contacts", 3)
    tally.record("contacts", "Contact", "insert", Outcome(SUCCESS, "003x", True), {"a": 1})
    tally.record("contacts", "Contact", "insert",
                 Outcome(FAILED, None, None, "REQUIRED_FIELD_MISSING", "missing", ("LastName",),
                         "750J", "751B"), {"FirstName": "Ann", "n": 1.5})
    tally.record("contacts", "Contact", "insert",
                 Outcome(REJECTED, code="INVALID_FIELD", message="no field"), {"x": None})
    tally.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"stream": "contacts", "object": "Contact", "operation": "insert", "status": "failed",
         "error_code": "REQUIRED_FIELD_MISSING", "error_message": "missing",
         "fields": ["LastName"], "job_id": "750J", "batch_id": "751B",
         "record": {"FirstName": "Ann", "n": 1.5}},
        {"stream": "contacts", "object": "Contact", "operation": "insert", "status": "rejected",
         "error_code": "INVALID_FIELD", "error_message": "no field", "fields": [],
         "job_id": None, "batch_id": None, "record": {"x": None}},
    ]
    assert tally.unbalanced() == {}
    assert tally.not_loaded == 2
    assert tally.summary() == ("contacts: received 3, loaded 1 (created 1, updated 0), failed 1, "
                               "unprocessed 0, rejected 1 [REQUIRED_FIELD_MISSING 1, "
                               "INVALID_FIELD 1]")


def test_existing_failed_records_file_is_truncated_and_made_private(tmp_path):
    path = tmp_path / "failed.jsonl"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    RunTally(path).close()
    assert path.read_text() == ""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unbalanced_books_are_reported():
    tally = RunTally()
    tally.received("s", 2)
    tally.record("s", "Account", "insert", Outcome(SUCCESS, "001x", True), {})
    assert tally.unbalanced() == {"s": (2, 1)}


def test_waves_put_parents_first():
    objects = {"contacts": "Contact", "accounts": "Account", "cases": "Case", "users": "User"}
    refs = {"contacts": ["Account", "User"], "cases": ["Contact", "Account"],
            "accounts": ["Account", "User"], "users": []}
    assert waves(["contacts", "cases", "accounts", "users"], objects, refs) == [
        ["users"], ["accounts"], ["contacts"], ["cases"]]
    assert waves(["a", "b"], {"a": "A", "b": "B"}, {}) == [["a", "b"]]


def test_waves_break_cycles(caplog):
    result = waves(["a", "b"], {"a": "A", "b": "B"}, {"a": ["B"], "b": ["A"]})
    assert result == [["a"], ["b"]]
    assert "cycle" in caplog.text


def test_a_batch_of_outcomes_counts_and_writes_like_one_by_one(tmp_path):
    outcomes = [Outcome(SUCCESS, "001a", True), Outcome(SUCCESS, "001b", False),
                Outcome(FAILED, None, None, "REQUIRED_FIELD_MISSING", "missing", ("Name",),
                        "750J", None),
                Outcome(REJECTED, code="INVALID_VALUE", message="bad"), Outcome(SUCCESS, "001c")]
    records = [{"n": i} for i in range(5)]
    one, many = RunTally(tmp_path / "one.jsonl"), RunTally(tmp_path / "many.jsonl")
    for tally in (one, many):
        tally.received("s", 5)
    for outcome, record in zip(outcomes, records):
        one.record("s", "Account", "insert", outcome, record)
    assert many.record_many("s", "Account", "insert", outcomes, records) == 3
    one.close()
    many.close()
    assert many.streams() == one.streams()
    counted = many.streams()["s"]
    assert (counted.successful, counted.created, counted.updated, counted.failed,
            counted.rejected) == (3, 1, 2, 1, 1)
    assert many.not_loaded_count == 2 and many.unbalanced() == {}
    assert (tmp_path / "many.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
