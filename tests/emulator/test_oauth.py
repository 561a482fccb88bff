"""Logging in to the emulator: the four OAuth grants, the identity URL, SOAP login, sessions."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs
from xml.etree import ElementTree

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.conftest import emulator_token

TOKEN_PATH = "/services/oauth2/token"
PASSWORD_KEYS = [
    "id",
    "issued_at",
    "instance_url",
    "signature",
    "access_token",
    "token_type",
    "scope",
]
REFRESH_KEYS = [
    "access_token",
    "signature",
    "scope",
    "instance_url",
    "id",
    "token_type",
    "issued_at",
]
JWT_KEYS = ["access_token", "scope", "instance_url", "id", "token_type"]


def _password_form(settings, **overrides) -> dict:
    form = {
        "grant_type": "password",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "username": settings.username,
        "password": settings.password + settings.security_token,
    }
    form.update(overrides)
    return form


def _token(server, form: dict, **kwargs) -> requests.Response:
    return requests.post(server.url + TOKEN_PATH, data=form, timeout=10, **kwargs)


def _rest_ok(server, token: str) -> bool:
    response = requests.get(
        f"{server.url}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return response.status_code == 200


def _recorded(fixtures_dir, name: str):
    return json.loads((fixtures_dir / "salesforce" / "oauth" / name).read_text())


# --- password grant ------------------------------------------------------------------------


def test_password_grant_body_matches_the_recording(emulator, fixtures_dir):
    state = emulator.state
    response = _token(emulator, _password_form(state.settings))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == PASSWORD_KEYS
    recorded = _recorded(fixtures_dir, "password_grant_success.json")
    # The recorded keys appear in the recorded order; token_type and scope follow.
    assert [key for key in body if key in recorded] == list(recorded)
    assert body["instance_url"] == emulator.url
    assert body["id"] == f"{emulator.url}/id/{state.org.org_id}/{state.org.user_id}"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "web api"
    assert body["issued_at"].isdigit() and len(body["issued_at"]) == 13
    assert abs(int(body["issued_at"]) / 1000 - time.time()) < 60
    expected_signature = base64.b64encode(
        hmac.new(b"demo-secret", (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    ).decode()
    assert body["signature"] == expected_signature
    token = body["access_token"]
    org15 = state.org.org_id[:15]
    assert token.startswith(org15 + "!AQ") and len(token) == len(org15) + 3 + 93
    assert _rest_ok(emulator, token)


def test_each_login_gets_its_own_session(emulator):
    first = emulator_token(emulator)
    second = emulator_token(emulator)
    assert first != second
    assert _rest_ok(emulator, first) and _rest_ok(emulator, second)


def test_password_grant_with_security_token(emulator_factory):
    server = emulator_factory(security_token="TOKEN123")
    settings = server.state.settings
    assert _token(server, _password_form(settings, password="demo-password")).status_code == 400
    response = _token(server, _password_form(settings, password="demo-passwordTOKEN123"))
    assert response.status_code == 200


def test_username_is_case_insensitive(emulator):
    form = _password_form(emulator.state.settings, username="DEMO@Example.com")
    assert _token(emulator, form).status_code == 200


def test_password_grant_errors(emulator, fixtures_dir):
    settings = emulator.state.settings
    recorded = _recorded(fixtures_dir, "password_grant_error_invalid_grant.json")
    response = _token(emulator, _password_form(settings, password="wrong"))
    assert response.status_code == 400
    assert list(response.json()) == list(recorded)
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }
    response = _token(emulator, _password_form(settings, username="nobody@example.com"))
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }
    response = _token(emulator, _password_form(settings, client_id="other"))
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client_id", "error_description": "client identifier invalid"},
    )
    response = _token(emulator, _password_form(settings, client_secret="other"))
    assert (response.status_code, response.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    response = _token(emulator, _password_form(settings, grant_type="authorization_code"))
    assert response.json() == {
        "error": "unsupported_grant_type",
        "error_description": "grant type not supported",
    }


def test_client_credentials_in_a_basic_header(emulator):
    settings = emulator.state.settings
    form = _password_form(settings)
    del form["client_id"], form["client_secret"]
    response = _token(emulator, form, auth=(settings.client_id, settings.client_secret))
    assert response.status_code == 200
    response = _token(emulator, form, auth=(settings.client_id, "wrong"))
    assert response.json()["error"] == "invalid_client"


def test_urlencoded_and_xml_response_formats(emulator):
    form = _password_form(emulator.state.settings, format="urlencoded")
    response = _token(emulator, form)
    assert response.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = parse_qs(response.text)
    assert sorted(fields) == sorted(PASSWORD_KEYS)
    assert fields["instance_url"] == [emulator.url]
    response = _token(
        emulator, _password_form(emulator.state.settings), headers={"Accept": "application/xml"}
    )
    root = ElementTree.fromstring(response.content)
    assert root.tag == "OAuth"
    assert [child.tag for child in root] == PASSWORD_KEYS


# --- refresh token grant -------------------------------------------------------------------


def test_refresh_token_grant(emulator, fixtures_dir):
    settings = emulator.state.settings
    form = {
        "grant_type": "refresh_token",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "refresh_token": settings.refresh_token,
    }
    response = _token(emulator, form)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == REFRESH_KEYS
    assert "refresh_token" not in body
    assert body["scope"] == "refresh_token api id"
    assert body["instance_url"] == emulator.url
    assert _rest_ok(emulator, body["access_token"])
    # The client secret is optional for this grant.
    del form["client_secret"]
    assert _token(emulator, form).status_code == 200

    expired = _recorded(fixtures_dir, "refresh_grant_error_expired.json")
    response = _token(emulator, {**form, "refresh_token": "not-the-token"})
    assert (response.status_code, response.json()) == (400, expired)

    revoke = requests.post(f"{emulator.url}/_emulator/revoke-refresh-token", timeout=10)
    assert revoke.json() == {"refresh_token_revoked": True}
    response = _token(emulator, form)
    assert (response.status_code, response.content) == (
        400,
        json.dumps(expired, separators=(",", ":")).encode(),
    )
    # Sessions already issued stay valid; a reset makes the refresh token valid again.
    assert _rest_ok(emulator, body["access_token"])
    requests.post(f"{emulator.url}/_emulator/reset", timeout=10)
    assert _token(emulator, form).status_code == 200


def test_client_credentials_grant(emulator):
    settings = emulator.state.settings
    form = {"grant_type": "client_credentials"}
    response = _token(emulator, form, auth=(settings.client_id, settings.client_secret))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == REFRESH_KEYS
    assert body["scope"] == "api"
    assert _rest_ok(emulator, body["access_token"])
    response = _token(emulator, {**form, "client_id": settings.client_id})
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }


def test_oauth_revoke_ends_a_session(emulator):
    token = emulator_token(emulator)
    response = requests.post(f"{emulator.url}/services/oauth2/revoke", data={"token": token})
    assert (response.status_code, response.content) == (200, b"")
    assert not _rest_ok(emulator, token)
    response = requests.post(f"{emulator.url}/services/oauth2/revoke", data={"token": token})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_token_type"


# --- JWT bearer ----------------------------------------------------------------------------


def _key_and_certificate():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sfbulk test")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return key, pem


@pytest.fixture(scope="module")
def signing_material():
    return _key_and_certificate()


def _assertion(key, **claims) -> str:
    body = {
        "iss": "demo-client",
        "sub": "demo@example.com",
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 170,
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256")


def _jwt_form(assertion: str) -> dict:
    return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


def test_jwt_bearer_grant(emulator_factory, signing_material):
    key, certificate = signing_material
    server = emulator_factory(jwt_certificate=certificate)
    response = _token(server, _jwt_form(_assertion(key)))
    assert response.status_code == 200
    body = response.json()
    assert list(body) == JWT_KEYS
    assert body["instance_url"] == server.url
    assert _rest_ok(server, body["access_token"])
    for audience in ("https://test.salesforce.com", server.url, [server.url, "other"]):
        response = _token(server, _jwt_form(_assertion(key, aud=audience)))
        assert response.status_code == 200, audience


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://example.com"}, "invalid_grant", "Audience validation failed"),
        ({"exp": int(time.time()) - 120}, "invalid_grant", "expired authorization code"),
        ({"exp": int(time.time()) + 3600}, "invalid_grant", "expired authorization code"),
        ({"iss": "other-client"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "someone@example.com"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_jwt_bearer_claim_errors(emulator_factory, signing_material, claims, error, description):
    key, certificate = signing_material
    server = emulator_factory(jwt_certificate=certificate)
    response = _token(server, _jwt_form(_assertion(key, **claims)))
    assert (response.status_code, response.json()) == (
        400,
        {"error": error, "error_description": description},
    )


def test_jwt_bearer_signature_errors(emulator_factory, signing_material):
    key, certificate = signing_material
    server = emulator_factory(jwt_certificate=certificate)
    other_key, _ = _key_and_certificate()
    invalid = {"error": "invalid_grant", "error_description": "invalid assertion"}
    assert _token(server, _jwt_form(_assertion(other_key))).json() == invalid
    hs256 = jwt.encode({"iss": "demo-client", "sub": "demo@example.com"}, "k" * 32, "HS256")
    assert _token(server, _jwt_form(hs256)).json() == invalid
    assert _token(server, _jwt_form("not-a-jwt")).json() == invalid
    assert _token(server, {"grant_type": _jwt_form("")["grant_type"]}).json() == invalid
    # Without a configured certificate nothing can verify an assertion.
    plain = emulator_factory()
    assert _token(plain, _jwt_form(_assertion(key))).json() == invalid


def test_jwt_bearer_with_a_bare_public_key(emulator_factory, signing_material):
    key, _ = signing_material
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    server = emulator_factory(jwt_certificate=public_pem)
    assert _token(server, _jwt_form(_assertion(key))).status_code == 200


# --- identity URL --------------------------------------------------------------------------


def test_identity_url(emulator, fixtures_dir):
    body = _token(emulator, _password_form(emulator.state.settings)).json()
    response = requests.get(
        body["id"], headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10
    )
    assert response.status_code == 200
    identity = response.json()
    recorded = _recorded(fixtures_dir, "identity_url_response.json")
    assert list(identity) == list(recorded)
    assert list(identity["urls"]) == list(recorded["urls"])
    assert identity["id"] == body["id"]
    assert identity["user_id"] == emulator.state.org.user_id
    assert identity["organization_id"] == emulator.state.org.org_id
    assert identity["username"] == "demo@example.com"
    org15 = emulator.state.org.org_id[:15]
    assert identity["urls"]["partner"] == f"{emulator.url}/services/Soap/u/{{version}}/{org15}"
    assert identity["urls"]["rest"] == f"{emulator.url}/services/data/v{{version}}/"
    # The token may also come as a parameter; without one the service refuses.
    assert requests.get(body["id"], params={"oauth_token": body["access_token"]}).status_code == 200
    refused = requests.get(body["id"], timeout=10)
    assert (refused.status_code, refused.text) == (403, "Bad_OAuth_Token")


# --- SOAP login ----------------------------------------------------------------------------

SOAP_BODY = """<?xml version="1.0" encoding="utf-8" ?>
<env:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:urn="urn:partner.soap.sforce.com">
  <env:Header><urn:CallOptions><urn:client>sfbulk-test</urn:client></urn:CallOptions></env:Header>
  <env:Body>
    <n1:login xmlns:n1="urn:partner.soap.sforce.com">
      <n1:username>{username}</n1:username>
      <n1:password>{password}</n1:password>
    </n1:login>
  </env:Body>
