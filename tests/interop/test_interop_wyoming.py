"""Real Home Assistant Core 2025.4.4 adds our Wyoming server and runs assist pipelines on it.

HA (the cached Python 3.13 venv of ``scripts/ha_core_env``, run offline) is onboarded
through its REST API, then its wyoming integration's config flow (the user step: host
and port) adds our server, running in this process over the real router, the demo
house's entities on a real mosquitto and the phrase brain. Through HA's websocket API a
pipeline is made whose speech to text is our ``asr`` and whose conversation agent is our
``handle``, and it is run: on text (several turns, a refusal, a sensitive action that
needs a yes) and on audio (piper's joe voice, streamed as HA's frontend streams a
microphone). What counts is what HA reports (its pipeline events) and what the router
did (the MQTT commands a watcher sees on the broker).

The same HA also adds our satellite endpoint (a second config entry, its own port), shows
its ``assist_satellite`` entity, and runs its pipeline (made HA's preferred one, with our
``tts`` as its speech engine: a satellite's pipeline ends in speech) on the turns our
orchestrator hears after its wake word: our asr hears them, our handle acts once through
the router, and HA's spoken answer (our voice, converted by HA's ffmpeg) plays on our
speaker side.

Skipped, with the reason, when the venv or mosquitto is not there.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.tts import SpeakerSink
from assistant.tts.base import SpeakResult
from assistant.tts.espeak import EspeakSynthesizer
from assistant.types import EventType
from tests.e2e.live_daemon import Watcher
from tests.interop.test_ha_core import HomeAssistant, _venv, _wait
from tests.support.mosquitto import Broker, free_port, mosquitto_available
from tests.support.pipeline import (
    PacedPlayer,
    ScriptedBrain,
    Segment,
    _piper,
    espeak16,
    piper16,
    silence,
    tool_reply,
)
from tests.support.rig import Rig
from tests.support.wyoming_server import Served, served

RELEASE = "2025.4.4"
KITCHEN = "demo/kitchen/light/set"
FRONT_DOOR = "demo/hallway/lock/set"

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")


class Socket:
    """HA's websocket API, authenticated, one command at a time (``websockets``' sync client)."""

    def __init__(self, ha: HomeAssistant) -> None:
        from websockets.sync.client import connect

        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(f"ws://127.0.0.1:{ha.port}/api/websocket", open_timeout=10, max_size=1 << 22))
        assert json.loads(self.ws.recv(10))["type"] == "auth_required"
        self.ws.send(json.dumps({"type": "auth", "access_token": ha.token}))
        assert json.loads(self.ws.recv(10))["type"] == "auth_ok"
        self.next_id = 1

    def send(self, message: dict[str, Any]) -> int:
        ident = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": ident, **message}))
        return ident

    def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout))

    def command(self, message: dict[str, Any]) -> Any:
        ident = self.send(message)
        while True:
            reply = self.recv()
            if reply.get("id") == ident and reply["type"] == "result":
                assert reply["success"], reply
                return reply["result"]

    def run(self, pipeline: str, *, text: str | None = None, audio: bytes | None = None,
            conversation_id: str | None = None) -> list[dict[str, Any]]:
        """One pipeline run to its end; its events (type, data) in order."""
        message: dict[str, Any] = {"type": "assist_pipeline/run", "pipeline": pipeline, "end_stage": "intent",
                                   "conversation_id": conversation_id}
        if text is not None:
            message.update(start_stage="intent", input={"text": text})
        else:
            message.update(start_stage="stt", input={"sample_rate": 16000})
        ident = self.send(message)
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reply = self.recv()
            if reply.get("id") != ident:
                continue
            if reply["type"] == "result":
                assert reply["success"], reply
                continue
            event = reply["event"]
            events.append(event)
            if event["type"] == "run-start" and audio is not None:
                handler = bytes([event["data"]["runner_data"]["stt_binary_handler_id"]])
                for i in range(0, len(audio), 1024):  # 32 ms a message, as a microphone streams
                    self.ws.send(handler + audio[i:i + 1024])
                self.ws.send(handler)  # an empty chunk: the end of the audio
            if event["type"] in ("run-end", "error"):
                return events
        raise AssertionError(f"the pipeline run did not end: {events}")

    def close(self) -> None:
        self._stack.close()


@dataclass
class Setup:
    ha: HomeAssistant
    served: Served
    watcher: Watcher
    socket: Socket
    entry: dict[str, Any]
    pipeline: str
    stt: str
    conversation: str
    tts: str
    satellite: str

    def demo_commands(self, since: int) -> list[tuple[str, bytes]]:
        return [(m.topic, m.payload) for m in self.watcher.since(since) if m.topic.startswith("demo/")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if not (_venv(RELEASE) / "bin" / "hass").exists():
        pytest.skip(f"no Home Assistant {RELEASE} venv in {_venv(RELEASE)}: run scripts/ha_core_env")
    tmp = tmp_path_factory.mktemp("ha-wyoming")
    ha = HomeAssistant(RELEASE, tmp / "ha-config", free_port())
    with Broker(tmp) as broker, served(tmp, broker, serve=("asr", "handle", "tts"), synthesizer=_piper(),
                                       satellite=True) as parts:
        watcher = Watcher(broker, topics=("demo/#",), client_id="interop-wyoming")
        socket: Socket | None = None
        try:
            ha.start()
            ha.onboard()
            entry = add_wyoming(ha, parts.port)
            socket = Socket(ha)
            entities = _wait(lambda: _our_entities(socket), 30)
            assert entities, socket.command({"type": "config/entity_registry/list"})
            stt, conversation, tts = entities
            pipeline = socket.command({
                "type": "assist_pipeline/pipeline/create", "name": "Assistant over Wyoming",
                "language": "en", "conversation_engine": conversation, "conversation_language": "en",
                "stt_engine": stt, "stt_language": "en", "tts_engine": tts, "tts_language": "en",
                "tts_voice": "assistant-en", "wake_word_entity": None, "wake_word_id": None,
            })["id"]
            # a satellite runs the pipeline its "Assistant" select names: "preferred" by default
            socket.command({"type": "assist_pipeline/pipeline/set_preferred", "pipeline_id": pipeline})
            assert parts.satellite is not None
            satellite_entry = add_wyoming(ha, parts.satellite.port)
            assert satellite_entry["title"] == "assistant", satellite_entry  # HA names it after our satellite
            satellite = _wait(lambda: _entity(socket, "assist_satellite"), 30)
            assert satellite, socket.command({"type": "config/entity_registry/list"})
            yield Setup(ha, parts, watcher, socket, entry, pipeline, stt, conversation, tts, satellite)
        finally:
            if socket is not None:
                socket.close()
            ha.stop()
            print(f"\nHA {RELEASE} with our Wyoming server: started in {ha.started_s:.1f} s")
            for line in ha.all_problems():
                print(f"HA {RELEASE} log: {line}")
            watcher.close()


def add_wyoming(ha: HomeAssistant, port: int) -> dict[str, Any]:
    """HA's wyoming config flow, user step: host and port; the entry it creates."""
    flow = ha.request("POST", "/api/config/config_entries/flow", {"handler": "wyoming"})
    assert flow["type"] == "form" and flow["step_id"] == "user", flow
    flow = ha.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                      {"host": "127.0.0.1", "port": port})
    assert flow["type"] == "create_entry", flow
    return flow


