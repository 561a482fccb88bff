"""The Singer SDK's standard tap tests, run against a small emulated demo org.

The SDK builds its test class (and discovers streams) when this module is imported, so the
emulator is started here at import time rather than by a fixture, and stopped when the module's
tests are done.
"""

from __future__ import annotations

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_sfbulk.tap import TapSfBulk
from tests.conftest import _start_emulator, emulator_config

_SERVER = _start_emulator("demo", 20)

# The demo seed leaves Account's LastActivityDate/LastViewedDate/LastReferencedDate null, so the
# SDK's per-attribute datetime checks for them have no value to look at and warn (its own choice:
# nothing to check is not a failure); every attribute that has values is still checked.
pytestmark = pytest.mark.filterwarnings("ignore:No records were available to test:UserWarning")

# No test is excluded. Three objects keep the generated per-attribute tests to a few hundred;
# upper_bound_lag_seconds=0 lets rows the seed wrote a moment ago fall inside the window.
_CONFIG = emulator_config(
    _SERVER,
    streams=["Account", "Store__c", "Type_Sample__c"],
    upper_bound_lag_seconds=0,
    related_fields={"Type_Sample__c": ["Account__r.Name"]},
)

TestTapSfBulk = get_tap_test_class(
    TapSfBulk,
    config=_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)


@pytest.fixture(scope="module", autouse=True)
def _stop_emulator():
    yield
    _SERVER.stop()
