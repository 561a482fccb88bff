"""The store saves records as Salesforce does: outcomes, status codes, messages, system fields."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from sfbulk.emulator.metadata import FieldDef, SObjectDef, standard_catalog
from sfbulk.emulator.store import (
    BatchError,
    Org,
    RecordError,
    RecordResult,
    parse_date,
    parse_datetime,
)
from sfbulk.ids import is_valid_id, make_id

UTC = dt.timezone.utc
PERMISSION = (
    "Please check the security settings of this field and verify that it is read/write for your "
    "profile or permission set."
)


class Clock:
    """A clock the test moves by hand, so system timestamps are exact."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 1, 15, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float = 1) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _field(name: str, type_: str, **kw: object) -> FieldDef:
    return FieldDef(name=name, type=type_, **kw)  # type: ignore[arg-type]


SYSTEM = {"createable": False, "updateable": False, "nillable": False, "defaulted_on_create": True}
EXTERNAL = {"custom": True, "external_id": True, "id_lookup": True}


def _catalog_with_extras():
    """The standard catalog plus external ids and a master-detail pair used by these tests."""
    catalog = standard_catalog()
    account = catalog.get("Account")
    assert account is not None
    account.add_field(_field("Ext__c", "string", length=20, **EXTERNAL))
    account.add_field(_field("Code__c", "string", length=20, unique=True, **EXTERNAL))
    account.add_field(_field("Score__c", "double", precision=5, scale=2, custom=True))
    contact = catalog.get("Contact")
    assert contact is not None
    contact.add_field(_field("Ext__c", "string", length=20, unique=True, **EXTERNAL))
    parent = SObjectDef("Parent__c", "Parent", "Parents", "a0P", custom=True)
    for fdef in (
        _field("Id", "id", **SYSTEM),
        _field("IsDeleted", "boolean", **SYSTEM),
        _field("Name", "string", length=80, name_field=True),
        _field("Ext__c", "string", length=20, **EXTERNAL),
        _field("CreatedDate", "datetime", **SYSTEM),
    ):
        parent.add_field(fdef)
    child = SObjectDef("Child__c", "Child", "Children", "a0C", custom=True)
    for fdef in (
        _field("Id", "id", **SYSTEM),
        _field("IsDeleted", "boolean", **SYSTEM),
        _field("Name", "string", length=80, auto_number=True, auto_number_format="CH-{0000}",
               name_field=True, **SYSTEM),
        _field("Parent__c", "reference", reference_to=["Parent__c"], relationship_name="Parent__r",
               nillable=False, custom=True, cascade_delete=True,
               child_relationship_name="Children__r"),
    ):  # fmt: skip
        child.add_field(fdef)
    catalog.add(parent)
    catalog.add(child)
    return catalog


@pytest.fixture
def org(clock: Clock) -> Org:
    return Org(catalog=_catalog_with_extras(), clock=clock)


def ok(result: RecordResult) -> str:
    assert result.success, result.errors
    assert result.id is not None
    return result.id


def error_of(result: RecordResult) -> tuple[str, str, list[str]]:
    assert not result.success
    (error,) = result.errors
    return (error.status_code, error.message, error.fields)


# --- ids and system fields ------------------------------------------------------------------


def test_insert_assigns_creation_ordered_ids_and_system_fields(org: Org, clock: Clock):
    results = org.write("Account", "insert", [{"Name": "Acme"}, {"Name": "Globex"}])
    assert [r.id for r in results] == [make_id("001", 1), make_id("001", 2)]
    assert [(r.success, r.created, r.errors) for r in results] == [(True, True, [])] * 2
    for result in results:
        assert result.id is not None and len(result.id) == 18 and is_valid_id(result.id)
        assert result.id.startswith("0015g")
    row = org.retrieve("Account", results[0].id)  # type: ignore[arg-type]
    assert row is not None
    assert (
        row["CreatedDate"]
        == row["LastModifiedDate"]
        == row["SystemModstamp"]
        == ("2024-01-15T10:00:00.000Z")
    )
    assert row["CreatedById"] == row["LastModifiedById"] == row["OwnerId"] == org.user_id
    assert row["IsDeleted"] == 0
    assert org.user_id == "0055g0000000001AAA" and org.org_id == make_id("00D", 1)
    assert org.retrieve("User", org.user_id)["Username"] == "admin@emulator.example.com"  # type: ignore[index]
    clock.tick(90)
    org.write("Account", "update", [{"Id": results[0].id, "Phone": "555"}])
    row = org.retrieve("Account", results[0].id)  # type: ignore[arg-type]
    assert row is not None
    assert row["CreatedDate"] == "2024-01-15T10:00:00.000Z"
    assert row["LastModifiedDate"] == row["SystemModstamp"] == "2024-01-15T10:01:30.000Z"


