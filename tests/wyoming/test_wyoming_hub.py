"""The hub with real wyoming-satellite 1.0.0 processes, a real broker and the real assistant.

Three satellites (kitchen, office, bedroom) run at once on loopback, each its own
``python -m wyoming_satellite`` from the cached venv (scripts/wyoming_satellite_env) with a
real-time microphone command and a local wake-word command (tests/wyoming/satellite_io.py),
its speaker a ``--snd-command`` that writes each reply to a file. The hub connects to
each, runs the phrase brain and the router on what they stream, and sends the replies
back; actions are real MQTT publishes (the demo house, declared by hand, on mosquitto).
A fourth satellite (garage) has a freshness of 10 ms, so every command it hears is stale;
a fifth (porch) has no local wake word: it streams all the time and the hub wakes it, with
the assistant's own okay_nabu model on a real recording of "okay nabu". Each satellite's
area is its site's (Kitchen, Office, ...); the box itself (site hubbox) has none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.types import ResultStatus, ToolCall
from assistant.wyoming.hub import STALE_SPEECH, LinkState, TurnOutcome
from tests.e2e.live_daemon import Watcher
from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.pipeline import piper16, silence
from tests.wyoming.hub_rig import HubRig, spoken
from tests.wyoming.satellites import SND_RATE, satellite_python

pytestmark = [
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
    pytest.mark.skipif(satellite_python() is None,
                       reason="no wyoming-satellite venv (scripts/wyoming_satellite_env makes it)"),
]

SITES = ("kitchen", "office", "bedroom", "garage", "porch")
OKAY_NABU = Path(__file__).resolve().parents[1] / "data" / "recordings" / "oww-okay_nabu.wav"
"""A real "okay nabu" (wyoming-openwakeword's test recording, Apache-2.0; tests/data/recordings)."""
KITCHEN_LIGHT, BEDROOM_LIGHT = "demo/kitchen/light/set", "demo/bedroom/light/set"
COFFEE, FAN = "demo/kitchen/coffee/set", "demo/bedroom/fan/set"
BLINDS, LOCK = "demo/living/blinds/set", "demo/hallway/lock/set"
OFFICE_LIGHT = "demo/office/light/set"
OFFICE = {"component": "light", "name": "Office Light", "area": "Office", "unique_id": "test_office_light",
          "command_topic": OFFICE_LIGHT}
"""Beside the demo house: a second room with a light, so "the light" means a different one per room."""


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubRig]:
    folder = tmp_path_factory.mktemp("hub")
    broker = Broker(folder).start()
    rig = HubRig(folder, broker, SITES, extra={"garage": {"freshness_s": 0.01}}, streaming=("porch",),
                 entities=[OFFICE])
    try:
        yield rig
    finally:
        rig.close()
        broker.stop()


def _published(rig: HubRig, since: int) -> list[tuple[str, str]]:
    return [(m.topic, m.text()) for m in rig.actions(since)]


def _reply_seconds(path: Path) -> float:
    return path.stat().st_size / 2 / SND_RATE


def test_three_satellites_at_once_each_act_once_and_hear_their_own_reply(rig: HubRig) -> None:
    rounds = [
        {"kitchen": ("Turn on the kitchen light.", (KITCHEN_LIGHT, "ON")),
         "office": ("Turn on the coffee maker.", (COFFEE, "ON")),
         "bedroom": ("Turn on the bedroom fan.", (FAN, "ON"))},
        {"kitchen": ("Open the living room blinds.", (BLINDS, "OPEN")),
         "office": ("Turn off the coffee maker.", (COFFEE, "OFF")),
         "bedroom": ("Turn on the bedroom light.", (BEDROOM_LIGHT, "ON"))},
        {"kitchen": ("Turn off the kitchen light.", (KITCHEN_LIGHT, "OFF")),
         "office": ("Close the living room blinds.", (BLINDS, "CLOSE")),
         "bedroom": ("Turn off the bedroom fan.", (FAN, "OFF"))},
    ]
    for number, commands in enumerate(rounds, 1):
        mark = rig.watcher.mark()
        before = {site: len(rig.turns_of(site)) for site in commands}
        replies = {site: len(rig.satellites[site].reply_files()) for site in commands}
        for site, (text, _act) in commands.items():
            rig.say(site, spoken(text))
        for site in commands:
            turn = rig.wait_turns(site, before[site] + 1)[-1]
            assert turn.outcome is TurnOutcome.OK, (number, site, turn)
            assert turn.reply_sent, (number, site, turn)
        assert sorted(_published(rig, mark)) == sorted(act for _text, act in commands.values()), number
        for site in commands:  # the reply went to the satellite that asked, and only there
            sat = rig.satellites[site]
            want = replies[site] + 1
            rig.wait(lambda sat=sat, want=want: len(sat.reply_files()) == want
                     and _reply_seconds(sat.reply_files()[-1]) > 0.3, 5.0, f"reply audio at {site}")
            assert any(line.startswith("transcript:") and line != "transcript:" for line in sat.said())


