"""Bulk 2.0 client: job records (recorded bodies), locator paging on a scripted org, and query and
ingest end to end against the emulator."""

from __future__ import annotations

import io
import json

import pytest

from sfbulk.auth import SalesforceAuth
from sfbulk.bulk2 import MAX_UPLOAD_BYTES, Bulk2, IngestJobInfo, QueryJobInfo
from sfbulk.errors import JobFailedError, RecordCountMismatchError, SalesforceError
from sfbulk.http import SalesforceClient
from tests.conftest import FIXTURES, record_poll_steps
from tests.sfbulk.test_bulk1_client import DEMO
from tests.sfbulk.test_http import Reply, Req, StubServer

B2 = FIXTURES / "salesforce" / "bulk2"
JOB = "750R0000000zlh9IAA"


def test_job_records_from_recorded_bodies() -> None:
    query = QueryJobInfo.from_json(
        json.loads((B2 / "doc_query_job_info_jobcomplete.json").read_text())
    )
    assert (query.id, query.state, query.object) == (JOB, "JobComplete", "Account")
    assert query.number_records_processed == 500
    assert query.api_version == "46.0"
    assert query.is_pk_chunking_supported is True
    assert query.is_terminal
    created = QueryJobInfo.from_json(
        json.loads((B2 / "doc_query_create_response.json").read_text())
    )
    assert created.state == "UploadComplete" and not created.is_terminal
    failed = IngestJobInfo.from_json(json.loads((B2 / "ingest_job_info_failed.json").read_text()))
    assert failed.state == "Failed"
    assert failed.error_message == (
        "InvalidBatch : Field name not found : StageName_invalid_field_on_purpose"
    )
    assert failed.external_id_field == "external_id__c"
    partial = IngestJobInfo.from_json(
        json.loads((B2 / "ingest_job_info_jobcomplete_partial_failure.json").read_text())
    )
    assert (partial.number_records_processed, partial.number_records_failed) == (8, 1)
    opened = IngestJobInfo.from_json(
        json.loads((B2 / "ingest_job_create_upsert_open.json").read_text())
    )
    assert opened.content_url == "services/data/v60.0/jobs/ingest/750ak000009BWKLAA4/batches"
    assert opened.api_version == "60.0"


# --------------------------------------------------------------------------------------------
# Scripted org


def _job(state: str, processed: int = 0, error: str | None = None) -> Reply:
    body = {"id": JOB, "operation": "query", "object": "Account", "state": state}
    body["numberRecordsProcessed"] = processed
    if error:
        body["errorMessage"] = error
    return Reply(200, json.dumps(body), {"Content-Type": "application/json"})


@pytest.fixture
def org():
    stub = StubServer()
    stub.route("POST", r"/services/data/v62\.0/jobs/query", _job("UploadComplete"))
    stub.route("PATCH", rf"/services/data/v62\.0/jobs/query/{JOB}", _job("Aborted"))
    yield stub
    stub.close()


def make_bulk(stub: StubServer) -> Bulk2:
    auth = SalesforceAuth.from_config({"access_token": "tok", "instance_url": stub.url})
    client = SalesforceClient(auth, max_retries=2, backoff_factor=0.001, timeout=(2, 5))
    return Bulk2(client, poll_interval_seconds=0.01, poll_interval_max_seconds=0.02)


