"""The hybrid brain routes rejected utterances to the second brain, and never lets it confirm."""

from __future__ import annotations

import threading

from assistant.brains.base import Closable, Prefetching, Streaming, Warmable, turn_figures
from assistant.brains.hybrid import HybridBrain
from assistant.types import BrainTurn, Reply, Utterance
from tests.support.pipeline import FakeRouter


class RecordingBrain:
    """A stand-in brain (the real ones need models): returns a fixed turn and counts calls."""

    def __init__(self, name: str, understood: bool) -> None:
        self.name = name
        self.understood = understood
        self.calls = 0

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        self.calls += 1
        return BrainTurn(
            transcript=f"{self.name} heard",
            tool_calls=(),
            results=(),
            reply=Reply(text=f"from {self.name}"),
            timings_ms={"decode": 1.0},
            understood=self.understood,
        )


UTT = Utterance(pcm=b"\0\0" * 1600, start_s=0.0, end_s=0.1, source="test")


def test_understood_by_phrase_brain_never_reaches_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", True), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, FakeRouter(None), threading.Event())
    assert turn.reply.text == "from phrase"
    assert gemma.calls == 0


def test_rejected_by_phrase_brain_goes_to_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, FakeRouter(None), threading.Event())
    assert turn.reply.text == "from gemma"
    assert turn.understood
    assert "phrase_decode" in turn.timings_ms


def test_pending_confirmation_is_never_answered_by_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, FakeRouter("Do you want me to unlock?"), threading.Event())
    assert gemma.calls == 0
    assert turn.reply.text == "from phrase"


class EarlyBrain(RecordingBrain):
    """Declares Prefetching (as the phrase brain does) and reports its early decode the legacy way."""

    def __init__(self, name: str, understood: bool) -> None:
        super().__init__(name, understood)
        self.prefetched: list[bytes] = []

    def prefetch(self, pcm: bytes, router: object) -> None:
        self.prefetched.append(pcm)

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        turn = super().handle(utterance, router, cancel)
        return BrainTurn(turn.transcript, (), (), turn.reply, {"decode": 1.0}, turn.understood,
                         counts={"decode_steps": 3}, flags=frozenset({"prefetched"}))


def test_hybrid_declares_the_early_decode_and_hands_it_to_the_phrase_brain() -> None:
    phrase, gemma = EarlyBrain("phrase", True), RecordingBrain("gemma", True)
    hybrid = HybridBrain(phrase, gemma)
    assert isinstance(hybrid, Prefetching) and isinstance(hybrid, Warmable) and isinstance(hybrid, Closable)
    hybrid.prefetch(b"\0\0" * 160, FakeRouter(None))
    assert phrase.prefetched == [b"\0\0" * 160]
    timings, _counts, flags = turn_figures(hybrid.handle(UTT, FakeRouter(None), threading.Event()))
    assert flags == {"prefetched"}
    assert "prefetched" not in timings and timings["decode"] == 1.0


def test_a_rejected_early_decode_keeps_its_flag_under_the_phrase_prefix() -> None:
    phrase, gemma = EarlyBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, FakeRouter(None), threading.Event())
    assert turn.flags == {"phrase_prefetched"}
    assert turn.counts == {"phrase_decode_steps": 3}
    assert turn.timings_ms["phrase_decode"] == 1.0


class RecordingStream:
    """A SpeechStream that records what happened to it."""

    def __init__(self, brain: StreamingBrain) -> None:
        self.brain = brain
        self.fed = bytearray()
        self.finished: list[Utterance] = []
        self.aborted = 0

    def feed(self, pcm: bytes) -> None:
        self.fed += pcm

    def finish(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        self.finished.append(utterance)
        turn = self.brain.handle(utterance, router, cancel)
        streamed = frozenset({"streamed"})
        return BrainTurn(turn.transcript, (), (), turn.reply, {}, turn.understood, flags=streamed)

    def abort(self) -> None:
        self.aborted += 1


class StreamingBrain(RecordingBrain):
    """Declares Streaming, as GemmaBrain does."""

    def __init__(self, name: str, understood: bool) -> None:
        super().__init__(name, understood)
        self.streams: list[RecordingStream] = []

    def begin_stream(self, site: str = "default", router: object = None) -> RecordingStream:
        self.streams.append(RecordingStream(self))
        return self.streams[-1]


def test_hybrid_streams_into_gemma_and_finishes_it_only_for_a_phrase_rejection() -> None:
    phrase, gemma = RecordingBrain("phrase", False), StreamingBrain("gemma", True)
    hybrid = HybridBrain(phrase, gemma)
    assert isinstance(hybrid, Streaming)
    stream = hybrid.begin_stream("default", FakeRouter(None))
    stream.feed(b"\1\0" * 800)
    turn = stream.finish(UTT, FakeRouter(None), threading.Event())
    inner = gemma.streams[0]
    assert bytes(inner.fed) == b"\1\0" * 800 and inner.finished == [UTT] and inner.aborted == 0
    assert turn.reply.text == "from gemma" and "streamed" in turn.flags and phrase.calls == 1


def test_a_phrase_hit_aborts_the_gemma_stream() -> None:
    phrase, gemma = RecordingBrain("phrase", True), StreamingBrain("gemma", True)
    stream = HybridBrain(phrase, gemma).begin_stream("default", None)
    stream.feed(b"\1\0" * 800)
    turn = stream.finish(UTT, FakeRouter(None), threading.Event())
    assert turn.reply.text == "from phrase"
    assert gemma.streams[0].aborted == 1 and not gemma.streams[0].finished and gemma.calls == 0


def test_a_confirmation_answer_or_a_cancel_aborts_the_gemma_stream_and_abort_is_forwarded() -> None:
    phrase, gemma = RecordingBrain("phrase", False), StreamingBrain("gemma", True)
    hybrid = HybridBrain(phrase, gemma)
    hybrid.begin_stream().finish(UTT, FakeRouter("Unlock the door?"), threading.Event())
    cancel = threading.Event()
    cancel.set()
    hybrid.begin_stream().finish(UTT, FakeRouter(None), cancel)
    dropped = hybrid.begin_stream()
    dropped.abort()
    dropped.abort()
    assert [s.aborted for s in gemma.streams] == [1, 1, 1] and gemma.calls == 0


def test_with_a_gemma_that_cannot_stream_the_hybrid_stream_defers_to_handle() -> None:
    phrase, gemma = RecordingBrain("phrase", False), RecordingBrain("gemma", True)
    stream = HybridBrain(phrase, gemma).begin_stream()
    stream.feed(b"\1\0" * 800)
    assert stream.finish(UTT, FakeRouter(None), threading.Event()).reply.text == "from gemma"
    assert gemma.calls == 1
