"""Audit of the emulator over real HTTP: PK chunking by parent, enforced size limits, malformed
Bulk 1.0 batch bodies, and the case-safe suffix of ids.

Error texts: ``SALESFORCE-API.md`` records none of the texts asserted here (PK-chunking refusals,
the limit messages, the malformed-body messages are all [UNV] or absent there), so every message
below is the one the emulator sends, pinned exactly so that a change is a deliberate one. Where
the reference does give a text it is said so beside the assertion.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import requests

from sfbulk.ids import is_valid_id, to18
from tests.emulator.test_bulk1 import Client, _local

NS = "http://www.force.com/2009/06/asyncapi/dataload"
FINAL = ("Completed", "Failed", "NotProcessed")


class Bulk(Client):
    """Raw Bulk 1.0 and 2.0 requests against one emulator, nothing hidden: the Bulk 1.0 test
    client, with XML jobs, JSON-or-XML listings and Bulk 2.0 ingest."""

    def __init__(self, server: Any, version: str = "62.0") -> None:
        super().__init__(server, version)
        self.v2 = f"{server.url}/services/data/v{version}/jobs"

    # -- Bulk 1.0 ------------------------------------------------------------------------------

    def get1(self, path: str) -> requests.Response:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response

    def job(self, job: str) -> dict[str, Any]:
        response = self.get1(f"/job/{job}")
        if response.headers["Content-Type"] == "application/json":
            return response.json()
        return {_local(c.tag): c.text for c in ET.fromstring(response.content)}

    def create_job(self, operation: str, obj: str, content_type: str = "CSV",
                   headers: dict[str, str] | None = None, extra: str = "") -> str:
        body = (f'<jobInfo xmlns="{NS}"><operation>{operation}</operation><object>{obj}</object>'
                f"{extra}<contentType>{content_type}</contentType></jobInfo>")
        response = self.post("/job", body, "application/xml", **(headers or {}))
        assert response.status_code == 201, response.text
        return ET.fromstring(response.content).findtext(f"{{{NS}}}id")

    def batches(self, job: str) -> list[dict[str, Any]]:
        response = self.get1(f"/job/{job}/batch")
        if response.headers["Content-Type"] == "application/json":
            return response.json()["batchInfo"]
        return [{_local(c.tag): c.text for c in info} for info in ET.fromstring(response.content)]

    def settle(self, job: str, count: int = 1) -> list[dict[str, Any]]:
        """The job's batch list once it holds ``count`` batches, every one final."""
        deadline = time.monotonic() + 20
        while True:
            listing = self.batches(job)
            if len(listing) == count and all(b["state"] in FINAL for b in listing):
                return listing
            assert time.monotonic() < deadline, listing
            time.sleep(0.02)

    def query_rows(self, job: str, batch: str) -> list[str]:
        """The data lines of every result file of a CSV query batch."""
        listing = ET.fromstring(self.get1(f"/job/{job}/batch/{batch}/result").content)
        rows: list[str] = []
        for result_id in (r.text for r in listing):
            text = self.get1(f"/job/{job}/batch/{batch}/result/{result_id}").text
            rows += text.splitlines()[1:]
        return rows

    # -- Bulk 2.0 ------------------------------------------------------------------------------

    def ingest2(self, operation: str, obj: str, body: bytes | str) -> tuple[dict, str]:
        """One Bulk 2.0 ingest job to its end: its final info and its failedResults."""
        auth = {"Authorization": f"Bearer {self.token}"}
        created = self.http.post(f"{self.v2}/ingest", json={"object": obj, "operation": operation},
                                 headers=auth, timeout=30)
        assert created.status_code == 200, created.text
        job = created.json()["id"]
        data = body.encode() if isinstance(body, str) else body
        put = self.http.put(f"{self.v2}/ingest/{job}/batches", data=data, timeout=30,
                            headers={**auth, "Content-Type": "text/csv"})
        assert put.status_code == 201, put.text
        patch = self.http.patch(f"{self.v2}/ingest/{job}", json={"state": "UploadComplete"},
                                headers=auth, timeout=30)
        assert patch.status_code == 200, patch.text
        deadline = time.monotonic() + 20
        while True:
            info = self.http.get(f"{self.v2}/ingest/{job}", headers=auth, timeout=30).json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.02)
        failed = self.http.get(f"{self.v2}/ingest/{job}/failedResults", headers=auth, timeout=30)
        return info, failed.text


