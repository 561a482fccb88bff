"""A fidelity audit of the emulator against its requirement, over real HTTP.

Each test drives the running emulator the way simple-salesforce, salesforce-bulk or our own tap
and target would, and asserts the exact body, state, code or header a real org gives (per
``../shared/SALESFORCE-API.md`` and the recordings). Known defects are kept as strict xfails whose
reason names the defect precisely, so fixing one turns its test into a failure to be promoted.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
import requests

from tests.conftest import emulator_token

NS = "http://www.force.com/2009/06/asyncapi/dataload"

#: The jobInfo elements in XSD order (SALESFORCE-API.md 2.4; WSC reads them in this order).
JOBINFO_ORDER = [
    "id", "operation", "object", "createdById", "createdDate", "systemModstamp", "state",
    "externalIdFieldName", "concurrencyMode", "contentType", "numberBatchesQueued",
    "numberBatchesInProgress", "numberBatchesCompleted", "numberBatchesFailed",
    "numberBatchesTotal", "numberRecordsProcessed", "numberRetries", "apiVersion",
    "assignmentRuleId", "numberRecordsFailed", "totalProcessingTime", "apiActiveProcessingTime",
    "apexProcessingTime",
]  # fmt: skip

#: The batchInfo elements in wire order (SALESFORCE-API.md 2.5).
BATCHINFO_ORDER = [
    "id", "jobId", "state", "stateMessage", "createdDate", "systemModstamp",
    "numberRecordsProcessed", "numberRecordsFailed", "totalProcessingTime",
    "apiActiveProcessingTime", "apexProcessingTime",
]  # fmt: skip


class Client:
    """Just enough of a Bulk/REST client to probe the emulator without our own library."""

    def __init__(self, server: Any, version: str = "62.0") -> None:
        self.url = server.url
        self.token = emulator_token(server)
        self.version = version

    # -- Bulk 1.0 --------------------------------------------------------------------------

    def bulk1(self, method: str, path: str, body: bytes | str | None = None,
              content_type: str = "application/xml", version: str | None = None,
              headers: dict[str, str] | None = None) -> requests.Response:
        sent = {"X-SFDC-Session": self.token, "Content-Type": content_type, **(headers or {})}
        url = f"{self.url}/services/async/{version or self.version}/{path}"
        return requests.request(method, url, data=body, headers=sent, timeout=30)

    def create_job(self, operation: str, obj: str, extra: str = "", content_type: str = "CSV",
                   headers: dict[str, str] | None = None) -> str:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{NS}">'
            f"<operation>{operation}</operation><object>{obj}</object>{extra}"
            f"<contentType>{content_type}</contentType></jobInfo>"
        )
        response = self.bulk1("POST", "job", body, headers=headers)
        assert response.status_code == 201, response.text
        return _xml_value(response.text, "id")

    def add_batch(self, job: str, body: bytes | str, content_type: str = "text/csv") -> str:
        response = self.bulk1("POST", f"job/{job}/batch", body, content_type)
        assert response.status_code == 201, response.text
        return _xml_value(response.text, "id")

    def wait_batches(self, job: str, count: int) -> list[tuple[str, str | None]]:
        """Poll the batch list until ``count`` batches are final; (state, stateMessage) each."""
        deadline = time.monotonic() + 20
        while True:
            text = self.bulk1("GET", f"job/{job}/batch").text
            infos = re.findall(r"<batchInfo>(.*?)</batchInfo>", text, re.S)
            states = [
                (_xml_value(info, "state"), _xml_value(info, "stateMessage", None))
                for info in infos
            ]
            done = [s for s in states if s[0] in ("Completed", "Failed", "NotProcessed")]
            if len(done) >= count and len(done) == len(states):
                return states
            assert time.monotonic() < deadline, states
            time.sleep(0.02)

    def ingest1(self, operation: str, obj: str, csv: bytes | str, extra: str = "") -> str:
        """One CSV batch through Bulk 1.0; returns its result body."""
        job = self.create_job(operation, obj, extra)
        batch = self.add_batch(job, csv)
        self.wait_batches(job, 1)
        return self.bulk1("GET", f"job/{job}/batch/{batch}/result").text

    # -- REST and Bulk 2.0 -----------------------------------------------------------------

    def rest(self, method: str, path: str, version: str | None = None,
             **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = f"{self.url}/services/data/v{version or self.version}/{path}"
        return requests.request(method, url, headers=headers, timeout=30, **kwargs)

    def ingest2(self, operation: str, obj: str, csv: bytes | str,
                **create: Any) -> dict[str, Any]:
        """One Bulk 2.0 ingest job to its end; the final job info and the three result CSVs."""
        response = self.rest("POST", "jobs/ingest", json={
            "object": obj, "operation": operation, **create
        })
        assert response.status_code == 200, response.text
        job = response.json()["id"]
        data = csv.encode() if isinstance(csv, str) else csv
        response = self.rest("PUT", f"jobs/ingest/{job}/batches", data=data,
                             headers={"Content-Type": "text/csv"})
        assert response.status_code == 201, response.text
        response = self.rest("PATCH", f"jobs/ingest/{job}", json={"state": "UploadComplete"})
        assert response.status_code == 200, response.text
        deadline = time.monotonic() + 20
        while True:
            info = self.rest("GET", f"jobs/ingest/{job}").json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.02)
        out: dict[str, Any] = {"info": info}
        for which in ("successfulResults", "failedResults", "unprocessedrecords"):
            out[which] = self.rest("GET", f"jobs/ingest/{job}/{which}").text
        return out

    def query2_create(self, soql: str) -> requests.Response:
        return self.rest("POST", "jobs/query", json={"operation": "query", "query": soql})

    def query2(self, soql: str, max_records: int | None = None) -> list[requests.Response]:
        """Every result page of a Bulk 2.0 query, following ``Sforce-Locator``."""
        response = self.query2_create(soql)
        assert response.status_code == 200, response.text
        job = response.json()["id"]
        deadline = time.monotonic() + 20
        while self.rest("GET", f"jobs/query/{job}").json()["state"] != "JobComplete":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pages = []
        locator: str | None = None
        while True:
            params: dict[str, Any] = {}
            if max_records is not None:
                params["maxRecords"] = max_records
            if locator is not None:
                params["locator"] = locator
            page = self.rest("GET", f"jobs/query/{job}/results", params=params)
            pages.append(page)
            locator = page.headers["Sforce-Locator"]
            if locator == "null":
                return pages


def _xml_value(text: str, tag: str, default: Any = ...) -> Any:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if match is None:
        if default is ...:
            raise AssertionError(f"no <{tag}> in {text!r}")
        return default
    return match.group(1)


def _tags(text: str) -> list[str]:
    """The child element names of a one-level XML body, in order."""
    return re.findall(r"^ <(\w+)>", text, re.M)


@pytest.fixture
def demo(emulator_factory) -> Any:
    """A fresh demo org (20 records) per test: tests here write."""
    return emulator_factory(seed="demo")


@pytest.fixture
def client(demo) -> Client:
    return Client(demo)


# ---------------------------------------------------------------------------------------------
# API versions and sessions


def test_every_version_from_20_to_66_is_served_alike(client: Client):
    bodies = set()
    for major in range(20, 67):
        response = client.rest("GET", "sobjects/Account/describe", version=f"{major}.0")
        assert response.status_code == 200, major
        # The urls inside the describe name the version; everything else is one behaviour.
        bodies.add(response.text.replace(f"v{major}.0", "vNN.0"))
        job = client.bulk1("GET", "job/7505g0000000001AAA", version=f"{major}.0")
        assert _xml_value(job.text, "exceptionCode") == "InvalidJob", major
    assert len(bodies) == 1
    gone = client.rest("GET", "sobjects", version="19.0")
    assert (gone.status_code, gone.json()) == (410, [
        {"message": "The requested resource is no longer available", "errorCode": "GONE"}
    ])
    newer = client.bulk1("GET", "job/7505g0000000001AAA", version="67.0")
    assert (newer.status_code, _xml_value(newer.text, "exceptionCode")) == (400, "InvalidVersion")


def test_an_expired_session_is_refused_in_each_apis_own_form(emulator_factory):
    server = emulator_factory(session_seconds=1)
    client = Client(server)
    time.sleep(1.2)
    expired = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    for path in ("sobjects", "limits", "jobs/query", "jobs/ingest", "query?q=SELECT+Id+FROM+User"):
        response = client.rest("GET", path)
        assert (response.status_code, response.json()) == (401, expired), path
    xml = client.bulk1("GET", "job/7505g0000000001AAA")
    assert (xml.status_code, xml.headers["Content-Type"]) == (400, "application/xml")
    assert xml.text == (
        '<?xml version="1.0" encoding="UTF-8"?><error\n'
        f'   xmlns="{NS}">\n'
        " <exceptionCode>InvalidSessionId</exceptionCode>\n"
        " <exceptionMessage>Invalid session id</exceptionMessage>\n"
        "</error>"
    )
    as_json = client.bulk1("POST", "job", '{"operation":"insert","object":"Account"}',
                           "application/json")
    assert (as_json.status_code, as_json.headers["Content-Type"]) == (400, "application/json")
    assert as_json.json() == {"exceptionCode": "InvalidSessionId",
                              "exceptionMessage": "Invalid session id"}


def test_bulk1_json_error_bodies_are_compact_like_the_recording(client: Client):
    response = client.bulk1("GET", "job/7505g0000000001AAA", content_type="application/json")
    assert response.text == (
        '{"exceptionCode":"InvalidJob","exceptionMessage":"Invalid job id: 7505g0000000001AAA"}'
    )


# ---------------------------------------------------------------------------------------------
# Bulk 1.0 shapes and states


def test_jobinfo_and_batchinfo_elements_in_schema_order(client: Client):
    created = client.bulk1("POST", "job", (
        f'<jobInfo xmlns="{NS}"><operation>upsert</operation><object>Account</object>'
        "<externalIdFieldName>External_Id__c</externalIdFieldName>"
        "<contentType>CSV</contentType></jobInfo>"
    ))
    assert created.status_code == 201
    expected_job = [t for t in JOBINFO_ORDER if t != "assignmentRuleId"]
    assert _tags(created.text) == expected_job
    job = _xml_value(created.text, "id")
    batch = client.bulk1("POST", f"job/{job}/batch", "Name,External_Id__c\nA,X-1\n", "text/csv")
    assert batch.headers["Location"] == (
        f"/services/async/62.0/job/{job}/batch/{_xml_value(batch.text, 'id')}"
    )
    without_message = [t for t in BATCHINFO_ORDER if t != "stateMessage"]
    assert _tags(batch.text) == without_message
    client.wait_batches(job, 1)
    failed = client.add_batch(job, "Name,Nope__c\nB,1\n")
    assert client.wait_batches(job, 2)[1] == (
        "Failed", "InvalidBatch : Field name not found : Nope__c")
    assert _tags(client.bulk1("GET", f"job/{job}/batch/{failed}").text) == BATCHINFO_ORDER


def test_batches_of_an_open_job_go_queued_inprogress_completed_and_abort_leaves_notprocessed(
    emulator_factory,
):
    server = emulator_factory(seed="demo", workers=1)
    client = Client(server)
    requests.post(f"{server.url}/_emulator/faults",
                  json={"processing_delay_seconds": 0.4}, timeout=10)
    job = client.create_job("insert", "Account", "<concurrencyMode>Serial</concurrencyMode>")
    first = client.add_batch(job, "Name\nS1\n")
    second = client.add_batch(job, "Name\nS2\n")
    time.sleep(0.15)
    states = [_xml_value(client.bulk1("GET", f"job/{job}/batch/{b}").text, "state")
              for b in (first, second)]
    assert states == ["InProgress", "Queued"]
    aborted = client.bulk1("POST", f"job/{job}",
                           f'<jobInfo xmlns="{NS}"><state>Aborted</state></jobInfo>')
    assert _xml_value(aborted.text, "state") == "Aborted"
    assert client.wait_batches(job, 2) == [("Completed", None), ("NotProcessed", None)]


def test_ingest_results_one_row_per_input_in_input_order(client: Client):
    earlier = client.ingest1("insert", "Account", "Name,External_Id__c\nR0,AUD-0\n")
    first_id = earlier.splitlines()[1].split(",")[0].strip('"')
    result = client.ingest1("insert", "Account", (
        "Name,AnnualRevenue,External_Id__c\n"
        "R1,100,AUD-1\n"
        ",5,AUD-2\n"
        "R3,abc,AUD-3\n"
        "R4,1,AUD-0\n"
        f"R5,1,{'Y' * 65}\n"
    ))
    rows = result.splitlines()
    assert rows[0] == '"Id","Success","Created","Error"'
    new_id = rows[1].split(",")[0].strip('"')
    assert new_id.startswith("001") and len(new_id) == 18 and new_id != first_id
    assert rows[1:] == [
        f'"{new_id}","true","true",""',
        '"","false","false","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"',
        '"","false","false","INVALID_FIELD:Failed to deserialize field at col 1. Due to, \'abc\' '
        'is not a valid value for the type xsd:double:AnnualRevenue --"',
        '"","false","false","DUPLICATE_VALUE:duplicate value found: External_Id__c duplicates '
        f'value on record with id: {first_id}:External_Id__c --"',
        f'"","false","false","STRING_TOO_LONG:External Id: data value too large: {"Y" * 65} '
        '(max length=64):External_Id__c --"',
    ]


def test_duplicate_unique_value_within_one_batch_names_the_first_record(client: Client):
    rows = client.ingest1("insert", "Account",
                          "Name,External_Id__c\nR1,AUD-1\nR2,AUD-1\n").splitlines()[1:]
    first_id = rows[0].split(",")[0].strip('"')
    assert rows[1] == (
        '"","false","false","DUPLICATE_VALUE:duplicate value found: External_Id__c duplicates '
        f'value on record with id: {first_id}:External_Id__c --"'
    )


def test_upsert_duplicates_in_one_batch_relationship_columns_and_na_versus_empty(client: Client):
    upsert = "<externalIdFieldName>External_Id__c</externalIdFieldName>"
    result = client.ingest1("upsert", "Account", (
        "Name,External_Id__c,Phone,Description\n"
        "D1,AUD-D,555,first\nD2,AUD-D,,\nP1,AUD-P,777,kept\n"
    ), upsert)
    rows = result.splitlines()[1:]
    parent = rows[2].split(",")[0].strip('"')
    assert rows[:2] == [
        '"","false","false","DUPLICATE_VALUE:Duplicate external id specified: AUD-D:'
        'External_Id__c --"'
    ] * 2
    assert rows[2] == f'"{parent}","true","true",""'
    # #N/A nulls a field, an empty cell leaves it alone, the update branch reports Created=false.
    again = client.ingest1("upsert", "Account",
                           "External_Id__c,Phone,Description\nAUD-P,#N/A,\n", upsert)
    assert again.splitlines()[1] == f'"{parent}","true","false",""'
    record = client.rest("GET", f"sobjects/Account/{parent}").json()
    assert (record["Phone"], record["Description"], record["Name"]) == (None, "kept", "P1")
    children = client.ingest1("insert", "Contact", (
        "LastName,Account.External_Id__c,AccountId\n"
        "C1,AUD-P,\nC2,NOPE,\nC3,,001000000000000AAA\nC4,,bad\n"
    )).splitlines()[1:]
    child = children[0].split(",")[0].strip('"')
    assert children[1:] == [
        '"","false","false","INVALID_FIELD:Foreign key external ID: NOPE not found for field '
        'External_Id__c in entity Account:--"',
        '"","false","false","INVALID_CROSS_REFERENCE_KEY:Account ID: invalid cross reference '
        'id:AccountId --"',
        '"","false","false","MALFORMED_ID:Account ID: id value of incorrect type: bad:'
        'AccountId --"',
    ]
    assert client.rest("GET", f"sobjects/Contact/{child}").json()["AccountId"] == parent
    read_only = client.ingest1("insert", "Account", "Name,CreatedDate\nQ,2020-01-01T00:00:00Z\n")
    assert read_only.splitlines()[1] == (
        '"","false","false","INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update fields: '
        "CreatedDate. Please check the security settings of this field and verify that it is "
        'read/write for your profile or permission set.:CreatedDate --"'
    )


def test_error_cells_without_fields_agree_between_the_two_apis(client: Client):
    one = client.ingest1("update", "Account", "Id,Name\n,zz\n").splitlines()[1]
    two = client.ingest2("update", "Account", "Id,Name\n,zz\n")["failedResults"].splitlines()[1]
    assert one == '"","false","false","MISSING_ARGUMENT:Id not specified in an update call:--"'
    assert two.split(",")[1] == '"MISSING_ARGUMENT:Id not specified in an update call:--"'


def test_bad_job_bodies_states_and_sizes_get_bulk1_errors(client: Client):
    def error(response: requests.Response) -> tuple[int, str, str]:
        return (response.status_code, _xml_value(response.text, "exceptionCode"),
                _xml_value(response.text, "exceptionMessage"))

    wrap = f'<jobInfo xmlns="{NS}">{{}}</jobInfo>'
    cases = {
        "<operation>insert</operation><object>Account</object><bogus>1</bogus>":
            (400, "InvalidJob", "Unable to parse Job"),
        "<operation>INSERT</operation><object>Account</object>":
            (400, "InvalidJob", "Invalid value for operation: INSERT"),
        "<operation>upsert</operation><object>Account</object>":
            (400, "InvalidJob", "External ID field is required for upsert operation"),
    }
    for inner, expected in cases.items():
        assert error(client.bulk1("POST", "job", wrap.format(inner))) == expected
    assert error(client.bulk1("POST", "job", "<jobInfo")) == (
        400, "InvalidXml", "Unable to parse Job: the body is not valid XML")
    job = client.create_job("insert", "Account")
    too_many = client.add_batch(job, "Name\n" + "".join(f"L{i}\n" for i in range(10_001)))
    assert client.wait_batches(job, 1) == [("Failed", (
        "InvalidBatch : Exceeded number of records : 10001. Number of records should be less "
        "than or equal to 10000"))]
    assert too_many
    too_big = client.bulk1("POST", f"job/{job}/batch", "Name\n" + ("y" * 1000 + "\n") * 10_001,
                           "text/csv")
    assert error(too_big) == (400, "ClientInputError",
                              "Failed to read request. Exceeded max size limit of 10000000")
    client.bulk1("POST", f"job/{job}", f'<jobInfo xmlns="{NS}"><state>Closed</state></jobInfo>')
    late = client.bulk1("POST", f"job/{job}/batch", "Name\nx\n", "text/csv")
    assert error(late) == (400, "InvalidJobState",
                           f"Job {job} is Closed: no batches can be added")
    # Nothing of the refused batches reached the table.
    assert client.rest("GET", "query", params={
        "q": "SELECT Id FROM Account WHERE Name LIKE 'L%'"}).json()["totalSize"] == 0


def test_rest_query_counts(client: Client):
    response = client.rest("GET", "query", params={"q": "SELECT COUNT() FROM Account"})
    assert (response.status_code, response.json()) == (
        200, {"totalSize": 4, "done": True, "records": []})


def test_malformed_csv_fails_the_row_in_bulk1_and_stores_nothing(client: Client):
    result = client.ingest1("insert", "Account", 'Name\n"a"b\n')
    assert result.splitlines()[1] == (
        '"","false","false","INVALID_FIELD:Failed to parse CSV row: Unexpected character \'b\' '
        'after a closing quote:--"'
    )
    job = client.create_job("insert", "Account")
    client.add_batch(job, b"Name\n\xff\xfe\n")
    assert client.wait_batches(job, 1) == [
        ("Failed", "InvalidBatch : Failed to read the batch: invalid UTF-8 at byte 5")
    ]


# ---------------------------------------------------------------------------------------------
# PK chunking


@pytest.mark.parametrize(("header", "obj", "states", "counts"), [
    ("true", "Account", ["NotProcessed", "Completed"], ["0", "4"]),
    ("TRUE;chunkSize=5;", "Contact", ["NotProcessed", "Completed", "Completed"], ["0", "5", "3"]),
    ("chunkSize=3; startRow=0015g0000000002AAA", "Account",
     ["NotProcessed", "Completed"], ["0", "3"]),
    ("false", "Account", ["Completed"], ["4"]),
    ("true", "Attachment", ["Failed"], ["0"]),
])
def test_pk_chunking_header_variants(client: Client, header, obj, states, counts):
    job = client.create_job("query", obj, headers={"Sforce-Enable-PKChunking": header})
    client.add_batch(job, f"SELECT Id FROM {obj}")
    deadline = time.monotonic() + 20
    while True:
        listing = client.bulk1("GET", f"job/{job}/batch").text
        found = re.findall(r"<state>(.*?)</state>", listing)
        if len(found) == len(states) and "Queued" not in found and "InProgress" not in found:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.02)
    assert found == states
    assert re.findall(r"<numberRecordsProcessed>(\d+)<", listing) == counts
    if obj == "Attachment":
        assert _xml_value(listing, "stateMessage") == (
            "InvalidBatch : PK chunking is not supported for entity: Attachment"
        )


def test_pk_chunking_refuses_bad_sizes_and_options(client: Client):
    for header, message in [
        ("chunkSize=0",
         "Invalid value for chunkSize: 0. The chunk size must be between 1 and 250000"),
        ("chunkSize=250001",
         "Invalid value for chunkSize: 250001. The chunk size must be between 1 and 250000"),
        ("bogus=1", "Invalid Sforce-Enable-PKChunking header option: bogus=1"),
    ]:
        response = client.bulk1(
            "POST", "job",
            f'<jobInfo xmlns="{NS}"><operation>query</operation><object>Account</object>'
            "<contentType>CSV</contentType></jobInfo>",
            headers={"Sforce-Enable-PKChunking": header},
        )
        assert (response.status_code, _xml_value(response.text, "exceptionMessage")) == (
            400, message)


# ---------------------------------------------------------------------------------------------
# Bulk 2.0


def test_bulk2_query_pages_by_locator_and_max_records(client: Client):
    pages = client.query2("SELECT Id, Name FROM Contact ORDER BY Name", max_records=3)
    assert [p.headers["Sforce-NumberOfRecords"] for p in pages] == ["3", "3", "2"]
    assert [p.headers["Sforce-Locator"] for p in pages][-1] == "null"
    assert all(p.text.splitlines()[0] == '"Id","Name"' for p in pages)
    assert all(p.headers["Content-Type"] == "text/csv; charset=UTF-8" for p in pages)
    names = [line.split(",", 1)[1] for p in pages for line in p.text.splitlines()[1:]]
    assert names == sorted(names) and len(names) == 8
    job = client.query2_create("SELECT Id FROM Account").json()["id"]
    deadline = time.monotonic() + 20
    while client.rest("GET", f"jobs/query/{job}").json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for params, message in [
        ({"maxRecords": 0}, "maxRecords must be a positive whole number, not '0'"),
        ({"locator": "garbage"}, f"Invalid locator for job {job}: garbage"),
    ]:
        response = client.rest("GET", f"jobs/query/{job}/results", params=params)
        assert response.status_code == 400
        assert response.json()[0]["message"] == message


def test_bulk2_ingest_result_files(client: Client):
    out = client.ingest2("insert", "Account",
                         "Name,AnnualRevenue,NumberOfEmployees\nB1,912260031,5\n,1,1\nB3,1e3,x\n")
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 3, 2)
    ok = out["successfulResults"].splitlines()
    assert ok[0] == '"sf__Id","sf__Created",Name,AnnualRevenue,NumberOfEmployees'
    assert ok[1].split(",", 1)[1] == '"true","B1","9.12260031E8","5"'
    assert out["failedResults"].splitlines()[1:] == [
        '"","REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --","","1","1"',
        "\"\",\"INVALID_FIELD:Failed to deserialize field at col 2. Due to, 'x' is not a valid "
        'value for the type xsd:int:NumberOfEmployees --","B3","1e3","x"',
    ]
    assert out["unprocessedrecords"] == "Name,AnnualRevenue,NumberOfEmployees\n"
    bad_header = client.ingest2("insert", "Account", "Name,Bogus\nB1,1\n")["info"]
    assert (bad_header["state"], bad_header["errorMessage"]) == (
        "Failed", "InvalidBatch : Field name not found : Bogus")


def _names_stored(client: Client, prefix: str) -> list[str]:
    response = client.rest("GET", "query", params={
        "q": f"SELECT Name FROM Account WHERE Name LIKE '{prefix}%'"})
    return [r["Name"] for r in response.json()["records"]]


def test_bulk2_unterminated_quote_is_not_stored(client: Client):
    out = client.ingest2("insert", "Account", 'Name\n"AUD-Q\n')
    # The row fails alone; the job completes.
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete", 1, 1)
    assert "errorMessage" not in info
    assert out["failedResults"] == (
        '"sf__Id","sf__Error",Name\n'
        '"","INVALID_FIELD:Failed to parse CSV row: Quoted value not closed before the end of '
        'the data:--","""AUD-Q"\n'
    )
    assert out["successfulResults"] == '"sf__Id","sf__Created",Name\n'
    assert out["unprocessedrecords"] == "Name\n"
    assert _names_stored(client, "AUD-Q") == []


