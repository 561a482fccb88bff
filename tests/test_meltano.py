"""meltano.yml: valid for Meltano, Hub-free, and true to the plugins' own ``--about``.

Meltano ships a JSON schema of meltano.yml; the project file must pass it. Settings, kinds and
capabilities must be exactly what the plugins report, and each settings group Meltano checks must
be a combination the auth layer accepts. The demo environment's copy plan must drop every source
lookup id and carry each parent through a relationship column the target can resolve.
"""

from __future__ import annotations

import functools
import glob
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import sync_settings

PLUGINS = {"tap-sfbulk": "extractors", "target-sfbulk": "loaders"}
SCHEMA_IN_PACKAGE = "meltano/schemas/meltano.schema.json"
#: The Meltano that scripts/demo.sh installs.
MELTANO_REQUIREMENT = "meltano>=4.4,<5"


@functools.cache
def project() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))


def plugin(name: str) -> dict[str, Any]:
    for kind in ("extractors", "loaders"):
        for entry in project()["plugins"].get(kind, []):
            if entry["name"] == name:
                return entry
    raise AssertionError(f"meltano.yml has no plugin {name}")


@functools.cache
def about(name: str) -> dict[str, Any]:
    return sync_settings.about_json(name)


@pytest.fixture(scope="module")
def meltano_schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Meltano's own meltano.yml schema: from .venv-meltano when scripts/demo.sh made it, else
    from the Meltano wheel on PyPI (downloaded, never installed)."""
    installed = glob.glob(str(ROOT / ".venv-meltano/lib/python*/site-packages" / SCHEMA_IN_PACKAGE))
    if installed:
        return json.loads(Path(installed[0]).read_text(encoding="utf-8"))
    target = tmp_path_factory.mktemp("meltano-wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-d",
            str(target),
            MELTANO_REQUIREMENT,
        ],
        check=True,
        timeout=240,
    )
    wheel = next(target.glob("meltano-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(archive.read(SCHEMA_IN_PACKAGE))


def test_meltano_yml_passes_meltanos_schema(meltano_schema: dict[str, Any]) -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(meltano_schema)
    errors = sorted(validator.iter_errors(project()), key=lambda e: list(e.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message}" for e in errors] == []
    # And the schema really checks plugins: a misspelt kind is refused.
    broken = json.loads(json.dumps(project()))
    broken["plugins"]["extractors"][0]["settings"][0]["kind"] = "text"
    assert not validator.is_valid(broken)


def test_every_plugin_is_a_custom_plugin_installed_from_pypi_or_the_checkout() -> None:
    entries = [p for kind in project()["plugins"].values() for p in kind]
    assert sorted(p["name"] for p in entries) == ["tap-sfbulk", "target-jsonl", "target-sfbulk"]
    for entry in entries:
        assert "variant" not in entry, f"{entry['name']}: a variant makes Meltano ask the Hub"
        assert "inherit_from" not in entry
        assert entry["namespace"] == entry["name"].replace("-", "_")
        assert entry["executable"] == entry["name"]
        assert entry["settings"], entry["name"]
    assert plugin("tap-sfbulk")["pip_url"] == "-e ."
    assert plugin("target-sfbulk")["pip_url"] == "-e ."
    jsonl = plugin("target-jsonl")
    assert jsonl["pip_url"] == "target-jsonl"
    assert "destination_path" in [s["name"] for s in jsonl["settings"]]
    assert project()["venv"] == {"backend": "uv"}


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_settings_are_exactly_the_plugins_settings_with_compatible_kinds(name: str) -> None:
    properties = about(name)["settings"]["properties"]
    settings = {s["name"]: s for s in plugin(name)["settings"]}
    assert list(settings) == list(properties)
    for key, schema in properties.items():
        setting = settings[key]
        secret = bool(schema.get("secret") or schema.get("writeOnly"))
        assert setting.get("sensitive", False) is secret, key
        types = sync_settings.json_types(schema)
        if secret:
            assert setting["kind"] == "password", key
        elif "enum" in schema:
            assert setting["kind"] == "options", key
            assert [o["value"] for o in setting["options"]] == [
                v for v in schema["enum"] if v is not None
            ], key
        else:
            expected = {
                "string": {"string", "date_iso8601", "file", "email"},
                "integer": {"integer"},
                "number": {"decimal"},
                "boolean": {"boolean"},
                "object": {"object"},
                "array": {"array"},
            }[types[0]]
            assert setting["kind"] in expected, (key, types, setting["kind"])


def test_generated_settings_are_up_to_date() -> None:
    text = (ROOT / "meltano.yml").read_text(encoding="utf-8")
    settings = {name: sync_settings.meltano_settings(about(name)) for name in PLUGINS}
    assert sync_settings.render_meltano(text, settings) == text


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_capabilities_are_those_the_plugin_reports_that_meltano_knows(
    name: str, meltano_schema: dict[str, Any]
) -> None:
    kind = PLUGINS[name]
    known = set(_capability_enum(meltano_schema, kind))
    declared = plugin(name)["capabilities"]
    reported = about(name)["capabilities"]
    assert len(declared) == len(set(declared))
    assert set(declared) == set(reported) & known
    # What Meltano cannot name is only a capability it has no use for.
    assert set(reported) - known <= {"validate-records"}


def _capability_enum(schema: dict[str, Any], kind: str) -> list[str]:
    for part in schema["$defs"]["plugins"][kind]["allOf"]:
        capabilities = part.get("properties", {}).get("capabilities")
        if capabilities:
            return list(capabilities["items"]["enum"])
    raise AssertionError(f"no capabilities enum for {kind} in Meltano's schema")


def _pem_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_each_settings_group_is_a_login_the_auth_layer_accepts(name: str, tmp_path: Path) -> None:
    from sfbulk.auth import SalesforceAuth
    from sfbulk.errors import ConfigError

    groups = plugin(name)["settings_group_validation"]
    setting_names = {s["name"] for s in plugin(name)["settings"]}
    pem = _pem_key()
    key_file = tmp_path / "server.key"
    key_file.write_text(pem, encoding="utf-8")
    values = {
        "login_url": "https://example.my.salesforce.com",
        "instance_url": "https://example.my.salesforce.com",
        "jwt_private_key": pem,
        "jwt_private_key_path": str(key_file),
    }
    # The tap's and target's settings reach the auth layer under these names.
    renames = {"jwt_private_key": "private_key", "jwt_private_key_path": "private_key_path"}
    grants = []
    for group in groups:
        assert set(group) <= setting_names, group
        config = {renames.get(k, k): values.get(k, f"value-of-{k}") for k in group}
        auth = SalesforceAuth.from_config(config)
        grants.append(auth.grant)
        # Leaving out any member of the group makes the login incomplete.
        for missing in group:
            if missing == "login_url":
                continue  # login_url has a default; the group names it because My Domain is due
            partial = {k: v for k, v in config.items() if k != renames.get(missing, missing)}
            with pytest.raises(ConfigError):
                SalesforceAuth.from_config(partial)
    assert grants == [
        "password",
        "refresh_token",
        "jwt",
        "jwt",
        "client_credentials",
        "access_token",
    ]


# ---------------------------------------------------------------------------------------------
# The demo environment


def demo_env() -> dict[str, Any]:
    env = next(e for e in project()["environments"] if e["name"] == "demo")
    plugins = env["config"]["plugins"]
    return {
        "tap": next(p for p in plugins["extractors"] if p["name"] == "tap-sfbulk"),
        "target": next(p for p in plugins["loaders"] if p["name"] == "target-sfbulk"),
    }


def test_demo_plan_copies_the_four_objects_with_parents_by_external_id() -> None:
    env = demo_env()
    tap, target = env["tap"], env["target"]
    assert tap["config"]["streams"] == ["Account", "Contact", "Opportunity", "Case"]
    assert tap["select"] == ["Account.*", "Contact.*", "Opportunity.*", "Case.*"]
    assert tap["config"]["related_fields"] == {
        "Contact": ["Account.External_Id__c"],
        "Opportunity": ["Account.External_Id__c"],
        "Case": ["Account.External_Id__c", "Contact.External_Id__c"],
    }
    streams = target["config"]["streams"]
    assert list(streams) == ["Account", "Contact", "Opportunity", "Case"]
    for spec in streams.values():
        assert spec["action"] == "upsert"
        assert spec["external_id_field"] == "External_Id__c"


def test_demo_plan_drops_every_source_lookup_id_of_the_demo_objects() -> None:
    """Each createable lookup (the source's ids) is dropped; each carried parent goes by a
    relationship whose lookup is among them, on a field that is an external id."""
    from sfbulk.emulator.seeds import seed_empty
    from sfbulk.emulator.store import Org

    org = Org()
    seed_empty(org)
    env = demo_env()
    related = env["tap"]["config"]["related_fields"]
    for name, spec in env["target"]["config"]["streams"].items():
        obj = org.catalog.get(name)
        assert obj is not None, name
        lookups = {f.name for f in obj.fields.values() if f.type == "reference" and f.createable}
        assert set(spec["exclude_fields"]) == {"Id"} | lookups, name
        for column in related.get(name, []):
            relationship, field_name = column.split(".")
            lookup = next(f for f in obj.fields.values() if f.relationship_name == relationship)
            assert lookup.name in spec["exclude_fields"]
            parent = org.catalog.get(lookup.reference_to[0])
            assert parent is not None, column
            key = parent.field(field_name)
            assert key is not None and key.external_id, column