def test_defaults_derived_fields_and_auto_numbers(org: Org):
    (contact,) = org.write("Contact", "insert", [{"FirstName": "Ada", "LastName": "Lovelace"}])
    row = org.retrieve("Contact", ok(contact))
    assert row is not None
    assert (row["Name"], row["IsEmailBounced"]) == ("Ada Lovelace", 0)
    org.write("Contact", "update", [{"Id": contact.id, "LastName": "King"}])
    assert org.retrieve("Contact", ok(contact))["Name"] == "Ada King"  # type: ignore[index]
    cases = org.write("Case", "insert", [{"Subject": "a"}, {"Subject": "b", "Status": "Working"}])
    rows = [org.retrieve("Case", ok(c)) for c in cases]
    assert [(r["CaseNumber"], r["Status"], r["Priority"], r["IsEscalated"]) for r in rows] == [  # type: ignore[index]
        ("00000001", "New", "Medium", 0),
        ("00000002", "Working", "Medium", 0),
    ]
    (parent,) = org.write("Parent__c", "insert", [{"Name": "P"}])
    kids = org.write("Child__c", "insert", [{"Parent__c": ok(parent)}] * 2)
    assert [org.retrieve("Child__c", ok(k))["Name"] for k in kids] == ["CH-0001", "CH-0002"]  # type: ignore[index]
    (attachment,) = org.write(
        "Attachment", "insert", [{"ParentId": ok(contact), "Name": "a.txt", "Body": b"hello"}]
    )
    stored = org.retrieve("Attachment", ok(attachment))
    assert stored is not None and (stored["Body"], stored["BodyLength"]) == (b"hello", 5)


def test_missing_key_leaves_value_and_none_sets_null(org: Org):
    (acc,) = org.write("Account", "insert", [{"Name": "A", "Phone": "1", "Website": "w"}])
    org.write("Account", "update", [{"Id": ok(acc), "Phone": None}])
    row = org.retrieve("Account", ok(acc))
    assert row is not None and (row["Phone"], row["Website"]) == (None, "w")
    (lead,) = org.write(
        "Lead", "insert", [{"LastName": "X", "Company": "C", "IsUnreadByOwner": None}]
    )
    assert org.retrieve("Lead", ok(lead))["IsUnreadByOwner"] == 0  # type: ignore[index]


def test_column_names_are_case_insensitive_and_results_keep_input_order(org: Org):
    results = org.write(
        "contact", "INSERT",
        [{"lastname": "One"}, {"LASTNAME": None}, {"LastName": "Three", "EMAIL": "t@x.io"}],
    )  # fmt: skip
    assert [r.success for r in results] == [True, False, True]
    assert results[1] == RecordResult(
        None, False, False,
        [RecordError("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]",
                     ["LastName"])],
    )  # fmt: skip
    assert org.retrieve("Contact", ok(results[2]))["Email"] == "t@x.io"  # type: ignore[index]


# --- per-record errors ------------------------------------------------------------------------


def test_required_fields(org: Org):
    (opp,) = org.write("Opportunity", "insert", [{"Amount": "5"}])
    assert error_of(opp) == (
        "REQUIRED_FIELD_MISSING",
        "Required fields are missing: [Name, StageName, CloseDate]",
        ["Name", "StageName", "CloseDate"],
    )
    (con,) = org.write("Contact", "insert", [{"LastName": "Keep"}])
    (update,) = org.write("Contact", "update", [{"Id": ok(con), "LastName": None}])
    assert error_of(update) == (
        "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"],
    )  # fmt: skip
    assert update.id == con.id


def test_string_too_long(org: Org):
    name = "x" * 256
    (result,) = org.write("Account", "insert", [{"Name": name}])
    assert error_of(result) == (
        "STRING_TOO_LONG",
        f"Account Name: data value too large: {name} (max length=255)",
        ["Name"],
    )
    (fine,) = org.write("Account", "insert", [{"Name": "y" * 255}])
    ok(fine)


