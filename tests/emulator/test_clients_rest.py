"""Third-party clients, unmodified, against the emulator: simple-salesforce, salesforce-bulk.

simple-salesforce always builds ``https://{host}`` URLs (``login.salesforce.com`` to log in, then
the host of the instance it was given). The emulator speaks plain HTTP on loopback, so these
tests hand the client a requests session that sends those URLs to the emulator over ``http``;
nothing else about the client changes.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from salesforce_bulk import SalesforceBulk
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from tests.conftest import emulator_token

VERSION = "62.0"


class EmulatorSession(requests.Session):
    """A requests session that sends Salesforce's https hosts to the emulator over http."""

    def __init__(self, server) -> None:
        super().__init__()
        self.netloc = urlsplit(server.url).netloc
        self.hosts = {self.netloc, "login.salesforce.com", "test.salesforce.com"}
        self.seen: list[str] = []

    def request(self, method, url, *args, **kwargs):
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.netloc in self.hosts:
            url = urlunsplit(("http", self.netloc, parts.path, parts.query, parts.fragment))
        self.seen.append(f"{method} {urlsplit(url).path}")
        return super().request(method, url, *args, **kwargs)


def _soap_client(server) -> Salesforce:
    settings = server.state.settings
    return Salesforce(
        username=settings.username,
        password=settings.password,
        security_token=settings.security_token,
        session=EmulatorSession(server),
        version=VERSION,
    )


def test_soap_login_and_describe(emulator):
    sf = _soap_client(emulator)
    assert sf.session.seen[0] == f"POST /services/Soap/u/{VERSION}"
    assert sf.sf_instance == urlsplit(emulator.url).netloc
    names = [entry["name"] for entry in sf.describe()["sobjects"]]
    assert {"Account", "Contact", "Lead", "Opportunity"} <= set(names)
    describe = sf.Account.describe()
    assert describe["name"] == "Account"
    assert "Name" in [field["name"] for field in describe["fields"]]
    assert sf.Contact.metadata()["objectDescribe"]["name"] == "Contact"


def test_record_crud_and_queries(emulator):
    sf = _soap_client(emulator)
    created = sf.Account.create({"Name": "Acme", "Industry": "Energy"})
    assert created["success"] is True and created["errors"] == []
    account_id = created["id"]
    record = sf.Account.get(account_id)
    assert (record["Name"], record["Industry"]) == ("Acme", "Energy")
    assert sf.Account.update(account_id, {"Industry": "Retail"}) == 204
    contact = sf.Contact.create({"LastName": "Doe", "AccountId": account_id})["id"]

    result = sf.query(f"SELECT Id, Industry FROM Account WHERE Id = '{account_id}'")
    assert result["totalSize"] == 1
    assert result["records"][0]["Industry"] == "Retail"
    joined = sf.query("SELECT LastName, Account.Name FROM Contact")["records"][0]
    assert (joined["LastName"], joined["Account"]["Name"]) == ("Doe", "Acme")

    assert sf.Contact.delete(contact) == 204
    assert sf.query("SELECT Id FROM Contact")["totalSize"] == 0
    everything = sf.query_all("SELECT Id, IsDeleted FROM Contact", include_deleted=True)
    assert [(r["Id"], r["IsDeleted"]) for r in everything["records"]] == [(contact, True)]
    assert sf.api_usage["api-usage"].used == emulator.state.usage.used("DailyApiRequests")
    assert sf.api_usage["api-usage"].total == 15000


def test_query_all_follows_next_records_url(emulator):
    names = [f"Bulk {i:05d}" for i in range(2500)]
    results = emulator.state.org.write("Account", "insert", [{"Name": n} for n in names])
    assert all(r.success for r in results)
    sf = _soap_client(emulator)
    records = sf.query_all("SELECT Name FROM Account ORDER BY Name")["records"]
    assert [r["Name"] for r in records] == names
    pages = [line for line in sf.session.seen if "/query/01g" in line]
    assert len(pages) == 1
    streamed = list(sf.query_all_iter("SELECT Id FROM Account"))
    assert len(streamed) == 2500


def test_upsert_by_external_id(emulator):
    sf = _soap_client(emulator)
    assert sf.Store__c.upsert("Store_Code__c/S-9", {"Name": "Nine"}) == 201
    assert sf.Store__c.upsert("Store_Code__c/S-9", {"Name": "Nine!"}) == 200
    assert sf.Store__c.get_by_custom_id("Store_Code__c", "S-9")["Name"] == "Nine!"


