"""The catalog renders describes with the shapes and attribute values of recorded real ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sfbulk.emulator.metadata import (
    Catalog,
    FieldDef,
    MetadataError,
    SObjectDef,
    load_metadata_source,
    standard_catalog,
)


def _load(fixtures_dir: Path, name: str) -> dict:
    return json.loads((fixtures_dir / "salesforce" / "describe" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return standard_catalog()


# Attributes compared field by field against the recorded describes.
COMPARED = [
    "aggregatable", "autoNumber", "byteLength", "calculated", "caseSensitive",
    "compoundFieldName", "createable", "custom", "defaultedOnCreate", "digits", "externalId",
    "extraTypeInfo", "filterable", "groupable", "htmlFormatted", "idLookup", "length", "name",
    "nameField", "nillable", "polymorphicForeignKey", "precision", "queryByDistance",
    "relationshipName", "restrictedPicklist", "scale", "soapType", "sortable", "type", "unique",
    "updateable",
]  # fmt: skip

SAMPLED_FIELDS = {
    "Account": [
        "Id", "IsDeleted", "Name", "Type", "ParentId", "BillingStreet", "BillingCity",
        "BillingLatitude", "BillingLongitude", "BillingGeocodeAccuracy", "BillingAddress",
        "Phone", "Website", "AnnualRevenue", "NumberOfEmployees", "Description", "OwnerId",
        "CreatedDate", "CreatedById", "SystemModstamp", "LastActivityDate", "CleanStatus",
        "JigsawCompanyId",
    ],
    "Contact": [
        "AccountId", "LastName", "FirstName", "Salutation", "Name", "MailingAddress",
        "MailingLatitude", "ReportsToId", "Email", "Birthdate", "LeadSource", "IsEmailBounced",
    ],
    "Opportunity": [
        "Name", "StageName", "Amount", "Probability", "ExpectedRevenue", "CloseDate", "IsWon",
        "ForecastCategory", "FiscalYear", "Fiscal", "ContactId", "IsPrivate",
    ],
    "Case": ["CaseNumber", "ContactId", "Status", "Priority", "OwnerId", "Comments", "ClosedDate"],
    "Lead": ["LastName", "Company", "Street", "Latitude", "Address", "Status", "OwnerId",
             "IsConverted", "ConvertedAccountId", "EmailBouncedReason"],
    "Attachment": ["ParentId", "Name", "Body", "BodyLength", "OwnerId", "Description",
                   "CreatedById"],
    "Task": ["WhoId", "WhatId", "Subject", "ActivityDate", "Status", "OwnerId", "CallType"],
}  # fmt: skip


@pytest.mark.parametrize("obj_name", sorted(SAMPLED_FIELDS))
def test_describe_shape_matches_recorded(fixtures_dir: Path, catalog: Catalog, obj_name: str):
    recorded = _load(fixtures_dir, obj_name)
    # The v53+ top-level key set (45 keys) in alphabetical order, as in Contact.json.
    modern = _load(fixtures_dir, "Contact")
    described = catalog.get(obj_name).describe("59.0")  # type: ignore[union-attr]
    assert list(described) == list(modern)
    assert list(described) == sorted(described)
    field_keys = list(recorded["fields"][0])
    assert len(field_keys) == 57
    for fdesc in described["fields"]:
        assert list(fdesc) == field_keys, fdesc["name"]
    child_keys = list(modern["childRelationships"][0])
    for child in described["childRelationships"]:
        assert list(child) == child_keys
    assert described["name"] == recorded["name"]
    assert described["keyPrefix"] == recorded["keyPrefix"]


@pytest.mark.parametrize("obj_name", sorted(SAMPLED_FIELDS))
def test_sampled_field_attributes_equal_recorded(
    fixtures_dir: Path, catalog: Catalog, obj_name: str
):
    recorded = {f["name"]: f for f in _load(fixtures_dir, obj_name)["fields"]}
    ours = {f["name"]: f for f in catalog.get(obj_name).describe("59.0")["fields"]}  # type: ignore[union-attr]
    for name in SAMPLED_FIELDS[obj_name]:
        mismatches = {
            key: (ours[name][key], recorded[name][key])
            for key in COMPARED
            if ours[name][key] != recorded[name][key]
        }
        assert mismatches == {}, f"{obj_name}.{name}"
        if not ours[name]["polymorphicForeignKey"]:
            assert ours[name]["referenceTo"] == recorded[name]["referenceTo"], name


def test_picklist_entries_have_recorded_keys_and_values(fixtures_dir: Path, catalog: Catalog):
    recorded = {f["name"]: f for f in _load(fixtures_dir, "Opportunity")["fields"]}
    ours = {f["name"]: f for f in catalog.get("Opportunity").describe("59.0")["fields"]}  # type: ignore[union-attr]
    assert ours["StageName"]["picklistValues"] == recorded["StageName"]["picklistValues"]
    account = {f["name"]: f for f in _load(fixtures_dir, "Account")["fields"]}
    mine = {f["name"]: f for f in catalog.get("Account").describe("48.0")["fields"]}  # type: ignore[union-attr]
    assert (
        mine["BillingGeocodeAccuracy"]["picklistValues"]
        == account["BillingGeocodeAccuracy"]["picklistValues"]
    )
    case = {f["name"]: f for f in catalog.get("Case").describe("59.0")["fields"]}  # type: ignore[union-attr]
    new = [p for p in case["Status"]["picklistValues"] if p["value"] == "New"]
    assert new == [
        {"active": True, "defaultValue": True, "label": "New", "validFor": None, "value": "New"}
    ]


def test_urls_and_record_types_follow_recorded_shape(fixtures_dir: Path, catalog: Catalog):
    recorded = _load(fixtures_dir, "Contact")
    described = catalog.get("Contact").describe("62.0", "https://orgname.my.salesforce.com")  # type: ignore[union-attr]
    assert list(described["urls"]) == list(recorded["urls"])
    assert described["urls"]["sobject"] == "/services/data/v62.0/sobjects/Contact"
    assert described["urls"]["uiNewRecord"] == "https://orgname.my.salesforce.com/003/e"
    expected = json.loads(json.dumps(recorded["recordTypeInfos"]).replace("vxx.0", "v62.0"))
    assert described["recordTypeInfos"] == expected
    assert catalog.get("account").describe("v62.0")["urls"]["describe"] == (  # type: ignore[union-attr]
        "/services/data/v62.0/sobjects/Account/describe"
    )


def test_global_entry_keys_match_recorded(fixtures_dir: Path, catalog: Catalog):
    recorded = json.loads(
        (
            fixtures_dir / "salesforce" / "describe_global" / "cumulusci_sobjects_subset.json"
        ).read_text()
    )
    entry = next(s for s in recorded["sobjects"] if s["name"] == "Account")
    ours = catalog.get("Account").global_entry("52.0")  # type: ignore[union-attr]
    assert list(ours) == list(entry)
    assert ours["urls"] == entry["urls"]
    assert {k: ours[k] for k in entry if k != "urls"} == {k: entry[k] for k in entry if k != "urls"}


def test_child_relationships_are_derived_from_references(catalog: Catalog):
    children = {
        (c.child_sobject, c.field): c.relationship_name
        for c in catalog.get("Account").child_relationships  # type: ignore[union-attr]
    }
    assert children[("Contact", "AccountId")] == "Contacts"
    assert children[("Opportunity", "AccountId")] == "Opportunities"
    assert children[("Case", "AccountId")] == "Cases"
    assert children[("Account", "ParentId")] == "ChildAccounts"
    assert children[("Type_Sample__c", "Account__c")] == "Type_Samples__r"
    rels = catalog.get("Account").child_relationships  # type: ignore[union-attr]
    assert rels == sorted(rels, key=lambda c: (c.child_sobject, c.field))


def test_catalog_lookup_and_object_flags(catalog: Catalog):
    assert catalog.get("aCCOUNT") is catalog.get("Account")
    assert catalog.get("Nope__c") is None
    assert catalog.names() == sorted(catalog.names(), key=str.lower)
    for name in ("CaseStatus", "TaskStatus", "RecentlyViewed"):
        obj = catalog.get(name)
        assert obj is not None and obj.queryable and not obj.bulk_queryable, name
    stream = catalog.get("UriEventStream")
    assert stream is not None and not stream.queryable
    assert catalog.get("Account").pk_chunking  # type: ignore[union-attr]
    assert catalog.get("Store__c").pk_chunking  # type: ignore[union-attr]
    assert not catalog.get("Attachment").pk_chunking  # type: ignore[union-attr]
    assert not catalog.get("Organization").pk_chunking  # type: ignore[union-attr]
    user = catalog.get("User")
    assert user is not None and user.key_prefix == "005" and user.field("IsDeleted") is None
    assert catalog.get("Contact").field("reportstoid").relationship_name == "ReportsTo"  # type: ignore[union-attr]
    assert catalog.by_key_prefix("00Q").name == "Lead"  # type: ignore[union-attr]
    assert catalog.next_custom_prefix() == "a03"


def test_owner_is_polymorphic_where_salesforce_says_so(catalog: Catalog):
    for name in ("Case", "Lead"):
        owner = catalog.get(name).field("OwnerId")  # type: ignore[union-attr]
        assert owner is not None and owner.reference_to == ["Group", "User"] and owner.polymorphic
    who = catalog.get("Task").field("WhoId")  # type: ignore[union-attr]
    assert who is not None and who.relationship_name == "Who" and who.polymorphic
    body = catalog.get("Attachment").field("Body")  # type: ignore[union-attr]
    assert body is not None and body.type == "base64" and body.sql_type == "BLOB"


def test_type_zoo_has_one_field_of_every_type(catalog: Catalog):
    zoo = catalog.get("Type_Sample__c")
    assert zoo is not None and zoo.custom and zoo.key_prefix == "a02"
    types = {f.type for f in zoo.fields.values()}
    expected = {
        "id", "reference", "string", "textarea", "picklist", "multipicklist", "combobox", "email",
        "phone", "url", "encryptedstring", "boolean", "int", "long", "double", "currency",
        "percent", "date", "datetime", "time", "base64", "anyType", "address", "location",
        "vector",
    }  # fmt: skip
    assert expected <= types
    described = {f["name"]: f for f in zoo.describe("62.0")["fields"]}
    assert described["Vector__c"]["soapType"] == "xsd:anyType"
    assert described["Long__c"]["soapType"] == "xsd:long"
    assert described["Time__c"]["soapType"] == "xsd:time"
    assert described["Location__c"]["soapType"] == "urn:location"
    assert described["Encrypted__c"]["encrypted"] is True
    assert described["Encrypted__c"]["filterable"] is False
    assert described["Address__City__s"]["compoundFieldName"] == "Address__c"
    assert described["Formula__c"]["calculated"] is True
    assert described["Formula__c"]["createable"] is False
    assert described["Ext_Id__c"]["externalId"] is True
    assert described["Ext_Id__c"]["idLookup"] is True
    assert all(f["custom"] for f in described.values() if f["name"].endswith(("__c", "__s")))


def test_store_location_components(catalog: Catalog):
    store = catalog.get("Store__c")
    assert store is not None
    location = store.field("Location__c")
    lat = store.field("Location__Latitude__s")
    lon = store.field("Location__Longitude__s")
    assert location is not None and location.type == "location" and location.is_compound
    assert location.sql_type is None
    assert lat is not None and lon is not None
    assert (lat.type, lat.compound_field_name, lat.scale) == ("double", "Location__c", 6)
    assert (lon.type, lon.compound_field_name) == ("double", "Location__c")
    assert [f.name for f in store.column_fields()].count("Location__c") == 0


def test_add_field_keeps_order_and_case_insensitive_lookup():
    obj = SObjectDef(name="Thing__c", label="Thing", label_plural="Things", key_prefix="a09",
                     custom=True)  # fmt: skip
    obj.add_field(FieldDef(name="Id", type="id"))
    obj.add_field(FieldDef(name="Zed__c", type="string", length=10, custom=True))
    obj.add_field(FieldDef(name="Alpha__c", type="string", length=5, custom=True), before="Zed__c")
    assert list(obj.fields) == ["Id", "Alpha__c", "Zed__c"]
    assert obj.field("alpha__C") is obj.fields["Alpha__c"]
    obj.add_field(FieldDef(name="Alpha__c", type="string", length=99, custom=True))
    assert list(obj.fields) == ["Id", "Alpha__c", "Zed__c"]
    assert obj.field("ALPHA__c").length == 99  # type: ignore[union-attr]
    assert obj.pk_chunking


# --- metadata source ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coral(fixtures_dir: Path) -> Catalog:
    catalog = standard_catalog()
    touched = load_metadata_source(catalog, fixtures_dir / "sample-orgs" / "coral-cloud")
    assert touched == [
        "Booking__c", "Contact", "Credit__c", "Experience__c", "Guest_Review__c", "Session__c",
    ]  # fmt: skip
    return catalog


def test_custom_object_from_metadata(coral: Catalog):
    booking = coral.get("Booking__c")
    assert booking is not None and booking.custom
    assert booking.key_prefix == "a03"
    assert (booking.label, booking.label_plural) == ("Booking", "Bookings")
    name = booking.field("Name")
    assert name is not None and name.auto_number and not name.createable
    assert name.auto_number_format == "B-{00000000}"
    assert name.label == "Booking Record Number"
    assert booking.field("OwnerId") is None  # ControlledByParent: a master-detail child
    assert not booking.bulk_queryable  # enableBulkApi false
    guest = coral.get("Guest_Review__c")
    assert guest is not None and guest.bulk_queryable and guest.field("OwnerId") is None
    experience = coral.get("Experience__c")
    assert experience is not None and experience.field("OwnerId") is not None


def test_field_types_from_metadata(coral: Catalog):
    session = coral.get("Booking__c").field("Session__c")  # type: ignore[union-attr]
    assert session is not None
    assert (session.type, session.reference_to, session.relationship_name) == (
        "reference", ["Session__c"], "Session__r",
    )  # fmt: skip
    assert not session.nillable and session.cascade_delete and not session.updateable
    contact = coral.get("Booking__c").field("Contact__c")  # type: ignore[union-attr]
    assert contact is not None and contact.child_relationship_name == "Bookings__r"
    review = coral.get("Credit__c").field("Contact__c")  # type: ignore[union-attr]
    assert review is not None and review.nillable and review.child_relationship_name == "Credits__r"
    status = coral.get("Booking__c").field("Status__c")  # type: ignore[union-attr]
    assert status is not None and status.calculated and not status.createable
    assert status.type == "string" and status.calculated_formula is not None
    total = coral.get("Booking__c").field("Total_Price__c")  # type: ignore[union-attr]
    assert total is not None and (total.type, total.precision, total.scale) == ("currency", 18, 2)
    exp = coral.get("Experience__c")
    assert exp is not None
    type_field = exp.field("Type__c")
    assert type_field is not None and type_field.type == "picklist"
    assert type_field.picklist_values[:2] == ["Adventure Activities", "Beaches & Snorkeling"]
    assert len(type_field.picklist_values) == 14 and not type_field.restricted_picklist
    start = exp.field("Default_Start_Time__c")
    assert start is not None and start.type == "time"
    description = exp.field("Description__c")
    assert description is not None and description.type == "textarea"
    assert description.extra_type_info in ("plaintextarea", "richtextarea")
    summary = exp.field("Total_Guest_Reviews__c")
    assert summary is not None and summary.calculated and summary.type == "double"
    external = coral.get("Contact").field("External_Id__c")  # type: ignore[union-attr]
    assert external is not None and external.external_id and external.id_lookup
    assert external.length == 18 and external.custom
    # The standard AccountId entry changes nothing.
    account_id = coral.get("Contact").field("AccountId")  # type: ignore[union-attr]
    assert (
        account_id is not None
        and not account_id.custom
        and account_id.relationship_name == "Account"
    )
    children = {(c.child_sobject, c.field) for c in coral.get("Session__c").child_relationships}  # type: ignore[union-attr]
    assert ("Booking__c", "Session__c") in children


def test_platform_events_and_standard_object_fields(fixtures_dir: Path):
    catalog = standard_catalog()
    load_metadata_source(catalog, fixtures_dir / "sample-orgs" / "ebikes-lwc")
    event = catalog.get("Manufacturing_Event__e")
    assert event is not None and not event.queryable and event.key_prefix is None
    product = catalog.get("Case").field("Product__c")  # type: ignore[union-attr]
    assert product is not None and product.reference_to == ["Product__c"]
    assert catalog.get("Product__c").field("Product_Family__c").relationship_name == (  # type: ignore[union-attr]
        "Product_Family__r"
    )


FIELD_XML = """<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="http://soap.sforce.com/2006/04/metadata">
    <fullName>{name}</fullName>
    <label>{label}</label>
    {body}
