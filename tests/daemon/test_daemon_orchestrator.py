"""The orchestrator end to end in-process: real wake words, segmenter and TTS streaming;
fake brain and router (their own tests live with them) and an in-memory frame source."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.frontend import Segmenter
from assistant.config import Settings, WakeSettings
from assistant.daemon import ERROR_MESSAGE, Orchestrator, State, ThreadedFrameSource
from assistant.errors import AssistantError, TtsError
from assistant.inbox import Announce, PushToTalk, SetVolume, Shutdown, Stop
from assistant.lifecycle import SignalRelay, SystemdStatus, Watchdog
from assistant.tts import SpeakerSink
from assistant.tts.espeak import EspeakSynthesizer
from assistant.types import AudioFrame, BrainTurn, Reply, Utterance
from assistant.wake import WakeDetector
from tests.support.pipeline import (
    FakeRouter,
    MemorySource,
    NotifySocket,
    PacedPlayer,
    RecordingSink,
    ScriptedBrain,
    Segment,
    espeak16,
    failing,
    piper16,
    silence,
    tool_reply,
    until,
)
from tests.support.rig import Rig, rig_settings

make_settings = rig_settings


def command(text: str = "turn on the kitchen light") -> bytes:
    """Wake phrase, a pause, a command, and the silence that ends it."""
    return silence(0.4) + espeak16("okay nabu") + silence(0.6) + espeak16(text) + silence(1.5)


def test_wake_utterance_brain_reply_spoken(tmp_path: Path) -> None:
    command_audio = espeak16("turn on the kitchen light")
    rig = Rig(tmp_path, [Segment(command())], ScriptedBrain(tool_reply("Turned on the kitchen light.")))
    rig.run()
    assert rig.sink.spoken == ["Turned on the kitchen light."]
    assert [c.name for c in rig.router.calls] == ["HassTurnOn"]
    # The brain heard the command alone: not the wake word, not the earcon.
    (utterance,) = rig.brain.utterances
    assert abs(utterance.duration - len(command_audio) / 32000) < 1.0
    assert rig.log.types() == [
        "run-start", "wake-detected", "listen-start", "speech-end", "think-start", "tool-call",
        "tool-result", "think-end", "transcript", "tts-start", "tts-end", "run-end",
    ]
    assert [e.data["state"] for e in rig.log.of("tool-call")] == ["acting"]
    assert rig.earcons.played == ["wake"]
    (end,) = rig.log.of("run-end")
    assert (end.data["outcome"], end.data["state"]) == ("ok", "idle")
    assert set(end.data["timings_ms"]) == {
        "wake_to_end_of_speech", "end_of_speech_to_tool_call", "end_of_speech_to_action",
        "end_of_speech_to_first_audio", "think"}
    assert end.data["counters"]["wakes"] == 1
    assert rig.orch.state is State.IDLE


def test_ordinary_speech_does_not_wake(tmp_path: Path) -> None:
    speech = b"".join(espeak16(t) + silence(0.5) for t in ("turn on the kitchen light", "what time is it"))
    rig = Rig(tmp_path, [Segment(speech)], ScriptedBrain(tool_reply("no")))
    rig.run()
    assert rig.brain.utterances == []
    assert rig.orch.counters.wakes == 0


def test_a_failing_brain_returns_to_idle_and_the_next_utterance_works(tmp_path: Path) -> None:
    brain = ScriptedBrain(failing(), tool_reply("Turned on the kitchen light."))
    rig: Rig | None = None

    def after_failure() -> bool:
        return rig is not None and bool(rig.log.of("error")) and rig.orch.state is State.IDLE

    rig = Rig(tmp_path, [Segment(command()), Segment(command(), wait_for=after_failure)], brain)
    rig.run()
    (error,) = rig.log.of("error")
    assert (error.data["stage"], error.data["code"]) == ("brain", "brain_failed")
    assert rig.sink.spoken == [ERROR_MESSAGE, "Turned on the kitchen light."]
    assert rig.earcons.played == ["wake", "error", "wake"]
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["error", "ok"]
    assert rig.orch.counters.errors == 1
    # The published assist state says so while the apology plays ("error" is advertised to HA).
    assert error.data["state"] == "error"


class EarlyDecodingBrain(ScriptedBrain):
    """Declares Prefetching: records the early-decode calls and reports the flag when used."""

    def __init__(self, *steps: Any) -> None:
        super().__init__(*steps)
        self.prefetched: list[int] = []

    def prefetch(self, pcm: bytes, router: Any) -> None:
        self.prefetched.append(len(pcm))

    def handle(self, utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        turn = super().handle(utterance, router, cancel)
        return dataclasses.replace(turn, flags=frozenset({"prefetched"}) if self.prefetched else frozenset(),
                                   counts={"decode_steps": 3})


def test_the_early_decode_starts_before_the_endpointer_and_its_flag_is_published(tmp_path: Path) -> None:
    brain = EarlyDecodingBrain(tool_reply("Turned on the kitchen light."))
    rig = Rig(tmp_path, [Segment(command())], brain)
    rig.run()
    assert len(brain.prefetched) == 1  # one guess per quiet stretch, before the utterance closed
    (end,) = rig.log.of("run-end")
    assert end.data["flags"] == {"prefetched": True}
    assert end.data["counts"] == {"decode_steps": 3}
    assert "prefetched" not in end.data["timings_ms"]


def test_a_cough_after_the_wake_does_not_use_up_the_listen_timeout(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cough = rng.normal(0, 6000, int(0.12 * 16000)).astype("<i2").tobytes()  # shorter than an utterance
    brain = ScriptedBrain(tool_reply("x"))
    settings = make_settings(tmp_path)
    timeout_s = settings.vad.no_speech_timeout_s
    audio = silence(0.4) + espeak16("okay nabu") + silence(0.6) + cough + silence(timeout_s + 1.5)
    rig = Rig(tmp_path, [Segment(audio)], brain, settings=settings)
    rig.run()
    assert brain.utterances == []
    (timeout,) = rig.log.of("listen-timeout")
    assert timeout.data["reason"] == "wake"
    assert rig.orch.counters.listen_timeouts == 1


def test_confirmation_question_listens_without_wake_word(tmp_path: Path) -> None:
    brain = ScriptedBrain(
        tool_reply("Do you want me to unlock the front door?", tool="HassTurnOff", expects_answer=True),
        tool_reply("Unlocked the front door."),
    )
    rig: Rig | None = None

    def asked() -> bool:
        starts = rig.log.of("listen-start") if rig is not None else []
        return any(e.data.get("reason") == "confirmation" for e in starts)

    rig = Rig(tmp_path, [Segment(command("unlock the front door")),
                         Segment(espeak16("yes") + silence(1.5), wait_for=asked)], brain)
    rig.run()
    assert len(brain.utterances) == 2
    assert rig.orch.counters.wakes == 1
    assert [e.data["reason"] for e in rig.log.of("listen-start")] == ["wake", "confirmation"]
    assert rig.log.of("confirmation-requested")[0].data["question"].startswith("Do you want")
    assert rig.sink.spoken[-1] == "Unlocked the front door."


def test_confirmation_silence_cancels_through_the_router(tmp_path: Path) -> None:
    brain = ScriptedBrain(tool_reply("Do you want me to open the garage?", expects_answer=True))
    rig: Rig | None = None

    def asked() -> bool:
        return rig is not None and rig.orch.state is State.LISTENING and len(brain.utterances) == 1

    settings_timeout = make_settings(tmp_path).vad.no_speech_timeout_s
    rig = Rig(tmp_path, [Segment(command("open the garage")),
                         Segment(silence(settings_timeout + 1.0), wait_for=asked)], brain)
    rig.run()
    assert len(brain.utterances) == 1
    assert rig.log.of("listen-timeout")[0].data["reason"] == "confirmation"
    assert rig.router.answers == [None]


def test_stop_word_while_speaking_cancels_speech_within_300_ms(tmp_path: Path) -> None:
    player = PacedPlayer()
    sink = SpeakerSink("espeak", EspeakSynthesizer(), player)
    long_reply = " ".join(f"This is sentence {i} of a long answer." for i in range(10))
    stop_word = piper16("hey mycroft")
    rig: Rig | None = None

    def speaking() -> bool:
        return rig is not None and rig.orch.state is State.SPEAKING and bool(player.played)

    rig = Rig(tmp_path, [
        Segment(command(), paced=False),
        Segment(silence(0.5) + stop_word + silence(1.0), wait_for=speaking, label="stop", paced=True),
    ], ScriptedBrain(tool_reply(long_reply)), tts=sink)
    rig.run()
    assert player.stopped_at is not None, "speech was not cancelled"
    stop_word_end = rig.source.starts["stop"] + 0.5 + len(stop_word) / 32000
    cancelled_stream_time = rig.source.stream_time_at(player.stopped_at)
    assert cancelled_stream_time - stop_word_end <= 0.3
    (cancel,) = rig.log.of("cancelled")
    assert (cancel.data["word"], cancel.data["kind"]) == ("hey_mycroft", "stop")
    assert rig.log.of("run-end")[-1].data["outcome"] == "cancelled"
    assert len(rig.brain.utterances) == 1  # the assistant did not listen to itself or the stop word
    assert rig.orch.counters.cancelled_wakes == 1


def test_wake_word_while_thinking_cancels_generation_and_listens_again(tmp_path: Path) -> None:
    saw_cancel = threading.Event()
    started = threading.Event()

    def slow_generation(utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        started.set()
        if cancel.wait(10):
            saw_cancel.set()
        return BrainTurn(None, (), (), Reply("too late"), understood=False)

    brain = ScriptedBrain(slow_generation, tool_reply("Second answer."))
    rig = Rig(tmp_path, [Segment(command()), Segment(command(), wait_for=started.is_set)], brain)
    rig.run()
    assert saw_cancel.is_set()
    assert rig.sink.spoken == ["Second answer."]
    assert rig.orch.counters.wakes == 2
    assert rig.log.of("cancelled")[0].data["kind"] == "wake"


def test_stuck_audio_stops_watchdog_pings(tmp_path: Path, notify_socket: NotifySocket) -> None:
    rig = Rig(tmp_path, [Segment(silence(1.0), paced=True)], ScriptedBrain(tool_reply("x")), hang=True,
              frame_stall_s=0.3, status=SystemdStatus())
    result: dict[str, list[str]] = {}

    async def scenario() -> None:
        task = asyncio.create_task(rig.orch.run())
        watchdog = asyncio.create_task(Watchdog(rig.orch.health_problem, interval_s=0.05).run())
        await asyncio.sleep(0.6)  # audio flows
        result["healthy"] = notify_socket.drain()
        await until(rig.source.hung.is_set)
        await asyncio.sleep(0.3 + 0.2)  # the stall bound passes
        notify_socket.drain()
        await asyncio.sleep(0.6)
        result["stuck"] = notify_socket.drain()
        rig.orch.inbox.post(Shutdown())
        await asyncio.wait_for(task, 3)
        watchdog.cancel()
        result["stop"] = notify_socket.drain()

    asyncio.run(scenario())
    assert result["healthy"][0].startswith("READY=1")
    assert result["healthy"].count("WATCHDOG=1") >= 3
    assert "WATCHDOG=1" not in result["stuck"]
    assert any(m.startswith("STOPPING=1") for m in result["stop"])


def test_stuck_brain_stops_watchdog_pings(tmp_path: Path, notify_socket: NotifySocket) -> None:
    release = threading.Event()

    def stuck(utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        release.wait(5)  # ignores cancel: a hung decoder
        return BrainTurn(None, (), (), Reply(""))

    rig = Rig(tmp_path, [Segment(command(), paced=False), Segment(silence(5.0), paced=True)],
              ScriptedBrain(stuck), brain_stall_s=0.3)
    result: dict[str, list[str]] = {}

    async def scenario() -> None:
        task = asyncio.create_task(rig.orch.run())
        watchdog = asyncio.create_task(Watchdog(rig.orch.health_problem, interval_s=0.05).run())
        await until(lambda: bool(rig.brain.utterances))
        await asyncio.sleep(0.5)
        notify_socket.drain()
        await asyncio.sleep(0.5)
        result["stuck"] = notify_socket.drain()
        problem = rig.orch.health_problem()
        release.set()
        rig.orch.inbox.post(Shutdown())
        await asyncio.wait_for(task, 3)
        watchdog.cancel()
        assert problem is not None and problem.startswith("a brain call has run")

    asyncio.run(scenario())
    assert "WATCHDOG=1" not in result["stuck"]


def test_signals_through_the_relay_stop_within_2_s(tmp_path: Path, notify_socket: NotifySocket) -> None:
    rig = Rig(tmp_path, [Segment(silence(30.0), paced=True)], ScriptedBrain(tool_reply("x")),
              status=SystemdStatus())
    relay = SignalRelay()
    relay.install()
    timing: dict[str, float] = {}

    async def scenario() -> None:
        inbox = rig.orch.inbox
        relay.attach(asyncio.get_running_loop(), {
            signal.SIGTERM: lambda: inbox.post(Shutdown()),
            signal.SIGUSR1: lambda: inbox.post(PushToTalk()),
        })
        task = asyncio.create_task(rig.orch.run())
        await until(lambda: any(m.startswith("READY=1") for m in notify_socket.drain()))
        os.kill(os.getpid(), signal.SIGUSR1)  # push-to-talk
        await until(lambda: bool(rig.log.of("listen-start")))
        timing["start"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 5)
        timing["end"] = time.monotonic()
        relay.detach()

    try:
        asyncio.run(scenario())
    finally:
        relay.uninstall()
    assert timing["end"] - timing["start"] < 2.0
    assert relay.stop_requested
    assert rig.source.closed
    assert rig.log.of("wake-detected")[0].data["reason"] == "push_to_talk"
    assert any(m.startswith("STOPPING=1") for m in notify_socket.drain())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers removed again


def test_commands_posted_before_the_loop_runs_are_delivered(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [Segment(silence(0.3)), Segment(silence(1.0), paced=True)],
              ScriptedBrain(tool_reply("x")))
    rig.orch.inbox.post(Announce("Posted before the start."))
    rig.run()
    assert rig.sink.spoken == ["Posted before the start."]


def test_stop_cancels_the_reply_being_spoken(tmp_path: Path) -> None:
    sink = RecordingSink(hold=True)
    rig: Rig | None = None

    def stop_while_speaking() -> bool:
        if rig is None or not sink.speaking.is_set():
            return False
        rig.orch.inbox.post(Stop())
        return True

    rig = Rig(tmp_path, [Segment(command()), Segment(silence(1.0), wait_for=stop_while_speaking)],
              ScriptedBrain(tool_reply("A very long answer.")), tts=sink)
    rig.run()
    assert sink.cancelled_at is not None
    assert rig.log.of("cancelled")[0].data["reason"] == "stop"
    assert rig.log.of("run-end")[-1].data["outcome"] == "cancelled"
    assert rig.orch.counters.cancelled_wakes == 0


def test_announce_speaks_when_idle(tmp_path: Path) -> None:
    rig: Rig | None = None

    def announce_then_wait() -> bool:
        assert rig is not None
        rig.orch.inbox.post(Announce("Your timer is done."))
        return True

    rig = Rig(tmp_path, [Segment(silence(0.3)),
                         Segment(silence(0.5), wait_for=announce_then_wait, paced=True)],
              ScriptedBrain(tool_reply("x")))
    rig.run()
    assert rig.sink.spoken == ["Your timer is done."]


@pytest.mark.parametrize("enabled", [False])
def test_without_wake_words_only_push_to_talk_listens(tmp_path: Path, enabled: bool) -> None:
    settings = Settings(state_dir=tmp_path, wake=WakeSettings(enabled=enabled))
    source = MemorySource([Segment(command())])
    brain = ScriptedBrain(tool_reply("x"))
    orch = Orchestrator(settings, source=source, segmenter=Segmenter(settings.vad), brain=brain,
                        router=FakeRouter(), tts=RecordingSink(),
                        wake=WakeDetector.from_settings(make_settings(tmp_path).wake))
    asyncio.run(asyncio.wait_for(orch.run(), 20))
    assert brain.utterances == []


def test_follow_up_listens_without_wake_word(tmp_path: Path) -> None:
    rig: Rig | None = None

    def following() -> bool:
        starts = rig.log.of("listen-start") if rig is not None else []
        return any(e.data.get("reason") == "follow_up" for e in starts)

    brain = ScriptedBrain(tool_reply("Turned on the kitchen light."), tool_reply("Turned it off."))
    rig = Rig(tmp_path, [Segment(command()),
                         Segment(espeak16("and turn it off again") + silence(1.5), wait_for=following)],
              brain,
              settings=make_settings(tmp_path, follow_up_s=4.0))
    rig.run()
    assert rig.sink.spoken == ["Turned on the kitchen light.", "Turned it off."]
    assert rig.orch.counters.wakes == 1
    assert [e.data["reason"] for e in rig.log.of("run-start")] == ["wake", "follow_up", "follow_up"]
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["ok", "ok"]


def test_a_failing_tts_sink_is_a_coded_error_and_back_to_idle(tmp_path: Path) -> None:
    class BrokenSink(RecordingSink):
        def speak(self, text: str, cancel: threading.Event) -> Any:
            raise TtsError("output device gone", code="tts_output_unavailable")

    rig = Rig(tmp_path, [Segment(command()), Segment(command())], ScriptedBrain(tool_reply("x")),
              tts=BrokenSink())
    rig.run()
    errors = [(e.data["stage"], e.data["code"]) for e in rig.log.of("error")]
    assert errors == [("tts", "tts_output_unavailable")] * 2
    assert len(rig.brain.utterances) == 2
    assert rig.orch.state is State.IDLE


def test_threaded_frame_source_bridges_a_blocking_source() -> None:
    stopped = threading.Event()
    blocking = [AudioFrame(bytes(960), i * 0.03) for i in range(50)]

    async def collect(source: ThreadedFrameSource) -> list[AudioFrame]:
        return [frame async for frame in source]

    got = asyncio.run(collect(ThreadedFrameSource(iter(blocking), stop=stopped.set)))
    assert got == blocking
    assert stopped.is_set()

    def broken() -> Any:
        yield blocking[0]
        raise OSError("device unplugged")

    with pytest.raises(AssistantError, match="device unplugged") as info:
        asyncio.run(collect(ThreadedFrameSource(broken())))
    assert info.value.code == "audio_source_failed"


class PacingSource(MemorySource):
    """A memory source that records the burst lengths the orchestrator asks for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []

    def set_batch_ms(self, ms: int) -> None:
        self.batches.append(ms)


