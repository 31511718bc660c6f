"""Our Wyoming satellite endpoint, driven by the real ``wyoming`` package's client as HA drives it.

The client side plays Home Assistant 2025.4's wyoming integration
(``homeassistant/components/wyoming/assist_satellite.py``, read for the events and their
order): ``run-satellite``, ``describe``, pings, ``pause-satellite``; for a turn it reads our
``run-pipeline`` and microphone chunks up to ``audio-stop`` and answers with its pipeline's
events (``transcribe``, ``voice-started``, ``voice-stopped``, ``transcript``,
``synthesize``, the answer's ``audio-start`` / ``audio-chunk``... / ``audio-stop``, or an
``error``), then waits for ``played``. The real HA runs against it in
tests/interop/test_interop_wyoming_satellite.py. Last, the orchestrator with the endpoint
as its handoff: a wake-word turn goes to HA while HA runs the satellite, and to our brain
once HA has gone, never to both.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import PauseSatellite, RunSatellite
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped

from assistant.config import ConfigError, WyomingServerSettings, parse_settings
from assistant.handoff import HandedOff
from assistant.inbox import Announce
from assistant.tts import SpeakerSink
from assistant.tts.espeak import EspeakSynthesizer
from assistant.types import EventType, Utterance
from assistant.wyoming.satellite import SatelliteEndpoint, SatelliteLimits
from tests.support.pipeline import PacedPlayer, ScriptedBrain, Segment, espeak16, piper16, silence, tool_reply
from tests.support.rig import Rig

SPEECH = b"".join(int(v).to_bytes(2, "little", signed=True) for v in range(-3000, 3000, 3)) * 3  # ~0.4 s
ANSWER_RATE = 22050
ANSWER = (np.sin(np.arange(ANSWER_RATE // 4) / 8) * 8000).astype("<i2").tobytes()  # 0.25 s of tone


def _utterance(pcm: bytes = SPEECH) -> Utterance:
    return Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source="mic", site="kitchen",
                     ended_at=time.monotonic())


def _endpoint(**limits: Any) -> SatelliteEndpoint:
    return SatelliteEndpoint(WyomingServerSettings(host="127.0.0.1", satellite_port=0, serve=("satellite",)),
                             version="9.9-test", area="kitchen", limits=SatelliteLimits(**limits))


async def _within(condition: Callable[[], bool], limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "condition never met"
        await asyncio.sleep(0.01)


class HomeAssistantSide:
    """The real wyoming client, doing what HA's assist satellite does on its connection."""

    def __init__(self, endpoint: SatelliteEndpoint) -> None:
        self.endpoint = endpoint
        self.client = AsyncTcpClient("127.0.0.1", endpoint.port)

    async def connect(self, *, run: bool = True) -> HomeAssistantSide:
        await self.client.connect()
        if run:
            await self.client.write_event(RunSatellite().event())
            await _within(lambda: self.endpoint.running)
        return self

    async def read(self, kind: str, limit_s: float = 5.0) -> Event:
        """The next event of ``kind`` (others skipped)."""
        async with asyncio.timeout(limit_s):
            while True:
                event = await self.client.read_event()
                assert event is not None, f"disconnected while waiting for {kind}"
                if event.type == kind:
                    return event

    async def hear_turn(self) -> tuple[RunPipeline, bytes]:
        """Our run-pipeline and the microphone audio up to audio-stop."""
        run = RunPipeline.from_event(await self.read("run-pipeline"))
        heard = bytearray()
        while True:
            event = await self.read_any()
            if event.type == "audio-stop":
                return run, bytes(heard)
            assert event.type == "audio-chunk", event
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (16000, 2, 1)
            heard += chunk.audio

    async def read_any(self, limit_s: float = 5.0) -> Event:
        async with asyncio.timeout(limit_s):
            event = await self.client.read_event()
        assert event is not None, "disconnected"
        return event

    async def answer(self, transcript: str, reply: str, audio: bytes = ANSWER,
                     rate: int = ANSWER_RATE) -> None:
        """The events HA's pipeline forwards, in its order, for a turn that ends in speech."""
        for event in (Transcribe(language="en").event(), VoiceStarted(timestamp=0).event(),
                      VoiceStopped(timestamp=400).event(), Transcript(text=transcript).event(),
                      Synthesize(text=reply).event(), AudioStart(rate=rate, width=2, channels=1).event()):
            await self.client.write_event(event)
        for at in range(0, len(audio), 2048):
            chunk = AudioChunk(rate=rate, width=2, channels=1, audio=audio[at:at + 2048])
            await self.client.write_event(chunk.event())
        await self.client.write_event(AudioStop().event())

    async def close(self) -> None:
        await self.client.disconnect()