def test_query_follows_locators_until_literal_null(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/data/v62\.0/jobs/query/{JOB}",
        [_job("InProgress"), _job("JobComplete", 5)],
    )
    pages = {
        None: ('"Id","Name"\n"001A","a"\n"001B","b"\n', "MjAwMA", 2),
        "MjAwMA": ('"Id","Name"\n"001C","c\nmulti"\n"001D",""\n', "NDAwMA", 2),
        "NDAwMA": ('"Id","Name"\n"001E","e"\n', "null", 1),
    }

    def results(req: Req) -> Reply:
        body, locator, count = pages[req.query.get("locator", [None])[0]]
        headers = {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(count)}
        return Reply(200, body, headers)

    org.route("GET", rf"/services/data/v62\.0/jobs/query/{JOB}/results", results)
    bulk = make_bulk(org)
    with bulk.query("SELECT Id, Name FROM Account", max_records=2) as rows:
        got = [(r["Id"], r["Name"]) for r in rows]
    assert got == [("001A", "a"), ("001B", "b"), ("001C", "c\nmulti"), ("001D", ""), ("001E", "e")]
    assert rows.batches_read == 3
    assert rows.job.state == "JobComplete"
    hits = org.hits("GET", rf"/services/data/v62\.0/jobs/query/{JOB}/results")
    assert [h.query.get("locator") for h in hits] == [None, ["MjAwMA"], ["NDAwMA"]]
    assert all(h.query["maxRecords"] == ["2"] for h in hits)
    assert all(h.headers["accept"] == "text/csv" for h in hits)
    create = json.loads(org.hits("POST", r"/services/data/v62\.0/jobs/query")[0].body)
    assert create == {
        "operation": "query",
        "query": "SELECT Id, Name FROM Account",
        "contentType": "CSV",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    }
    assert org.hits("PATCH", rf"/services/data/v62\.0/jobs/query/{JOB}") == []
    assert bulk.client.open_jobs.ids() == []


def test_total_and_page_counts_checked(org: StubServer) -> None:
    org.route("GET", rf"/services/data/v62\.0/jobs/query/{JOB}", _job("JobComplete", 3))
    org.route(
        "GET",
        rf"/services/data/v62\.0/jobs/query/{JOB}/results",
        Reply(200, '"Id"\n"001A"\n', {"Sforce-Locator": "null", "Sforce-NumberOfRecords": "1"}),
    )
    with pytest.raises(RecordCountMismatchError) as info:
        list(make_bulk(org).query("SELECT Id FROM Account"))
    assert (info.value.expected, info.value.actual, info.value.job_id) == (3, 1, JOB)
    org.route(
        "GET",
        rf"/services/data/v62\.0/jobs/query/{JOB}/results",
        Reply(200, '"Id"\n"001A"\n', {"Sforce-Locator": "null", "Sforce-NumberOfRecords": "2"}),
    )
    with pytest.raises(RecordCountMismatchError, match="page 1 held 1 rows"):
        list(make_bulk(org).query("SELECT Id FROM Account"))


def test_failed_query_job_names_error_message(org: StubServer) -> None:
    org.route(
        "GET",
        rf"/services/data/v62\.0/jobs/query/{JOB}",
        _job("Failed", error="InvalidBatch : Retried more than 15 times"),
    )
    bulk = make_bulk(org)
    with pytest.raises(JobFailedError) as info:
        list(bulk.query("SELECT Id FROM Account", include_deleted=True))
    assert info.value.message == "InvalidBatch : Retried more than 15 times"
    assert info.value.job_id == JOB
    assert json.loads(org.hits("POST", r".*/jobs/query")[0].body)["operation"] == "queryAll"
    assert org.hits("PATCH", rf".*/jobs/query/{JOB}") == []  # terminal already: nothing to abort


def test_early_close_aborts_unfinished_job(org: StubServer) -> None:
    org.route("GET", rf"/services/data/v62\.0/jobs/query/{JOB}", _job("InProgress"))
    bulk = make_bulk(org)
    rows = bulk.query("SELECT Id FROM Account", timeout=0.05)
    with pytest.raises(Exception, match="still InProgress"):
        list(rows)
    (abort,) = org.hits("PATCH", rf"/services/data/v62\.0/jobs/query/{JOB}")
    assert json.loads(abort.body) == {"state": "Aborted"}
    assert bulk.client.open_jobs.ids() == []


def test_upload_size_limit() -> None:
    auth = SalesforceAuth.from_config(
        {"access_token": "t", "instance_url": "https://x.my.salesforce.com"}
    )
    bulk = Bulk2(SalesforceClient(auth))

    class Big(io.BytesIO):
        def seek(self, offset: int, whence: int = 0) -> int:
            if whence == io.SEEK_END:
                return MAX_UPLOAD_BYTES + 1
            return super().seek(offset, whence)

    with pytest.raises(ValueError, match="split the records over several jobs"):
        bulk.upload(JOB, Big(b"Name\n"))


