"""Object and field definitions of the emulated org, rendered as Salesforce describes them.

The shapes here follow describes recorded from real orgs (API v44-v59): every top-level key of
an sObject describe and all 57 keys of a field entry, alphabetical, with the attribute values
Salesforce reports for each field type. The catalog is code, not data read at run time, so the
emulator works with nothing beside it; ``load_metadata_source`` adds objects and fields from
Salesforce DX metadata.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as defused_parse

from sfbulk.ids import decode_base62, encode_base62

# describe ``type`` -> ``soapType`` (recorded mapping; time/long/location/anyType as documented).
SOAP_TYPES: dict[str, str] = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "string": "xsd:string",
    "textarea": "xsd:string",
    "picklist": "xsd:string",
    "multipicklist": "xsd:string",
    "combobox": "xsd:string",
    "email": "xsd:string",
    "phone": "xsd:string",
    "url": "xsd:string",
    "encryptedstring": "xsd:string",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "long": "xsd:long",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "time": "xsd:time",
    "base64": "xsd:base64Binary",
    "address": "urn:address",
    "location": "urn:location",
    "anyType": "xsd:anyType",
}

#: Types whose value is several component fields; they have no column and Bulk cannot select them.
COMPOUND_TYPES = frozenset({"address", "location"})
#: Types stored as text that hold free text (length-checked on write).
TEXT_TYPES = frozenset(
    {
        "string",
        "textarea",
        "picklist",
        "multipicklist",
        "combobox",
        "email",
        "phone",
        "url",
        "encryptedstring",
    }
)
NUMBER_TYPES = frozenset({"int", "long", "double", "currency", "percent"})

# Objects that support PK chunking (Bulk API guide v66 list); custom objects always do.
PK_CHUNKING_OBJECTS = frozenset(
    {
        "Account",
        "AccountContactRelation",
        "AccountTeamMember",
        "Asset",
        "Campaign",
        "CampaignMember",
        "Case",
        "CaseComment",
        "Contact",
        "ContentVersion",
        "Contract",
        "EmailMessage",
        "Event",
        "FeedItem",
        "Lead",
        "LoginHistory",
        "Opportunity",
        "OpportunityContactRole",
        "OpportunityHistory",
        "OpportunityLineItem",
        "Order",
        "OrderItem",
        "Pricebook2",
        "PricebookEntry",
        "Product2",
        "Quote",
        "QuoteLineItem",
        "Task",
        "User",
        "UserRole",
        "WorkOrder",
        "WorkOrderLineItem",
    }
)

#: The Master record type id every org reports for objects without record types of their own.
MASTER_RECORD_TYPE_ID = "012000000000000AAA"

# URL kinds of an sObject describe, in the order Salesforce writes them.
FULL_URLS = (
    "compactLayouts",
    "rowTemplate",
    "approvalLayouts",
    "uiDetailTemplate",
    "uiEditTemplate",
    "listviews",
    "describe",
    "uiNewRecord",
    "quickActions",
    "layouts",
    "sobject",
)
SIMPLE_URLS = ("rowTemplate", "describe", "sobject")
_UI_URLS = frozenset({"uiDetailTemplate", "uiEditTemplate", "uiNewRecord"})

DEFAULT_INSTANCE_URL = "https://emulator.my.salesforce.com"


def _capabilities(type_: str, length: int) -> tuple[bool, bool, bool, bool]:
    """Return (filterable, sortable, groupable, aggregatable) as Salesforce reports them per type.

    Long text areas can be neither filtered nor sorted; booleans cannot be aggregated; numbers
    with fractions and datetimes cannot be grouped; base64 can do nothing; compound fields can
    only be filtered (by distance for locations).
    """
    if type_ == "textarea" and length > 255:
        return (False, False, False, False)
    return {
        "base64": (False, False, False, False),
        "address": (True, False, False, False),
        "location": (True, False, False, False),
        "boolean": (True, True, True, False),
        "double": (True, True, False, True),
        "currency": (True, True, False, True),
        "percent": (True, True, False, True),
        "datetime": (True, True, False, True),
        "time": (True, True, False, True),
        "multipicklist": (True, False, False, False),
        "encryptedstring": (False, False, False, False),
        "anyType": (True, True, False, False),
    }.get(type_, (True, True, True, True))


@dataclass
class FieldDef:
    """One field of an sObject, with every attribute a describe reports.

    Attributes beyond the contract's (groupable, permissionable, auto-number format, ...) have
    defaults derived from the type, so a field is declared with only what makes it special.
    """

    name: str
    type: str
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    byte_length: int | None = None
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    filterable: bool | None = None
    sortable: bool | None = None
    unique: bool = False
    external_id: bool = False
    id_lookup: bool = False
    calculated: bool = False
    custom: bool = False
    defaulted_on_create: bool = False
    default_value: Any = None
    compound_field_name: str | None = None
    reference_to: list[str] = field(default_factory=list)
    relationship_name: str | None = None
    picklist_values: list[str] = field(default_factory=list)
    restricted_picklist: bool = False
    case_sensitive: bool = False
    auto_number: bool = False
    name_field: bool = False
    html_formatted: bool = False
    extra_type_info: str | None = None
    soap_type: str | None = None
    # Extensions (not part of the module contract, but rendered by describe()).
    groupable: bool | None = None
    aggregatable: bool | None = None
    permissionable: bool | None = None
    calculated_formula: str | None = None
    auto_number_format: str | None = None
    child_relationship_name: str | None = None
    cascade_delete: bool = False
    restricted_delete: bool = False
    relationship_order: int | None = None
    write_requires_master_read: bool = False
    name_pointing: bool = False
    encrypted: bool = False
    mask: str | None = None
    mask_type: str | None = None
    inline_help_text: str | None = None
    picklist_labels: dict[str, str] = field(default_factory=dict)
    display_location_in_decimal: bool = False
    search_prefilterable: bool = False
    polymorphic_foreign_key: bool | None = None

    def __post_init__(self) -> None:
        filterable, sortable, groupable, aggregatable = _capabilities(self.type, self.length)
        if self.filterable is None:
            self.filterable = filterable
        if self.sortable is None:
            self.sortable = sortable
        if self.groupable is None:
            self.groupable = groupable
        if self.aggregatable is None:
            self.aggregatable = aggregatable
        if self.byte_length is None:
            if self.type in ("id", "reference"):
                self.byte_length = 18
            elif self.type in TEXT_TYPES:
                self.byte_length = self.length * 3
            else:
                self.byte_length = 0
        if self.soap_type is None:
            self.soap_type = SOAP_TYPES.get(self.type, "xsd:anyType")
        if self.type == "encryptedstring":
            self.encrypted = True
        if self.permissionable is None:
            self.permissionable = (
                self.nillable and not self.calculated and self.type != "id" and self.custom
            )
        if not self.label:
            self.label = self.name

    # --- derived facts the store and the SOQL engine rely on -------------------------------
    @property
    def is_compound(self) -> bool:
        """True for address and location fields: no column of their own, not Bulk-selectable."""
        return self.type in COMPOUND_TYPES

    @property
    def polymorphic(self) -> bool:
        """True when a reference may point at several objects (``Type:Rel.Field`` columns)."""
        return self.type == "reference" and len(self.reference_to) > 1

    @property
    def required(self) -> bool:
        """Whether a create must supply a value: createable, not nillable, not defaulted."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def sql_type(self) -> str | None:
        """The column declaration for this field (None for compound fields, which have none)."""
        if self.is_compound:
            return None
        if self.type == "boolean":
            return "INTEGER"
        if self.type in NUMBER_TYPES:
            return "NUMERIC"
        if self.type == "base64":
            return "BLOB"
        return "TEXT"

    def describe(self) -> dict[str, Any]:
        """Render the 57-key field entry of a describe, keys in alphabetical order."""
        values = [
            {
                "active": True,
                "defaultValue": value == self.default_value,
                "label": self.picklist_labels.get(value, value),
                "validFor": None,
                "value": value,
            }
            for value in self.picklist_values
        ]
        return {
            "aggregatable": self.aggregatable,
            "aiPredictionField": False,
            "autoNumber": self.auto_number,
            "byteLength": self.byte_length,
            "calculated": self.calculated,
            "calculatedFormula": self.calculated_formula,
            "cascadeDelete": self.cascade_delete,
            "caseSensitive": self.case_sensitive,
            "compoundFieldName": self.compound_field_name,
            "controllerName": None,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default_value,
            "defaultValueFormula": None,
            "defaultedOnCreate": self.defaulted_on_create,
            "dependentPicklist": False,
            "deprecatedAndHidden": False,
            "digits": self.digits,
            "displayLocationInDecimal": self.display_location_in_decimal,
            "encrypted": self.encrypted,
            "externalId": self.external_id,
            "extraTypeInfo": self.extra_type_info,
            "filterable": self.filterable,
            "filteredLookupInfo": None,
            "formulaTreatNullNumberAsZero": False,
            "groupable": self.groupable,
            "highScaleNumber": False,
            "htmlFormatted": self.html_formatted,
            "idLookup": self.id_lookup,
            "inlineHelpText": self.inline_help_text,
            "label": self.label,
            "length": self.length,
            "mask": self.mask,
            "maskType": self.mask_type,
            "name": self.name,
            "nameField": self.name_field,
            "namePointing": self.name_pointing,
            "nillable": self.nillable,
            "permissionable": self.permissionable,
            "picklistValues": values,
            "polymorphicForeignKey": (
                self.polymorphic
                if self.polymorphic_foreign_key is None
                else self.polymorphic_foreign_key
            ),
            "precision": self.precision,
            "queryByDistance": self.type in COMPOUND_TYPES,
            "referenceTargetField": None,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "relationshipOrder": self.relationship_order,
            "restrictedDelete": self.restricted_delete,
            "restrictedPicklist": self.restricted_picklist,
            "scale": self.scale,
            "searchPrefilterable": self.search_prefilterable,
            "soapType": self.soap_type,
            "sortable": self.sortable,
            "type": self.type,
            "unique": self.unique,
            "updateable": self.updateable,
            "writeRequiresMasterRead": self.write_requires_master_read,
        }


