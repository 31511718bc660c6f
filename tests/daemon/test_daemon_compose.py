"""The composition root: what the parts are handed, seen from outside (real broker, no fakes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from assistant.compose import DROPPED_COMMAND_SPEECH, build_assistant, make_brain
from assistant.config import MqttSettings, Settings
from assistant.inbox import Announce, Inbox, SetMuted, SetVolume, Stop
from assistant.types import Event, EventType
from tests.support.mosquitto import Broker, mosquitto_available


def test_the_control_skill_posts_into_the_inbox_and_follows_the_orchestrator(tmp_path: Path) -> None:
    inbox = Inbox()
    assistant = build_assistant(Settings(state_dir=tmp_path), inbox=inbox, with_brain=False, with_tts=False)
    controller = assistant.controller
    controller.set_volume(140)
    controller.set_muted(True)
    controller.stop(None)
    assert list(inbox._held) == [SetVolume(100), SetMuted(True), Stop()]
    # HA changed it: the controller follows the orchestrator's report.
    controller.on_event(Event(EventType.CONTROLS_CHANGED, {"muted": False, "from_home": True}))
    assert not controller.is_muted()
    assert controller.get_volume() == 100
    assistant.close()


def test_the_phrase_brain_is_warmable_and_prefetching_in_every_mode(tmp_path: Path) -> None:
    from assistant.brains.base import Prefetching, Warmable

    brain = make_brain(Settings(state_dir=tmp_path))
    assert isinstance(brain, Warmable)
    assert isinstance(brain, Prefetching)


@pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")
def test_a_home_command_dropped_while_offline_is_announced(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    settings = Settings(state_dir=tmp_path, mqtt=MqttSettings(host=broker.host, port=broker.port,
                                                              freshness_s=0.2))
    inbox = Inbox()
    assistant = build_assistant(settings, inbox=inbox, with_brain=False, with_tts=False)
    assistant.start()
    try:
        client = assistant.home.client
        assert client.wait_connected(10)
        broker.stop()
        deadline = time.monotonic() + 10
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        client.publish_command("home/kitchen/light/set", "ON")  # queued: the broker is away
        time.sleep(0.4)  # older than the freshness window when the connection comes back

        async def next_announcement() -> Announce:
            inbox.attach()
            await asyncio.to_thread(broker.start)
            while True:
                command = await asyncio.wait_for(inbox.get(), 15)
                if isinstance(command, Announce):
                    return command

        announced = asyncio.run(next_announcement())
        assert announced.text == DROPPED_COMMAND_SPEECH
    finally:
        assistant.close()
        broker.stop()


def test_the_ha_device_advertises_exactly_the_states_the_orchestrator_publishes() -> None:
    from assistant.home.device import ASSIST_STATES
    from assistant.types import AssistState

    assert set(ASSIST_STATES) == {str(state) for state in AssistState}


class RecordingDevice:
    """What HomeMirror may call on the assistant's HA device, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def set_state(self, state: str) -> None:
        self.calls.append(("state", state))

    def set_muted(self, muted: bool) -> None:
        self.calls.append(("muted", muted))

    def set_volume(self, volume: int) -> None:
        self.calls.append(("volume", volume))

    def publish_timings(self, data: dict[str, object]) -> None:
        self.calls.append(("timings", data))


def test_ha_is_told_of_a_mute_once_whoever_changed_it() -> None:
    from assistant.compose import HomeMirror

    device = RecordingDevice()
    mirror = HomeMirror(device)  # type: ignore[arg-type]
    mirror(Event(EventType.CONTROLS_CHANGED, {"muted": True, "from_home": False, "state": "idle"}))
    mirror(Event(EventType.CONTROLS_CHANGED, {"volume": 30, "from_home": True, "state": "idle"}))
    # The skill's mute is published; HA's own volume change was already echoed by the device.
    assert [c for c in device.calls if c[0] != "state"] == [("muted", True)]
    mirror(Event(EventType.RUN_END, {"flags": {"prefetched": True}, "state": "idle"}))
    assert device.calls[-1] == ("timings", {"flags": {"prefetched": True}, "state": "idle"})