@pytest.mark.parametrize(
    ("field", "value", "soap"),
    [
        ("Birthdate", "2003-04-98", "xsd:date"),
        ("Birthdate", "04/05/2003", "xsd:date"),
        ("EmailBouncedDate", "2024-01-01 10:00", "xsd:dateTime"),
    ],
)
def test_values_that_do_not_deserialize(org: Org, field: str, value: str, soap: str):
    (result,) = org.write("Contact", "insert", [{"LastName": "L", field: value}])
    assert error_of(result) == (
        "INVALID_FIELD",
        f"Failed to deserialize field at col 1. Due to, '{value}' is not a valid value for the "
        f"type {soap}",
        [field],
    )


def test_number_parsing_and_ranges(org: Org):
    (bad,) = org.write("Account", "insert", [{"Name": "A", "NumberOfEmployees": "many"}])
    assert error_of(bad) == (
        "INVALID_FIELD",
        "Failed to deserialize field at col 1. Due to, 'many' is not a valid value for the type "
        "xsd:int",
        ["NumberOfEmployees"],
    )
    (big,) = org.write("Account", "insert", [{"Name": "A", "NumberOfEmployees": "2147483648"}])
    assert error_of(big) == (
        "NUMBER_OUTSIDE_VALID_RANGE",
        "Employees: value outside of valid range on numeric field: 2147483648",
        ["NumberOfEmployees"],
    )
    (score,) = org.write("Account", "insert", [{"Name": "A", "Score__c": "1000"}])
    assert error_of(score) == (
        "NUMBER_OUTSIDE_VALID_RANGE",
        "Score__c: value outside of valid range on numeric field: 1000",
        ["Score__c"],
    )
    results = org.write(
        "Opportunity", "insert",
        [
            {"Name": "a", "StageName": "Prospecting", "CloseDate": "2024-05-01",
             "Amount": "1.5E7", "TotalOpportunityQuantity": "2.345"},
            {"Name": "b", "StageName": "Prospecting", "CloseDate": "2024-05-01Z",
             "Amount": 10.005, "Probability": 50},
        ],
    )  # fmt: skip
    first = org.retrieve("Opportunity", ok(results[0]))
    second = org.retrieve("Opportunity", ok(results[1]))
    assert first is not None and second is not None
    assert (first["Amount"], first["TotalOpportunityQuantity"]) == (15000000, 2.35)
    assert (second["Amount"], second["Probability"], second["CloseDate"]) == (
        10.01, 50, "2024-05-01",
    )  # fmt: skip


def test_picklists_and_email(org: Org):
    (restricted,) = org.write("Account", "insert", [{"Name": "A", "CleanStatus": "Shiny"}])
    assert error_of(restricted) == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Clean Status: bad value for restricted picklist field: Shiny",
        ["CleanStatus"],
    )
    (open_list,) = org.write("Account", "insert", [{"Name": "A", "Industry": "Space Mining"}])
    assert org.retrieve("Account", ok(open_list))["Industry"] == "Space Mining"  # type: ignore[index]
    multi = org.write(
        "Type_Sample__c", "insert",
        [{"Name": "ok", "Multi_Picklist__c": "Red;Green"}, {"Name": "no",
                                                            "Multi_Picklist__c": "Red;Pink"}],
    )  # fmt: skip
    ok(multi[0])
    assert error_of(multi[1]) == (
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "Multi Picklist: bad value for restricted picklist field: Pink",
        ["Multi_Picklist__c"],
    )
    (email,) = org.write("Contact", "insert", [{"LastName": "E", "Email": "not-an-email"}])
    assert error_of(email) == (
        "INVALID_EMAIL_ADDRESS", "Email: invalid email address: not-an-email", ["Email"],
    )  # fmt: skip


def test_fields_that_cannot_be_written(org: Org):
    (created,) = org.write(
        "Account", "insert", [{"Name": "A", "CreatedDate": "2020-01-01T00:00:00Z", "Id": None}]
    )
    assert error_of(created) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: CreatedDate. {PERMISSION}",
        ["CreatedDate"],
    )
    (name,) = org.write("Contact", "insert", [{"LastName": "A", "Name": "Full", "IsDeleted": "1"}])
    assert error_of(name) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: Name, IsDeleted. {PERMISSION}",
        ["Name", "IsDeleted"],
    )
    (opp,) = org.write(
        "Opportunity", "insert",
        [{"Name": "o", "StageName": "Prospecting", "CloseDate": "2024-01-01"}],
    )  # fmt: skip
    (contact,) = org.write("Contact", "insert", [{"LastName": "C"}])
    (update,) = org.write("Opportunity", "update", [{"Id": ok(opp), "ContactId": ok(contact)}])
    assert error_of(update) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to create/update fields: ContactId. {PERMISSION}",
        ["ContactId"],
    )
    (formula,) = org.write("Type_Sample__c", "insert", [{"Name": "f", "Formula__c": "1"}])
    assert error_of(formula)[0] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    (with_id,) = org.write("Account", "insert", [{"Name": "A", "Id": make_id("001", 99)}])
    assert error_of(with_id) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call", ["Id"],
    )  # fmt: skip