@dataclass
class ChildRelationship:
    """A child-to-parent reference seen from the parent (one ``childRelationships`` entry)."""

    child_sobject: str
    field: str
    relationship_name: str | None
    cascade_delete: bool = False
    restricted_delete: bool = False

    def describe(self) -> dict[str, Any]:
        """Render the entry with its eight keys in Salesforce's (alphabetical) order."""
        return {
            "cascadeDelete": self.cascade_delete,
            "childSObject": self.child_sobject,
            "deprecatedAndHidden": False,
            "field": self.field,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": self.relationship_name,
            "restrictedDelete": self.restricted_delete,
        }


def _version(api_version: str | float | int) -> str:
    """Normalise ``"v62.0"``, ``"62"``, ``62.0`` to ``"62.0"``."""
    text = str(api_version).lstrip("vV")
    return text if "." in text else f"{text}.0"


@dataclass
class SObjectDef:
    """One sObject: its fields (in describe order) and what the org lets clients do with it."""

    name: str
    label: str
    label_plural: str
    key_prefix: str | None
    custom: bool = False
    fields: dict[str, FieldDef] = field(default_factory=dict)
    queryable: bool = True
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    bulk_queryable: bool = True
    pk_chunking: bool = False
    retrieveable: bool = True
    replicateable: bool = True
    searchable: bool = True
    layoutable: bool = True
    triggerable: bool = True
    undeletable: bool = True
    mergeable: bool = False
    child_relationships: list[ChildRelationship] = field(default_factory=list)
    # Extensions rendered by describe().
    feed_enabled: bool = False
    mru_enabled: bool = False
    activateable: bool = False
    custom_setting: bool = False
    record_types: bool = True
    supported_scopes: list[tuple[str, str]] = field(default_factory=list)
    url_kinds: tuple[str, ...] = FULL_URLS
    sharing_model: str | None = None
    #: False when the object's "Allow Bulk API Access" is off: Bulk refuses it for any operation.
    bulk_api: bool = True

    def __post_init__(self) -> None:
        if self.custom:
            self.pk_chunking = True
        self._index: dict[str, FieldDef] = {}
        self._index_size = -1
        #: Bumped by every add_field, so caches keyed on it notice replaced fields.
        self.generation = 0

    # --- fields ---------------------------------------------------------------------------
    def add_field(self, fdef: FieldDef, *, before: str | None = None) -> FieldDef:
        """Add or replace a field in describe order (new ones go last, or before ``before``)."""
        existing = self.field(fdef.name)
        if existing is not None:
            fdef.name = existing.name if not fdef.custom else fdef.name
            self.fields = {
                (fdef.name if key == existing.name else key): (fdef if key == existing.name else f)
                for key, f in self.fields.items()
            }
        elif before is not None and self.field(before) is not None:
            anchor = self.field(before)
            assert anchor is not None
            items = list(self.fields.items())
            pos = [key for key, _ in items].index(anchor.name)
            items.insert(pos, (fdef.name, fdef))
            self.fields = dict(items)
        else:
            self.fields[fdef.name] = fdef
        self._index_size = -1
        self.generation += 1
        return fdef

    def field(self, name: str) -> FieldDef | None:
        """Look a field up by API name, case-insensitively (None if there is no such field)."""
        found = self.fields.get(name)
        if found is not None:
            return found
        if self._index_size != len(self.fields):
            self._index = {key.lower(): f for key, f in self.fields.items()}
            self._index_size = len(self.fields)
        return self._index.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (``Account``, ``Parent__r``)."""
        lowered = name.lower()
        for fdef in self.fields.values():
            if fdef.relationship_name and fdef.relationship_name.lower() == lowered:
                return fdef
        return None

    def column_fields(self) -> list[FieldDef]:
        """Fields that have a column in the object's table (every non-compound field)."""
        return [f for f in self.fields.values() if not f.is_compound]

    @property
    def name_field(self) -> FieldDef | None:
        """The field flagged ``nameField`` (Name, CaseNumber, Subject...)."""
        for fdef in self.fields.values():
            if fdef.name_field:
                return fdef
        return None

    # --- rendering --------------------------------------------------------------------------
    def _urls(self, version: str, instance_url: str, *, global_entry: bool) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        full = {
            "compactLayouts": f"{base}/describe/compactLayouts",
            "rowTemplate": f"{base}/{{ID}}",
            "approvalLayouts": f"{base}/describe/approvalLayouts",
            "uiDetailTemplate": f"{instance_url}/{{ID}}",
            "uiEditTemplate": f"{instance_url}/{{ID}}/e",
            "listviews": f"{base}/listviews",
            "describe": f"{base}/describe",
            "uiNewRecord": f"{instance_url}/{self.key_prefix}/e",
            "quickActions": f"{base}/quickActions",
            "layouts": f"{base}/describe/layouts",
            "sobject": base,
        }
        return {
            kind: full[kind] for kind in self.url_kinds if not (global_entry and kind in _UI_URLS)
        }

    def describe(
        self, api_version: str | float | int, instance_url: str = DEFAULT_INSTANCE_URL
    ) -> dict[str, Any]:
        """Render ``GET /sobjects/{name}/describe``: 45 top-level keys in alphabetical order."""
        version = _version(api_version)
        record_types = []
        if self.record_types and self.layoutable:
            record_types.append(
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": MASTER_RECORD_TYPE_ID,
                    "urls": {
                        "layout": f"/services/data/v{version}/sobjects/{self.name}"
                        f"/describe/layouts/{MASTER_RECORD_TYPE_ID}"
                    },
                }
            )
        return {
            "actionOverrides": [],
            "activateable": self.activateable,
            "associateEntityType": None,
            "associateParentEntity": None,
            "childRelationships": [c.describe() for c in self.child_relationships],
            "compactLayoutable": self.layoutable,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": self.custom_setting,
            "deepCloneable": False,
            "defaultImplementation": None,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "extendedBy": None,
            "extendsInterfaces": None,
            "feedEnabled": self.feed_enabled,
            "fields": [f.describe() for f in self.fields.values()],
            "hasSubtypes": False,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": self.layoutable,
            "listviewable": None,
            "lookupLayoutable": None,
            "mergeable": self.mergeable,
            "mruEnabled": self.mru_enabled,
            "name": self.name,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "queryable": self.queryable,
            "recordTypeInfos": record_types,
            "replicateable": self.replicateable,
            "retrieveable": self.retrieveable,
            "searchLayoutable": self.searchable,
            "searchable": self.searchable,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": label, "name": name} for name, label in self.supported_scopes
            ],
            "triggerable": self.triggerable,
            "undeletable": self.undeletable,
            "updateable": self.updateable,
            "urls": self._urls(version, instance_url, global_entry=False),
        }

    def global_entry(self, api_version: str | float | int) -> dict[str, Any]:
        """Render this object's entry in ``GET /sobjects`` (describeGlobal), keys as recorded."""
        version = _version(api_version)
        return {
            "activateable": self.activateable,
            "associateEntityType": None,
            "associateParentEntity": None,
            "createable": self.createable,
            "custom": self.custom,
            "customSetting": self.custom_setting,
            "deepCloneable": False,
            "deletable": self.deletable,
            "deprecatedAndHidden": False,
            "feedEnabled": self.feed_enabled,
            "hasSubtypes": False,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": self.layoutable,
            "mergeable": self.mergeable,
            "mruEnabled": self.mru_enabled,
            "name": self.name,
            "queryable": self.queryable,
            "replicateable": self.replicateable,
            "retrieveable": self.retrieveable,
            "searchable": self.searchable,
            "triggerable": self.triggerable,
            "undeletable": self.undeletable,
            "updateable": self.updateable,
            "urls": self._urls(version, DEFAULT_INSTANCE_URL, global_entry=True),
        }


