"""The daemon streams speech into a Streaming brain while the user speaks (tiny scripted Gemma 4).

Real wake words, segmenter and Gemma runtime (the scripted tiny model calls
HassTurnOn(kitchen light), then says its reply), the real router, audio paced like a
microphone so the brain's stream worker steps while the command is spoken.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.brains.base import SpeechStream, Streaming, ToolGateway
from assistant.brains.gemma.brain import GemmaBrain, make_gemma_brain
from assistant.brains.hybrid import HybridBrain
from assistant.compose import make_brain
from assistant.config import BrainSettings, Settings, VadSettings
from assistant.daemon import State, streamed_clip
from assistant.inbox import Stop
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import BrainTurn, Reply, Utterance
from tests.support.pipeline import (
    Segment,
    espeak16,
    silence,
)
from tests.support.rig import Rig, rig_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "gemma"))
from gemma_helpers import CALL, CONTEXT, REPLY, RESPONSE, Lights, load_generator, settings_for  # noqa: E402


@pytest.fixture(scope="module")
def scripted_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = [(CONTEXT, False), (CALL, True), (RESPONSE, False), (REPLY, True)]
    path: Path = load_generator().make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "scripted", variants=("fp32",), script=script
    )
    return path


def command(text: str = "turn on the kitchen light") -> bytes:
    """Wake phrase, a pause, a command, and the silence that ends it."""
    return silence(0.4) + espeak16("okay nabu") + silence(0.6) + espeak16(text) + silence(1.5)


class SpyStream:
    """Forwards to the brain's stream and records what the daemon did with it."""

    def __init__(self, inner: SpeechStream) -> None:
        self.inner = inner
        self.fed = 0
        self.finished: list[Utterance] = []
        self.aborted = 0
        self.turn: BrainTurn | None = None

    def feed(self, pcm: bytes) -> None:
        self.fed += len(pcm)
        self.inner.feed(pcm)

    def finish(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        self.finished.append(utterance)
        self.turn = self.inner.finish(utterance, router, cancel)
        return self.turn

    def abort(self) -> None:
        self.aborted += 1
        self.inner.abort()


class SpyBrain:
    """A Streaming brain around GemmaBrain that keeps every stream it opened."""

    name = "gemma"

    def __init__(self, brain: GemmaBrain, stream: type[SpyStream] = SpyStream) -> None:
        self.brain = brain
        self.stream = stream
        self.streams: list[SpyStream] = []
        self.handled: list[Utterance] = []

    def warm(self, router: ToolGateway) -> object:
        return self.brain.warm(router)

    def begin_stream(self, site: str = "default", router: ToolGateway | None = None) -> SpyStream:
        self.streams.append(self.stream(self.brain.begin_stream(site, router)))
        return self.streams[-1]

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        self.handled.append(utterance)
        return self.brain.handle(utterance, router, cancel)


class OfflineBrain:
    """The same Gemma brain without the Streaming capability (the offline daemon turn)."""

    name = "gemma"

    def __init__(self, brain: GemmaBrain) -> None:
        self.brain = brain

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        return self.brain.handle(utterance, router, cancel)


class LightsRig(Rig):
    """Paced audio, a real router with one light, and the no-speech timeout given."""

    def __init__(
        self, tmp_path: Path, segments: list[Segment], brain: Any, *, timeout_s: float = 8.0
    ) -> None:
        settings = dataclasses.replace(rig_settings(tmp_path), vad=VadSettings(no_speech_timeout_s=timeout_s))
        self.lights = Lights()
        registry = ToolRegistry()
        registry.add(self.lights.tool(), group="home")
        super().__init__(tmp_path, segments, brain, router=Router(registry), settings=settings, paced=True)

    def run(self, timeout: float = 60.0) -> None:
        """Run to the source's end."""
        super().run(timeout)


def idle_after(rig: list[LightsRig], runs: int) -> Any:
    def ready() -> bool:
        return bool(rig) and len(rig[0].log.of("run-end")) >= runs and rig[0].orch.state is State.IDLE
    return ready


def test_a_streamed_daemon_turn_gives_the_offline_turn(tmp_path: Path, scripted_gemma: Path) -> None:
    gemma = make_gemma_brain(settings_for(scripted_gemma))
    offline = LightsRig(tmp_path / "offline", [Segment(command())], OfflineBrain(gemma))
    offline.run()
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)))
    assert isinstance(spy, Streaming) and not isinstance(offline.brain, Streaming)
    streamed = LightsRig(tmp_path / "streamed", [Segment(command())], spy)
    streamed.run()
    assert streamed.lights.ran == offline.lights.ran == [{"name": "kitchen light"}]
    assert streamed.sink.spoken == offline.sink.spoken and streamed.sink.spoken
    assert [e.data["tool_calls"] for e in streamed.log.of("think-end")] == [
        e.data["tool_calls"] for e in offline.log.of("think-end")]
    assert spy.handled == []  # the turn came from the stream
    used = [s for s in spy.streams if s.finished]
    assert len(used) == 1 and used[0].aborted == 0 and used[0].fed > 0
    turn = used[0].turn
    assert turn is not None and "streamed" in turn.flags and "stream_reprefilled" not in turn.flags
    assert turn.counts["stream_early_tokens"] > 0  # soft tokens were prefilled while the user spoke
    (end,) = streamed.log.of("run-end")
    assert end.data["flags"].get("streamed") and end.data["counts"]["stream_early_tokens"] > 0
    (clip,) = used[0].finished  # the segmenter's utterance, from where the feeding started
    (think,) = streamed.log.of("speech-end")
    assert len(clip.pcm) >= think.data["duration_s"] * 32000 - 2