def test_audio_comes_in_bursts_while_idle_and_frame_by_frame_while_listening(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [], ScriptedBrain(tool_reply("Turned on the kitchen light.")))
    source = PacingSource([Segment(command())])
    rig.orch.source = source
    rig.run()
    assert rig.sink.spoken == ["Turned on the kitchen light."]
    # idle: bursts (cheap wake-word polling); listening: every frame at once (end of speech on
    # time); back to bursts once the reply is out.
    assert source.batches[0] == rig.orch.idle_batch_ms > 0
    assert 0 in source.batches
    listening_at = source.batches.index(0)
    assert rig.orch.idle_batch_ms in source.batches[listening_at:]


def test_a_volume_command_reaches_the_speaker_and_is_reported(tmp_path: Path) -> None:
    player = PacedPlayer()
    sink = SpeakerSink("espeak", EspeakSynthesizer(), player)
    rig: Rig | None = None

    def set_volume() -> bool:
        assert rig is not None
        rig.orch.inbox.post(SetVolume(35))
        return True

    rig = Rig(tmp_path, [Segment(silence(0.3)), Segment(silence(0.3), wait_for=set_volume, paced=True)],
              ScriptedBrain(tool_reply("x")), tts=sink)
    rig.run()
    assert player.volume == 0.35
    (changed,) = rig.log.of("controls-changed")
    assert changed.data == {"volume": 35, "from_home": False, "state": "idle"}