def _run(scenario: Callable[[SatelliteEndpoint], Awaitable[None]], **limits: Any) -> None:
    async def main() -> None:
        endpoint = _endpoint(**limits)
        await endpoint.start()
        try:
            await asyncio.wait_for(scenario(endpoint), 20)
        finally:
            await endpoint.stop()

    asyncio.run(main())


def _take(endpoint: SatelliteEndpoint, pcm: bytes = SPEECH) -> asyncio.Task[HandedOff | None]:
    return asyncio.ensure_future(endpoint.take(_utterance(pcm), threading.Event()))


# --------------------------------------------------------------------------- the endpoint


def test_describe_offers_a_satellite_and_nothing_else_with_our_name_and_version() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect(run=False)
        await ha.client.write_event(Describe().event())
        info = Info.from_event(await ha.read("info"))
        assert info.satellite is not None and info.satellite.installed  # HA takes the entry for a satellite
        assert (info.satellite.name, info.satellite.version, info.satellite.area) == ("assistant", "9.9-test",
                                                                                      "kitchen")
        assert "English" in (info.satellite.description or "")
        assert info.asr == [] and info.handle == [] and info.tts == [] and info.wake == []
        await ha.client.write_event(Ping(text="p").event())
        assert (await ha.read("pong")).data == {"text": "p"}
        await ha.close()

    _run(scenario)


def test_turns_go_to_home_assistant_as_a_pipeline_from_asr_to_tts_and_its_spoken_answer_comes_back() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect()
        for n in range(3):
            speech = SPEECH[: len(SPEECH) - 2 * 100 * n]  # each turn its own length
            taken = _take(endpoint, speech)
            run, heard = await ha.hear_turn()
            assert (run.start_stage, run.end_stage) == (PipelineStage.ASR, PipelineStage.TTS)
            assert heard == speech  # every sample, in order, in 16 kHz 16-bit mono chunks
            await ha.client.write_event(Ping().event())  # HA's pings go on through a turn
            await ha.answer(f"turn {n} on", f"Turned on {n}.")
            handed = await taken
            assert handed == HandedOff(f"turn {n} on", f"Turned on {n}.", ANSWER, ANSWER_RATE)
            await endpoint.played()
            await ha.read("played")
        await ha.close()

    _run(scenario)


def test_no_connection_or_a_paused_satellite_leaves_the_turn_to_our_brain() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        assert await endpoint.take(_utterance(), threading.Event()) is None  # nobody there
        ha = await HomeAssistantSide(endpoint).connect(run=False)
        await ha.client.write_event(Describe().event())
        await ha.read("info")
        assert await endpoint.take(_utterance(), threading.Event()) is None  # connected, not run yet
        await ha.client.write_event(RunSatellite().event())
        await _within(lambda: endpoint.running)
        taken = _take(endpoint)
        await ha.hear_turn()
        await ha.answer("hi", "Hello.")
        assert (await taken) is not None
        await ha.client.write_event(PauseSatellite().event())  # HA's mute switch
        await _within(lambda: not endpoint.running)
        assert await endpoint.take(_utterance(), threading.Event()) is None
        await ha.client.write_event(RunSatellite().event())
        await _within(lambda: endpoint.running)
        await ha.close()
        await _within(lambda: not endpoint.running)
        assert await endpoint.take(_utterance(), threading.Event()) is None  # HA went away

    _run(scenario)


