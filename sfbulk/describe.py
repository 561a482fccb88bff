"""What the org holds and what Bulk can do with it: describeGlobal, describe, field rules.

:class:`Describer` fetches and caches (per run) the object list and object describes, batching
describes 25 at a time through ``POST /composite/batch`` as singer-io/tap-salesforce does, and
falling back to one ``GET …/describe`` per object where composite is unavailable.

The rules are plain functions over describe dicts, so they can be used and tested without a
client:

- :func:`bulk_unqueryable_reason`: objects a Bulk query cannot read, each with the reason.
- :func:`pk_chunk_parent` / :func:`pk_chunkable`: which objects support PK chunking (§2.9 of the
  API notes: a fixed list, every custom object, and Share/History tables through their parent).
- :func:`readable_fields`: fields a Bulk query can select, with reasons for the others.
- :func:`writable_fields`: fields an ingest operation can set, with reasons for the others.
- :func:`find_field`, :func:`replication_key`, :func:`resolve_column` (``Account.Ext__c`` →
  validated relationship column) and :class:`ColumnResolver`, the target's
  :data:`sfbulk.csvcodec.ColumnResolver`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from sfbulk.csvcodec import Column
from sfbulk.errors import SalesforceError
from sfbulk.schema import compound_parents, field_exclusion_reason

__all__ = [
    "BULK_UNSUPPORTED_OBJECTS",
    "PK_CHUNKING_OBJECTS",
    "ColumnResolver",
    "Describer",
    "FieldSplit",
    "bulk_unqueryable_reason",
    "find_field",
    "pk_chunk_parent",
    "pk_chunkable",
    "readable_fields",
    "replication_key",
    "resolve_column",
    "writable_fields",
]

logger = logging.getLogger(__name__)

#: Sub-requests per ``POST /composite/batch`` (Salesforce's maximum).
COMPOSITE_BATCH_SIZE = 25

_NOT_BULK = "not supported by the Bulk API (Salesforce answers INVALIDENTITY)"
_NEEDS_FILTER = ("can only be queried with a filter on a specific record or user, which a full "
                 "Bulk extract does not have")
_NOT_QUERYABLE_ALONE = "cannot be queried on its own (it is only reachable through its parent)"

#: Objects a Bulk query cannot extract, with the reason (from singer-io/tap-salesforce and
#: airbyte source-salesforce, which learned them from real orgs).
BULK_UNSUPPORTED_OBJECTS: dict[str, str] = {
    **{name: _NOT_BULK for name in (
        "AcceptedEventRelation", "AssetTokenEvent", "AttachedContentNote", "CaseStatus",
        "ContractStatus", "DeclinedEventRelation", "EventWhoRelation",
        "FieldSecurityClassification",
        "OrderStatus", "PartnerRole", "QuoteTemplateRichTextData", "RecentlyViewed",
        "ServiceAppointmentStatus", "ShiftStatus", "SolutionStatus", "TaskPriority", "TaskStatus",
        "TaskWhoRelation", "UndecidedEventRelation", "WorkOrderLineItemStatus", "WorkOrderStatus",
        "WorkStepStatus",
    )},
    **{name: _NEEDS_FILTER for name in (
        "Announcement", "AppTabMember", "CollaborationGroupRecord", "ColorDefinition",
        "ContentDocumentLink", "ContentFolderItem", "ContentFolderMember", "DataStatistics",
        "EntityParticle", "FieldDefinition", "FieldHistoryArchive", "FlexQueueItem",
        "FlowVariableView", "FlowVersionView", "IconDefinition", "IdeaComment",
        "NetworkUserHistoryRecent", "OwnerChangeOptionInfo", "PicklistValueInfo", "PlatformAction",
        "RecordActionHistory", "RelationshipDomain", "RelationshipInfo", "SearchLayout",
        "SiteDetail", "UserEntityAccess", "UserFieldAccess", "Vote",
    )},
    **{name: _NOT_QUERYABLE_ALONE for name in (
        "ActivityHistory", "AggregateResult", "AttachedContentDocument", "CombinedAttachment",
        "ContentBody", "DataType", "EmailStatus", "FeedLike", "FeedSignal", "FeedTrackedChange",
        "FolderedContentDocument", "ListViewChartInstance", "LookedUpFromActivity", "Name",
        "NoteAndAttachment", "OpenActivity", "OutgoingEmail", "OutgoingEmailRelation",
        "OwnedContentDocument", "ProcessInstanceHistory", "UserRecordAccess",
    )},
}
BULK_UNSUPPORTED_OBJECTS["Attachment"] = (
    "left out of Bulk extraction (as airbyte does): its content is a base64 Body")
_UNSUPPORTED_FOLDED = {name.lower(): reason for name, reason in BULK_UNSUPPORTED_OBJECTS.items()}

#: Standard objects that support PK chunking (Bulk API guide v66); custom objects always do.
PK_CHUNKING_OBJECTS = frozenset({
    "Account", "AccountContactRelation", "AccountTeamMember", "Asset", "Campaign",
    "CampaignMember", "Case", "CaseComment", "Contact", "ContentVersion", "Contract",
    "EmailMessage", "Event", "FeedItem", "Lead", "LoginHistory", "Opportunity",
    "OpportunityContactRole", "OpportunityHistory", "OpportunityLineItem", "Order", "OrderItem",
    "Pricebook2", "PricebookEntry", "Product2", "Quote", "QuoteLineItem", "Task", "User",
    "UserRole", "WorkOrder", "WorkOrderLineItem",
})
_PK_FOLDED = {name.lower(): name for name in PK_CHUNKING_OBJECTS}

#: Ingest operations and the describe flag that lets a field be set by each.
_WRITE_FLAGS = {"insert": ("createable",), "update": ("updateable",),
                "upsert": ("createable", "updateable")}
_ID_ONLY_OPERATIONS = frozenset({"delete", "hardDelete"})
_UNWRITABLE_TYPES = {
    "address": "compound address field: write its component fields",
    "location": "compound geolocation field: write its Latitude and Longitude",
    "base64": "base64 field: Bulk CSV cannot carry binary data",
}


class FieldSplit(NamedTuple):
    """Describe fields split into those usable for a purpose and the others with reasons."""

    fields: list[dict[str, Any]]
    excluded: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [field["name"] for field in self.fields]


# --------------------------------------------------------------------------------------------------
# Object rules
# --------------------------------------------------------------------------------------------------


def bulk_unqueryable_reason(name: str, entry: Mapping[str, Any] | None = None) -> str | None:
    """Why a Bulk query cannot extract ``name``, or ``None`` when it can.

    Args:
        name: The sObject API name.
        entry: Its describeGlobal entry or describe, when known (for ``queryable``).
    """
    if entry is not None and not entry.get("queryable", True):
        return "not queryable (describe says queryable=false)"
    if name.endswith("ChangeEvent"):
        return "change events are delivered by streaming, not stored for queries"
    if name.endswith("__e"):
        return "platform events are published, not stored for queries"
    return _UNSUPPORTED_FOLDED.get(name.lower())


def pk_chunk_parent(name: str) -> str | None:
    """The object whose Ids chunk a PK-chunked query of ``name``; ``None`` if it cannot be chunked.

    ``Account`` → ``Account``; ``Foo__c`` → ``Foo__c``; ``AccountShare`` and ``AccountHistory``
    → ``Account`` (sent as ``parent=Account``); ``Foo__Share``/``Foo__History`` → ``Foo__c``;
    ``OpportunityFieldHistory`` → ``Opportunity``.
    """
    folded = name.lower()
    if folded in _PK_FOLDED:
        return _PK_FOLDED[folded]
    if folded.endswith("__c"):
        return name
    for suffix in ("__share", "__history"):
        if folded.endswith(suffix):
            return name[: -len(suffix)] + "__c"
    for suffix in ("fieldhistory", "history", "share"):
        if folded.endswith(suffix) and len(folded) > len(suffix):
            parent = _PK_FOLDED.get(folded[: -len(suffix)])
            if parent is not None:
                return parent
    return None


def pk_chunkable(name: str) -> bool:
    """Whether a Bulk query of ``name`` can use PK chunking (directly or through its parent)."""
    return pk_chunk_parent(name) is not None


# --------------------------------------------------------------------------------------------------
# Field rules
# --------------------------------------------------------------------------------------------------


def find_field(describe: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The describe field called ``name`` (exact first, then case-insensitively), or ``None``."""
    fields = describe.get("fields", ())
    for field in fields:
        if field["name"] == name:
            return field
    folded = name.lower()
    for field in fields:
        if field["name"].lower() == folded:
            return field
    return None