</CustomField>
"""


def _write_field(objects: Path, obj: str, name: str, body: str) -> None:
    folder = objects / obj / "fields"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.field-meta.xml").write_text(
        FIELD_XML.format(name=name, label=name.replace("__c", ""), body=body)
    )


def test_every_metadata_field_type_maps_to_its_describe_type(tmp_path: Path):
    objects = tmp_path / "force-app" / "main" / "default" / "objects"
    (objects / "Gadget__c").mkdir(parents=True)
    (objects / "Gadget__c" / "Gadget__c.object-meta.xml").write_text(
        '<?xml version="1.0"?><CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">'
        "<label>Gadget</label><pluralLabel>Gadgets</pluralLabel>"
        "<nameField><label>Gadget Name</label><type>Text</type></nameField>"
        "<sharingModel>ReadWrite</sharingModel></CustomObject>"
    )
    specs = {
        "Code__c": "<type>Text</type><length>20</length><externalId>true</externalId>"
        "<unique>true</unique><caseSensitive>true</caseSensitive><required>true</required>",
        "Notes__c": "<type>TextArea</type>",
        "Long__c": "<type>LongTextArea</type><length>5000</length>",
        "Html__c": "<type>Html</type><length>10000</length>",
        "Secret__c": "<type>EncryptedText</type><length>50</length><maskType>all</maskType>"
        "<maskChar>asterisk</maskChar>",
        "Qty__c": "<type>Number</type><precision>10</precision><scale>0</scale>",
        "Price__c": "<type>Currency</type><precision>12</precision><scale>2</scale>",
        "Rate__c": "<type>Percent</type><precision>5</precision><scale>2</scale>",
        "Active__c": "<type>Checkbox</type><defaultValue>true</defaultValue>",
        "When__c": "<type>DateTime</type>",
        "Day__c": "<type>Date</type>",
        "At__c": "<type>Time</type>",
        "Mail__c": "<type>Email</type>",
        "Tel__c": "<type>Phone</type>",
        "Site__c": "<type>Url</type>",
        "Colors__c": "<type>MultiselectPicklist</type><visibleLines>4</visibleLines><valueSet>"
        "<restricted>true</restricted><valueSetDefinition><value><fullName>Red</fullName>"
        "<default>true</default><label>Rouge</label></value><value><fullName>Blue</fullName>"
        "<default>false</default><label>Blue</label></value></valueSetDefinition></valueSet>",
        "Spot__c": "<type>Location</type><scale>5</scale>"
        "<displayLocationInDecimal>true</displayLocationInDecimal>",
        "Seq__c": "<type>AutoNumber</type><displayFormat>G-{0000}</displayFormat>",
        "Owner_Account__c": "<type>Lookup</type><referenceTo>Account</referenceTo>"
        "<relationshipName>Gadgets</relationshipName><deleteConstraint>Restrict</deleteConstraint>",
        "Double__c": "<type>Number</type><precision>18</precision><scale>0</scale>"
        "<formula>Qty__c * 2</formula>",
    }
    for name, body in specs.items():
        _write_field(objects, "Gadget__c", name, body)
    tier_xml = (
        "<type>Picklist</type><valueSet><valueSetDefinition><value><fullName>Gold</fullName>"
        "<default>false</default></value></valueSetDefinition></valueSet>"
    )
    _write_field(objects, "Account", "Tier__c", tier_xml)
    catalog = standard_catalog()
    assert load_metadata_source(catalog, tmp_path) == ["Account", "Gadget__c"]
    gadget = catalog.get("Gadget__c")
    assert gadget is not None
    got = {
        name: (f.type, f.length, f.precision, f.scale)
        for name, f in gadget.fields.items()
        if name in specs
    }
    assert got == {
        "Code__c": ("string", 20, 0, 0),
        "Notes__c": ("textarea", 255, 0, 0),
        "Long__c": ("textarea", 5000, 0, 0),
        "Html__c": ("textarea", 10000, 0, 0),
        "Secret__c": ("encryptedstring", 50, 0, 0),
        "Qty__c": ("double", 0, 10, 0),
        "Price__c": ("currency", 0, 12, 2),
        "Rate__c": ("percent", 0, 5, 2),
        "Active__c": ("boolean", 0, 0, 0),
        "When__c": ("datetime", 0, 0, 0),
        "Day__c": ("date", 0, 0, 0),
        "At__c": ("time", 0, 0, 0),
        "Mail__c": ("email", 80, 0, 0),
        "Tel__c": ("phone", 40, 0, 0),
        "Site__c": ("url", 255, 0, 0),
        "Colors__c": ("multipicklist", 4099, 0, 0),
        "Spot__c": ("location", 0, 0, 5),
        "Seq__c": ("string", 30, 0, 0),
        "Owner_Account__c": ("reference", 18, 0, 0),
        "Double__c": ("double", 0, 18, 0),
    }
    code = gadget.fields["Code__c"]
    assert code.external_id and code.unique and code.case_sensitive and not code.nillable
    assert code.required
    assert gadget.fields["Html__c"].html_formatted
    assert gadget.fields["Html__c"].extra_type_info == "richtextarea"
    assert gadget.fields["Long__c"].extra_type_info == "plaintextarea"
    active = gadget.fields["Active__c"]
    assert active.default_value is True and active.defaulted_on_create and not active.nillable
    colors = gadget.fields["Colors__c"]
    assert colors.restricted_picklist and colors.picklist_values == ["Red", "Blue"]
    assert colors.default_value == "Red" and colors.picklist_labels == {"Red": "Rouge"}
    assert colors.describe()["picklistValues"][0] == {
        "active": True, "defaultValue": True, "label": "Rouge", "validFor": None, "value": "Red",
    }  # fmt: skip
    assert gadget.fields["Spot__Latitude__s"].compound_field_name == "Spot__c"
    assert gadget.fields["Spot__Longitude__s"].scale == 5
    assert gadget.fields["Spot__c"].display_location_in_decimal
    seq = gadget.fields["Seq__c"]
    assert seq.auto_number and not seq.createable and seq.auto_number_format == "G-{0000}"
    lookup = gadget.fields["Owner_Account__c"]
    assert lookup.relationship_name == "Owner_Account__r" and lookup.restricted_delete
    assert lookup.child_relationship_name == "Gadgets__r"
    assert gadget.fields["Double__c"].calculated and not gadget.fields["Double__c"].createable
    assert gadget.fields["Secret__c"].encrypted and gadget.fields["Secret__c"].mask_type == "all"
    assert gadget.field("OwnerId") is not None and gadget.field("Name").label == "Gadget Name"  # type: ignore[union-attr]
    tier = catalog.get("Account").field("Tier__c")  # type: ignore[union-attr]
    assert tier is not None and tier.picklist_values == ["Gold"] and tier.custom
    rels = {
        (c.child_sobject, c.relationship_name) for c in catalog.get("Account").child_relationships
    }  # type: ignore[union-attr]
    assert ("Gadget__c", "Gadgets__r") in rels


def test_hostile_xml_is_refused(tmp_path: Path):
    objects = tmp_path / "objects" / "Bomb__c"
    objects.mkdir(parents=True)
    (objects / "Bomb__c.object-meta.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        '<CustomObject xmlns="http://soap.sforce.com/2006/04/metadata">'
        "<label>&lol2;</label></CustomObject>"
    )
    with pytest.raises(MetadataError, match=r"Bomb__c\.object-meta\.xml: not valid metadata XML"):
        load_metadata_source(standard_catalog(), tmp_path)


def test_unknown_field_type_names_the_file(tmp_path: Path):
    _write_field(tmp_path / "objects", "Account", "Odd__c", "<type>Hologram</type>")
    with pytest.raises(MetadataError, match=r"Odd__c.field-meta.xml: field Account.Odd__c has "
                       r"unsupported type 'Hologram'"):  # fmt: skip
        load_metadata_source(standard_catalog(), tmp_path)
