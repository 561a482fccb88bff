"""Field mapping: resolution against recorded describes, the unknown-field rule, record shapes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sfbulk.errors import ConfigError
from target_sfbulk.mapping import FieldMapper, RecordRejected, choose_external_id
from tests.conftest import FIXTURES

DESCRIBES = FIXTURES / "salesforce" / "describe"


def _load(name: str) -> dict[str, Any]:
    path = DESCRIBES / f"{name}.json"
    if not path.is_file():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return json.loads(path.read_text(encoding="utf-8"))


def _ext_field(name: str, *, case_sensitive: bool = False) -> dict[str, Any]:
    return {"name": name, "type": "string", "length": 40, "createable": True, "updateable": True,
            "externalId": True, "idLookup": True, "caseSensitive": case_sensitive,
            "nillable": True, "relationshipName": None, "referenceTo": []}


@pytest.fixture(scope="module")
def account() -> dict[str, Any]:
    describe = copy.deepcopy(_load("Account"))
    describe["fields"].append(_ext_field("External_Id__c"))
    return describe


@pytest.fixture(scope="module")
def contact() -> dict[str, Any]:
    describe = copy.deepcopy(_load("Contact"))
    describe["fields"].append(_ext_field("Legacy_Key__c", case_sensitive=True))
    describe["fields"].append({"name": "Notes__c", "type": "textarea", "length": 32768,
                               "createable": True, "updateable": True, "externalId": False,
                               "idLookup": False, "nillable": True, "relationshipName": None,
                               "referenceTo": []})
    for name, kind in (("Active__c", "boolean"), ("Score__c", "double")):
        describe["fields"].append({"name": name, "type": kind, "createable": True,
                                   "updateable": True, "externalId": False, "idLookup": False,
                                   "nillable": kind != "boolean", "relationshipName": None,
                                   "referenceTo": []})
    return describe


def _mapper(contact: dict[str, Any], account: dict[str, Any], operation: str = "insert",
            **kw: Any) -> FieldMapper:
    parents = {"account": account, "contact": contact}
    return FieldMapper("contacts", contact, operation, lambda n: parents.get(n.lower()), **kw)


def test_keys_resolve_case_insensitively_to_api_names(contact, account):
    mapper = _mapper(contact, account)
    prepared = mapper.prepare({"lastname": "Ng", "EMAIL": "a@b.c", "account.external_id__c": "A1"})
    assert prepared.values == {"LastName": "Ng", "Email": "a@b.c", "Account.External_Id__c": "A1"}
    assert prepared.deleted is False
    assert mapper.column("Account.External_Id__c").field_type == "string"
    assert mapper.column("LastName").field_type == "string"


def test_nested_parent_reference_becomes_a_relationship_column(contact, account):
    mapper = _mapper(contact, account)
    prepared = mapper.prepare({"LastName": "Ng", "Account": {"External_Id__c": "A1"}})
    assert prepared.values == {"LastName": "Ng", "Account.External_Id__c": "A1"}


def test_schema_check_rejects_unknown_and_unwritable_naming_each(contact, account):
    mapper = _mapper(contact, account)
    with pytest.raises(ConfigError) as caught:
        mapper.check_schema({"LastName": {"type": "string"}, "Bogus__c": {"type": "string"},
                             "CreatedDate": {"type": "string"}, "Id": {"type": "string"}})
    text = str(caught.value)
    assert "3 field(s) cannot be loaded" in text
    assert "Bogus__c: Contact has no field 'Bogus__c'" in text
    assert "CreatedDate: Contact.CreatedDate cannot be set by insert" in text
    assert "Id: Contact.Id cannot be set by insert" in text


def test_schema_check_drop_rule_lists_and_drops(contact, account, caplog):
    mapper = _mapper(contact, account, unknown_fields="drop")
    report = mapper.check_schema({"LastName": {"type": "string"}, "Bogus__c": {"type": "string"},
                                  "CreatedDate": {"type": "string"},
                                  "_sdc_extracted_at": {"type": "string"}})
    assert report.loaded == {"LastName": "LastName"}
    assert set(report.unknown) == {"Bogus__c"}
    assert set(report.unwritable) == {"CreatedDate"}
    assert "dropping 2 field(s)" in caplog.text
    prepared = mapper.prepare({"LastName": "X", "Bogus__c": 1, "CreatedDate": "2020-01-01"})
    assert prepared.values == {"LastName": "X"}


def test_update_accepts_id_and_updateable_only(contact, account):
    mapper = _mapper(contact, account, "update")
    report = mapper.check_schema({"Id": {}, "LastName": {}})
    assert report.loaded == {"Id": "Id", "LastName": "LastName"}
    assert mapper.key_column() == "Id"


def test_undeclared_key_is_rejected_per_record_under_reject(contact, account):
    mapper = _mapper(contact, account)
    with pytest.raises(RecordRejected) as caught:
        mapper.prepare({"LastName": "X", "Nope": 1})
    assert caught.value.field == "Nope"
    assert caught.value.code == "INVALID_FIELD"
    assert "Contact has no field 'Nope'" in caught.value.reason


def test_conflicting_duplicate_keys_name_both(contact, account):
    mapper = _mapper(contact, account)
    with pytest.raises(RecordRejected) as caught:
        mapper.prepare({"LastName": "A", "lastname": "B"})
    assert caught.value.reason == ("keys 'LastName' and 'lastname' both load LastName with "
                                   "different values")
    assert caught.value.code == "DUPLICATE_VALUE"
    # The same value twice is one value.
    assert mapper.prepare({"LastName": "A", "lastname": "A"}).values == {"LastName": "A"}
    # false and 0 are different values even though they compare equal in Python.
    with pytest.raises(RecordRejected, match="both load Active__c"):
        mapper.prepare({"LastName": "A", "Active__c": False, "active__c": 0})


def test_false_and_zero_are_kept(contact, account):
    mapper = _mapper(contact, account)
    values = mapper.prepare({"LastName": "A", "Active__c": False, "Score__c": 0}).values
    assert values == {"LastName": "A", "Active__c": False, "Score__c": 0}


def test_renames_excludes_and_metadata(contact, account):
    mapper = _mapper(contact, account, renames={"surname": "LastName",
                                                "acct_key": "Account.External_Id__c"},
                     exclude=["AccountId", "IGNORED"])
    report = mapper.check_schema({"surname": {}, "acct_key": {}, "AccountId": {}, "ignored": {}})
    assert report.loaded == {"surname": "LastName", "acct_key": "Account.External_Id__c"}
    assert report.excluded == ["AccountId", "ignored"]
    prepared = mapper.prepare({"surname": "Ng", "acct_key": "A1", "AccountId": "001xx",
                               "_sdc_extracted_at": "2024-01-01", "_sdc_deleted_at": None})
    assert prepared.values == {"LastName": "Ng", "Account.External_Id__c": "A1"}
    assert prepared.deleted is False
    assert mapper.prepare({"surname": "Ng", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}).deleted


def test_excluding_a_flattened_relationship_column(contact, account):
    mapper = _mapper(contact, account, exclude=["Account.Name"])
    prepared = mapper.prepare({"LastName": "Ng", "Account": {"Name": "Acme",
                                                             "External_Id__c": "A1"}})
    assert prepared.values == {"LastName": "Ng", "Account.External_Id__c": "A1"}


def test_nested_objects_and_arrays_become_json_text_in_text_fields(contact, account):
    mapper = _mapper(contact, account)
    values = mapper.prepare({"LastName": "A", "Notes__c": {"b": [1, 2], "a": "é"}}).values
    assert values["Notes__c"] == '{"b":[1,2],"a":"é"}'
    values = mapper.prepare({"LastName": "A", "Notes__c": ["x", "y"]}).values
    assert values["Notes__c"] == '["x","y"]'


def test_null_handling(contact, account):
    assert _mapper(contact, account).prepare({"LastName": "A", "Email": None}).values == {
        "LastName": "A", "Email": None}
    ignoring = _mapper(contact, account, null_handling="ignore")
    assert ignoring.prepare({"LastName": "A", "Email": None}).values == {"LastName": "A"}


def test_relationship_to_non_indexed_parent_field_is_refused(contact, account):
    mapper = _mapper(contact, account)
    with pytest.raises(RecordRejected) as caught:
        mapper.prepare({"LastName": "A", "Account.Description": "x"})
    assert "neither an external id nor an id lookup" in caught.value.reason


def test_delete_takes_id_alone(contact, account):
    mapper = _mapper(contact, account, "delete")
    report = mapper.check_schema({"Id": {}, "LastName": {}, "CreatedDate": {}})
    assert report.loaded == {"Id": "Id"}
    assert report.problems == {}
    assert mapper.prepare({"id": "003000000000001", "LastName": "x"}).values == {
        "Id": "003000000000001"}


def test_external_id_choice(contact):
    assert choose_external_id("s", contact, None, ["legacy_key__c"]) == "Legacy_Key__c"
    assert choose_external_id("s", contact, None, ["k"], {"k": "Id"}) == "Id"
    assert choose_external_id("s", contact, "Legacy_Key__c", []) == "Legacy_Key__c"
    with pytest.raises(ConfigError, match=r"Contact.Email .* is not an external id field"):
        choose_external_id("s", contact, "Email", [])
    with pytest.raises(ConfigError, match="needs external_id_field"):
        choose_external_id("s", contact, None, ["a", "b"])
    with pytest.raises(ConfigError, match="is no field of Contact"):
        choose_external_id("s", contact, "Nope__c", [])


def test_key_normalisers(contact, account):
    mapper = _mapper(contact, account, "upsert", external_id_field="Legacy_Key__c")
    assert mapper.key_column() == "Legacy_Key__c"
    sensitive = mapper.key_normaliser("Legacy_Key__c")
    assert sensitive("Ab") != sensitive("ab")
    by_id = mapper.key_normaliser("Id")
    assert by_id("003000000000001") == by_id("003000000000001AAA")
    accounts = FieldMapper("a", account, "upsert", lambda n: None,
                           external_id_field="External_Id__c")
    folded = accounts.key_normaliser("External_Id__c")
    assert folded("Ab") == folded("aB")


@pytest.mark.parametrize("null_handling", ["clear", "ignore"])
def test_repeated_record_shapes_map_as_the_full_rules_do(contact, account, null_handling):
    # Records with one key set share a plan; whatever the values, the plan must give what the
    # key-by-key rules give, or refuse the same way.
    mapper = _mapper(contact, account, unknown_fields="drop", null_handling=null_handling)
    records = [
        {"LastName": "Ng", "Score__c": 1.5, "_sdc_extracted_at": "x"},
        {"LastName": "Ng", "Score__c": None, "_sdc_extracted_at": "x"},
        {"LastName": "Ng", "Score__c": [1, 2], "_sdc_extracted_at": "x"},
        {"lastname": "Ng", "Notes__c": {"a": 1}, "_sdc_deleted_at": "2024-01-01"},
        {"lastname": "Ng", "Notes__c": "plain", "_sdc_deleted_at": None},
        {"LastName": "A", "lastname": "B"},
        {"LastName": "A", "lastname": "A"},
        {"LastName": "X", "Account": {"External_Id__c": "A1"}},
        {"LastName": "X", "CreatedDate": "2020-01-01"},
        {"LastName": "X", "CreatedDate": "2020-01-02"},
    ]
    for record in records * 2:
        try:
            expected: Any = mapper._prepare_full(dict(record))
        except RecordRejected as exc:
            expected = ("rejected", exc.reason, exc.field, exc.code)
        try:
            got: Any = mapper.prepare(dict(record))
        except RecordRejected as exc:
            got = ("rejected", exc.reason, exc.field, exc.code)
        assert got == expected, record
    plain = mapper.prepare({"LastName": "Ng", "Score__c": 1.5, "_sdc_extracted_at": "x"})
    assert plain.values == {"LastName": "Ng", "Score__c": 1.5} and plain.deleted is False
    marked = mapper.prepare({"lastname": "Ng", "Notes__c": "plain", "_sdc_deleted_at": "t"})
    assert marked.values == {"LastName": "Ng", "Notes__c": "plain"} and marked.deleted is True
    nulls = mapper.prepare({"LastName": "Ng", "Score__c": None, "_sdc_extracted_at": "x"})
    assert nulls.values == ({"LastName": "Ng"} if null_handling == "ignore"
                            else {"LastName": "Ng", "Score__c": None})


@pytest.mark.parametrize("null_handling", ["clear", "ignore"])
def test_a_batch_maps_as_record_by_record(contact, account, null_handling):
    # prepare_many maps groups of records sharing their keys at once; each record must come out
    # as prepare gives it (values, deleted flag, or the same refusal), in input order.
    mapper = _mapper(contact, account, unknown_fields="reject", null_handling=null_handling)
    same = [{"LastName": f"N{i}", "Score__c": i * 1.5, "Active__c": i % 2 == 0}
            for i in range(5)]
    records = [
        *same,
        {"lastname": "lower", "Score__c": 2, "_sdc_extracted_at": "x"},
        {"lastname": "lower", "Score__c": None, "_sdc_extracted_at": "x"},
        {"LastName": "Del", "_sdc_deleted_at": "2024-01-01T00:00:00Z"},
        {"LastName": "Kept", "_sdc_deleted_at": ""},
        {"LastName": "Kept", "_sdc_deleted_at": None},
        {"LastName": "X", "Account": {"External_Id__c": "A1"}},
        {"LastName": "X", "Notes__c": {"nested": [1, 2]}},
        {"LastName": "X", "Nope__c": 1},
        {"LastName": "A", "lastname": "B"},
        *same[:2],
        {"lastname": "lower", "Score__c": [1], "_sdc_extracted_at": "x"},
    ]
    values, deleted = mapper.prepare_many([dict(r) for r in records])
    assert len(values) == len(records)
    expected_deleted = []
    for position, (record, got) in enumerate(zip(records, values, strict=True)):
        try:
            prepared = mapper.prepare(dict(record))
        except RecordRejected as exc:
            assert isinstance(got, RecordRejected), record
            assert (got.reason, got.field, got.code) == (exc.reason, exc.field, exc.code)
            continue
        assert got == prepared.values, record
        if prepared.deleted:
            expected_deleted.append(position)
    assert deleted == expected_deleted == [7]
    # Keys that are already the columns: the record is its own row (no copy is made).
    batch = [dict(r) for r in same]
    rows, _ = mapper.prepare_many(batch)
    assert all(row is record for row, record in zip(rows, batch, strict=True))
    assert mapper.prepare_many([]) == ([], [])
