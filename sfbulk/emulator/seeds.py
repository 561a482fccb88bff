"""Deterministic demo data for the emulated org.

``seed_demo(org, n)`` fills an org with ``n`` linked business records (Accounts, Contacts,
Opportunities, Cases split 20/40/25/15), each with an ``External_Id__c`` so targets can upsert,
children pointing at parents, and a few awkward values (multi-line text, quotes and commas,
accents, Greek, emoji) where a CSV or JSON codec could trip. The same ``n`` always produces the
same rows, ids and timestamps for the same clock. Rows are generated in chunks and inserted with
``executemany`` through :meth:`Org.insert_raw`, so a million records take seconds, not minutes.
A few Type_Sample__c and Store__c rows go through the validating ``Org.write`` path.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from sfbulk.emulator.metadata import FieldDef
from sfbulk.emulator.store import Org

__all__ = ["DEMO_OBJECTS", "SPLIT", "demo_counts", "ensure_demo_fields", "seed_demo", "seed_empty"]

#: The objects ``seed_demo`` fills, in load order (parents first), and their share of ``n``.
SPLIT = (("Account", 20), ("Contact", 40), ("Opportunity", 25), ("Case", 15))
DEMO_OBJECTS = tuple(name for name, _ in SPLIT)
_EXTERNAL_PREFIX = {"Account": "ACC", "Contact": "CON", "Opportunity": "OPP", "Case": "CAS"}
_CHUNK = 20_000
_SEED = 20240101

FIRST_NAMES = [
    "Ava", "Liam", "Noah", "Emma", "Olivia", "Mateo", "Sofia", "Lucas", "Mia", "Ethan",
    "Amelia", "James", "Harper", "Benjamin", "Elena", "Hugo", "Chloé", "José", "Zoë", "Björn",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Johnson", "Garcia", "Martinez", "Brown", "Davis", "Lopez", "Wilson", "Anderson",
    "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young", "Müller", "Núñez", "O'Brien",
    "Dubois",
]  # fmt: skip
COMPANY_WORDS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli", "Vandelay",
    "Soylent", "Tyrell", "Cyberdyne", "Aperture", "Pied Piper", "Gringotts", "Oscorp",
]  # fmt: skip
COMPANY_SUFFIXES = ["Inc.", "LLC", "Ltd", "GmbH", "S.A.", "Corp.", "& Co.", "Group"]
CITIES = [
    ("San Francisco", "CA", "94105", "USA", 37.7897, -122.3942),
    ("New York", "NY", "10001", "USA", 40.7506, -73.9972),
    ("Austin", "TX", "78701", "USA", 30.2711, -97.7437),
    ("London", "", "EC1A 1BB", "United Kingdom", 51.5202, -0.0977),
    ("Paris", "", "75001", "France", 48.8625, 2.3364),
    ("Athens", "", "105 57", "Greece", 37.9755, 23.7348),
    ("São Paulo", "SP", "01310-100", "Brazil", -23.5614, -46.6559),
    ("Tokyo", "", "100-0005", "Japan", 35.6812, 139.7671),
]
STREETS = ["Market Street", "Main Street", "Rue de Rivoli", "Οδός Ερμού", "Avenida Paulista",
           "High Street", "Broadway", "Chiyoda"]  # fmt: skip
INDUSTRIES = ["Technology", "Banking", "Retail", "Healthcare", "Manufacturing", "Energy",
              "Education", "Media"]  # fmt: skip
ACCOUNT_TYPES = ["Prospect", "Customer - Direct", "Customer - Channel", "Technology Partner"]
RATINGS = ["Hot", "Warm", "Cold"]
TITLES = ["CEO", "CTO", "VP Sales", "Engineer", "Buyer", "Analyst", "Director of IT", "Manager"]
LEAD_SOURCES = ["Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"]
STAGES = [
    ("Prospecting", 10), ("Qualification", 10), ("Needs Analysis", 20),
    ("Value Proposition", 50), ("Proposal/Price Quote", 75), ("Negotiation/Review", 90),
    ("Closed Won", 100), ("Closed Lost", 0),
]  # fmt: skip
OPPORTUNITY_TYPES = ["New Customer", "Existing Customer - Upgrade",
                     "Existing Customer - Replacement"]  # fmt: skip
CASE_STATUSES = ["New", "Working", "Escalated", "Closed"]
CASE_PRIORITIES = ["High", "Medium", "Low"]
CASE_ORIGINS = ["Phone", "Email", "Web"]
CASE_TYPES = ["Mechanical", "Electrical", "Electronic", "Structural", "Other"]
CASE_SUBJECTS = ["Unit will not start", "Billing question", "Replacement part needed",
                 "Installation help", "Error code E42", "Noise during operation"]  # fmt: skip
# Values that exercise quoting, line breaks and non-ASCII text in every codec.
AWKWARD_TEXTS = [
    "First line\nSecond line\nThird line",
    'He said "ship it", then left, quickly',
    "Windows line\r\nbreaks inside",
    "Ελληνικά: καλημέρα κόσμε",
    "Emoji check 🎉🚀 done",
    "Accents: àéîõü ç ñ ß",
]


class _Random:
    """Fast deterministic draws: ``random.Random.randrange`` costs several calls per draw,
    which dominates generating a million rows."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low))

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