# --------------------------------------------------------------------------------------------
# End to end against the emulator


def emulator_bulk(server) -> Bulk2:
    auth = SalesforceAuth.from_config({"login_url": server.url, **DEMO})
    client = SalesforceClient(auth, max_retries=4, backoff_factor=0.01, backoff_max=0.05)
    return Bulk2(
        client, poll_interval_seconds=0.02, poll_interval_max_seconds=0.2, job_timeout_seconds=30
    )


def test_e2e_ingest_with_successful_failed_results(emulator) -> None:
    bulk = emulator_bulk(emulator)
    csv_body = (
        'Name,AccountNumber,Description\nAcme,K1,"multi\nline, “quoted”"\n,K2,x\nÆon 🚀,K3,\n'
    )
    res = bulk.ingest("Account", "insert", csv_body.encode())
    assert res.job.state == "JobComplete"
    assert (res.job.number_records_processed, res.job.number_records_failed) == (3, 1)
    joined = res.by_key("AccountNumber")
    assert sorted(joined) == ["K1", "K2", "K3"]
    assert joined["K1"][0] == "success"
    assert joined["K1"][1]["sf__Created"] == "true"
    assert joined["K1"][1]["Description"] == "multi\nline, “quoted”"
    assert joined["K3"][1]["Name"] == "Æon 🚀"
    outcome, row = joined["K2"]
    assert outcome == "failed"
    assert row["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert list(res.unprocessed()) == []
    ids = {joined[k][1]["sf__Id"] for k in ("K1", "K3")}
    with bulk.query("SELECT Id, Name, AccountNumber FROM Account ORDER BY AccountNumber") as rows:
        got = list(rows)
    assert [r["AccountNumber"] for r in got] == ["K1", "K3"]
    assert {r["Id"] for r in got} == ids
    assert bulk.client.open_jobs.ids() == []


def test_e2e_ingest_result_rows_are_cell_lists_header_first(emulator) -> None:
    bulk = emulator_bulk(emulator)
    res = bulk.ingest("Account", "insert", b"Name,AccountNumber\nR1,K1\n,K2\n")
    success = list(res.rows("successful"))
    assert success[0] == ["sf__Id", "sf__Created", "Name", "AccountNumber"]
    assert [row[1:] for row in success[1:]] == [["true", "R1", "K1"]]
    assert success[1][0] == next(res.successful())["sf__Id"]
    failed = list(res.rows("failed"))
    assert failed[0] == ["sf__Id", "sf__Error", "Name", "AccountNumber"]
    assert [(row[0], row[2:]) for row in failed[1:]] == [("", ["", "K2"])]
    assert failed[1][1].startswith("REQUIRED_FIELD_MISSING:")
    # Nothing went unprocessed: the set holds the uploaded header and no rows.
    assert list(res.rows("unprocessed")) == [["Name", "AccountNumber"]]


def test_e2e_upsert_update_delete_join_on_keys(emulator) -> None:
    bulk = emulator_bulk(emulator)
    first = bulk.ingest("Account", "insert", b"Name,AccountNumber\nU1,E1\nU2,E2\n").by_key(
        "AccountNumber"
    )
    id1 = first["E1"][1]["sf__Id"]
    upd = bulk.ingest(
        "Account", "update", f"Id,Name\n{id1},U1 renamed\n001000000000000AAA,ghost\n".encode()
    )
    joined = upd.by_key("Id")
    assert joined[id1][0] == "success" and joined[id1][1]["sf__Created"] == "false"
    assert joined["001000000000000AAA"][0] == "failed"
    ups = bulk.ingest(
        "Account", "upsert", f"Id,Name\n{id1},U1 again\n".encode(), external_id_field="Id"
    )
    assert [r["sf__Created"] for r in ups.successful()] == ["false"]
    gone = bulk.ingest("Account", "delete", f"Id\n{id1}\n".encode())
    assert [r["sf__Id"] for r in gone.successful()] == [id1]
    with bulk.query("SELECT Name FROM Account") as rows:
        assert [r["Name"] for r in rows] == ["U2"]
    with bulk.query(
        "SELECT Name, IsDeleted FROM Account ORDER BY Name", include_deleted=True
    ) as rows:
        assert [(r["Name"], r["IsDeleted"]) for r in rows] == [
            ("U1 again", "true"),
            ("U2", "false"),
        ]


def test_e2e_bad_header_fails_job_with_message(emulator) -> None:
    bulk = emulator_bulk(emulator)
    res = bulk.ingest("Account", "insert", b"Name,Bogus__c\nA,1\n")
    assert res.job.state == "Failed"
    assert res.job.error_message == "InvalidBatch : Field name not found : Bogus__c"
    assert res.job.number_records_processed == 0


def test_e2e_query_paging_across_locators(emulator_factory) -> None:
    server = emulator_factory(bulk2_page_rows=4)
    bulk = emulator_bulk(server)
    names = [f"N{i:02d}" for i in range(11)]
    bulk.ingest("Account", "insert", ("Name\n" + "\n".join(names) + "\n").encode())
    with bulk.query("SELECT Name FROM Account ORDER BY Name") as rows:
        assert [r["Name"] for r in rows] == names
    assert rows.batches_read == 3  # 4 + 4 + 3 rows, each page with its header
    with bulk.query("SELECT Name FROM Account ORDER BY Name", max_records=5) as rows:
        assert [r["Name"] for r in rows] == names
    assert rows.batches_read == 3
    with bulk.query("SELECT Name FROM Contact") as rows:
        assert list(rows) == []


def test_e2e_session_expiry_and_dropped_page(emulator_factory) -> None:
    server = emulator_factory(bulk2_page_rows=3)
    bulk = emulator_bulk(server)
    names = sorted(f"X{i}" for i in range(10))
    bulk.ingest("Account", "insert", ("Name\n" + "\n".join(names) + "\n").encode())
    server.state.faults.configure(
        {"drop_connection": {"count": 1, "path": "/results", "after_bytes": 20}}
    )
    seen = []
    with bulk.query("SELECT Name FROM Account") as rows:
        for row in rows:
            seen.append(row["Name"])
            if len(seen) == 2:
                server.state.sessions.expire_all()
    assert sorted(seen) == names
    assert bulk.client.auth.token_requests == 2


def test_e2e_abort_on_exception_during_wait(emulator) -> None:
    bulk = emulator_bulk(emulator)
    emulator.state.faults.configure({"never_finish": True})
    with pytest.raises(Exception, match="still"):
        bulk.ingest("Account", "insert", b"Name\nslow\n", timeout=0.2)
    emulator.state.faults.clear()
    assert bulk.client.open_jobs.ids() == []
    listing = bulk.client.bulk2("GET", "/ingest").json()["records"]
    assert [j["state"] for j in listing] == ["Aborted"]


def test_e2e_not_found_maps_to_typed_error(emulator) -> None:
    bulk = emulator_bulk(emulator)
    with pytest.raises(SalesforceError) as info:
        bulk.get_query_job("750000000000000AAA")
    assert info.value.status == 404
    assert info.value.code == "NOT_FOUND"
    assert info.value.job_id == "750000000000000AAA"


def test_e2e_ingest_first_status_read_waits_one_interval(emulator, monkeypatch) -> None:
    # A job whose data was only just uploaded is never finished: reading its state at once
    # would spend an API call on the answer "UploadComplete".
    bulk = emulator_bulk(emulator)
    steps = record_poll_steps(monkeypatch, Bulk2, "get_ingest_job")
    res = bulk.ingest("Account", "insert", b"Name\nR1\n")
    assert res.job.state == "JobComplete"
    assert steps[0] == "sleep" and steps[-1] == "read"
    assert steps.count("read") == steps.count("sleep")  # every read after a wait
