"""The assistant as an HA device: retained device-based discovery, HA's commands, Hermes intents."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from assistant.home.client import MqttClient
from assistant.home.device import AssistantDevice
from assistant.home.discovery import SUPPORTED_DOMAINS, parse_component_payload, parse_discovery_topic
from assistant.home.inventory import Inventory
from tests.support.mosquitto import Broker
from tests.support.sniffer import Sniffer, mqtt_settings, wait_until


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


def test_discovery_is_retained_per_component_and_parses(
    device: tuple[AssistantDevice, Calls, MqttClient], broker: Broker, uniq: str
) -> None:
    dev, _, _ = device
    late = Sniffer(broker, topics=(f"ha_{uniq}/#", f"as_{uniq}/#"))  # joins after the publish: retained
    try:
        for topic in dev.config_topics:
            assert late.wait_for(topic), topic
        assert late.wait_for(dev.topic("state"), b"idle")
        assert late.wait_for(f"as_{uniq}/kitchen/availability", b"online")
        payloads = {topic: json.loads(late.on(topic)[-1]) for topic in dev.config_topics}
        # no device-based config: HA before 2024.11 does not support it, and both forms would conflict
        assert not late.on(dev.legacy_config_topic)
    finally:
        late.close()
    assert dev.config_topic == f"ha_{uniq}/sensor/assistant_kitchen/assist_state/config"
    assert dev.config_topic in payloads
    assert {t.split("/")[1] for t in payloads} == {"sensor", "switch", "button", "text", "number"}
    assert len(payloads) == 8
    state = payloads[dev.config_topic]
    assert state["options"] == ["idle", "wake", "listening", "thinking", "acting", "speaking", "error"]
    for config in payloads.values():
        assert config["device"]["identifiers"] == ["assistant_kitchen"]
        assert config["availability"] == [{"topic": f"as_{uniq}/kitchen/availability"}]
        assert config["unique_id"].startswith("assistant_kitchen_") and "platform" not in config
    unique_ids = [c["unique_id"] for c in payloads.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    entities = []
    for topic, payload in payloads.items():
        parsed = parse_discovery_topic(f"ha_{uniq}", topic)
        assert parsed is not None and parsed.node_id == "assistant_kitchen"
        if parsed.component in SUPPORTED_DOMAINS:  # not text: the inventory skips it
            entities.append(parse_component_payload(parsed, payload))
    assert {e.spoken for e in entities} >= {
        "assistant kitchen mute",
        "assistant kitchen volume",
        "assistant kitchen listen",
    }


def test_legacy_device_config_is_migrated_and_cleared(
    device: tuple[AssistantDevice, Calls, MqttClient], sniffer: Sniffer, broker: Broker
) -> None:
    dev, _, _ = device
    assert sniffer.wait_for(dev.config_topic)
    sniffer.clear()
    legacy = {
        "device": {"identifiers": ["assistant_kitchen"]},
        "origin": {"name": "assistant"},
        "components": {"mute": {"platform": "switch", "command_topic": "x"}},
    }
    sniffer.publish(dev.legacy_config_topic, json.dumps(legacy), retain=True)  # an older version's
    assert sniffer.wait_for(dev.legacy_config_topic, b"")
    on_legacy = sniffer.on(dev.legacy_config_topic)
    assert json.loads(on_legacy[1]) == {"migrate_discovery": True}
    assert on_legacy[-1] == b"" and len(on_legacy) == 3
    assert sniffer.wait_for(dev.config_topic)
    late = Sniffer(broker, topics=(dev.legacy_config_topic,))
    try:
        wait_until(lambda: False, 0.2)
        assert late.on(dev.legacy_config_topic) == []  # nothing retained any more
    finally:
        late.close()


def test_remove_discovery_clears_every_config(
    device: tuple[AssistantDevice, Calls, MqttClient], sniffer: Sniffer
) -> None:
    dev, _, _ = device
    assert sniffer.wait_for(dev.config_topic)
    dev.remove_discovery()
    for topic in dev.config_topics:
        assert sniffer.wait_for(topic, b""), topic


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
    # The device subscribes on connect; volume/set is its last subscription: once a volume
    # command arrives, the broker has taken all of them (else the first press can be lost).
    assert wait_until(lambda: sniffer.publish(dev.topic("volume/set"), "1") is None and calls.volume != [],
                      step=0.2)
    time.sleep(0.3)  # a probe still in flight lands before the clear
    calls.volume.clear()
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
