"""Security: no secret in any output, TLS verified, credentials only over https or loopback, a
hardened XML parser on both sides, an emulator that binds loopback and refuses anonymous calls,
and private permissions on every file holding records."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import ssl
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from sfbulk.auth import SalesforceAuth
from sfbulk.errors import AuthenticationError, ConfigError
from tests.conftest import emulator_token
from tests.reliability.conftest import (
    COPY_STREAMS,
    command,
    copy_config,
    plugin_env,
    source_config,
    stats,
    target_config,
    wait_until,
    write_config,
)

#: Distinctive values for every secret the emulator accepts, so a leak is found by grep.
SECRETS = {
    "client_secret": "CLIENTSECRET-7f3a9c2e51",
    "password": "PASSWORD-b81d4e6f02",
    "security_token": "SECTOKEN-c94e2a7d13",
    "refresh_token": "REFRESHTOKEN-5ad3f8e0b7",
}


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_secret_in_any_output_of_a_full_pipeline(emulator_factory, observe, tmp_path):
    source = emulator_factory(seed="demo", records=20, **SECRETS)
    destination = emulator_factory(**SECRETS)
    issued: list[str] = []
    for server in (source, destination):
        original = server.state.sessions.issue

        def issue(*args, _original=original, **kwargs):
            session = _original(*args, **kwargs)
            issued.append(session.token)
            return session

        server.state.sessions.issue = issue
    batches = tmp_path / "batches"
    batches.mkdir()
    tap_config = write_config(tmp_path / "tap.json", source_config(
        source, auth_type="password", streams=["Account", "Contact"],
        batch_config={"encoding": {"format": "jsonl", "compression": "gzip"},
                      "storage": {"root": batches.as_uri(), "prefix": "batch-"}}))
    failed = tmp_path / "failed.jsonl"
    # Contacts lose their required LastName: they fail and land, whole, in the failed-records
    # file, which is then searched too.
    streams = dict(COPY_STREAMS, Contact={
        "exclude_fields": [*COPY_STREAMS["Contact"]["exclude_fields"], "LastName"]})
    target_path = write_config(tmp_path / "target.json", copy_config(
        destination, failed_records_path=str(failed), max_failed_records=1000,
        streams=streams))
    (tmp_path / "state.json").write_text("{}")
    pipeline = subprocess.run(
        f"'{command('tap-sfbulk')}' --config '{tap_config}' --state '{tmp_path}/state.json' "
        f"2>'{tmp_path}/tap.err' | tee '{tmp_path}/tap.out' | "
        f"'{command('target-sfbulk')}' --config '{target_path}' >'{tmp_path}/target.out' "
        f"2>'{tmp_path}/target.err'", shell=True, env=plugin_env(), timeout=180)
    assert pipeline.returncode == 0, (tmp_path / "target.err").read_text()[-2000:]
    # --about is class-level (the CLI prints it before reading any config); rendered here in
    # every format rather than paying two more process starts.
    from tap_sfbulk.tap import TapSfBulk
    from target_sfbulk.target import TargetSfBulk

    for plugin in (TapSfBulk, TargetSfBulk):
        for fmt in ("json", "markdown", "text"):
            about = io.StringIO()
            with contextlib.redirect_stdout(about):
                plugin.print_about(fmt)
            (tmp_path / f"{plugin.name}-about.{fmt}.txt").write_text(about.getvalue())
    # Everything the run wrote; the config files themselves hold the secrets by design.
    outputs = [p for p in _files_under(tmp_path) if p.name not in ("tap.json", "target.json")]
    assert failed.stat().st_size > 0, "no record failed: the failed-records file was not tested"
    batch_files = _files_under(batches)
    assert batch_files, "the tap wrote no BATCH file"
    assert issued, "no session was issued"
    needles = {**SECRETS, "password+token": SECRETS["password"] + SECRETS["security_token"]}
    needles.update({f"access token {i}": token for i, token in enumerate(issued)})
    leaks = []
    for path in outputs:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"{label} in {path.name}" for label, value in needles.items() if value in text]
    assert leaks == []
    loaded = len(list(destination.state.org.query("SELECT Id FROM Account")))
    observe("security", "Secrets in outputs of a full tap | target run (BATCH mode)",
            f"{len(needles)} secrets and issued tokens searched in {len(outputs)} files "
            "(stdout, stderr, STATE, failed records, BATCH files, --about): none found",
            before=None, after=loaded, files=sorted(p.name for p in outputs))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_failed_records_file_is_private(emulator, observe, tmp_path):
    from tests.reliability.conftest import record_message, run_target, schema_message

    failed = tmp_path / "failed.jsonl"
    failed.write_text("old\n")
    failed.chmod(0o644)  # left world-readable by something else: must become private
    run = run_target(emulator, [schema_message("Account", {"Name": {"type": "string"},
                                                           "Bogus__c": {"type": "string"}}),
                                record_message("Account", {"Name": "A", "Bogus__c": "x"})],
                     action="insert", unknown_fields="drop", failed_records_path=str(failed),
                     max_failed_records=10)
    assert run.error is None, run.error
    assert _mode(failed) == 0o600
    assert "old" not in failed.read_text()
    observe("security", "Permissions of the failed-records file (pre-existing at 0644)",
            f"mode {oct(_mode(failed))}, truncated at start", before=None, after=None)


def test_tap_batch_files_are_private(emulator_factory, observe, tmp_path):
    source = emulator_factory(seed="demo", records=10)
    batches = tmp_path / "batches"
    batches.mkdir()
    config = write_config(tmp_path / "tap.json", source_config(
        source, streams=["Account"],
        batch_config={"encoding": {"format": "jsonl", "compression": "gzip"},
                      "storage": {"root": batches.as_uri(), "prefix": "batch-"}}))
    from tap_sfbulk.tap import TapSfBulk

    tap = TapSfBulk(config=json.loads(Path(config).read_text()))
    with contextlib.redirect_stdout(io.StringIO()):
        tap.sync_all()
    files = _files_under(batches)
    assert files
    modes = sorted({oct(_mode(p)) for p in files})
    observe("security", "Permissions of tap BATCH files", f"modes {modes}", before=None,
            after=None)
    assert modes == ["0o600"]


# ---------------------------------------------------------------------------------------------
# Transport


@pytest.mark.parametrize("setting", ["login_url", "instance_url"])
def test_plain_http_to_a_remote_host_is_refused(emulator, observe, setting):
    from target_sfbulk.target import TargetSfBulk

    config = target_config(emulator)
    if setting == "login_url":
        config["login_url"] = "http://example.com"
    else:
        config = {"access_token": "00Dx!AQ-token", "instance_url": "http://example.com",
                  "login_url": emulator.url}
    target = TargetSfBulk(config=config)
    with pytest.raises(ConfigError) as caught:
        _ = target.client
    assert f"{setting} uses plain http:// on a non-loopback host" in str(caught.value)
    assert "example.com" not in str(caught.value) or setting == "login_url"
    assert "00Dx!AQ-token" not in str(caught.value)
    observe("security", f"{setting} http://example.com", f"refused: `{caught.value}`",
            before=None, after=None)


@pytest.fixture
def self_signed_server(tmp_path):
    """An https server on loopback whose certificate no trust store knows."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now +
                                                                          dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    handshakes: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    handshakes.append("completed")
                    tls.recv(1024)
            except (ssl.SSLError, OSError) as exc:
                handshakes.append(type(exc).__name__)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://localhost:{listener.getsockname()[1]}", handshakes
    stop.set()
    thread.join(2)
    listener.close()