def test_limits(emulator):
    sf = _soap_client(emulator)
    limits = sf.limits()
    assert limits["DailyBulkApiBatches"] == {"Max": 15000, "Remaining": 15000}
    assert limits["DailyApiRequests"]["Max"] == 15000


def test_oauth_password_login(emulator):
    settings = emulator.state.settings
    sf = Salesforce(
        username=settings.username,
        password=settings.password,
        consumer_key=settings.client_id,
        consumer_secret=settings.client_secret,
        session=EmulatorSession(emulator),
        version=VERSION,
    )
    assert sf.session.seen[0] == "POST /services/oauth2/token"
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0


def test_jwt_login(emulator_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simple-salesforce")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    server = emulator_factory(
        jwt_certificate=certificate.public_bytes(serialization.Encoding.PEM).decode()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    sf = Salesforce(
        username=server.state.settings.username,
        consumer_key=server.state.settings.client_id,
        privatekey=private_pem,
        session=EmulatorSession(server),
        version=VERSION,
    )
    assert sf.Account.describe()["name"] == "Account"


def test_ready_session_and_instance_url(emulator):
    sf = Salesforce(
        instance_url=emulator.url,
        session_id=emulator_token(emulator),
        session=EmulatorSession(emulator),
        version=VERSION,
    )
    assert sf.base_url == f"https://{urlsplit(emulator.url).netloc}/services/data/v{VERSION}/"
    assert sf.describe()["encoding"] == "UTF-8"


def test_client_errors(emulator):
    settings = emulator.state.settings
    with pytest.raises(SalesforceAuthenticationFailed) as failed:
        Salesforce(
            username=settings.username,
            password="wrong",
            security_token="",
            session=EmulatorSession(emulator),
        )
    assert failed.value.code == "INVALID_LOGIN"
    assert failed.value.auth_message == (
        "Invalid username, password, security token; or user locked out."
    )

    sf = _soap_client(emulator)
    with pytest.raises(SalesforceResourceNotFound):
        sf.Account.get("001000000000000AAA")
    with pytest.raises(SalesforceMalformedRequest) as malformed:
        sf.query("SELECT Nope FROM Account")
    assert malformed.value.content[0]["errorCode"] == "INVALID_FIELD"
    # An expired session: simple-salesforce logs in again by itself and repeats the call.
    requests.post(f"{emulator.url}/_emulator/expire-sessions", timeout=10)
    assert sf.query("SELECT Id FROM Account")["totalSize"] == 0
    logins = [line for line in sf.session.seen if line.startswith("POST /services/Soap/u/")]
    assert len(logins) == 2
    # A client holding only a session id cannot, and reports the expiry.
    ready = Salesforce(
        instance_url=emulator.url,
        session_id=emulator_token(emulator),
        session=EmulatorSession(emulator),
        version=VERSION,
    )
    requests.post(f"{emulator.url}/_emulator/expire-sessions", timeout=10)
    with pytest.raises(SalesforceExpiredSession):
        ready.query("SELECT Id FROM Account")


def test_salesforce_bulk_runs_on_a_soap_session(emulator):
    emulator.state.org.write("Account", "insert", [{"Name": "One"}, {"Name": "Two"}])
    settings = emulator.state.settings
    session_id, instance = SalesforceLogin(
        username=settings.username,
        password=settings.password,
        security_token=settings.security_token,
        session=EmulatorSession(emulator),
        sf_version=VERSION,
    )
    assert instance == urlsplit(emulator.url).netloc
    bulk = SalesforceBulk(sessionId=session_id, host=emulator.url, API_version=VERSION)
    job = bulk.create_query_job("Account", contentType="CSV")
    batch = bulk.query(job, "SELECT Name FROM Account ORDER BY Name")
    bulk.close_job(job)
    deadline = dt.datetime.now() + dt.timedelta(seconds=20)
    while not bulk.is_batch_done(batch):
        assert dt.datetime.now() < deadline
    rows = []
    for result in bulk.get_all_results_for_query_batch(batch):
        rows.extend(line.decode().strip() for line in result)
    assert rows == ['"Name"', '"One"', '"Two"']