class Catalog:
    """The org's objects, looked up case-insensitively, with child relationships kept in step."""

    def __init__(self, objects: Iterable[SObjectDef] = ()) -> None:
        self._objects: dict[str, SObjectDef] = {}
        for obj in objects:
            self._objects[obj.name.lower()] = obj
        self.relink()

    def __iter__(self) -> Iterator[SObjectDef]:
        return iter(sorted(self._objects.values(), key=lambda o: o.name.lower()))

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._objects

    def get(self, name: str) -> SObjectDef | None:
        """The object named ``name`` in any letter case, or None."""
        return self._objects.get(name.lower())

    def names(self) -> list[str]:
        """Object API names in describeGlobal order (alphabetical, case-insensitive)."""
        return [obj.name for obj in self]

    def add(self, obj: SObjectDef) -> SObjectDef:
        """Add or replace an object and recompute every parent's child relationships."""
        self._objects[obj.name.lower()] = obj
        self.relink()
        return obj

    def by_key_prefix(self, key_prefix: str) -> SObjectDef | None:
        """The object whose ids start with ``key_prefix`` (the first three characters of an id)."""
        for obj in self._objects.values():
            if obj.key_prefix == key_prefix:
                return obj
        return None

    def next_custom_prefix(self) -> str:
        """A key prefix for a new custom object: ``a01``, ``a02``... the first one not taken."""
        taken = {obj.key_prefix for obj in self._objects.values()}
        number = decode_base62("a01")
        while encode_base62(number, 3) in taken:
            number += 1
        return encode_base62(number, 3)

    def relink(self) -> None:
        """Rebuild every object's ``child_relationships`` from all objects' reference fields."""
        children: dict[str, list[ChildRelationship]] = {key: [] for key in self._objects}
        for child in self._objects.values():
            for fdef in child.fields.values():
                if fdef.type != "reference":
                    continue
                for parent in fdef.reference_to:
                    if parent.lower() in children:
                        children[parent.lower()].append(
                            ChildRelationship(
                                child.name,
                                fdef.name,
                                fdef.child_relationship_name,
                                fdef.cascade_delete,
                                fdef.restricted_delete,
                            )
                        )
        for key, obj in self._objects.items():
            obj.child_relationships = sorted(
                children[key], key=lambda c: (c.child_sobject, c.field)
            )


# ------------------------------------------------------------------------------------------------
# The standard catalog. Builders keep each declaration to what differs from the type's defaults.
# ------------------------------------------------------------------------------------------------


def _f(
    name: str, type_: str, label: str, length: int = 0, flags: str = "NCU", **kw: Any
) -> FieldDef:
    """Declare a field; ``flags`` letters: N nillable, C createable, U updateable, D defaulted on
    create, E external id, I idLookup, Q unique, n name field, K calculated."""
    attrs: dict[str, Any] = {
        "nillable": "N" in flags,
        "createable": "C" in flags,
        "updateable": "U" in flags,
        "defaulted_on_create": "D" in flags,
        "external_id": "E" in flags,
        "id_lookup": "I" in flags or "E" in flags,
        "unique": "Q" in flags,
        "name_field": "n" in flags,
        "calculated": "K" in flags,
    }
    attrs.update(kw)
    return FieldDef(name=name, type=type_, label=label, length=length, **attrs)


def _text(name: str, label: str, length: int, flags: str = "NCU", **kw: Any) -> FieldDef:
    return _f(name, "string", label, length, flags, **kw)


def _pick(
    name: str, label: str, values: list[str], length: int = 40, flags: str = "NCU", **kw: Any
) -> FieldDef:
    return _f(name, "picklist", label, length, flags, picklist_values=list(values), **kw)


def _ref(
    name: str,
    label: str,
    to: list[str],
    rel: str | None,
    flags: str = "NCU",
    child: str | None = None,
    **kw: Any,
) -> FieldDef:
    return _f(
        name,
        "reference",
        label,
        18,
        flags,
        reference_to=list(to),
        relationship_name=rel,
        child_relationship_name=child,
        **kw,
    )


def _bool(name: str, label: str, flags: str = "CUD", default: bool = False, **kw: Any) -> FieldDef:
    return _f(name, "boolean", label, 0, flags, default_value=default, **kw)


def _dt(name: str, label: str, flags: str = "N", **kw: Any) -> FieldDef:
    return _f(name, "datetime", label, 0, flags, **kw)


def _date(name: str, label: str, flags: str = "NCU", **kw: Any) -> FieldDef:
    return _f(name, "date", label, 0, flags, **kw)


def _num(
    name: str, type_: str, label: str, precision: int, scale: int, flags: str = "NCU", **kw: Any
) -> FieldDef:
    return _f(name, type_, label, 0, flags, precision=precision, scale=scale, **kw)


def _int(name: str, label: str, digits: int = 8, flags: str = "NCU", **kw: Any) -> FieldDef:
    return _f(name, "int", label, 0, flags, digits=digits, **kw)


def _long_text(
    name: str, label: str, length: int = 32000, flags: str = "NCU", **kw: Any
) -> FieldDef:
    kw.setdefault("extra_type_info", "plaintextarea")
    return _f(name, "textarea", label, length, flags, **kw)


