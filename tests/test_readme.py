"""README.md stays true: its tables, flags, endpoints, recipes and commands match the code.

Each check reads the README as a newcomer would and compares it with what the code reports, so a
change to a plugin, the emulator or the demo that the README does not follow fails here.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED

sys.path.insert(0, str(ROOT / "scripts"))
import demo
import sync_settings

README = ROOT / "README.md"


@functools.cache
def readme() -> str:
    return README.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the ``## title`` section (up to the next ``## `` heading)."""
    text = readme()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str | None = None) -> list[str]:
    pattern = r"```(\w*)\n(.*?)```"
    return [
        body
        for lang, body in re.findall(pattern, text, re.DOTALL)
        if language is None or lang == language
    ]


def test_settings_tables_equal_the_plugins_about_output() -> None:
    tables = {
        plugin: sync_settings.settings_table(sync_settings.about(plugin, "markdown"))
        for plugin in sync_settings.PLUGINS
    }
    assert sync_settings.render_readme(readme(), tables) == readme(), (
        "README settings tables are stale: run .venv/bin/python scripts/sync_settings.py"
    )
    # Both tables are really there, under their plugin's heading.
    for plugin, table in tables.items():
        assert f"### {plugin}\n\n<!-- settings:{plugin}:begin -->\n{table}\n" in readme()
        assert table.startswith("| Setting | Required | Default | Description |")
        assert "| login_url |" in table and "| client_secret |" in table


def test_the_two_commands_are_given_and_exist() -> None:
    blocks = code_blocks(section("The two commands"), "sh")
    lines = [line.split("#")[0].strip() for line in blocks[0].splitlines()]
    assert lines == ["scripts/demo.sh", "scripts/test.sh"]
    for command in lines:
        path = ROOT / command
        assert path.is_file() and os.access(path, os.X_OK), command
    assert ".ci/run" not in lines  # CI runs the same test command the README gives
    assert "exec scripts/test.sh" in (ROOT / ".ci/run").read_text(encoding="utf-8")


def test_demo_description_matches_the_demo() -> None:
    text = section("The two commands")
    assert f"{demo.DEFAULT_RECORDS:,} linked" in text
    sample = code_blocks(text, "text")[0]
    rows = {
        m[0]: (int(m[1]), int(m[2]))
        for m in re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s", sample, re.MULTILINE)
    }
    from sfbulk.emulator.seeds import demo_counts

    expected = demo_counts(demo.DEFAULT_RECORDS)
    assert rows == {
        name: (expected[name], expected[name])
        for name in [c.name for c in demo.meltano_demo_plan()]
    }
    assert f"demo: OK ({demo.DEFAULT_RECORDS} records in 4 objects copied)" in sample
    # The meltano command the README quotes is the one the demo runs.
    quoted = code_blocks(text, "sh")[1].strip()
    assert quoted == "meltano " + " ".join(demo.MELTANO_RUN_ARGS)


def test_sfdx_example_names_a_real_project() -> None:
    command = next(
        line
        for block in code_blocks(readme(), "sh")
        for line in block.splitlines()
        if line.startswith("scripts/demo.sh --import-sfdx ")
    )
    project = command.split()[2]
    assert project == "../shared/fixtures/sample-orgs/coral-cloud"
    if SHARED.is_dir():
        assert (ROOT / project / "data" / "data-plan.json").is_file()


def test_emulator_flags_table_covers_every_flag() -> None:
    from sfbulk.emulator.cli import build_parser

    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    text = section("The emulator")
    documented = set(re.findall(r"`(--[a-z][a-z0-9-]*)", text))
    fault_flags = {flag for flag in flags if flag.startswith("--fault-")}
    assert "--fault-*" in text
    assert documented - {"--fault-"} <= flags
    assert flags - fault_flags - {"--log-level"} <= documented


def test_admin_endpoints_and_fault_switches_are_the_emulators() -> None:
    from sfbulk.emulator import faults, rest

    text = section("The emulator")
    paths = {getattr(route, "path", "") for route in rest.routes()}
    routes = {path for path in paths if path.startswith("/_emulator")}
    documented = set(re.findall(r"(/_emulator/[a-z-]+)", text))
    assert documented == routes
    switches = set(re.findall(r"`([a-z_0-9]+)`", text.split("Fault switches")[1]))
    assert set(faults._KNOWN_KEYS) <= switches


def test_default_credentials_are_the_emulators() -> None:
    from sfbulk.emulator.app import EmulatorSettings

    settings = EmulatorSettings()
    text = section("Quick start")
    for value in (
        settings.username,
        settings.password,
        settings.client_id,
        settings.client_secret,
        settings.refresh_token,
    ):
        assert f"`{value}`" in text, value
    assert settings.security_token == "" and "empty security token" in text


def test_every_login_recipe_is_accepted_by_the_auth_layer(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from sfbulk.auth import SalesforceAuth

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    tap_settings = set(sync_settings.about_json("tap-sfbulk")["settings"]["properties"])
    recipes = [json.loads(block) for block in code_blocks(section("Quick start"), "json")]
    grants = []
    renames = {"jwt_private_key_path": "private_key_path"}
    for recipe in recipes:
        assert set(recipe) <= tap_settings, recipe.keys()
        config = {renames.get(k, k): v for k, v in recipe.items()}
        if "private_key_path" in config:
            config["private_key_path"] = str(key_file)
        grants.append(SalesforceAuth.from_config(config).grant)
    assert grants == ["password", "refresh_token", "jwt", "client_credentials", "access_token"]
    text = section("Quick start")
    assert "https://test.salesforce.com" in text and "my.salesforce.com" in text


def test_troubleshooting_covers_the_common_errors() -> None:
    text = section("Troubleshooting")
    for code in (
        "INVALID_SESSION_ID",
        "REQUEST_LIMIT_EXCEEDED",
        "UNABLE_TO_LOCK_ROW",
        "INVALIDENTITY",
        "DUPLICATE_VALUE",
        "InvalidBatch : Field name not found",
        "QUERY_TIMEOUT",
        "invalid_grant",
    ):
        assert code in text, code


@pytest.mark.parametrize(
    "title",
    [
        "Capabilities",
        "The two commands",
        "Quick start",
        "Settings",
        "The emulator",
        "Type mapping",
        "Bulk limits and how the plugins stay within them",
        "Failed records",
        "State",
        "Benchmarks",
        "Troubleshooting",
    ],
)
def test_sections_are_present(title: str) -> None:
    assert section(title).strip()


def test_benchmark_commands_exist() -> None:
    text = section("Benchmarks")
    scripts = re.findall(r"\.venv/bin/python (bench/\w+\.py)", text)
    assert scripts, "the benchmarks section names no script"
    for script in scripts:
        assert (ROOT / script).is_file(), script
