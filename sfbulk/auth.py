"""Log in to Salesforce with any of the OAuth grants companies use, and renew sessions safely.

Grants (``auth_type``):

- ``password``: username + password + security token, with the connected app's client id and
  secret (OAuth username-password flow).
- ``refresh_token``: an OAuth refresh token (client id, optional secret). When Salesforce rotates
  the refresh token, the new one replaces the old and is handed to ``on_refresh_token`` so the
  caller can persist it.
- ``jwt``: JWT bearer flow for server-to-server logins: an RS256 assertion signed with the
  connected app's private key (PEM from ``private_key`` or ``private_key_path``), claims
  ``iss`` = client id, ``sub`` = username, ``aud`` = the login host, ``exp`` = now + 3 minutes.
- ``client_credentials``: the connected app's own run-as user; client id and secret sent as HTTP
  Basic (default) or in the body. Salesforce only accepts it on a My Domain host.
- ``access_token``: a ready token and its ``instance_url``. It cannot be renewed, so a refused
  session is an :class:`AuthenticationError`. A ready token may also be given together with the
  credentials of another grant, which are then used to renew it.

``login_url`` is ``https://login.salesforce.com`` (production, the default),
``https://test.salesforce.com`` (sandboxes), a My Domain URL, or a local emulator. Plain ``http://``
is refused except on loopback hosts.

Sessions are shared by many threads. :meth:`SalesforceAuth.refresh` takes the token a request was
refused with and logs in again only if that token is still the current one, so however many
threads see the expiry together, exactly one token request is made.

Secrets (passwords, tokens, client secrets, keys) are held in :class:`Secret` wrappers and never
appear in reprs, logs or exception messages.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from sfbulk.errors import AuthenticationError, ConfigError, SalesforceError
from sfbulk.http import (
    RetryPolicy,
    _Transient,
    error_from_response,
    is_transient,
    run_with_retries,
    url_allowed,
)

logger = logging.getLogger(__name__)

PRODUCTION_LOGIN_URL = "https://login.salesforce.com"
SANDBOX_LOGIN_URL = "https://test.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 - a path, not a secret
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Lifetime of a JWT assertion; Salesforce accepts at most three minutes.
JWT_LIFETIME_SECONDS = 180

GRANTS = ("password", "refresh_token", "jwt", "client_credentials", "access_token")

#: Settings that select a grant when ``auth_type`` is not given, and belong to no other grant.
_DISTINCTIVE: dict[str, tuple[str, ...]] = {
    "password": ("password", "security_token"),
    "refresh_token": ("refresh_token",),
    "jwt": ("private_key", "private_key_path", "private_key_password", "jwt_audience"),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "password": ("client_id", "client_secret", "username", "password"),
    "refresh_token": ("client_id", "refresh_token"),
    "jwt": ("client_id", "username"),
    "client_credentials": ("client_id", "client_secret"),
    "access_token": ("access_token", "instance_url"),
}
#: Every setting :meth:`SalesforceAuth.from_config` reads.
SETTINGS = (
    "auth_type",
    "login_url",
    "client_id",
    "client_secret",
    "client_auth_method",
    "username",
    "password",
    "security_token",
    "refresh_token",
    "private_key",
    "private_key_path",
    "private_key_password",
    "jwt_audience",
    "access_token",
    "instance_url",
)


class Secret:
    """A string that never shows itself in ``repr``/``str``; call :meth:`reveal` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for building a request."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _present(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key)
    return value is not None and value != ""