@pytest.fixture
def bulk(emulator) -> Bulk:
    return Bulk(emulator)


def _stored(server: Any, obj: str = "Account", column: str = "Name") -> list[Any]:
    return [row[0] for row in server.state.org.execute_sql(
        f'SELECT "{column}" FROM "{obj}" ORDER BY "{column}"')]


def _failed_batch(bulk: Bulk, job: str, body: bytes | str, content_type: str) -> dict[str, Any]:
    """Send one batch that is expected to fail as a whole; its final batchInfo."""
    batch = bulk.add_batch(job, body, content_type)
    (info,) = bulk.settle(job)
    assert info["id"] == batch
    return info


def _assert_failed(info: dict[str, Any], message: str) -> None:
    assert (info["state"], info["stateMessage"]) == ("Failed", message)
    assert (str(info["numberRecordsProcessed"]), str(info["numberRecordsFailed"])) == ("0", "0")


# ---------------------------------------------------------------------------------------------
# PK chunking with parent=Account


def _accounts_with_contacts(server: Any, per_account: list[int],
                            orphans: int = 0) -> tuple[list[str], dict]:
    """Accounts A0..An (ids ascending), per_account[i] contacts of Ai and ``orphans`` contacts
    of no account; (account ids, {contact id: (name, account id or None)})."""
    org = server.state.org
    accounts = [r.id for r in org.write("Account", "insert",
                                        [{"Name": f"A{i}"} for i in range(len(per_account))])]
    rows = [{"LastName": f"C{i}-{k}", "AccountId": accounts[i]}
            for i, count in enumerate(per_account) for k in range(count)]
    rows += [{"LastName": f"Orphan{k}"} for k in range(orphans)]
    contacts = org.write("Contact", "insert", rows)
    assert all(r.success for r in contacts)
    return accounts, {r.id: (row["LastName"], row.get("AccountId"))
                      for r, row in zip(contacts, rows)}


def test_pk_chunking_by_parent_account_chunks_contacts_by_account_id(emulator, bulk) -> None:
    # Contact supports PK chunking and references Account through AccountId, so parent=Account
    # chunks Account's ids and filters each chunk batch on AccountId.
    accounts, contacts = _accounts_with_contacts(emulator, [2, 1, 3, 0, 2])
    assert accounts == sorted(accounts)
    job = bulk.create_job("query", "Contact",
                          headers={"Sforce-Enable-PKChunking": "chunkSize=2; parent=Account"})
    original = bulk.add_batch(job, "SELECT Id, LastName, AccountId FROM Contact")
    listing = bulk.settle(job, 4)
    # Two accounts a chunk: [A0, A1], [A2, A3], [A4]: 3, 3 and 2 contacts.
    assert [(b["state"], b["numberRecordsProcessed"]) for b in listing] == [
        ("NotProcessed", "0"), ("Completed", "3"), ("Completed", "3"), ("Completed", "2"),
    ]
    assert listing[0]["id"] == original
    assert all(b.get("stateMessage") is None for b in listing)
    expected = [
        sorted(f'"{cid}","{name}","{acct}"' for cid, (name, acct) in contacts.items()
               if acct in chunk)
        for chunk in (accounts[0:2], accounts[2:4], accounts[4:])
    ]
    got = [sorted(bulk.query_rows(job, b["id"])) for b in listing[1:]]
    assert got == expected
    every = [row for rows in got for row in rows]
    assert len(every) == len(set(every)) == len(contacts) == 8


def test_pk_chunking_by_parent_reads_children_without_a_parent_once(emulator, bulk) -> None:
    # Contacts of no Account lie in no Account id range: the first chunk reads them too, so a
    # chunked query returns every row exactly once.
    _, contacts = _accounts_with_contacts(emulator, [1, 2, 1], orphans=2)
    job = bulk.create_job("query", "Contact",
                          headers={"Sforce-Enable-PKChunking": "chunkSize=2; parent=Account"})
    bulk.add_batch(job, "SELECT Id, LastName FROM Contact")
    listing = bulk.settle(job, 3)
    assert [(b["state"], b["numberRecordsProcessed"]) for b in listing] == [
        ("NotProcessed", "0"), ("Completed", "5"), ("Completed", "1")]
    got = [row for b in listing[1:] for row in bulk.query_rows(job, b["id"])]
    assert sorted(got) == sorted(f'"{cid}","{name}"' for cid, (name, _) in contacts.items())