def test_a_connection_that_went_silent_is_not_trusted_with_a_turn() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect()  # and then no ping: a host that vanished
        await asyncio.sleep(0.4)
        assert endpoint.running and await endpoint.take(_utterance(), threading.Event()) is None
        await ha.client.write_event(Ping().event())  # HA's next ping: trusted again
        await ha.read("pong")
        taken = _take(endpoint)
        await ha.hear_turn()
        await ha.answer("hi", "Hello.")
        assert (await taken) is not None
        await ha.close()

    _run(scenario, stale_after_s=0.3)


def test_a_connection_lost_after_the_hand_over_ends_the_turn_without_an_answer_nor_a_fallback() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect()
        taken = _take(endpoint)
        await ha.read("run-pipeline")  # HA has the turn: it may act on what it heard
        await ha.close()
        handed = await taken
        assert handed is not None and handed.code == "ha_satellite_lost" and not handed.audio, handed
        assert await endpoint.take(_utterance(), threading.Event()) is None  # the next turn is ours again
        again = await HomeAssistantSide(endpoint).connect()  # HA reconnects
        taken = _take(endpoint)
        await again.hear_turn()
        await again.answer("back", "Back.")
        assert (await taken) == HandedOff("back", "Back.", ANSWER, ANSWER_RATE)
        await again.close()

    _run(scenario)


def test_home_assistant_errors_and_bad_answers_end_the_turn_with_a_reason() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect()

        async def turn(*events: Event) -> HandedOff:
            taken = _take(endpoint)
            await ha.hear_turn()
            for event in events:
                await ha.client.write_event(event)
            handed = await taken
            assert handed is not None
            return handed

        failed = await turn(Error(text="No text recognized", code="stt-no-text-recognized").event())
        assert failed.code == "ha_pipeline_failed" and "stt-no-text-recognized" in (failed.problem or "")
        wide = await turn(Transcript(text="x").event(), AudioStart(rate=22050, width=4, channels=1).event())
        assert wide.code == "wyoming_bad_event" and wide.transcript == "x"
        big = await turn(AudioStart(rate=8000, width=2, channels=1).event(),
                         *[AudioChunk(rate=8000, width=2, channels=1, audio=bytes(16000)).event()] * 12)
        assert big.code == "wyoming_too_large", big  # over max_answer_s (1 s at 48 kHz)
        late = await turn(Synthesize(text="Done.").event())  # the text, and then no speech
        assert late.code == "ha_satellite_lost" and late.reply == "Done."
        assert "no sound" in (late.problem or "")
        silent = await turn()  # nothing at all
        assert silent.code == "ha_satellite_lost" and not silent.reply
        assert "no answer" in (silent.problem or "")
        assert endpoint.running  # none of it ended the connection
        await ha.close()

    _run(scenario, max_answer_s=1.0, answer_timeout_s=0.5, speech_timeout_s=0.3)


def test_what_is_not_a_wyoming_event_gets_an_error_and_a_disconnect_and_the_endpoint_serves_on() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        ha = await HomeAssistantSide(endpoint).connect()
        taken = _take(endpoint)
        await ha.read("run-pipeline")
        for raw, code in ((b"not json\n", "wyoming_bad_event"),
                          (b'{"type": "audio-chunk", "payload_length": 99999999}\n', "wyoming_too_large")):
            reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)  # replaces HA's link
            writer.write(raw)
            await writer.drain()
            header = await asyncio.wait_for(reader.readline(), 5)
            assert b'"error"' in header and code.encode() in header + await reader.read(4096), header
            writer.close()
        handed = await taken  # the turn's connection was replaced: it ends, nothing falls back
        assert handed is not None and handed.code == "ha_satellite_lost"
        assert endpoint.refused == 2
        ha = await HomeAssistantSide(endpoint).connect()  # and HA's reconnect is served as ever
        taken = _take(endpoint)
        await ha.hear_turn()
        await ha.answer("ok", "Okay.")
        assert (await taken) is not None
        await ha.close()

    _run(scenario)


