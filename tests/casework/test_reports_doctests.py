"""The examples in the reports' and tasks' docstrings run."""

from __future__ import annotations

import doctest

import pytest

from engine.casework import dedup, routing, sla
from engine.casework import report_models as models


@pytest.mark.parametrize("module", [dedup, models, routing, sla], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