def _our_entities(socket: Socket) -> tuple[str, str, str] | None:
    """The stt, conversation and tts entities of the wyoming entry, once HA has all three."""
    registry = socket.command({"type": "config/entity_registry/list"})
    found = {e["entity_id"].split(".")[0]: e["entity_id"] for e in registry if e["platform"] == "wyoming"}
    if "stt" in found and "conversation" in found and "tts" in found:
        return found["stt"], found["conversation"], found["tts"]
    return None


def _entity(socket: Socket, domain: str) -> str | None:
    registry = socket.command({"type": "config/entity_registry/list"})
    return next((e["entity_id"] for e in registry if e["platform"] == "wyoming"
                 and e["entity_id"].startswith(domain + ".")), None)


def _speech(text: str) -> bytes:
    quiet = np.zeros(8000, dtype=np.int16).tobytes()
    return quiet + piper16(text) + np.zeros(24000, dtype=np.int16).tobytes()


def _spoken(events: list[dict[str, Any]]) -> str:
    ends = [e for e in events if e["type"] == "intent-end"]
    assert ends, events
    return str(ends[0]["data"]["intent_output"]["response"]["speech"]["plain"]["speech"])


# --------------------------------------------------------------------------- tests


def test_the_config_flow_adds_our_server_with_its_speech_to_text_and_conversation_agent(setup: Setup) -> None:
    assert setup.entry["title"] == "assistant-phrase"  # HA names the entry after our asr program
    assert setup.stt.startswith("stt.") and setup.conversation.startswith("conversation.")
    assert setup.ha.wait_state(setup.conversation, lambda s: s is not None and s != "unavailable", 10)
    assert [line for line in setup.ha.all_problems() if "wyoming" in line.lower()] == []


