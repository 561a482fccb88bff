"""Throughput of the emulator's Bulk APIs over real HTTP: records/s served and ingested.

Run: ``.venv/bin/python bench/emulator_bench.py [--records 1000000] [--ingest-batches 10]``.

Starts an emulator in this process on a free loopback port, seeds ``--records`` Accounts
directly into the store, then measures:

- Bulk 1.0 query: create a CSV query job, add the SOQL batch, wait for it, download every result
  file; records/s = rows / (batch added -> last byte downloaded). Goal: >= 200,000/s.
- Bulk 1.0 ingest: ``--ingest-batches`` CSV batches of 10,000 Contacts in one Parallel job;
  records/s = rows / (first batch posted -> last batch Completed). Goal: >= 50,000/s.

- Bulk 2.0 query: one query job over the same Accounts, every page read by locator (100,000
  rows per page); records/s = rows / (job created -> last page downloaded), and the download
  alone. Goal: >= 200,000/s served.
- Bulk 2.0 ingest: one job uploading ``--bulk2-ingest-rows`` Contacts in a single PUT;
  records/s = rows / (job created -> JobComplete). Goal: >= 50,000/s.

Prints one line per measurement, with the process CPU time of each query (server and client
share this process): on a busy machine CPU seconds compare better than wall-clock rates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import requests

from sfbulk.emulator.app import EmulatorSettings, EmulatorState
from sfbulk.emulator.server import run_in_thread
from sfbulk.emulator.store import Org

NS = "http://www.force.com/2009/06/asyncapi/dataload"
SEED_CHUNK = 50_000
INGEST_ROWS = 10_000


def seed_accounts(org: Org, count: int) -> float:
    """Insert ``count`` Accounts in storage form; returns the seconds it took."""
    started = time.perf_counter()
    for start in range(0, count, SEED_CHUNK):
        org.insert_raw(
            "Account",
            [
                {
                    "Name": f"Account {n:07d}",
                    "AccountNumber": f"AN-{n:07d}",
                    "Industry": ("Energy", "Banking", "Retail")[n % 3],
                    "NumberOfEmployees": n % 5000,
                    "AnnualRevenue": float(n * 10),
                    "BillingCity": "San Francisco",
                }
                for n in range(start, min(count, start + SEED_CHUNK))
            ],
        )
    return time.perf_counter() - started


def login(url: str, settings: EmulatorSettings) -> str:
    response = requests.post(
        f"{url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "username": settings.username,
            "password": settings.password + settings.security_token,
        },
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


class Bulk1:
    """The few Bulk 1.0 calls the benchmark needs (JSON job creation, XML answers)."""

    def __init__(self, url: str, token: str, version: str = "62.0") -> None:
        self.base = f"{url}/services/async/{version}"
        self.session = requests.Session()
        self.session.headers["X-SFDC-Session"] = token

    def create_job(self, operation: str, obj: str, content_type: str = "CSV", **extra: str) -> str:
        response = self.session.post(
            f"{self.base}/job",
            json={"operation": operation, "object": obj, "contentType": content_type, **extra},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()["id"]

    def add_batch(self, job_id: str, body: bytes | str, content_type: str = "text/csv") -> str:
        response = self.session.post(
            f"{self.base}/job/{job_id}/batch", data=body,
            headers={"Content-Type": content_type}, timeout=120,
        )
        response.raise_for_status()
        if response.text.startswith("{"):  # JSON jobs answer in JSON
            return response.json()["id"]
        return re.search(r"<id>([^<]+)</id>", response.text).group(1)

    def wait(self, job_id: str, batch_id: str, interval: float = 0.05) -> dict[str, str]:
        while True:
            text = self.session.get(f"{self.base}/job/{job_id}/batch/{batch_id}",
                                    timeout=60).text
            if text.startswith("{"):
                fields = {k: str(v) for k, v in json.loads(text).items()}
            else:
                fields = dict(re.findall(r"<(\w+)>([^<]*)</\1>", text))
            if fields["state"] in ("Completed", "Failed", "NotProcessed"):
                return fields
            time.sleep(interval)

    def result_ids(self, job_id: str, batch_id: str) -> list[str]:
        text = self.session.get(f"{self.base}/job/{job_id}/batch/{batch_id}/result",
                                timeout=60).text
        if text.startswith("["):
            return json.loads(text)
        return re.findall(r"<result>([^<]+)</result>", text)

    def download(self, job_id: str, batch_id: str, result_id: str) -> tuple[int, int]:
        """Stream one result file; returns (bytes, data rows)."""
        size = lines = 0
        with self.session.get(
            f"{self.base}/job/{job_id}/batch/{batch_id}/result/{result_id}",
            stream=True, timeout=600, headers={"Accept-Encoding": "identity"},
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
        return size, lines - 1  # every file starts with its header row


def bench_bulk1_query(client: Bulk1, records: int, content_type: str = "CSV") -> None:
    job_id = client.create_job("query", "Account", content_type)
    started = time.perf_counter()
    cpu = time.process_time()
    batch_id = client.add_batch(
        job_id,
        "SELECT Id, Name, AccountNumber, Industry, NumberOfEmployees, AnnualRevenue, "
        "BillingCity, IsDeleted, CreatedDate, SystemModstamp FROM Account",
        {"CSV": "text/csv", "JSON": "application/json"}.get(content_type, "application/xml"),
    )
    info = client.wait(job_id, batch_id)
    processed = time.perf_counter()
    if info["state"] != "Completed":
        raise SystemExit(f"query batch {batch_id} of job {job_id}: {info}")
    total_bytes = total_rows = 0
    result_ids = client.result_ids(job_id, batch_id)
    for result_id in result_ids:
        size, rows = client.download(job_id, batch_id, result_id)
        total_bytes += size
        total_rows += rows
    finished = time.perf_counter()
    if content_type != "CSV":  # rows are not lines: trust the batch's count
        total_rows = int(info["numberRecordsProcessed"])
    if total_rows != records:
        raise SystemExit(f"downloaded {total_rows} rows, expected {records}")
    elapsed = finished - started
    print(
        f"bulk1 query : {content_type}, {total_rows:,} rows in {len(result_ids)} result files, "
        f"{total_bytes / 1e6:,.1f} MB; processing {processed - started:.2f}s, "
        f"download {finished - processed:.2f}s, CPU {time.process_time() - cpu:.2f}s "
        f"-> {total_rows / elapsed:,.0f} records/s served"
    )


def contact_csv(start: int, count: int) -> bytes:
    lines = ["FirstName,LastName,Email,Title,Phone,MailingCity,LeadSource"]
    lines.extend(
        f"First{n},Last{n},person{n}@example.com,Engineer,+1 415 555 {n % 10000:04d},"
        "San Francisco,Web"
        for n in range(start, start + count)
    )
    return ("\n".join(lines) + "\n").encode()


def bench_bulk1_ingest(client: Bulk1, batches: int) -> None:
    payloads = [contact_csv(i * INGEST_ROWS, INGEST_ROWS) for i in range(batches)]
    job_id = client.create_job("insert", "Contact")
    started = time.perf_counter()
    batch_ids = [client.add_batch(job_id, payload) for payload in payloads]
    posted = time.perf_counter()
    failed = 0
    for batch_id in batch_ids:
        info = client.wait(job_id, batch_id, interval=0.02)
        if info["state"] != "Completed":
            raise SystemExit(f"ingest batch {batch_id} of job {job_id}: {info}")
        failed += int(info["numberRecordsFailed"])
    finished = time.perf_counter()
    rows = batches * INGEST_ROWS
    print(
        f"bulk1 ingest: {rows:,} rows in {batches} batches ({failed} failed); "
        f"upload {posted - started:.2f}s, total {finished - started:.2f}s -> "
        f"{rows / (finished - started):,.0f} records/s ingested"
    )


# --------------------------------------------------------------------------------------------
# Bulk API 2.0

BULK2_PAGE_ROWS = 100_000
#: First Contact number of the 2.0 ingest, clear of the 1.0 ingest's rows.
BULK2_INGEST_START = 10_000_000


def bench_bulk2(
    url: str, token: str, records: int, ingest_rows: int, version: str = "62.0"
) -> None:
    """Bulk 2.0: one query job over every Account paged by locator, one ingest job of Contacts."""
    base = f"{url}/services/data/v{version}/jobs"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"

    def wait(kind: str, job_id: str) -> dict:
        while True:
            info = http.get(f"{base}/{kind}/{job_id}", timeout=60).json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            time.sleep(0.02)

    started = time.perf_counter()
    cpu = time.process_time()
    job = http.post(f"{base}/query", timeout=60, json={
        "operation": "query",
        "query": "SELECT Id, Name, AccountNumber, Industry, NumberOfEmployees, AnnualRevenue, "
        "BillingCity, IsDeleted, CreatedDate, SystemModstamp FROM Account",
    }).json()
    info = wait("query", job["id"])
    processed = time.perf_counter()
    if info["state"] != "JobComplete":
        raise SystemExit(f"bulk2 query job {job['id']}: {info}")
    rows = size = pages = 0
    locator = None
    while True:
        params = {"maxRecords": BULK2_PAGE_ROWS}
        if locator:
            params["locator"] = locator
        with http.get(f"{base}/query/{job['id']}/results", params=params, stream=True,
                      timeout=600, headers={"Accept-Encoding": "identity"}) as page:
            page.raise_for_status()
            for chunk in page.iter_content(chunk_size=1 << 20):
                size += len(chunk)
            rows += int(page.headers["Sforce-NumberOfRecords"])
            locator = page.headers["Sforce-Locator"]
        pages += 1
        if locator == "null":
            break
    finished = time.perf_counter()
    if rows != records:
        raise SystemExit(f"bulk2 query downloaded {rows} rows, expected {records}")
    print(
        f"bulk2 query : {rows:,} rows in {pages} pages, {size / 1e6:,.1f} MB; processing "
        f"{processed - started:.2f}s, download {finished - processed:.2f}s, "
        f"CPU {time.process_time() - cpu:.2f}s -> "
        f"{rows / (finished - started):,.0f} records/s served "
        f"({rows / (finished - processed):,.0f}/s download only)"
    )

    payload = contact_csv(BULK2_INGEST_START, ingest_rows)
    started = time.perf_counter()
    job = http.post(f"{base}/ingest", timeout=60,
                    json={"object": "Contact", "operation": "insert"}).json()
    http.put(f"{base}/ingest/{job['id']}/batches", data=payload,
             headers={"Content-Type": "text/csv"}, timeout=600).raise_for_status()
    uploaded = time.perf_counter()
    http.patch(f"{base}/ingest/{job['id']}", json={"state": "UploadComplete"},
               timeout=60).raise_for_status()
    info = wait("ingest", job["id"])
    finished = time.perf_counter()
    if info["state"] != "JobComplete" or info["numberRecordsProcessed"] != ingest_rows:
        raise SystemExit(f"bulk2 ingest job {job['id']}: {info}")
    with http.get(f"{base}/ingest/{job['id']}/successfulResults/", stream=True, timeout=600,
                  headers={"Accept-Encoding": "identity"}) as results:
        lines = sum(chunk.count(b"\n") for chunk in results.iter_content(chunk_size=1 << 20))
    print(
        f"bulk2 ingest: {ingest_rows:,} rows in one job ({info['numberRecordsFailed']} failed, "
        f"{lines - 1:,} successful results); upload {uploaded - started:.2f}s, total "
        f"{finished - started:.2f}s -> {ingest_rows / (finished - started):,.0f} records/s ingested"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--ingest-batches", type=int, default=10)
    parser.add_argument("--bulk2-ingest-rows", type=int, default=100_000,
                        help="Contacts uploaded in the Bulk 2.0 ingest job")
    parser.add_argument("--rows-per-file", type=int, default=100_000,
                        help="Bulk 1.0 rows per query result file")
    parser.add_argument("--formats", default="CSV",
                        help="Bulk 1.0 query formats to measure, comma-separated (CSV,JSON,XML)")
    args = parser.parse_args()
    print(f"load        : {os.getloadavg()[0]:.2f} (1-minute average, {os.cpu_count()} CPUs)")

    settings = EmulatorSettings(result_rows_per_file=args.rows_per_file)
    state = EmulatorState(org=Org(), settings=settings)
    seconds = seed_accounts(state.org, args.records)
    print(f"seed        : {args.records:,} Accounts in {seconds:.1f}s")
    with run_in_thread(state) as server:
        token = login(server.url, settings)
        bulk1 = Bulk1(server.url, token)
        for content_type in args.formats.split(","):
            bench_bulk1_query(bulk1, args.records, content_type.strip().upper())
        bench_bulk1_ingest(bulk1, args.ingest_batches)
        bench_bulk2(server.url, token, args.records, args.bulk2_ingest_rows)


if __name__ == "__main__":
    main()