</env:Envelope>"""

SOAP_HEADERS = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "login"}


def _soap_login(server, flavour="u", version="62.0", username="demo@example.com", password=None):
    body = SOAP_BODY.format(username=username, password=password or "demo-password")
    return requests.post(
        f"{server.url}/services/Soap/{flavour}/{version}",
        data=body.encode(),
        headers=SOAP_HEADERS,
        timeout=10,
    )


def _children(element) -> list[str]:
    return [child.tag.rsplit("}", 1)[-1] for child in element]


@pytest.mark.parametrize(
    ("flavour", "namespace"),
    [("u", "urn:partner.soap.sforce.com"), ("c", "urn:enterprise.soap.sforce.com")],
)
def test_soap_login(emulator, fixtures_dir, flavour, namespace):
    response = _soap_login(emulator, flavour)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    root = ElementTree.fromstring(response.content)
    result = root.find(f".//{{{namespace}}}loginResponse/{{{namespace}}}result")
    assert result is not None
    recorded = ElementTree.fromstring(
        (fixtures_dir / "salesforce" / "soap" / "login_response_success.xml").read_bytes()
    )
    recorded_result = recorded.find(".//{urn:enterprise.soap.sforce.com}result")
    assert _children(result) == _children(recorded_result)
    user_info = result.find(f"{{{namespace}}}userInfo")
    recorded_info = recorded_result.find("{urn:enterprise.soap.sforce.com}userInfo")
    assert _children(user_info) == _children(recorded_info)
    org15 = emulator.state.org.org_id[:15]
    server_url = result.findtext(f"{{{namespace}}}serverUrl")
    assert server_url == f"{emulator.url}/services/Soap/{flavour}/62.0/{org15}"
    assert result.findtext(f"{{{namespace}}}userId") == emulator.state.org.user_id
    assert user_info.findtext(f"{{{namespace}}}sessionSecondsValid") == "7200"
    assert user_info.findtext(f"{{{namespace}}}userName") == "demo@example.com"
    session_id = result.findtext(f"{{{namespace}}}sessionId")
    assert _rest_ok(emulator, session_id)


def test_soap_login_fault(emulator, fixtures_dir):
    response = _soap_login(emulator, password="wrong")
    assert response.status_code == 500
    root = ElementTree.fromstring(response.content)
    fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault.findtext("faultcode") == "sf:INVALID_LOGIN"
    message = "Invalid username, password, security token; or user locked out."
    assert fault.findtext("faultstring") == f"INVALID_LOGIN: {message}"
    ns = "{urn:fault.partner.soap.sforce.com}"
    detail = fault.find(f"detail/{ns}LoginFault")
    assert detail.findtext(f"{ns}exceptionCode") == "INVALID_LOGIN"
    assert detail.findtext(f"{ns}exceptionMessage") == message
    recorded = ElementTree.fromstring(
        (fixtures_dir / "salesforce" / "soap" / "login_fault_invalid_login.xml").read_bytes()
    )
    recorded_fault = recorded.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert _children(fault) == _children(recorded_fault)


def test_soap_login_refusals(emulator):
    response = _soap_login(emulator, version="19.0")
    assert response.status_code == 500
    assert b"<faultcode>sf:UNSUPPORTED_API_VERSION</faultcode>" in response.content
    response = requests.post(
        f"{emulator.url}/services/Soap/u/62.0", data=b"<not xml", headers=SOAP_HEADERS
    )
    assert response.status_code == 500
    assert b"sf:INVALID_XML" in response.content
    assert requests.post(f"{emulator.url}/services/Soap/x/62.0", data=b"").status_code == 404


# --- session lifetime ----------------------------------------------------------------------


def test_sessions_expire_after_their_lifetime(emulator_factory, fixtures_dir):
    server = emulator_factory(session_seconds=0.5)
    token = emulator_token(server)
    assert _rest_ok(server, token)
    time.sleep(0.6)
    response = requests.get(
        f"{server.url}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    recorded = (fixtures_dir / "salesforce" / "rest" / "error_invalid_session_id.json").read_bytes()
    assert (response.status_code, response.content) == (401, recorded.strip())
    assert _rest_ok(server, emulator_token(server))


def test_session_store_repr_hides_the_token(emulator):
    session = emulator.state.sessions.issue("demo@example.com", emulator.state.org.user_id)
    assert session.token not in repr(session)
    assert emulator.state.sessions.check(session.token) is session
    assert "demo-password" not in repr(emulator.state.settings)
    assert "demo-secret" not in repr(emulator.state.settings)
