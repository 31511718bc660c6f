"""A whole evening of untrusted MQTT: memory, inventory caps, births, stopping, laundered sensitivity."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.home.client import MqttClient
from assistant.home.control import HomeControl
from assistant.home.inventory import Inventory
from assistant.home.templates import render_value
from tests.support.mosquitto import Broker
from tests.support.sniffer import Sniffer, mqtt_settings, wait_until


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


# ----------------------------------------------------------------------------- 2. inventory caps


def _switch(name: str, uniq: str) -> dict[str, str]:
    return {"name": name, "cmd_t": f"{uniq}/{name}/set", "stat_t": f"{uniq}/{name}/state"}


def test_inventory_caps_entities_and_config_bytes(
    broker: Broker, uniq: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = mqtt_settings(broker, uniq)
    prefix = settings.discovery_prefix
    client = MqttClient(settings, site=uniq, backoff_min_s=0.05)
    inventory = Inventory(client, discovery_prefix=prefix, debounce_s=0, max_entities=3, max_config_bytes=600)
    sniffer = Sniffer(broker)
    try:
        for name in ("a", "b", "c", "d", "e"):
            sniffer.publish(f"{prefix}/switch/{name}/config", json.dumps(_switch(name, uniq)), retain=True)
        with caplog.at_level(logging.DEBUG, logger="assistant.home.inventory"):
            inventory.start()
            client.start()
            assert wait_until(lambda: inventory.refused_full == 2)
        assert inventory.names() == ["a", "b", "c"]
        full = [
            r for r in caplog.records if r.levelno == logging.WARNING and "inventory is full" in r.message
        ]
        assert len(full) == 1 and "cap of 3" in full[0].message, caplog.text
        # a removal makes room again
        sniffer.publish(f"{prefix}/switch/a/config", b"", retain=True)
        assert wait_until(lambda: inventory.names() == ["b", "c"])
        big = {**_switch("f", uniq), "icon": "x" * 500}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="assistant.home.inventory"):
            sniffer.publish(f"{prefix}/switch/f/config", json.dumps(big), retain=True)
            assert wait_until(lambda: inventory.refused_full == 3)
        assert "bytes of configs would pass the cap of 600" in caplog.text
        sniffer.publish(f"{prefix}/switch/g/config", json.dumps(_switch("g", uniq)), retain=True)
        assert wait_until(lambda: inventory.names() == ["b", "c", "g"])
    finally:
        inventory.close()
        client.stop()
        sniffer.close()


# ----------------------------------------------------------------------------- 3. births


def test_a_burst_of_births_costs_one_re_read(
    broker: Broker, uniq: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = mqtt_settings(broker, uniq)
    prefix = settings.discovery_prefix
    client = MqttClient(settings, site=uniq, backoff_min_s=0.05)
    inventory = Inventory(client, discovery_prefix=prefix, debounce_s=0, birth_debounce_s=0.3)
    seen: list[str] = []
    original = inventory.handle_config

    def counting(topic: str, payload: bytes) -> None:
        seen.append(topic)
        original(topic, payload)

    monkeypatch.setattr(inventory, "handle_config", counting)
    sniffer = Sniffer(broker)
    try:
        for i in range(50):
            sniffer.publish(f"{prefix}/switch/s{i}/config", json.dumps(_switch(f"s{i}", uniq)), retain=True)
        inventory.start()
        client.start()
        assert wait_until(lambda: len(inventory.entities()) == 50)
        assert wait_until(lambda: len(seen) == 50)
        seen.clear()
        for _ in range(5):
            sniffer.publish(f"{prefix}/status", "online")
        assert wait_until(lambda: len(seen) >= 50, timeout=5)
        wait_until(lambda: False, 0.8)  # a second re-read would have arrived by now
        assert inventory.resyncs == 1
        assert len(seen) == 50, len(seen)
        assert len(inventory.entities()) == 50
    finally:
        inventory.close()
        client.stop()
        sniffer.close()


# ----------------------------------------------------------------------------- 4. stopping


def test_stop_with_10k_retained_entities_is_quick(broker: Broker, uniq: str) -> None:
    from assistant.config import Settings
    from assistant.home.service import build_home

    settings = mqtt_settings(broker, uniq)
    prefix = settings.discovery_prefix
    sniffer = Sniffer(broker, topics=(f"as_{uniq}/#",))
    try:
        for i in range(10_000):
            body = json.dumps({**_switch(f"s{i}", uniq), "uniq_id": f"{uniq}_{i}"})
            sniffer.client.publish(f"{prefix}/switch/s{i}/config", body, qos=0, retain=True)
            sniffer.client.publish(f"{uniq}/s{i}/state", "ON", qos=0, retain=True)
        sniffer.publish(f"{uniq}/done", "1")  # QoS 1 after all of them: the broker has everything
        stack = build_home(Settings(site=uniq, mqtt=settings))
        stack.start()
        try:
            assert wait_until(lambda: len(stack.inventory.entities()) == 10_000, timeout=60)
        finally:
            started = time.monotonic()
            stack.stop()
            took = time.monotonic() - started
        assert took < 2.0, f"stop took {took:.2f} s"
        assert sniffer.wait_for(stack.client.availability_topic, b"offline")
    finally:
        sniffer.close()


# ----------------------------------------------------------------------------- 5./6. sensitivity


def test_sensitivity_cannot_be_laundered_through_discovery(stack: Stack, broker: Broker, uniq: str) -> None:
    from assistant.tools.registry import ToolRegistry
    from assistant.tools.router import Router
    from assistant.types import ResultStatus, ToolCall

    p = stack.prefix
    lock_topic = f"{uniq}/front/set"
    configs = {
        f"{p}/lock/front/config": {"name": "Front Door", "cmd_t": lock_topic},
        f"{p}/alarm_control_panel/house/config": {
            "name": "House Alarm",
            "cmd_t": f"{uniq}/alarm/set",
            "stat_t": f"{uniq}/alarm/state",
        },
        f"{p}/switch/porch/config": {"name": "Porch Relay", "cmd_t": lock_topic, "pl_on": "UNLOCK"},
        f"{p}/switch/sneaky/config": {"name": "Sneaky", "cmd_t": lock_topic},
        f"{p}/switch/disarmer/config": {"name": "Helper", "cmd_t": f"{uniq}/h/set", "pl_off": "DISARM"},
        f"{p}/cover/shed/config": {"name": "Shed Door", "cmd_t": f"{uniq}/shed/set"},
        f"{p}/switch/gate/config": {"name": "Gate Opener", "cmd_t": f"{uniq}/gate/set"},
        f"{p}/light/garage/config": {"name": "Garage Light", "cmd_t": f"{uniq}/gl/set"},
        f"{p}/switch/kettle/config": {"name": "Kettle", "cmd_t": f"{uniq}/kettle/set"},
        f"{p}/cover/blinds/config": {"name": "Blinds", "cmd_t": f"{uniq}/blinds/set"},
    }
    sniffer = Sniffer(broker)
    try:
        for topic, config in configs.items():
            sniffer.publish(topic, json.dumps(config), retain=True)
        assert wait_until(lambda: len(stack.inventory.entities()) == len(configs))
        tools = {t.name: t for t in stack.control.tools()}
        on, off = tools["HassTurnOn"], tools["HassTurnOff"]
        assert on.is_sensitive({"name": "porch relay"})  # UNLOCK on the lock's topic
        assert on.is_sensitive({"name": "sneaky"})  # the lock's topic, whatever the payload
        assert off.is_sensitive({"name": "sneaky"})
        assert off.is_sensitive({"name": "helper"})  # a DISARM payload
        assert not on.is_sensitive({"name": "helper"})
        assert on.is_sensitive({"name": "shed door"})  # a door by name, no device class
        assert not off.is_sensitive({"name": "shed door"})
        assert on.is_sensitive({"name": "gate opener"})
        assert not on.is_sensitive({"name": "garage light"})
        assert not on.is_sensitive({"name": "kettle"})
        assert not on.is_sensitive({"name": "blinds"})
        assert not on.is_sensitive({"name": "front door"})  # locking is fine

        registry = ToolRegistry()
        assert registry.set_group("home", stack.control.tools()) == []
        router = Router(registry)
        try:
            sniffer.clear()
            for name, question in (
                ("porch relay", "Do you want me to turn on the porch relay?"),
                ("shed door", "Do you want me to open the shed door?"),
            ):
                asked = router.call(ToolCall("HassTurnOn", {"name": name}), site=uniq)
                assert asked.status is ResultStatus.NEEDS_CONFIRMATION, asked
                assert asked.speech == question
                assert router.answer_confirmation("no", site=uniq).status is ResultStatus.CANCELLED
            # the one action asked, not every sensitive action of HassTurnOff (unlock, disarm)
            asked = router.call(ToolCall("HassTurnOff", {"name": "front door"}), site=uniq)
            assert asked.speech == "Do you want me to unlock the front door?"
            router.answer_confirmation("no", site=uniq)
            asked = router.call(ToolCall("HassTurnOff", {"name": "house alarm"}), site=uniq)
            assert asked.speech == "Do you want me to disarm the house alarm?"
            router.answer_confirmation("no", site=uniq)
            wait_until(lambda: False, 0.2)
            assert [s for s in sniffer.seen if s.topic.startswith(f"{uniq}/")] == []  # nothing sent
            router.call(ToolCall("HassTurnOn", {"name": "porch relay"}), site=uniq)
            assert router.answer_confirmation("yes", site=uniq).status is ResultStatus.OK
            assert sniffer.wait_for(lock_topic, b"UNLOCK")
        finally:
            router.close()
        for topic in configs:
            sniffer.publish(topic, b"", retain=True)
    finally:
        sniffer.close()


# ----------------------------------------------------------------------------- 7. small ones


def test_an_overflowing_number_loses_only_its_field(
    stack: Stack, broker: Broker, uniq: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"name": "Lamp", "schema": "json", "cmd_t": f"{uniq}/lamp/set", "stat_t": f"{uniq}/lamp/state"}
    sniffer = Sniffer(broker)
    try:
        sniffer.publish(f"{stack.prefix}/light/lamp/config", json.dumps(config), retain=True)
        assert wait_until(lambda: stack.inventory.names() == ["lamp"])
        lamp = stack.inventory.entities()[0]
        with caplog.at_level(logging.WARNING):
            sniffer.publish(
                f"{uniq}/lamp/state", '{"state": "ON", "brightness": 1e400, "color_temp": -1e999}'
            )
            assert wait_until(lambda: stack.inventory.state(lamp).state == "on")
            sniffer.publish(f"{uniq}/lamp/state", '{"state": "OFF", "brightness": 1' + "0" * 5000 + "}")
            assert wait_until(lambda: stack.inventory.state(lamp).state == "off")
            sniffer.publish(f"{uniq}/lamp/state", '{"state": "ON", "brightness": 128}')
            assert wait_until(lambda: stack.inventory.state(lamp).attributes.get("brightness") == 50)
        records = [r for r in caplog.records if r.name.startswith("assistant.home")]
        assert not [r for r in records if r.exc_info], "no traceback"
        assert len(records) == 2 and all("too large" in r.message for r in records), caplog.text
        sniffer.publish(f"{stack.prefix}/light/lamp/config", b"", retain=True)
    finally:
        sniffer.close()


def test_a_stale_queued_command_is_reported_not_just_dropped(
    tmp_path: Path, uniq: str, caplog: pytest.LogCaptureFixture
) -> None:
    from assistant.config import MqttSettings
    from tests.support.mosquitto import free_port

    port = free_port()
    now = [100.0]
    client = MqttClient(
        MqttSettings(host="127.0.0.1", port=port, freshness_s=5.0, base_topic=f"as_{uniq}"),
        site=uniq,
        backoff_min_s=0.05,
        backoff_max_s=0.1,
        clock=lambda: now[0],
    )
    inventory = Inventory(
        client,
        debounce_s=0,
        manual_entities=[{"component": "switch", "name": "Kettle", "cmd_t": f"{uniq}/k"}],
    )
    control = HomeControl(inventory, client)
    client.start()
    broker = Broker(tmp_path, port=port)
    try:
        queued = control.run("HassTurnOn", {"name": "kettle"})
        assert queued["queued"] is True
        assert queued["speech"] == (
            "The home hub is offline right now. I'll send that if the connection is back within 5 seconds; "
            "otherwise I'll drop it."
        )
        now[0] += 6.0
        broker.start()
        sniffer = Sniffer(broker, topics=(f"as_{uniq}/#", f"{uniq}/#"))
        try:
            with caplog.at_level(logging.WARNING):
                assert sniffer.wait_for(f"as_{uniq}/{uniq}/event/command_dropped", timeout=10)
            event = json.loads(sniffer.on(f"as_{uniq}/{uniq}/event/command_dropped")[0])
            assert event["data"] == {"topic": f"{uniq}/k", "reason": "dropped_stale", "age_s": 6.0}
            assert sniffer.on(f"{uniq}/k") == []
        finally:
            sniffer.close()
        assert "dropped, never sent: it was too old" in caplog.text
        assert [o.status for o in control.outcomes] == ["dropped_stale"]
    finally:
        client.stop()
        broker.stop()


def test_a_mute_command_publishes_its_state_once(broker: Broker, uniq: str) -> None:
    from assistant.home.device import AssistantDevice

    client = MqttClient(mqtt_settings(broker, uniq), site=uniq, backoff_min_s=0.05)
    device = AssistantDevice(client, site=uniq, discovery_prefix=f"ha_{uniq}", base_topic=f"as_{uniq}")
    device.on_mute = device.set_muted  # as the daemon does: its controller echoes through set_muted
    device.on_volume = device.set_volume
    sniffer = Sniffer(broker, topics=(f"as_{uniq}/#",))
    device.start()
    client.start()
    try:
        assert client.wait_connected(5)
        # the states published on connect, mute then volume: both in before the count starts (CI
        # once saw the first volume land after a clear made at the mute)
        assert sniffer.wait_for(device.topic("mute"), b"OFF")
        assert sniffer.wait_for(device.topic("volume"), b"100")
        sniffer.clear()
        sniffer.publish(device.topic("mute/set"), "ON")
        sniffer.publish(device.topic("volume/set"), "40")
        assert sniffer.wait_for(device.topic("mute"), b"ON")
        assert sniffer.wait_for(device.topic("volume"), b"40")
        wait_until(lambda: False, 0.3)  # a second copy would be here by now
        assert sniffer.on(device.topic("mute")) == [b"ON"]
        assert sniffer.on(device.topic("volume")) == [b"40"]
    finally:
        client.stop()
        sniffer.close()


def test_tls_against_a_plain_port_says_so(broker: Broker, caplog: pytest.LogCaptureFixture) -> None:
    from assistant.config import MqttSettings, TlsSettings

    client = MqttClient(
        MqttSettings(host=broker.host, port=broker.port, tls=TlsSettings(enabled=True, insecure=True)),
        site="tls",
        backoff_min_s=0.05,
        backoff_max_s=0.1,
    )
    with caplog.at_level(logging.WARNING, logger="assistant.home.client"):
        client.start()
        try:
            assert wait_until(lambda: client.last_error == "tls_failed", timeout=5)
        finally:
            client.stop()
    assert f"TLS handshake with the MQTT broker {broker.host}:{broker.port} failed" in caplog.text
    assert f"is port {broker.port} a TLS port?" in caplog.text
    assert "cannot reach" not in caplog.text


def test_a_silent_broker_is_named_as_such(caplog: pytest.LogCaptureFixture) -> None:
    from assistant.config import MqttSettings

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    client = MqttClient(
        MqttSettings(host="127.0.0.1", port=port, protocol="3.1.1"),
        site="silent",
        backoff_min_s=0.05,
        connack_timeout_s=0.5,
    )
    try:
        with caplog.at_level(logging.WARNING, logger="assistant.home.client"):
            client.start()
            assert wait_until(lambda: client.last_error == "no_connack", timeout=5)
            assert wait_until(lambda: "never answered CONNECT within" in caplog.text)
        assert f"127.0.0.1:{port} accepted the connection but never answered CONNECT" in caplog.text
        assert "closed" not in caplog.text and "cannot reach" not in caplog.text
    finally:
        client.stop()
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()