def test_a_text_pipeline_on_our_handle_acts_through_the_router(setup: Setup) -> None:
    watcher, mark = setup.watcher, setup.watcher.mark()
    on = setup.socket.run(setup.pipeline, text="Turn on the kitchen light")
    assert _spoken(on), on
    assert watcher.wait(lambda m: m.topic == KITCHEN and m.payload == b"ON", since=mark, timeout=10)
    off = setup.socket.run(setup.pipeline, text="turn off the kitchen light")
    assert watcher.wait(lambda m: m.topic == KITCHEN and m.payload == b"OFF", since=mark, timeout=10)
    assert _spoken(off)
    refused = setup.socket.run(setup.pipeline, text="what is the meaning of life")
    response = next(e for e in refused if e["type"] == "intent-end")["data"]["intent_output"]["response"]
    assert response["response_type"] == "error" and response["data"]["code"] == "failed_to_handle", response
    time.sleep(0.3)
    assert setup.demo_commands(mark) == [(KITCHEN, b"ON"), (KITCHEN, b"OFF")]


def test_a_sensitive_action_asked_through_home_assistant_runs_on_the_next_turns_yes(setup: Setup) -> None:
    watcher, mark = setup.watcher, setup.watcher.mark()
    asked = setup.socket.run(setup.pipeline, text="unlock the front door")
    assert "front door" in _spoken(asked).lower()
    time.sleep(0.3)
    assert setup.demo_commands(mark) == []
    conversation_id = next(e for e in asked if e["type"] == "intent-end")["data"]["intent_output"][
        "conversation_id"]
    setup.socket.run(setup.pipeline, text="yes", conversation_id=conversation_id)
    assert watcher.wait(lambda m: m.topic == FRONT_DOOR, since=mark, timeout=10)


def test_an_audio_pipeline_hears_through_our_asr_and_acts_through_our_handle(setup: Setup) -> None:
    watcher, mark = setup.watcher, setup.watcher.mark()
    events = setup.socket.run(setup.pipeline, audio=_speech("Turn on the bedroom light."))
    stt = [e for e in events if e["type"] == "stt-end"]
    assert stt and stt[0]["data"]["stt_output"]["text"] == "turn on the bedroom light", events
    assert watcher.wait(lambda m: m.topic == "demo/bedroom/light/set" and m.payload == b"ON", since=mark,
                        timeout=10)
    assert _spoken(events)
    # speech it would not act on: our asr gives no text, HA ends the run there, nothing happens
    mark = watcher.mark()
    events = setup.socket.run(setup.pipeline, audio=_speech("My grandmother grew tomatoes every summer."))
    errors = [e["data"]["code"] for e in events if e["type"] == "error"]
    assert errors == ["stt-no-text-recognized"], events
    assert not [e for e in events if e["type"] == "intent-start"]
    time.sleep(0.3)
    assert setup.demo_commands(mark) == []


