"""Logging in: the OAuth 2.0 token endpoint, the identity URL and SOAP ``login()``.

The emulated org has one user and one connected app, both configured in
:class:`~sfbulk.emulator.app.EmulatorSettings`. Every way a Salesforce client logs in works:

- ``POST /services/oauth2/token`` with the ``password``, ``refresh_token``,
  ``urn:ietf:params:oauth:grant-type:jwt-bearer`` and ``client_credentials`` grants (client
  credentials in the form or as HTTP Basic); success and error bodies carry exactly the keys a
  real org sends for each grant;
- ``POST /services/oauth2/revoke`` to end a session or revoke the refresh token;
- ``GET /id/{orgId}/{userId}``, the identity URL named in every token response;
- ``POST /services/Soap/u/{version}`` (partner) and ``/services/Soap/c/{version}`` (enterprise)
  ``login()``, which Bulk 1.0 clients such as salesforce-bulk use.

``instance_url`` and every URL in these answers point at the emulator itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from defusedxml import ElementTree
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sfbulk.emulator.sessions import Session, bearer_token

if TYPE_CHECKING:
    from sfbulk.emulator.app import EmulatorState

logger = logging.getLogger(__name__)

GRANT_PASSWORD = "password"  # noqa: S105 - a grant type name
GRANT_REFRESH = "refresh_token"
GRANT_JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_CLIENT_CREDENTIALS = "client_credentials"

#: Audiences a JWT bearer assertion may name besides the emulator's own URL.
JWT_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
#: Latest ``exp`` Salesforce accepts, counted from now.
JWT_MAX_LIFETIME_SECONDS = 180
#: Clock skew tolerated on ``exp``.
JWT_LEEWAY_SECONDS = 30

_SCOPES = {
    GRANT_PASSWORD: "web api",
    GRANT_REFRESH: "refresh_token api id",
    GRANT_JWT: "api id",
    GRANT_CLIENT_CREDENTIALS: "api",
}


class OAuthError(Exception):
    """A refused token request: ``{"error": error, "error_description": description}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def identity_url(state: EmulatorState) -> str:
    """``{url}/id/{orgId18}/{userId18}``, the ``id`` of every token response."""
    return f"{state.base_url()}/id/{state.org.org_id}/{state.org.user_id}"


def sign(client_secret: str, identity: str, issued_at: str) -> str:
    """``base64(HMAC-SHA256(client_secret, id + issued_at))``, the response ``signature``."""
    digest = hmac.new(
        client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    """Client id and secret from the form, or else from an HTTP Basic header."""
    client_id = form.get("client_id")
    client_secret = form.get("client_secret")
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "invalid client credentials") from None
        basic_id, _, basic_secret = decoded.partition(":")
        client_id = client_id or basic_id
        client_secret = client_secret or basic_secret
    return client_id, client_secret


def _check_client(
    state: EmulatorState, client_id: str | None, client_secret: str | None, *, secret_required: bool
) -> None:
    settings = state.settings
    if not client_id or not hmac.compare_digest(client_id, settings.client_id):
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if client_secret is None:
        if secret_required:
            raise OAuthError("invalid_client", "invalid client credentials")
        return
    if not hmac.compare_digest(client_secret, settings.client_secret):
        raise OAuthError("invalid_client", "invalid client credentials")


def _same_user(state: EmulatorState, username: str | None) -> bool:
    # Salesforce usernames are case-insensitive.
    return bool(username) and username.lower() == state.settings.username.lower()  # type: ignore[union-attr]


def _load_jwt_key(pem: str) -> Any:
    """The public key of a PEM certificate or PEM public key."""
    data = pem.encode()
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return load_pem_public_key(data)


def _verify_assertion(state: EmulatorState, assertion: str | None) -> None:
    """Check a JWT bearer assertion the way Salesforce does, raising :class:`OAuthError`."""
    settings = state.settings
    if not assertion:
        raise OAuthError("invalid_grant", "invalid assertion")
    if not settings.jwt_certificate:
        # No certificate is uploaded to the connected app: nothing can verify the signature.
        raise OAuthError("invalid_grant", "invalid assertion")
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if header.get("alg") != "RS256":
        raise OAuthError("invalid_grant", "invalid assertion")
    try:
        key = _load_jwt_key(settings.jwt_certificate)
        claims = jwt.decode(
            assertion,
            key,
            algorithms=["RS256"],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError):
        raise OAuthError("invalid_grant", "invalid assertion") from None
    if claims.get("iss") != settings.client_id:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    audiences = claims.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    allowed = {*JWT_AUDIENCES, state.base_url()}
    if not isinstance(audiences, list) or not any(
        isinstance(a, str) and a.rstrip("/") in allowed for a in audiences
    ):
        raise OAuthError("invalid_grant", "Audience validation failed")
    exp = _numeric_date(claims.get("exp"))
    now = time.time()
    if exp is None:
        raise OAuthError("invalid_grant", "invalid assertion")
    if exp <= now - JWT_LEEWAY_SECONDS or exp > now + JWT_MAX_LIFETIME_SECONDS + JWT_LEEWAY_SECONDS:
        raise OAuthError("invalid_grant", "expired authorization code")
    if not _same_user(state, claims.get("sub")):
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")


