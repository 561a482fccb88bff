"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Public sample data lives beside the checkout, never inside it.
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The recorded Salesforce responses and sample orgs; tests needing them skip when absent."""
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return FIXTURES