GEOCODE_ACCURACY = [
    "Address",
    "NearAddress",
    "Block",
    "Street",
    "ExtendedZip",
    "Zip",
    "Neighborhood",
    "City",
    "County",
    "State",
    "Unknown",
]
CLEAN_STATUS = [
    "Matched",
    "Different",
    "Acknowledged",
    "NotFound",
    "Inactive",
    "Pending",
    "SelectMatch",
    "Skipped",
]
INDUSTRIES = [
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
]
LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
SALUTATIONS = ["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]
RATINGS = ["Hot", "Warm", "Cold"]
OPPORTUNITY_STAGES = [
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
]
CASE_STATUSES = ["New", "Working", "Escalated", "Closed"]
ATTACHMENT_PARENTS = [
    "Account",
    "Asset",
    "Campaign",
    "Case",
    "Contact",
    "Contract",
    "EmailMessage",
    "EmailTemplate",
    "Event",
    "Lead",
    "Opportunity",
    "Order",
    "Product2",
    "Quote",
    "Solution",
    "Task",
]


def address_fields(
    prefix: str, label_prefix: str, compound: str | None = None, custom: bool = False
) -> list[FieldDef]:
    """The components of an address compound field, then the compound field itself.

    Standard addresses name components ``BillingStreet``...; custom ones ``Addr__Street__s``.
    """
    compound = compound or f"{prefix}Address"
    lp = f"{label_prefix} " if label_prefix else ""

    def name(part: str) -> str:
        return f"{prefix}__{part}__s" if custom else f"{prefix}{part}"

    return [
        _long_text(
            name("Street"), f"{lp}Street", 255, "NCU", compound_field_name=compound, custom=custom
        ),
        _text(name("City"), f"{lp}City", 40, compound_field_name=compound, custom=custom),
        _text(
            name("State"), f"{lp}State/Province", 80, compound_field_name=compound, custom=custom
        ),
        _text(
            name("PostalCode"),
            f"{lp}Zip/Postal Code",
            20,
            compound_field_name=compound,
            custom=custom,
        ),
        _text(name("Country"), f"{lp}Country", 80, compound_field_name=compound, custom=custom),
        _num(
            name("Latitude"),
            "double",
            f"{lp}Latitude",
            18,
            15,
            compound_field_name=compound,
            custom=custom,
        ),
        _num(
            name("Longitude"),
            "double",
            f"{lp}Longitude",
            18,
            15,
            compound_field_name=compound,
            custom=custom,
        ),
        _pick(
            name("GeocodeAccuracy"),
            f"{lp}Geocode Accuracy",
            GEOCODE_ACCURACY,
            compound_field_name=compound,
            restricted_picklist=True,
            custom=custom,
        ),
        _f(
            compound,
            "address",
            f"{lp}Address",
            0,
            "N",
            createable=False,
            updateable=False,
            custom=custom,
        ),
    ]


def location_fields(base: str, label: str, scale: int = 15) -> list[FieldDef]:
    """A custom geolocation field ``X__c`` with its ``X__Latitude__s``/``X__Longitude__s`` parts."""
    stem = base[:-3] if base.endswith("__c") else base
    return [
        _f(
            base,
            "location",
            label,
            0,
            "NCU",
            custom=True,
            scale=scale,
            display_location_in_decimal=True,
        ),
        _num(
            f"{stem}__Latitude__s",
            "double",
            f"{label} (Latitude)",
            18,
            scale,
            custom=True,
            compound_field_name=base,
        ),
        _num(
            f"{stem}__Longitude__s",
            "double",
            f"{label} (Longitude)",
            18,
            scale,
            custom=True,
            compound_field_name=base,
        ),
    ]


def _id_field(label: str) -> FieldDef:
    """The ``Id`` field every object starts with (read-only, id lookup)."""
    return _f("Id", "id", label, 18, "DI", createable=False, updateable=False)


def _viewed_dates() -> list[FieldDef]:
    """``LastViewedDate`` and ``LastReferencedDate``, which objects with recent items carry."""
    return [
        _dt("LastViewedDate", "Last Viewed Date"),
        _dt("LastReferencedDate", "Last Referenced Date"),
    ]


def system_head(id_label: str, deleted: bool = True) -> list[FieldDef]:
    """``Id`` and ``IsDeleted``, the first fields of every object."""
    head = [_id_field(id_label)]
    if deleted:
        head.append(_bool("IsDeleted", "Deleted", "D"))
    return head


def system_tail(owner: list[str] | None = None, owner_label: str = "Owner ID") -> list[FieldDef]:
    """``OwnerId`` (when the object has one) and the audit fields Salesforce maintains."""
    tail = []
    if owner:
        tail.append(
            _ref("OwnerId", owner_label, owner, "Owner", "CUD", name_pointing=len(owner) > 1)
        )
    tail += [
        _dt("CreatedDate", "Created Date", "D"),
        _ref("CreatedById", "Created By ID", ["User"], "CreatedBy", "D"),
        _dt("LastModifiedDate", "Last Modified Date", "D"),
        _ref("LastModifiedById", "Last Modified By ID", ["User"], "LastModifiedBy", "D"),
        _dt("SystemModstamp", "System Modstamp", "D"),
    ]
    return tail


def _obj(
    name: str, label: str, plural: str, prefix: str | None, fields: list[FieldDef], **kw: Any
) -> SObjectDef:
    kw.setdefault("pk_chunking", name in PK_CHUNKING_OBJECTS)
    obj = SObjectDef(name=name, label=label, label_plural=plural, key_prefix=prefix, **kw)
    for fdef in fields:
        obj.fields[fdef.name] = fdef
    return obj


def _owned_scopes(plural: str) -> list[tuple[str, str]]:
    return [("everything", f"All {plural.lower()}"), ("mine", f"My {plural.lower()}")]


def _account() -> SObjectDef:
    fields = [
        *system_head("Account ID"),
        _ref("MasterRecordId", "Master Record ID", ["Account"], "MasterRecord", "N"),
        _text(
            "Name",
            "Account Name",
            255,
            "CUn",
            compound_field_name="Name",
            extra_type_info="switchablepersonname",
        ),
        _pick(
            "Type",
            "Account Type",
            [
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ],
        ),
        _ref("RecordTypeId", "Record Type ID", ["RecordType"], "RecordType"),
        _ref("ParentId", "Parent Account ID", ["Account"], "Parent", child="ChildAccounts"),
        *address_fields("Billing", "Billing"),
        *address_fields("Shipping", "Shipping"),
        _f("Phone", "phone", "Account Phone", 40),
        _f("Fax", "phone", "Account Fax", 40),
        _text("AccountNumber", "Account Number", 40),
        _f("Website", "url", "Website", 255),
        _f("PhotoUrl", "url", "Photo URL", 255, "N", extra_type_info="imageurl"),
        _text("Sic", "SIC Code", 20),
        _pick("Industry", "Industry", INDUSTRIES),
        _num("AnnualRevenue", "currency", "Annual Revenue", 18, 0),
        _int("NumberOfEmployees", "Employees"),
        _pick("Ownership", "Ownership", ["Public", "Private", "Subsidiary", "Other"]),
        _text("TickerSymbol", "Ticker Symbol", 20),
        _long_text("Description", "Account Description"),
        _pick("Rating", "Account Rating", RATINGS),
        _text("Site", "Account Site", 80),
        *system_tail(["User"]),
        _date("LastActivityDate", "Last Activity", "N"),
        *_viewed_dates(),
        _text("Jigsaw", "Data.com Key", 20),
        _text("JigsawCompanyId", "Jigsaw Company ID", 20, "N", relationship_name="JigsawCompany"),
        _pick("CleanStatus", "Clean Status", CLEAN_STATUS, restricted_picklist=True),
        _pick("AccountSource", "Account Source", LEAD_SOURCES),
        _text("DunsNumber", "D-U-N-S Number", 9),
        _text("Tradestyle", "Tradestyle", 255),
        _text("NaicsCode", "NAICS Code", 8),
        _text("NaicsDesc", "NAICS Description", 120),
        _text("YearStarted", "Year Started", 4),
        _text("SicDesc", "SIC Description", 80),
    ]
    return _obj(
        "Account",
        "Account",
        "Accounts",
        "001",
        fields,
        mergeable=True,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=[*_owned_scopes("Accounts"), ("team", "My team's accounts")],
    )


def _person_name(salutation: bool = True) -> list[FieldDef]:
    """The person-name fields: ``LastName``, ``FirstName``, ``Salutation`` (Contact and Lead,
    not User) and the read-only compound ``Name``."""
    parts = [
        _text(
            "LastName",
            "Last Name",
            80,
            "CU",
            compound_field_name="Name",
            extra_type_info="personname",
        ),
        _text(
            "FirstName", "First Name", 40, compound_field_name="Name", extra_type_info="personname"
        ),
    ]
    if salutation:
        parts.append(
            _pick(
                "Salutation",
                "Salutation",
                SALUTATIONS,
                compound_field_name="Name",
                extra_type_info="personname",
            )
        )
    return [
        *parts,
        _text(
            "Name",
            "Full Name",
            121,
            "n",
            createable=False,
            updateable=False,
            extra_type_info="personname",
        ),
    ]


def _contact() -> SObjectDef:
    fields = [
        *system_head("Contact ID"),
        _ref("MasterRecordId", "Master Record ID", ["Contact"], "MasterRecord", "N"),
        _ref("AccountId", "Account ID", ["Account"], "Account", child="Contacts"),
        *_person_name(),
        *address_fields("Other", "Other"),
        *address_fields("Mailing", "Mailing"),
        _f("Phone", "phone", "Business Phone", 40),
        _f("Fax", "phone", "Business Fax", 40),
        _f("MobilePhone", "phone", "Mobile Phone", 40),
        _f("HomePhone", "phone", "Home Phone", 40),
        _f("OtherPhone", "phone", "Other Phone", 40),
        _f("AssistantPhone", "phone", "Asst. Phone", 40),
        _ref("ReportsToId", "Reports To ID", ["Contact"], "ReportsTo"),
        _f("Email", "email", "Email", 80, "NCUI"),
        _text("Title", "Title", 128),
        _text("Department", "Department", 80),
        _text("AssistantName", "Assistant's Name", 40),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES, 255),
        _date("Birthdate", "Birthdate"),
        _long_text("Description", "Contact Description"),
        *system_tail(["User"]),
        _date("LastActivityDate", "Last Activity", "N"),
        _dt("LastCURequestDate", "Last Stay-in-Touch Request Date"),
        _dt("LastCUUpdateDate", "Last Stay-in-Touch Save Date"),
        *_viewed_dates(),
        _text("EmailBouncedReason", "Email Bounced Reason", 255),
        _dt("EmailBouncedDate", "Email Bounced Date", "NCU"),
        _bool("IsEmailBounced", "Is Email Bounced", "D"),
        _f("PhotoUrl", "url", "Photo URL", 255, "N", extra_type_info="imageurl"),
        _text("Jigsaw", "Data.com Key", 20),
        _text("JigsawContactId", "Jigsaw Contact ID", 20, "N", relationship_name="JigsawContact"),
        _pick("CleanStatus", "Clean Status", CLEAN_STATUS, restricted_picklist=True),
    ]
    return _obj(
        "Contact",
        "Contact",
        "Contacts",
        "003",
        fields,
        mergeable=True,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=_owned_scopes("Contacts"),
    )


def _lead() -> SObjectDef:
    fields = [
        *system_head("Lead ID"),
        _ref("MasterRecordId", "Master Record ID", ["Lead"], "MasterRecord", "N"),
        *_person_name(),
        _text("Title", "Title", 128),
        _text("Company", "Company", 255, "CU"),
        *address_fields("", "", compound="Address"),
        _f("Phone", "phone", "Phone", 40),
        _f("MobilePhone", "phone", "Mobile Phone", 40),
        _f("Fax", "phone", "Fax", 40),
        _f("Email", "email", "Email", 80, "NCUI"),
        _f("Website", "url", "Website", 255),
        _f("PhotoUrl", "url", "Photo URL", 255, "N", extra_type_info="imageurl"),
        _long_text("Description", "Description"),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES, 255),
        _pick(
            "Status",
            "Status",
            [
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ],
            255,
            "CUD",
            default_value="Open - Not Contacted",
        ),
        _pick("Industry", "Industry", INDUSTRIES, 255),
        _pick("Rating", "Rating", RATINGS, 255),
        _num("AnnualRevenue", "currency", "Annual Revenue", 18, 0),
        _int("NumberOfEmployees", "Employees"),
        *system_tail(["Group", "User"]),
        _bool("IsConverted", "Converted", "CD"),
        _date("ConvertedDate", "Converted Date", "N"),
        _ref("ConvertedAccountId", "Converted Account ID", ["Account"], "ConvertedAccount", "N"),
        _ref("ConvertedContactId", "Converted Contact ID", ["Contact"], "ConvertedContact", "N"),
        _ref(
            "ConvertedOpportunityId",
            "Converted Opportunity ID",
            ["Opportunity"],
            "ConvertedOpportunity",
            "N",
        ),
        _bool("IsUnreadByOwner", "Unread By Owner", "CUD"),
        _date("LastActivityDate", "Last Activity", "N"),
        *_viewed_dates(),
        _text("Jigsaw", "Data.com Key", 20),
        _text("JigsawContactId", "Jigsaw Contact ID", 20, "N", relationship_name="JigsawContact"),
        _pick("CleanStatus", "Clean Status", CLEAN_STATUS, restricted_picklist=True),
        _text("CompanyDunsNumber", "Company D-U-N-S Number", 9),
        _text("EmailBouncedReason", "Email Bounced Reason", 255, "NU"),
        _dt("EmailBouncedDate", "Email Bounced Date", "NU"),
    ]
    # Lead fields sit between the system head and tail in Salesforce's order; the audit fields
    # come right after OwnerId, as recorded.
    return _obj(
        "Lead",
        "Lead",
        "Leads",
        "00Q",
        fields,
        mergeable=True,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=_owned_scopes("Leads"),
    )