def check_login_url(url: str, setting: str = "login_url") -> str:
    """Validate a login or instance URL: https, or http on a loopback host; no path needed.

    Returns:
        The URL without a trailing slash.

    Raises:
        ConfigError: Naming the setting (not its value) and the rule broken.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} must be an absolute https:// URL")
    if not url_allowed(url.strip()):
        raise ConfigError(
            f"{setting} uses plain http:// on a non-loopback host; credentials are only sent "
            "over https (http is allowed for 127.0.0.0/8, ::1 and localhost)"
        )
    return url.strip().rstrip("/")


def _load_private_key(pem: bytes, password: str | None, setting: str) -> Any:
    try:
        # Imported here: only the JWT flow needs them, and they take a fifth of a second to load.
        from cryptography.hazmat.primitives import serialization

        return serialization.load_pem_private_key(
            pem, password=password.encode("utf-8") if password else None
        )
    except (ValueError, TypeError) as exc:
        # The library's message describes the format problem, never the key material.
        raise ConfigError(
            f"{setting} is not a usable PEM private key ({type(exc).__name__})"
        ) from None


def jwt_audience_for(login_url: str) -> str:
    """The ``aud`` claim for a login URL: its scheme and host (``https://login.salesforce.com``)."""
    parts = urlsplit(login_url)
    return f"{parts.scheme}://{parts.netloc}"


class SalesforceAuth:
    """Credentials for one org, the current session, and thread-safe renewal.

    Build it with :meth:`from_config`; use :meth:`session` for the current
    ``(access_token, instance_url)`` and :meth:`refresh` when a request was refused.

    Args:
        grant: One of :data:`GRANTS`.
        login_url: OAuth host (production, sandbox, My Domain or an emulator).
        client_id: Connected app consumer key.
        client_secret: Connected app consumer secret.
        username: Salesforce username (password and JWT grants).
        password: Password (password grant).
        security_token: Security token appended to the password.
        refresh_token: Refresh token (refresh grant).
        private_key: Loaded private key object (JWT grant).
        jwt_audience: Override of the JWT ``aud`` claim.
        client_auth_method: ``basic`` or ``body``: where client credentials go for that grant.
        access_token: A ready session token.
        instance_url: The instance the ready token belongs to.
        on_refresh_token: Called with a rotated refresh token so the caller can persist it.
        timeout: ``(connect, read)`` seconds for token requests.
        retry_policy: Retries of transient token-endpoint failures.
        session: HTTP session for token requests (tests mount adapters on it).
    """

    def __init__(
        self,
        *,
        grant: str,
        login_url: str = PRODUCTION_LOGIN_URL,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        password: str | None = None,
        security_token: str | None = None,
        refresh_token: str | None = None,
        private_key: Any = None,
        jwt_audience: str | None = None,
        client_auth_method: str = "basic",
        access_token: str | None = None,
        instance_url: str | None = None,
        on_refresh_token: Callable[[str], None] | None = None,
        timeout: tuple[float, float] = (30.0, 60.0),
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if grant not in GRANTS:
            raise ConfigError(f"auth_type must be one of {', '.join(GRANTS)}")
        if client_auth_method not in ("basic", "body"):
            raise ConfigError("client_auth_method must be 'basic' or 'body'")
        self.grant = grant
        self.login_url = check_login_url(login_url)
        self.client_id = client_id
        self.username = username
        self.jwt_audience = jwt_audience or jwt_audience_for(self.login_url)
        self.client_auth_method = client_auth_method
        self._client_secret = _secret(client_secret)
        self._password = _secret((password or "") + (security_token or "")) if password else None
        self._refresh_token = _secret(refresh_token)
        self._private_key = private_key
        self._access_token = _secret(access_token)
        self._instance_url = check_login_url(instance_url, "instance_url") if instance_url else None
        self.on_refresh_token = on_refresh_token
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy(max_retries=3, max_seconds=60.0)
        self._http = session or requests.Session()
        self._http.verify = True
        self._lock = threading.Lock()
        self.token_requests = 0
        self.identity_url: str | None = None
        self.org_id: str | None = None
        self.user_id: str | None = None

    # ------------------------------------------------------------------------------ building

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        on_refresh_token: Callable[[str], None] | None = None,
        session: requests.Session | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> SalesforceAuth:
        """Validate settings and build the auth they describe.

        Settings: ``auth_type`` (optional; inferred), ``login_url``, ``client_id``,
        ``client_secret``, ``client_auth_method``, ``username``, ``password``, ``security_token``,
        ``refresh_token``, ``private_key`` (PEM text; ``\\n`` escapes accepted),
        ``private_key_path``, ``private_key_password``, ``jwt_audience``, ``access_token``,
        ``instance_url``.

        Raises:
            ConfigError: Missing, conflicting or unusable settings, named (values never shown).
        """
        grant = config.get("auth_type") or None
        if grant is not None and grant not in GRANTS:
            raise ConfigError(f"auth_type must be one of {', '.join(GRANTS)}")
        selectors = {
            name: [key for key in keys if _present(config, key)]
            for name, keys in _DISTINCTIVE.items()
        }
        selected = [name for name, keys in selectors.items() if keys]
        if grant is None:
            if len(selected) > 1:
                named = ", ".join(key for name in selected for key in selectors[name])
                raise ConfigError(
                    f"settings {named} select different login methods ({', '.join(selected)}); "
                    "keep one, or set auth_type"
                )
            if selected:
                grant = selected[0]
            elif _present(config, "client_id") and _present(config, "client_secret"):
                grant = "client_credentials"
            elif _present(config, "access_token"):
                grant = "access_token"
            else:
                raise ConfigError(
                    "no credentials: set username, password (and security_token), client_id and "
                    "client_secret; or refresh_token and client_id; or username, client_id and "
                    "private_key/private_key_path; or client_id and client_secret (My Domain); "
                    "or access_token and instance_url"
                )
        else:
            foreign = [key for name in selected if name != grant for key in selectors[name]]
            if foreign:
                raise ConfigError(
                    f"auth_type {grant} conflicts with settings {', '.join(foreign)}, "
                    "which belong to another login method"
                )
        missing = [key for key in _REQUIRED[grant] if not _present(config, key)]
        if missing:
            raise ConfigError(f"auth_type {grant} needs the settings {', '.join(missing)}")
        if _present(config, "access_token") and not _present(config, "instance_url"):
            raise ConfigError("access_token needs the setting instance_url")

        login_url = config.get("login_url") or PRODUCTION_LOGIN_URL
        login_url = check_login_url(str(login_url))
        if grant == "client_credentials":
            host = (urlsplit(login_url).hostname or "").lower()
            if host in ("login.salesforce.com", "test.salesforce.com"):
                raise ConfigError(
                    "auth_type client_credentials must use your My Domain host as login_url "
                    "(Salesforce refuses it on login.salesforce.com and test.salesforce.com)"
                )

        private_key = None
        if grant == "jwt":
            has_text = _present(config, "private_key")
            has_path = _present(config, "private_key_path")
            if has_text and has_path:
                raise ConfigError("set only one of private_key and private_key_path")
            if not (has_text or has_path):
                raise ConfigError("auth_type jwt needs the setting private_key or private_key_path")
            if has_path:
                try:
                    pem = Path(str(config["private_key_path"])).expanduser().read_bytes()
                except OSError as exc:
                    raise ConfigError(
                        f"private_key_path cannot be read ({exc.strerror or type(exc).__name__})"
                    ) from None
                setting = "private_key_path"
            else:
                text = str(config["private_key"])
                if "\n" not in text and "\\n" in text:
                    text = text.replace("\\n", "\n")  # keys pasted into env vars
                pem = text.encode("utf-8")
                setting = "private_key"
            private_key = _load_private_key(pem, config.get("private_key_password"), setting)

        return cls(
            grant=grant,
            login_url=login_url,
            client_id=config.get("client_id"),
            client_secret=config.get("client_secret"),
            username=config.get("username"),
            password=config.get("password"),
            security_token=config.get("security_token"),
            refresh_token=config.get("refresh_token"),
            private_key=private_key,
            jwt_audience=config.get("jwt_audience"),
            client_auth_method=config.get("client_auth_method") or "basic",
            access_token=config.get("access_token"),
            instance_url=config.get("instance_url"),
            on_refresh_token=on_refresh_token,
            session=session,
            retry_policy=retry_policy,
        )

    def __repr__(self) -> str:
        return (
            f"SalesforceAuth(grant={self.grant!r}, login_url={self.login_url!r}, "
            f"username={self.username!r}, instance_url={self._instance_url!r})"
        )

    # ------------------------------------------------------------------------------ sessions

    @property
    def can_renew(self) -> bool:
        """Whether a refused session can be renewed (every grant but a bare access token)."""
        return self.grant != "access_token"

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token (after rotation, the newest), for the caller to persist."""
        return self._refresh_token.reveal() if self._refresh_token else None

    @property
    def instance_url(self) -> str | None:
        """The org's API host, once known."""
        return self._instance_url

    def session(self) -> tuple[str, str]:
        """Return ``(access_token, instance_url)``, logging in first if there is no session."""
        with self._lock:
            if self._access_token is None or self._instance_url is None:
                self._login_locked()
            assert self._access_token is not None and self._instance_url is not None
            return self._access_token.reveal(), self._instance_url

    def refresh(self, stale_token: str | None) -> tuple[str, str]:
        """Renew the session after ``stale_token`` was refused; thread-safe, one login per expiry.

        If another thread already replaced ``stale_token``, the current session is returned
        without a token request. ``stale_token=None`` forces a new login.

        Raises:
            AuthenticationError: The login failed, or the session cannot be renewed.
        """
        with self._lock:
            current = self._access_token.reveal() if self._access_token else None
            if (
                current is not None
                and stale_token is not None
                and current != stale_token
                and self._instance_url is not None
            ):
                return current, self._instance_url
            if not self.can_renew:
                raise AuthenticationError(
                    "the access token was refused and cannot be renewed: no refresh token, "
                    "password, JWT key or client credentials are configured",
                    code="INVALID_SESSION_ID",
                )
            self._login_locked()
            assert self._access_token is not None and self._instance_url is not None
            return self._access_token.reveal(), self._instance_url

    # ------------------------------------------------------------------------------ token calls

    def _grant_request(self) -> tuple[dict[str, str], dict[str, str]]:
        """Build the token request form and headers for this grant."""
        secret = self._client_secret.reveal() if self._client_secret else None
        headers = {"Accept": "application/json"}
        form: dict[str, str]
        if self.grant == "password":
            assert self._password is not None
            form = {
                "grant_type": "password",
                "client_id": self.client_id or "",
                "client_secret": secret or "",
                "username": self.username or "",
                "password": self._password.reveal(),
            }
        elif self.grant == "refresh_token":
            assert self._refresh_token is not None
            form = {
                "grant_type": "refresh_token",
                "client_id": self.client_id or "",
                "refresh_token": self._refresh_token.reveal(),
            }
            if secret:
                form["client_secret"] = secret
        elif self.grant == "jwt":
            now = int(time.time())
            claims = {
                "iss": self.client_id,
                "sub": self.username,
                "aud": self.jwt_audience,
                "exp": now + JWT_LIFETIME_SECONDS,
            }
            import jwt  # only the JWT flow needs it (see _load_private_key)

            assertion = jwt.encode(claims, self._private_key, algorithm="RS256")
            form = {"grant_type": JWT_GRANT, "assertion": assertion}
        elif self.grant == "client_credentials":
            form = {"grant_type": "client_credentials"}
            if self.client_auth_method == "basic":
                pair = f"{self.client_id or ''}:{secret or ''}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
            else:
                form["client_id"] = self.client_id or ""
                form["client_secret"] = secret or ""
        else:  # pragma: no cover - guarded by can_renew
            raise AuthenticationError("a bare access token cannot log in")
        return form, headers

    def _login_locked(self) -> None:
        """Request a new token (the lock is held) and store the session it returns."""
        if not self.can_renew:
            raise AuthenticationError(
                "no session: a bare access token needs instance_url", code="INVALID_SESSION_ID"
            )
        url = self.login_url + TOKEN_PATH
        context: dict[str, Any] = {"method": "POST", "path": TOKEN_PATH}

        def attempt() -> dict[str, Any]:
            form, headers = self._grant_request()
            self.token_requests += 1
            try:
                response = self._http.post(
                    url, data=form, headers=headers, timeout=self.timeout, allow_redirects=False
                )
            except requests.exceptions.RequestException as exc:
                raise _Transient(exc) from exc
            if response.status_code != 200:
                error = error_from_response(response, **context)
                if is_transient(error):
                    raise _Transient(error)
                raise AuthenticationError(
                    f"{self.grant} login at {self.login_url} failed: {error.message}",
                    code=error.code,
                    status=error.status,
                    **context,
                )
            try:
                body = response.json()
            except ValueError:
                raise AuthenticationError(
                    "the token endpoint answered with a body that is not JSON",
                    status=response.status_code,
                    **context,
                ) from None
            if not isinstance(body, dict) or not body.get("access_token"):
                raise AuthenticationError(
                    "the token response has no access_token", status=200, **context
                )
            return body

        try:
            body = run_with_retries(
                self.retry_policy, attempt, describe=f"POST {TOKEN_PATH}", context=context
            )
        except AuthenticationError:
            raise
        except SalesforceError as exc:
            raise AuthenticationError(
                f"{self.grant} login at {self.login_url} failed: {exc.message}",
                code=exc.code,
                status=exc.status,
                **context,
            ) from exc

        instance = body.get("instance_url") or self._instance_url
        if not instance:
            raise AuthenticationError("the token response has no instance_url", **context)
        try:
            instance = check_login_url(str(instance), "instance_url")
        except ConfigError as exc:
            raise AuthenticationError(f"the token response's {exc.message}", **context) from None
        self._access_token = Secret(str(body["access_token"]))
        self._instance_url = instance
        identity = body.get("id")
        if isinstance(identity, str) and "/id/" in identity:
            self.identity_url = identity
            parts = identity.rstrip("/").split("/")
            self.org_id, self.user_id = parts[-2], parts[-1]
        rotated = body.get("refresh_token")
        if rotated and (self._refresh_token is None or rotated != self._refresh_token.reveal()):
            self._refresh_token = Secret(str(rotated))
            logger.info("Salesforce issued a new refresh token; the previous one is replaced")
            if self.on_refresh_token is not None:
                self.on_refresh_token(str(rotated))
        logger.info(
            "Logged in to Salesforce with the %s grant at %s; instance %s",
            self.grant,
            self.login_url,
            instance,
        )
