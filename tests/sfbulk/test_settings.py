"""The connection settings both plugins share: the declaration and its mapping onto auth."""

from __future__ import annotations

import pytest

from sfbulk.settings import CONNECTION_SETTINGS, auth_config, described_settings


def test_auth_config_renames_jwt_settings_and_drops_unset_and_non_auth_ones() -> None:
    config = {
        "auth_type": "jwt",
        "client_id": "cid",
        "username": "u@example.com",
        "jwt_private_key_path": "/keys/server.key",
        "jwt_private_key_password": "pw",
        "password": "",
        "refresh_token": None,
        "api_version": "62.0",
        "bulk_api": "1.0",
    }
    assert auth_config(config) == {
        "auth_type": "jwt",
        "client_id": "cid",
        "username": "u@example.com",
        "private_key_path": "/keys/server.key",
        "private_key_password": "pw",
    }


def test_described_settings_keeps_the_shared_order_and_the_plugins_subset() -> None:
    described = described_settings({"api_version": "v", "client_id": "c", "auth_type": "a"})
    assert [(setting.name, text) for setting, text in described] == [
        ("auth_type", "a"), ("client_id", "c"), ("api_version", "v"),
    ]
    assert described[0][0].allowed == (
        "password", "refresh_token", "jwt", "client_credentials", "access_token")


def test_described_settings_refuses_a_description_of_no_shared_setting() -> None:
    with pytest.raises(KeyError, match="not connection settings: bulk_api, clientid"):
        described_settings({"clientid": "x", "bulk_api": "y", "client_id": "z"})


def test_secrets_are_exactly_the_credentials() -> None:
    assert [setting.name for setting in CONNECTION_SETTINGS if setting.secret] == [
        "client_secret", "password", "security_token", "refresh_token", "jwt_private_key",
        "jwt_private_key_password", "access_token",
    ]
