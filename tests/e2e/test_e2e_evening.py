"""An evening with the assistant: the real daemon hears 20+ commands in a row and acts on each once.

`assistant run` as a subprocess, as on the Pi: a real-time ALSA FIFO microphone
(tests.support.alsa.LiveFeeder speaks each command when the turn needs it, room noise in
between), a real-time FIFO loudspeaker (espeak-ng replies take as long as they sound, so
they can be interrupted), a real mosquitto broker with seven devices announced by retained
discovery, a local YAML skill, the clock and timer skills, the phrase brain. Voices: piper's
joe and espeak-ng en-us at 130 to 190 words per minute.

The evening covers lights, a switch, a fan, a cover, a lock (unlock asks first: answered
yes once, no once), the time, a timer, a follow-up without the wake word
(wake.follow_up_s), a barge-in (the wake word while a long report is read out: the report
stops), push-to-talk through the assistant's Listen button on MQTT, and idle gaps from
0.5 s to 20 s, one of them with people talking without the wake word.

Checked at a watcher client with arrival times: every turn acts exactly once, in order,
nothing acts during idle audio, and the run ends with the daemon still healthy. A failure
names the turn and shows the daemon's log tail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.live_daemon import DaemonProcess, Seen, Watcher, announce, write_settings
from tests.support.alsa import LiveFeeder, PlaybackDrain, alsa_file_devices
from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.pipeline import espeak16, piper16

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")

SITE = "evening"
BASE = f"assistant/{SITE}"
FOLLOW_UP_S = 1.5

ENTITIES = [
    {"component": "light", "object_id": "ev_kitchen_light", "name": "Kitchen Light", "area": "Kitchen",
     "command_topic": "test/kitchen/light/set"},
    {"component": "light", "object_id": "ev_porch_light", "name": "Porch Light", "area": "Porch",
     "command_topic": "test/porch/light/set"},
    {"component": "light", "object_id": "ev_desk_lamp", "name": "Desk Lamp", "area": "Office",
     "command_topic": "test/office/lamp/set"},
    {"component": "switch", "object_id": "ev_coffee", "name": "Coffee Maker", "area": "Kitchen",
     "command_topic": "test/kitchen/coffee/set"},
    {"component": "fan", "object_id": "ev_bedroom_fan", "name": "Bedroom Fan", "area": "Bedroom",
     "command_topic": "test/bedroom/fan/set"},
    {"component": "cover", "object_id": "ev_blinds", "name": "Living Room Blinds", "area": "Living Room",
     "command_topic": "test/living/blinds/set"},
    {"component": "lock", "object_id": "ev_front_door", "name": "Front Door", "area": "Hallway",
     "command_topic": "test/hallway/lock/set"},
]

REPORT = (
    "Here is the evening report. All the windows are closed, the garden lights come on at nine, "
    "the dishwasher finished an hour ago, the post came at noon, the car is charged, and tomorrow "
    "will be cloudy with a little rain in the afternoon and a light wind from the west."
)
SKILL = f"""\
tools:
  - name: house_report
    description: Read the evening house report.
    topic: test/report/read
    payload: "READ"
    reply: "{REPORT}"
    sentences:
      - "read [me] the house report"