def test_references(org: Org):
    (acc,) = org.write("Account", "insert", [{"Name": "A"}])
    (con,) = org.write("Contact", "insert", [{"LastName": "C", "AccountId": ok(acc)[:15]}])
    assert org.retrieve("Contact", ok(con))["AccountId"] == acc.id  # type: ignore[index]
    results = org.write(
        "Contact", "insert",
        [
            {"LastName": "bad", "AccountId": "001xx"},
            {"LastName": "missing", "AccountId": make_id("001", 999)},
            {"LastName": "wrong object", "AccountId": ok(con)},
        ],
    )  # fmt: skip
    assert [error_of(r) for r in results] == [
        ("MALFORMED_ID", "Account ID: id value of incorrect type: 001xx", ["AccountId"]),
        ("INVALID_CROSS_REFERENCE_KEY", "Account ID: invalid cross reference id", ["AccountId"]),
        ("INVALID_CROSS_REFERENCE_KEY", "Account ID: invalid cross reference id", ["AccountId"]),
    ]
    org.write("Account", "delete", [{"Id": acc.id}])
    (deleted_parent,) = org.write("Contact", "insert", [{"LastName": "D", "AccountId": acc.id}])
    assert error_of(deleted_parent) == ("ENTITY_IS_DELETED", "entity is deleted", ["AccountId"])
    (lead,) = org.write("Lead", "insert", [{"LastName": "L", "Company": "Co"}])
    (task,) = org.write("Task", "insert", [{"Subject": "Call", "WhoId": ok(lead)}])
    assert org.retrieve("Task", ok(task))["WhoId"] == lead.id  # type: ignore[index]


def test_update_errors(org: Org):
    (acc,) = org.write("Account", "insert", [{"Name": "A"}])
    results = org.write(
        "Account", "update",
        [
            {"Name": "no id"},
            {"Id": "garbage", "Name": "x"},
            {"Id": make_id("001", 777), "Name": "x"},
            {"Id": ok(acc), "Name": "renamed"},
        ],
    )  # fmt: skip
    assert [error_of(r) for r in results[:3]] == [
        ("MISSING_ARGUMENT", "Id not specified in an update call", []),
        ("MALFORMED_ID", "malformed id garbage", []),
        ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []),
    ]
    assert (results[3].success, results[3].created, results[3].id) == (True, False, acc.id)
    org.write("Account", "delete", [{"Id": acc.id}])
    (gone,) = org.write("Account", "update", [{"Id": acc.id, "Name": "x"}])
    assert error_of(gone) == ("ENTITY_IS_DELETED", "entity is deleted", [])
    assert gone.id == acc.id


def test_unique_values(org: Org):
    first = org.write("Account", "insert", [{"Name": "A", "Code__c": "K1"}])
    results = org.write(
        "Account", "insert",
        [{"Name": "B", "Code__c": "k1"}, {"Name": "C", "Code__c": "K2"},
         {"Name": "D", "Code__c": "K2"}],
    )  # fmt: skip
    assert error_of(results[0]) == (
        "DUPLICATE_VALUE",
        f"duplicate value found: Code__c duplicates value on record with id: {first[0].id}",
        ["Code__c"],
    )
    ok(results[1])
    assert error_of(results[2])[0] == "DUPLICATE_VALUE"
    (same,) = org.write("Account", "update", [{"Id": first[0].id, "Code__c": "K1"}])
    ok(same)


# --- upsert -----------------------------------------------------------------------------------