def readable_fields(describe: Mapping[str, Any]) -> FieldSplit:
    """The fields a Bulk query can select, in describe order, and why the others cannot be.

    Excluded: compound address and geolocation fields (their components are kept) and base64
    fields. See :func:`sfbulk.schema.field_exclusion_reason`.
    """
    parents = compound_parents(describe)
    kept: list[dict[str, Any]] = []
    excluded: dict[str, str] = {}
    for field in describe.get("fields", ()):
        reason = field_exclusion_reason(field, parents)
        if reason is None:
            kept.append(field)
        else:
            excluded[field["name"]] = reason
    return FieldSplit(kept, excluded)


def writable_fields(describe: Mapping[str, Any], operation: str,
                    external_id_field: str | None = None) -> FieldSplit:
    """The fields an ingest ``operation`` can set, and why the others cannot be.

    Args:
        describe: The object's describe.
        operation: ``insert``, ``update``, ``upsert``, ``delete`` or ``hardDelete``.
        external_id_field: The upsert key (it may be neither createable nor updateable, e.g. Id).

    ``Id`` is writable (as the record key) for update and upsert; delete and hardDelete take
    ``Id`` alone.
    """
    if operation not in _WRITE_FLAGS and operation not in _ID_ONLY_OPERATIONS:
        raise ValueError(f"unknown ingest operation {operation!r}")
    key = external_id_field.lower() if external_id_field else None
    kept: list[dict[str, Any]] = []
    excluded: dict[str, str] = {}
    for field in describe.get("fields", ()):
        name = field["name"]
        if operation in _ID_ONLY_OPERATIONS:
            reason = None if name == "Id" else f"{operation} takes the Id column only"
        elif field.get("type") in _UNWRITABLE_TYPES:
            reason = _UNWRITABLE_TYPES[field["type"]]
        elif name == "Id" and operation in ("update", "upsert"):
            reason = None
        elif key is not None and name.lower() == key:
            reason = None
        elif any(field.get(flag) for flag in _WRITE_FLAGS[operation]):
            reason = None
        else:
            flags = " nor ".join(_WRITE_FLAGS[operation])
            reason = f"read-only for {operation} (neither {flags})" if "nor" in flags else (
                f"read-only for {operation} (not {flags})")
        if reason is None:
            kept.append(field)
        else:
            excluded[name] = reason
    return FieldSplit(kept, excluded)


