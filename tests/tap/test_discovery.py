"""Discovery against the emulator: patterns, schemas, unsupported fields, related fields, cost."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tap_sfbulk.discovery import match_objects
from tap_sfbulk.tap import TapSfBulk
from tests.tap.conftest import discover, emulator_config


def _entry(catalog: dict, name: str) -> dict:
    return next(s for s in catalog["streams"] if s["tap_stream_id"] == name)


def _metadata(entry: dict, field: str | None = None) -> dict:
    crumb = [] if field is None else ["properties", field]
    return next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == crumb)


def test_match_objects_is_case_insensitive_and_keeps_order() -> None:
    names = ["Account", "Contact", "Store__c", "AccountShare", "Type_Sample__c"]
    assert match_objects(names, ["account", "*__C"]) == ["Account", "Store__c",
                                                         "Type_Sample__c"]
    assert match_objects(names, None) == names
    assert match_objects(names, ["Acc*"]) == ["Account", "AccountShare"]


def test_streams_patterns_describe_only_matching_objects(demo_emulator, caplog) -> None:
    config = emulator_config(demo_emulator, streams=["acc*", "*__c", "CaseStatus"])
    tap = TapSfBulk(config=config)
    names = sorted(tap.streams)
    assert names == ["Account", "Store__c", "Type_Sample__c"]
    # One describeGlobal, one composite batch for the three describes, plus the login.
    assert tap.connection.api_calls == 2
    assert "Leaving out CaseStatus: not supported by the Bulk API" in caplog.text


def test_every_queryable_object_without_patterns(demo_emulator) -> None:
    catalog = discover(emulator_config(demo_emulator))
    names = {s["tap_stream_id"] for s in catalog["streams"]}
    assert {"Account", "Contact", "Opportunity", "Case", "Lead", "User", "Store__c",
            "Type_Sample__c"} <= names
    # Bulk cannot query these; they are left out.
    assert not names & {"CaseStatus", "TaskStatus", "RecentlyViewed", "Attachment"}


def test_account_schema_keys_and_compound_address(demo_emulator) -> None:
    catalog = discover(emulator_config(demo_emulator, streams=["Account"]))
    entry = _entry(catalog, "Account")
    props = entry["schema"]["properties"]
    assert entry["key_properties"] == ["Id"]
    assert entry["replication_key"] == "SystemModstamp"
    assert entry["replication_method"] == "INCREMENTAL"
    assert props["Id"]["type"] == "string"
    assert props["Name"]["type"] == ["string", "null"]
    assert props["IsDeleted"] == {"type": ["boolean", "null"]}
    assert props["SystemModstamp"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["BillingLatitude"]["type"] == ["number", "null"]
    # The compound parent is listed but unsupported, with the reason; components are available.
    address = _metadata(entry, "BillingAddress")
    assert address["inclusion"] == "unsupported"
    assert address["selected"] is False
    assert "compound address field" in address["unsupported-reason"]
    assert _metadata(entry, "BillingStreet")["inclusion"] == "available"
    assert _metadata(entry, "Id")["inclusion"] == "automatic"
    assert _metadata(entry, "SystemModstamp")["inclusion"] == "automatic"


def test_type_zoo_schema(demo_emulator) -> None:
    entry = _entry(discover(emulator_config(demo_emulator, streams=["Type_Sample__c"])),
                   "Type_Sample__c")
    props = entry["schema"]["properties"]
    assert props["Long__c"] == {"type": ["integer", "null"]}
    assert props["Int__c"] == {"type": ["integer", "null"]}
    assert props["Currency__c"] == {"type": ["number", "null"]}
    assert props["Time__c"] == {"type": ["string", "null"], "format": "time"}
    assert props["Date__c"] == {"type": ["string", "null"], "format": "date"}
    # An unknown describe type is carried as a string.
    assert props["Vector__c"] == {"type": ["string", "null"]}
    assert props["Location__Latitude__s"]["type"] == ["number", "null"]
    for name, reason in (("Blob__c", "base64"), ("Location__c", "geolocation"),
                         ("Address__c", "address")):
        metadata = _metadata(entry, name)
        assert metadata["inclusion"] == "unsupported", name
        assert reason in metadata["unsupported-reason"], name


def test_related_fields_are_typed_from_the_parent(demo_emulator) -> None:
    config = emulator_config(
        demo_emulator,
        streams=["Contact"],
        related_fields={"contact": ["account.external_id__c", "Account.NumberOfEmployees"]},
    )
    props = _entry(discover(config), "Contact")["schema"]["properties"]
    assert props["Account.External_Id__c"]["type"] == ["string", "null"]
    assert props["Account.NumberOfEmployees"] == {"type": ["integer", "null"]}


def test_unknown_related_field_is_a_clear_error(demo_emulator) -> None:
    config = emulator_config(demo_emulator, streams=["Contact"],
                             related_fields={"Contact": ["Account.No_Such__c"]})
    with pytest.raises(ValueError, match=r"Contact: related field 'Account.No_Such__c'"):
        discover(config)


def test_config_schema_marks_secrets_and_auth_methods() -> None:
    props = TapSfBulk.config_jsonschema["properties"]
    for name in ("client_secret", "password", "security_token", "refresh_token",
                 "jwt_private_key", "access_token"):
        assert props[name].get("secret") is True, name
    for name in ("client_id", "username", "login_url", "instance_url", "api_version"):
        assert not props[name].get("secret"), name
    assert "Login method: jwt" in props["jwt_private_key"]["description"]
    assert props["api_version"]["default"] == "62.0"
    assert props["bulk_api"]["default"] == "2.0"


def test_about_markdown_lists_settings_and_capabilities() -> None:
    result = CliRunner().invoke(TapSfBulk.cli, ["--about", "--format=markdown"])
    assert result.exit_code == 0, result.output
    for text in ("pk_chunk_size", "related_fields", "soql_filter", "batch", "stream-maps",
                 "schema-flattening", "structured-logging"):
        assert text in result.output, text


def test_cli_discover_prints_catalog(demo_emulator, tmp_path) -> None:
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(emulator_config(demo_emulator, streams=["Store__c"])))
    result = CliRunner().invoke(TapSfBulk.cli, ["--config", str(config_file), "--discover"])
    assert result.exit_code == 0, result.output
    catalog = json.loads(result.stdout[result.stdout.index("{"):])
    assert [s["tap_stream_id"] for s in catalog["streams"]] == ["Store__c"]