def test_upsert_creates_and_updates_by_external_id(org: Org, clock: Clock):
    (existing,) = org.write("Contact", "insert", [{"LastName": "Old", "Ext__c": "E-1"}])
    clock.tick(5)
    results = org.write(
        "Contact", "upsert",
        [{"Ext__c": "e-1", "LastName": "Updated"}, {"Ext__c": "E-2", "LastName": "New"}],
        external_id_field="ext__c",
    )  # fmt: skip
    assert [(r.id, r.success, r.created) for r in results] == [
        (existing.id, True, False),
        (make_id("003", 2), True, True),
    ]
    row = org.retrieve("Contact", ok(existing))
    assert row is not None and (row["LastName"], row["Ext__c"]) == ("Updated", "e-1")
    assert row["SystemModstamp"] == "2024-01-15T10:00:05.000Z"


def test_upsert_errors(org: Org):
    org.write("Account", "insert", [{"Name": "A", "Ext__c": "DUP"}, {"Name": "B", "Ext__c": "DUP"}])
    results = org.write(
        "Account", "upsert",
        [
            {"Ext__c": "DUP", "Name": "x"},
            {"Ext__c": "TWICE", "Name": "y"},
            {"Ext__c": "twice", "Name": "z"},
            {"Name": "no key"},
        ],
        external_id_field="Ext__c",
    )  # fmt: skip
    code, message, fields = error_of(results[0])
    assert code == "DUPLICATE_EXTERNAL_ID" and fields == ["Ext__c"]
    assert message == (
        f"Ext__c: more than one record found for external id field: "
        f"[{make_id('001', 1)}, {make_id('001', 2)}]"
    )
    assert error_of(results[1]) == (
        "DUPLICATE_VALUE", "Duplicate external id specified: TWICE", ["Ext__c"],
    )  # fmt: skip
    assert error_of(results[2]) == (
        "DUPLICATE_VALUE", "Duplicate external id specified: twice", ["Ext__c"],
    )  # fmt: skip
    assert error_of(results[3]) == ("MISSING_ARGUMENT", "Ext__c not specified", ["Ext__c"])
    with pytest.raises(BatchError) as info:
        org.write("Account", "upsert", [{"Name": "x"}], external_id_field="Phone")
    assert str(info.value) == (
        "InvalidJob : Field name provided, Phone does not match an External ID, Salesforce Id, "
        "or indexed field for Account"
    )


def test_upsert_on_id(org: Org):
    (acc,) = org.write("Account", "insert", [{"Name": "A"}])
    results = org.write(
        "Account", "upsert",
        [{"Id": ok(acc), "Name": "B"}, {"Name": "New"}, {"Id": make_id("001", 50), "Name": "?"}],
        external_id_field="Id",
    )  # fmt: skip
    assert (results[0].id, results[0].created) == (acc.id, False)
    assert results[1].created and results[1].success
    assert error_of(results[2]) == ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
    assert org.retrieve("Account", ok(acc))["Name"] == "B"  # type: ignore[index]


# --- relationship columns ---------------------------------------------------------------------


def test_relationship_columns_resolve_parents(org: Org):
    (acc,) = org.write("Account", "insert", [{"Name": "A", "Ext__c": "ACC-1"}])
    (boss,) = org.write("Contact", "insert", [{"LastName": "Boss", "Email": "boss@x.io"}])
    (lead,) = org.write("Lead", "insert", [{"LastName": "L", "Company": "C", "Email": "l@x.io"}])
    (parent,) = org.write("Parent__c", "insert", [{"Name": "P", "Ext__c": "P-1"}])
    (con,) = org.write(
        "Contact", "insert",
        [{"LastName": "Emp", "Account.Ext__c": "acc-1", "ReportsTo.Email": "BOSS@x.io"}],
    )  # fmt: skip
    row = org.retrieve("Contact", ok(con))
    assert row is not None and (row["AccountId"], row["ReportsToId"]) == (acc.id, boss.id)
    (task,) = org.write("Task", "insert", [{"Subject": "Call", "Lead:Who.Email": "l@x.io"}])
    assert org.retrieve("Task", ok(task))["WhoId"] == lead.id  # type: ignore[index]
    (kid,) = org.write("Child__c", "insert", [{"Parent__r.Ext__c": "P-1"}])
    assert org.retrieve("Child__c", ok(kid))["Parent__c"] == parent.id  # type: ignore[index]
    org.write("Contact", "update", [{"Id": con.id, "Account.Ext__c": None}])
    assert org.retrieve("Contact", ok(con))["AccountId"] is None  # type: ignore[index]
    (by_id,) = org.write("Contact", "insert", [{"LastName": "I", "Account.Id": ok(acc)[:15]}])
    assert org.retrieve("Contact", ok(by_id))["AccountId"] == acc.id  # type: ignore[index]