def test_pk_chunking_by_parent_with_no_parents_still_reads_every_row(emulator, bulk) -> None:
    _, contacts = _accounts_with_contacts(emulator, [], orphans=3)
    job = bulk.create_job("query", "Contact",
                          headers={"Sforce-Enable-PKChunking": "chunkSize=2; parent=Account"})
    bulk.add_batch(job, "SELECT Id, LastName FROM Contact")
    listing = bulk.settle(job, 2)
    assert [(b["state"], b["numberRecordsProcessed"]) for b in listing] == [
        ("NotProcessed", "0"), ("Completed", "3")]
    assert sorted(bulk.query_rows(job, listing[1]["id"])) == sorted(
        f'"{cid}","{name}"' for cid, (name, _) in contacts.items())


@pytest.mark.parametrize(("obj", "parent", "message"), [
    # Neither text is in SALESFORCE-API.md (it marks PK-chunking errors [UNV]): the emulator's.
    ("Contact", "Nope", "InvalidBatch : Invalid parent object for PK chunking: Nope"),
    ("Account", "Contact", "InvalidBatch : Account has no reference to Contact to chunk by"),
    # Account.RecordTypeId references RecordType, which does not support PK chunking.
    ("Account", "RecordType", "InvalidBatch : PK chunking is not supported for entity: RecordType"),
])
def test_pk_chunking_parent_refusals(emulator, bulk, obj: str, parent: str, message: str) -> None:
    _accounts_with_contacts(emulator, [1, 1])
    job = bulk.create_job("query", obj,
                          headers={"Sforce-Enable-PKChunking": f"chunkSize=1; parent={parent}"})
    info = _failed_batch(bulk, job, f"SELECT Id FROM {obj}", "text/csv")
    _assert_failed(info, message)


# ---------------------------------------------------------------------------------------------
# Size limits


#: Four fields of 100,001 characters: each within the 131,072 per field, 400,004 in all.
BIG_FIELDS = ("Name", "Description", "BillingStreet", "ShippingStreet")
BIG_VALUE = "r" * 100_001
RECORD_TOO_BIG = "LIMIT_EXCEEDED:Record exceeds the maximum of 400000 characters"


@pytest.mark.parametrize("content_type", ["CSV", "JSON"])
def test_bulk1_record_over_400000_characters_fails_the_row(emulator, bulk, content_type) -> None:
    job = bulk.create_job("insert", "Account", content_type)
    if content_type == "CSV":
        body = (",".join(BIG_FIELDS) + "\n" + ",".join([BIG_VALUE] * 4) + "\nsmall,,,\n")
        batch = bulk.add_batch(job, body, "text/csv")
    else:
        body = json.dumps([dict.fromkeys(BIG_FIELDS, BIG_VALUE), {"Name": "small"}])
        batch = bulk.add_batch(job, body, "application/json")
    (info,) = bulk.settle(job)
    assert (info["state"], str(info["numberRecordsProcessed"]),
            str(info["numberRecordsFailed"])) == ("Completed", "2", "1")
    (small_id,) = _stored(emulator, column="Id")
    if content_type == "CSV":
        assert bulk.result_text(job, batch) == (
            '"Id","Success","Created","Error"\n'
            f'"","false","false","{RECORD_TOO_BIG}:--"\n'
            f'"{small_id}","true","true",""\n'
        )
    else:
        assert json.loads(bulk.result_text(job, batch)) == [
            {"success": False, "created": False, "id": None, "errors": [
                {"statusCode": "LIMIT_EXCEEDED", "fields": [],
                 "message": "Record exceeds the maximum of 400000 characters"}]},
            {"success": True, "created": True, "id": small_id, "errors": []},
        ]
    assert _stored(emulator) == ["small"]


def test_bulk2_record_over_400000_characters_fails_the_row(emulator, bulk) -> None:
    body = ",".join(BIG_FIELDS) + "\n" + ",".join([BIG_VALUE] * 4) + "\nsmall,,,\n"
    info, failed = bulk.ingest2("insert", "Account", body)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 2, 1)
    assert failed == (
        '"sf__Id","sf__Error",' + ",".join(BIG_FIELDS) + "\n"
        f'"","{RECORD_TOO_BIG}:--",' + ",".join([f'"{BIG_VALUE}"'] * 4) + "\n"
    )
    assert _stored(emulator) == ["small"]


