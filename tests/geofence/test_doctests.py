"""The examples in the rule and filter modules' docstrings run."""

from __future__ import annotations

import doctest

import pytest

from engine.geofence import fleet_store, hysteresis, intake, late, offline
from engine.telemetry import filters


@pytest.mark.parametrize("module", [fleet_store, hysteresis, intake, late, offline, filters], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