def test_an_announcement_goes_to_the_inbox_and_played_follows_its_end() -> None:
    async def scenario(endpoint: SatelliteEndpoint) -> None:
        posted: list[Announce] = []
        endpoint.announce = posted.append
        ha = await HomeAssistantSide(endpoint).connect()

        async def announce(audio: bytes, rate: int = ANSWER_RATE) -> None:  # as HA's async_announce
            await ha.client.write_event(AudioStart(rate=rate, width=2, channels=1, timestamp=0).event())
            for at in range(0, len(audio), 2048):
                chunk = AudioChunk(rate=rate, width=2, channels=1, audio=audio[at:at + 2048])
                await ha.client.write_event(chunk.event())
            await ha.client.write_event(AudioStop().event())

        await announce(ANSWER)
        await _within(lambda: len(posted) == 1)
        assert (posted[0].text, posted[0].sound, posted[0].rate) == ("", ANSWER, ANSWER_RATE)
        with pytest.raises(TimeoutError):
            await ha.read("played", limit_s=0.2)  # not before it was played
        assert posted[0].done is not None
        posted[0].done()
        await ha.read("played")
        await announce(bytes(3), rate=22050)  # half a sample: not played, acknowledged at once
        await ha.read("played")
        endpoint.announce = None
        await announce(ANSWER)  # nobody to play it: acknowledged at once
        await ha.read("played")
        assert len(posted) == 1 and endpoint.running
        await ha.close()

    _run(scenario)


def test_the_satellite_port_must_differ_from_the_server_port() -> None:
    settings = parse_settings("wyoming:\n  server:\n    serve: [asr, handle, tts, satellite]\n")
    assert settings.wyoming.server is not None and settings.wyoming.server.satellite_port == 10700
    with pytest.raises(ConfigError) as caught:
        parse_settings("wyoming:\n  server:\n    port: 10700\n    serve: [satellite]\n")
    assert "wyoming.server.satellite_port" in str(caught.value) and "must differ" in str(caught.value)


# --------------------------------------------------------------------------- the daemon


class HeadStartBrain(ScriptedBrain):
    """A scripted brain that would decode ahead (``Streaming``, ``Prefetching``): counts its head starts."""

    def __init__(self, *steps: Any) -> None:
        super().__init__(*steps)
        self.streams = 0
        self.prefetches = 0

    def prefetch(self, pcm: bytes, router: Any) -> None:
        self.prefetches += 1

    def begin_stream(self, site: str = "default", router: Any = None) -> HeadStartBrain:
        self.streams += 1
        return self

    def feed(self, pcm: bytes) -> None:
        pass

    def finish(self, utterance: Utterance, router: Any, cancel: threading.Event) -> Any:
        return self.handle(utterance, router, cancel)

    def abort(self) -> None:
        pass


def _run_daemon(endpoint: SatelliteEndpoint, rig: Rig, home_assistant: Callable[[], Awaitable[None]]) -> None:
    """The endpoint and the rig's orchestrator running, with ``home_assistant`` on the other side."""

    async def main() -> None:
        await endpoint.start()
        ha = asyncio.ensure_future(home_assistant())
        try:
            await asyncio.wait_for(rig.orch.run(), 30)
            await asyncio.wait_for(ha, 5)
        finally:
            await endpoint.stop()

    asyncio.run(main())


def _command() -> bytes:
    command = espeak16("turn on the kitchen light")
    return silence(0.4) + espeak16("okay nabu") + silence(0.6) + command + silence(1.5)