def test_bulk1_batch_over_10_million_characters_fails(emulator, bulk) -> None:
    # A plain batch over 10,000,000 bytes is refused on upload (tested in test_bulk1), so the
    # character limit is only reachable through a zip: 10,000,001+ characters of request.txt.
    request = "Name\n" + ("n" * 999 + "\n") * 10_000
    assert len(request) == 10_000_005
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("request.txt", request)
    assert len(buffer.getvalue()) < 1_000_000
    job = bulk.create_job("insert", "Account", "ZIP_CSV")
    info = _failed_batch(bulk, job, buffer.getvalue(), "zip/csv")
    _assert_failed(info, "InvalidBatch : Exceeded max number of characters: 10000000")
    assert emulator.state.org.count("Account") == 0


def _wide(count: int) -> list[str]:
    return [f"F{i}" for i in range(count)]


@pytest.mark.parametrize("content_type", ["CSV", "JSON", "XML"])
def test_bulk1_exceeded_max_number_of_fields(emulator, bulk, content_type: str) -> None:
    names = _wide(5_001)
    if content_type == "CSV":
        body, mime = ",".join(names) + "\n" + ",".join("v" * len(names)) + "\n", "text/csv"
    elif content_type == "JSON":
        body, mime = json.dumps([dict.fromkeys(names, "v")]), "application/json"
    else:
        cells = "".join(f"<{n}>v</{n}>" for n in names)
        body, mime = f'<sObjects xmlns="{NS}"><sObject>{cells}</sObject></sObjects>', (
            "application/xml")
    job = bulk.create_job("insert", "Account", content_type)
    _assert_failed(_failed_batch(bulk, job, body, mime),
                   "InvalidBatch : Exceeded max number of fields: 5000")
    assert emulator.state.org.count("Account") == 0


def test_bulk1_5000_fields_are_not_too_many(emulator, bulk) -> None:
    # The boundary: 5,000 fields pass the count and fail on the first unknown name instead.
    job = bulk.create_job("insert", "Account")
    body = ",".join(_wide(5_000)) + "\n" + ",".join("v" * 5_000) + "\n"
    _assert_failed(_failed_batch(bulk, job, body, "text/csv"),
                   "InvalidBatch : Field name not found : F0")


@pytest.mark.parametrize(("count", "message"), [
    (5_001, "InvalidBatch : Exceeded max number of fields: 5000"),
    (5_000, "InvalidBatch : Field name not found : F0"),
])
def test_bulk2_header_over_5000_fields(emulator, bulk, count: int, message: str) -> None:
    header = ",".join(_wide(count))
    assert len(header) < 32_000  # under the header's character limit, which is checked first
    info, failed = bulk.ingest2("insert", "Account", f"{header}\n{','.join('v' * count)}\n")
    assert (info["state"], info["errorMessage"]) == ("Failed", message)
    assert failed == f'"sf__Id","sf__Error",{header}\n'  # no row reached the failed results
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (0, 0)
    assert emulator.state.org.count("Account") == 0


# ---------------------------------------------------------------------------------------------
# Malformed Bulk 1.0 batch bodies


@pytest.mark.parametrize(("content_type", "mime", "body", "message"), [
    # The text after "Failed to deserialize JSON: " is Python's json error, as the emulator says.
    ("JSON", "application/json", '[{"Name": "J1"}, {"Name": "J2"',
     "InvalidBatch : Failed to deserialize JSON: Expecting ',' delimiter: line 1 column 31 "
     "(char 30)"),
    ("XML", "application/xml", f'<sObjects xmlns="{NS}"><sObject><Name>X1</Name></sObject>',
     "InvalidBatch : Failed to parse XML: no element found: line 1, column 99"),
    ("XML", "application/xml",
     f'<records xmlns="{NS}"><sObject><Name>X2</Name></sObject></records>',
     "InvalidBatch : The root element must be sObjects"),
    ("ZIP_CSV", "zip/csv", "Name\nZ1\n", "InvalidBatch : The batch is not a valid zip file"),
    ("CSV", "text/csv", "Name,Description,name\nD1,d,D2\n",
     "InvalidBatch : Duplicate field name : name"),
])
def test_bulk1_malformed_batch_bodies_fail_the_batch(emulator, bulk, content_type, mime, body,
                                                      message) -> None:
    job = bulk.create_job("insert", "Account", content_type)
    _assert_failed(_failed_batch(bulk, job, body, mime), message)
    assert emulator.state.org.count("Account") == 0
    job_info = bulk.job(job)
    assert (str(job_info["numberBatchesFailed"]), str(job_info["numberBatchesCompleted"])) == (
        "1", "0")


