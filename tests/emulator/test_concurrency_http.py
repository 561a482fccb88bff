"""Many clients at once, and bodies larger than memory should hold, over real HTTP.

1. Sixteen threads, each with its own ``requests.Session`` (own connections, own login), run
   REST describes, REST queries, Bulk 2.0 ingest jobs and Bulk 1.0 jobs against one emulator at
   the same time; every answer is checked exactly and the stored rows afterwards.
2. An emulator in a child process (``python -m sfbulk.emulator.cli --port 0 --db …``) takes a
   ~64 MB Bulk 2.0 upload sent chunked from a generator and serves a ~64 MB query result
   downloaded in pieces; both must be exact, and the process's RSS must grow far less than the
   body size (the upload is spooled to disk, the result streamed from its result file).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import psutil
import pytest
import requests

NS = "{http://www.force.com/2009/06/asyncapi/dataload}"
THREADS = 16
ROWS_PER_JOB = 40


def _login(url: str, http: requests.Session) -> str:
    from sfbulk.emulator.app import EmulatorSettings

    settings = EmulatorSettings()
    response = http.post(f"{url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": settings.client_id,
        "client_secret": settings.client_secret, "username": settings.username,
        "password": settings.password + settings.security_token,
    }, timeout=30)  # fmt: skip
    response.raise_for_status()
    return response.json()["access_token"]


class Client:
    """One independent client: its own session, connection pool and access token."""

    def __init__(self, url: str, version: str = "62.0") -> None:
        self.url = url
        self.version = version
        self.http = requests.Session()
        self.token = _login(url, self.http)

    def rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 60)
        return self.http.request(method, f"{self.url}/services/data/v{self.version}/{path}",
                                 headers=headers, **kwargs)  # fmt: skip

    def bulk1(
        self, method: str, path: str, body: Any = None, content_type: str = "application/xml"
    ) -> requests.Response:
        headers = {"X-SFDC-Session": self.token, "Content-Type": content_type}
        return self.http.request(method, f"{self.url}/services/async/{self.version}/{path}",
                                 data=body, headers=headers, timeout=60)  # fmt: skip

    def wait(self, path: str, done: tuple[str, ...]) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            info = self.rest("GET", path).json()
            if info["state"] in done:
                return info
            assert time.monotonic() < deadline, info
            time.sleep(0.02)

    def query_all(self, soql: str) -> list[dict[str, Any]]:
        """A REST query with every ``nextRecordsUrl`` page followed."""
        page = self.rest("GET", "query", params={"q": soql}).json()
        records = list(page["records"])
        while not page["done"]:
            headers = {"Authorization": f"Bearer {self.token}"}
            page = self.http.get(self.url + page["nextRecordsUrl"], headers=headers,
                                 timeout=60).json()  # fmt: skip
            records.extend(page["records"])
        assert len(records) == page["totalSize"]
        return records

    def ingest2(self, obj: str, body: Any, operation: str = "insert") -> dict[str, Any]:
        response = self.rest("POST", "jobs/ingest", json={"object": obj, "operation": operation,
                                                           "lineEnding": "LF"})  # fmt: skip
        assert response.status_code == 200, response.text
        job = response.json()["id"]
        response = self.rest("PUT", f"jobs/ingest/{job}/batches", data=body,
                             headers={"Content-Type": "text/csv"}, timeout=300)  # fmt: skip
        assert response.status_code == 201, response.text
        response = self.rest("PATCH", f"jobs/ingest/{job}", json={"state": "UploadComplete"})
        assert response.status_code == 200, response.text
        return self.wait(f"jobs/ingest/{job}", ("JobComplete", "Failed", "Aborted"))

    def bulk1_insert(self, obj: str, csv_body: str) -> list[list[str]]:
        """One CSV batch in a Bulk 1.0 insert job, closed afterwards; the result rows."""
        job_xml = (
            '<?xml version="1.0" encoding="UTF-8"?><jobInfo xmlns="http://www.force.com/2009/'
            f'06/asyncapi/dataload"><operation>insert</operation><object>{obj}</object>'
            "<contentType>CSV</contentType></jobInfo>"
        )
        response = self.bulk1("POST", "job", job_xml)
        assert response.status_code == 201, response.text
        job = ET.fromstring(response.content).findtext(f"{NS}id")
        response = self.bulk1("POST", f"job/{job}/batch", csv_body, "text/csv")
        assert response.status_code == 201, response.text
        batch = ET.fromstring(response.content).findtext(f"{NS}id")
        deadline = time.monotonic() + 60
        while True:
            info = ET.fromstring(self.bulk1("GET", f"job/{job}/batch/{batch}").content)
            state = info.findtext(f"{NS}state")
            if state in ("Completed", "Failed", "NotProcessed"):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.02)
        assert state == "Completed", info.findtext(f"{NS}stateMessage")
        closed = self.bulk1("POST", f"job/{job}", '<?xml version="1.0" encoding="UTF-8"?>'
                            '<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload">'
                            "<state>Closed</state></jobInfo>")  # fmt: skip
        assert closed.status_code == 200, closed.text
        assert ET.fromstring(closed.content).findtext(f"{NS}numberRecordsProcessed") == str(
            csv_body.count("\n") - 1
        )
        result = self.bulk1("GET", f"job/{job}/batch/{batch}/result")
        assert result.headers["Content-Type"] == "text/csv"
        return list(csv.reader(io.StringIO(result.text)))


# ---------------------------------------------------------------------------------------------
# 1. Sixteen concurrent clients


def test_sixteen_clients_mixing_rest_bulk2_and_bulk1(emulator_factory):
    server = emulator_factory(seed="demo", records=100, workers=4)
    reference = Client(server.url)
    describes = {
        name: reference.rest("GET", f"sobjects/{name}/describe").json()
        for name in ("Account", "Contact", "Case")
    }
    cases = sorted(r["Id"] for r in reference.query_all("SELECT Id FROM Case"))
    assert len(cases) == 15
    accounts_before = {r["Id"] for r in reference.query_all("SELECT Id FROM Account")}
    contacts_before = {r["Id"] for r in reference.query_all("SELECT Id FROM Contact")}

    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    made: dict[int, dict[str, dict[str, str]]] = {}

    def work(n: int) -> None:
        try:
            client = Client(server.url)
            barrier.wait(timeout=30)
            mine: dict[str, dict[str, str]] = {"Account": {}, "Contact": {}}
            for round_ in range(2):
                # REST describe: the same document every time, under load.
                name = ("Account", "Contact", "Case")[(n + round_) % 3]
                response = client.rest("GET", f"sobjects/{name}/describe")
                assert response.status_code == 200, response.text
                assert response.json() == describes[name]
                # REST query over records nobody writes: exactly the seeded ones.
                got = client.query_all("SELECT Id, Subject FROM Case ORDER BY Id")
                assert [r["Id"] for r in got] == cases
                # Bulk 2.0 ingest: rows with names only this thread and round use.
                names = [f"T{n:02d}-R{round_}-A{i:03d}" for i in range(ROWS_PER_JOB)]
                body = "Name,NumberOfEmployees\n" + "".join(
                    f"{name},{i}\n" for i, name in enumerate(names)
                )
                info = client.ingest2("Account", body.encode())
                counts = (info["numberRecordsProcessed"], info["numberRecordsFailed"])
                assert (info["state"], *counts) == ("JobComplete", ROWS_PER_JOB, 0)
                job = info["id"]
                ok = list(csv.DictReader(io.StringIO(
                    client.rest("GET", f"jobs/ingest/{job}/successfulResults").text
                )))  # fmt: skip
                assert sorted(r["Name"] for r in ok) == names
                assert all(r["sf__Created"] == "true" for r in ok)
                assert client.rest("GET", f"jobs/ingest/{job}/failedResults").text.strip() == (
                    '"sf__Id","sf__Error",Name,NumberOfEmployees'
                )
                mine["Account"].update({r["sf__Id"]: r["Name"] for r in ok})
                # Bulk 1.0 insert: results in request order, one id per row.
                last_names = [f"T{n:02d}-R{round_}-C{i:03d}" for i in range(ROWS_PER_JOB)]
                rows = client.bulk1_insert(
                    "Contact", "LastName\n" + "".join(f"{x}\n" for x in last_names)
                )
                assert rows[0] == ["Id", "Success", "Created", "Error"]
                assert [r[1:] for r in rows[1:]] == [["true", "true", ""]] * ROWS_PER_JOB
                mine["Contact"].update(zip([r[0] for r in rows[1:]], last_names, strict=True))
            made[n] = mine
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
    assert sorted(made) == list(range(THREADS))

    per_object = 2 * ROWS_PER_JOB * THREADS
    for obj, field, before in (("Account", "Name", accounts_before),
                               ("Contact", "LastName", contacts_before)):  # fmt: skip
        created: dict[str, str] = {}
        for mine in made.values():
            assert not created.keys() & mine[obj].keys(), "an id was handed out twice"
            created.update(mine[obj])
        assert len(created) == per_object
        assert all(re.fullmatch(r"[0-9A-Za-z]{18}", i) for i in created)
        everything = reference.query_all(f"SELECT Id, {field} FROM {obj}")
        stored = {r["Id"]: r[field] for r in everything}
        assert stored.keys() - before == created.keys()
        assert {i: stored[i] for i in created} == created
        assert len(stored) == len(before) + per_object
    employees = reference.query_all(
        "SELECT Name, NumberOfEmployees FROM Account WHERE Name LIKE 'T07-R1-A%'"
    )
    assert sorted((r["Name"], r["NumberOfEmployees"]) for r in employees) == [
        (f"T07-R1-A{i:03d}", i) for i in range(ROWS_PER_JOB)
    ]


# ---------------------------------------------------------------------------------------------
# 2. Large upload and download against an emulator process

BIG_ROWS = 100_000
#: Description length: 100,000 rows of ~650 bytes make a ~65 MB body.
FILL = 630
#: Rows per downloaded result page (maxRecords).
PAGE = 15_000


def _description(i: int) -> str:
    letter = "abcdefghijklmnopqrstuvwxyz"[i % 26]
    return f"{i:08d}" + letter * (FILL - 8)


def _upload(sent: list[int]) -> Iterator[bytes]:
    """The CSV in ~1 MB pieces, built on the fly: requests sends it chunked."""
    buffer = [b"Name,Description\n"]
    size = len(buffer[0])
    for i in range(BIG_ROWS):
        line = f"Big {i:05d},{_description(i)}\n".encode()
        buffer.append(line)
        size += len(line)
        if size >= 1 << 20:
            chunk = b"".join(buffer)
            sent[0] += len(chunk)
            yield chunk
            buffer, size = [], 0
    chunk = b"".join(buffer)
    sent[0] += len(chunk)
    yield chunk


class RssSampler:
    """The peak RSS of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


