"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Public sample data lives beside the checkout, never inside it.
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow fresh-clone demo test first so it overlaps the rest of the suite under xdist."""
    items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/test_demo.py") else 1)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The recorded Salesforce responses and sample orgs; tests needing them skip when absent."""
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return FIXTURES


# ---------------------------------------------------------------------------------------------
# The emulator: a local org served over real HTTP on a free loopback port.

#: Records per object in the session-wide demo org (small: tests only read it).
DEMO_RECORDS = 20


def _start_emulator(seed: str = "empty", records: int = DEMO_RECORDS, **settings: object):
    """Start an emulator over a fresh in-memory org; returns the running server."""
    from sfbulk.emulator.app import EmulatorSettings, EmulatorState
    from sfbulk.emulator.server import run_in_thread
    from sfbulk.emulator.store import Org

    emulator_settings = EmulatorSettings(**settings)

    def make_org() -> Org:
        from sfbulk.emulator.seeds import seed_demo, seed_empty

        org = Org(username=emulator_settings.username)
        if seed == "demo":
            seed_demo(org, records)
        else:
            seed_empty(org)
        return org

    state = EmulatorState(org=make_org(), settings=emulator_settings)
    state.org_factory = make_org
    return run_in_thread(state)


@pytest.fixture
def emulator():
    """A fresh emulator with an empty org (standard objects and the demo objects' external id
    fields, no records) for one test.

    Yields the running server: ``.url``, ``.state`` (org, settings, sessions, faults, usage,
    jobs) and ``.stop()``.
    """
    server = _start_emulator()
    try:
        yield server
    finally:
        server.stop(wait=False)


@pytest.fixture
def emulator_factory():
    """Start emulators with custom settings: ``emulator_factory(api_daily_limit=5, seed="demo")``.

    Every server started is stopped when the test ends.
    """
    started = []

    def start(seed: str = "empty", records: int = DEMO_RECORDS, **settings: object):
        server = _start_emulator(seed, records, **settings)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop(wait=False)


@pytest.fixture(scope="session")
def demo_emulator():
    """One emulator seeded with the small demo org, shared by the session: read-only use."""
    server = _start_emulator("demo", DEMO_RECORDS)
    try:
        yield server
    finally:
        server.stop()


def emulator_token(server) -> str:
    """Log in to ``server`` with the password grant and return the access token."""
    import requests

    settings = server.state.settings
    response = requests.post(
        f"{server.url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret,
            "username": settings.username,
            "password": settings.password + settings.security_token,
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def emulator_config(server, auth_type: str = "refresh_token", **overrides: object) -> dict:
    """A tap/target config that logs in to ``server`` with ``auth_type``.

    ``refresh_token`` (default) and ``password`` and ``client_credentials`` use the emulator's
    demo credentials; ``access_token`` logs in first and passes the token and instance URL.
    """
    settings = server.state.settings
    config: dict = {"auth_type": auth_type, "login_url": server.url}
    if auth_type == "refresh_token":
        config.update(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            refresh_token=settings.refresh_token,
        )
    elif auth_type == "password":
        config.update(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            username=settings.username,
            password=settings.password,
            security_token=settings.security_token,
        )
    elif auth_type == "client_credentials":
        config.update(client_id=settings.client_id, client_secret=settings.client_secret)
    elif auth_type == "access_token":
        config.update(access_token=emulator_token(server), instance_url=server.url)
    else:
        raise ValueError(f"emulator_config does not know auth_type {auth_type!r}")
    config.update(overrides)
    return config


def record_poll_steps(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> list[str]:
    """Record, in order, every poll wait (``"sleep"``) and every call of ``cls.method``
    (``"read"``, a status read), both still doing their work."""
    from sfbulk.http import JobWait

    steps: list[str] = []
    sleep, read = JobWait.sleep, getattr(cls, method)

    def waited(self: JobWait) -> None:
        steps.append("sleep")
        sleep(self)

    def looked(self: object, *args: object) -> object:
        steps.append("read")
        return read(self, *args)

    monkeypatch.setattr(JobWait, "sleep", waited)
    monkeypatch.setattr(cls, method, looked)
    return steps