def test_relationship_column_row_errors(org: Org):
    org.write(
        "Account", "insert", [{"Name": "A", "Ext__c": "TWIN"}, {"Name": "B", "Ext__c": "TWIN"}]
    )
    results = org.write(
        "Contact", "insert",
        [{"LastName": "x", "Account.Ext__c": "NOPE"}, {"LastName": "y", "Account.Ext__c": "TWIN"}],
    )  # fmt: skip
    assert error_of(results[0]) == (
        "INVALID_FIELD",
        "Foreign key external ID: NOPE not found for field Ext__c in entity Account",
        [],
    )
    assert error_of(results[1]) == (
        "DUPLICATE_EXTERNAL_ID",
        "Foreign key external ID: TWIN matched more than one record for field Ext__c in entity "
        f"Account: [{make_id('001', 1)}, {make_id('001', 2)}]",
        [],
    )


@pytest.mark.parametrize(
    ("obj", "column", "message"),
    [
        ("Account", "Foo", "InvalidBatch : Field name not found : Foo"),
        ("Account", "BillingAddress", "InvalidBatch : Field name not found : BillingAddress"),
        ("Contact", "Nothing.Ext__c", "InvalidBatch : Field name not found : Nothing.Ext__c"),
        ("Contact", "Account.Nope__c", "InvalidBatch : Field name not found : Account.Nope__c"),
        (
            "Contact", "Account.Phone",
            "InvalidBatch : Field Phone on Account is not an External ID or indexed field and "
            "cannot be used in Account.Phone",
        ),
        (
            "Task", "Who.Email",
            "InvalidBatch : Polymorphic relationship Who needs an entity type, as in "
            "Contact:Who.Email",
        ),
        (
            "Contact", "Account:Account.Ext__c",
            "InvalidBatch : Relationship Account is not polymorphic; remove the entity type from "
            "Account:Account.Ext__c",
        ),
    ],
)  # fmt: skip
def test_batch_errors(org: Org, obj: str, column: str, message: str):
    base = {"Account": {"Name": "x"}, "Contact": {"LastName": "x"}, "Task": {"Subject": "s"}}
    with pytest.raises(BatchError) as info:
        org.write(obj, "insert", [{**base[obj], column: "v"}])
    assert str(info.value) == message
    assert org.count(obj) == 0


def test_objects_that_refuse_an_operation(org: Org):
    with pytest.raises(BatchError, match="InvalidBatch : Entity 'CaseStatus' is not createable"):
        org.write("CaseStatus", "insert", [{"MasterLabel": "x"}])
    with pytest.raises(BatchError, match="InvalidBatch : Entity 'User' is not deletable"):
        org.write("User", "delete", [{"Id": org.user_id}])
    with pytest.raises(BatchError, match="InvalidJob : Invalid operation: merge"):
        org.write("Account", "merge", [])
    with pytest.raises(BatchError, match="InvalidBatch : Unable to find object: Nope"):
        org.write("Nope", "insert", [{}])


# --- value forms --------------------------------------------------------------------------------