def test_bulk2_invalid_utf8_is_refused_not_stored(client: Client):
    out = client.ingest2("insert", "Account", b"Name\nAUD-U\xff\xfe\n")
    # The whole job fails; the offset is that of the first bad byte (0-based).
    info = out["info"]
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "Failed", 0, 0)
    assert info["errorMessage"] == (
        "InvalidBatch : Failed to read the upload: invalid UTF-8 at byte 10"
    )
    assert _names_stored(client, "AUD-U") == []


def test_bulk2_text_after_a_closing_quote_fails_the_row(client: Client):
    out = client.ingest2("insert", "Account", 'Name\n"AUD-A"b\n')
    assert out["info"]["numberRecordsFailed"] == 1
    assert _names_stored(client, "AUD-A") == []


# ---------------------------------------------------------------------------------------------
# SOQL as Bulk accepts it


def test_soql_features_bulk_accepts(client: Client):
    def rows(soql: str) -> list[str]:
        return [line for p in client.query2(soql) for line in p.text.splitlines()[1:]]

    header = client.query2("SELECT Id, Name, Account.Name, Account.Owner.Name FROM Contact "
                           "ORDER BY Name LIMIT 2")[0].text.splitlines()[0]
    assert header == '"Id","Name","Account.Name","Account.Owner.Name"'
    everything = len(rows("SELECT Id FROM Account"))
    assert everything == 4
    for literal in ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000000Z",
                    "2020-01-01T00:00:00.1+05:30", "2020-01-01T00:00:00-08:00"):
        assert len(rows(f"SELECT Id FROM Account WHERE CreatedDate > {literal}")) == everything
    assert len(rows("SELECT Id FROM Account WHERE CreatedDate = LAST_N_DAYS:3650")) == everything
    assert rows("SELECT Id FROM Account WHERE CreatedDate > 2999-01-01T00:00:00Z") == []
    assert rows("SELECT Id FROM Account WHERE NOT (Name != null) LIMIT 1") == []


