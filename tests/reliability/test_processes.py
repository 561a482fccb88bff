"""Real processes interrupted mid-run, then run again from the last STATE they left.

The plugins run as subprocesses (their console scripts) against emulators in this process over
loopback HTTP. ``meltano run tap-sfbulk target-sfbulk`` is emulated by connecting the two
commands with an OS pipe, as Meltano does; installing Meltano here would cost more than the run.
A processing delay on the emulator holds a job in progress so the signal lands while it works.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.reliability.conftest import (
    account_messages,
    clear_faults,
    command,
    copy_config,
    external_ids,
    job_states,
    last_state,
    messages_text,
    open_jobs,
    plugin_env,
    run_target,
    set_faults,
    source_config,
    target_config,
    wait_until,
    write_config,
)

RECORDS = 10
BUSY = ("UploadComplete", "InProgress", "Closed")


def _busy_jobs(server) -> list[str]:
    return [job.id for job in server.state.jobs.jobs() if str(getattr(job, "state", "")) in BUSY]


def _start_target(tmp_path: Path, cfg: dict, messages: list[dict]) -> subprocess.Popen:
    config = write_config(tmp_path / "target.json", cfg)
    (tmp_path / "input.jsonl").write_text(messages_text(messages))
    with (tmp_path / "input.jsonl").open("rb") as stdin:
        return subprocess.Popen([command("target-sfbulk"), "--config", config], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=plugin_env())


@pytest.mark.parametrize(("api", "sig"), [("2.0", signal.SIGTERM), ("1.0", signal.SIGTERM),
                                          ("2.0", signal.SIGKILL)])
def test_target_interrupted_mid_load_then_rerun(emulator, observe, tmp_path, api, sig):
    set_faults(emulator, {"processing_delay_seconds": 1.5})
    messages = account_messages(RECORDS, state={"n": RECORDS})
    process = _start_target(tmp_path, target_config(emulator, bulk_api=api, action="upsert"),
                            messages)
    try:
        assert wait_until(lambda: len(_busy_jobs(emulator)) == 1, timeout=30), \
            process.stderr.read().decode() if process.poll() is not None else "no job started"
        job_id = _busy_jobs(emulator)[0]
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    loaded_before_rerun = len(external_ids(emulator))
    states_after_kill = job_states(emulator)
    left_open = open_jobs(emulator)
    if sig == signal.SIGTERM:
        assert process.returncode == 143, err.decode()[-2000:]
        assert out.strip() == b""  # no STATE for records whose outcome is unknown
        # The job was aborted, not abandoned.
        assert states_after_kill == {"Aborted": 1}, states_after_kill
    else:
        assert process.returncode == -signal.SIGKILL
        assert out.strip() == b""
    # A job already handed to Salesforce may still finish; none may stay Open (taking batches).
    assert not [j for j in server_jobs(emulator) if j[1] == "Open"]
    clear_faults(emulator)
    # No STATE was written, so the rerun is fed everything again (in this process: the
    # interrupted run is what needed a real process).
    rerun = run_target(emulator, messages, bulk_api=api, action="upsert")
    assert rerun.error is None, rerun.error
    assert rerun.states == [{"n": RECORDS}]
    assert external_ids(emulator) == [f"R{i:04d}" for i in range(RECORDS)]
    # A killed process cannot abort: the job it had handed over finishes in the org, and none
    # is left open once it has.
    assert wait_until(lambda: open_jobs(emulator) == [], timeout=10), open_jobs(emulator)
    observe("faults", f"target-sfbulk {signal.Signals(sig).name} while Bulk {api} job "
            f"{job_id} is processing",
            f"exit {process.returncode}, no STATE; jobs after the signal {states_after_kill}; "
            f"{loaded_before_rerun} loaded before the rerun; rerun loaded every record once",
            before=RECORDS, after=len(external_ids(emulator)), left_open=left_open)


def server_jobs(server) -> list[tuple[str, str]]:
    """(id, state) of every job the emulator knows."""
    return [(job.id, str(getattr(job, "state", ""))) for job in server.state.jobs.jobs()]


def _source_ids(server, obj: str) -> set[str]:
    return {row[0] for row in server.state.org.query(f"SELECT Id FROM {obj}")}


def _records(lines: list[str], stream: str) -> set[str]:
    found = set()
    for line in lines:
        message = json.loads(line)
        if message.get("type") == "RECORD" and message["stream"] == stream:
            found.add(message["record"]["Id"])
    return found


def _states(lines: list[str]) -> list[dict]:
    return [json.loads(line)["value"] for line in lines
            if json.loads(line).get("type") == "STATE"]


def test_tap_killed_mid_extraction_resumes_without_skipping(emulator_factory, observe, tmp_path):
    source = emulator_factory(seed="demo", records=50)
    set_faults(source, {"processing_delay_seconds": 0.6})
    config = write_config(tmp_path / "tap.json",
                          source_config(source, streams=["Account", "Contact"]))
    out_path = tmp_path / "out1.jsonl"
    with out_path.open("wb") as out:
        process = subprocess.Popen([command("tap-sfbulk"), "--config", config], stdout=out,
                                   stderr=subprocess.PIPE, env=plugin_env())
        try:
            # Kill while the second stream's query job is being processed.
            assert wait_until(lambda: len(source.state.jobs.jobs()) == 2
                              and len(_busy_jobs(source)) == 1, timeout=60)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == -signal.SIGKILL
    first = out_path.read_text().splitlines()
    state = _states(first)[-1] if _states(first) else None
    clear_faults(source)
    args = [command("tap-sfbulk"), "--config", config]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    second = subprocess.run(args, capture_output=True, env=plugin_env(), timeout=120)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    rerun = second.stdout.decode().splitlines()
    for stream in ("Account", "Contact"):
        expected = _source_ids(source, stream)
        got = _records(first, stream) | _records(rerun, stream)
        assert got == expected, f"{stream}: {len(expected - got)} row(s) skipped"
    assert not [j for j in server_jobs(source) if j[1] == "Open"]
    accounts, contacts = len(_source_ids(source, "Account")), len(_source_ids(source, "Contact"))
    observe("faults", "tap-sfbulk SIGKILL while the second stream's query job runs",
            f"first run: {len(_records(first, 'Account'))} Account and "
            f"{len(_records(first, 'Contact'))} Contact rows; rerun from its last STATE: "
            f"{len(_records(rerun, 'Account'))} Account (re-read inside the lookback) and "
            f"{len(_records(rerun, 'Contact'))} Contact rows; none skipped",
            before=accounts + contacts, after=len(_records(first, "Account")
                                                  | _records(rerun, "Account"))
            + len(_records(first, "Contact") | _records(rerun, "Contact")))


def test_pipeline_tap_terminated_mid_stream_while_target_loads(emulator_factory, observe,
                                                               tmp_path):
    source = emulator_factory(seed="demo", records=50)
    destination = emulator_factory()
    set_faults(source, {"processing_delay_seconds": 0.6})
    tap_config = write_config(tmp_path / "tap.json",
                              source_config(source, streams=["Account", "Contact"]))
    target_config_path = write_config(tmp_path / "target.json", copy_config(destination))

    def pipeline(state_path: Path | None) -> tuple[subprocess.Popen, subprocess.Popen]:
        tap_args = [command("tap-sfbulk"), "--config", tap_config]
        if state_path is not None:
            tap_args += ["--state", str(state_path)]
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=plugin_env())
        target = subprocess.Popen([command("target-sfbulk"), "--config", target_config_path],
                                  stdin=tap.stdout, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=plugin_env())
        assert tap.stdout is not None
        tap.stdout.close()  # the target holds the pipe's read end now
        return tap, target

    tap, target = pipeline(None)
    try:
        assert wait_until(lambda: len(source.state.jobs.jobs()) == 2
                          and len(_busy_jobs(source)) == 1, timeout=60)
        tap.send_signal(signal.SIGTERM)
        tap.wait(timeout=30)
        out, err = target.communicate(timeout=60)
    finally:
        for process in (tap, target):
            if process.poll() is None:
                process.kill()
                process.wait()
    tap_exit = tap.returncode
    assert tap_exit == 143  # interrupted, and says so
    assert target.returncode == 0, err.decode()[-2000:]
    state = last_state(out.decode().splitlines())
    accounts_first = len(external_ids(destination))
    contacts_first = len(external_ids(destination, "Contact"))
    # The tap's query job for the interrupted stream was aborted, not left running.
    source_states = {state_ for _, state_ in server_jobs(source)}
    assert "InProgress" not in source_states and "Open" not in source_states
    clear_faults(source)
    state_path = None
    if state is not None:
        state_path = tmp_path / "state.json"
        state_path.write_text(json.dumps(state))
    tap, target = pipeline(state_path)
    out, err = target.communicate(timeout=120)
    tap.wait(timeout=30)
    assert (tap.returncode, target.returncode) == (0, 0), err.decode()[-2000:]
    expected_accounts = sorted(r[0] for r in source.state.org.query(
        "SELECT External_Id__c FROM Account"))
    expected_contacts = sorted(r[0] for r in source.state.org.query(
        "SELECT External_Id__c FROM Contact"))
    assert external_ids(destination) == expected_accounts
    assert external_ids(destination, "Contact") == expected_contacts
    assert not [j for j in server_jobs(destination) if j[1] in ("Open", "InProgress")]
    observe("faults", "tap | target pipe: tap SIGTERM mid-stream while the target loads",
            f"tap exit {tap_exit}; target loaded what it received ({accounts_first} "
            f"Accounts, {contacts_first} Contacts) and wrote STATE; the rerun from that "
            "STATE completed the copy",
            before=len(expected_accounts) + len(expected_contacts),
            after=len(external_ids(destination)) + len(external_ids(destination, "Contact")))


def test_tap_sigterm_aborts_its_job_and_exits_non_zero(emulator_factory, observe, tmp_path):
    source = emulator_factory(seed="demo", records=10)
    set_faults(source, {"never_finish": True})
    config = write_config(tmp_path / "tap.json", source_config(source, streams=["Account"]))
    process = subprocess.Popen([command("tap-sfbulk"), "--config", config],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=plugin_env())
    try:
        assert wait_until(lambda: len(_busy_jobs(source)) == 1, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    states = {state for _, state in server_jobs(source)}
    observe("faults", "tap-sfbulk SIGTERM while its query job runs",
            f"query job {sorted(states)}; exit code {process.returncode}", before=None,
            after=None)
    assert states == {"Aborted"}, err.decode()[-2000:]
    assert process.returncode == 143