class EmulatorProcess:
    """``sfbulk-emulator --port 0`` in a child process, keeping its org in a SQLite file."""

    def __init__(self, tmp_path: Path) -> None:
        self.log = (tmp_path / "emulator.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sfbulk.emulator.cli", "--port", "0",
             "--db", str(tmp_path / "org.db"), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)", first)
        if not match:
            self.stop()
        assert match, (first, (tmp_path / "emulator.log").read_text())
        self.url = match.group(1)
        self.pid = self.proc.pid

    def rss(self) -> int:
        return psutil.Process(self.pid).memory_info().rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[Any]:
    """Start emulator processes over one org file; all are stopped at the end."""
    started: list[EmulatorProcess] = []

    def start() -> EmulatorProcess:
        started.append(EmulatorProcess(tmp_path))
        return started[-1]

    try:
        yield start
    finally:
        for process in started:
            if process.proc.poll() is None:
                process.stop()


def test_large_chunked_upload_and_paged_download_stream(emulator_process):
    process = emulator_process()
    url, pid = process.url, process.pid
    client = Client(url)
    # Warm up every code path once, so the baseline holds what a first request allocates.
    info = client.ingest2("Account", b"Name,Description\nWarm,up\n")
    assert info["numberRecordsProcessed"] == 1
    locator_pages = client.rest("POST", "jobs/query", json={
        "operation": "query", "query": "SELECT Id, Name FROM Account"
    }).json()  # fmt: skip
    client.wait(f"jobs/query/{locator_pages['id']}", ("JobComplete",))
    client.rest("GET", f"jobs/query/{locator_pages['id']}/results")

    # The upload: sent chunked (no Content-Length) from a generator, spooled to disk as it
    # arrives. Processing afterwards holds one 10,000-row sub-batch at a time (bulk2.py
    # SUB_BATCH_ROWS), a working set bounded by the sub-batch rather than the body, so the
    # streaming claim is measured on the transfer itself.
    response = client.rest("POST", "jobs/ingest", json={"object": "Account",
                                                         "operation": "insert"})  # fmt: skip
    job = response.json()["id"]
    sent = [0]
    baseline = psutil.Process(pid).memory_info().rss
    with RssSampler(pid) as upload_rss:
        response = client.rest("PUT", f"jobs/ingest/{job}/batches", data=_upload(sent),
                               headers={"Content-Type": "text/csv"})  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    body_size = sent[0]
    assert 60_000_000 < body_size < 80_000_000
    assert upload_rss.peak - baseline < body_size / 8, (upload_rss.peak - baseline, body_size)
    assert client.rest("PATCH", f"jobs/ingest/{job}", json={"state": "UploadComplete"}).ok
    info = client.wait(f"jobs/ingest/{job}", ("JobComplete", "Failed", "Aborted"))
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        BIG_ROWS,
        0,
    )

    # The download from a fresh process over the same org file, so memory freed by the ingest
    # cannot hide a buffered result page.
    process.stop()
    process = emulator_process()
    url, pid = process.url, process.pid
    client = Client(url)
    warm = client.rest("POST", "jobs/query", json={
        "operation": "query", "query": "SELECT Name FROM Account WHERE Name = 'Warm'"
    }).json()["id"]  # fmt: skip
    client.wait(f"jobs/query/{warm}", ("JobComplete",))
    assert client.rest("GET", f"jobs/query/{warm}/results").text == '"Name"\n"Warm"\n'
    response = client.rest("POST", "jobs/query", json={
        "operation": "query",
        "query": "SELECT Name, Description FROM Account WHERE Name LIKE 'Big %'",
    })  # fmt: skip
    assert response.status_code == 200, response.text
    job = response.json()["id"]
    info = client.wait(f"jobs/query/{job}", ("JobComplete",))
    assert info["numberRecordsProcessed"] == BIG_ROWS
    baseline = psutil.Process(pid).memory_info().rss
    seen: set[int] = set()
    downloaded = pages = 0
    digest_got, digest_want = hashlib.sha256(), hashlib.sha256()
    locator: str | None = None
    with RssSampler(pid) as download_rss:
        while True:
            params: dict[str, Any] = {"maxRecords": PAGE}
            if locator:
                params["locator"] = locator
            response = client.rest("GET", f"jobs/query/{job}/results", params=params,
                                   stream=True)  # fmt: skip
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/csv")
            page = bytearray()
            for piece in response.iter_content(chunk_size=256 * 1024):
                page += piece
            downloaded += len(page)
            pages += 1
            rows = list(csv.reader(io.StringIO(page.decode())))
            assert rows[0] == ["Name", "Description"]
            assert int(response.headers["Sforce-NumberOfRecords"]) == len(rows) - 1
            for name, description in rows[1:]:
                i = int(name[4:])
                assert i not in seen and name == f"Big {i:05d}"
                seen.add(i)
                digest_got.update(description.encode())
                digest_want.update(_description(i).encode())
            locator = response.headers["Sforce-Locator"]
            if locator == "null":
                break
    assert seen == set(range(BIG_ROWS))
    assert digest_got.hexdigest() == digest_want.hexdigest()
    assert pages == -(-BIG_ROWS // PAGE)
    assert downloaded > 60_000_000
    assert download_rss.peak - baseline < downloaded / 8, (download_rss.peak - baseline,
                                                           downloaded)  # fmt: skip