def test_value_forms_are_parsed_to_storage(org: Org):
    rows = [
        {"Name": "t1", "Checkbox__c": "TRUE", "DateTime__c": "2024-01-02T03:04:05Z",
         "Double__c": "-1.5e3", "Time__c": "13:45", "Date__c": "2024-02-29Z", "Blob__c": "aGk=",
         "Int__c": 7, "Long__c": "9007199254740993", "Currency__c": "1.005", "Text__c": ""},
        {"Name": "t2", "Checkbox__c": "0", "DateTime__c": "2024-01-02T03:04:05.123+02:00",
         "Time__c": "07:08:09.5Z", "Blob__c": b"\x00\xff", "Percent__c": 12.25},
        {"Name": "t3", "Checkbox__c": True, "DateTime__c": "2024-01-02T03:04:05-0530",
         "Date__c": dt.date(2020, 1, 2)},
        {"Name": "t4", "Checkbox__c": "False", "DateTime__c": "2024-01-02T03:04:05.1234567Z"},
    ]  # fmt: skip
    results = org.write("Type_Sample__c", "insert", rows)
    stored = [org.retrieve("Type_Sample__c", ok(r)) for r in results]
    assert [(s["Checkbox__c"], s["DateTime__c"]) for s in stored] == [  # type: ignore[index]
        (1, "2024-01-02T03:04:05.000Z"),
        (0, "2024-01-02T01:04:05.123Z"),
        (1, "2024-01-02T08:34:05.000Z"),
        (0, "2024-01-02T03:04:05.123Z"),
    ]
    first, second, third, _ = stored
    assert first is not None and second is not None and third is not None
    assert (first["Double__c"], first["Time__c"], first["Date__c"], first["Blob__c"]) == (
        -1500, "13:45:00.000Z", "2024-02-29", b"hi",
    )  # fmt: skip
    assert (first["Int__c"], first["Long__c"], first["Currency__c"], first["Text__c"]) == (
        7, 9007199254740993, 1.01, None,
    )  # fmt: skip
    assert (second["Time__c"], second["Blob__c"], second["Percent__c"]) == (
        "07:08:09.500Z", b"\x00\xff", 12.25,
    )  # fmt: skip
    assert third["Date__c"] == "2020-01-02"
    bad = org.write(
        "Type_Sample__c", "insert",
        [{"Name": "b", "Blob__c": "***"}, {"Name": "c", "Time__c": "25:00"},
         {"Name": "d", "Checkbox__c": 2}, {"Name": "e", "Checkbox__c": "yes"}],
    )  # fmt: skip
    assert error_of(bad[0])[0:2] == (
        "INVALID_FIELD",
        "Failed to deserialize field at col 1. Due to, '***' is not a valid value for the type "
        "xsd:base64Binary",
    )
    assert error_of(bad[1])[1].endswith("'25:00' is not a valid value for the type xsd:time")
    assert error_of(bad[2]) == (
        "INVALID_TYPE_ON_FIELD_IN_RECORD", "Checkbox: value not of required type: 2",
        ["Checkbox__c"],
    )  # fmt: skip
    assert error_of(bad[3]) == (
        "INVALID_FIELD",
        # Columns are numbered across the batch's header: Name, Blob__c, Time__c, Checkbox__c.
        "Failed to deserialize field at col 3. Due to, 'yes' is not a valid value for the type "
        "xsd:boolean",
        ["Checkbox__c"],
    )


def test_parse_helpers():
    assert parse_datetime("2024-03-10T23:30:00-01:00") == "2024-03-11T00:30:00.000Z"
    assert parse_datetime("2024-03-10T23:30Z") == "2024-03-10T23:30:00.000Z"
    assert parse_datetime("2024-02-30T00:00:00Z") is None
    assert parse_datetime("2024-03-10") is None
    assert parse_date("2024-03-10Z") == "2024-03-10"
    assert parse_date("2023-02-29") is None


# --- delete, hardDelete, undelete -------------------------------------------------------------


def test_soft_delete_hard_delete_and_undelete(org: Org, clock: Clock):
    ids = [ok(r) for r in org.write("Account", "insert", [{"Name": n} for n in "ABC"])]
    clock.tick(10)
    results = org.write(
        "Account", "delete",
        [{"Id": ids[0]}, {"id": ids[1][:15]}, {"Id": ids[0]}, {"Id": make_id("001", 99)},
         {"Id": "x"}, {}],
    )  # fmt: skip
    assert [(r.id, r.success, r.created) for r in results[:2]] == [
        (ids[0], True, False), (ids[1], True, False),
    ]  # fmt: skip
    assert [error_of(r) for r in results[2:]] == [
        ("DUPLICATE_VALUE", f"duplicate value found: Id duplicates value on record with id: "
                            f"{ids[0]}", ["Id"]),
        ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []),
        ("MALFORMED_ID", "malformed id x", []),
        ("MISSING_ARGUMENT", "Id not specified in a delete call", []),
    ]  # fmt: skip
    assert (org.count("Account"), org.count("Account", include_deleted=True)) == (1, 3)
    assert org.retrieve("Account", ids[0]) is None
    deleted = org.retrieve("Account", ids[0], include_deleted=True)
    assert deleted is not None and deleted["IsDeleted"] == 1
    assert deleted["SystemModstamp"] == "2024-01-15T10:00:10.000Z"
    (again,) = org.write("Account", "delete", [{"Id": ids[0]}])
    assert error_of(again) == ("ENTITY_IS_DELETED", "entity is deleted", [])
    results = org.write("Account", "undelete", [{"Id": ids[0]}, {"Id": ids[2]}])
    assert results[0].success
    assert error_of(results[1]) == ("UNDELETE_FAILED", "Entity is not in the recycle bin", [])
    assert org.count("Account") == 2
    (hard,) = org.write("Account", "hardDelete", [{"Id": ids[1]}])
    assert hard.success
    assert org.count("Account", include_deleted=True) == 2
    assert org.retrieve("Account", ids[1], include_deleted=True) is None