def replication_key(describe: Mapping[str, Any]) -> str | None:
    """SystemModstamp, else LastModifiedDate, else CreatedDate (as datetimes), else ``None``."""
    names = {field["name"]: field for field in describe.get("fields", ())}
    for candidate in ("SystemModstamp", "LastModifiedDate", "CreatedDate"):
        field = names.get(candidate)
        if field is not None and field.get("type") == "datetime":
            return candidate
    return None


def resolve_column(describe: Mapping[str, Any], key: str,
                   parent_describe: Callable[[str], Mapping[str, Any] | None]) -> Column:
    """Resolve a record key to the ingest column Salesforce expects.

    Args:
        describe: The target object's describe.
        key: A field name in any case (``name`` → ``Name``), or a parent reference by an indexed
            field: ``Account.External_Id__c``, ``Parent__r.Ext__c``, or for a polymorphic lookup
            ``Lead:Who.Email``.
        parent_describe: Returns the describe of a parent object by name (``None`` if unknown).

    Returns:
        The :class:`~sfbulk.csvcodec.Column` with the canonical spelling and the describe type
        used to encode values (for a reference, the parent field's type).

    Raises:
        ValueError: The field or relationship does not exist, the parent field is neither an
            external id nor an id lookup, the reference goes deeper than one level, or a
            polymorphic type prefix is missing, unexpected or not a possible parent.
    """
    obj = describe.get("name", "?")
    if "." not in key:
        if ":" in key:
            raise ValueError(f"{obj}: {key!r} has a type prefix but no relationship field")
        field = find_field(describe, key)
        if field is None:
            raise ValueError(f"{obj} has no field {key!r}")
        return Column(field["name"], field.get("type", "string"))
    prefix, _, path = key.rpartition(":") if ":" in key else ("", "", key)
    relationship, _, target = path.partition(".")
    if "." in target:
        raise ValueError(f"{obj}: {key!r} goes beyond the parent (one level only)")
    reference = _reference_by_relationship(describe, relationship)
    if reference is None:
        raise ValueError(f"{obj} has no relationship {relationship!r} (in {key!r})")
    targets: list[str] = list(reference.get("referenceTo") or [])
    polymorphic = bool(reference.get("polymorphicForeignKey")) or len(targets) > 1
    if polymorphic:
        if not prefix:
            raise ValueError(f"{obj}.{reference['name']} is polymorphic: write {key!r} as "
                             f"Type:{path} with Type among {', '.join(targets)}")
        parent_name = next((t for t in targets if t.lower() == prefix.lower()), None)
        if parent_name is None:
            raise ValueError(f"{obj}.{reference['name']} cannot point to {prefix!r} "
                             f"(it points to {', '.join(targets)})")
    else:
        if prefix:
            raise ValueError(f"{obj}.{reference['name']} is not polymorphic: drop the "
                             f"{prefix!r} prefix from {key!r}")
        if not targets:
            raise ValueError(f"{obj}.{reference['name']} names no parent object")
        parent_name = targets[0]
    parent = parent_describe(parent_name)
    if parent is None:
        raise ValueError(f"{key!r}: the parent object {parent_name} is not known")
    parent_field = find_field(parent, target)
    if parent_field is None:
        raise ValueError(f"{key!r}: {parent_name} has no field {target!r}")
    if not (parent_field.get("externalId") or parent_field.get("idLookup")):
        raise ValueError(f"{key!r}: {parent_name}.{parent_field['name']} is neither an external "
                         "id nor an id lookup field, so it cannot identify the parent")
    name = f"{reference['relationshipName']}.{parent_field['name']}"
    if polymorphic:
        name = f"{parent_name}:{name}"
    return Column(name, parent_field.get("type", "string"))