def test_tls_certificates_are_verified(self_signed_server, observe):
    url, handshakes = self_signed_server
    auth = SalesforceAuth.from_config({"auth_type": "refresh_token", "login_url": url,
                                       "client_id": "id", "refresh_token": "RT-secret-123"})
    auth.retry_policy = type(auth.retry_policy)(max_retries=0, max_seconds=5)
    with pytest.raises(AuthenticationError) as caught:
        auth.session()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "RT-secret-123" not in str(caught.value)
    assert "completed" not in handshakes  # no request was ever sent over the untrusted link
    observe("security", "Login to an https host with a self-signed certificate",
            "refused: certificate verify failed; no request sent", before=None, after=None)


# ---------------------------------------------------------------------------------------------
# The emulator


def test_emulator_binds_loopback_by_default(observe, tmp_path):
    process = subprocess.Popen([command("sfbulk-emulator"), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=plugin_env())
    try:
        lines: list[str] = []

        def banner() -> bool:
            line = process.stdout.readline().decode()
            lines.append(line)
            return "http://" in line

        assert wait_until(banner, timeout=60, step=0)
        url = next(word for line in lines for word in line.split() if word.startswith("http"))
        import psutil

        listening = [c.laddr for c in psutil.Process(process.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert url.startswith("http://127.0.0.1:")
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    observe("security", "sfbulk-emulator default bind address",
            f"listens on {', '.join(f'{a.ip}:{a.port}' for a in listening)} only",
            before=None, after=None)


def test_emulator_refuses_unauthenticated_calls(emulator, observe):
    base = emulator.url
    bogus = {"Authorization": "Bearer 00Dbogus!AQbogus"}
    answers = {
        "REST, no token": requests.get(f"{base}/services/data/v62.0/sobjects", timeout=10),
        "REST, unknown token": requests.get(f"{base}/services/data/v62.0/sobjects",
                                            headers=bogus, timeout=10),
        "Bulk 2.0, no token": requests.get(f"{base}/services/data/v62.0/jobs/ingest",
                                           timeout=10),
        "Bulk 1.0, no session": requests.post(f"{base}/services/async/62.0/job",
                                              data="<jobInfo/>", timeout=10),
    }
    statuses = {name: (r.status_code, r.text) for name, r in answers.items()}
    assert statuses["REST, no token"][0] == 401
    assert statuses["REST, unknown token"][0] == 401
    assert statuses["Bulk 2.0, no token"][0] == 401
    assert statuses["Bulk 1.0, no session"][0] == 400
    assert "InvalidSessionId" in statuses["Bulk 1.0, no session"][1]
    assert all("INVALID_SESSION_ID" in text for name, (_, text) in statuses.items()
               if not name.startswith("Bulk 1.0"))
    assert stats(emulator)["jobs"]["total"] == 0
    observe("security", "Calls to the emulator without a valid session",
            "; ".join(f"{name}: HTTP {code}" for name, (code, _) in statuses.items()),
            before=None, after=None)


# ---------------------------------------------------------------------------------------------
# XML entity expansion


LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<{root} xmlns="http://www.force.com/2009/06/asyncapi/dataload">{inner}</{root}>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<{root} xmlns="http://www.force.com/2009/06/asyncapi/dataload">{inner}</{root}>"""


@pytest.mark.parametrize("attack", ["billion laughs", "XXE"])
def test_emulator_bulk1_xml_refuses_entities(emulator, observe, attack):
    template = LAUGHS if attack == "billion laughs" else XXE
    entity = "&lol9;" if attack == "billion laughs" else "&xxe;"
    token = emulator_token(emulator)
    headers = {"X-SFDC-Session": token, "Content-Type": "application/xml"}
    base = f"{emulator.url}/services/async/62.0"
    started = time.monotonic()
    create = requests.post(f"{base}/job", headers=headers, timeout=10, data=template.format(
        root="jobInfo", inner=f"<operation>insert</operation><object>{entity}</object>"))
    assert create.status_code == 400
    assert "<exceptionCode>InvalidXml</exceptionCode>" in create.text
    job = requests.post(f"{base}/job", headers=headers, timeout=10, data=(
        '<jobInfo xmlns="http://www.force.com/2009/06/asyncapi/dataload"><operation>insert'
        "</operation><object>Account</object><contentType>XML</contentType></jobInfo>"))
    job_id = job.text.split("<id>")[1].split("</id>")[0]
    batch = requests.post(f"{base}/job/{job_id}/batch", headers=headers, timeout=10,
                          data=template.format(root="sObjects",
                                               inner=f"<sObject><Name>{entity}</Name></sObject>"))
    batch_id = batch.text.split("<id>")[1].split("</id>")[0]

    def state() -> str:
        info = requests.get(f"{base}/job/{job_id}/batch/{batch_id}", headers=headers,
                            timeout=10).text
        return info.split("<state>")[1].split("</state>")[0]

    assert wait_until(lambda: state() in ("Failed", "Completed"))
    info = requests.get(f"{base}/job/{job_id}/batch/{batch_id}", headers=headers, timeout=10)
    elapsed = time.monotonic() - started
    assert state() == "Failed"
    message = info.text.split("<stateMessage>")[1].split("</stateMessage>")[0]
    assert "lollol" not in info.text and "root:" not in info.text
    assert emulator.state.org.count("Account") == 0
    assert elapsed < 5
    observe("hostile", f"{attack} in a Bulk 1.0 XML job and batch (emulator)",
            f"job create HTTP 400 InvalidXml; batch Failed: `{message[:80]}`; no expansion, "
            "no record", before=1, after=0)


@pytest.mark.parametrize("attack", ["billion laughs", "XXE"])
def test_client_xml_parsers_refuse_entities(observe, attack):
    from sfbulk.bulk1 import BatchInfo, JobInfo, parse_batch_results
    from sfbulk.http import parse_error_body

    template = LAUGHS if attack == "billion laughs" else XXE
    entity = "&lol9;" if attack == "billion laughs" else "&xxe;"
    refused = []
    for parse, root, inner in [
        (JobInfo.parse, "jobInfo", f"<id>{entity}</id>"),
        (BatchInfo.parse, "batchInfo", f"<id>{entity}</id>"),
        (lambda body: parse_batch_results(body.encode(), "application/xml"), "results",
         f"<result><id>{entity}</id></result>"),
    ]:
        body = template.format(root=root, inner=inner)
        with pytest.raises(Exception) as caught:
            parse(body)
        assert "lollol" not in str(caught.value) and "root:" not in str(caught.value)
        refused.append(type(caught.value).__name__)
    error_body = template.format(root="error", inner=f"<exceptionCode>{entity}</exceptionCode>")
    assert parse_error_body(error_body) == (None, None, [])
    observe("hostile", f"{attack} in responses read by the client",
            f"JobInfo, BatchInfo, batch results refused ({', '.join(sorted(set(refused)))}); "
            "error mapping ignores the body", before=None, after=None)


def test_config_files_written_by_tests_are_private(tmp_path):
    # The suite's own helper must not spread credentials either.
    path = Path(write_config(tmp_path / "c.json", {"refresh_token": "x"}))
    assert _mode(path) == 0o600
    assert json.loads(path.read_text()) == {"refresh_token": "x"}
    assert os.access(path, os.R_OK)
