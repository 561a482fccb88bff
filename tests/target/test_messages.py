"""Message handling: load order between streams, BATCH messages, ACTIVATE_VERSION, binary ZIP
batches and the command line."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sfbulk.emulator.bulk1 import Bulk1Job
from target_sfbulk.target import TargetSfBulk
from tests.target.support import add_external_id, config, jobs, record, rows, run, schema, state

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = {"Name": {"type": "string"}, "External_Id__c": {"type": "string"}}
CONTACT = {"LastName": {"type": "string"}, "Account.External_Id__c": {"type": "string"}}


@pytest.mark.parametrize("batch_size_rows", [None, 2])
def test_parents_load_before_children_whatever_the_input_order(emulator, batch_size_rows):
    add_external_id(emulator, "Account")
    extra = {"batch_size_rows": batch_size_rows} if batch_size_rows else {}
    states, _ = run(
        config(emulator, max_parallel_jobs=4,
               streams={"Account": {"action": "upsert"}}, **extra),
        [schema("Contact", CONTACT), schema("Account", ACCOUNT, ["External_Id__c"]),
         record("Account", {"External_Id__c": "A1", "Name": "Acme"}),
         record("Contact", {"LastName": "one", "Account.External_Id__c": "A1"}),
         record("Account", {"External_Id__c": "A2", "Name": "Beta"}),
         record("Contact", {"LastName": "two", "Account.External_Id__c": "A2"}),
         state({"done": True})])
    assert states == [{"done": True}]
    accounts = dict(rows(emulator, "SELECT External_Id__c, Id FROM Account"))
    assert sorted(rows(emulator, "SELECT LastName, AccountId FROM Contact")) == [
        ("one", accounts["A1"]), ("two", accounts["A2"])]
    order = [job.object for job in jobs(emulator)]
    assert order.index("Account") < order.index("Contact")


def test_batch_messages_load_like_records(emulator, tmp_path):
    path = tmp_path / "part-0001.jsonl.gz"
    records = [{"Name": "from batch", "DateTime__c": "2024-01-01T12:00:00",
                "Checkbox__c": False, "Int__c": 0},
               {"Name": "second", "DateTime__c": "2024-01-01T12:00:00+01:00",
                "Checkbox__c": "true", "Int__c": "7"}]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for item in records:
            handle.write(json.dumps(item) + "\n")
    props = {"Name": {"type": "string"}, "DateTime__c": {"type": "string",
                                                         "format": "date-time"},
             "Checkbox__c": {"type": "boolean"}, "Int__c": {"type": "integer"}}
    states, target = run(
        config(emulator, timezone="Europe/Paris",
               streams={"samples": {"object": "Type_Sample__c"}}),
        [schema("samples", props),
         record("samples", {"Name": "from record", "DateTime__c": "2024-01-01T12:00:00",
                            "Checkbox__c": True, "Int__c": 1}),
         {"type": "BATCH", "stream": "samples",
          "encoding": {"format": "jsonl", "compression": "gzip"},
          "manifest": [path.as_uri()]},
         state({"after": "batch"})])
    assert states == [{"after": "batch"}]
    assert rows(emulator, "SELECT Name, DateTime__c, Checkbox__c, Int__c FROM Type_Sample__c "
                          "ORDER BY Name") == [
        ("from batch", "2024-01-01T11:00:00.000Z", 0, 0),
        ("from record", "2024-01-01T11:00:00.000Z", 1, 1),
        ("second", "2024-01-01T11:00:00.000Z", 1, 7)]
    tally = target.tally.streams()["samples"]
    assert (tally.received, tally.successful) == (3, 3)


def test_activate_version_is_refused_clearly_and_records_still_load(emulator, caplog):
    run(config(emulator),
        [schema("Account", {"Name": {"type": "string"}}),
         {"type": "RECORD", "stream": "Account", "record": {"Name": "v1"}, "version": 1},
         {"type": "ACTIVATE_VERSION", "stream": "Account", "version": 1}])
    assert rows(emulator, "SELECT Name FROM Account") == [("v1",)]
    assert "ACTIVATE_VERSION 1 for stream Account ignored" in caplog.text


@pytest.mark.parametrize("content_type", ["CSV", "JSON", "XML"])
def test_binary_content_loads_through_zip_batches(emulator, tmp_path, content_type):
    emulator.state.org.insert_raw("Account", [{"Name": "Parent"}])
    parent = rows(emulator, "SELECT Id FROM Account")[0][0]
    (tmp_path / "docs").mkdir()
    pdf = bytes(range(256)) * 40
    (tmp_path / "docs" / "report.pdf").write_bytes(pdf)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 100
    props = {"Name": {"type": "string"}, "ParentId": {"type": "string"},
             "Body": {"type": "string"}}
    _, target = run(
        config(emulator, binary_root=str(tmp_path), content_type=content_type,
               bulk_api="1.0", max_failed_records=2),
        [schema("Attachment", props),
         record("Attachment", {"Name": "report.pdf", "ParentId": parent,
                               "Body": "#docs/report.pdf"}),
         record("Attachment", {"Name": "pixel.png", "ParentId": parent,
                               "Body": base64.b64encode(png).decode()}),
         record("Attachment", {"Name": "escape", "ParentId": parent, "Body": "#../x"}),
         record("Attachment", {"Name": "bad", "ParentId": parent, "Body": "not base64!"})])
    stored = dict(rows(emulator, "SELECT Name, Id FROM Attachment"))
    assert sorted(stored) == ["pixel.png", "report.pdf"]
    bodies = dict(emulator.state.org.execute_sql('SELECT Name, Body FROM "Attachment"'))
    assert bytes(bodies["report.pdf"]) == pdf
    assert bytes(bodies["pixel.png"]) == png
    (job,) = [j for j in jobs(emulator) if isinstance(j, Bulk1Job)]
    assert job.content_type == f"ZIP_{content_type}"
    tally = target.tally.streams()["Attachment"]
    assert (tally.successful, tally.rejected) == (2, 2)


def test_about_markdown_lists_settings_and_secrets():
    result = subprocess.run(
        [sys.executable, "-m", "target_sfbulk.target", "--about", "--format=markdown"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True)
    text = result.stdout
    for setting in ("bulk_api", "action", "external_id_field", "streams", "batch_size_rows",
                    "concurrency_mode", "max_parallel_jobs", "null_handling", "timezone",
                    "failed_records_path", "max_failed_records", "lock_retry_attempts",
                    "content_type", "unknown_fields", "binary_root", "hard_delete",
                    "jwt_private_key", "refresh_token"):
        assert f"| {setting}" in text, setting
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TargetSfBulk.print_about("json")
    about = json.loads(out.getvalue())
    props = about["settings"]["properties"]
    secrets = sorted(k for k, v in props.items() if v.get("secret"))
    assert secrets == ["access_token", "client_secret", "jwt_private_key",
                       "jwt_private_key_password", "password", "refresh_token",
                       "security_token"]
    assert props["validate_records"]["default"] is False
