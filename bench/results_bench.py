"""Benchmark the target's result handling: Bulk 2.0 joins and Bulk 1.0 result parsing.

The rows are loaded once for real, through :class:`~target_sfbulk.loader.Loader`, into an
in-process emulator, and the bodies Salesforce answered (the three Bulk 2.0 result CSVs, the Bulk
1.0 batch result CSVs) are kept. The timed part replays the loader's step after the job with those
bodies served from memory: for Bulk 2.0 reading the upload back, building the
:class:`~target_sfbulk.outcomes.ResultJoiner`, parsing the result CSVs and joining every row; for
Bulk 1.0 parsing each batch's result CSV and joining it in order. The batches are encoded once
beforehand (the CSV batcher's work), so the figure is the result handling only.

Figures are CPU seconds (``time.process_time``, best of several rounds) per 100,000 rows, which
stay comparable on a shared machine where wall times do not.

Usage::

    .venv/bin/python bench/results_bench.py                      # 100k rows, insert, both APIs
    .venv/bin/python bench/results_bench.py --rows 200000 --operation update
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sfbulk.bulk1 import BatchOutcome, Bulk1, IngestOutcome  # noqa: E402
from sfbulk.bulk2 import Bulk2, IngestResults  # noqa: E402
from sfbulk.emulator.app import EmulatorSettings, EmulatorState  # noqa: E402
from sfbulk.emulator.seeds import seed_empty  # noqa: E402
from sfbulk.emulator.server import run_in_thread  # noqa: E402
from sfbulk.emulator.store import Org  # noqa: E402
from target_sfbulk.loader import JobReport, Loader  # noqa: E402
from target_sfbulk.mapping import FieldMapper  # noqa: E402
from target_sfbulk.target import TargetSfBulk  # noqa: E402


def records(count: int) -> list[dict[str, Any]]:
    """The rows bench/target_bench.py loads (Account, six fields, half the Industry null)."""
    return [{"Name": f"Account {i}", "AccountNumber": f"AC-{i:08d}",
             "NumberOfEmployees": i % 5000, "AnnualRevenue": round(i * 1.25, 2),
             "Description": f"Customer number {i}, \"quoted\", with a comma",
             "Industry": "Energy" if i % 2 else None} for i in range(count)]


class _Page:
    """A captured response body, served the way ``SalesforceClient.download`` serves one."""

    def __init__(self, data: bytes) -> None:
        self.body = io.BytesIO(data)
        self.headers: dict[str, str] = {}

    def __enter__(self) -> _Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.body.close()


class _Response:
    def __init__(self, data: bytes, content_type: str) -> None:
        self.content = data
        self.headers = {"Content-Type": content_type}


class ReplayClient:
    """Answers the result downloads of one captured job from memory; anything else is a bug."""

    def __init__(self, bodies: dict[str, tuple[bytes, str]]) -> None:
        self.bodies = bodies

    def download(self, method: str, path: str, **_: Any) -> _Page:
        return _Page(self.bodies[path][0])

    def bulk1(self, method: str, path: str, **_: Any) -> _Response:
        return _Response(*self.bodies[path])


class CapturingClient:
    """Wraps the real client and keeps every result body it downloads."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.bodies: dict[str, tuple[bytes, str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @contextlib.contextmanager
    def download(self, method: str, path: str, **kw: Any) -> Iterator[_Page]:
        with self._client.download(method, path, **kw) as page:
            data = page.body.read()
        self.bodies[path] = (data, "text/csv")
        yield _Page(data)

    def bulk1(self, method: str, path: str, **kw: Any) -> Any:
        response = self._client.bulk1(method, path, **kw)
        if method == "GET" and path.endswith("/result"):
            self.bodies[path] = (response.content, response.headers.get("Content-Type", ""))
        return response


class ReplayBulk2(Bulk2):
    """``ingest`` answers the captured job at once; results come from :class:`ReplayClient`."""

    def __init__(self, client: Any, job: Any) -> None:
        super().__init__(client)
        self.job = job

    def ingest(self, *args: Any, **kw: Any) -> IngestResults:  # type: ignore[override]
        return IngestResults(self, self.job)


class ReplayBulk1(Bulk1):
    """``ingest`` answers the captured job's batches, reading each result body again."""

    def __init__(self, client: Any, outcome: IngestOutcome) -> None:
        super().__init__(client)
        self.outcome = outcome

    def ingest(self, *args: Any, **kw: Any) -> IngestOutcome:  # type: ignore[override]
        batches = [BatchOutcome(b.batch, self.batch_results(self.outcome.job.id, b.batch.id))
                   for b in self.outcome.batches]
        return IngestOutcome(self.outcome.job, batches)