def test_the_orchestrator_hands_a_wake_word_turn_to_home_assistant_and_takes_it_back_when_ha_is_gone(
        tmp_path: Path) -> None:
    player = PacedPlayer()
    sink = SpeakerSink("espeak", EspeakSynthesizer(), player)
    endpoint = _endpoint()
    gone = threading.Event()
    brain = HeadStartBrain(tool_reply("Turned on the kitchen light."))
    segments = [Segment(_command()), Segment(_command(), wait_for=gone.is_set, label="second")]
    rig = Rig(tmp_path, segments, brain, tts=sink, handoff=endpoint)
    heard: list[bytes] = []
    played_first: list[int] = []

    async def home_assistant() -> None:
        ha = await HomeAssistantSide(endpoint).connect()
        _, pcm = await ha.hear_turn()
        heard.append(pcm)
        await ha.answer("turn on the kitchen light", "Turned on the light.")
        await ha.read("played")  # after our speaker played the answer
        played_first.append(sum(player.played))
        await ha.close()
        await _within(lambda: not endpoint.running)
        gone.set()

    _run_daemon(endpoint, rig, home_assistant)
    assert len(heard) == 1 and 1.0 < len(heard[0]) / 32000 < 4.0  # the command, as our VAD cut it
    assert len(brain.utterances) == 1 and len(rig.router.calls) == 1  # only the second turn was ours
    assert brain.streams == 1 and brain.prefetches == 1  # and no head start on HA's turn: HA needs the cores
    transcripts = [e.data["text"] for e in rig.log.events if e.type is EventType.TRANSCRIPT]
    assert transcripts[0] == "turn on the kitchen light"
    spoken = [e.data["text"] for e in rig.log.events if e.type is EventType.TTS_START]
    assert spoken == ["Turned on the light.", "Turned on the kitchen light."]
    # the speaker played HA's answer sample for sample (before played went to HA), then our own reply
    assert played_first == [len(ANSWER) // 2] and sum(player.played) > len(ANSWER) // 2
    ends = [(e.data["outcome"], e.data["flags"]) for e in rig.log.events if e.type is EventType.RUN_END]
    assert [outcome for outcome, _ in ends] == ["ok", "ok"] and "handed_off" in ends[0][1], ends
    assert "handed_off" not in ends[1][1], ends



class BrokenHandoff:
    """A handoff that fails inside ``take`` (after it may have handed the turn over)."""

    active = True
    played_calls = 0

    async def take(self, utterance: Utterance, cancel: threading.Event) -> HandedOff | None:
        raise RuntimeError("the handoff broke")

    async def played(self) -> None:
        self.played_calls += 1


def test_a_handoff_that_fails_ends_the_turn_and_the_brain_does_not_act_on_it_too(tmp_path: Path) -> None:
    brain = HeadStartBrain(tool_reply("Turned on the kitchen light."))
    handoff = BrokenHandoff()
    rig = Rig(tmp_path, [Segment(_command())], brain, handoff=handoff)
    rig.run()
    assert brain.utterances == [] and rig.router.calls == []
    ends = [e.data["outcome"] for e in rig.log.events if e.type is EventType.RUN_END]
    errors = [e.data["code"] for e in rig.log.events if e.type is EventType.ERROR]
    assert ends == ["error"] and errors == ["ha_satellite_lost"], rig.log.events
    assert "error" in rig.earcons.played
    assert handoff.played_calls == 1  # told it is over, as after any taken turn


def test_a_stop_word_while_home_assistants_answer_plays_cuts_it_and_ha_is_told_it_is_over(
        tmp_path: Path) -> None:
    player = PacedPlayer()
    endpoint = _endpoint()
    long_answer = ANSWER * 24  # 6 s
    rig: Rig | None = None

    def speaking() -> bool:
        return rig is not None and bool(player.played)

    rig = Rig(tmp_path, [Segment(_command()),
                         Segment(silence(0.5) + piper16("hey mycroft") + silence(1.0), wait_for=speaking,
                                 paced=True)],
              ScriptedBrain(), tts=SpeakerSink("espeak", EspeakSynthesizer(), player), handoff=endpoint)
    told: list[float] = []

    async def home_assistant() -> None:
        ha = await HomeAssistantSide(endpoint).connect()
        await ha.hear_turn()
        await ha.answer("turn on the kitchen light", "A long answer.", audio=long_answer)
        await ha.read("played", limit_s=10)
        told.append(time.monotonic())
        await ha.close()

    _run_daemon(endpoint, rig, home_assistant)
    assert player.stopped_at is not None and told and told[0] >= player.stopped_at  # cut, then told
    assert sum(player.played) < len(long_answer) // 4  # well before its end
    (cancel,) = rig.log.of("cancelled")
    assert cancel.data["kind"] == "stop"