def _reference_by_relationship(describe: Mapping[str, Any],
                               relationship: str) -> dict[str, Any] | None:
    folded = relationship.lower()
    for field in describe.get("fields", ()):
        if field.get("type") == "reference" and (field.get("relationshipName") or "").lower() \
                == folded:
            return field
    return None


class ColumnResolver:
    """Turns record keys into ingest columns for one object and operation (for the batcher).

    Args:
        describe: The target object's describe.
        operation: The ingest operation (see :func:`writable_fields`).
        parent_describe: Looks up parent describes for relationship columns.
        external_id_field: The upsert key field.
        read_only: ``"reject"`` (the record is refused, naming the field) or ``"ignore"`` (the key
            is dropped quietly: useful when loading records read from another org, which carry
            system fields such as ``CreatedDate``).
        unknown: ``"reject"`` or ``"ignore"`` for keys that are no field of the object.

    Keys starting with ``_sdc_`` (Singer metadata) are always dropped.
    """

    def __init__(
        self,
        describe: Mapping[str, Any],
        operation: str,
        parent_describe: Callable[[str], Mapping[str, Any] | None],
        *,
        external_id_field: str | None = None,
        read_only: str = "reject",
        unknown: str = "reject",
    ) -> None:
        for option, value in (("read_only", read_only), ("unknown", unknown)):
            if value not in ("reject", "ignore"):
                raise ValueError(f"{option} must be 'reject' or 'ignore', not {value!r}")
        self.describe = describe
        self.operation = operation
        self.object = describe.get("name", "?")
        self._parent_describe = parent_describe
        self._read_only = read_only
        self._unknown = unknown
        split = writable_fields(describe, operation, external_id_field)
        self._writable = {field["name"] for field in split.fields}
        self._excluded = split.excluded

    def __call__(self, key: str) -> Column | None:
        if key.startswith("_sdc_"):
            return None
        try:
            column = resolve_column(self.describe, key, self._parent_describe)
        except ValueError:
            if self._unknown == "ignore" and "." not in key and find_field(self.describe,
                                                                           key) is None:
                return None
            raise
        field_name = column.name.rpartition(":")[2].partition(".")[0]
        if "." in column.name:
            reference = _reference_by_relationship(self.describe, field_name)
            field_name = reference["name"] if reference else field_name
        if field_name in self._writable:
            return column
        if self._read_only == "ignore":
            return None
        raise ValueError(f"{self.object}.{field_name} cannot be set by {self.operation}: "
                         f"{self._excluded.get(field_name, 'not writable')}")


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