def _numeric_date(value: Any) -> float | None:
    """A JWT NumericDate; Salesforce also takes it as a string of digits (simple-salesforce
    sends ``"exp": "1700000000"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def grant(state: EmulatorState, request: Request, form: dict[str, str]) -> dict[str, str]:
    """Run one token request and return the success body (keys in Salesforce's order).

    Raises:
        OAuthError: for any refusal, with Salesforce's error and description.
    """
    settings = state.settings
    grant_type = form.get("grant_type")
    client_id, client_secret = _client_credentials(request, form)
    if grant_type == GRANT_PASSWORD:
        _check_client(state, client_id, client_secret, secret_required=True)
        expected = settings.password + settings.security_token
        password = form.get("password") or ""
        if not _same_user(state, form.get("username")) or not hmac.compare_digest(
            password.encode(), expected.encode()
        ):
            raise OAuthError("invalid_grant", "authentication failure")
    elif grant_type == GRANT_REFRESH:
        _check_client(state, client_id, client_secret, secret_required=False)
        token = form.get("refresh_token") or ""
        if state.sessions.refresh_token_revoked or not hmac.compare_digest(
            token.encode(), settings.refresh_token.encode()
        ):
            raise OAuthError("invalid_grant", "expired access/refresh token")
    elif grant_type == GRANT_JWT:
        _verify_assertion(state, form.get("assertion"))
    elif grant_type == GRANT_CLIENT_CREDENTIALS:
        _check_client(state, client_id, client_secret, secret_required=True)
    elif not grant_type:
        raise OAuthError("unsupported_grant_type", "grant type not supported")
    else:
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    source = "jwt" if grant_type == GRANT_JWT else grant_type
    session = state.sessions.issue(settings.username, state.org.user_id, source=source)
    return token_body(state, grant_type, session)


def token_body(state: EmulatorState, grant_type: str, session: Session) -> dict[str, str]:
    """The success body of ``grant_type``: the keys, and their order, a real org sends."""
    identity = identity_url(state)
    issued_at = str(int(session.issued_at * 1000))
    signature = sign(state.settings.client_secret, identity, issued_at)
    instance = state.base_url()
    scope = _SCOPES[grant_type]
    if grant_type == GRANT_PASSWORD:
        return {
            "id": identity,
            "issued_at": issued_at,
            "instance_url": instance,
            "signature": signature,
            "access_token": session.token,
            "token_type": "Bearer",
            "scope": scope,
        }
    if grant_type == GRANT_JWT:
        return {
            "access_token": session.token,
            "scope": scope,
            "instance_url": instance,
            "id": identity,
            "token_type": "Bearer",
        }
    # refresh_token and client_credentials answer alike.
    return {
        "access_token": session.token,
        "signature": signature,
        "scope": scope,
        "instance_url": instance,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
    }


def _response_format(request: Request, form: dict[str, str]) -> str:
    """``json`` (default), ``urlencoded`` or ``xml``, from ``format=`` or the Accept header."""
    wanted = (form.get("format") or request.query_params.get("format") or "").lower()
    if wanted in ("json", "urlencoded", "xml"):
        return wanted
    accept = request.headers.get("accept", "").lower()
    if "application/x-www-form-urlencoded" in accept:
        return "urlencoded"
    if "xml" in accept and "json" not in accept:
        return "xml"
    return "json"


def _render(body: dict[str, str], fmt: str, status: int = 200) -> Response:
    headers = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}
    if fmt == "urlencoded":
        return Response(urlencode(body), status, headers, "application/x-www-form-urlencoded")
    if fmt == "xml":
        inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in body.items())
        return Response(
            f'<?xml version="1.0" encoding="UTF-8"?><OAuth>{inner}</OAuth>',
            status,
            headers,
            "application/xml",
        )
    return Response(json.dumps(body, separators=(",", ":")), status, headers, "application/json")


async def _read_form(request: Request) -> dict[str, str]:
    """The form fields of a token request (body, then query string for missing ones)."""
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        pairs = []
    form = dict(request.query_params)
    form.update(dict(pairs))
    return form


async def token_endpoint(request: Request) -> Response:
    """``POST /services/oauth2/token``: issue a session for one of the four grants."""
    state = _state(request)
    form = await _read_form(request)
    fmt = _response_format(request, form)
    try:
        body = grant(state, request, form)
    except OAuthError as exc:
        logger.info("token request refused: %s (grant %s)", exc.error, form.get("grant_type"))
        return _render({"error": exc.error, "error_description": exc.description}, fmt, exc.status)
    return _render(body, fmt)


async def revoke_endpoint(request: Request) -> Response:
    """``POST /services/oauth2/revoke``: end a session, or revoke the refresh token.

    Salesforce answers 200 with an empty body, and 400 ``unsupported_token_type`` for a token it
    does not know.
    """
    state = _state(request)
    form = await _read_form(request)
    token = form.get("token") or ""
    if token and hmac.compare_digest(token.encode(), state.settings.refresh_token.encode()):
        state.sessions.revoke_refresh_token()
        return Response(b"", 200)
    if token and state.sessions.revoke(token):
        return Response(b"", 200)
    return JSONResponse(
        {
            "error": "unsupported_token_type",
            "error_description": "this token type is not supported",
        },
        400,
    )


def identity_body(state: EmulatorState) -> dict[str, Any]:
    """The identity service answer for the org's user, with every URL on the emulator."""
    base = state.base_url()
    org15 = state.org.org_id[:15]
    settings = state.settings
    first, _, last = settings.user_full_name.partition(" ")
    return {
        "id": identity_url(state),
        "asserted_user": True,
        "user_id": state.org.user_id,
        "organization_id": state.org.org_id,
        "username": settings.username,
        "nick_name": settings.username.split("@")[0],
        "display_name": settings.user_full_name,
        "email": settings.user_email,
        "email_verified": True,
        "first_name": first,
        "last_name": last,
        "timezone": "GMT",
        "photos": {
            "picture": f"{base}/profilephoto/005/F",
            "thumbnail": f"{base}/profilephoto/005/T",
        },
        "addr_street": None,
        "addr_city": None,
        "addr_state": None,
        "addr_country": None,
        "addr_zip": None,
        "mobile_phone": None,
        "mobile_phone_verified": False,
        "is_lightning_login_user": False,
        "status": {"created_date": None, "body": None},
        "urls": {
            "enterprise": f"{base}/services/Soap/c/{{version}}/{org15}",
            "metadata": f"{base}/services/Soap/m/{{version}}/{org15}",
            "partner": f"{base}/services/Soap/u/{{version}}/{org15}",
            "rest": f"{base}/services/data/v{{version}}/",
            "sobjects": f"{base}/services/data/v{{version}}/sobjects/",
            "search": f"{base}/services/data/v{{version}}/search/",
            "query": f"{base}/services/data/v{{version}}/query/",
            "recent": f"{base}/services/data/v{{version}}/recent/",
            "tooling_soap": f"{base}/services/Soap/T/{{version}}/{org15}",
            "tooling_rest": f"{base}/services/data/v{{version}}/tooling/",
            "profile": f"{base}/{state.org.user_id}",
            "feeds": f"{base}/services/data/v{{version}}/chatter/feeds",
            "groups": f"{base}/services/data/v{{version}}/chatter/groups",
            "users": f"{base}/services/data/v{{version}}/chatter/users",
            "feed_items": f"{base}/services/data/v{{version}}/chatter/feed-items",
            "feed_elements": f"{base}/services/data/v{{version}}/chatter/feed-elements",
            "custom_domain": base,
        },
        "active": True,
        "user_type": "STANDARD",
        "language": "en_US",
        "locale": "en_US",
        "utcOffset": 0,
        "last_modified_date": "2024-01-01T00:00:00Z",
        "is_app_installed": True,
    }


async def identity_endpoint(request: Request) -> Response:
    """``GET /id/{orgId}/{userId}``: who the token belongs to (bearer token or ``oauth_token``)."""
    state = _state(request)
    token = bearer_token(request) or request.query_params.get("oauth_token")
    session = state.sessions.check(token)
    if session is None:
        return Response("Bad_OAuth_Token", 403, media_type="text/plain")
    org_id = request.path_params["org_id"]
    user_id = request.path_params["user_id"]
    if org_id[:15] != state.org.org_id[:15] or user_id[:15] != state.org.user_id[:15]:
        return Response("Bad_Id", 404, media_type="text/plain")
    return JSONResponse(identity_body(state))


# ---------------------------------------------------------------------------------------------
# SOAP login

_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_NAMESPACES = {"u": "urn:partner.soap.sforce.com", "c": "urn:enterprise.soap.sforce.com"}


def _soap_fault(code: str, message: str, flavour: str) -> Response:
    fault_ns = f"urn:fault.{'partner' if flavour == 'u' else 'enterprise'}.soap.sforce.com"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        f'xmlns:soapenv="{_SOAP_ENV}" xmlns:sf="{fault_ns}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
        f'<detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}'
        f"</sf:exceptionCode><sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(body, 500, media_type="text/xml; charset=utf-8")


def _login_result(state: EmulatorState, session: Session, version: str, flavour: str) -> str:
    base = state.base_url()
    org15 = state.org.org_id[:15]
    settings = state.settings
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{_SOAP_ENV}" xmlns="{_NAMESPACES[flavour]}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
   <soapenv:Body>
      <loginResponse>
         <result>
            <metadataServerUrl>{base}/services/Soap/m/{version}/{org15}</metadataServerUrl>
            <passwordExpired>false</passwordExpired>
            <sandbox>false</sandbox>
            <serverUrl>{base}/services/Soap/{flavour}/{version}/{org15}</serverUrl>
            <sessionId>{session.token}</sessionId>
            <userId>{state.org.user_id}</userId>
            <userInfo>
               <accessibilityMode>false</accessibilityMode>
               <currencySymbol>$</currencySymbol>
               <orgAttachmentFileSizeLimit>5242880</orgAttachmentFileSizeLimit>
               <orgDefaultCurrencyIsoCode>USD</orgDefaultCurrencyIsoCode>
               <orgDisallowHtmlAttachments>false</orgDisallowHtmlAttachments>
               <orgHasPersonAccounts>false</orgHasPersonAccounts>
               <organizationId>{state.org.org_id}</organizationId>
               <organizationMultiCurrency>false</organizationMultiCurrency>
               <organizationName>{escape(settings.organization_name)}</organizationName>
               <profileId>00e000000000001AAA</profileId>
               <roleId xsi:nil="true" />
               <sessionSecondsValid>{int(settings.session_seconds)}</sessionSecondsValid>
               <userDefaultCurrencyIsoCode xsi:nil="true" />
               <userEmail>{escape(settings.user_email)}</userEmail>
               <userFullName>{escape(settings.user_full_name)}</userFullName>
               <userId>{state.org.user_id}</userId>
               <userLanguage>en_US</userLanguage>
               <userLocale>en_US</userLocale>
               <userName>{escape(settings.username)}</userName>
               <userTimeZone>GMT</userTimeZone>
               <userType>Standard</userType>
               <userUiSkin>Theme3</userUiSkin>
            </userInfo>
         </result>
      </loginResponse>
   </soapenv:Body>
</soapenv:Envelope>"""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


async def soap_endpoint(request: Request) -> Response:
    """``POST /services/Soap/{u|c}/{version}``: SOAP ``login()`` (other calls are refused).

    A bad username or password gives the ``INVALID_LOGIN`` fault with HTTP 500, as Salesforce
    does; an unknown version gives ``UNSUPPORTED_API_VERSION``.
    """
    state = _state(request)
    flavour = request.path_params["flavour"]
    version = request.path_params["version"]
    if flavour not in _NAMESPACES:
        return Response("Not Found", 404, media_type="text/plain")
    from sfbulk.emulator.app import served_version

    status, served = served_version(state.settings, version)
    if status != 200 or served is None:
        return _soap_fault(
            "UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}", flavour
        )
    raw = await request.body()
    try:
        root = ElementTree.fromstring(raw)
    except Exception:  # defusedxml raises several types for malformed or hostile XML
        return _soap_fault("INVALID_XML", "Unable to parse the SOAP request", flavour)
    login = next((el for el in root.iter() if _local(el.tag) == "login"), None)
    if login is None:
        return _soap_fault(
            "UNKNOWN_EXCEPTION", "This emulator serves only the SOAP login() call", flavour
        )
    fields = {_local(child.tag): (child.text or "") for child in login}
    expected = state.settings.password + state.settings.security_token
    if not _same_user(state, fields.get("username")) or not hmac.compare_digest(
        fields.get("password", "").encode(), expected.encode()
    ):
        return _soap_fault(
            "INVALID_LOGIN",
            "Invalid username, password, security token; or user locked out.",
            flavour,
        )
    session = state.sessions.issue(state.settings.username, state.org.user_id, source="soap")
    return Response(
        _login_result(state, session, served, flavour), 200, media_type="text/xml; charset=utf-8"
    )


def routes() -> list[BaseRoute]:
    """The login routes."""
    return [
        Route("/services/oauth2/token", token_endpoint, methods=["POST"]),
        Route("/services/oauth2/revoke", revoke_endpoint, methods=["POST"]),
        Route("/id/{org_id}/{user_id}", identity_endpoint, methods=["GET"]),
        Route("/services/Soap/{flavour:str}/{version}", soap_endpoint, methods=["POST"]),
    ]
