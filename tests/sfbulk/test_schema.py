"""Describe field types to JSON schema."""

from __future__ import annotations

import json
import logging

import pytest

from sfbulk import schema
from sfbulk.schema import (
    compound_parents,
    field_exclusion_reason,
    field_json_schema,
    object_json_schema,
    value_kind,
)


def field(name: str, type_: str, **extra: object) -> dict:
    return {"name": name, "type": type_, "length": 0, "calculated": False, **extra}


@pytest.mark.parametrize(("type_", "length", "expected"), [
    ("string", 80, {"type": ["string", "null"], "maxLength": 80}),
    ("reference", 18, {"type": ["string", "null"], "maxLength": 18}),
    ("picklist", 40, {"type": ["string", "null"], "maxLength": 40}),
    ("multipicklist", 4099, {"type": ["string", "null"], "maxLength": 4099}),
    ("textarea", 32000, {"type": ["string", "null"], "maxLength": 32000}),
    ("email", 80, {"type": ["string", "null"], "maxLength": 80}),
    ("phone", 40, {"type": ["string", "null"], "maxLength": 40}),
    ("url", 255, {"type": ["string", "null"], "maxLength": 255}),
    ("combobox", 255, {"type": ["string", "null"], "maxLength": 255}),
    ("string", 0, {"type": ["string", "null"]}),
    ("encryptedstring", 175, {"type": ["string", "null"]}),
    ("anyType", 0, {"type": ["string", "null"]}),
    ("boolean", 0, {"type": ["boolean", "null"]}),
    ("int", 0, {"type": ["integer", "null"]}),
    ("long", 0, {"type": ["integer", "null"]}),
    ("double", 0, {"type": ["number", "null"]}),
    ("currency", 0, {"type": ["number", "null"]}),
    ("percent", 0, {"type": ["number", "null"]}),
    ("date", 0, {"type": ["string", "null"], "format": "date"}),
    ("datetime", 0, {"type": ["string", "null"], "format": "date-time"}),
    ("time", 0, {"type": ["string", "null"], "format": "time"}),
    ("address", 0, None),
    ("location", 0, None),
    ("base64", 0, None),
])
def test_field_types(type_: str, length: int, expected: dict | None) -> None:
    assert field_json_schema(field("X__c", type_, length=length)) == expected


def test_id_is_the_only_non_nullable_field() -> None:
    assert field_json_schema(field("Id", "id", length=18)) == {"type": "string", "maxLength": 18}
    assert field_json_schema(field("IsDeleted", "boolean", nillable=False)) == {
        "type": ["boolean", "null"]}


def test_calculated_strings_have_no_max_length() -> None:
    assert field_json_schema(field("F__c", "string", length=1300, calculated=True)) == {
        "type": ["string", "null"]}


def test_unknown_type_is_a_string_with_one_warning(caplog) -> None:
    schema._warned.discard("complexvalue")
    with caplog.at_level(logging.WARNING, logger="sfbulk.schema"):
        assert field_json_schema(field("A__c", "complexvalue")) == {"type": ["string", "null"]}
        assert field_json_schema(field("B__c", "complexvalue")) == {"type": ["string", "null"]}
    assert [r.getMessage() for r in caplog.records] == [
        "Field A__c has the unknown Salesforce type 'complexvalue'; treating it as a string"]


@pytest.mark.parametrize(("type_", "kind"), [
    ("int", "integer"), ("long", "integer"), ("double", "number"), ("currency", "number"),
    ("percent", "number"), ("boolean", "boolean"), ("date", "date"), ("datetime", "datetime"),
    ("time", "time"), ("picklist", "string"), ("address", "string"), ("whatever", "string"),
])
def test_value_kind(type_: str, kind: str) -> None:
    assert value_kind(type_) == kind


def load(fixtures_dir, name: str) -> dict:
    return json.loads((fixtures_dir / "salesforce/describe" / name).read_text())


def test_account_schema_from_recorded_describe(fixtures_dir) -> None:
    account = load(fixtures_dir, "Account.json")
    properties = object_json_schema(account)["properties"]
    assert len(account["fields"]) == 68
    assert len(properties) == 66
    assert "BillingAddress" not in properties and "ShippingAddress" not in properties
    assert properties["BillingStreet"] == {"type": ["string", "null"], "maxLength": 255}
    assert properties["BillingLatitude"] == {"type": ["number", "null"]}
    assert properties["Name"] == {"type": ["string", "null"], "maxLength": 255}
    assert properties["AnnualRevenue"] == {"type": ["number", "null"]}
    assert properties["NumberOfEmployees"] == {"type": ["integer", "null"]}
    assert properties["SystemModstamp"] == {"type": ["string", "null"], "format": "date-time"}
    assert properties["LastActivityDate"] == {"type": ["string", "null"], "format": "date"}
    assert list(properties)[:4] == ["Id", "IsDeleted", "MasterRecordId", "Name"]


def test_compound_parents_and_exclusions(fixtures_dir) -> None:
    contact = load(fixtures_dir, "Contact.json")
    parents = compound_parents(contact)
    assert sorted(parents) == ["MailingAddress", "Name", "OtherAddress"]
    assert parents["Name"] == ["LastName", "FirstName", "Salutation"]
    by_name = {f["name"]: f for f in contact["fields"]}
    assert field_exclusion_reason(by_name["Name"], parents) is None
    assert field_exclusion_reason(by_name["MailingAddress"], parents) == (
        "compound address field: Bulk queries reject it; its component fields are kept")
    odd = {"name": "Geo__c", "type": "complexvalue"}
    assert field_exclusion_reason(odd, {"Geo__c": ["Geo__Latitude__s"]}) == (
        "compound field of type 'complexvalue' over Geo__Latitude__s: Bulk queries reject it; "
        "its component fields are kept")
    opportunity = load(fixtures_dir, "Opportunity.json")
    assert "Fiscal" in object_json_schema(opportunity)["properties"]


def test_account_names_itself_as_compound_without_being_excluded(fixtures_dir) -> None:
    account = load(fixtures_dir, "Account.json")
    assert compound_parents(account).keys() == {"BillingAddress", "ShippingAddress"}


def test_selected_fields_case_insensitive_and_errors(fixtures_dir) -> None:
    account = load(fixtures_dir, "Account.json")
    chosen = object_json_schema(account, ["id", "NAME", "SystemModstamp"])
    assert list(chosen["properties"]) == ["Id", "Name", "SystemModstamp"]
    with pytest.raises(ValueError, match="Account has no field Nope__c"):
        object_json_schema(account, ["Id", "Nope__c"])
    with pytest.raises(ValueError, match=r"Account\.BillingAddress cannot be selected: compound"):
        object_json_schema(account, ["Id", "BillingAddress"])
    attachment = load(fixtures_dir, "Attachment.json")
    assert "Body" not in object_json_schema(attachment)["properties"]
    with pytest.raises(ValueError, match=r"Attachment\.Body cannot be selected: base64"):
        object_json_schema(attachment, ["Body"])