def _opportunity() -> SObjectDef:
    fields = [
        *system_head("Opportunity ID"),
        _ref("AccountId", "Account ID", ["Account"], "Account", child="Opportunities"),
        _bool("IsPrivate", "Private"),
        _text("Name", "Name", 120, "CUIn"),
        _long_text("Description", "Description"),
        _pick("StageName", "Stage", OPPORTUNITY_STAGES, 255, "CU"),
        _num("Amount", "currency", "Amount", 18, 2),
        _num("Probability", "percent", "Probability (%)", 3, 0, "NCUD"),
        _num("ExpectedRevenue", "currency", "Expected Amount", 18, 2, "N"),
        _num("TotalOpportunityQuantity", "double", "Quantity", 18, 2),
        _date("CloseDate", "Close Date", "CU"),
        _pick(
            "Type",
            "Opportunity Type",
            [
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ],
            255,
        ),
        _text("NextStep", "Next Step", 255),
        _pick("LeadSource", "Lead Source", LEAD_SOURCES, 255),
        _bool("IsClosed", "Closed", "D"),
        _bool("IsWon", "Won", "D"),
        _pick(
            "ForecastCategory",
            "Forecast Category",
            ["Omitted", "Pipeline", "BestCase", "MostLikely", "Forecast", "Closed"],
            40,
            "",
            restricted_picklist=True,
        ),
        _pick(
            "ForecastCategoryName",
            "Forecast Category",
            ["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
            255,
            "NCUD",
            restricted_picklist=True,
        ),
        _bool("HasOpportunityLineItem", "Has Line Item", "D"),
        *system_tail(["User"]),
        _date("LastActivityDate", "Last Activity", "N"),
        _dt("LastStageChangeDate", "Last Stage Change Date"),
        _int("FiscalQuarter", "Fiscal Quarter", flags="N", compound_field_name="Fiscal"),
        _int("FiscalYear", "Fiscal Year", flags="N", compound_field_name="Fiscal"),
        _text("Fiscal", "Fiscal Period", 6, "N", byte_length=6),
        _ref("ContactId", "Contact ID", ["Contact"], None, "NC"),
        *_viewed_dates(),
        _bool("HasOpenActivity", "Has Open Activity", "D", filterable=False, sortable=False),
        _bool("HasOverdueTask", "Has Overdue Task", "D", filterable=False, sortable=False),
    ]
    return _obj(
        "Opportunity",
        "Opportunity",
        "Opportunities",
        "006",
        fields,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=[*_owned_scopes("Opportunities"), ("team", "My team's opportunities")],
    )


def _case() -> SObjectDef:
    fields = [
        *system_head("Case ID"),
        _ref("MasterRecordId", "Master Record ID", ["Case"], "MasterRecord", "N"),
        _text(
            "CaseNumber",
            "Case Number",
            30,
            "IDn",
            createable=False,
            updateable=False,
            auto_number=True,
            auto_number_format="{00000000}",
            groupable=False,
        ),
        _ref("ContactId", "Contact ID", ["Contact"], "Contact", child="Cases"),
        _ref("AccountId", "Account ID", ["Account"], "Account", child="Cases"),
        _ref("ParentId", "Parent Case ID", ["Case"], "Parent", child="Cases"),
        _text("SuppliedName", "Name", 80),
        _f("SuppliedEmail", "email", "Email Address", 80),
        _text("SuppliedPhone", "Phone", 40),
        _text("SuppliedCompany", "Company", 80),
        _pick(
            "Type", "Case Type", ["Mechanical", "Electrical", "Electronic", "Structural", "Other"]
        ),
        _pick("Status", "Status", CASE_STATUSES, 40, "NCUD", default_value="New"),
        _pick(
            "Reason",
            "Case Reason",
            [
                "Installation",
                "Equipment Complexity",
                "Performance",
                "Breakdown",
                "Equipment Design",
                "Feedback",
                "Other",
            ],
        ),
        _pick("Origin", "Case Origin", ["Phone", "Email", "Web"]),
        _text("Subject", "Subject", 255),
        _pick(
            "Priority", "Priority", ["High", "Medium", "Low"], 40, "NCUD", default_value="Medium"
        ),
        _long_text("Description", "Description"),
        _bool("IsClosed", "Closed", "D"),
        _dt("ClosedDate", "Closed Date"),
        _bool("IsEscalated", "Escalated"),
        *system_tail(["Group", "User"]),
        _f("ContactPhone", "phone", "Contact Phone", 40, "N"),
        _f("ContactMobile", "phone", "Contact Mobile", 40, "N"),
        _f("ContactEmail", "email", "Contact Email", 80, "N"),
        _f("ContactFax", "phone", "Contact Fax", 40, "N"),
        _long_text(
            "Comments",
            "Internal Comments",
            4000,
            byte_length=4000,
            sortable=True,
            aggregatable=True,
        ),
        *_viewed_dates(),
    ]
    return _obj(
        "Case",
        "Case",
        "Cases",
        "500",
        fields,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=[*_owned_scopes("Cases"), ("queue", "My queues")],
    )


def _task() -> SObjectDef:
    fields = [
        _id_field("Activity ID"),
        _ref("WhoId", "Name ID", ["Contact", "Lead"], "Who", child="Tasks", name_pointing=True),
        _ref(
            "WhatId",
            "Related To ID",
            [
                "Account",
                "Asset",
                "Campaign",
                "Case",
                "Contract",
                "Opportunity",
                "Order",
                "Product2",
                "Quote",
                "Solution",
            ],
            "What",
            child="Tasks",
            name_pointing=True,
        ),
        _f(
            "Subject",
            "combobox",
            "Subject",
            255,
            "NCUn",
            picklist_values=["Call", "Send Letter", "Send Quote", "Other"],
            groupable=False,
        ),
        _date("ActivityDate", "Due Date Only", aggregatable=False),
        _pick(
            "Status",
            "Status",
            ["Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"],
            40,
            "CUD",
            default_value="Not Started",
        ),
        _pick("Priority", "Priority", ["High", "Normal", "Low"], 40, "CUD", default_value="Normal"),
        _bool("IsHighPriority", "High Priority", "D"),
        _ref(
            "OwnerId",
            "Assigned To ID",
            ["User"],
            "Owner",
            "CUD",
            name_pointing=True,
            polymorphic_foreign_key=True,
        ),
        _long_text("Description", "Description", extra_type_info=None),
        _bool("IsDeleted", "Deleted", "D"),
        _ref("AccountId", "Account ID", ["Account"], "Account", "N", child="Tasks"),
        _bool("IsClosed", "Closed", "D"),
        *system_tail(),
        _bool("IsArchived", "Archived", "D"),
        _int("CallDurationInSeconds", "Call Duration"),
        _pick(
            "CallType", "Call Type", ["Internal", "Inbound", "Outbound"], restricted_picklist=True
        ),
        _text("CallDisposition", "Call Result", 255),
        _dt("ReminderDateTime", "Reminder Date/Time", "NCU"),
        _bool("IsReminderSet", "Reminder Set"),
        _pick(
            "TaskSubtype",
            "Task Subtype",
            ["Task", "Email", "ListEmail", "Cadence", "Call"],
            40,
            "NC",
            restricted_picklist=True,
        ),
    ]
    return _obj(
        "Task",
        "Task",
        "Tasks",
        "00T",
        fields,
        feed_enabled=True,
        mru_enabled=False,
        supported_scopes=_owned_scopes("Activities"),
    )


def _user() -> SObjectDef:
    timezones = [
        "America/Los_Angeles",
        "America/New_York",
        "Europe/London",
        "Europe/Paris",
        "Asia/Tokyo",
        "GMT",
    ]
    locales = ["en_US", "en_GB", "fr_FR", "de_DE", "ja_JP"]
    fields = [
        _id_field("User ID"),
        _text("Username", "Username", 80, "CUIQ"),
        *_person_name(salutation=False),
        _text("CompanyName", "Company Name", 80),
        _text("Division", "Division", 80),
        _text("Department", "Department", 80),
        _text("Title", "Title", 80),
        *address_fields("", "", compound="Address"),
        _f("Email", "email", "Email", 128, "CUI"),
        _f("Phone", "phone", "Phone", 40),
        _f("MobilePhone", "phone", "Mobile", 40),
        _text("Alias", "Alias", 8, "CU"),
        _text("CommunityNickname", "Nickname", 40, "CUIQD"),
        _bool("IsActive", "Active", "CUD", default=True),
        _pick("TimeZoneSidKey", "Time Zone", timezones, 40, "CU", restricted_picklist=True),
        _pick("LocaleSidKey", "Locale", locales, 40, "CU", restricted_picklist=True),
        _pick(
            "EmailEncodingKey",
            "Email Encoding",
            ["UTF-8", "ISO-8859-1"],
            40,
            "CU",
            restricted_picklist=True,
        ),
        _pick(
            "LanguageLocaleKey",
            "Language",
            ["en_US", "fr", "de", "ja"],
            40,
            "CU",
            restricted_picklist=True,
        ),
        _text("EmployeeNumber", "Employee Number", 20),
        _ref("ManagerId", "Manager ID", ["User"], "Manager", child="ManagedUsers"),
        _pick(
            "UserType",
            "User Type",
            ["Standard", "PowerPartner", "CsnOnly", "Guest"],
            40,
            "ND",
            restricted_picklist=True,
        ),
        _dt("LastLoginDate", "Last Login"),
        *system_tail(),
    ]
    return _obj(
        "User",
        "User",
        "Users",
        "005",
        fields,
        deletable=False,
        undeletable=False,
        feed_enabled=True,
        mru_enabled=True,
        supported_scopes=[],
    )


def _organization() -> SObjectDef:
    fields = [
        _id_field("Organization ID"),
        _text("Name", "Name", 80, "Un"),
        _text("Division", "Division", 80, "NU"),
        *[replace_flags(f, createable=False) for f in address_fields("", "", compound="Address")],
        _f("Phone", "phone", "Phone", 40, "NU"),
        _text("PrimaryContact", "Primary Contact", 80, "NU"),
        _pick(
            "DefaultLocaleSidKey",
            "Locale",
            ["en_US", "en_GB", "fr_FR"],
            40,
            "U",
            restricted_picklist=True,
        ),
        _pick(
            "LanguageLocaleKey",
            "Language",
            ["en_US", "fr", "de"],
            40,
            "U",
            restricted_picklist=True,
        ),
        _pick(
            "TimeZoneSidKey",
            "Time Zone",
            ["America/Los_Angeles", "GMT"],
            40,
            "U",
            restricted_picklist=True,
        ),
        _pick(
            "OrganizationType",
            "Edition",
            ["Developer Edition", "Enterprise Edition", "Unlimited Edition"],
            40,
            "N",
            restricted_picklist=True,
        ),
        _text("InstanceName", "Instance Name", 5, "N"),
        _bool("IsSandbox", "Is Sandbox", "D"),
        *system_tail(),
    ]
    return _obj(
        "Organization",
        "Organization",
        "Organizations",
        "00D",
        fields,
        createable=False,
        deletable=False,
        undeletable=False,
        searchable=False,
        triggerable=False,
        mru_enabled=False,
        record_types=False,
        url_kinds=SIMPLE_URLS,
    )


def replace_flags(fdef: FieldDef, **changes: Any) -> FieldDef:
    """Return ``fdef`` with some attributes changed (for read-only variants of shared fields)."""
    for key, value in changes.items():
        setattr(fdef, key, value)
    return fdef


def _record_type() -> SObjectDef:
    fields = [
        _id_field("Record Type ID"),
        _text("Name", "Name", 80, "CUn"),
        _text("DeveloperName", "Record Type Name", 80, "CU"),
        _text("NamespacePrefix", "Namespace Prefix", 15, "N"),
        _text("Description", "Description", 255),
        _pick(
            "SobjectType",
            "SObject Type Name",
            ["Account", "Case", "Contact", "Lead", "Opportunity"],
            40,
            "C",
            restricted_picklist=True,
        ),
        _bool("IsActive", "Active", "CUD"),
        _bool("IsPersonType", "Is Person Type", "D"),
        *system_tail(),
    ]
    return _obj(
        "RecordType",
        "Record Type",
        "Record Types",
        "012",
        fields,
        deletable=False,
        undeletable=False,
        searchable=False,
        triggerable=False,
        record_types=False,
        url_kinds=SIMPLE_URLS,
    )


def _group() -> SObjectDef:
    fields = [
        _id_field("Group ID"),
        _text("Name", "Name", 40, "CUn"),
        _text("DeveloperName", "Developer Name", 80, "CUD"),
        _ref("RelatedId", "Related ID", ["User"], "Related", "N"),
        _pick(
            "Type",
            "Type",
            ["Regular", "Role", "Queue", "Organization"],
            40,
            "C",
            restricted_picklist=True,
        ),
        _f("Email", "email", "Email", 255),
        _ref("OwnerId", "Owner ID", ["Organization", "User"], "Owner", "CUD", name_pointing=True),
        _bool("DoesSendEmailToMembers", "Send Email to Members"),
        _bool("DoesIncludeBosses", "Include Bosses"),
        *system_tail(),
    ]
    return _obj(
        "Group",
        "Group",
        "Groups",
        "00G",
        fields,
        undeletable=False,
        searchable=False,
        record_types=False,
        url_kinds=SIMPLE_URLS,
    )


def _attachment() -> SObjectDef:
    fields = [
        *system_head("Attachment ID"),
        _ref(
            "ParentId",
            "Parent ID",
            ATTACHMENT_PARENTS,
            "Parent",
            "C",
            child="Attachments",
            name_pointing=True,
        ),
        _text("Name", "File Name", 255, "CUIn"),
        _bool("IsPrivate", "Private"),
        _text("ContentType", "Content Type", 120),
        _int("BodyLength", "Body Length", flags="N"),
        _f("Body", "base64", "Body", 0, "CU"),
        _ref(
            "OwnerId",
            "Owner ID",
            ["User"],
            "Owner",
            "CUD",
            name_pointing=True,
            polymorphic_foreign_key=True,
        ),
        *[
            replace_flags(
                f,
                name_pointing=f.type == "reference",
                polymorphic_foreign_key=f.type == "reference",
            )
            for f in system_tail()
        ],
        _long_text(
            "Description", "Description", 500, aggregatable=True, filterable=True, sortable=True
        ),
    ]
    return _obj(
        "Attachment",
        "Attachment",
        "Attachments",
        "00P",
        fields,
        undeletable=False,
        searchable=False,
        layoutable=False,
        feed_enabled=False,
        record_types=False,
        url_kinds=("rowTemplate", "describe", "sobject"),
    )


#: Object flags of a system object that SOQL reads and nothing writes: no Bulk query, no search,
#: layout, trigger, replication or record types.
_READ_ONLY_OBJECT: dict[str, Any] = {
    "createable": False,
    "updateable": False,
    "deletable": False,
    "undeletable": False,
    "bulk_queryable": False,
    "searchable": False,
    "layoutable": False,
    "triggerable": False,
    "replicateable": False,
    "record_types": False,
}


def _status_object(name: str, label: str, plural: str, prefix: str) -> SObjectDef:
    """A picklist-status object (CaseStatus...): queryable by SOQL, not by the Bulk API."""
    fields = [
        _id_field(f"{label} ID"),
        _text("MasterLabel", "Master Label", 255, "Nn", createable=False, updateable=False),
        _text("ApiName", "Api Name", 255, "N", createable=False, updateable=False),
        _int("SortOrder", "Sort Order", 9, "N", createable=False, updateable=False),
        _bool("IsDefault", "Is Default", "D", createable=False, updateable=False),
        _bool("IsClosed", "Is Closed", "D", createable=False, updateable=False),
        *[replace_flags(f, createable=False) for f in system_tail()],
    ]
    return _obj(
        name,
        label,
        plural,
        prefix,
        fields,
        **_READ_ONLY_OBJECT,
        url_kinds=SIMPLE_URLS,
    )


def _recently_viewed() -> SObjectDef:
    fields = [
        _id_field("Record ID"),
        _text("Name", "Name", 255, "Nn", createable=False, updateable=False),
        _pick(
            "Type",
            "Type",
            ["Account", "Contact", "Lead", "Opportunity", "Case"],
            40,
            "N",
            createable=False,
            updateable=False,
        ),
        *_viewed_dates(),
    ]
    return _obj(
        "RecentlyViewed",
        "Recently Viewed",
        "Recently Viewed",
        None,
        fields,
        **_READ_ONLY_OBJECT,
        url_kinds=SIMPLE_URLS,
    )


def _uri_event_stream() -> SObjectDef:
    fields = [
        _id_field("Event ID"),
        _dt("EventDate", "Event Date"),
        _text("EventIdentifier", "Event Identifier", 36, "N"),
    ]
    return _obj(
        "UriEventStream",
        "URI Event Stream",
        "URI Event Stream",
        "0Ux",
        fields,
        **_READ_ONLY_OBJECT,
        queryable=False,
        retrieveable=False,
        url_kinds=("rowTemplate", "describe", "sobject"),
    )


def custom_head(
    label: str, name_label: str = "Name", name_type: str = "Text", auto_format: str | None = None
) -> list[FieldDef]:
    """``Id``, ``IsDeleted`` and the name field of a custom object (Text or AutoNumber)."""
    head = system_head("Record ID")
    if name_type == "AutoNumber":
        head.append(
            _text(
                "Name",
                name_label,
                80,
                "Dn",
                createable=False,
                updateable=False,
                auto_number=True,
                auto_number_format=auto_format or "{0}",
                id_lookup=True,
            )
        )
    else:
        head.append(_text("Name", name_label, 80, "NCUIn"))
    return head


def custom_tail(owner: bool = True) -> list[FieldDef]:
    """OwnerId (unless the object is a master-detail child) and the audit fields."""
    return system_tail(["Group", "User"] if owner else None)


def _custom_obj(
    name: str, label: str, plural: str, prefix: str, fields: list[FieldDef], **kw: Any
) -> SObjectDef:
    kw.setdefault("supported_scopes", _owned_scopes(plural))
    return _obj(
        name, label, plural, prefix, fields, custom=True, mergeable=False, triggerable=True, **kw
    )


def _store() -> SObjectDef:
    fields = [
        *custom_head("Store", "Store Name"),
        *custom_tail(),
        *_viewed_dates(),
        *location_fields("Location__c", "Location", scale=6),
        _text("Store_Code__c", "Store Code", 20, "NCUEQ", custom=True),
        _f("Opened__c", "date", "Opened", 0, "NCU", custom=True),
    ]
    return _custom_obj("Store__c", "Store", "Stores", "a01", fields)


def _type_sample() -> SObjectDef:
    c: dict[str, Any] = {"custom": True}
    fields = [
        *custom_head("Type Sample"),
        *custom_tail(),
        _ref("Account__c", "Account", ["Account"], "Account__r", child="Type_Samples__r", **c),
        _text("Text__c", "Text", 255, **c),
        _long_text("Long_Text__c", "Long Text", 32768, **c),
        _long_text(
            "Rich_Text__c",
            "Rich Text",
            32768,
            extra_type_info="richtextarea",
            html_formatted=True,
            **c,
        ),
        _pick(
            "Picklist__c",
            "Picklist",
            ["Alpha", "Beta", "Gamma"],
            255,
            restricted_picklist=True,
            **c,
        ),
        _f(
            "Multi_Picklist__c",
            "multipicklist",
            "Multi Picklist",
            4099,
            picklist_values=["Red", "Green", "Blue"],
            restricted_picklist=True,
            **c,
        ),
        _f("Combobox__c", "combobox", "Combobox", 255, picklist_values=["One", "Two"], **c),
        _f("Email__c", "email", "Email", 80, **c),
        _f("Phone__c", "phone", "Phone", 40, **c),
        _f("Url__c", "url", "URL", 255, **c),
        _f("Encrypted__c", "encryptedstring", "Encrypted", 175, mask="X", mask_type="all", **c),
        _bool("Checkbox__c", "Checkbox", **c),
        _int("Int__c", "Int", 9, **c),
        _f("Long__c", "long", "Long", 0, digits=18, **c),
        _num("Double__c", "double", "Double", 18, 4, **c),
        _num("Currency__c", "currency", "Currency", 16, 2, **c),
        _num("Percent__c", "percent", "Percent", 5, 2, **c),
        _date("Date__c", "Date", **c),
        _f("DateTime__c", "datetime", "Date Time", 0, "NCU", **c),
        _f("Time__c", "time", "Time", 0, "NCU", **c),
        _f("Blob__c", "base64", "Blob", 0, "NCU", **c),
        _f("Any__c", "anyType", "Any", 0, "NCU", **c),
        *address_fields("Address", "Address", compound="Address__c", custom=True),
        *location_fields("Location__c", "Location"),
        _f("Vector__c", "vector", "Vector", 0, "NCU", **c),
        _text("Ext_Id__c", "External Id", 64, "NCUEQ", **c),
        _num(
            "Formula__c",
            "double",
            "Formula",
            18,
            4,
            "NK",
            createable=False,
            updateable=False,
            calculated_formula="Double__c * 2",
            **c,
        ),
    ]
    return _custom_obj("Type_Sample__c", "Type Sample", "Type Samples", "a02", fields)


def standard_catalog() -> Catalog:
    """A fresh catalog of the standard objects this emulator models, plus its two custom objects.

    Each call builds new definitions, so callers may add fields without affecting other orgs.
    """
    return Catalog(
        [
            _account(),
            _contact(),
            _lead(),
            _opportunity(),
            _case(),
            _task(),
            _user(),
            _organization(),
            _record_type(),
            _group(),
            _attachment(),
            _status_object("CaseStatus", "Case Status Value", "Case Status Values", "01J"),
            _status_object("TaskStatus", "Task Status Value", "Task Status Values", "01K"),
            _recently_viewed(),
            _uri_event_stream(),
            _store(),
            _type_sample(),
        ]
    )


# ------------------------------------------------------------------------------------------------
# Salesforce DX metadata source format: objects/X/X.object-meta.xml and objects/X/fields/*.xml
# ------------------------------------------------------------------------------------------------

_MD_NS = "{http://soap.sforce.com/2006/04/metadata}"


class MetadataError(ValueError):
    """A metadata source file that cannot be turned into a definition (names the file)."""


def _xml_root(path: Path) -> ElementTree.Element:
    """Parse ``path`` with defusedxml (entity expansion and external entities refused)."""
    try:
        return defused_parse(path).getroot()
    except (ElementTree.ParseError, DefusedXmlException) as exc:
        raise MetadataError(f"{path}: not valid metadata XML: {exc}") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ElementTree.Element, name: str) -> ElementTree.Element | None:
    for sub in elem:
        if _local(sub.tag) == name:
            return sub
    return None


