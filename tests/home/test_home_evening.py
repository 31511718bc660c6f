"""A whole evening of untrusted MQTT: memory, inventory caps, births, stopping, laundered sensitivity."""

from __future__ import annotations

import json
import logging
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from assistant.home.client import MqttClient
from assistant.home.control import HomeControl
from assistant.home.inventory import Inventory
from assistant.home.templates import render_value
from tests.home.conftest import Sniffer, mqtt_settings, wait_until
from tests.support.mosquitto import Broker


@dataclass
class Stack:
    client: MqttClient
    inventory: Inventory
    control: HomeControl
    prefix: str


@pytest.fixture
def stack(broker: Broker, uniq: str) -> Iterator[Stack]:
    settings = mqtt_settings(broker, uniq)
    client = MqttClient(settings, site=uniq, backoff_min_s=0.05, backoff_max_s=0.2)
    inventory = Inventory(client, discovery_prefix=settings.discovery_prefix, debounce_s=0.0)
    control = HomeControl(inventory, client)
    inventory.start()
    client.start()
    try:
        assert client.wait_connected(5)
        yield Stack(client, inventory, control, settings.discovery_prefix)
    finally:
        inventory.close()
        client.stop()


# ----------------------------------------------------------------------------- 1. template memory


@pytest.mark.parametrize(
    "template",
    [
        "{{ [value] * 10000 }}",
        "{{ value * 3 }}",
        "{{ value ~ value ~ value }}",
        "{{ value + value + value }}",
        "{{ [value, value, value] | string }}",
        "{{ [value, value] }}",
        "{{ value }}",
        "{{ (value | int(base=16)) * (value | int(base=16)) }}",
    ],
)
def test_templates_are_bounded_in_bytes(template: str, caplog: pytest.LogCaptureFixture) -> None:
    payload = "f" * 60_000
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, logger="assistant.home.templates"):
            assert render_value(template, payload) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"{template} used {peak} bytes"
    if "int" not in template:
        assert "refused the value" in caplog.text


MAX_OUTPUT_BYTES = 4096


def test_small_values_still_render() -> None:
    assert render_value("{{ value_json.a ~ '-' ~ value_json.b }}", '{"a": 1, "b": "zz"}') == "1-zz"
    assert render_value("{{ value * 2 }}", "ab") == "abab"
    assert render_value("{{ value.split(',') | length }}", "a," * 20_000) == "20001"
    assert render_value("{{ value }}", "x" * MAX_OUTPUT_BYTES) == "x" * MAX_OUTPUT_BYTES
    assert render_value("{{ value }}", "x" * (MAX_OUTPUT_BYTES + 1)) is None


def test_repeated_state_with_a_huge_template_keeps_memory_flat(
    stack: Stack, broker: Broker, uniq: str, caplog: pytest.LogCaptureFixture
) -> None:
    sniffer = Sniffer(broker)
    try:
        topic = f"{stack.prefix}/sensor/bomb/config"
        config = {
            "name": "Bomb",
            "stat_t": "bomb/state",
            "val_tpl": "{{ [value] * 10000 }}{# " + uniq + " #}",
        }
        sniffer.publish(topic, json.dumps(config), retain=True)
        assert wait_until(lambda: stack.inventory.names() == ["bomb"])
        entity = stack.inventory.entities()[0]
        tracemalloc.start()
        try:
            with caplog.at_level(logging.WARNING):
                for _ in range(3):
                    sniffer.publish("bomb/state", "x" * 60_000)
                assert wait_until(lambda: "refused the value" in caplog.text)
                wait_until(lambda: stack.inventory.state(entity).updated is not None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000, peak
        assert caplog.text.count("refused the value") == 1  # once per template, not per message
        assert stack.inventory.state(entity).state is None
        sniffer.publish(topic, b"", retain=True)
    finally:
        sniffer.close()