def test_stop_while_the_user_speaks_aborts_the_stream_and_the_next_turn_acts(
    tmp_path: Path, scripted_gemma: Path
) -> None:
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)))
    rigs: list[LightsRig] = []

    def stop_mid_speech() -> bool:
        streams = spy.streams
        if not rigs or not streams or streams[-1].fed < 16000:
            return False
        rigs[0].orch.inbox.post(Stop())
        return True

    first = silence(0.4) + espeak16("okay nabu") + silence(0.6)
    words = espeak16("turn on the kitchen light please")
    segments = [Segment(first), Segment(words), Segment(silence(1.0), wait_for=stop_mid_speech),
                Segment(command(), wait_for=idle_after(rigs, 1))]
    rig = LightsRig(tmp_path, segments, spy)
    rigs.append(rig)
    prefix_before: list[np.ndarray] = []

    def snapshot() -> None:
        cache = spy.brain.prefix_cache
        assert cache is not None
        prefix_before.extend(k.copy() for k in cache.keys)

    spy.brain.warm(rig.router)
    snapshot()
    prefix = spy.brain.prefix_cache
    rig.run()
    assert rig.log.of("cancelled")[0].data["reason"] == "stop"
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["cancelled", "ok"]
    stopped = spy.streams[0]
    assert stopped.aborted >= 1 and not stopped.finished
    assert rig.lights.ran == [{"name": "kitchen light"}]  # only the second command acted
    assert spy.brain.prefix_cache is prefix  # the aborted stream never wrote the prefix cache
    assert prefix is not None
    assert all(np.array_equal(a, b) for a, b in zip(prefix_before, prefix.keys, strict=True))


class SlowFirstStream(SpyStream):
    """The first finish waits for the run's cancel (a long generation), then finishes cancelled."""

    started = threading.Event()

    def finish(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        if not SlowFirstStream.started.is_set():
            SlowFirstStream.started.set()
            cancel.wait(20)
        return super().finish(utterance, router, cancel)


def test_a_wake_word_while_the_streamed_turn_thinks_cancels_it_and_the_next_turn_acts(
    tmp_path: Path, scripted_gemma: Path
) -> None:
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)), SlowFirstStream)
    second = Segment(command(), wait_for=SlowFirstStream.started.is_set)
    rig = LightsRig(tmp_path, [Segment(command()), second], spy)
    spy.brain.warm(rig.router)
    prefix = spy.brain.prefix_cache
    rig.run()
    assert rig.log.of("cancelled")[0].data["kind"] == "wake"
    first = next(s for s in spy.streams if s.finished)
    assert first.turn is not None and not first.turn.tool_calls  # cancelled before it acted
    assert rig.lights.ran == [{"name": "kitchen light"}]  # only the second command
    assert rig.log.of("run-end")[-1].data["outcome"] == "ok"
    assert spy.brain.prefix_cache is prefix


def test_a_listen_timeout_aborts_the_stream(tmp_path: Path, scripted_gemma: Path) -> None:
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)))
    wake_only = silence(0.4) + espeak16("okay nabu") + silence(0.6) + b"\x10\x27" * 400 + silence(3.0)
    rig = LightsRig(tmp_path, [Segment(wake_only)], spy, timeout_s=2.0)
    rig.run()
    assert rig.log.of("listen-timeout")
    assert spy.streams and all(s.aborted and not s.finished for s in spy.streams)
    assert rig.lights.ran == []