def _text_of(elem: ElementTree.Element, name: str, default: str | None = None) -> str | None:
    sub = _child(elem, name)
    if sub is None or sub.text is None:
        return default
    return sub.text.strip()


def _flag(elem: ElementTree.Element, name: str, default: bool = False) -> bool:
    value = _text_of(elem, name)
    return default if value is None else value.lower() == "true"


def _int_of(elem: ElementTree.Element, name: str, default: int) -> int:
    value = _text_of(elem, name)
    return default if value is None or not value.strip() else int(float(value))


def _picklist(elem: ElementTree.Element) -> tuple[list[str], dict[str, str], str | None, bool]:
    """Values, labels, the default value and whether the set is restricted, from ``valueSet``."""
    values: list[str] = []
    labels: dict[str, str] = {}
    default: str | None = None
    value_set = _child(elem, "valueSet")
    restricted = False
    if value_set is None:
        return values, labels, default, restricted
    restricted = _flag(value_set, "restricted")
    definition = _child(value_set, "valueSetDefinition")
    if definition is None:
        return values, labels, default, restricted
    for value in definition:
        if _local(value.tag) != "value":
            continue
        full_name = _text_of(value, "fullName")
        if full_name is None:
            continue
        values.append(full_name)
        label = _text_of(value, "label")
        if label and label != full_name:
            labels[full_name] = label
        if _flag(value, "default"):
            default = full_name
    return values, labels, default, restricted


