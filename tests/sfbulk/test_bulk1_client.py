"""Bulk 1.0 client: record parsing (recorded bodies), query orchestration (scripted stub) and every
flow end to end against the emulator."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from sfbulk.auth import SalesforceAuth
from sfbulk.bulk1 import (
    BatchInfo,
    Bulk1,
    JobInfo,
    RowResult,
    build_zip_batch,
    iter_result_rows,
    parse_batch_results,
)
from sfbulk.errors import (
    JobFailedError,
    JobTimeoutError,
    RecordCountMismatchError,
)
from sfbulk.http import ASYNC_NS, SalesforceClient
from tests.conftest import FIXTURES, record_poll_steps
from tests.sfbulk.test_http import Reply, Req, StubServer

B1 = FIXTURES / "salesforce" / "bulk1"
DEMO = {
    "client_id": "demo-client",
    "client_secret": "demo-secret",
    "username": "demo@example.com",
    "password": "demo-password",
}


# --------------------------------------------------------------------------------------------
# Parsing recorded bodies


def test_jobinfo_from_recorded_xml_and_json() -> None:
    xml = JobInfo.parse((B1 / "jobinfo_create_response_query_json.xml").read_bytes())
    assert xml.id == "7509H0000016HQbQAM"
    assert (xml.operation, xml.object, xml.state) == ("query", "Event", "Open")
    assert xml.content_type == "JSON"
    assert xml.concurrency_mode == "Parallel"
    assert xml.api_version == "62.0"
    assert xml.created_date == "2024-11-21T09:28:48.000Z"
    assert not xml.is_terminal
    js = JobInfo.parse((B1 / "doc_jobinfo_create_response.json").read_bytes())
    assert js.id == "750D00000004SkGIAU"
    assert js.api_version == "36.0"
    assert js.content_type == "JSON"
    assert js.created_date == "2015-12-15T20:45:25.000+0000"
    closed = JobInfo.parse((B1 / "jobinfo_upsert_closed_rendered.xml").read_bytes())
    assert closed.state == "Closed"
    assert closed.is_terminal
    assert closed.external_id_field == "Id"


def test_batchinfo_from_recorded_bodies() -> None:
    one = BatchInfo.parse((B1 / "batchinfo_completed_json.json").read_bytes())
    assert one == BatchInfo(
        id="7519H000001XiCzQAK",
        job_id="7509H0000016GUXQA2",
        state="Completed",
        state_message=None,
        created_date="2024-11-21T08:31:31.000+0000",
        system_modstamp="2024-11-21T08:31:32.000+0000",
    )
    queued = BatchInfo.parse((B1 / "doc_batchinfo_queued.xml").read_bytes())
    assert queued.state == "Queued"
    assert not queued.is_terminal
    listed = BatchInfo.parse_list((B1 / "doc_batchinfolist.json").read_bytes())
    assert [(b.id, b.state, b.number_records_processed) for b in listed] == [
        ("751D00000004YGZIA2", "Queued", 0),
        ("751D00000004YGeIAM", "Completed", 800),
    ]
    chunked = BatchInfo.parse_list((B1 / "doc_batchinfolist_pk_chunking.xml").read_bytes())
    assert [b.state for b in chunked] == ["NotProcessed"] + ["Completed"] * 4
    assert chunked[0].not_processed
    assert sum(b.number_records_processed for b in chunked) == 350000
    single = json.dumps({"batchInfo": {"id": "751A", "jobId": "750A", "state": "Completed"}})
    assert [b.id for b in BatchInfo.parse_list(single)] == ["751A"]


def test_batch_results_csv_json_xml() -> None:
    csv_rows = parse_batch_results((B1 / "doc_batch_result_with_error.csv").read_bytes())
    assert csv_rows == [
        RowResult("003D000000Q89kQIAR", True, True, None),
        RowResult("003D000000Q89kRIAR", True, True, None),
        RowResult(
            None,
            False,
            False,
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        ),
    ]
    assert csv_rows[2].status_code == "REQUIRED_FIELD_MISSING"
    mixed = parse_batch_results((B1 / "batch_result_upsert_mixed_updated_created.csv").read_bytes())
    assert [r.created for r in mixed] == [False, False, False, True]
    assert parse_batch_results((B1 / "doc_batch_result.json").read_bytes()) == [
        RowResult("001xx000003DHP0AAO", True, True, None),
        RowResult("001xx000003DHP1AAO", True, True, None),
    ]
    assert parse_batch_results((B1 / "doc_batch_result.xml").read_bytes()) == [
        RowResult("001D000000ISUr3IAH", True, True, None),
        RowResult("001D000000ISUr4IAH", True, True, None),
    ]
    json_error = json.dumps(
        [
            {
                "success": False,
                "created": False,
                "id": None,
                "errors": [{"statusCode": "INVALID_FIELD", "message": "bad", "fields": ["A", "B"]}],
            }
        ]
    ).encode()
    assert parse_batch_results(json_error) == [
        RowResult(None, False, False, "INVALID_FIELD:bad:A,B --")
    ]
    xml_error = (
        f'<results xmlns="{ASYNC_NS}"><result><errors><fields>LastName</fields>'
        "<message>Required fields are missing: [LastName]</message>"
        '<statusCode>REQUIRED_FIELD_MISSING</statusCode></errors><id xsi:nil="true" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/><success>false</success>'
        "<created>false</created></result></results>"
    ).encode()
    assert parse_batch_results(xml_error) == [
        RowResult(
            None,
            False,
            False,
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
        )
    ]


def test_json_query_result_flattened_with_iso_datetimes() -> None:
    body = io.BytesIO((B1 / "query_result_json_event_typeof.json").read_bytes())
    rows = list(iter_result_rows(body, "JSON", datetime_fields={"ActivityDateTime"}))
    assert len(rows) == 3
    assert rows[0] == {
        "Id": "00U9H000000RzvRUAS",
        "Who.LastName": "Contact",
        "Who.Email": None,
        "What": None,
        "Subject": "Test Event 2",
        "DurationInMinutes": 60,
        "ActivityDateTime": "2024-11-07T07:00:00.000Z",
    }
    assert rows[1]["What.Name"] == "Tom Cruise"
    assert rows[2]["ActivityDateTime"] == "3156-11-12T13:00:00.000Z"


def test_csv_and_xml_query_results() -> None:
    csv_rows = list(iter_result_rows(io.BytesIO((B1 / "doc_query_result.csv").read_bytes()), "CSV"))
    assert csv_rows[0] == {"Id": "001x000xxx4TU4JAAW", "Name": "name161268--1296595660659"}
    assert len(csv_rows) == 10
    empty = io.BytesIO(b"Records not found for this query")
    assert list(iter_result_rows(empty, "CSV")) == []
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{ASYNC_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<records xsi:type="sObject"><type>Contact</type><Id>003A</Id><Id>003A</Id>'
        '<LastName>Ng &amp; Co</LastName><Email xsi:nil="true"/>'
        '<Account xsi:type="sObject"><type>Account</type><Id xsi:nil="true"/><Name>Acme</Name>'
        "</Account></records>"
        '<records xsi:type="sObject"><type>Contact</type><Id>003B</Id><LastName>B</LastName>'
        '<Email>b@x.org</Email><Account xsi:nil="true"/></records></queryResult>'
    ).encode()
    rows = list(iter_result_rows(io.BytesIO(xml), "XML"))
    assert rows == [
        {
            "type": "Contact",
            "Id": "003A",
            "LastName": "Ng & Co",
            "Email": None,
            "Account.Id": None,
            "Account.Name": "Acme",
        },
        {"type": "Contact", "Id": "003B", "LastName": "B", "Email": "b@x.org", "Account": None},
    ]


def test_zip_batch_builder() -> None:
    request = b"Name,ParentId,Body\nattachment1.gif,001A,#attachment1.gif\nb.doc,001A,#sub/b.doc\n"
    data = build_zip_batch(request, {"attachment1.gif": b"GIF89a", "sub/b.doc": b"DOC"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["attachment1.gif", "request.txt", "sub/b.doc"]
        assert archive.read("request.txt") == request
        assert archive.read("sub/b.doc") == b"DOC"
    with pytest.raises(ValueError, match=r"row 3 references #sub/b.doc"):
        build_zip_batch(request, {"attachment1.gif": b"GIF89a"})


def test_pk_chunking_header_values() -> None:
    assert Bulk1.pk_chunking_header(True) == "TRUE"
    assert Bulk1.pk_chunking_header(50000, "Account", "001300000000000") == (
        "chunkSize=50000; parent=Account; startRow=001300000000000"
    )
    assert Bulk1.pk_chunking_header(None) is None
    with pytest.raises(ValueError):
        Bulk1.pk_chunking_header(250001)
    with pytest.raises(ValueError):
        Bulk1.pk_chunking_header(None, parent="Account")


# --------------------------------------------------------------------------------------------
# Orchestration against a scripted org


def _job_xml(job_id: str, state: str = "Open", content_type: str = "CSV", op: str = "query") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="{ASYNC_NS}"><id>{job_id}</id>'
        f"<operation>{op}</operation><object>Account</object><state>{state}</state>"
        f"<contentType>{content_type}</contentType></jobInfo>"
    )


def _batch_xml(batch_id: str, state: str, processed: int = 0, message: str | None = None) -> str:
    msg = f"<stateMessage>{message}</stateMessage>" if message else ""
    return (
        f"<batchInfo><id>{batch_id}</id><jobId>750000000000001AAA</jobId><state>{state}</state>"
        f"{msg}<numberRecordsProcessed>{processed}</numberRecordsProcessed></batchInfo>"
    )


def _batch_list(*batches: str) -> Reply:
    return Reply(200, f'<batchInfoList xmlns="{ASYNC_NS}">{"".join(batches)}</batchInfoList>')


JOB = "750000000000001AAA"
ORIG = "751000000000000AAA"


@pytest.fixture
def org():
    """A scripted Bulk 1.0 org with a ready session; tests add the batch list and results."""
    stub = StubServer()
    stub.route("POST", r"/services/async/62\.0/job", Reply(201, _job_xml(JOB)))
    stub.route(
        "POST", rf"/services/async/62\.0/job/{JOB}/batch", Reply(201, _batch_xml(ORIG, "Queued"))
    )

    def set_state(req: Req) -> Reply:
        state = "Aborted" if b"Aborted" in req.body else "Closed"
        return Reply(200, _job_xml(JOB, state))

    stub.route("POST", rf"/services/async/62\.0/job/{JOB}", set_state)
    yield stub
    stub.close()


def make_bulk(stub: StubServer, **kwargs: object) -> Bulk1:
    auth = SalesforceAuth.from_config({"access_token": "tok", "instance_url": stub.url})
    client = SalesforceClient(auth, max_retries=2, backoff_factor=0.001, timeout=(2, 5))
    options: dict[str, object] = {"poll_interval_seconds": 0.01, "poll_interval_max_seconds": 0.02}
    options.update(kwargs)
    return Bulk1(client, **options)  # type: ignore[arg-type]


def job_states(stub: StubServer) -> list[bytes]:
    return [
        b"Aborted" if b"Aborted" in r.body else b"Closed"
        for r in stub.hits("POST", rf"/services/async/62\.0/job/{JOB}")
    ]


def test_pk_chunked_query_reads_every_chunk_and_file(org: StubServer) -> None:
    c1, c2 = "751000000000001AAA", "751000000000002AAA"
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch",
        [
            _batch_list(_batch_xml(ORIG, "Queued")),
            _batch_list(
                _batch_xml(ORIG, "NotProcessed"),
                _batch_xml(c1, "Completed", 3),
                _batch_xml(c2, "InProgress"),
            ),
            _batch_list(
                _batch_xml(ORIG, "NotProcessed"),
                _batch_xml(c1, "Completed", 3),
                _batch_xml(c2, "Completed", 1),
            ),
        ],
    )
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch/{c1}/result",
        Reply(
            200,
            f'<result-list xmlns="{ASYNC_NS}"><result>752A</result>'
            "<result>752B</result></result-list>",
        ),
    )
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch/{c2}/result",
        Reply(200, f'<result-list xmlns="{ASYNC_NS}"><result>752C</result></result-list>'),
    )
    files = {
        "752A": '"Id","Name"\n"001A","a"\n"001B","b, ""quoted""\nline"\n',
        "752B": '"Id","Name"\n"001C","c"\n',
        "752C": '"Id","Name"\n"001D",""\n',
    }
    for rid, body in files.items():
        batch = c1 if rid != "752C" else c2
        org.route(
            "GET", rf"/services/async/62\.0/job/{JOB}/batch/{batch}/result/{rid}", Reply(200, body)
        )
    bulk = make_bulk(org)
    with bulk.query("Account", "SELECT Id, Name FROM Account", pk_chunking=100000) as rows:
        got = list(rows)
    assert got == [
        {"Id": "001A", "Name": "a"},
        {"Id": "001B", "Name": 'b, "quoted"\nline'},
        {"Id": "001C", "Name": "c"},
        {"Id": "001D", "Name": ""},
    ]
    assert rows.rows_read == 4
    assert rows.batches_read == 2
    assert rows.job.state == "Closed"
    create = org.hits("POST", r"/services/async/62\.0/job")[0]
    assert create.headers["sforce-enable-pkchunking"] == "chunkSize=100000"
    assert b"<operation>query</operation><object>Account</object>" in create.body
    soql = org.hits("POST", rf"/services/async/62\.0/job/{JOB}/batch")[0]
    assert soql.body == b"SELECT Id, Name FROM Account"
    assert soql.headers["content-type"] == "text/csv; charset=UTF-8"
    assert job_states(org) == [b"Closed"]
    assert bulk.client.open_jobs.ids() == []


def test_failed_chunk_raises_and_aborts(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch",
        _batch_list(
            _batch_xml(ORIG, "NotProcessed"),
            _batch_xml(
                "751000000000001AAA",
                "Failed",
                0,
                "InvalidBatch : Failed to process query: QUERY_TIMEOUT",
            ),
        ),
    )
    bulk = make_bulk(org)
    with pytest.raises(JobFailedError) as info:
        list(
            bulk.query("Account", "SELECT Id FROM Account", pk_chunking=True, include_deleted=True)
        )
    assert info.value.message == "InvalidBatch : Failed to process query: QUERY_TIMEOUT"
    assert info.value.batch_id == "751000000000001AAA"
    assert info.value.job_id == JOB
    assert (
        b"<operation>queryAll</operation>" in org.hits("POST", r"/services/async/62\.0/job")[0].body
    )
    assert job_states(org) == [b"Aborted"]
    assert bulk.client.open_jobs.ids() == []


def test_count_mismatch_is_detected(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch",
        _batch_list(_batch_xml(ORIG, "Completed", 5)),
    )
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch/{ORIG}/result",
        Reply(200, f'<result-list xmlns="{ASYNC_NS}"><result>752A</result></result-list>'),
    )
    org.route("GET", r".*/result/752A", Reply(200, '"Id"\n"001A"\n"001B"\n'))
    with pytest.raises(RecordCountMismatchError) as info:
        list(make_bulk(org).query("Account", "SELECT Id FROM Account"))
    assert (info.value.expected, info.value.actual) == (5, 2)
    assert info.value.batch_id == ORIG
    assert job_states(org) == [b"Aborted"]


def test_early_close_and_consumer_exception_abort(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch",
        _batch_list(_batch_xml(ORIG, "Completed", 2)),
    )
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch/{ORIG}/result",
        Reply(200, f'<result-list xmlns="{ASYNC_NS}"><result>752A</result></result-list>'),
    )
    org.route("GET", r".*/result/752A", Reply(200, '"Id"\n"001A"\n"001B"\n'))
    bulk = make_bulk(org)
    with bulk.query("Account", "SELECT Id FROM Account") as rows:
        assert next(iter(rows)) == {"Id": "001A"}
    assert job_states(org) == [b"Aborted"]
    with pytest.raises(KeyboardInterrupt), bulk.query("Account", "SELECT Id FROM Account") as rows:
        for _ in rows:
            raise KeyboardInterrupt
    assert job_states(org) == [b"Aborted", b"Aborted"]
    assert bulk.client.open_jobs.ids() == []


def test_wait_times_out_with_growing_polls(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/async/62\.0/job/{JOB}/batch",
        _batch_list(_batch_xml(ORIG, "InProgress")),
    )
    bulk = make_bulk(org, poll_interval_seconds=0.02, poll_interval_max_seconds=0.1)
    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as info:
        bulk.wait_for_batches(JOB, [ORIG], timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 1.0
    assert info.value.batch_id == ORIG
    polls = org.hits("GET", rf"/services/async/62\.0/job/{JOB}/batch")
    # 0.02, 0.03, 0.045, 0.0675, 0.1, 0.1 … fits in 0.3 s: far fewer polls than a fixed 0.02 s.
    assert 4 <= len(polls) <= 8


# --------------------------------------------------------------------------------------------
# End to end against the emulator


def emulator_bulk(server, **kwargs: object) -> Bulk1:
    auth = SalesforceAuth.from_config({"login_url": server.url, **DEMO})
    client = SalesforceClient(auth, max_retries=4, backoff_factor=0.01, backoff_max=0.05, **kwargs)  # type: ignore[arg-type]
    return Bulk1(
        client, poll_interval_seconds=0.02, poll_interval_max_seconds=0.2, job_timeout_seconds=30
    )


def test_e2e_csv_insert_and_upsert_results_in_order(emulator) -> None:
    bulk = emulator_bulk(emulator)
    csv_body = b'Name,AccountNumber\nAcme,A1\n"Beta, Inc",A2\n,A3\n'
    out = bulk.ingest("Account", "insert", [csv_body])
    (batch,) = out.batches
    assert batch.batch.state == "Completed"
    assert [(r.success, r.created) for r in batch.results] == [
        (True, True),
        (True, True),
        (False, False),
    ]
    assert batch.results[2].status_code == "REQUIRED_FIELD_MISSING"
    assert batch.results[0].id.startswith("001")
    assert out.job.state == "Closed"
    assert out.job.number_records_processed == 3
    assert out.job.number_records_failed == 1
    upsert = bulk.ingest(
        "Account",
        "upsert",
        [b"Id,Name\n" + batch.results[0].id.encode() + b",Acme 2\n"],
        external_id_field="Id",
    )
    assert upsert.results == [RowResult(batch.results[0].id, True, False, None)]
    assert bulk.client.open_jobs.ids() == []


def test_e2e_json_and_xml_ingest(emulator) -> None:
    bulk = emulator_bulk(emulator)
    records = [{"Name": "J1", "NumberOfEmployees": 5}, {"Name": None}]
    out = bulk.ingest("Account", "insert", [json.dumps(records).encode()], content_type="JSON")
    assert [(r.success, r.created) for r in out.results] == [(True, True), (False, False)]
    assert out.results[1].status_code == "REQUIRED_FIELD_MISSING"
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?><sObjects xmlns="{ASYNC_NS}">'
        "<sObject><Name>X1</Name></sObject><sObject><Name>X2</Name></sObject></sObjects>"
    ).encode()
    xout = bulk.ingest("Account", "insert", [xml], content_type="XML")
    assert [(r.success, r.created, r.error) for r in xout.results] == [(True, True, None)] * 2
    assert all(r.id and r.id.startswith("001") for r in xout.results)


def test_e2e_query_csv_json_xml(emulator) -> None:
    bulk = emulator_bulk(emulator)
    bulk.ingest("Account", "insert", [b"Name,AccountNumber\nQ1,N1\nQ2,N2\nQ3,N3\n"])
    soql = "SELECT Id, Name, AccountNumber, CreatedDate FROM Account ORDER BY AccountNumber"
    with bulk.query("Account", soql) as rows:
        csv_rows = list(rows)
    assert [r["Name"] for r in csv_rows] == ["Q1", "Q2", "Q3"]
    assert list(csv_rows[0]) == ["Id", "Name", "AccountNumber", "CreatedDate"]
    with bulk.query("Account", soql, content_type="JSON", datetime_fields={"CreatedDate"}) as rows:
        json_rows = list(rows)
    assert [r["Name"] for r in json_rows] == ["Q1", "Q2", "Q3"]
    assert [r["CreatedDate"] for r in json_rows] == [r["CreatedDate"] for r in csv_rows]
    with bulk.query("Account", soql, content_type="XML") as rows:
        xml_rows = list(rows)
    assert [r["AccountNumber"] for r in xml_rows] == ["N1", "N2", "N3"]
    assert [r["Id"] for r in xml_rows] == [r["Id"] for r in csv_rows]


def test_e2e_query_with_deleted_rows_and_empty_result(emulator) -> None:
    bulk = emulator_bulk(emulator)
    out = bulk.ingest("Account", "insert", [b"Name\nD1\nD2\n"])
    gone = out.results[0].id
    bulk.ingest("Account", "delete", [b"Id\n" + gone.encode() + b"\n"])
    with bulk.query("Account", "SELECT Id FROM Account") as rows:
        assert [r["Id"] for r in rows] == [out.results[1].id]
    with bulk.query("Account", "SELECT Id, IsDeleted FROM Account", include_deleted=True) as rows:
        assert sorted((r["Id"], r["IsDeleted"]) for r in rows) == sorted(
            [(gone, "true"), (out.results[1].id, "false")]
        )
    with bulk.query("Contact", "SELECT Id FROM Contact") as rows:
        assert list(rows) == []
        assert rows.batches_read == 1


def test_e2e_pk_chunking_and_multiple_result_files(emulator_factory) -> None:
    server = emulator_factory(result_rows_per_file=7)
    bulk = emulator_bulk(server)
    names = [f"P{i:03d}" for i in range(45)]
    bulk.ingest("Account", "insert", [("Name\n" + "\n".join(names) + "\n").encode()])
    with bulk.query("Account", "SELECT Id, Name FROM Account", pk_chunking=10) as rows:
        got = sorted(r["Name"] for r in rows)
    assert got == names
    assert rows.batches_read == 5
    batches = bulk.list_batches(rows.job.id)
    assert len(batches) == 6 and batches[0].not_processed
    assert rows.job.state == "Closed"
    with bulk.query("Account", "SELECT Name FROM Account") as rows:
        assert sorted(r["Name"] for r in rows) == names
    (only,) = [b for b in bulk.list_batches(rows.job.id)]
    assert len(bulk.query_result_ids(rows.job.id, only.id)) == 7  # 45 rows, 7 per file


def test_e2e_zip_attachment_batch(emulator) -> None:
    bulk = emulator_bulk(emulator)
    parent = bulk.ingest("Account", "insert", [b"Name\nHolder\n"]).results[0].id
    request = (
        f"Name,ParentId,Body\nlogo.gif,{parent},#img/logo.gif\nnote.txt,{parent},#note.txt\n"
    ).encode()
    job = bulk.create_job("Attachment", "insert", "ZIP_CSV")
    try:
        batch = bulk.add_zip_batch(
            job, request, {"img/logo.gif": b"GIF89a\x00\x01", "note.txt": b"hello"}
        )
        bulk.close_job(job)
        (done,) = bulk.wait_for_batches(job, [batch.id], timeout=20)
    except BaseException:
        bulk.abort_job(job)
        raise
    assert done.state == "Completed"
    results = bulk.batch_results(job, batch.id)
    assert [(r.success, r.created) for r in results] == [(True, True), (True, True)]
    with bulk.query(
        "Attachment", "SELECT Name, ParentId, BodyLength FROM Attachment ORDER BY Name"
    ) as rows:
        assert list(rows) == [
            {"Name": "logo.gif", "ParentId": parent, "BodyLength": "8"},
            {"Name": "note.txt", "ParentId": parent, "BodyLength": "5"},
        ]


def test_e2e_failed_batch_is_reported_not_raised(emulator) -> None:
    bulk = emulator_bulk(emulator)
    out = bulk.ingest("Account", "insert", [b"Name,NoSuchField__c\nA,1\n", b"Name\nB\n"])
    first, second = out.batches
    assert first.batch.state == "Failed"
    assert first.results is None
    assert "NoSuchField__c" in first.batch.state_message
    assert second.batch.state == "Completed"
    assert [r.success for r in second.results] == [True]


def test_e2e_serial_mode_and_bad_soql(emulator) -> None:
    bulk = emulator_bulk(emulator)
    job = bulk.create_job("Account", "insert", concurrency_mode="Serial")
    assert job.concurrency_mode == "Serial"
    bulk.abort_job(job)
    with pytest.raises(JobFailedError, match="No such column 'Nope'") as info:
        list(bulk.query("Account", "SELECT Nope FROM Account"))
    assert info.value.job_id and info.value.batch_id
    assert bulk.get_job(info.value.job_id).state == "Aborted"


def test_e2e_session_expiry_mid_download(emulator_factory) -> None:
    server = emulator_factory(result_rows_per_file=5)
    bulk = emulator_bulk(server)
    bulk.ingest(
        "Account", "insert", [("Name\n" + "\n".join(f"S{i}" for i in range(12)) + "\n").encode()]
    )
    token_before = bulk.client.auth.session()[0]
    seen: list[str] = []
    with bulk.query("Account", "SELECT Name FROM Account") as rows:
        for row in rows:
            seen.append(row["Name"])
            if len(seen) == 1:
                server.state.sessions.expire_all()  # the org ends every session mid-download
    assert sorted(seen) == sorted(f"S{i}" for i in range(12))
    assert bulk.client.auth.session()[0] != token_before
    assert bulk.client.auth.token_requests == 2


def test_e2e_dropped_connection_and_5xx_are_survived(emulator) -> None:
    bulk = emulator_bulk(emulator)
    bulk.ingest(
        "Account", "insert", [("Name\n" + "\n".join(f"F{i}" for i in range(30)) + "\n").encode()]
    )
    emulator.state.faults.configure(
        {
            "drop_connection": {"count": 1, "path": "/result/752", "after_bytes": 40},
            "http_503": {"count": 1, "method": "GET", "path": "/batch$"},
        }
    )
    with bulk.query("Account", "SELECT Name FROM Account") as rows:
        assert sorted(r["Name"] for r in rows) == sorted(f"F{i}" for i in range(30))


def test_e2e_abort_on_exception_leaves_no_open_job(emulator) -> None:
    bulk = emulator_bulk(emulator)

    def bad_batches():
        yield b"Name\nok\n"
        raise RuntimeError("the source broke")

    created: list[str] = []
    create = bulk.create_job

    def spy(*args, **kwargs):
        job = create(*args, **kwargs)
        created.append(job.id)
        return job

    bulk.create_job = spy  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="source broke"):
        bulk.ingest("Account", "insert", bad_batches())
    assert len(created) == 1
    assert bulk.get_job(created[0]).state == "Aborted"
    assert bulk.client.open_jobs.ids() == []


def test_e2e_sigterm_aborts_open_jobs(emulator) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys, time
        from sfbulk.auth import SalesforceAuth
        from sfbulk.http import SalesforceClient
        from sfbulk.bulk1 import Bulk1
        auth = SalesforceAuth.from_config({{"login_url": {emulator.url!r}, **{DEMO!r}}})
        bulk = Bulk1(SalesforceClient(auth))
        job = bulk.create_job("Account", "insert")
        print(job.id, flush=True)
        time.sleep(30)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    job_id = proc.stdout.readline().strip()
    assert job_id.startswith("750")
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + 15, err
    bulk = emulator_bulk(emulator)
    assert bulk.get_job(job_id).state == "Aborted"
    assert f"Aborted open Bulk 1.0 job {job_id} on exit" in err


def test_e2e_ingest_first_batch_list_read_waits_one_interval(emulator, monkeypatch) -> None:
    # Batches added a moment ago are not finished: the first look comes after one interval.
    bulk = emulator_bulk(emulator)
    steps = record_poll_steps(monkeypatch, Bulk1, "list_batches")
    outcome = bulk.ingest("Account", "insert", [b"Name\nR1\n"])
    assert [r.success for b in outcome.batches for r in b.results] == [True]
    assert steps[0] == "sleep" and steps[-1] == "read"
    assert steps.count("read") == steps.count("sleep")
