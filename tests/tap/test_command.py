"""The ``tap-sfbulk`` command itself: version and configuration errors as a user sees them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sfbulk

TAP = str(Path(sys.executable).with_name("tap-sfbulk"))


def test_version_names_the_distribution() -> None:
    out = subprocess.run([TAP, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("tap-sfbulk v0.1.0, Meltano SDK v")
    assert sfbulk.__name__ == "sfbulk"


def test_configuration_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "login_url": "https://login.salesforce.com", "auth_type": "client_credentials",
        "client_id": "cid-1", "client_secret": "never-printed-secret"}))
    done = subprocess.run([TAP, "--config", str(config), "--discover"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "Configuration error: auth_type client_credentials must use your My Domain host" \
        in errors[0]
    assert "never-printed-secret" not in done.stderr + done.stdout