def test_many_streamed_turns_in_a_row_all_act(tmp_path: Path, scripted_gemma: Path) -> None:
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)))
    rigs: list[LightsRig] = []
    turns = 4
    segments = [Segment(command(), wait_for=idle_after(rigs, i) if i else None) for i in range(turns)]
    rig = LightsRig(tmp_path, segments, spy)
    rigs.append(rig)
    rig.run(timeout=120.0)
    assert rig.lights.ran == [{"name": "kitchen light"}] * turns
    assert [e.data["outcome"] for e in rig.log.of("run-end")] == ["ok"] * turns
    used = [s for s in spy.streams if s.finished]
    assert len(used) == turns and spy.handled == []
    for stream in used:
        assert stream.turn is not None and "streamed" in stream.turn.flags
        assert "stream_reprefilled" not in stream.turn.flags
    assert all(s.aborted for s in spy.streams if not s.finished)  # the ones opened and not used


def test_the_clip_starts_where_the_feeding_started() -> None:
    rng = np.random.default_rng(3)
    collected = (rng.standard_normal(16000) * 1000).astype("<i2").tobytes()
    utterance = Utterance(pcm=collected[4800:30000], start_s=1.0, end_s=2.0, source="test")
    head = collected[:20000]  # fed while speaking: the collected audio up to a frame before the end
    clip = streamed_clip(head, utterance)
    assert clip.pcm == collected[:30000]
    assert dataclasses.replace(clip, pcm=utterance.pcm) == utterance
    assert streamed_clip(b"", utterance) is utterance
    other = (rng.standard_normal(8000) * 1000).astype("<i2").tobytes()
    assert streamed_clip(other, utterance) is utterance  # another stretch: finish redoes the work
    zeros = Utterance(pcm=bytes(6400) + collected[:6400], start_s=0.0, end_s=0.6, source="test")
    assert streamed_clip(bytes(9600) + collected[:3200], zeros).pcm == bytes(9600) + collected[:6400]


class FixedPhrase:
    """A stand-in phrase brain: understands everything or nothing."""

    name = "phrase"

    def __init__(self, understood: bool) -> None:
        self.understood = understood
        self.heard: list[Utterance] = []

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        self.heard.append(utterance)
        reply = Reply("Phrase heard it." if self.understood else "")
        return BrainTurn("phrase", (), (), reply, {"decode": 1.0}, self.understood)


@pytest.mark.parametrize("understood", [False, True])
def test_the_hybrid_streams_into_gemma_as_its_fallback(
    tmp_path: Path, scripted_gemma: Path, understood: bool
) -> None:
    spy = SpyBrain(make_gemma_brain(settings_for(scripted_gemma)))
    phrase = FixedPhrase(understood)
    rig = LightsRig(tmp_path, [Segment(command())], HybridBrain(phrase, spy))
    spy.brain.warm(rig.router)
    prefix = spy.brain.prefix_cache
    rig.run()
    assert len(phrase.heard) == 1
    used = [s for s in spy.streams if s.fed]
    assert len(used) == 1 and spy.handled == []
    if understood:  # a phrase hit: Gemma's partial state is thrown away, nothing acted
        assert used[0].aborted and not used[0].finished and rig.lights.ran == []
        assert rig.sink.spoken == ["Phrase heard it."]
    else:  # a rejection: Gemma's stream finishes, with the tokens it prefilled early
        assert used[0].finished and not used[0].aborted
        turn = used[0].turn
        assert turn is not None and turn.counts["stream_early_tokens"] > 0
        assert "stream_reprefilled" not in turn.flags
        assert rig.lights.ran == [{"name": "kitchen light"}]
    assert spy.brain.prefix_cache is prefix


def test_the_composed_gemma_and_hybrid_brains_stream_and_the_phrase_brain_does_not(
    tmp_path: Path, scripted_gemma: Path
) -> None:
    gemma = settings_for(scripted_gemma)
    for kind, streams in (("gemma", True), ("hybrid", True), ("phrase", False)):
        brain = make_brain(Settings(state_dir=tmp_path, brain=BrainSettings(kind=kind, gemma=gemma)))
        assert isinstance(brain, Streaming) is streams, kind