def test_master_detail_children_follow_their_parent(org: Org):
    (parent,) = org.write("Parent__c", "insert", [{"Name": "P"}])
    kids = [ok(k) for k in org.write("Child__c", "insert", [{"Parent__c": ok(parent)}] * 3)]
    org.write("Parent__c", "delete", [{"Id": parent.id}])
    assert org.count("Child__c") == 0 and org.count("Child__c", include_deleted=True) == 3
    org.write("Parent__c", "hardDelete", [{"Id": parent.id}])
    assert org.count("Child__c", include_deleted=True) == 0
    assert org.retrieve("Child__c", kids[0], include_deleted=True) is None


# --- reading ------------------------------------------------------------------------------------


def test_id_chunks_count_deleted_rows_and_honour_start_row(org: Org):
    ids = [ok(r) for r in org.write("Account", "insert", [{"Name": f"A{i}"} for i in range(7)])]
    org.write("Account", "delete", [{"Id": ids[2]}, {"Id": ids[3]}])
    assert org.id_chunks("Account", 3) == [
        (make_id("001", 0), ids[3]),
        (ids[3], ids[6]),
        (ids[6], None),
    ]
    assert org.id_chunks("Account", 3, start_row=ids[1][:15]) == [(ids[1], ids[4]), (ids[4], None)]
    assert org.id_chunks("Contact", 100) == [(make_id("003", 0), None)]
    with pytest.raises(ValueError, match="chunk size must be positive: 0"):
        org.id_chunks("Account", 0)


def test_query_cursor_streams_without_holding_the_lock(org: Org):
    org.insert_raw("Account", [{"Name": f"Bulk {i:04d}"} for i in range(2500)])
    cursor = org.query("SELECT Id, Name FROM Account")
    assert (cursor.columns, cursor.field_types, cursor.object) == (
        ["Id", "Name"], ["id", "string"], "Account",
    )  # fmt: skip
    seen = []
    for n, row in enumerate(cursor):
        seen.append(row)
        if n == 10:
            # Another thread can write while a download is under way.
            worker = threading.Thread(
                target=org.write, args=("Contact", "insert", [{"LastName": "During"}])
            )
            worker.start()
            worker.join(timeout=5)
            assert not worker.is_alive()
    assert len(seen) == 2500 and seen[0][1] == "Bulk 0000" and seen[-1][1] == "Bulk 2499"
    assert org.count("Contact") == 1


def test_concurrent_writers_get_distinct_ids(org: Org):
    def work(n: int) -> None:
        org.write("Contact", "insert", [{"LastName": f"T{n}-{i}"} for i in range(200)])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = org.execute_sql('SELECT "Id" FROM "Contact"')
    assert len(rows) == len({r[0] for r in rows}) == 800


def test_file_database_persists_and_continues_ids(tmp_path: Path, clock: Clock):
    path = str(tmp_path / "org.db")
    first = Org(path, clock=clock)
    ids = [ok(r) for r in first.write("Account", "insert", [{"Name": "A"}, {"Name": "B"}])]
    second = Org(path, clock=clock)
    assert second.count("Account") == 2 and second.count("User") == 1
    (more,) = second.write("Account", "insert", [{"Name": "C"}])
    assert more.id == make_id("001", 3) and more.id not in ids
    assert second.execute_sql("PRAGMA journal_mode")[0][0] == "wal"


def test_add_field_creates_the_column(org: Org):
    org.add_field("Lead", FieldDef(name="Score__c", type="int", digits=9, custom=True))
    (lead,) = org.write("Lead", "insert", [{"LastName": "L", "Company": "C", "Score__c": "42"}])
    assert org.retrieve("Lead", ok(lead))["Score__c"] == 42  # type: ignore[index]


def test_replacing_a_field_changes_what_is_required(org: Org):
    (before,) = org.write("Lead", "insert", [{"LastName": "L"}])
    assert error_of(before) == (
        "REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]", ["Company"],
    )  # fmt: skip
    org.add_field("Lead", FieldDef(name="Company", type="string", length=255, nillable=True))
    (after,) = org.write("Lead", "insert", [{"LastName": "L"}])
    assert after.success
