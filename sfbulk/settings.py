"""The connection settings tap-sfbulk and target-sfbulk share, declared once.

Both plugins log in to an org the same way, so the login and connection settings (their names,
order, defaults, allowed values and which are secret) are listed here, and each plugin turns the
list into its own ``config_jsonschema`` with its own descriptions (the tap names the login method
each setting belongs to; the target keeps them short). This module knows nothing of the Singer
SDK: it is plain data, plus :func:`auth_config`, which maps the plugins' setting names onto the
names :meth:`sfbulk.auth.SalesforceAuth.from_config` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sfbulk.auth import GRANTS, PRODUCTION_LOGIN_URL
from sfbulk.http import DEFAULT_API_VERSION


@dataclass(frozen=True)
class ConnectionSetting:
    """One string setting both plugins accept.

    Attributes:
        name: The setting's name in the plugins' config.
        secret: Whether the value is a credential (hidden by Meltano and ``--about``).
        default: The value used when the setting is unset, if any.
        allowed: The only values accepted, if the setting is an enumeration.
        auth_name: The name :meth:`~sfbulk.auth.SalesforceAuth.from_config` reads it under;
            None for a setting the auth layer does not read.
    """

    name: str
    secret: bool = False
    default: str | None = None
    allowed: tuple[str, ...] | None = None
    auth_name: str | None = None


def _auth(name: str, *, secret: bool = False, default: str | None = None,
          allowed: tuple[str, ...] | None = None, auth_name: str | None = None,
          ) -> ConnectionSetting:
    """A setting the auth layer reads (under its own name unless ``auth_name`` says otherwise)."""
    return ConnectionSetting(name, secret, default, allowed, auth_name or name)


#: Every shared connection setting, in the order the plugins list them.
CONNECTION_SETTINGS: tuple[ConnectionSetting, ...] = (
    _auth("auth_type", allowed=GRANTS),
    _auth("login_url", default=PRODUCTION_LOGIN_URL),
    _auth("client_id"),
    _auth("client_secret", secret=True),
    _auth("username"),
    _auth("password", secret=True),
    _auth("security_token", secret=True),
    _auth("refresh_token", secret=True),
    _auth("jwt_private_key", secret=True, auth_name="private_key"),
    _auth("jwt_private_key_path", auth_name="private_key_path"),
    _auth("jwt_private_key_password", secret=True, auth_name="private_key_password"),
    _auth("access_token", secret=True),
    _auth("instance_url"),
    ConnectionSetting("api_version", default=DEFAULT_API_VERSION),
)


def described_settings(
    descriptions: Mapping[str, str],
) -> list[tuple[ConnectionSetting, str]]:
    """The connection settings a plugin declares, each with the plugin's description of it.

    A plugin declares the settings it describes, in :data:`CONNECTION_SETTINGS` order.

    Raises:
        KeyError: A description names no connection setting (a typo would otherwise drop it).
    """
    known = {setting.name for setting in CONNECTION_SETTINGS}
    unknown = sorted(set(descriptions) - known)
    if unknown:
        raise KeyError(f"not connection settings: {', '.join(unknown)}")
    return [(setting, descriptions[setting.name]) for setting in CONNECTION_SETTINGS
            if setting.name in descriptions]


def auth_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The login settings given in a plugin's ``config``, under the auth layer's names.

    Unset and empty settings are left out, so the auth layer infers the login method from what
    was actually given.
    """
    out: dict[str, Any] = {}
    for setting in CONNECTION_SETTINGS:
        if setting.auth_name is not None and config.get(setting.name) not in (None, ""):
            out[setting.auth_name] = config[setting.name]
    return out
