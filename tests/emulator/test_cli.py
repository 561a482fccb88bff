"""The ``sfbulk-emulator`` command: flags, the start-up banner, data options and clean shutdown."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from sfbulk.emulator.cli import build_parser, faults_from_args, settings_from_args
from sfbulk.emulator.seeds import demo_counts

ROOT = Path(__file__).resolve().parents[2]


class Emulator:
    """``sfbulk-emulator`` running in a child process; its stdout is read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sfbulk.emulator.cli", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def readline(self, timeout: float = 20.0) -> str:
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout}s; so far {self.lines}") from None
        self.lines.append(line)
        return line

    def banner(self) -> dict[str, str]:
        first = self.readline()
        assert first.startswith("listening on http://127.0.0.1:"), (first, self.stderr())
        fields = {"url": first.removeprefix("listening on ")}
        for _ in range(7):
            key, _, value = self.readline().partition(": ")
            fields[key] = value
        return fields

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def run():
    started: list[Emulator] = []

    def start(*args: str) -> Emulator:
        emulator = Emulator(*args)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.kill()


def _token(url: str, username="demo@example.com", password="demo-password") -> str:
    response = requests.post(
        f"{url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "username": username,
            "password": password,
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


# --- flags -----------------------------------------------------------------------------------


def test_defaults():
    args = build_parser().parse_args([])
    settings = settings_from_args(args)
    assert (args.host, args.port, args.seed, args.records, args.db) == (
        "127.0.0.1",
        0,
        "empty",
        100,
        None,
    )
    assert (settings.username, settings.password, settings.security_token) == (
        "demo@example.com",
        "demo-password",
        "",
    )
    assert (settings.client_id, settings.client_secret, settings.refresh_token) == (
        "demo-client",
        "demo-secret",
        "demo-refresh-token",
    )
    assert (settings.session_seconds, settings.api_daily_limit) == (7200, 15000)
    assert settings.jwt_certificate is None
    assert faults_from_args(args) == {}


def test_fault_flags_mirror_the_admin_endpoint():
    args = build_parser().parse_args(
        [
            "--fault-http-500-rate", "0.1",
            "--fault-http-503", "2",
            "--fault-drop-connection", "1", "--fault-drop-connection-rate", "0.5",
            "--fault-request-limit-exceeded", "3",
            "--fault-path", "/jobs/",
            "--fault-expire-session-after", "10",
            "--fault-fail-batches", "4",
            "--fault-lock-error-share", "0.25",
            "--fault-never-finish",
            "--fault-seed", "9",
        ]
    )  # fmt: skip
    assert faults_from_args(args) == {
        "http_500": {"rate": 0.1, "path": "/jobs/"},
        "http_503": {"count": 2, "path": "/jobs/"},
        "drop_connection": {"count": 1, "rate": 0.5, "path": "/jobs/"},
        "request_limit_exceeded": {"count": 3, "path": "/jobs/"},
        "expire_session_after": 10,
        "fail_batches": 4,
        "lock_error_share": 0.25,
        "never_finish": True,
        "seed": 9,
    }


def test_credential_and_limit_flags(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n")
    args = build_parser().parse_args(
        [
            "--username", "u@x.com", "--password", "pw", "--security-token", "TOK",
            "--client-id", "cid", "--client-secret", "cs", "--refresh-token", "rt",
            "--jwt-cert", str(cert), "--session-seconds", "60", "--api-daily-limit", "99",
            "--result-rows-per-file", "500", "--processing-delay", "0.5", "--workers", "2",
        ]
    )  # fmt: skip
    settings = settings_from_args(args)
    assert (settings.username, settings.password, settings.security_token) == (
        "u@x.com",
        "pw",
        "TOK",
    )
    assert (settings.client_id, settings.client_secret, settings.refresh_token) == (
        "cid",
        "cs",
        "rt",
    )
    assert settings.jwt_certificate == cert.read_text()
    assert (settings.session_seconds, settings.api_daily_limit) == (60, 99)
    assert (settings.result_rows_per_file, settings.bulk2_page_rows) == (500, 500)
    assert (settings.processing_delay, settings.workers) == (0.5, 2)


# --- the running command ---------------------------------------------------------------------


def test_serves_until_sigterm(run):
    emulator = run("--api-daily-limit", "7", "--fault-http-503", "1", "--seed", "demo",
                   "--records", "10")  # fmt: skip
    banner = emulator.banner()
    assert banner == {
        "url": banner["url"],
        "username": "demo@example.com",
        "password": "demo-password",
        "security token": "",
        "client id": "demo-client",
        "client secret": "demo-secret",
        "refresh token": "demo-refresh-token",
        "login url": f"{banner['url']}  (token endpoint {banner['url']}/services/oauth2/token)",
    }
    url = banner["url"]
    headers = {"Authorization": f"Bearer {_token(url)}"}
    limits = f"{url}/services/data/v62.0/limits"
    assert requests.get(limits, headers=headers, timeout=10).status_code == 503
    response = requests.get(limits, headers=headers, timeout=10)
    assert response.json()["DailyApiRequests"] == {"Max": 7, "Remaining": 6}
    query = requests.get(
        f"{url}/services/data/v62.0/query",
        params={"q": "SELECT Id FROM Account"},
        headers=headers,
        timeout=10,
    )
    assert query.json()["totalSize"] == demo_counts(10)["Account"]
    assert emulator.stop(signal.SIGTERM) == 0
    assert emulator.readline() == "sfbulk-emulator: shutting down"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/services/data", timeout=2)


def test_database_file_keeps_the_org(run, tmp_path):
    db = tmp_path / "org.sqlite"
    first = run("--db", str(db), "--username", "ops@example.com", "--password", "pw")
    url = first.banner()["url"]
    token = _token(url, "ops@example.com", "pw")
    created = requests.post(
        f"{url}/services/data/v62.0/sobjects/Account",
        json={"Name": "Kept", "External_Id__c": "K-1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    assert first.stop(signal.SIGINT) == 0

    second = run("--db", str(db), "--username", "ops@example.com", "--password", "pw",
                 "--seed", "demo")  # fmt: skip
    url = second.banner()["url"]
    token = _token(url, "ops@example.com", "pw")
    rows = requests.get(
        f"{url}/services/data/v62.0/query",
        params={"q": "SELECT Name, External_Id__c FROM Account"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    assert [(r["Name"], r["External_Id__c"]) for r in rows["records"]] == [("Kept", "K-1")]
    assert second.stop() == 0
    assert "already holds the org; the demo seed is not added again" in second.stderr()


def test_import_sfdx_metadata_only(run, fixtures_dir):
    project = fixtures_dir / "sample-orgs" / "ebikes-lwc"
    emulator = run("--import-sfdx", str(project), "--no-data")
    url = emulator.banner()["url"]
    headers = {"Authorization": f"Bearer {_token(url)}"}
    describe = requests.get(
        f"{url}/services/data/v62.0/sobjects/Product__c/describe", headers=headers, timeout=10
    )
    assert describe.status_code == 200
    assert describe.json()["custom"] is True
    count = requests.get(
        f"{url}/services/data/v62.0/query",
        params={"q": "SELECT Id FROM Product__c"},
        headers=headers,
        timeout=10,
    )
    assert count.json()["totalSize"] == 0
    assert emulator.stop() == 0


def test_busy_port_is_reported(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        emulator = run("--port", str(port))
        assert emulator.proc.wait(timeout=20) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in emulator.stderr()


def test_flag_errors(run):
    emulator = run("--plan", "data-plan.json")
    assert emulator.proc.wait(timeout=20) == 2
    assert "--plan needs --import-sfdx" in emulator.stderr()
    emulator = run("--fault-lock-error-share", "2")
    assert emulator.proc.wait(timeout=20) == 2
    assert "lock_error_share must be between 0 and 1" in emulator.stderr()


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("sfbulk-emulator")
    assert script.exists()
    assert os.access(script, os.X_OK)
    help_text = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for flag in ("--seed", "--import-sfdx", "--jwt-cert", "--fault-http-500-rate", "--db"):
        assert flag in help_text