# ---------------------------------------------------------------------------------------------
# The case-safe suffix of ids


#: (recording, an 18-character id it holds), taken from real and documented responses.
RECORDED_IDS = [
    ("rest/record_account.json", "0011Y00003HVMu4QAH"),
    ("rest/record_account.json", "005i00000016PdaAAE"),
    ("bulk2/doc_ingest_successfulResults_numeric_echo.csv", "0018c00002FInboAAD"),
    ("bulk2/doc_query_results.csv", "0015f00000C6beaAAB"),
    ("bulk1/query_result_json_event_typeof.json", "0019H00000H25ppQAB"),
    ("bulk1/query_result_json_event_typeof.json", "00U9H000000RzvRUAS"),
    ("rest/query_contacts.json", "001ak00000OKNPFAA5"),
    ("rest/query_contacts.json", "003ak000003dQCDAA2"),
    ("bulk1/batch_result_upsert_mixed_updated_created.csv", "003P000001avB4lIAE"),
    ("bulk1/doc_batch_result.xml", "001D000000ISUr3IAH"),
    ("soap/login_response_success.xml", "00Di0000000icUBEAY"),
    ("soap/login_response_success.xml", "005i0000002MUqLAAW"),
    ("bulk1/jobinfo_create_response_insert_csv.xml", "7509H0000016HP0QAM"),
    ("bulk1/batchinfo_completed_json.json", "7519H000001XiCzQAK"),
    ("bulk2/ingest_job_info_failed.json", "750ak000009E1YXAA0"),
    ("describe/Account.json", "01254000001upcKAAQ"),
    ("describe/Account_v53.json", "0M01Y0000008QAhSAM"),
]


@pytest.mark.parametrize(("recording", "id18"), RECORDED_IDS)
def test_to18_matches_recorded_ids(fixtures_dir, recording: str, id18: str) -> None:
    assert id18 in (fixtures_dir / "salesforce" / recording).read_text()
    assert to18(id18[:15]) == id18
    assert to18(id18) == id18
    assert is_valid_id(id18) and is_valid_id(id18[:15])
    # The suffix tells the case apart: the same id with one letter's case swapped is another id.
    swapped = id18[:15].swapcase()
    assert not is_valid_id(swapped + id18[15:])


def test_to18_matches_a_pair_recorded_in_one_response(fixtures_dir) -> None:
    # The SOAP login response names the org by its 15-character id in the server URLs and by
    # its 18-character id in organizationId.
    text = (fixtures_dir / "salesforce" / "soap/login_response_success.xml").read_text()
    assert "/services/Soap/c/29.0/00Di0000000icUB/" in text
    assert "<organizationId>00Di0000000icUBEAY</organizationId>" in text
    assert to18("00Di0000000icUB") == "00Di0000000icUBEAY"


def test_emulator_ids_are_case_safe(emulator, bulk) -> None:
    job = bulk.create_job("insert", "Account")
    bulk.add_batch(job, "Name\n" + "".join(f"I{i}\n" for i in range(80)))
    bulk.settle(job)
    accounts = _stored(emulator, column="Id")
    contact_job = bulk.create_job("insert", "Contact")
    bulk.add_batch(contact_job, "LastName,AccountId\n" + "".join(
        f"L{i},{accounts[i]}\n" for i in range(80)))
    bulk.settle(contact_job)
    contacts = _stored(emulator, "Contact", "Id")
    assert (len(accounts), len(contacts)) == (80, 80)
    for prefix, ids in (("001", accounts), ("003", contacts)):
        for record_id in ids:
            assert (record_id[:3], len(record_id)) == (prefix, 18)
            assert to18(record_id[:15]) == record_id
            assert is_valid_id(record_id)
        # Upper-case letters in the counter give suffixes other than AAA.
        assert len({record_id[15:] for record_id in ids}) > 1