def _relationship_stem(name: str) -> str:
    return name[:-3] if name.endswith("__c") else name


def _summary_type(catalog: Catalog, elem: ElementTree.Element) -> tuple[str, int, int]:
    """The describe type of a roll-up summary: COUNT is a number, SUM/MIN/MAX follow the field."""
    operation = (_text_of(elem, "summaryOperation") or "count").lower()
    summarized = _text_of(elem, "summarizedField")
    if operation != "count" and summarized and "." in summarized:
        obj_name, field_name = summarized.split(".", 1)
        obj = catalog.get(obj_name)
        target = obj.field(field_name) if obj else None
        if target is not None and target.type in ("currency", "date", "datetime", "percent"):
            return target.type, target.precision, target.scale
        if target is not None and target.type in NUMBER_TYPES:
            return "double", 18, target.scale
    return "double", 18, 0


def field_from_metadata(
    catalog: Catalog, obj: SObjectDef, elem: ElementTree.Element, source: Path
) -> list[FieldDef]:
    """Turn one ``CustomField`` element into the field definitions Salesforce would describe.

    Returns several definitions for a Location field (the compound and its two components).
    """
    name = _text_of(elem, "fullName") or source.name.split(".", 1)[0]
    md_type = _text_of(elem, "type")
    label = _text_of(elem, "label") or name.replace("__c", "").replace("_", " ")
    custom = name.endswith("__c")
    required = _flag(elem, "required")
    formula = _text_of(elem, "formula")
    common: dict[str, Any] = {
        "custom": custom,
        "external_id": _flag(elem, "externalId"),
        "unique": _flag(elem, "unique"),
        "case_sensitive": _flag(elem, "caseSensitive"),
        "inline_help_text": _text_of(elem, "inlineHelpText"),
    }
    common["id_lookup"] = common["external_id"]
    nillable = not required
    length = _int_of(elem, "length", 0)
    precision = _int_of(elem, "precision", 18)
    scale = _int_of(elem, "scale", 0)

    def make(type_: str, **kw: Any) -> FieldDef:
        attrs = dict(common)
        attrs.update(kw)
        attrs.setdefault("nillable", nillable)
        if formula is not None:
            attrs.update(
                calculated=True,
                createable=False,
                updateable=False,
                nillable=True,
                calculated_formula=formula,
                external_id=False,
                id_lookup=False,
            )
        return FieldDef(name=name, type=type_, label=label, **attrs)

    if md_type is None:
        raise MetadataError(f"{source}: field {obj.name}.{name} has no <type>")
    if md_type == "Text":
        if formula is not None:
            return [make("string", length=1300)]
        return [make("string", length=length or 255)]
    if md_type == "TextArea":
        return [make("textarea", length=255, extra_type_info="plaintextarea")]
    if md_type == "LongTextArea":
        return [make("textarea", length=length or 32768, extra_type_info="plaintextarea")]
    if md_type == "Html":
        return [
            make(
                "textarea",
                length=length or 32768,
                extra_type_info="richtextarea",
                html_formatted=True,
            )
        ]
    if md_type == "EncryptedText":
        return [
            make(
                "encryptedstring",
                length=length or 175,
                mask=_text_of(elem, "maskChar"),
                mask_type=_text_of(elem, "maskType"),
            )
        ]
    if md_type in ("Number", "Currency", "Percent"):
        type_ = {"Number": "double", "Currency": "currency", "Percent": "percent"}[md_type]
        return [make(type_, precision=precision, scale=scale)]
    if md_type == "Checkbox":
        checked = (_text_of(elem, "defaultValue") or "false").lower() == "true"
        if formula is not None:
            return [make("boolean", default_value=None)]
        return [make("boolean", nillable=False, defaulted_on_create=True, default_value=checked)]
    if md_type in ("Date", "DateTime", "Time", "Email", "Phone", "Url"):
        type_ = {
            "Date": "date",
            "DateTime": "datetime",
            "Time": "time",
            "Email": "email",
            "Phone": "phone",
            "Url": "url",
        }[md_type]
        length = {"email": 80, "phone": 40, "url": 255}.get(type_, 0)
        return [make(type_, length=length)]
    if md_type in ("Picklist", "MultiselectPicklist"):
        values, labels, default, restricted = _picklist(elem)
        type_ = "picklist" if md_type == "Picklist" else "multipicklist"
        return [
            make(
                type_,
                length=255 if type_ == "picklist" else 4099,
                picklist_values=values,
                picklist_labels=labels,
                default_value=default,
                defaulted_on_create=default is not None,
                restricted_picklist=restricted,
            )
        ]
    if md_type in ("Lookup", "MasterDetail"):
        existing = obj.field(name)
        target = _text_of(elem, "referenceTo")
        if not custom and existing is not None:
            return []  # a standard lookup's settings (history tracking...) change nothing we model
        if target is None:
            raise MetadataError(f"{source}: lookup {obj.name}.{name} has no <referenceTo>")
        child_name = _text_of(elem, "relationshipName")
        master = md_type == "MasterDetail"
        return [
            make(
                "reference",
                length=18,
                reference_to=[target],
                relationship_name=f"{_relationship_stem(name)}__r" if custom else None,
                child_relationship_name=f"{child_name}__r" if child_name else None,
                nillable=False if master else nillable,
                updateable=_flag(elem, "reparentableMasterDetail") if master else True,
                cascade_delete=master or _text_of(elem, "deleteConstraint") == "Cascade",
                restricted_delete=_text_of(elem, "deleteConstraint") == "Restrict",
                relationship_order=_int_of(elem, "relationshipOrder", 0) if master else None,
                write_requires_master_read=_flag(elem, "writeRequiresMasterRead"),
            )
        ]
    if md_type == "Location":
        geo = location_fields(name, label, scale=_int_of(elem, "scale", 15))
        geo[0].display_location_in_decimal = _flag(elem, "displayLocationInDecimal")
        return geo
    if md_type == "AutoNumber":
        return [
            make(
                "string",
                length=30,
                createable=False,
                updateable=False,
                nillable=False,
                defaulted_on_create=True,
                auto_number=True,
                auto_number_format=_text_of(elem, "displayFormat") or "{0}",
            )
        ]
    if md_type == "Summary":
        type_, s_precision, s_scale = _summary_type(catalog, elem)
        return [
            make(
                type_,
                precision=s_precision,
                scale=s_scale,
                calculated=True,
                createable=False,
                updateable=False,
                nillable=True,
            )
        ]
    raise MetadataError(f"{source}: field {obj.name}.{name} has unsupported type {md_type!r}")


