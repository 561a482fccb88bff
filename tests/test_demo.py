"""The main job, exactly as a newcomer runs it, and the plugins joined by a plain pipe.

``test_readme_main_job_on_a_fresh_clone`` clones the repository at HEAD into a temporary folder
(with ``../shared`` beside it when this checkout has one), runs the main-job command README.md
gives — nothing prepared beforehand: it creates both virtualenvs, installs Meltano and the
plugins and copies the org — and checks the figures the demo prints. On the same clone it then
runs the README's Salesforce DX example and ``meltano run tap-sfbulk target-jsonl``. It is slow
by nature (installs; uv's and pip's caches make repeats quicker), so it is one test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, SHARED, emulator_config

sys.path.insert(0, str(ROOT / "scripts"))
import demo

TABLE_ROW = re.compile(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(.+)$", re.MULTILINE)


def readme_command(prefix: str) -> str:
    """The first shell line of README.md that starts with ``prefix`` (comment removed)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            if line.startswith(prefix):
                return line.split("#")[0].strip()
    raise AssertionError(f"README.md gives no command starting with {prefix!r}")


def demo_table(output: str) -> dict[str, tuple[int, int, str, str]]:
    """The demo's per-object rows: source, destination, references, values."""
    table = output[output.index("Object ") :]
    return {
        name: (int(source), int(destination), refs, values.strip())
        for name, source, destination, refs, _fields, values in TABLE_ROW.findall(table)
    }


def port_closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


def run_in_clone(command: str, clone: Path, env: dict[str, str], timeout: float) -> str:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    print(f"{command}: exit {result.returncode} after {elapsed:.0f}s")
    assert result.returncode == 0, (
        f"{command} failed with exit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
        f"\n--- stderr\n{result.stderr[-4000:]}"
    )
    # The orgs the demo started are gone.
    for url in re.findall(r"(?:source|destination) org (http://[\d.]+:\d+)", result.stdout):
        assert port_closed(url), f"an emulator still listens on {url}"
    return result.stdout


@pytest.mark.timeout(2400)
def test_readme_main_job_on_a_fresh_clone(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed, so the repository cannot be cloned")
    clone = tmp_path / "main"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not k.startswith("MELTANO")
    }

    command = readme_command("scripts/demo.sh")
    assert command == "scripts/demo.sh"
    out = run_in_clone(command, clone, env, timeout=1500)
    assert demo_table(out) == {
        "Account": (600, 600, "-", "equal"),
        "Contact": (1200, 1200, "1200/1200", "equal"),
        "Opportunity": (750, 750, "750/750", "equal"),
        "Case": (450, 450, "900/900", "equal"),
    }
    assert "demo: OK (3000 records in 4 objects copied)" in out
    calls = dict(re.findall(r"API calls \((\w+)\): (\d+) requests, 4 Bulk jobs", out))
    assert set(calls) == {"source", "destination"} and all(int(n) > 0 for n in calls.values())
    assert (clone / ".venv-meltano" / "bin" / "meltano").is_file()
    assert "Run completed" in (clone / "output/demo/meltano.log").read_text(encoding="utf-8")

    if SHARED.is_dir():
        command = readme_command("scripts/demo.sh --import-sfdx")
        out = run_in_clone(command, clone, env, timeout=900)
        assert demo_table(out) == {
            "Experience__c": (35, 35, "-", "equal"),
            "Contact": (156, 156, "-", "equal"),
            "Guest_Review__c": (10, 10, "20/20", "equal"),
            "Case": (2, 2, "2/2", "equal"),
        }
        # Experience__c has no Bulk API access: it travels through the plugins' REST fallback.
        assert "Experience__c: insert; dropped: Id, OwnerId; through REST" in out
        assert (
            "Guest_Review__c: insert, parents by Contact__r.External_Id__c, Experience__r.Name"
            in out
        )
        assert "demo: OK (203 records in 4 objects copied)" in out

    _meltano_run_to_jsonl(clone, env)


