"""Regenerate the settings documentation from the plugins themselves, so it cannot drift.

``--about`` is the one source of truth for what each plugin accepts. This script copies it into
the two places people read settings from:

- README.md: the ``## Settings`` table of ``PLUGIN --about --format=markdown``, between
  ``<!-- settings:PLUGIN:begin -->`` and ``<!-- settings:PLUGIN:end -->``;
- meltano.yml: each plugin's ``settings:`` list (name, Meltano ``kind``, ``sensitive``,
  ``options``, description) built from ``PLUGIN --about --format=json``, between
  ``# settings:PLUGIN:begin`` and ``# settings:PLUGIN:end``.

Run ``.venv/bin/python scripts/sync_settings.py`` after changing a plugin's settings;
``--check`` only reports (exit 1) when either file is out of date. ``tests/test_readme.py`` and
``tests/test_meltano.py`` check the same things.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("tap-sfbulk", "target-sfbulk")

#: JSON-schema type → Meltano setting kind (strings with an ``enum`` become ``options``).
KIND_BY_TYPE = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def plugin_command(plugin: str) -> list[str]:
    """The plugin's console script beside this interpreter (the project's .venv)."""
    return [str(Path(sys.executable).parent / plugin)]


@functools.cache
def about(plugin: str, fmt: str) -> str:
    """``PLUGIN --about --format=FMT`` output (stdout only: logs go to stderr); asked once per
    process, as starting a plugin costs seconds."""
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [*plugin_command(plugin), "--about", f"--format={fmt}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{plugin} --about --format={fmt} failed: {result.stderr.strip()}")
    return result.stdout


def about_json(plugin: str) -> dict[str, Any]:
    """The plugin's ``--about --format=json`` document."""
    return json.loads(about(plugin, "json"))


def settings_table(markdown: str) -> str:
    """The table under ``## Settings`` in ``--about --format=markdown`` output."""
    lines = markdown.splitlines()
    try:
        start = lines.index("## Settings")
    except ValueError as exc:
        raise ValueError("no '## Settings' section in the --about markdown") from exc
    table: list[str] = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append(line.rstrip())
        elif table:
            break
    if not table:
        raise ValueError("the '## Settings' section of the --about markdown has no table")
    return "\n".join(table)


def json_types(schema: dict[str, Any]) -> list[str]:
    """The non-null JSON types of a property schema."""
    declared = schema.get("type", [])
    if isinstance(declared, str):
        declared = [declared]
    types = [t for t in declared if t != "null"]
    if not types and "anyOf" in schema:
        for option in schema["anyOf"]:
            types += [t for t in json_types(option) if t not in types]
    return types


def meltano_kind(schema: dict[str, Any]) -> str:
    """The Meltano ``kind`` for a setting's JSON schema."""
    if schema.get("secret") or schema.get("writeOnly"):
        return "password"
    if "enum" in schema:
        return "options"
    types = json_types(schema)
    if len(types) != 1 or types[0] not in KIND_BY_TYPE:
        raise ValueError(f"no Meltano kind for a setting of JSON types {types or 'none'}")
    return KIND_BY_TYPE[types[0]]


def meltano_setting(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """One entry of a Meltano plugin's ``settings:`` list."""
    setting: dict[str, Any] = {"name": name, "kind": meltano_kind(schema)}
    if setting["kind"] == "password":
        setting["sensitive"] = True
    if setting["kind"] == "options":
        setting["options"] = [
            {"label": str(value), "value": value} for value in schema["enum"] if value is not None
        ]
    if schema.get("description"):
        setting["description"] = " ".join(str(schema["description"]).split())
    return setting


def meltano_settings(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``settings:`` list for a plugin's ``--about --format=json`` document."""
    properties = document["settings"].get("properties", {})
    return [meltano_setting(name, schema) for name, schema in properties.items()]


def replace_between(text: str, begin: str, end: str, body: str, where: str) -> str:
    """Replace the lines between the marker lines ``begin`` and ``end`` (markers kept)."""
    pattern = re.compile(
        rf"(^[ \t]*{re.escape(begin)}[^\n]*\n)(.*?)(^[ \t]*{re.escape(end)}[^\n]*$)",
        re.MULTILINE | re.DOTALL,
    )
    found = pattern.search(text)
    if found is None:
        raise ValueError(f"{where}: markers {begin!r} … {end!r} not found")
    return text[: found.start(2)] + body + text[found.end(2) :]


def render_readme(text: str, tables: dict[str, str]) -> str:
    """README.md with each plugin's settings table replaced by the current one."""
    for plugin, table in tables.items():
        text = replace_between(
            text,
            f"<!-- settings:{plugin}:begin -->",
            f"<!-- settings:{plugin}:end -->",
            table + "\n",
            "README.md",
        )
    return text


def render_meltano(text: str, settings: dict[str, list[dict[str, Any]]]) -> str:
    """meltano.yml with each plugin's generated ``settings:`` list replaced."""
    for plugin, entries in settings.items():
        dumped = yaml.safe_dump(
            {"settings": entries}, sort_keys=False, allow_unicode=True, width=100
        )
        body = "".join(f"    {line}\n" if line else "\n" for line in dumped.splitlines())
        text = replace_between(
            text, f"# settings:{plugin}:begin", f"# settings:{plugin}:end", body, "meltano.yml"
        )
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` verify) README.md and meltano.yml; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    args = parser.parse_args(argv)

    tables = {plugin: settings_table(about(plugin, "markdown")) for plugin in PLUGINS}
    settings = {plugin: meltano_settings(about_json(plugin)) for plugin in PLUGINS}
    stale = []
    for path, render in (
        (ROOT / "README.md", lambda text: render_readme(text, tables)),
        (ROOT / "meltano.yml", lambda text: render_meltano(text, settings)),
    ):
        current = path.read_text(encoding="utf-8")
        wanted = render(current)
        if wanted != current:
            stale.append(path.name)
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        print(f"out of date: {', '.join(stale)} (run scripts/sync_settings.py)", file=sys.stderr)
        return 1
    for name in stale:
        print(f"updated {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
