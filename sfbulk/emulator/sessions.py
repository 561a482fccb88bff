"""Sessions of the emulated org: access tokens with an expiry, and the refresh token's validity.

Salesforce hands out opaque access tokens of the form ``{orgId15}!{secret}`` (for example
``00Dx0000000BV7z!AR8AQAxo9…``) from OAuth and SOAP login alike, and any API accepts any of them.
A session lives for the org's session timeout and then every API refuses it, each in its own
form. The emulator keeps the same model so clients exercise their re-login paths for real.
"""

from __future__ import annotations

import secrets
import string
import threading
import time
from dataclasses import dataclass, field

from starlette.requests import Request

#: Characters of the secret part of a token, as seen in real ones.
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "._"
#: Length of the secret part after ``!AQ``; real tokens are about 110 characters in all.
_TOKEN_SECRET_LENGTH = 93


@dataclass(frozen=True)
class Session:
    """One issued session.

    Attributes:
        token: The access token / session id the client sends back.
        username: The user the session acts as.
        user_id: 18-character id of that user.
        org_id: 18-character id of the org.
        issued_at: Epoch seconds when the session was issued.
        expires_at: Epoch seconds after which the session is refused.
        source: How it was obtained (``password``, ``refresh_token``, ``jwt``,
            ``client_credentials``, ``soap``), for stats only.
    """

    token: str = field(repr=False)
    username: str
    user_id: str
    org_id: str
    issued_at: float
    expires_at: float
    source: str = "password"

    def __repr__(self) -> str:
        # The token is a credential: never print it.
        return (
            f"Session(username={self.username!r}, user_id={self.user_id!r}, "
            f"source={self.source!r}, expires_at={self.expires_at:.0f})"
        )


class SessionStore:
    """Thread-safe registry of live sessions plus the state of the refresh token.

    Args:
        org_id: 18-character org id; its first 15 characters start every token.
        lifetime_seconds: How long a session stays valid after it is issued.
        clock: Source of the current time (epoch seconds); tests may replace it.
    """

    def __init__(
        self,
        org_id: str,
        lifetime_seconds: float = 7200,
        clock: object = time.time,
    ) -> None:
        self.org_id = org_id
        self.lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._refresh_revoked = False
        self.issued_count = 0
        self.expired_count = 0

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator]

    def new_token(self) -> str:
        """Return a fresh token shaped like Salesforce's: ``00D…!AQ…``."""
        secret = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(_TOKEN_SECRET_LENGTH))
        return f"{self.org_id[:15]}!AQ{secret}"

    def issue(self, username: str, user_id: str, source: str = "password") -> Session:
        """Open a new session for ``username`` and return it."""
        now = self._now()
        session = Session(
            token=self.new_token(),
            username=username,
            user_id=user_id,
            org_id=self.org_id,
            issued_at=now,
            expires_at=now + self.lifetime_seconds,
            source=source,
        )
        with self._lock:
            self._sessions[session.token] = session
            self.issued_count += 1
            # Forget sessions long past their expiry so the table stays small on long runs.
            if len(self._sessions) > 1024:
                self._sessions = {tok: s for tok, s in self._sessions.items() if s.expires_at > now}
        return session

    def check(self, token: str | None) -> Session | None:
        """Return the live session for ``token``, or None when unknown or expired."""
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires_at <= self._now():
                del self._sessions[token]
                self.expired_count += 1
                return None
            return session

    def revoke(self, token: str) -> bool:
        """End one session (OAuth revoke); returns whether it existed."""
        with self._lock:
            return self._sessions.pop(token, None) is not None

    def expire_all(self) -> int:
        """End every session at once, as an org-wide session reset does; returns how many."""
        with self._lock:
            count = len(self._sessions)
            self._sessions.clear()
            self.expired_count += count
        return count

    def active_count(self) -> int:
        """Number of sessions that are still valid."""
        now = self._now()
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.expires_at > now)

    # -- refresh token ---------------------------------------------------------------------

    def revoke_refresh_token(self) -> None:
        """Revoke the org's refresh token: later refresh grants fail with ``invalid_grant``."""
        with self._lock:
            self._refresh_revoked = True

    def restore_refresh_token(self) -> None:
        """Make the configured refresh token valid again (admin reset)."""
        with self._lock:
            self._refresh_revoked = False

    @property
    def refresh_token_revoked(self) -> bool:
        """Whether the refresh token has been revoked."""
        with self._lock:
            return self._refresh_revoked


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` (or ``OAuth …``) header, if any.

    REST and Bulk 2.0 take the token this way; older clients still send the ``OAuth`` scheme.
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


def bulk1_token(request: Request) -> str | None:
    """The session id a Bulk 1.0 request carries.

    Bulk 1.0 clients send ``X-SFDC-Session`` (header names are case-insensitive; jsforce writes
    ``X-SFDC-SESSION``). Some also send a bearer header, which Salesforce accepts too.
    """
    value = request.headers.get("x-sfdc-session", "").strip()
    if value:
        # Some clients prefix the session id with a scheme, as in an Authorization header.
        scheme, _, rest = value.partition(" ")
        if rest and scheme.lower() in ("bearer", "oauth"):
            return rest.strip()
        return value
    return bearer_token(request)


def request_session(request: Request) -> Session | None:
    """The live session of a REST or Bulk 2.0 request, or None (the caller answers 401).

    The accounting middleware has already looked the session up for API paths and left it in
    ``request.state.session``; outside those paths the token is checked here.
    """
    cached = request.scope.get("state", {}).get("session")
    if cached is not None:
        return cached
    return request.app.state.emulator.sessions.check(bearer_token(request))


def bulk1_session(request: Request) -> Session | None:
    """The live session of a Bulk 1.0 request, or None.

    The Bulk 1.0 handlers call this and answer ``400 InvalidSessionId`` in the job's format
    themselves when it returns None.
    """
    cached = request.scope.get("state", {}).get("session")
    if cached is not None:
        return cached
    return request.app.state.emulator.sessions.check(bulk1_token(request))