def object_from_metadata(
    catalog: Catalog, name: str, elem: ElementTree.Element | None
) -> SObjectDef:
    """Build a custom object (or platform event) from its ``CustomObject`` element.

    The sharing model decides ownership: ``ControlledByParent`` objects are master-detail
    children and have no ``OwnerId``.
    """
    label = (_text_of(elem, "label") if elem is not None else None) or name[:-3].replace("_", " ")
    plural = (_text_of(elem, "pluralLabel") if elem is not None else None) or f"{label}s"
    if name.endswith("__e"):
        fields = [
            _id_field("Event UUID"),
            _dt("CreatedDate", "Created Date", "D"),
            _ref("CreatedById", "Created By ID", ["User"], "CreatedBy", "D"),
            _text("ReplayId", "Replay ID", 255, "N", createable=False, updateable=False),
        ]
        return SObjectDef(
            name=name,
            label=label,
            label_plural=plural,
            key_prefix=None,
            custom=True,
            fields={f.name: f for f in fields},
            queryable=False,
            updateable=False,
            deletable=False,
            bulk_queryable=False,
            pk_chunking=False,
            retrieveable=False,
            replicateable=False,
            searchable=False,
            layoutable=False,
            triggerable=True,
            undeletable=False,
            record_types=False,
            url_kinds=SIMPLE_URLS,
        )
    sharing = _text_of(elem, "sharingModel") if elem is not None else "ReadWrite"
    name_elem = _child(elem, "nameField") if elem is not None else None
    name_type = (_text_of(name_elem, "type") if name_elem is not None else None) or "Text"
    name_label = (_text_of(name_elem, "label") if name_elem is not None else None) or "Name"
    auto_format = _text_of(name_elem, "displayFormat") if name_elem is not None else None
    owned = sharing != "ControlledByParent"
    fields = [
        *custom_head(label, name_label, name_type, auto_format),
        *custom_tail(owner=owned),
        *_viewed_dates(),
    ]
    bulk = elem is None or _flag(elem, "enableBulkApi", default=True)
    obj = _custom_obj(
        name,
        label,
        plural,
        catalog.next_custom_prefix(),
        [],
        sharing_model=sharing,
        bulk_queryable=bulk,
        bulk_api=bulk,
        searchable=elem is None or _flag(elem, "enableSearch", default=True),
        feed_enabled=elem is not None and _flag(elem, "enableFeeds"),
        supported_scopes=_owned_scopes(plural)
        if owned
        else [("everything", f"All {plural.lower()}")],
    )
    for fdef in fields:
        obj.fields[fdef.name] = fdef
    return obj


def load_metadata_source(catalog: Catalog, directory: str | Path) -> list[str]:
    """Add the objects and fields under ``directory`` (an ``objects/`` folder or one above it).

    Custom objects are created (or replaced) from ``X.object-meta.xml``; their fields, and custom
    fields on standard objects, come from ``fields/*.field-meta.xml``. Standard field entries
    (``Contact/fields/AccountId.field-meta.xml``) only tune settings we do not model and are
    accepted as they are. Objects are created before fields are read, so lookups between new
    objects resolve in any order. Returns the names of the objects touched.
    """
    root = Path(directory)
    object_dirs: list[Path] = []
    candidates = [root] if root.name == "objects" else sorted(root.rglob("objects"))
    for objects in candidates:
        if objects.is_dir():
            object_dirs += sorted(p for p in objects.iterdir() if p.is_dir())
    touched: list[str] = []
    pending: list[tuple[SObjectDef, Path]] = []
    for obj_dir in object_dirs:
        name = obj_dir.name
        meta = obj_dir / f"{name}.object-meta.xml"
        obj = catalog.get(name)
        is_custom = "__" in name
        if is_custom and (obj is None or meta.exists()):
            elem = _xml_root(meta) if meta.exists() else None
            previous = obj
            obj = object_from_metadata(catalog, name, elem)
            if previous is not None:
                obj.key_prefix = previous.key_prefix
            catalog.add(obj)
        if obj is None:
            continue  # a standard object this emulator does not model
        touched.append(obj.name)
        pending.append((obj, obj_dir / "fields"))
    for obj, fields_dir in pending:
        if not fields_dir.is_dir():
            continue
        for path in sorted(fields_dir.glob("*.field-meta.xml")):
            for fdef in field_from_metadata(catalog, obj, _xml_root(path), path):
                obj.add_field(fdef)
    catalog.relink()
    return touched