def test_reply_audio_is_the_synthesized_reply(rig: HubRig) -> None:
    sat = rig.satellites["kitchen"]
    before = len(rig.turns_of("kitchen"))
    rig.say("kitchen", piper16("What time is it?") + silence(1.0))
    turn = rig.wait_turns("kitchen", before + 1)[-1]
    assert turn.tools == ("get_time",) and turn.reply, turn
    rig.wait(lambda: f"synthesize:{turn.reply}" in sat.said(), 5.0, "synthesize at the satellite")
    pcm, rate = rig.hub.synthesizer.synthesize(turn.reply)
    assert rate == SND_RATE
    rig.wait(lambda: sat.reply_files() and sat.reply_files()[-1].stat().st_size >= pcm.size * 2, 5.0,
             "the whole reply written")
    heard = np.frombuffer(sat.reply_files()[-1].read_bytes(), dtype="<i2")
    assert np.array_equal(heard[: pcm.size], pcm)


def test_confirmation_stays_with_the_site_that_asked(rig: HubRig) -> None:
    mark = rig.watcher.mark()
    k0, o0 = len(rig.turns_of("kitchen")), len(rig.turns_of("office"))
    rig.say("kitchen", piper16("Unlock the front door.") + silence(1.0))
    asked = rig.wait_turns("kitchen", k0 + 1)[-1]
    assert "unlock" in asked.reply.lower() and "?" in asked.reply, asked
    rig.say("office", spoken("Yes."))  # another room's yes answers nothing
    rig.wait_turns("office", o0 + 1)
    assert _published(rig, mark) == []
    rig.say("kitchen", spoken("Yes."))
    rig.wait_turns("kitchen", k0 + 2)
    rig.watcher.wait(lambda m: m.topic == LOCK, since=mark, timeout=5.0)
    assert _published(rig, mark) == [(LOCK, "UNLOCK")]


def test_a_timer_announces_on_the_satellite_that_set_it(rig: HubRig) -> None:
    bedroom, others = rig.satellites["bedroom"], [rig.satellites[s] for s in ("kitchen", "office")]
    before = len(rig.turns_of("bedroom"))
    said_elsewhere = [len(s.said()) for s in others]
    rig.say("bedroom", spoken("Set a timer for two seconds."))
    turn = rig.wait_turns("bedroom", before + 1)[-1]
    assert turn.tools == ("start_timer",), turn
    heard = len(bedroom.said())
    rig.wait(lambda: any(line.startswith("synthesize:") for line in bedroom.said()[heard:]), 10.0,
             "the timer's announcement at the bedroom")
    assert [len(s.said()) for s in others] == said_elsewhere


def test_a_command_that_names_no_area_acts_in_the_area_of_the_satellite_that_heard_it(rig: HubRig) -> None:
    rooms = {"kitchen": KITCHEN_LIGHT, "office": OFFICE_LIGHT}
    for verb in ("on", "off", "on"):  # both rooms at once, the same words
        mark = rig.watcher.mark()
        before = {site: len(rig.turns_of(site)) for site in rooms}
        for site in rooms:
            rig.say(site, spoken(f"Turn {verb} the light."))
        for site in rooms:
            turn = rig.wait_turns(site, before[site] + 1)[-1]
            assert turn.outcome is TurnOutcome.OK and turn.tools == (f"HassTurn{verb.title()}",), (site, turn)
        rig.wait(lambda mark=mark: len(rig.actions(mark)) >= 2, 5.0, "both lights")
        assert sorted(_published(rig, mark)) == sorted((topic, verb.upper()) for topic in rooms.values())

def test_the_area_follows_the_site_of_the_call_in_the_router(rig: HubRig) -> None:
    router = rig.assistant.router
    mark = rig.watcher.mark()
    lights = ToolCall("HassTurnOn", {"domain": "light"})
    # the box has no area of its own: "turn on the lights" from it asks where, never sweeps the home
    box = router.call(lights, site=rig.settings.site)
    assert box.error_code == "no_target" and "area" in box.speech, box
    office = router.call(lights, site="office")
    assert office.status is ResultStatus.OK, office
    # "open the garage" heard in the garage: the one cover there, and opening a garage door needs
    # a yes, so the sensitivity rule must resolve it in the garage's area as the handler would
    covers = ToolCall("HassTurnOn", {"domain": "cover"})
    garage = router.call(covers, site="garage")
    assert garage.status is ResultStatus.NEEDS_CONFIRMATION and "garage door" in garage.speech, garage
    assert router.answer_confirmation("no", site="garage").error_code == "declined"
    assert router.call(covers, site=rig.settings.site).error_code == "no_target"
    rig.watcher.wait(lambda m: m.topic == OFFICE_LIGHT, since=mark, timeout=5.0)
    assert _published(rig, mark) == [(OFFICE_LIGHT, "ON")]