@pytest.mark.parametrize(("soql", "code", "message"), [
    ("SELECT COUNT() FROM Account", "FUNCTIONALITY_NOT_ENABLED",
     "Aggregate functions not supported in Bulk Query"),
    ("SELECT Name, (SELECT Id FROM Contacts) FROM Account", "FUNCTIONALITY_NOT_ENABLED",
     "Aggregate Relationships not supported in Bulk Query"),
    ("SELECT Id FROM Account LIMIT 1 OFFSET 1", "FUNCTIONALITY_NOT_ENABLED",
     "OFFSET not supported in Bulk Query"),
    ("SELECT BillingAddress FROM Account", "FUNCTIONALITY_NOT_ENABLED",
     "Selecting compound data not supported in Bulk Query"),
    ("SELECT Body FROM Attachment", "FUNCTIONALITY_NOT_ENABLED",
     "Selecting base64 data not supported in Bulk Query"),
    ("SELECT Id FROM Account WHERE CreatedDate > 2020-01-01", "INVALID_FIELD",
     "\nFROM Account WHERE CreatedDate > 2020-01-01\n                                 ^\n"
     "ERROR at Row:1:Column:44\nvalue of filter criterion for field 'CreatedDate' must be of "
     "type dateTime and should not be enclosed in quotes"),
])
def test_soql_bulk_rejects_with_salesforce_codes(client: Client, soql, code, message):
    response = client.query2_create(soql)
    assert (response.status_code, response.json()) == (
        400, [{"errorCode": code, "message": message}])


