"""The assistant itself as a Home Assistant device (per-component MQTT discovery).

One retained config per entity on ``<prefix>/<component>/assistant_<site>/<key>/config``
declares: the assist state sensor (idle / wake / listening / thinking / acting / speaking /
error), the last transcript, the last intent (a sensor whose JSON attributes hold the
arguments), the last timings, a mute switch, a button that starts listening, a text entity
whose commands are spoken, and a volume number; each names the same device, origin and
availability topic. They are re-published on every (re)connect and whenever Home
Assistant's birth message (``<prefix>/status`` or ``homeassistant/status`` = ``online``)
arrives.

Why per-component and not device-based (``<prefix>/device/<id>/config``): Home Assistant
understands device-based discovery only from 2024.11 on (2024.3 logs "Integration device is
not supported" and shows nothing), and publishing both forms does not work either: HA
2024.11+ gives a device component the same discovery id as the per-component config
``<component>/<device id>/<key>`` and logs the second as a conflicting discovery message
(different ids instead would make duplicate entities). Per-component configs work on
every release (tests/interop/test_ha_core.py runs both against real HA Core).
Older versions of the assistant published the device-based config: when that retained
config is still on the broker it is migrated (HA's ``migrate_discovery``) and then cleared.

Commands from HA are untrusted: payloads are checked and cleaned before a callback
runs; callbacks run in the MQTT thread, so the daemon should hand work off quickly.
Optionally, every intent is also published Hermes-style on ``hermes/intent/<name>``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from assistant.home.client import Message, MqttClient
from assistant.home.inventory import DEFAULT_BIRTH_TOPIC
from assistant.text import STATE_MAX, clean_state

_LOGGER = logging.getLogger(__name__)

ASSIST_STATES = ("idle", "wake", "listening", "thinking", "acting", "speaking", "error")
"""Values of the assist state sensor."""

_HERMES_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _plain_numbers(data: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= 255):
            out[str(key)] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[str(key)] = round(float(value), 3) if isinstance(value, float) else value
        elif isinstance(value, Mapping) and depth < 2:
            out[str(key)] = _plain_numbers(value, depth + 1)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", text).strip("_") or "default"


class AssistantDevice:
    """Publishes the assistant's HA entities and turns HA's commands into callbacks."""

    def __init__(
        self,
        client: MqttClient,
        *,
        site: str = "default",
        discovery_prefix: str = "homeassistant",
        base_topic: str = "assistant",
        hermes: bool = False,
        version: str = "0.1.0",
        name: str | None = None,
        on_listen_pressed: Callable[[], None] | None = None,
        on_say: Callable[[str], None] | None = None,
        on_mute: Callable[[bool], None] | None = None,
        on_volume: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.site = site
        self.prefix = discovery_prefix
        self.base = f"{base_topic}/{site}"
        self.hermes = hermes
        self.version = version
        self.name = name or f"Assistant {site}"
        self.device_id = f"assistant_{_slug(site)}"
        """Identifier of this device in HA (give it to Inventory's ignore_device_ids)."""
        self.on_listen_pressed = on_listen_pressed
        self.on_say = on_say
        self.on_mute = on_mute
        self.on_volume = on_volume
        self._state = "idle"
        self._muted = False
        self._volume = 100
        self._started = False
        self._mute_published = 0
        self._volume_published = 0

    # ------------------------------------------------------------------ topics

    @property
    def legacy_config_topic(self) -> str:
        """Where versions before per-component discovery published the device-based config."""
        return f"{self.prefix}/device/{self.device_id}/config"

    def component_topic(self, key: str, platform: str) -> str:
        """``<prefix>/<platform>/<device id>/<key>/config``: one entity's discovery config."""
        return f"{self.prefix}/{platform}/{self.device_id}/{key}/config"

    @property
    def config_topic(self) -> str:
        """The config topic of the assist state sensor (the first of the configs published)."""
        return self.component_topic("assist_state", "sensor")

    @property
    def config_topics(self) -> list[str]:
        """Every discovery config topic this device publishes (retained), in publishing order."""
        return list(self.component_configs())

    def topic(self, leaf: str) -> str:
        """``<base>/<site>/<leaf>``."""
        return f"{self.base}/{leaf}"

    # ------------------------------------------------------------------ discovery

    def discovery_payload(self) -> dict[str, Any]:
        """The device-based discovery config (full key names)."""
        uid = self.device_id
        t = self.topic
        return {
            "device": {
                "identifiers": [uid],
                "name": self.name,
                "manufacturer": "assistant",
                "model": "offline voice assistant",
                "sw_version": self.version,
            },
            "origin": {"name": "assistant", "sw_version": self.version},
            "availability": [{"topic": self.client.availability_topic}],
            "components": {
                "assist_state": {
                    "platform": "sensor",
                    "unique_id": f"{uid}_assist_state",
                    "name": "Assist state",
                    "state_topic": t("state"),
                    "device_class": "enum",
                    "options": list(ASSIST_STATES),
                    "icon": "mdi:account-voice",
                },
                "transcript": {
                    "platform": "sensor",
                    "unique_id": f"{uid}_transcript",
                    "name": "Last transcript",
                    "state_topic": t("transcript"),
                    "icon": "mdi:text-recognition",
                },
                "intent": {
                    "platform": "sensor",
                    "unique_id": f"{uid}_intent",
                    "name": "Last intent",
                    "state_topic": t("intent"),
                    "value_template": "{{ value_json.intent }}",
                    "json_attributes_topic": t("intent"),
                    "icon": "mdi:lightning-bolt",
                },
                "timings": {
                    "platform": "sensor",
                    "unique_id": f"{uid}_timings",
                    "name": "Last response time",
                    "state_topic": t("timings"),
                    "unit_of_measurement": "ms",
                    # the run report (assistant.runs.RunReport) keeps stage durations under timings_ms;
                    # a run that acted on nothing has no such figure: the sensor shows unknown
                    "value_template": (
                        "{{ (value_json.timings_ms | default({})).end_of_speech_to_action"
                        " | default(None) }}"
                    ),
                    "json_attributes_topic": t("timings"),
                    "icon": "mdi:timer-outline",
                },
                "mute": {
                    "platform": "switch",
                    "unique_id": f"{uid}_mute",
                    "name": "Mute",
                    "state_topic": t("mute"),
                    "command_topic": t("mute/set"),
                    "icon": "mdi:microphone-off",
                },
                "listen": {
                    "platform": "button",
                    "unique_id": f"{uid}_listen",
                    "name": "Listen",
                    "command_topic": t("listen/press"),
                    "payload_press": "PRESS",
                    "icon": "mdi:microphone",
                },
                "say": {
                    "platform": "text",
                    "unique_id": f"{uid}_say",
                    "name": "Say",
                    "command_topic": t("say/set"),
                    "max": STATE_MAX,
                    "icon": "mdi:bullhorn",
                },
                "volume": {
                    "platform": "number",
                    "unique_id": f"{uid}_volume",
                    "name": "Volume",
                    "state_topic": t("volume"),
                    "command_topic": t("volume/set"),
                    "min": 0,
                    "max": 100,
                    "step": 1,
                    "unit_of_measurement": "%",
                    "icon": "mdi:volume-high",
                },
            },
        }

    def component_configs(self) -> dict[str, dict[str, Any]]:
        """Per-component discovery configs by topic: each component with the shared keys."""
        payload = self.discovery_payload()
        shared = {k: v for k, v in payload.items() if k != "components"}
        out: dict[str, dict[str, Any]] = {}
        for key, component in payload["components"].items():
            config = {k: v for k, v in component.items() if k != "platform"}
            out[self.component_topic(key, component["platform"])] = {**config, **shared}
        return out

    def start(self) -> None:
        """Subscribe to HA's commands and birth message; discovery goes out on every connect."""
        if self._started:
            return
        self._started = True
        self.client.subscribe(self.topic("mute/set"), self._on_mute_set)
        self.client.subscribe(self.topic("listen/press"), self._on_listen)
        self.client.subscribe(self.topic("say/set"), self._on_say_set)
        self.client.subscribe(self.topic("volume/set"), self._on_volume_set)
        for topic in dict.fromkeys((f"{self.prefix}/status", DEFAULT_BIRTH_TOPIC)):
            self.client.subscribe(topic, self._on_birth)
        self.client.subscribe(self.legacy_config_topic, self._on_legacy_config)
        self.client.add_on_connect(self.publish_discovery)

    def publish_discovery(self) -> None:
        """Publish the discovery configs and the current states (all retained)."""
        for topic, config in self.component_configs().items():
            self.client.publish(topic, json.dumps(config), qos=1, retain=True)
        self.client.publish(self.topic("state"), self._state, qos=1, retain=True)
        self.client.publish(self.topic("mute"), "ON" if self._muted else "OFF", qos=1, retain=True)
        self.client.publish(self.topic("volume"), str(self._volume), qos=1, retain=True)

    def remove_discovery(self) -> None:
        """Remove the device from HA (an empty retained payload on each config topic)."""
        for topic in self.component_configs():
            self.client.publish(topic, b"", qos=1, retain=True)

    # ------------------------------------------------------------------ setters for the daemon

    def set_state(self, state: str) -> None:
        """Publish the assist state (one of ASSIST_STATES)."""
        state = str(state)  # a StrEnum member publishes as its value
        if state not in ASSIST_STATES:
            raise ValueError(f"unknown assist state {state!r}; one of {', '.join(ASSIST_STATES)}")
        self._state = state
        self.client.publish(self.topic("state"), state, qos=1, retain=True)

    def set_transcript(self, text: str | None) -> None:
        """Publish the last transcript (cleaned, at most 255 characters)."""
        self.client.publish(self.topic("transcript"), clean_state(text or ""), qos=1, retain=True)

    def set_muted(self, muted: bool) -> None:
        """Publish the mute state (the daemon's own change, or the echo of HA's command)."""
        self._muted = bool(muted)
        self._mute_published += 1
        self.client.publish(self.topic("mute"), "ON" if self._muted else "OFF", qos=1, retain=True)

    def set_volume(self, volume: int) -> None:
        """Publish the volume in percent (clamped to 0..100)."""
        self._volume = max(0, min(100, int(volume)))
        self._volume_published += 1
        self.client.publish(self.topic("volume"), str(self._volume), qos=1, retain=True)

    def publish_intent(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        transcript: str | None = None,
        confidence: float = 1.0,
        session_id: str | None = None,
        outcome: str | None = None,
        site: str | None = None,
    ) -> None:
        """Publish the last intent (sensor + attributes) and, with ``hermes``, hermes/intent/<name>.

        ``site``: where it was heard (a satellite's site; default this assistant's own)."""
        site = site or self.site
        args = {str(k): v for k, v in (arguments or {}).items()}
        body = {
            "intent": clean_state(name),
            "arguments": args,
            "transcript": clean_state(transcript or ""),
            "site": site,
            "outcome": outcome,
        }
        self.client.publish(self.topic("intent"), json.dumps(body, default=str), qos=1, retain=True)
        if not self.hermes:
            return
        if not _HERMES_NAME.match(name):
            _LOGGER.warning("intent name %.40r is not usable in a Hermes topic; not published", name)
            return
        slots = [
            {
                "entity": key,
                "slotName": key,
                "rawValue": str(value),
                "value": {"kind": "Unknown", "value": value},
                "confidence": 1.0,
            }
            for key, value in args.items()
        ]
        hermes = {
            "input": transcript or "",
            "intent": {"intentName": name, "confidenceScore": confidence},
            "slots": slots,
            "siteId": site,
            "sessionId": session_id,
            "customData": None,
            "asrTokens": [],
        }
        self.client.publish(f"hermes/intent/{name}", json.dumps(hermes, default=str), qos=0, retain=False)

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Publish an event (a timer ending, ...) as JSON on ``<base>/<site>/event/<name>``.

        Matches ``assistant.tools.context.Notifier.publish_event``; not retained.
        """
        topic_name = _slug(name)[:64]
        body = {"event": topic_name, "site": self.site, "data": {str(k): v for k, v in data.items()}}
        self.client.publish(self.topic(f"event/{topic_name}"), json.dumps(body, default=str), qos=1)

    def publish_timings(self, timings: Mapping[str, Any]) -> None:
        """Publish per-utterance timings (ms) as one retained JSON message.

        Numbers are rounded to 3 decimals; nested mappings (counters) and text are kept;
        NaN, infinities and other values are left out.
        """
        self.client.publish(self.topic("timings"), json.dumps(_plain_numbers(timings)), qos=1, retain=True)

    # ------------------------------------------------------------------ HA commands

    def _on_birth(self, message: Message) -> None:
        if message.payload.strip() == b"online":
            _LOGGER.info("Home Assistant came online; re-publishing the assistant's discovery")
            self.publish_discovery()

    def _on_legacy_config(self, message: Message) -> None:
        """A device-based config on our topic: left retained by an older version; migrate it."""
        payload = message.payload.strip()
        if not payload or b"migrate_discovery" in payload:
            return  # already cleared, or the migration below echoing back
        _LOGGER.info("migrating the device-based discovery config of an older version to per-component")
        # HA 2024.11+: unload the device-based entities but keep their registry entries
        # (same unique ids), so the per-component configs take them over; then clear it.
        self.client.publish(self.legacy_config_topic, json.dumps({"migrate_discovery": True}), qos=1)
        self.publish_discovery()
        self.client.publish(self.legacy_config_topic, b"", qos=1, retain=True)

    def _on_mute_set(self, message: Message) -> None:
        value = message.payload.strip().upper()
        if value not in (b"ON", b"OFF"):
            _LOGGER.warning("mute command ignored: expected ON or OFF, got %.20r", message.payload)
            return
        muted = value == b"ON"
        before = self._mute_published
        self._call(self.on_mute, muted)
        if self._mute_published == before:  # the daemon's callback usually echoes it through set_muted
            self.set_muted(muted)

    def _on_listen(self, message: Message) -> None:
        if message.payload.strip() != b"PRESS":
            _LOGGER.warning("listen button command ignored: expected PRESS, got %.20r", message.payload)
            return
        self._call(self.on_listen_pressed)

    def _on_say_set(self, message: Message) -> None:
        try:
            raw = message.text()
        except ValueError as err:
            _LOGGER.warning("say command ignored: %s", err)
            return
        if len(raw) > STATE_MAX * 4:
            _LOGGER.warning("say command ignored: %d characters (limit %d)", len(raw), STATE_MAX)
            return
        text = clean_state(raw)
        if not text:
            _LOGGER.warning("say command ignored: no speakable text")
            return
        self._call(self.on_say, text)

    def _on_volume_set(self, message: Message) -> None:
        try:
            number = float(message.text().strip())
        except ValueError:
            _LOGGER.warning("volume command ignored: not a number: %.20r", message.payload)
            return
        if not math.isfinite(number) or not 0 <= number <= 100:
            _LOGGER.warning("volume command ignored: %r is outside 0..100", number)
            return
        volume = round(number)
        before = self._volume_published
        self._call(self.on_volume, volume)
        if self._volume_published == before:
            self.set_volume(volume)

    @staticmethod
    def _call(callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            _LOGGER.exception("assistant device callback failed")