def demo_counts(records: int) -> dict[str, int]:
    """How many rows of each demo object ``seed_demo(org, records)`` creates."""
    counts = {name: records * share // 100 for name, share in SPLIT}
    counts["Case"] += records - sum(counts.values())
    return counts


def _external_id_field() -> FieldDef:
    return FieldDef(
        name="External_Id__c",
        type="string",
        label="External Id",
        length=64,
        custom=True,
        external_id=True,
        id_lookup=True,
        unique=True,
    )


def ensure_demo_fields(org: Org) -> None:
    """Give each demo object its unique ``External_Id__c`` (once; an org may be seeded twice)."""
    for name in DEMO_OBJECTS:
        obj = org.catalog.get(name)
        if obj is not None and obj.field("External_Id__c") is None:
            org.add_field(name, _external_id_field())


def seed_empty(org: Org) -> None:
    """Prepare the demo schema (external id fields) without creating any record."""
    ensure_demo_fields(org)


def _chunks(total: int) -> Iterator[range]:
    for start in range(0, total, _CHUNK):
        yield range(start, min(start + _CHUNK, total))


class _Stamps:
    """Creation times one second apart, ending just before the clock's now, so incremental
    replication has a real range of SystemModstamp values to walk.

    Formatting is done by hand from a per-day prefix: ``strftime`` per record would dominate
    the cost of seeding a million rows.
    """

    def __init__(self, now: dt.datetime, total: int) -> None:
        start = now.astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
        self.start = start - dt.timedelta(seconds=total + 1)
        self.day = self.start.date()
        self.second = self.start.hour * 3600 + self.start.minute * 60 + self.start.second
        self.prefix = f"{self.day.isoformat()}T"

    def next(self) -> str:
        self.second += 1
        if self.second >= 86400:
            self.second -= 86400
            self.day += dt.timedelta(days=1)
            self.prefix = f"{self.day.isoformat()}T"
        hours, rest = divmod(self.second, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{self.prefix}{hours:02d}:{minutes:02d}:{seconds:02d}.000Z"


def _system(stamp: str) -> dict[str, Any]:
    return {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}


def _external(name: str, n: int) -> str:
    return f"{_EXTERNAL_PREFIX[name]}-{n:07d}"


def _account(rng: _Random, n: int, stamp: str) -> dict[str, Any]:
    city, state, postal, country, lat, lon = CITIES[n % len(CITIES)]
    name = f"{COMPANY_WORDS[n % len(COMPANY_WORDS)]} {COMPANY_SUFFIXES[n % 8]} {n + 1}"
    row = {
        "Name": name,
        "Type": ACCOUNT_TYPES[n % len(ACCOUNT_TYPES)],
        "Industry": INDUSTRIES[rng.below(len(INDUSTRIES))],
        "Rating": RATINGS[n % 3],
        "Phone": f"+1 415 555 {rng.below(10000):04d}",
        "Website": f"https://www.{COMPANY_WORDS[n % len(COMPANY_WORDS)].lower().replace(' ', '')}"
        f"{n + 1}.example.com",
        "AnnualRevenue": rng.between(100, 500_000) * 1000,
        "NumberOfEmployees": rng.between(1, 20_000),
        "BillingStreet": f"{rng.between(1, 999)} {STREETS[n % len(STREETS)]}",
        "BillingCity": city,
        "BillingState": state or None,
        "BillingPostalCode": postal,
        "BillingCountry": country,
        "BillingLatitude": round(lat + rng.uniform(-0.01, 0.01), 6),
        "BillingLongitude": round(lon + rng.uniform(-0.01, 0.01), 6),
        "AccountSource": LEAD_SOURCES[n % len(LEAD_SOURCES)],
        **_system(stamp),
    }
    if n % 50 == 7:
        row["Description"] = AWKWARD_TEXTS[(n // 50) % len(AWKWARD_TEXTS)]
    return row


_ASCII: dict[str, str] = {}


_CLOSE_DATES: dict[dt.date, list[str]] = {}


def _close_dates(today: dt.date) -> list[str]:
    """The 730 close dates around ``today`` (a year either side), formatted once."""
    found = _CLOSE_DATES.get(today)
    if found is None:
        found = _CLOSE_DATES[today] = [
            (today + dt.timedelta(days=d)).isoformat() for d in range(-365, 365)
        ]
    return found


def _ascii(text: str) -> str:
    found = _ASCII.get(text)
    if found is None:
        found = _ASCII[text] = _to_ascii(text)
    return found


def _to_ascii(text: str) -> str:
    table = str.maketrans("éëöüñúçàîõßÁÚ", "eeouuncaiosAU")
    return "".join(ch for ch in text.translate(table).lower() if ch.isalnum())


def _contact(rng: _Random, n: int, account_id: str | None, stamp: str) -> dict[str, Any]:
    first = FIRST_NAMES[rng.below(len(FIRST_NAMES))]
    last = LAST_NAMES[rng.below(len(LAST_NAMES))]
    if n % 97 == 3:
        first, last = "Δημήτρης", "Παπαδόπουλος"
    city, state, postal, country, _lat, _lon = CITIES[rng.below(len(CITIES))]
    row = {
        "FirstName": first,
        "LastName": last,
        "AccountId": account_id,
        "Email": f"{_ascii(first) or 'contact'}.{_ascii(last) or 'person'}{n + 1}@example.com",
        "Phone": f"+1 212 555 {rng.below(10000):04d}",
        "Title": TITLES[rng.below(len(TITLES))],
        "LeadSource": LEAD_SOURCES[rng.below(len(LEAD_SOURCES))],
        "Birthdate": f"{1950 + rng.below(50)}-{1 + rng.below(12):02d}-{1 + rng.below(28):02d}",
        "MailingStreet": f"{rng.between(1, 999)} {STREETS[rng.below(len(STREETS))]}",
        "MailingCity": city,
        "MailingState": state or None,
        "MailingPostalCode": postal,
        "MailingCountry": country,
        **_system(stamp),
    }
    if n % 41 == 5:
        row["Description"] = AWKWARD_TEXTS[(n // 41) % len(AWKWARD_TEXTS)]
    return row


def _opportunity(
    rng: _Random, n: int, account_id: str | None, today: dt.date, stamp: str
) -> dict[str, Any]:
    stage, probability = STAGES[rng.below(len(STAGES))]
    closed = stage.startswith("Closed")
    return {
        "Name": f"Deal {n + 1} - {TITLES[n % len(TITLES)]} renewal",
        "AccountId": account_id,
        "StageName": stage,
        "Probability": probability,
        "Amount": f"{rng.between(1_000, 2_000_000)}.{rng.below(100):02d}",
        "CloseDate": _close_dates(today)[rng.below(730)],
        "Type": OPPORTUNITY_TYPES[n % len(OPPORTUNITY_TYPES)],
        "LeadSource": LEAD_SOURCES[n % len(LEAD_SOURCES)],
        "IsClosed": int(closed),
        "IsWon": int(stage == "Closed Won"),
        "ForecastCategory": "Closed"
        if stage == "Closed Won"
        else ("Omitted" if closed else "Pipeline"),
        "ForecastCategoryName": "Closed"
        if stage == "Closed Won"
        else ("Omitted" if closed else "Pipeline"),
        **_system(stamp),
    }


def _case(
    rng: _Random, n: int, account_id: str | None, contact_id: str | None, stamp: str
) -> dict[str, Any]:
    status = CASE_STATUSES[rng.below(len(CASE_STATUSES))]
    row = {
        "Subject": CASE_SUBJECTS[rng.below(len(CASE_SUBJECTS))],
        "AccountId": account_id,
        "ContactId": contact_id,
        "Status": status,
        "IsClosed": int(status == "Closed"),
        "Priority": CASE_PRIORITIES[rng.below(3)],
        "Origin": CASE_ORIGINS[n % 3],
        "Type": CASE_TYPES[n % len(CASE_TYPES)],
        **_system(stamp),
    }
    if n % 13 == 2:
        row["Description"] = AWKWARD_TEXTS[(n // 13) % len(AWKWARD_TEXTS)]
    return row


def seed_demo(org: Org, records: int) -> dict[str, int]:
    """Fill ``org`` with ``records`` deterministic, linked demo records plus a few samples.

    Contacts belong to Accounts round-robin; each Opportunity and Case points at an Account,
    and each Case at a Contact of that Account when there is one. Seeding an org again adds
    more records with the next external ids (the samples are added once). Returns the number
    of rows created per object (the four demo objects, Type_Sample__c and Store__c).
    """
    ensure_demo_fields(org)
    counts = demo_counts(max(records, 0))
    rng = _Random(_SEED)
    now = org.clock()
    stamps = _Stamps(now, sum(counts.values()))
    today = now.date()

    # A second seeding continues the external id numbering instead of repeating it.
    base = {name: org.count(name, include_deleted=True) for name in DEMO_OBJECTS}

    def numbered(name: str, n: int, row: dict[str, Any]) -> dict[str, Any]:
        row["External_Id__c"] = _external(name, base[name] + n + 1)
        return row

    account_ids: list[str] = []
    for chunk in _chunks(counts["Account"]):
        account_ids += org.insert_raw(
            "Account", [numbered("Account", n, _account(rng, n, stamps.next())) for n in chunk]
        )

    def account_of(n: int) -> str | None:
        return account_ids[n % len(account_ids)] if account_ids else None

    contact_ids: list[str] = []
    for chunk in _chunks(counts["Contact"]):
        contact_ids += org.insert_raw(
            "Contact",
            [numbered("Contact", n, _contact(rng, n, account_of(n), stamps.next())) for n in chunk],
        )
    for chunk in _chunks(counts["Opportunity"]):
        org.insert_raw(
            "Opportunity",
            [
                numbered(
                    "Opportunity", n, _opportunity(rng, n, account_of(n), today, stamps.next())
                )
                for n in chunk
            ],
        )
    # Contact n belongs to account n % A, so contact n (when it exists) matches account_of(n).
    for chunk in _chunks(counts["Case"]):
        org.insert_raw(
            "Case",
            [
                numbered(
                    "Case",
                    n,
                    _case(
                        rng,
                        n,
                        account_of(n),
                        contact_ids[n] if n < len(contact_ids) else None,
                        stamps.next(),
                    ),
                )
                for n in chunk
            ],
        )
    counts["Type_Sample__c"] = _seed_type_samples(org, account_ids[:3])
    counts["Store__c"] = _seed_stores(org)
    return counts


def _seed_type_samples(org: Org, account_ids: list[str]) -> int:
    """Three Type_Sample__c rows with a value in every field type, saved through ``write``."""
    if org.catalog.get("Type_Sample__c") is None or org.count("Type_Sample__c", True):
        return 0
    rows: list[dict[str, Any]] = [
        {
            "Name": "All types",
            "Account__c": account_ids[0] if account_ids else None,
            "Text__c": "Plain text, with a comma",
            "Long_Text__c": 'Line 1\nLine 2 with "quotes"\nLine 3 — ünïcödé 🎉',
            "Rich_Text__c": "<p>Hello <b>world</b></p>",
            "Picklist__c": "Beta",
            "Multi_Picklist__c": "Red;Blue",
            "Combobox__c": "Something else",
            "Email__c": "types@example.com",
            "Phone__c": "+44 20 7946 0000",
            "Url__c": "https://example.com/a?b=c&d=e",
            "Encrypted__c": "s3cr3t-value",
            "Checkbox__c": "true",
            "Int__c": "2147483647",
            "Long__c": "9007199254740993",
            "Double__c": "-1234.5678",
            "Currency__c": "9999999999999.99",
            "Percent__c": "12.5",
            "Date__c": "2024-02-29",
            "DateTime__c": "2024-02-29T23:59:59.999+02:00",
            "Time__c": "13:45:30.250Z",
            "Blob__c": b"\x00\x01binary\xff",
            "Any__c": "42",
            "Address__Street__s": "1 Infinite Loop\nBuilding 2",
            "Address__City__s": "Cupertino",
            "Address__PostalCode__s": "95014",
            "Address__Country__s": "USA",
            "Address__Latitude__s": "37.331741",
            "Address__Longitude__s": "-122.030333",
            "Location__Latitude__s": "48.858370",
            "Location__Longitude__s": "2.294481",
            "Vector__c": "[0.1, 0.2, 0.3]",
            "Ext_Id__c": "TS-1",
        },
        {
            "Name": "Edges",
            "Text__c": "Ελληνικά και emoji 🚀",
            "Checkbox__c": "false",
            "Int__c": "-2147483648",
            "Double__c": "1.5E7",
            "Currency__c": "0",
            "Percent__c": "100",
            "Date__c": "1900-01-01",
            "DateTime__c": "1970-01-01T00:00:00Z",
            "Time__c": "00:00:00Z",
            "Ext_Id__c": "TS-2",
        },
        {"Name": "Nulls", "Ext_Id__c": "TS-3"},
    ]
    results = org.write("Type_Sample__c", "insert", rows)
    failed = [r for r in results if not r.success]
    if failed:
        raise RuntimeError(f"seeding Type_Sample__c failed: {failed[0].errors}")
    return len(rows)


def _seed_stores(org: Org) -> int:
    """A few Store__c rows with geolocations, saved through ``write``."""
    if org.catalog.get("Store__c") is None or org.count("Store__c", True):
        return 0
    rows = [
        {
            "Name": f"{city} Store",
            "Store_Code__c": f"ST-{i + 1:03d}",
            "Location__Latitude__s": f"{lat:.6f}",
            "Location__Longitude__s": f"{lon:.6f}",
            "Opened__c": f"{2000 + i}-0{1 + i % 9}-15",
        }
        for i, (city, _s, _p, _c, lat, lon) in enumerate(CITIES)
    ]
    results = org.write("Store__c", "insert", rows)
    failed = [r for r in results if not r.success]
    if failed:
        raise RuntimeError(f"seeding Store__c failed: {failed[0].errors}")
    return len(rows)