class Speaker(SpeakerSink):
    """The speaker sink on a player that takes real time; which sounds and texts it was given."""

    def __init__(self, player: PacedPlayer) -> None:
        super().__init__("espeak", EspeakSynthesizer(), player)
        self.sounds: list[tuple[int, int]] = []
        self.texts: list[str] = []

    def play_pcm(self, pcm: bytes, rate: int, cancel: threading.Event) -> SpeakResult:
        self.sounds.append((rate, len(pcm) // 2))
        return super().play_pcm(pcm, rate, cancel)

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        self.texts.append(text)
        return super().speak(text, cancel)


def _wake_and(command: str) -> bytes:
    """Our wake word, a pause, a command in piper's joe voice, the silence that ends it."""
    return silence(0.4) + espeak16("okay nabu") + silence(0.6) + piper16(command) + silence(1.5)


def test_our_satellite_hands_its_wake_word_turns_to_home_assistants_pipeline_over_our_asr_and_handle(
        setup: Setup, tmp_path: Path) -> None:
    if not (_venv(RELEASE) / "bin" / "ffmpeg").exists():  # HA's tts converts the answer with it
        pytest.skip(f"no ffmpeg in {_venv(RELEASE)}: run scripts/ha_core_env")
    endpoint, watcher, mark = setup.served.satellite, setup.watcher, setup.watcher.mark()
    assert endpoint is not None
    assert _wait(lambda: endpoint.running, 15)  # HA sent run-satellite
    assert setup.ha.wait_state(setup.satellite, "idle", 10)
    runs_before = _runs(setup)
    player = PacedPlayer()
    brain = ScriptedBrain()  # our own brain: it must hear nothing while HA runs the satellite
    speaker = Speaker(player)
    rig = Rig(tmp_path, [], brain, tts=speaker, handoff=endpoint)
    first_done = lambda: any(e.type is EventType.RUN_END for e in rig.log.events)  # noqa: E731
    rig.source.segments = [Segment(_wake_and("Turn on the kitchen light.")),
                           Segment(_wake_and("Turn off the kitchen light."), wait_for=first_done)]
    setup.served.loop.run(rig.orch.run(), timeout=120)

    assert brain.utterances == [] and rig.router.calls == []
    outcomes = [e.data["outcome"] for e in rig.log.events if e.type is EventType.RUN_END]
    assert outcomes == ["ok", "ok"], rig.log.events
    heard = [e.data["text"] for e in rig.log.events if e.type is EventType.TRANSCRIPT]
    assert heard == ["turn on the kitchen light", "turn off the kitchen light"], heard
    # acted on exactly once each, through our router, in order
    assert watcher.wait(lambda m: m.topic == KITCHEN and m.payload == b"OFF", since=mark, timeout=10)
    time.sleep(0.3)
    assert setup.demo_commands(mark) == [(KITCHEN, b"ON"), (KITCHEN, b"OFF")]
    # HA's spoken answers (its tts stage: our voice) played on our speaker side
    answers = [e.data["text"] for e in rig.log.events if e.type is EventType.TTS_START]
    assert len(answers) == 2 and all(answers), answers
    assert [rate for rate, _ in speaker.sounds] == [22050, 22050] and speaker.texts == [], speaker.sounds
    assert all(samples > 0.3 * rate for rate, samples in speaker.sounds), speaker.sounds
    assert sum(player.played) == sum(samples for _, samples in speaker.sounds)
    assert setup.ha.wait_state(setup.satellite, "idle", 10)  # our played ended HA's response
    # and HA's own record of the runs: from our satellite's audio, our stt, our conversation, our tts
    runs = _runs(setup)[-2:]  # HA keeps the last few runs of a pipeline
    assert len(runs) == 2 and not set(runs) & set(runs_before), (runs, runs_before)
    for run in runs:
        events = {e["type"]: e.get("data") or {} for e in _run_events(setup, run)}
        assert events["stt-start"]["engine"] == setup.stt, events
        assert events["intent-start"]["engine"] == setup.conversation, events
        assert events["tts-start"]["engine"] == setup.tts, events
        assert "error" not in events, events


def _runs(setup: Setup) -> list[str]:
    listed = setup.socket.command({"type": "assist_pipeline/pipeline_debug/list",
                                   "pipeline_id": setup.pipeline})
    return [r["pipeline_run_id"] for r in listed["pipeline_runs"]]


def _run_events(setup: Setup, run: str) -> list[dict[str, Any]]:
    got = setup.socket.command({"type": "assist_pipeline/pipeline_debug/get", "pipeline_id": setup.pipeline,
                                "pipeline_run_id": run})
    return list(got["events"])


def test_muting_our_satellite_in_home_assistant_gives_the_turns_back_to_our_brain(setup: Setup,
                                                                                 tmp_path: Path) -> None:
    endpoint, mark = setup.served.satellite, setup.watcher.mark()
    assert endpoint is not None
    assert _wait(lambda: endpoint.running, 15)
    mute = _entity(setup.socket, "switch")
    assert mute is not None and "mute" in mute, mute
    runs_before = _runs(setup)
    setup.ha.call("switch", "turn_on", {"entity_id": mute})
    paused_at = time.monotonic()
    try:
        assert _wait(lambda: not endpoint.running, 10)  # HA sent pause-satellite
        brain = ScriptedBrain(tool_reply("Turned on the kitchen light."))
        rig = Rig(tmp_path, [Segment(_wake_and("Turn on the kitchen light."))], brain, handoff=endpoint)
        setup.served.loop.run(rig.orch.run(), timeout=60)
        assert len(brain.utterances) == 1 and [c.name for c in rig.router.calls] == ["HassTurnOn"]
        assert rig.sink.spoken == ["Turned on the kitchen light."]  # our own voice
    finally:
        # HA leaves its pipeline loop at the next pong (it pings 2 s after each): unmuted before
        # that, it carries on with the paused connection and never sends run-satellite again
        # (as a wyoming-satellite, we then stay paused). Give it the time a person would.
        time.sleep(max(0.0, 3.0 - (time.monotonic() - paused_at)))
        setup.ha.call("switch", "turn_off", {"entity_id": mute})
    assert _runs(setup) == runs_before  # HA ran nothing for it
    time.sleep(0.3)
    assert setup.demo_commands(mark) == []  # only our (fake) router saw the command
    assert _wait(lambda: endpoint.running, 20)  # unmuted: HA reconnects and runs the satellite again


def test_an_announcement_from_home_assistant_plays_on_our_speaker(setup: Setup, tmp_path: Path) -> None:
    if not (_venv(RELEASE) / "bin" / "ffmpeg").exists():  # HA reads the announcement with it
        pytest.skip(f"no ffmpeg in {_venv(RELEASE)}: run scripts/ha_core_env")
    endpoint = setup.served.satellite
    assert endpoint is not None and _wait(lambda: endpoint.running, 20)
    speaker = Speaker(PacedPlayer())
    rig = Rig(tmp_path, [], ScriptedBrain(), tts=speaker)
    announced = threading.Event()
    took: list[float] = []

    def announce() -> None:  # HA's service call returns once the satellite is done
        started = time.monotonic()
        setup.ha.call("assist_satellite", "announce", {"entity_id": setup.satellite,
                                                       "message": "Dinner is ready.", "preannounce": False})
        took.append(time.monotonic() - started)
        announced.set()

    rig.source.segments = [Segment(silence(0.1), wait_for=announced.is_set)]  # runs until HA is done
    endpoint.announce = rig.orch.inbox.post  # what the supervisor wires for the daemon
    caller = threading.Thread(target=announce, daemon=True)
    try:
        caller.start()
        setup.served.loop.run(rig.orch.run(), timeout=60)
    finally:
        endpoint.announce = None
        caller.join(10)
    assert speaker.texts == [] and len(speaker.sounds) == 1, (speaker.sounds, speaker.texts)
    rate, samples = speaker.sounds[0]
    assert rate == 22050 and samples > 0.5 * rate, speaker.sounds  # our voice saying it, through HA
    assert took and took[0] >= samples / rate, took  # HA waited for it to be played
    outcomes = [e.data["outcome"] for e in rig.log.events if e.type is EventType.RUN_END]
    assert outcomes == ["announced"], outcomes