def _mapper(describer: Any, operation: str) -> FieldMapper:
    mapper = FieldMapper("Account", describer.describe("Account"), operation,
                         describer.parent_describe)
    properties = {name: {"type": ["string", "null"]} for name in records(1)[0]}
    if operation != "insert":
        properties["Id"] = {"type": "string"}
    mapper.check_schema(properties)
    return mapper


def capture(api: str, operation: str, count: int) -> tuple[Loader, FieldMapper, list[Any], Any]:
    """Load ``count`` rows for real; returns the loader, mapper, the loaded rows and what the
    job answered (the Bulk 2.0 job, or the Bulk 1.0 outcome) with the captured bodies."""
    settings = EmulatorSettings()
    state = EmulatorState(org=Org(username=settings.username), settings=settings)
    seed_empty(state.org)
    server = run_in_thread(state)
    try:
        target = TargetSfBulk(config={
            "auth_type": "refresh_token", "login_url": server.url,
            "client_id": settings.client_id, "client_secret": settings.client_secret,
            "refresh_token": settings.refresh_token, "bulk_api": api,
            "poll_interval_seconds": 0.05, "poll_interval_max_seconds": 0.5})
        describer, loader = target.salesforce()
        mapper = _mapper(describer, "insert")
        rows = [mapper.prepare(r).values for r in records(count)]
        if operation != "insert":
            outcomes, _ = loader.load(mapper, "insert", rows)
            rows = [{"Id": o.id, **row} for o, row in zip(outcomes, rows, strict=True)]
            mapper = _mapper(describer, operation)
        spy = CapturingClient(loader.bulk2.client)
        answered: list[Any] = []
        if api == "2.0":
            real_ingest = Bulk2.ingest

            def ingest2(self: Bulk2, *args: Any, **kw: Any) -> IngestResults:
                results = real_ingest(self, *args, **kw)
                answered.append(results.job)
                return IngestResults(Bulk2(spy), results.job)  # type: ignore[arg-type]

            loader.bulk2.ingest = ingest2.__get__(loader.bulk2)  # type: ignore[method-assign]
        else:
            loader.bulk1.client = spy  # type: ignore[assignment]
            real = loader.bulk1.ingest

            def ingest1(*args: Any, **kw: Any) -> IngestOutcome:
                outcome = real(*args, **kw)
                answered.append(outcome)
                return outcome

            loader.bulk1.ingest = ingest1  # type: ignore[method-assign]
        outcomes, _ = loader.load(mapper, operation, rows)
        assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
        assert len(answered) == 1, "the bench expects one job"
        replay = ReplayClient(spy.bodies)
        if api == "2.0":
            loader.bulk2 = ReplayBulk2(replay, answered[0])
        else:
            loader.bulk1 = ReplayBulk1(replay, answered[0])
        return loader, mapper, rows, outcomes
    finally:
        server.stop()


def measure(api: str, operation: str, count: int, rounds: int) -> tuple[float, float]:
    """CPU seconds per 100,000 rows of result handling: the first round, and the best of
    ``rounds`` (the first one pays for growing the heap, as a target's first jobs do)."""
    loader, mapper, rows, expected = capture(api, operation, count)
    key_column = {"insert": None, "update": "Id", "delete": "Id"}[operation]
    items = list(enumerate(rows))
    # The batches are encoded once: the timed part is what follows the job.
    payloads, rejected = loader._batches(mapper, items, set(), api)
    loader._batches = lambda *_: (payloads, dict(rejected))  # type: ignore[method-assign]
    figures = []
    for _ in range(rounds):
        started = time.process_time()
        results = loader._send_bulk(mapper, operation, None, key_column, items, False,
                                    JobReport(jobs=[]), set())
        figures.append((time.process_time() - started) * 100_000 / count)
        assert [results[i] for i in range(count)] == expected
        del results
    return figures[0], min(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--apis", nargs="+", default=["2.0", "1.0"])
    parser.add_argument("--operation", default="insert", choices=["insert", "update", "delete"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for api in args.apis:
        first, best = measure(api, args.operation, args.rows, args.rounds)
        print(f"Bulk {api} {args.operation} {args.rows} rows: result handling, CPU s per 100k "
              f"rows: first round {first:.3f}, best {best:.3f}")


if __name__ == "__main__":
    main()
