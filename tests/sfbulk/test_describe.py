"""Describe logic: fetching and caching through a fake client, and the Bulk object/field rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sfbulk.csvcodec import Column, CsvBatch, CsvBatcher, RejectedRecord
from sfbulk.describe import (
    BULK_UNSUPPORTED_OBJECTS,
    ColumnResolver,
    Describer,
    bulk_unqueryable_reason,
    find_field,
    pk_chunk_parent,
    pk_chunkable,
    readable_fields,
    replication_key,
    resolve_column,
    writable_fields,
)
from sfbulk.errors import SalesforceError

NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]


class FakeResponse:
    def __init__(self, body: Any) -> None:
        self._body = body

    def json(self) -> Any:
        return self._body


class FakeClient:
    """Answers like SalesforceClient.rest from recorded describe files."""

    api_version = "62.0"

    def __init__(self, describes: dict[str, dict], global_body: dict, *,
                 composite: str = "ok", sub_status: dict[str, int] | None = None) -> None:
        self.describes = {name.lower(): body for name, body in describes.items()}
        self.global_body = global_body
        self.composite = composite
        self.sub_status = sub_status or {}
        self.calls: list[tuple[str, str, dict]] = []

    def rest(self, method: str, path: str, **kwargs: Any) -> FakeResponse:
        self.calls.append((method, path, kwargs))
        if (method, path) == ("GET", "/sobjects"):
            return FakeResponse(self.global_body)
        if method == "GET" and path.endswith("/describe"):
            name = path.split("/")[2]
            if name.lower() not in self.describes:
                raise SalesforceError("The requested resource does not exist", code="NOT_FOUND",
                                      status=404, method="GET", path=path)
            return FakeResponse(self.describes[name.lower()])
        if (method, path) == ("POST", "/composite/batch"):
            if self.composite == "missing":
                raise SalesforceError("Could not find a match for URL", code="NOT_FOUND",
                                      status=404, method="POST", path=path)
            results = []
            for sub in kwargs["json_body"]["batchRequests"]:
                name = sub["url"].split("/")[5]
                status = self.sub_status.get(name, 200)
                if status == 200 and name.lower() not in self.describes:
                    status = 404
                results.append({"statusCode": status,
                                "result": self.describes.get(name.lower()) if status == 200
                                else NOT_FOUND})
            if self.composite == "short":
                results = results[:-1]
            return FakeResponse({"hasErrors": any(r["statusCode"] != 200 for r in results),
                                 "results": results})
        raise AssertionError(f"unexpected call {method} {path}")

    def paths(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.calls]


@pytest.fixture(scope="module")
def recorded(fixtures_dir: Path) -> dict[str, dict]:
    folder = fixtures_dir / "salesforce/describe"
    names = ["Account", "Contact", "Lead", "Event", "Task", "Opportunity", "Case", "Custom__c",
             "Attachment", "OpportunityContactRole"]
    return {name: json.loads((folder / f"{name}.json").read_text()) for name in names}


@pytest.fixture(scope="module")
def global_body(fixtures_dir: Path) -> dict:
    path = fixtures_dir / "salesforce/describe_global/cumulusci_sobjects_subset.json"
    return json.loads(path.read_text())


def test_global_objects_are_fetched_once(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body)
    describer = Describer(client)
    assert len(describer.global_objects()) == 110
    assert describer.global_entry("account")["name"] == "Account"
    assert describer.global_entry("NoSuchThing") is None
    assert client.paths() == [("GET", "/sobjects")]


def test_describe_is_cached_case_insensitively(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body)
    describer = Describer(client)
    assert describer.describe("Account")["name"] == "Account"
    assert describer.describe("ACCOUNT") is describer.describe("account")
    assert client.paths() == [("GET", "/sobjects/Account/describe")]
    with pytest.raises(SalesforceError) as info:
        describer.describe("Nope__c")
    assert (info.value.code, info.value.status) == ("NOT_FOUND", 404)
    assert describer.parent_describe("Nope__c") is None


def test_describe_many_batches_25_per_composite_call(recorded, global_body) -> None:
    names = [*recorded][:8]
    client = FakeClient(recorded, global_body)
    describer = Describer(client)
    # 27 requests, of which 19 repeat a name in another case: still one composite call of 8.
    wanted = names + [n.upper() for n in names] + [n.lower() for n in names] + names[:3]
    out = describer.describe_many(wanted)
    assert list(out) == list(dict.fromkeys(wanted))
    assert all(out[n]["name"].lower() == n.lower() for n in out)
    assert client.paths() == [("POST", "/composite/batch")]
    body = client.calls[0][2]["json_body"]
    assert body["haltOnError"] is False
    assert [r["url"] for r in body["batchRequests"]] == [
        f"/services/data/v62.0/sobjects/{n}/describe" for n in names]
    assert client.calls[0][2]["idempotent"] is True
    describer.describe_many(names)
    assert len(client.calls) == 1


def test_describe_many_splits_into_calls_of_at_most_25(recorded, global_body) -> None:
    many = {f"Obj{i}__c": {**recorded["Custom__c"], "name": f"Obj{i}__c"} for i in range(30)}
    client = FakeClient(many, global_body)
    Describer(client).describe_many(many)
    sizes = [len(kwargs["json_body"]["batchRequests"]) for _, _, kwargs in client.calls]
    assert sizes == [25, 5]
    small = FakeClient(many, global_body)
    Describer(small, batch_size=10).describe_many(many)
    assert [len(k["json_body"]["batchRequests"]) for _, _, k in small.calls] == [10, 10, 10]


def test_halted_subrequest_is_described_alone(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body, sub_status={"Lead": 412})
    out = Describer(client).describe_many(["Account", "Lead", "Contact"])
    assert [d["name"] for d in out.values()] == ["Account", "Lead", "Contact"]
    assert client.paths() == [("POST", "/composite/batch"), ("GET", "/sobjects/Lead/describe")]


def test_unknown_object_in_a_batch_raises_naming_it(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body)
    with pytest.raises(SalesforceError) as info:
        Describer(client).describe_many(["Account", "Nope__c"])
    assert info.value.code == "NOT_FOUND"
    assert info.value.status == 404
    assert info.value.message == "Nope__c: The requested resource does not exist"


def test_falls_back_to_single_describes_without_composite(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body, composite="missing")
    describer = Describer(client)
    describer.describe_many(["Account", "Contact"])
    describer.describe_many(["Lead", "Event"])
    assert client.paths() == [
        ("POST", "/composite/batch"),
        ("GET", "/sobjects/Account/describe"),
        ("GET", "/sobjects/Contact/describe"),
        ("GET", "/sobjects/Lead/describe"),
        ("GET", "/sobjects/Event/describe"),
    ]


def test_short_composite_answer_is_an_error(recorded, global_body) -> None:
    client = FakeClient(recorded, global_body, composite="short")
    with pytest.raises(SalesforceError, match="composite/batch answered 1 results for 2"):
        Describer(client).describe_many(["Account", "Contact"])


# -- object rules -------------------------------------------------------------------------------


def test_bulk_queryable_from_describe_global(recorded, global_body) -> None:
    describer = Describer(FakeClient(recorded, global_body))
    assert describer.bulk_queryable("Account")
    assert describer.bulk_queryable("workorder")
    assert describer.bulk_unqueryable_reason("UndecidedEventRelation") == (
        "not supported by the Bulk API (Salesforce answers INVALIDENTITY)")
    assert describer.bulk_unqueryable_reason("WorkOrderStatus") == (
        "not supported by the Bulk API (Salesforce answers INVALIDENTITY)")
    assert describer.bulk_unqueryable_reason("UserChangeEvent") == (
        "not queryable (describe says queryable=false)")
    assert describer.bulk_unqueryable_reason("Vote").startswith("can only be queried with a filter")
    assert describer.bulk_unqueryable_reason("UserRecordAccess") == (
        "cannot be queried on its own (it is only reachable through its parent)")
    assert describer.bulk_unqueryable_reason("Nope__c") == "the org has no such object"
    refused = [n for n in describer.global_objects() if not describer.bulk_queryable(n)]
    assert refused == [
        "UndecidedEventRelation", "UriEventStream", "UserChangeEvent", "UserEntityAccess",
        "UserFieldAccess", "UserRecordAccess", "Vote", "WarrantyTermChangeEvent",
        "WorkOrderChangeEvent", "WorkOrderLineItemChangeEvent", "WorkOrderLineItemStatus",
        "WorkOrderStatus", "WorkStepStatus", "WorkTypeChangeEvent",
    ]
    assert len(describer.global_objects()) - len(refused) == 96


def test_bulk_unqueryable_reason_by_name() -> None:
    assert bulk_unqueryable_reason("AccountChangeEvent", {"queryable": True}) == (
        "change events are delivered by streaming, not stored for queries")
    assert bulk_unqueryable_reason("Order_Placed__e") == (
        "platform events are published, not stored for queries")
    assert bulk_unqueryable_reason("taskstatus") == BULK_UNSUPPORTED_OBJECTS["TaskStatus"]
    assert bulk_unqueryable_reason("Account", {"queryable": True}) is None


@pytest.mark.parametrize(("name", "parent"), [
    ("Account", "Account"),
    ("account", "Account"),
    ("WorkOrderLineItem", "WorkOrderLineItem"),
    ("Invoice__c", "Invoice__c"),
    ("Invoice__Share", "Invoice__c"),
    ("Invoice__History", "Invoice__c"),
    ("AccountShare", "Account"),
    ("CaseHistory", "Case"),
    ("OpportunityFieldHistory", "Opportunity"),
    ("OpportunityHistory", "OpportunityHistory"),
    ("Organization", None),
    ("UserRoleShare", "UserRole"),
    ("RecordTypeShare", None),
    ("Share", None),
])
def test_pk_chunk_parent(name: str, parent: str | None) -> None:
    assert pk_chunk_parent(name) == parent
    assert pk_chunkable(name) is (parent is not None)


# -- field rules --------------------------------------------------------------------------------


def test_readable_fields_drop_compound_and_binary(recorded) -> None:
    contact = readable_fields(recorded["Contact"])
    assert contact.excluded == {
        "OtherAddress": "compound address field: Bulk queries reject it; its component fields "
                        "are kept",
        "MailingAddress": "compound address field: Bulk queries reject it; its component fields "
                          "are kept",
    }
    assert len(contact.fields) == 57
    assert {"Name", "FirstName", "MailingStreet", "MailingLatitude"} <= set(contact.names)
    attachment = readable_fields(recorded["Attachment"])
    assert attachment.excluded == {"Body": "base64 (binary) field: Bulk queries cannot return it"}
    describer = Describer(FakeClient(recorded, {}))
    assert describer.readable_fields("Contact").names == contact.names


def test_writable_fields_per_operation(recorded) -> None:
    contact = recorded["Contact"]
    insert = writable_fields(contact, "insert")
    assert "Id" not in insert.names and "LastName" in insert.names
    assert insert.excluded["CreatedDate"] == "read-only for insert (not createable)"
    assert insert.excluded["MailingAddress"] == "compound address field: write its component fields"
    assert insert.excluded["Id"] == "read-only for insert (not createable)"
    update = writable_fields(contact, "update")
    assert update.names[0] == "Id"
    assert update.excluded["Name"] == "read-only for update (not updateable)"
    upsert = writable_fields(contact, "upsert", external_id_field="email")
    assert {"Id", "Email", "LastName"} <= set(upsert.names)
    assert upsert.excluded["SystemModstamp"] == (
        "read-only for upsert (neither createable nor updateable)")
    delete = writable_fields(contact, "hardDelete")
    assert delete.names == ["Id"]
    assert delete.excluded["LastName"] == "hardDelete takes the Id column only"
    with pytest.raises(ValueError, match="unknown ingest operation 'merge'"):
        writable_fields(contact, "merge")


def test_find_field_and_replication_key(recorded) -> None:
    account = recorded["Account"]
    assert find_field(account, "annualrevenue")["name"] == "AnnualRevenue"
    assert find_field(account, "Nope") is None
    assert replication_key(account) == "SystemModstamp"
    assert replication_key(recorded["Custom__c"]) is None
    fields = [f for f in account["fields"] if f["name"] != "SystemModstamp"]
    assert replication_key({"fields": fields}) == "LastModifiedDate"
    fields = [f for f in fields if f["name"] != "LastModifiedDate"]
    assert replication_key({"fields": fields}) == "CreatedDate"


@pytest.mark.parametrize(("obj", "key", "column"), [
    ("Contact", "lastname", Column("LastName", "string")),
    ("Contact", "ReportsTo.email", Column("ReportsTo.Email", "email")),
    ("Contact", "account.ID", Column("Account.Id", "id")),
    ("Event", "lead:who.Email", Column("Lead:Who.Email", "email")),
    ("Event", "Contact:Who.Id", Column("Contact:Who.Id", "id")),
    ("Task", "What.Id", None),
])
def test_resolve_column(recorded, obj: str, key: str, column: Column | None) -> None:
    parents = {name.lower(): d for name, d in recorded.items()}.get
    if column is None:
        with pytest.raises(ValueError, match=r"Task\.WhatId is polymorphic"):
            resolve_column(recorded[obj], key, lambda n: parents(n.lower()))
    else:
        assert resolve_column(recorded[obj], key, lambda n: parents(n.lower())) == column


@pytest.mark.parametrize(("obj", "key", "message"), [
    ("Contact", "Nope__c", "Contact has no field 'Nope__c'"),
    ("Contact", "Boss.Email", "Contact has no relationship 'Boss' (in 'Boss.Email')"),
    ("Contact", "Account.Name", "'Account.Name': Account.Name is neither an external id nor an "
                                "id lookup field, so it cannot identify the parent"),
    ("Contact", "Account.Nope__c", "'Account.Nope__c': Account has no field 'Nope__c'"),
    ("Contact", "Account.Owner.Email", "Contact: 'Account.Owner.Email' goes beyond the parent "
                                       "(one level only)"),
    ("Contact", "Account:Account.Id", "Contact.AccountId is not polymorphic: drop the 'Account' "
                                      "prefix from 'Account:Account.Id'"),
    ("Contact", "Lead:LastName", "Contact: 'Lead:LastName' has a type prefix but no "
                                 "relationship field"),
    ("Event", "Who.Email", "Event.WhoId is polymorphic: write 'Who.Email' as Type:Who.Email with "
                           "Type among Contact, Lead"),
    ("Event", "Account:Who.Id", "Event.WhoId cannot point to 'Account' (it points to Contact, "
                                "Lead)"),
    ("Contact", "Individual.Id", "'Individual.Id': the parent object Individual is not known"),
])
def test_resolve_column_errors(recorded, obj: str, key: str, message: str) -> None:
    parents = {name.lower(): d for name, d in recorded.items()}
    with pytest.raises(ValueError) as info:
        resolve_column(recorded[obj], key, lambda n: parents.get(n.lower()))
    assert str(info.value) == message


def test_column_resolver_policies(recorded, global_body) -> None:
    describer = Describer(FakeClient(recorded, global_body))
    strict = describer.column_resolver("Contact", "insert")
    assert isinstance(strict, ColumnResolver)
    assert strict("email") == Column("Email", "email")
    assert strict("_sdc_extracted_at") is None
    with pytest.raises(ValueError, match=r"Contact\.CreatedDate cannot be set by insert: "
                                         r"read-only for insert \(not createable\)"):
        strict("CreatedDate")
    with pytest.raises(ValueError, match="Contact has no field 'Nope__c'"):
        strict("Nope__c")
    lenient = describer.column_resolver("Contact", "insert", read_only="ignore", unknown="ignore")
    assert lenient("CreatedDate") is None
    assert lenient("Nope__c") is None
    assert lenient("Id") is None
    with pytest.raises(ValueError, match="no relationship 'Boss'"):
        lenient("Boss.Email")
    upsert = describer.column_resolver("Contact", "upsert", external_id_field="Email")
    assert upsert("id") == Column("Id", "id")
    with pytest.raises(ValueError, match="read_only must be 'reject' or 'ignore'"):
        describer.column_resolver("Contact", "insert", read_only="drop")


def test_resolver_drives_the_batcher(recorded, global_body) -> None:
    describer = Describer(FakeClient(recorded, global_body))
    resolver = describer.column_resolver("Contact", "insert", read_only="ignore")
    records = [
        {"lastname": "Jones", "firstname": "Tom", "ReportsTo": {"Email": "boss@example.com"},
         "BIRTHDATE": "1940-06-07Z", "CreatedDate": "2020-01-01T00:00:00Z", "Id": "003x"},
        {"LastName": "Dury", "Description": "fuzzy\nlogic", "Email": None},
        {"LastName": "Bad", "MailingLatitude": "north"},
        {"LastName": "Ghost", "Nope__c": 1},
    ]
    out = list(CsvBatcher(resolver).batches(records))
    assert [(o.key, o.reason) for o in out if isinstance(o, RejectedRecord)] == [
        (2, "MailingLatitude: 'north' is not a finite number"),
        (3, "Contact has no field 'Nope__c'"),
    ]
    (batch,) = [o for o in out if isinstance(o, CsvBatch)]
    assert batch.keys == [0, 1]
    assert batch.data.decode() == (
        "LastName,FirstName,Birthdate,ReportsTo.Email,Description,Email\n"
        "Jones,Tom,1940-06-07,boss@example.com,,\n"
        'Dury,,,,"fuzzy\nlogic",#N/A\n'
    )


# -- against the emulator ---------------------------------------------------------------------


def emulator_client(server):
    from sfbulk.auth import SalesforceAuth
    from sfbulk.http import SalesforceClient

    settings = server.state.settings
    auth = SalesforceAuth.from_config({
        "login_url": server.url,
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "username": settings.username,
        "password": settings.password,
        "security_token": settings.security_token,
    })
    return SalesforceClient(auth, "62.0")


def test_describer_against_the_emulator(demo_emulator) -> None:
    from sfbulk.schema import object_json_schema

    client = emulator_client(demo_emulator)
    describer = Describer(client)
    names = ["Account", "Contact", "Lead", "Opportunity", "Case"]
    before = client.api_calls
    describes = describer.describe_many(names)
    assert client.api_calls - before == 1
    assert [describes[n]["name"] for n in names] == names
    assert describer.describe("account") is describes["Account"]
    assert client.api_calls - before == 1
    assert describer.bulk_queryable("Account")
    assert describer.pk_chunkable("Contact")
    contact = describer.readable_fields("Contact")
    assert "MailingAddress" in contact.excluded and "MailingCity" in contact.names
    assert replication_key(describes["Account"]) == "SystemModstamp"
    properties = object_json_schema(describes["Account"])["properties"]
    assert properties["Id"]["type"] == "string"
    assert properties["SystemModstamp"] == {"type": ["string", "null"], "format": "date-time"}
    with pytest.raises(SalesforceError) as info:
        describer.describe_many(["Account", "NoSuchObject__c"])
    assert info.value.code == "NOT_FOUND"
