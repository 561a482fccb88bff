"""Fixtures of the reliability suite: fault switches, process runners and the observation log.

Every test here injects a real failure (through the emulator's fault switches, a signal, or bad
input) and then checks where each record ended up. Tests also *record what they saw* through the
``observe`` fixture; when ``SFBULK_RELIABILITY_RESULTS`` names a file, each observation is
appended to it as one JSON line together with the test's outcome, and
``scripts/reliability_report.py`` renders those lines as the table in ``docs/reliability.md``.
Without the variable nothing is written, so the suite runs the same in CI as anywhere else.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: Environment variable naming the JSON-lines file observations are appended to.
RESULTS_ENV = "SFBULK_RELIABILITY_RESULTS"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so ``observe`` can say whether the test passed."""
    report = yield
    setattr(item, f"_reliability_{report.when}", report)
    return report


class Observations:
    """What one test saw: rows for the report table, written when the test ends."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.rows: list[dict[str, Any]] = []

    def __call__(self, area: str, case: str, happened: str, *, before: Any = None,
                 after: Any = None, **details: Any) -> None:
        """Record one row: the fault or input (``case``), what happened, and the record counts.

        Args:
            area: Section of the report (``faults``, ``bad input``, ``config``, ``hostile``,
                ``security``).
            case: The fault or bad input, in words.
            happened: What the product did, in words, with the numbers that prove it.
            before: Records offered (or present) before the fault.
            after: Records where they belong after the run (and any rerun).
            details: Extra facts (API calls, token requests, job states) kept in the JSON.
        """
        self.rows.append({"area": area, "case": case, "happened": happened,
                          "before": before, "after": after, "details": details})


@pytest.fixture
def observe(request: pytest.FixtureRequest) -> Iterator[Observations]:
    """Record observations for the report; appended to ``$SFBULK_RELIABILITY_RESULTS``."""
    observations = Observations(request.node.nodeid)
    yield observations
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    report = getattr(request.node, "_reliability_call", None)
    outcome = "passed"
    if report is not None:
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
    xfail = request.node.get_closest_marker("xfail")
    lines = []
    for row in observations.rows or [{"area": "unrecorded", "case": request.node.name,
                                      "happened": "", "before": None, "after": None,
                                      "details": {}}]:
        row = dict(row, test=request.node.nodeid, outcome=outcome)
        if xfail is not None:
            row["xfail_reason"] = xfail.kwargs.get("reason", "")
        lines.append(json.dumps(row, default=str, sort_keys=True) + "\n")
    # One append per test: small writes with O_APPEND do not interleave between xdist workers.
    with open(target, "a", encoding="utf-8") as handle:
        handle.write("".join(lines))


# ---------------------------------------------------------------------------------------------
# The emulator's admin endpoints


def set_faults(server: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Set fault switches over ``POST /_emulator/faults`` and return the resulting switches."""
    import requests

    response = requests.post(f"{server.url}/_emulator/faults", json=spec, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def clear_faults(server: Any) -> None:
    """Turn every fault off."""
    import requests

    requests.delete(f"{server.url}/_emulator/faults", timeout=10).raise_for_status()


def stats(server: Any) -> dict[str, Any]:
    """``GET /_emulator/stats``: usage, sessions, faults fired, jobs by state, record counts."""
    import requests

    response = requests.get(f"{server.url}/_emulator/stats", timeout=10)
    response.raise_for_status()
    return response.json()


def admin(server: Any, action: str) -> dict[str, Any]:
    """``POST /_emulator/<action>`` (``expire-sessions``, ``revoke-refresh-token``, ``reset``)."""
    import requests

    response = requests.post(f"{server.url}/_emulator/{action}", timeout=10)
    response.raise_for_status()
    return response.json()


def job_states(server: Any) -> dict[str, int]:
    """Jobs the emulator knows, counted by state (both APIs)."""
    return dict(stats(server)["jobs"]["by_state"])


def open_jobs(server: Any) -> list[str]:
    """Ids of jobs still Open (or UploadComplete/InProgress: not terminal) in the emulator."""
    return [job.id for job in server.state.jobs.jobs()
            if str(getattr(job, "state", "")) in ("Open", "UploadComplete", "InProgress")]


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


# ---------------------------------------------------------------------------------------------
# Running the plugins


ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def plugin_env(**extra: str) -> dict[str, str]:
    """Environment for a plugin subprocess: unbuffered, no inherited Salesforce settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TAP_SFBULK", "TARGET_SFBULK", RESULTS_ENV))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def command(name: str) -> str:
    """Path of a console script of this project in the virtualenv (or on PATH)."""
    path = BIN / name
    return str(path) if path.exists() else name


#: Fast polling and short retry waits, so a fault costs milliseconds, not the product's defaults.
FAST_TARGET = {"poll_interval_seconds": 0.02, "poll_interval_max_seconds": 0.1,
               "lock_retry_wait_seconds": 0.01}


def target_config(server: Any, **overrides: Any) -> dict[str, Any]:
    """A target config for ``server`` (refresh-token login) with fast polling."""
    from tests.conftest import emulator_config

    return emulator_config(server, **{**FAST_TARGET, **overrides})


def messages_text(messages: list[dict[str, Any]]) -> str:
    """Singer messages as the lines a tap writes."""
    return "".join(json.dumps(m) + "\n" for m in messages)


def schema_message(stream: str, properties: dict[str, Any],
                   key: list[str] | None = None) -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream,
            "schema": {"type": "object", "properties": properties},
            "key_properties": key or []}


def record_message(stream: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": record}


ACCOUNT_PROPERTIES = {"External_Id__c": {"type": "string"}, "Name": {"type": "string"}}


def account_messages(count: int, *, prefix: str = "R", state: Any = None) -> list[dict[str, Any]]:
    """SCHEMA + ``count`` Account records keyed by ``External_Id__c`` + an optional STATE."""
    out = [schema_message("Account", ACCOUNT_PROPERTIES, ["External_Id__c"])]
    out += [record_message("Account", {"External_Id__c": f"{prefix}{i:04d}",
                                       "Name": f"Account {prefix}{i:04d}"})
            for i in range(count)]
    if state is not None:
        out.append({"type": "STATE", "value": state})
    return out


class TargetRun:
    """The outcome of one in-process target run."""

    def __init__(self, states: list[Any], target: Any, error: BaseException | None) -> None:
        self.states = states
        self.target = target
        self.error = error

    @property
    def api_calls(self) -> int:
        client = self.target.__dict__.get("client") if self.target is not None else None
        return client.api_calls if client is not None else 0


def run_target(server: Any, messages: list[dict[str, Any]], *, max_retries: int = 3,
               load: dict[str, Any] | None = None, **config: Any) -> TargetRun:
    """Run target-sfbulk in this process over real HTTP; never raises (see ``.error``).

    The HTTP client's retry policy is shortened (waits of a few milliseconds, ``max_retries``
    retries) so a persistent fault exhausts quickly; the retry rules themselves are unchanged.
    ``load`` replaces fields of the loader's settings (e.g. ``max_batch_rows``) to reach
    Salesforce's batch limits with a few records.
    """
    import contextlib
    import dataclasses
    import io

    from sfbulk.http import RetryPolicy
    from target_sfbulk.target import TargetSfBulk

    out = io.StringIO()
    target = None
    error: BaseException | None = None
    try:
        target = TargetSfBulk(config=target_config(server, **config))
        target.client.retry_policy = RetryPolicy(max_retries=max_retries, max_seconds=10.0,
                                                 backoff_factor=0.02, backoff_max=0.1)
        if load:
            target.loader.settings = dataclasses.replace(target.loader.settings, **load)
        with contextlib.redirect_stdout(out):
            target.listen(io.StringIO(messages_text(messages)))
    except (Exception, SystemExit) as exc:  # the test inspects it
        error = exc
    # A target writes each STATE value as one JSON line on stdout.
    states = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return TargetRun(states, target, error)


def external_ids(server: Any, obj: str = "Account") -> list[str]:
    """``External_Id__c`` of every live record of ``obj``, sorted (duplicates kept)."""
    return sorted(row[0] for row in server.state.org.query(
        f"SELECT External_Id__c FROM {obj}"))


def write_config(path: Path, config: dict[str, Any]) -> str:
    """Write a plugin config file with private permissions (it holds credentials)."""
    path.write_text(json.dumps(config), encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def source_config(server: Any, **overrides: Any) -> dict[str, Any]:
    """A tap config for ``server``: fast polls, one stream at a time, and no upper-bound lag
    (rows written a moment ago by the test are part of the run)."""
    from tests.conftest import emulator_config

    base = {"poll_interval_max_seconds": 0.05, "max_parallel_streams": 1,
            "upper_bound_lag_seconds": 0}
    return emulator_config(server, **{**base, **overrides})


#: Target settings that copy the demo org's Accounts and Contacts into another org by their
#: external ids: the source's own ids and owner/parent references mean nothing there.
COPY_STREAMS = {
    "Account": {"exclude_fields": ["Id", "ParentId", "OwnerId", "MasterRecordId"]},
    "Contact": {"exclude_fields": ["Id", "AccountId", "OwnerId", "MasterRecordId",
                                   "ReportsToId"]},
}


def copy_config(server: Any, **overrides: Any) -> dict[str, Any]:
    """A target config that upserts the tap's Accounts/Contacts into ``server``."""
    settings = {"action": "upsert", "external_id_field": "External_Id__c",
                "unknown_fields": "drop", "streams": COPY_STREAMS}
    return target_config(server, **{**settings, **overrides})


def last_state(lines: list[str]) -> Any:
    """The value of the last STATE a target wrote (one JSON value per line), or None."""
    values = [json.loads(line) for line in lines if line.strip()]
    return values[-1] if values else None
