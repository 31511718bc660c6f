"""The hybrid brain routes rejected utterances to the second brain, and never lets it confirm."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from assistant.brains.base import Closable, Prefetching, Warmable, turn_figures
from assistant.brains.hybrid import HybridBrain
from assistant.tools.base import Tool
from assistant.types import BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance


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


class StubRouter:
    """Only the confirmation query matters here."""

    def __init__(self, pending: str | None) -> None:
        self.pending = pending

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        return ToolResult(call=call, status=ResultStatus.OK)

    def pending_confirmation(self, site: str) -> str | None:
        return self.pending

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        return ToolResult(call=ToolCall("x"), status=ResultStatus.CANCELLED)

    def tools(self) -> Sequence[Tool]:
        return []

    @property
    def tools_version(self) -> int:
        return 0


UTT = Utterance(pcm=b"\0\0" * 1600, start_s=0.0, end_s=0.1, source="test")


def test_understood_by_phrase_brain_never_reaches_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", True), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, StubRouter(None), threading.Event())
    assert turn.reply.text == "from phrase"
    assert gemma.calls == 0


def test_rejected_by_phrase_brain_goes_to_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, StubRouter(None), threading.Event())
    assert turn.reply.text == "from gemma"
    assert turn.understood
    assert "phrase_decode" in turn.timings_ms


def test_pending_confirmation_is_never_answered_by_gemma() -> None:
    phrase, gemma = RecordingBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, StubRouter("Do you want me to unlock?"), threading.Event())
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
        legacy = {"decode": 1.0, "prefetched": 1.0}
        return BrainTurn(turn.transcript, (), (), turn.reply, legacy, turn.understood)


def test_hybrid_declares_the_early_decode_and_hands_it_to_the_phrase_brain() -> None:
    phrase, gemma = EarlyBrain("phrase", True), RecordingBrain("gemma", True)
    hybrid = HybridBrain(phrase, gemma)
    assert isinstance(hybrid, Prefetching) and isinstance(hybrid, Warmable) and isinstance(hybrid, Closable)
    hybrid.prefetch(b"\0\0" * 160, StubRouter(None))
    assert phrase.prefetched == [b"\0\0" * 160]
    timings, _counts, flags = turn_figures(hybrid.handle(UTT, StubRouter(None), threading.Event()))
    assert flags == {"prefetched"}
    assert "prefetched" not in timings and timings["decode"] == 1.0


def test_a_rejected_early_decode_keeps_its_flag_under_the_phrase_prefix() -> None:
    phrase, gemma = EarlyBrain("phrase", False), RecordingBrain("gemma", True)
    turn = HybridBrain(phrase, gemma).handle(UTT, StubRouter(None), threading.Event())
    assert turn.flags == {"phrase_prefetched"}
    assert "phrase_prefetched" not in turn.timings_ms


def test_counts_and_flags_written_as_timings_are_read_as_what_they_are() -> None:
    turn = BrainTurn(None, (), (), Reply(""), {"total": 12.5, "prefill_tokens": 340.0, "prefix_rebuilt": 0.0,
                                              "prefetched": 1.0})
    assert turn_figures(turn) == ({"total": 12.5}, {"prefill_tokens": 340}, frozenset({"prefetched"}))
