"""Fixtures for the MQTT / Home Assistant tests: one real mosquitto per module, a sniffing client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.sniffer import Sniffer, unique_name


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One anonymous mosquitto for the whole module."""
    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    instance = Broker(Path(tmp_path_factory.mktemp("mqtt")))
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def uniq() -> str:
    """A string unique to this test, for topics on the shared broker."""
    return unique_name()


@pytest.fixture
def sniffer(broker: Broker) -> Iterator[Sniffer]:
    """A client seeing every message on the broker."""
    instance = Sniffer(broker)
    yield instance
    instance.close()