def _meltano_run_to_jsonl(clone: Path, env: dict[str, str]) -> None:
    """``meltano run tap-sfbulk target-jsonl`` in the clone writes every record of the demo org."""
    emulator = subprocess.Popen(
        [str(clone / ".venv/bin/sfbulk-emulator"), "--seed", "demo", "--records", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert emulator.stdout is not None
        url = emulator.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        run_env = dict(
            env,
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
            MELTANO_VENV_BACKEND="uv",
            TAP_SFBULK_LOGIN_URL=url,
            TAP_SFBULK_USERNAME="demo@example.com",
            TAP_SFBULK_PASSWORD="demo-password",
            TAP_SFBULK_CLIENT_ID="demo-client",
            TAP_SFBULK_CLIENT_SECRET="demo-secret",
        )
        meltano = str(clone / ".venv-meltano/bin/meltano")
        for args in (
            ["install", "target-jsonl"],
            ["--environment=demo", "run", "--full-refresh", "tap-sfbulk", "target-jsonl"],
        ):
            result = subprocess.run(
                [meltano, *args],
                cwd=clone,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            assert result.returncode == 0, result.stderr[-4000:]
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        if emulator.stdout is not None:
            emulator.stdout.close()
    written = clone / "output/demo/jsonl"
    lines = {
        name: (written / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        for name in ("Account", "Contact", "Opportunity", "Case")
    }
    assert {name: len(rows) for name, rows in lines.items()} == {
        "Account": 20,
        "Contact": 40,
        "Opportunity": 25,
        "Case": 15,
    }
    contacts = {row["External_Id__c"]: row for row in map(json.loads, lines["Contact"])}
    # Contact n belongs to Account n % 20 (the seed's round robin); the related field says so.
    assert contacts["CON-0000001"]["Account.External_Id__c"] == "ACC-0000001"
    assert contacts["CON-0000021"]["Account.External_Id__c"] == "ACC-0000001"
    assert contacts["CON-0000040"]["Account.External_Id__c"] == "ACC-0000020"


# ---------------------------------------------------------------------------------------------
# Pipes


def _related(server, soql: str) -> dict[str, str | None]:
    """External id → parent's external id, read back over REST."""
    from sfbulk.auth import SalesforceAuth
    from sfbulk.http import SalesforceClient

    client = SalesforceClient(SalesforceAuth.from_config(emulator_config(server, "password")))
    try:
        records = client.rest("GET", "/query", params={"q": soql}).json()["records"]
    finally:
        client.close()
    return {r["External_Id__c"]: (r["Account"] or {}).get("External_Id__c") for r in records}


def test_piped_tap_into_target_copies_an_org(emulator_factory, tmp_path: Path) -> None:
    """``tap-sfbulk --config a.json | target-sfbulk --config b.json``, as the README shows, with
    the demo environment's copy plan taken from meltano.yml."""
    from sfbulk.emulator.seeds import seed_empty

    source = emulator_factory(seed="demo", records=100)
    destination = emulator_factory(seed="empty")
    seed_empty(destination.state.org)
    plan = demo.meltano_demo_plan()
    tap = emulator_config(
        source,
        "password",
        streams=[c.name for c in plan],
        upper_bound_lag_seconds=0,  # as in the demo environment: the seed ends a second ago
        related_fields={c.name: c.related for c in plan if c.related},
    )
    target = emulator_config(
        destination,
        "refresh_token",
        unknown_fields="drop",
        streams={
            c.name: {"action": c.action, "external_id_field": c.key, "exclude_fields": c.exclude}
            for c in plan
        },
    )
    (tmp_path / "a.json").write_text(json.dumps(tap), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(target), encoding="utf-8")
    bin_dir = Path(sys.executable).parent
    command = (
        f"set -o pipefail; {bin_dir}/tap-sfbulk --config a.json "
        f"| {bin_dir}/target-sfbulk --config b.json"
    )
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # The target's stdout is the STATE it made safe: a bookmark for every stream.
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(state["bookmarks"]) == ["Account", "Case", "Contact", "Opportunity"]

    counts = requests.get(f"{destination.url}/_emulator/stats", timeout=10).json()["records"]
    assert {
        name: counts.get(name, 0) for name in ("Account", "Contact", "Opportunity", "Case")
    } == {"Account": 20, "Contact": 40, "Opportunity": 25, "Case": 15}
    # Every child points at the parent with the same external id as in the source.
    for obj in ("Contact", "Opportunity", "Case"):
        soql = f"SELECT External_Id__c, Account.External_Id__c FROM {obj}"
        theirs = _related(destination, soql)
        assert theirs == _related(source, soql), obj
        assert len(theirs) == counts[obj] and None not in theirs.values()