# ---------------------------------------------------------------------------------------------
# Fault injection


def test_request_faults_take_each_apis_form(client: Client, demo):
    def fault(spec: dict[str, Any]) -> None:
        assert requests.post(f"{demo.url}/_emulator/faults", json=spec, timeout=10).ok

    fault({"request_limit_exceeded": 2})
    quota = client.bulk1("GET", "job/7505g0000000001AAA")
    assert (quota.status_code, _xml_value(quota.text, "exceptionCode"),
            _xml_value(quota.text, "exceptionMessage")) == (
        400, "ExceededQuota", "TotalRequests Limit exceeded.")
    limited = client.rest("GET", "limits")
    assert (limited.status_code, limited.json()) == (403, [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    fault({"http_503": 1})
    unavailable = client.bulk1("GET", "job/7505g0000000001AAA")
    assert (unavailable.status_code, unavailable.headers["Retry-After"],
            unavailable.headers["Content-Type"]) == (503, "1", "application/xml")
    fault({"expire_session_after": 1})
    assert client.rest("GET", "limits").status_code == 200
    assert _xml_value(client.bulk1("GET", "job/7505g0000000001AAA").text,
                      "exceptionCode") == "InvalidSessionId"


def test_bulk1_lock_errors_only_for_parallel_batches_sharing_a_parent(client: Client, demo):
    requests.post(f"{demo.url}/_emulator/faults",
                  json={"lock_error_share": 1.0, "processing_delay_seconds": 0.8}, timeout=10)
    parent = client.rest("GET", "query", params={
        "q": "SELECT Id FROM Account ORDER BY Id LIMIT 1"}).json()["records"][0]["Id"]
    csv = f"LastName,AccountId\nL1,{parent}\nL2,{parent}\n"
    lock = (f'"","false","false","UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this '
            f'record or 1 records: {parent}:--"')
    for mode, expect_locks in (("Parallel", True), ("Serial", False)):
        job = client.create_job("insert", "Contact",
                                f"<concurrencyMode>{mode}</concurrencyMode>")
        batches = [client.add_batch(job, csv) for _ in range(2)]
        client.wait_batches(job, 2)
        for batch in batches:
            rows = client.bulk1("GET", f"job/{job}/batch/{batch}/result").text.splitlines()[1:]
            assert (rows == [lock, lock]) is expect_locks, (mode, rows)


def test_bulk2_lock_errors_need_a_shared_parent(client: Client, demo):
    requests.post(f"{demo.url}/_emulator/faults", json={"lock_error_share": 1.0}, timeout=10)
    out = client.ingest2("insert", "Account", "Name\nNoParent\n")
    assert out["info"]["numberRecordsFailed"] == 0


# ---------------------------------------------------------------------------------------------
# Metadata against the recorded describes


def test_describe_field_properties_match_the_recordings(client: Client, fixtures_dir):
    keys = ["type", "length", "precision", "scale", "nillable", "createable", "updateable",
            "externalId", "idLookup", "calculated", "compoundFieldName", "relationshipName",
            "soapType", "byteLength", "digits", "unique", "defaultedOnCreate", "nameField"]
    for name in ("Account", "Contact", "Lead", "Opportunity", "Case", "Attachment"):
        path = fixtures_dir / "salesforce" / "describe" / f"{name}.json"
        recorded = json.loads(path.read_text())
        described = client.rest("GET", f"sobjects/{name}/describe").json()
        ours = {f["name"]: f for f in described["fields"]}
        shared = [f for f in recorded["fields"] if f["name"] in ours]
        assert len(shared) >= len(recorded["fields"]) - 10, name
        for field in shared:
            assert {k: ours[field["name"]][k] for k in keys} == {k: field[k] for k in keys}, (
                name, field["name"])


# ---------------------------------------------------------------------------------------------
# The command


def test_records_flag_is_the_total_its_help_describes():
    """``--records N`` spreads N over the four demo objects; the help once said "per object"."""
    import argparse

    from sfbulk.emulator.app import EmulatorSettings
    from sfbulk.emulator.cli import build_org, build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "records")
    assert action.help == (
        "records in all for --seed demo, split 20/40/25/15 over Account, Contact, Opportunity "
        "and Case (default 100)"
    )
    args: argparse.Namespace = parser.parse_args(["--seed", "demo", "--records", "20"])
    org = build_org(args, EmulatorSettings())
    counts = {name: org.count(name) for name in ("Account", "Contact", "Opportunity", "Case")}
    assert counts == {"Account": 4, "Contact": 8, "Opportunity": 5, "Case": 3}