class RestClient(Protocol):
    """What :class:`Describer` needs of :class:`sfbulk.http.SalesforceClient`."""

    api_version: str

    def rest(self, method: str, path: str, **kwargs: Any) -> Any: ...


class Describer:
    """Fetches object metadata once per run and answers Bulk questions about it.

    Args:
        client: A :class:`sfbulk.http.SalesforceClient` (``.rest`` and ``.api_version``).
        batch_size: Describes per ``composite/batch`` call (at most 25).
    """

    def __init__(self, client: RestClient, *, batch_size: int = COMPOSITE_BATCH_SIZE) -> None:
        if not 1 <= batch_size <= COMPOSITE_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{COMPOSITE_BATCH_SIZE}")
        self.client = client
        self.batch_size = batch_size
        self._lock = threading.RLock()
        self._global: dict[str, dict[str, Any]] | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        self._composite = True

    # -- describeGlobal ---------------------------------------------------------------------

    def global_objects(self) -> dict[str, dict[str, Any]]:
        """Every object of the org (describeGlobal), by API name, in Salesforce's order."""
        with self._lock:
            if self._global is None:
                body = self.client.rest("GET", "/sobjects").json()
                self._global = {entry["name"]: entry for entry in body.get("sobjects", ())}
            return self._global

    def global_entry(self, name: str) -> dict[str, Any] | None:
        """The describeGlobal entry of ``name`` (case-insensitive), or ``None``."""
        objects = self.global_objects()
        entry = objects.get(name)
        if entry is None:
            folded = name.lower()
            entry = next((e for n, e in objects.items() if n.lower() == folded), None)
        return entry

    # -- describe -----------------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        """The describe of one object (cached).

        Raises:
            SalesforceError: The object does not exist (``NOT_FOUND``) or the call failed.
        """
        cached = self._describes.get(name.lower())
        if cached is not None:
            return cached
        body = self.client.rest("GET", f"/sobjects/{name}/describe").json()
        return self._remember(name, body)

    def parent_describe(self, name: str) -> dict[str, Any] | None:
        """Like :meth:`describe`, but ``None`` for an object the org does not have."""
        try:
            return self.describe(name)
        except SalesforceError as exc:
            if exc.status == 404 or exc.code == "NOT_FOUND":
                return None
            raise

    def describe_many(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Describes of several objects, keyed by the names given, fetched 25 per call.

        Raises:
            SalesforceError: An object does not exist, or a call failed.
        """
        wanted = list(dict.fromkeys(names))
        missing: list[str] = []
        seen: set[str] = set()
        for name in wanted:
            folded = name.lower()
            if folded not in self._describes and folded not in seen:
                seen.add(folded)
                missing.append(name)
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start:start + self.batch_size]
            if self._composite and len(chunk) > 1:
                self._describe_batch(chunk)
            else:
                for name in chunk:
                    self.describe(name)
        return {name: self._describes[name.lower()] for name in wanted}

    def _describe_batch(self, names: list[str]) -> None:
        version = self.client.api_version
        body = {
            "haltOnError": False,
            "batchRequests": [
                {"method": "GET", "url": f"/services/data/v{version}/sobjects/{name}/describe"}
                for name in names
            ],
        }
        try:
            response = self.client.rest("POST", "/composite/batch", json_body=body,
                                        idempotent=True)
            results = response.json().get("results")
        except SalesforceError as exc:
            if exc.status in (400, 404, 405, 501) or exc.code in ("NOT_FOUND",
                                                                  "FUNCTIONALITY_NOT_ENABLED"):
                logger.info("composite/batch is unavailable (%s); describing objects one by one",
                            exc)
                self._composite = False
                for name in names:
                    self.describe(name)
                return
            raise
        if not isinstance(results, list) or len(results) != len(names):
            raise SalesforceError(
                f"composite/batch answered {len(results) if isinstance(results, list) else 'no'} "
                f"results for {len(names)} describes", method="POST", path="/composite/batch")
        for name, result in zip(names, results, strict=True):
            status = result.get("statusCode")
            payload = result.get("result")
            if status == 200 and isinstance(payload, dict):
                self._remember(name, payload)
            elif status == 404:
                error = payload[0] if isinstance(payload, list) and payload else {}
                raise SalesforceError(
                    f"{name}: {error.get('message', 'The requested resource does not exist')}",
                    code=error.get("errorCode", "NOT_FOUND"), status=404, method="GET",
                    path=f"/sobjects/{name}/describe")
            else:
                # Halted, throttled or failed sub-request: ask for this one on its own.
                logger.info("composite describe of %s answered %s; describing it alone",
                            name, status)
                self.describe(name)

    def _remember(self, name: str, describe: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._describes[name.lower()] = describe
            canonical = describe.get("name")
            if isinstance(canonical, str):
                self._describes[canonical.lower()] = describe
        return describe

    # -- questions ------------------------------------------------------------------------------

    def bulk_unqueryable_reason(self, name: str) -> str | None:
        """Why a Bulk query cannot extract ``name`` (unknown objects included), or ``None``."""
        entry = self.global_entry(name)
        if entry is None:
            return "the org has no such object"
        return bulk_unqueryable_reason(entry["name"], entry)

    def bulk_queryable(self, name: str) -> bool:
        """Whether a Bulk query can extract ``name``."""
        return self.bulk_unqueryable_reason(name) is None

    def pk_chunkable(self, name: str) -> bool:
        """Whether a Bulk query of ``name`` can use PK chunking."""
        return pk_chunkable(name)

    def readable_fields(self, name_or_describe: str | Mapping[str, Any]) -> FieldSplit:
        """:func:`readable_fields` of an object given by name or describe."""
        describe = (self.describe(name_or_describe) if isinstance(name_or_describe, str)
                    else name_or_describe)
        return readable_fields(describe)

    def column_resolver(self, name: str, operation: str, **options: Any) -> ColumnResolver:
        """A :class:`ColumnResolver` for loading ``name`` (options as for the class)."""
        return ColumnResolver(self.describe(name), operation, self.parent_describe, **options)