def test_satellite_turns_show_on_the_assistants_home_assistant_device(rig: HubRig) -> None:
    device = rig.assistant.device
    assert device is not None
    leaves = ("transcript", "intent", "state", "timings")
    watcher = Watcher(rig.broker, [device.topic(leaf) for leaf in leaves], client_id="hub-device-watch")
    live = lambda m: not m.retain  # noqa: E731 - what was published while we watched
    try:
        commands = {"kitchen": ("Turn on the coffee maker.", "HassTurnOn"),
                    "office": ("Turn off the coffee maker.", "HassTurnOff"),
                    "bedroom": ("Turn off the bedroom fan.", "HassTurnOff")}
        before = {site: len(rig.turns_of(site)) for site in commands}
        for site, (text, _tool) in commands.items():
            rig.say(site, spoken(text))
        turns = {site: rig.wait_turns(site, before[site] + 1)[-1] for site in commands}

        def intents() -> dict[str, dict[str, object]]:
            seen = watcher.since(0, live)
            bodies = [json.loads(m.text()) for m in seen if m.topic == device.topic("intent")]
            return {str(b["site"]): b for b in bodies}

        rig.wait(lambda: set(intents()) == set(commands), 5.0, "an intent per satellite")
        for site, (_text, tool) in commands.items():
            body, turn = intents()[site], turns[site]
            assert turn.transcript and (body["intent"], body["transcript"], body["outcome"]) == (
                tool, turn.transcript, "ok"), (site, body)
        assert intents()["kitchen"]["arguments"] == {"name": "coffee maker"}
        heard = {m.text() for m in watcher.since(0, live) if m.topic == device.topic("transcript")}
        assert heard == {turns[site].transcript for site in commands}
        # the assist state and the timings stay the box's own
        assert [m.topic for m in watcher.since(0, live)
                if m.topic in (device.topic("state"), device.topic("timings"))] == []
    finally:
        watcher.close()


def test_a_stale_command_does_nothing_and_says_so(rig: HubRig) -> None:
    garage = rig.satellites["garage"]
    mark = rig.watcher.mark()
    rig.say("garage", spoken("Turn on the kitchen light."))
    turn = rig.wait_turns("garage", 1)[-1]
    assert turn.outcome is TurnOutcome.STALE, turn
    rig.wait(lambda: f"synthesize:{STALE_SPEECH}" in garage.said(), 5.0, "the stale reply")
    assert _published(rig, mark) == []
    assert rig.hub.links["garage"].status.stale == 1


def test_a_satellite_that_drops_mid_command_reconnects_and_acts_on_the_next(rig: HubRig) -> None:
    office = rig.satellites["office"]
    link = rig.hub.links["office"]
    connects = link.status.connects
    mark = rig.watcher.mark()
    before = len(rig.turns_of("office"))
    rig.say("office", spoken("Turn on the kitchen light."))
    rig.wait_state("office", LinkState.STREAMING)
    office.stop()  # power cut in the middle of the command
    dropped = rig.wait_turns("office", before + 1)[-1]
    assert dropped.outcome is TurnOutcome.DROPPED
    rig.wait_state("office", LinkState.OFFLINE)
    office.start()  # back on the same port: the hub finds it again after its backoff
    rig.wait(lambda: link.status.connects == connects + 1 and link.status.state is LinkState.WAITING, 10.0,
             "the office reconnected")
    assert _published(rig, mark) == []  # half a command never acts
    rig.say("office", spoken("Turn off the kitchen light."))
    turn = rig.wait_turns("office", before + 2)[-1]
    assert turn.outcome is TurnOutcome.OK
    assert _published(rig, mark) == [(KITCHEN_LIGHT, "OFF")]
    assert math.isfinite(link.status.since)


def test_a_satellite_without_a_wake_word_is_woken_by_the_hub(rig: HubRig) -> None:
    from assistant.audio.wav import read_wav

    porch = rig.satellites["porch"]
    mark = rig.watcher.mark()
    porch.say(spoken("Turn on the coffee maker."))  # no wake word: nothing happens
    porch.say(read_wav(OKAY_NABU).tobytes() + silence(0.3) + spoken("Turn on the bedroom light."))
    turn = rig.wait_turns("porch", 1, timeout=20.0)[-1]
    assert turn.outcome is TurnOutcome.OK and turn.tools == ("HassTurnOn",), turn
    assert _published(rig, mark) == [(BEDROOM_LIGHT, "ON")]
    assert "detection:okay_nabu" in porch.said()


def test_a_drop_after_the_command_still_acts_once_and_the_reply_follows_the_reconnect(rig: HubRig) -> None:
    bedroom = rig.satellites["bedroom"]
    mark = rig.watcher.mark()
    before = len(rig.turns_of("bedroom"))
    rig.say("bedroom", spoken("Turn off the bedroom light."))
    rig.wait_state("bedroom", LinkState.THINKING)
    bedroom.stop()  # the speech has ended: the command is fresh and complete
    bedroom.start()
    turn = rig.wait_turns("bedroom", before + 1)[-1]
    assert turn.outcome is TurnOutcome.OK and turn.reply_sent, turn
    rig.wait(lambda: f"synthesize:{turn.reply}" in bedroom.said(), 5.0, "the reply after the reconnect")
    assert _published(rig, mark) == [(BEDROOM_LIGHT, "OFF")]
