"""The tap's link to one org: settings mapped onto the shared Salesforce layer.

The tap holds one :class:`Connection`. It owns the :class:`~sfbulk.auth.SalesforceAuth` (shared
by every thread: renewal is thread-safe and logs in once however many requests see the expiry)
and hands out :class:`~sfbulk.http.SalesforceClient` objects: one for discovery and one per
stream sync, so API calls are counted per stream even when streams run in parallel, and the run's
summary can say what each stream cost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from sfbulk.auth import SalesforceAuth
from sfbulk.bulk1 import Bulk1
from sfbulk.bulk2 import Bulk2
from sfbulk.describe import Describer
from sfbulk.http import DEFAULT_API_VERSION, SalesforceClient
from sfbulk.settings import auth_config

logger = logging.getLogger(__name__)


class Connection:
    """Auth, clients and the Bulk API wrappers for one tap run.

    Args:
        config: The tap's validated settings.
        pool_size: HTTP connections kept per client (at least the threads that share one).
    """

    def __init__(self, config: Mapping[str, Any], *, pool_size: int = 4) -> None:
        self.config = config
        self.api_version = str(config.get("api_version") or DEFAULT_API_VERSION)
        self.pool_size = pool_size
        self._lock = threading.Lock()
        self._auth: SalesforceAuth | None = None
        self._discovery_client: SalesforceClient | None = None
        self._describer: Describer | None = None
        self._clients: list[SalesforceClient] = []

    # -- auth and clients ----------------------------------------------------------------------

    @property
    def auth(self) -> SalesforceAuth:
        """The org's credentials and session (built on first use; validates auth settings)."""
        with self._lock:
            if self._auth is None:
                self._auth = SalesforceAuth.from_config(
                    auth_config(self.config), on_refresh_token=self._refresh_token_rotated
                )
            return self._auth

    @staticmethod
    def _refresh_token_rotated(_token: str) -> None:
        # The value is a secret: only say that it happened and what to do.
        logger.warning(
            "Salesforce rotated the refresh token during this run; update the refresh_token "
            "setting from your connected app before the old one is revoked"
        )

    def new_client(self) -> SalesforceClient:
        """A fresh client on the shared session, counting its own calls."""
        max_share = self.config.get("max_api_share")
        client = SalesforceClient(
            self.auth,
            self.api_version,
            max_api_share=float(max_share) if max_share is not None else None,
            pool_size=self.pool_size,
        )
        with self._lock:
            self._clients.append(client)
        return client

    @property
    def discovery_client(self) -> SalesforceClient:
        """The client used for describes (and shared by nothing else)."""
        if self._discovery_client is None:
            self._discovery_client = self.new_client()
        return self._discovery_client

    @property
    def describer(self) -> Describer:
        """The run's describe cache (describeGlobal once, describes batched 25 per call)."""
        if self._describer is None:
            self._describer = Describer(self.discovery_client)
        return self._describer

    def bulk1(self, client: SalesforceClient) -> Bulk1:
        """A Bulk 1.0 wrapper over ``client`` with the run's polling and timeout settings."""
        return Bulk1(client, **self._poll_settings())

    def bulk2(self, client: SalesforceClient) -> Bulk2:
        """A Bulk 2.0 wrapper over ``client`` with the run's polling and timeout settings."""
        return Bulk2(client, **self._poll_settings())

    def _poll_settings(self) -> dict[str, float]:
        settings: dict[str, float] = {}
        if self.config.get("poll_interval_max_seconds") is not None:
            maximum = float(self.config["poll_interval_max_seconds"])
            settings["poll_interval_max_seconds"] = maximum
            settings["poll_interval_seconds"] = min(0.5, maximum)
        if self.config.get("job_timeout_seconds") is not None:
            settings["job_timeout_seconds"] = float(self.config["job_timeout_seconds"])
        return settings

    @property
    def api_calls(self) -> int:
        """API calls made by every client of this run so far."""
        with self._lock:
            clients = list(self._clients)
        return sum(client.api_calls for client in clients)

    def close(self) -> None:
        """Close every client's pooled connections."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()