"""

Voice = Callable[[str], bytes]
JOE: Voice = piper16


def espeak(speed: int) -> Voice:
    return lambda text: espeak16(text, "en-us", speed)


@dataclass
class Turn:
    """One exchange. ``how``: wake (the wake word first), ptt (the Listen button), follow_up /
    answer (the daemon listens on its own after the previous reply), barge_in (the wake word
    while the previous turn's reply is still being spoken)."""

    label: str
    text: str
    voice: Voice
    acts: list[tuple[str, str]] = field(default_factory=list)
    """(topic, payload) published for this turn, in order."""
    intent: str | None = None
    """A local skill's tool (no device topic): seen as the assistant's intent sensor."""
    how: str = "wake"
    wake_voice: Voice = JOE
    asks: bool = False
    """The reply is a confirmation question (the next turn answers it)."""
    gap_s: float = 1.0
    """Idle time after the daemon is back to idle, before the next turn."""
    idle_talk: str | None = None
    """Said during the gap without the wake word: must not act."""


def evening() -> list[Turn]:
    es130, es160, es190 = espeak(130), espeak(160), espeak(190)
    kitchen, porch, desk = "test/kitchen/light/set", "test/porch/light/set", "test/office/lamp/set"
    coffee, fan, blinds, lock = ("test/kitchen/coffee/set", "test/bedroom/fan/set", "test/living/blinds/set",
                                 "test/hallway/lock/set")
    return [
        Turn("kitchen on", "Turn on the kitchen light.", JOE, [(kitchen, "ON")], gap_s=2.0),
        Turn("coffee on", "Turn on the coffee maker.", es160, [(coffee, "ON")], wake_voice=es160, gap_s=0.5),
        Turn("time", "What time is it?", JOE, intent="get_time", gap_s=5.0),
        Turn("fan on", "Turn on the bedroom fan.", es130, [(fan, "ON")], gap_s=0.0),
        Turn("fan off (follow-up)", "Turn off the bedroom fan.", JOE, [(fan, "OFF")], how="follow_up",
             gap_s=3.0),
        Turn("blinds open", "Open the living room blinds.", es190, [(blinds, "OPEN")], wake_voice=es190,
             gap_s=0.5),
        Turn("unlock?", "Unlock the front door.", JOE, asks=True),
        Turn("yes", "Yes.", JOE, [(lock, "UNLOCK")], how="answer", gap_s=2.0),
        Turn("porch on", "Turn on the porch light.", es160, [(porch, "ON")], gap_s=1.0),
        Turn("unlock? again", "Unlock the front door.", es130, asks=True, wake_voice=es160),
        Turn("no", "No.", JOE, how="answer", gap_s=1.0),
        Turn("desk on (push-to-talk)", "Turn on the desk lamp.", es160, [(desk, "ON")], how="ptt", gap_s=20.0,
             idle_talk="The weather was lovely today, we should go for a walk after dinner."),
        Turn("house report", "Read me the house report.", JOE, [("test/report/read", "READ")], gap_s=0.0),
        Turn("desk off (barge-in)", "Turn off the desk lamp.", es190, [(desk, "OFF")], how="barge_in",
             gap_s=1.0),
        Turn("timer", "Set a timer for five minutes.", JOE, intent="start_timer", gap_s=2.0),
        Turn("blinds close", "Close the living room blinds.", es160, [(blinds, "CLOSE")], gap_s=0.5),
        Turn("lock", "Lock the front door.", JOE, [(lock, "LOCK")], gap_s=8.0),
        Turn("coffee off", "Turn off the coffee maker.", es190, [(coffee, "OFF")], wake_voice=es190,
             gap_s=1.0),
        Turn("porch off", "Turn off the porch light.", JOE, [(porch, "OFF")], gap_s=3.0),
        Turn("time again", "What time is it?", es160, intent="get_time", gap_s=0.5),
        Turn("kitchen off", "Turn off the kitchen light.", es130, [(kitchen, "OFF")], gap_s=4.0),
    ]


def is_action(message: Seen) -> bool:
    """A command to a device (the daemon's only publishes under test/)."""
    return message.topic.startswith("test/") and not message.retain


def intent_name(message: Seen) -> str | None:
    if message.topic != f"{BASE}/intent":
        return None
    try:
        return str(json.loads(message.payload)["intent"])
    except (ValueError, KeyError, TypeError):
        return None


def is_state(value: str) -> Callable[[Seen], bool]:
    return lambda m: m.topic == f"{BASE}/state" and m.payload == value.encode()


class Evening:
    """Runs the turns one after another against the live daemon; fails naming the turn."""

    def __init__(self, daemon: DaemonProcess, mic: LiveFeeder, speaker: PlaybackDrain,
                 watcher: Watcher) -> None:
        self.daemon = daemon
        self.mic = mic
        self.speaker = speaker
        self.watcher = watcher
        self.idle_windows: list[tuple[float, float, str]] = []
        self.windows: list[tuple[float, float]] = []
        self.turn_no = 0
        self.turn: Turn | None = None

    def fail(self, what: str) -> None:
        label = self.turn.label if self.turn else "?"
        actions = [(round(m.at, 2), m.topic, m.text()) for m in self.watcher.since(0, is_action)]
        pytest.fail(
            f"turn {self.turn_no} ({label!r}) failed: {what}\n"
            f"actions so far: {actions}\n"
            f"daemon log tail:\n{self.daemon.tail(80)}",
            pytrace=False,
        )

    def say(self, voice: Voice, text: str) -> None:
        spoken = self.mic.say(voice(text), text)
        if not spoken.wait(30):
            self.fail(f"the microphone feeder did not get {text!r} out")

    def wait(self, predicate: Callable[[Seen], bool], since: int, timeout: float, what: str) -> Seen:
        found = self.watcher.wait(predicate, since=since, timeout=timeout)
        if found is None:
            if not self.daemon.alive():
                status = self.daemon.proc.returncode
                self.fail(f"the daemon exited (status {status}) while waiting for {what}")
            self.fail(f"no {what} within {timeout:.0f} s")
        assert found is not None
        return found

    def wait_idle(self, since: int) -> float:
        return self.wait(is_state("idle"), since, 20, "return to idle").at

    def run(self, turns: list[Turn]) -> None:
        previous: Turn | None = None
        mark = self.watcher.mark()  # from here on: what the current turn causes
        began = mark  # where the previous turn began (its states repeat on every event)
        for number, turn in enumerate(turns, 1):
            self.turn_no, self.turn = number, turn
            start = time.monotonic()
            if turn.how in ("wake", "ptt"):
                if previous is not None:
                    self.idle(previous, self.wait_idle(mark))
                mark = self.watcher.mark()
                if turn.how == "wake":
                    self.say(turn.wake_voice, "Okay nabu.")
                else:
                    self.watcher.publish(f"{BASE}/listen/press", "PRESS")
                self.wait(is_state("listening"), mark, 8, "listening after the wake word / button")
            elif turn.how in ("follow_up", "answer"):
                self.wait(is_state("listening"), mark, 15,
                          "listening without the wake word after the previous reply")
                mark = self.watcher.mark()
            elif turn.how == "barge_in":
                mark = self.barge_in(began)
            began = mark
            self.say(turn.voice, turn.text)
            self.expect(turn, mark)
            mark = self.watcher.mark()  # the action is out; what follows is the reply
            self.windows.append((start, time.monotonic()))
            previous = turn
        self.turn_no, self.turn = len(turns) + 1, None
        assert previous is not None
        self.idle(previous, self.wait_idle(mark))

    def expect(self, turn: Turn, mark: int) -> None:
        for topic, payload in turn.acts:
            self.wait(lambda m, t=topic, p=payload: is_action(m) and m.topic == t and m.text() == p,
                      mark, 15, f"{payload} on {topic}")
        if turn.intent is not None:
            self.wait(lambda m: intent_name(m) == turn.intent, mark, 15, f"intent {turn.intent}")
        if turn.asks:
            self.wait(lambda m: intent_name(m) is not None, mark, 15, "the sensitive call's intent")
        elif not turn.acts and turn.intent is None:
            # "no": the question is answered and nothing happens; wait until the turn is over.
            self.wait(is_state("thinking"), mark, 15, "the answer to be heard")

    def idle(self, previous: Turn, idle_at: float) -> None:
        """The gap after a turn: room noise (and maybe talk without the wake word); nothing may act."""
        begin = time.monotonic()
        if previous.idle_talk:
            time.sleep(min(2.0, previous.gap_s / 4))
            self.say(espeak(160), previous.idle_talk)
        rest = previous.gap_s - (time.monotonic() - begin)
        if rest > 0:
            time.sleep(rest)
        self.idle_windows.append((idle_at, time.monotonic(), previous.label))

    def barge_in(self, mark: int) -> int:
        """The previous reply (the long report) is playing: say the wake word into it."""
        speaking = self.wait(is_state("speaking"), mark, 15, "the long reply to be spoken")
        time.sleep(max(0.0, speaking.at + 2.0 - time.monotonic()))
        if self.speaker.played_between(speaking.at, time.monotonic()) < 1.0:
            self.fail("the long reply is not coming out of the speaker")
        barge = self.watcher.mark()
        self.say(JOE, "Okay nabu.")
        heard = self.wait(is_state("wake"), barge, 8, "barge-in (state wake while speaking)")
        self.wait(is_state("listening"), barge, 8, "listening after the barge-in")
        # The report (about 15 s at this speed) stops: after the wake word only the short wake
        # earcon comes out.
        after = self.speaker.played_between(heard.at + 0.3, heard.at + 3.0)
        if after > 0.8:
            self.fail(f"the reply went on after the barge-in ({after:.1f} s of audio in 2.7 s)")
        return barge


def check_actions(evening: Evening, turns: list[Turn], watcher: Watcher) -> None:
    """Every turn acted exactly once, in order; nothing during idle; each skill turn one intent."""
    actions = watcher.since(0, is_action)
    expected = [act for turn in turns for act in turn.acts]
    got = [(m.topic, m.text()) for m in actions]
    assert got == expected, f"actions out of order or repeated:\n got      {got}\n expected {expected}"
    for begin, end, label in evening.idle_windows:
        during = [(m.topic, m.text()) for m in actions if begin < m.at < end]
        assert not during, f"acted on idle audio after {label!r}: {during}"
    intents = [intent_name(m) for m in watcher.since(0)]
    for skill in {t.intent for t in turns if t.intent}:
        want = sum(1 for t in turns if t.intent == skill)
        assert intents.count(skill) == want, f"{skill}: {intents.count(skill)} intents, expected {want}"


def test_an_evening_of_commands(tmp_path: Path) -> None:
    turns = evening()
    for turn in turns:  # synthesize everything first: the daemon's clock should not wait for piper
        turn.voice(turn.text)
        turn.wake_voice("Okay nabu.")
        if turn.idle_talk:
            espeak(160)(turn.idle_talk)
    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "house_report.yaml").write_text(SKILL, encoding="utf-8")
    started = time.monotonic()
    with Broker(tmp_path) as broker:
        watcher = Watcher(broker)
        announce(watcher, ENTITIES)
        settings = write_settings(tmp_path / "config.yaml", state_dir=tmp_path / "state", broker=broker,
                                  site=SITE, speaker=True, follow_up_s=FOLLOW_UP_S, tts_speed=190,
                                  skills=[skills])
        with (
            alsa_file_devices(tmp_path, fifo=True, playback_fifo=True) as alsa,
            PlaybackDrain(alsa.playback_wav) as speaker,
            LiveFeeder(alsa.capture_path) as mic,
        ):
            daemon = DaemonProcess(settings, alsa.env, tmp_path / "daemon.log")
            try:
                if not daemon.wait_for_log("Assistant ready", timeout=60):
                    pytest.fail(f"the daemon did not start:\n{daemon.tail()}", pytrace=False)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and "Phrase grammar" not in daemon.log():
                    time.sleep(0.1)
                assert mic.connected.wait(10), daemon.tail()
                time.sleep(1.0)
                run = Evening(daemon, mic, speaker, watcher)
                run.run(turns)
                check_actions(run, turns, watcher)
                assert daemon.alive(), daemon.tail()
                assert watcher.wait(lambda m: m.topic == f"{BASE}/availability" and m.payload == b"online",
                                    timeout=1)
                assert mic.late_blocks < 20, f"the test machine was too busy: {mic.late_blocks} late blocks"
            finally:
                rc = daemon.stop()
        watcher.close()
    assert rc == 0, daemon.tail()
    wall = time.monotonic() - started
    assert len(turns) >= 20
    print(f"evening: {len(turns)} turns acted once each in order, {wall:.0f} s wall time")
