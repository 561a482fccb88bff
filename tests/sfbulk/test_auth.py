"""SalesforceAuth: each grant's token request, settings checks, rotation, renewal, redaction."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sfbulk.auth import SalesforceAuth, Secret, jwt_audience_for
from sfbulk.errors import AuthenticationError, ConfigError, RetryExhaustedError
from sfbulk.http import RetryPolicy, SalesforceClient
from tests.conftest import FIXTURES
from tests.sfbulk.test_http import Reply, Req, StubServer, TokenIssuer

SF = FIXTURES / "salesforce"
FAST = RetryPolicy(max_retries=2, max_seconds=5, backoff_factor=0.001, backoff_max=0.01)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def stub():
    server = StubServer()
    yield server
    server.close()


@pytest.fixture
def issuer(stub: StubServer) -> TokenIssuer:
    issuer = TokenIssuer(stub)
    stub.route("POST", "/services/oauth2/token", issuer)
    return issuer


def token_requests(stub: StubServer) -> list[Req]:
    return stub.hits("POST", "/services/oauth2/token")


# --------------------------------------------------------------------------------------------
# Grants


def test_password_grant(stub: StubServer, issuer: TokenIssuer) -> None:
    auth = SalesforceAuth.from_config(
        {
            "login_url": stub.url + "/",
            "client_id": "cid",
            "client_secret": "csecret",
            "username": "u@example.com",
            "password": "pw",
            "security_token": "TOK",
        }
    )
    assert auth.grant == "password"
    assert auth.session() == ("tok-1", stub.url)
    (req,) = token_requests(stub)
    assert req.form == {
        "grant_type": "password",
        "client_id": "cid",
        "client_secret": "csecret",
        "username": "u@example.com",
        "password": "pwTOK",
    }
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert auth.org_id == "00D000000000001AAA"
    assert auth.user_id == "005000000000001AAA"
    assert auth.session() == ("tok-1", stub.url)  # cached: no second request
    assert auth.token_requests == 1


def test_refresh_grant_persists_rotated_token(stub: StubServer) -> None:
    rotated: list[str] = []
    answers = iter(["rt-2", None, "rt-3"])

    def token(req: Req) -> Reply:
        body = {"access_token": f"at-for-{req.form['refresh_token']}", "instance_url": stub.url}
        new = next(answers)
        if new:
            body["refresh_token"] = new
        return Reply(200, json.dumps(body))

    stub.route("POST", "/services/oauth2/token", token)
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "cid", "refresh_token": "rt-1"},
        on_refresh_token=rotated.append,
    )
    assert auth.grant == "refresh_token"
    assert auth.session()[0] == "at-for-rt-1"
    assert auth.refresh_token == "rt-2"
    assert rotated == ["rt-2"]
    assert auth.refresh("at-for-rt-1")[0] == "at-for-rt-2"
    assert rotated == ["rt-2"]  # no new token in that response: nothing to persist
    assert auth.refresh(None)[0] == "at-for-rt-2"
    assert auth.refresh_token == "rt-3"
    assert rotated == ["rt-2", "rt-3"]
    forms = [r.form for r in token_requests(stub)]
    assert forms[0] == {"grant_type": "refresh_token", "client_id": "cid", "refresh_token": "rt-1"}
    assert [f["refresh_token"] for f in forms] == ["rt-1", "rt-2", "rt-2"]


def test_refresh_grant_sends_secret_when_configured(stub: StubServer, issuer: TokenIssuer) -> None:
    SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "cid", "client_secret": "s", "refresh_token": "r"}
    ).session()
    assert token_requests(stub)[0].form["client_secret"] == "s"


def test_jwt_grant_claims(stub: StubServer, issuer: TokenIssuer, rsa_key, pem: str) -> None:
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "cid", "username": "u@example.com", "private_key": pem}
    )
    assert auth.grant == "jwt"
    before = int(time.time())
    auth.session()
    form = token_requests(stub)[0].form
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert set(form) == {"grant_type", "assertion"}
    header = jwt.get_unverified_header(form["assertion"])
    assert header["alg"] == "RS256"
    claims = jwt.decode(
        form["assertion"], rsa_key.public_key(), algorithms=["RS256"], audience=stub.url
    )
    assert claims["iss"] == "cid"
    assert claims["sub"] == "u@example.com"
    assert claims["aud"] == stub.url
    assert before + 180 <= claims["exp"] <= int(time.time()) + 180


def test_jwt_key_from_path_and_escaped_text(stub: StubServer, issuer: TokenIssuer, pem, tmp_path):
    path = tmp_path / "server.key"
    path.write_text(pem)
    base = {"login_url": stub.url, "client_id": "cid", "username": "u"}
    assert SalesforceAuth.from_config({**base, "private_key_path": str(path)}).session()[0]
    escaped = pem.replace("\n", "\\n")
    assert SalesforceAuth.from_config({**base, "private_key": escaped}).session()[0]
    assert len(token_requests(stub)) == 2


def test_jwt_audience_per_login_host() -> None:
    assert jwt_audience_for("https://login.salesforce.com") == "https://login.salesforce.com"
    assert jwt_audience_for("https://test.salesforce.com/") == "https://test.salesforce.com"
    assert jwt_audience_for("https://acme.my.salesforce.com/x") == "https://acme.my.salesforce.com"
    assert jwt_audience_for("http://127.0.0.1:8443") == "http://127.0.0.1:8443"


def test_jwt_bad_key_is_config_error_without_key_text(stub: StubServer) -> None:
    junk = "-----BEGIN PRIVATE KEY-----\nTOTALLYSECRETJUNK\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as info:
        SalesforceAuth.from_config(
            {"login_url": stub.url, "client_id": "c", "username": "u", "private_key": junk}
        )
    assert "private_key is not a usable PEM private key" in str(info.value)
    assert "TOTALLYSECRETJUNK" not in str(info.value)
    with pytest.raises(ConfigError, match="private_key_path cannot be read"):
        SalesforceAuth.from_config(
            {
                "login_url": stub.url,
                "client_id": "c",
                "username": "u",
                "private_key_path": "/nonexistent/k.pem",
            }
        )


def test_client_credentials_basic_and_body(stub: StubServer, issuer: TokenIssuer) -> None:
    SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "cid", "client_secret": "sec"}
    ).session()
    basic = token_requests(stub)[0]
    assert basic.form == {"grant_type": "client_credentials"}
    assert basic.headers["authorization"] == "Basic " + base64.b64encode(b"cid:sec").decode()
    SalesforceAuth.from_config(
        {
            "login_url": stub.url,
            "client_id": "cid",
            "client_secret": "sec",
            "client_auth_method": "body",
        }
    ).session()
    body = token_requests(stub)[1]
    assert body.form == {
        "grant_type": "client_credentials",
        "client_id": "cid",
        "client_secret": "sec",
    }
    assert "authorization" not in body.headers


@pytest.mark.parametrize("host", ["https://login.salesforce.com", "https://test.salesforce.com"])
def test_client_credentials_needs_my_domain(host: str) -> None:
    with pytest.raises(ConfigError, match="My Domain"):
        SalesforceAuth.from_config({"login_url": host, "client_id": "c", "client_secret": "s"})


def test_ready_access_token_cannot_be_renewed() -> None:
    auth = SalesforceAuth.from_config(
        {"access_token": "00Dx!READY", "instance_url": "https://acme.my.salesforce.com"}
    )
    assert auth.grant == "access_token"
    assert auth.session() == ("00Dx!READY", "https://acme.my.salesforce.com")
    with pytest.raises(AuthenticationError, match="cannot be renewed") as info:
        auth.refresh("00Dx!READY")
    assert "00Dx!READY" not in str(info.value)


def test_ready_token_with_refresh_credentials_is_renewed(stub: StubServer, issuer) -> None:
    auth = SalesforceAuth.from_config(
        {
            "access_token": "old",
            "instance_url": stub.url,
            "refresh_token": "r",
            "client_id": "c",
            "login_url": stub.url,
        }
    )
    assert auth.session() == ("old", stub.url)
    assert token_requests(stub) == []
    assert auth.refresh("old") == ("tok-1", stub.url)
    assert auth.refresh("old") == ("tok-1", stub.url)  # already renewed: no second request
    assert len(token_requests(stub)) == 1


def test_refresh_threads_single_token_call(stub: StubServer) -> None:
    issuer = TokenIssuer(stub, delay=0.05)
    stub.route("POST", "/services/oauth2/token", issuer)
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "c", "refresh_token": "r"}
    )
    stale, _ = auth.session()
    barrier = threading.Barrier(8)
    got: list[str] = []

    def renew() -> None:
        barrier.wait()
        got.append(auth.refresh(stale)[0])

    threads = [threading.Thread(target=renew) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert got == ["tok-2"] * 8
    assert issuer.count == 2


# --------------------------------------------------------------------------------------------
# Failures


def test_oauth_error_is_authentication_error(stub: StubServer) -> None:
    body = (SF / "oauth/password_grant_error_invalid_grant.json").read_bytes()
    stub.route("POST", "/services/oauth2/token", Reply(400, body))
    auth = SalesforceAuth.from_config(
        {
            "login_url": stub.url,
            "client_id": "c",
            "client_secret": "s",
            "username": "u",
            "password": "p",
        },
        retry_policy=FAST,
    )
    with pytest.raises(AuthenticationError) as info:
        auth.session()
    err = info.value
    assert err.code == "invalid_grant"
    assert err.status == 400
    assert err.path == "/services/oauth2/token"
    assert str(err) == (
        f"invalid_grant: password login at {stub.url} failed: authentication failure - "
        "Invalid Password (POST /services/oauth2/token; HTTP 400)"
    )
    assert len(token_requests(stub)) == 1  # not retried


def test_expired_refresh_token(stub: StubServer) -> None:
    body = (SF / "oauth/refresh_grant_error_expired.json").read_bytes()
    stub.route("POST", "/services/oauth2/token", Reply(400, body))
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "c", "refresh_token": "r"}
    )
    with pytest.raises(AuthenticationError, match="expired access/refresh token"):
        auth.session()


def test_token_endpoint_5xx_retried_then_exhausted(stub: StubServer) -> None:
    stub.route("POST", "/services/oauth2/token", Reply(503, "down"))
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "c", "refresh_token": "r"}, retry_policy=FAST
    )
    with pytest.raises(AuthenticationError) as info:
        auth.session()
    assert isinstance(info.value.__cause__, RetryExhaustedError)
    assert len(token_requests(stub)) == 3


def test_plain_http_instance_url_from_token_is_refused(stub: StubServer) -> None:
    body = {"access_token": "a", "instance_url": "http://na1.salesforce.com"}
    stub.route("POST", "/services/oauth2/token", Reply(200, json.dumps(body)))
    auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "c", "refresh_token": "r"}
    )
    with pytest.raises(AuthenticationError, match="instance_url uses plain http"):
        auth.session()


# --------------------------------------------------------------------------------------------
# Settings validation


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "no credentials"),
        ({"auth_type": "magic"}, "auth_type must be one of"),
        (
            {"username": "u", "password": "p", "refresh_token": "r", "client_id": "c"},
            "settings password, refresh_token select different login methods",
        ),
        (
            {"auth_type": "jwt", "username": "u", "client_id": "c", "password": "p"},
            "auth_type jwt conflicts with settings password",
        ),
        (
            {"username": "u", "password": "p"},
            "auth_type password needs the settings client_id, client_secret",
        ),
        ({"refresh_token": "r"}, "auth_type refresh_token needs the settings client_id"),
        ({"private_key_path": "/k", "client_id": "c"}, "auth_type jwt needs the settings username"),
        (
            {"private_key_path": "/k", "private_key": "x", "client_id": "c", "username": "u"},
            "set only one of private_key and private_key_path",
        ),
        ({"access_token": "a"}, "auth_type access_token needs the settings instance_url"),
        (
            {"access_token": "a", "refresh_token": "r", "client_id": "c"},
            "access_token needs the setting instance_url",
        ),
        (
            {"refresh_token": "r", "client_id": "c", "login_url": "http://login.example.com"},
            "login_url uses plain http:// on a non-loopback host",
        ),
        ({"refresh_token": "r", "client_id": "c", "login_url": "login.salesforce.com"}, "absolute"),
        (
            {"refresh_token": "r", "client_id": "c", "client_auth_method": "header"},
            "client_auth_method",
        ),
    ],
)
def test_config_errors_name_settings(config: dict, message: str) -> None:
    secret_keys = ("password", "refresh_token", "access_token", "private_key", "client_secret")
    config = {k: f"S3CRET-{k}" if k in secret_keys else v for k, v in config.items()}
    with pytest.raises(ConfigError) as info:
        SalesforceAuth.from_config(config)
    assert message in str(info.value)
    assert "S3CRET" not in str(info.value)


@pytest.mark.parametrize(
    "login_url",
    ["http://127.0.0.1:9999", "http://localhost:9999", "http://[::1]:9999", "http://127.1.2.3"],
)
def test_loopback_http_login_allowed(login_url: str) -> None:
    auth = SalesforceAuth.from_config(
        {"refresh_token": "r", "client_id": "c", "login_url": login_url}
    )
    assert auth.login_url == login_url


def test_defaults_to_production_login() -> None:
    auth = SalesforceAuth.from_config({"refresh_token": "r", "client_id": "c"})
    assert auth.login_url == "https://login.salesforce.com"
    sandbox = SalesforceAuth.from_config(
        {"refresh_token": "r", "client_id": "c", "login_url": "https://test.salesforce.com"}
    )
    assert sandbox.jwt_audience == "https://test.salesforce.com"


# --------------------------------------------------------------------------------------------
# Redaction


def test_secrets_never_in_reprs_errors_or_logs(
    stub: StubServer, caplog: pytest.LogCaptureFixture, pem: str
) -> None:
    secrets = {
        "client_secret": "CS-9f8e7d6c5b",
        "password": "PW-correct-horse",
        "security_token": "ST-battery-staple",
        "refresh_token": "RT-5e4d3c2b1a",
    }
    issued = {"n": 0}

    def token(req: Req) -> Reply:
        issued["n"] += 1
        if issued["n"] == 1:
            body = {
                "access_token": "AT-live-123456",
                "instance_url": stub.url,
                "refresh_token": "RT-rotated-777",
            }
            return Reply(200, json.dumps(body))
        return Reply(400, '{"error":"invalid_grant","error_description":"authentication failure"}')

    stub.route("POST", "/services/oauth2/token", token)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    auth = SalesforceAuth(
        grant="password",
        login_url=stub.url,
        client_id="cid",
        client_secret=secrets["client_secret"],
        username="u@example.com",
        password=secrets["password"],
        security_token=secrets["security_token"],
        refresh_token=secrets["refresh_token"],
        retry_policy=FAST,
    )
    texts += [repr(auth), str(auth), str(vars(auth))]
    auth.session()
    texts += [repr(auth), str(vars(auth))]
    with pytest.raises(AuthenticationError) as info:
        auth.refresh("AT-live-123456")
    texts += [str(info.value), repr(info.value), repr(info.value.args)]
    texts.append(caplog.text)
    jwt_auth = SalesforceAuth.from_config(
        {"login_url": stub.url, "client_id": "c", "username": "u", "private_key": pem}
    )
    texts += [repr(jwt_auth), str(vars(jwt_auth))]
    blob = "\n".join(texts)
    for secret in [
        *secrets.values(),
        "AT-live-123456",
        "RT-rotated-777",
        "PW-correct-horseST-battery-staple",
    ]:
        assert secret not in blob, secret
    assert "PRIVATE KEY" not in blob
    assert pem.splitlines()[1] not in blob
    assert repr(Secret("x")) == "Secret('**********')"


# --------------------------------------------------------------------------------------------
# Every grant against the emulator


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _limits_through(auth: SalesforceAuth) -> dict:
    return SalesforceClient(auth).limits()


def test_e2e_each_grant(emulator_factory, rsa_key, pem: str) -> None:
    server = emulator_factory(jwt_certificate=_public_pem(rsa_key))
    base = {"login_url": server.url, "client_id": "demo-client"}
    configs = {
        "password": {
            **base,
            "client_secret": "demo-secret",
            "username": "demo@example.com",
            "password": "demo-password",
        },
        "refresh_token": {**base, "refresh_token": "demo-refresh-token"},
        "jwt": {**base, "username": "demo@example.com", "private_key": pem},
        "client_credentials": {**base, "client_secret": "demo-secret"},
        "client_credentials_body": {
            **base,
            "client_secret": "demo-secret",
            "client_auth_method": "body",
        },
    }
    for name, config in configs.items():
        auth = SalesforceAuth.from_config(config)
        token, instance = auth.session()
        assert instance == server.url, name
        assert token.startswith("00D"), name
        assert "DailyApiRequests" in _limits_through(auth), name
        assert auth.org_id and auth.org_id.startswith("00D"), name
    ready = SalesforceAuth.from_config({"access_token": token, "instance_url": server.url})
    assert "DailyApiRequests" in _limits_through(ready)


def test_e2e_wrong_password_and_revoked_refresh_token(emulator) -> None:
    auth = SalesforceAuth.from_config(
        {
            "login_url": emulator.url,
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "username": "demo@example.com",
            "password": "wrong",
        }
    )
    with pytest.raises(AuthenticationError) as info:
        auth.session()
    assert info.value.code == "invalid_grant"
    refresh = SalesforceAuth.from_config(
        {
            "login_url": emulator.url,
            "client_id": "demo-client",
            "refresh_token": "demo-refresh-token",
        }
    )
    stale, _ = refresh.session()
    requests.post(emulator.url + "/_emulator/revoke-refresh-token", timeout=5).raise_for_status()
    with pytest.raises(AuthenticationError, match="invalid_grant"):
        refresh.refresh(stale)


def test_e2e_expired_ready_token_cannot_renew(emulator) -> None:
    login = SalesforceAuth.from_config(
        {
            "login_url": emulator.url,
            "client_id": "demo-client",
            "refresh_token": "demo-refresh-token",
        }
    )
    token, instance = login.session()
    client = SalesforceClient(
        SalesforceAuth.from_config({"access_token": token, "instance_url": instance})
    )
    client.limits()
    emulator.state.sessions.expire_all()
    with pytest.raises(AuthenticationError, match="cannot be renewed"):
        client.limits()
