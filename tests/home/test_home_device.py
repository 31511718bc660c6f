"""The assistant as an HA device: retained device-based discovery, HA's commands, Hermes intents."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from assistant.home.client import MqttClient
from assistant.home.device import AssistantDevice
from assistant.home.discovery import DiscoveryTopic, parse_device_payload
from assistant.home.inventory import Inventory
from tests.home.conftest import Sniffer, mqtt_settings, wait_until
from tests.support.mosquitto import Broker


@dataclass
class Calls:
    listen: int = 0
    said: list[str] = field(default_factory=list)
    mute: list[bool] = field(default_factory=list)
    volume: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def device(broker: Broker, uniq: str) -> Iterator[tuple[AssistantDevice, Calls, MqttClient]]:
    calls = Calls()

    def listen() -> None:
        calls.listen += 1

    client = MqttClient(mqtt_settings(broker, uniq), site="kitchen", backoff_min_s=0.05, backoff_max_s=0.2)
    dev = AssistantDevice(
        client,
        site="kitchen",
        discovery_prefix=f"ha_{uniq}",
        base_topic=f"as_{uniq}",
        hermes=True,
        on_listen_pressed=listen,
        on_say=calls.said.append,
        on_mute=calls.mute.append,
        on_volume=calls.volume.append,
    )
    dev.start()
    client.start()
    try:
        assert client.wait_connected(5)
        yield dev, calls, client
    finally:
        client.stop()


def test_discovery_is_retained_and_parses_as_device_based(
    device: tuple[AssistantDevice, Calls, MqttClient], broker: Broker, uniq: str
) -> None:
    dev, _, _ = device
    late = Sniffer(broker, topics=(f"ha_{uniq}/#", f"as_{uniq}/#"))  # joins after the publish: retained
    try:
        assert late.wait_for(dev.config_topic)
        assert late.wait_for(dev.topic("state"), b"idle")
        assert late.wait_for(f"as_{uniq}/kitchen/availability", b"online")
        payload = json.loads(late.on(dev.config_topic)[-1])
    finally:
        late.close()
    assert dev.config_topic == f"ha_{uniq}/device/assistant_kitchen/config"
    components = payload["components"]
    assert {c["platform"] for c in components.values()} == {"sensor", "switch", "button", "text", "number"}
    assert components["assist_state"]["options"] == [
        "idle",
        "wake",
        "listening",
        "thinking",
        "acting",
        "speaking",
        "error",
    ]
    entities, problems = parse_device_payload(DiscoveryTopic("device", None, "assistant_kitchen"), payload)
    assert problems == []
    assert {e.spoken for e in entities} >= {
        "assistant kitchen mute",
        "assistant kitchen volume",
        "assistant kitchen listen",
    }


def test_birth_message_republishes_discovery(
    device: tuple[AssistantDevice, Calls, MqttClient], sniffer: Sniffer, uniq: str
) -> None:
    dev, _, _ = device
    assert sniffer.wait_for(dev.config_topic)
    sniffer.clear()
    sniffer.publish(f"ha_{uniq}/status", "online")
    assert sniffer.wait_for(dev.config_topic)
    sniffer.publish(f"ha_{uniq}/status", "offline")


def test_setters_publish_states(device: tuple[AssistantDevice, Calls, MqttClient], sniffer: Sniffer) -> None:
    dev, _, _ = device
    dev.set_state("listening")
    dev.set_transcript("turn on the <|tool_call> kitchen light\x00")
    dev.publish_intent(
        "HassTurnOn", {"name": "kitchen light"}, transcript="turn on the kitchen light", outcome="ok"
    )
    dev.publish_timings(
        {"end_of_speech_to_action": 123.4567, "bad": float("nan"), "counters": {"wakes": 3}, "junk": object()}
    )
    assert sniffer.wait_for(dev.topic("state"), b"listening")
    assert sniffer.wait_for(dev.topic("transcript"))
    assert b"<|" not in sniffer.on(dev.topic("transcript"))[-1]
    assert sniffer.wait_for("hermes/intent/HassTurnOn")
    hermes = json.loads(sniffer.on("hermes/intent/HassTurnOn")[-1])
    assert hermes["intent"] == {"intentName": "HassTurnOn", "confidenceScore": 1.0}
    assert hermes["slots"][0]["slotName"] == "name" and hermes["siteId"] == "kitchen"
    assert json.loads(sniffer.on(dev.topic("intent"))[-1])["intent"] == "HassTurnOn"
    assert sniffer.wait_for(dev.topic("timings"))
    assert json.loads(sniffer.on(dev.topic("timings"))[-1]) == {
        "end_of_speech_to_action": 123.457,
        "counters": {"wakes": 3},
    }
    with pytest.raises(ValueError):
        dev.set_state("dancing")
    dev.publish_intent("bad/+/name")
    wait_until(lambda: False, 0.1)
    assert not [s for s in sniffer.seen if s.topic.startswith("hermes/intent/bad")]


def test_commands_from_home_assistant(
    device: tuple[AssistantDevice, Calls, MqttClient], sniffer: Sniffer, caplog: pytest.LogCaptureFixture
) -> None:
    dev, calls, client = device
    with caplog.at_level(logging.WARNING):
        sniffer.publish(dev.topic("listen/press"), "PRESS")
        sniffer.publish(dev.topic("say/set"), "Dinner is ready")
        sniffer.publish(dev.topic("mute/set"), "ON")
        sniffer.publish(dev.topic("volume/set"), "35")
        assert wait_until(lambda: calls.volume == [35])
        assert calls.listen == 1 and calls.said == ["Dinner is ready"] and calls.mute == [True]
        assert sniffer.wait_for(dev.topic("mute"), b"ON")
        assert sniffer.wait_for(dev.topic("volume"), b"35")
        # hostile commands: nothing is called, all is logged, the connection stays up
        sniffer.publish(dev.topic("volume/set"), "1e400")
        sniffer.publish(dev.topic("volume/set"), "-5")
        sniffer.publish(dev.topic("volume/set"), b"\xff")
        sniffer.publish(dev.topic("mute/set"), "maybe")
        sniffer.publish(dev.topic("listen/press"), "x" * 1_000_000)
        sniffer.publish(dev.topic("say/set"), b"\xff\xfe")
        sniffer.publish(dev.topic("say/set"), "<|tool_call|>")
        sniffer.publish(dev.topic("say/set"), "ok")
        assert wait_until(lambda: calls.said == ["Dinner is ready", "ok"])
    assert calls.volume == [35] and calls.mute == [True] and calls.listen == 1
    assert client.connected
    assert "volume command ignored" in caplog.text and "mute command ignored" in caplog.text


def test_inventory_ignores_the_assistants_own_device(
    device: tuple[AssistantDevice, Calls, MqttClient], uniq: str
) -> None:
    dev, _, client = device
    ignoring = Inventory(
        client, discovery_prefix=f"ha_{uniq}", ignore_device_ids={dev.device_id}, debounce_s=0
    )
    seeing = Inventory(client, discovery_prefix=f"ha_{uniq}", debounce_s=0)
    ignoring.start()
    seeing.start()
    dev.publish_discovery()
    assert wait_until(lambda: "assistant kitchen mute" in seeing.names())
    assert ignoring.entities() == []
