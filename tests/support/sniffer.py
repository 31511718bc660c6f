"""A second MQTT client that sees everything on a real broker, and settings private to one test."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from assistant.config import MqttSettings
from tests.support.mosquitto import Broker

_COUNTER = itertools.count()


def unique_name() -> str:
    """A string unique in this test process, for topics on a shared broker."""
    return f"t{next(_COUNTER)}"


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, step: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; return it (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@dataclass(frozen=True)
class Seen:
    """One message a sniffer received."""

    topic: str
    payload: bytes
    retain: bool


class Sniffer:
    """A second, independent paho client: publishes like HA or a device, records what it sees."""

    def __init__(self, broker: Broker, topics: tuple[str, ...] = ("#",)) -> None:
        self._lock = threading.Lock()
        self.seen: list[Seen] = []
        self._ready = threading.Event()
        self._topics = topics
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sniffer-{next(_COUNTER)}")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("sniffer could not connect/subscribe")

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.seen.append(Seen(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        """Payloads seen on exactly ``topic``, in order."""
        with self._lock:
            return [s.payload for s in self.seen if s.topic == topic]

    def wait_for(
        self, topic: str, payload: bytes | None = None, timeout: float = 5.0, count: int = 1
    ) -> bool:
        """True once ``count`` messages (with ``payload`` if given) arrived on ``topic``."""
        return bool(
            wait_until(
                lambda: len([p for p in self.on(topic) if payload is None or p == payload]) >= count, timeout
            )
        )

    def clear(self) -> None:
        """Forget what was seen."""
        with self._lock:
            self.seen.clear()

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False, qos: int = 1) -> None:
        """Publish and wait until the broker has it."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout=5)

    def close(self) -> None:
        """Disconnect and stop the loop."""
        self.client.disconnect()
        self.client.loop_stop()


def mqtt_settings(broker: Broker, uniq: str, **overrides: Any) -> MqttSettings:
    """Settings pointing at ``broker`` with topics private to one test."""
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "discovery_prefix": f"ha_{uniq}",
        "base_topic": f"as_{uniq}",
        "client_id": f"assistant-{uniq}",
    }
    values.update(overrides)
    return MqttSettings(**values)
