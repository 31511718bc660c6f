"""The command grammar over many turns: built once per vocabulary, never raced by a rebuild.

The daemon hands the brain a new observing wrapper around the router on every turn, and
Home Assistant re-announces its whole inventory on every restart; neither changes what can
be said, so neither may cost a rebuild (a rebuild took 60 ms to 0.9 s per turn, and made
the early decode useless). A rebuild that does happen (a new device) must not pull the
grammar from under a decode that started with the old one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from assistant.audio.frontend import utterances_from_file
from assistant.brains.phrase.brain import PhraseBrain
from assistant.brains.phrase.testkit import DEMO_ENTITIES, DemoEntity, RecordingRouter, demo_tools
from assistant.config import PhraseSettings
from assistant.tools.base import Tool
from assistant.types import ToolCall, ToolResult
from tests.phrase.test_phrase_prefetch import SAMPLE

NEVER = threading.Event()


class Wrapper:
    """What the daemon passes per turn: the same router behind a new object."""

    def __init__(self, inner: RecordingRouter) -> None:
        self.inner = inner

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        return self.inner.call(call, site=site)

    def pending_confirmation(self, site: str) -> str | None:
        return self.inner.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        return self.inner.answer_confirmation(transcript, site=site)

    def tools(self) -> Sequence[Tool]:
        return self.inner.tools()

    @property
    def tools_version(self) -> int:
        return self.inner.tools_version


def test_a_new_wrapper_each_turn_keeps_the_grammar_and_the_early_decode(phrase_brain: PhraseBrain) -> None:
    router = RecordingRouter()
    grammar = phrase_brain.build(router)
    first, second = utterances_from_file(SAMPLE)
    for turn in range(6):
        utterance = (first, second)[turn % 2]
        phrase_brain.prefetch(utterance.pcm, router)  # the daemon prefetches with the plain router
        result = phrase_brain.handle(utterance, Wrapper(router), NEVER)
        assert phrase_brain.grammar is grammar, f"turn {turn + 1} rebuilt the grammar"
        assert "prefetched" in result.flags, f"turn {turn + 1} decoded again"
        assert result.understood, f"turn {turn + 1}"
    assert [c.name for c in router.calls] == ["HassTurnOn", "get_time"] * 3


def test_an_identical_tool_set_announced_again_keeps_the_grammar(phrase_brain: PhraseBrain) -> None:
    router = RecordingRouter()
    grammar = phrase_brain.build(router)
    router.set_tools(demo_tools())  # new Tool objects, same vocabulary (HA's birth re-announce)
    assert router.tools_version != grammar.version
    assert phrase_brain.build(router) is grammar
    first, _ = utterances_from_file(SAMPLE)
    phrase_brain.handle(first, router, NEVER)
    assert phrase_brain.grammar is grammar


def test_a_new_name_changes_the_vocabulary_key(phrase_brain: PhraseBrain) -> None:
    before = RecordingRouter()
    after = RecordingRouter(demo_tools((*DEMO_ENTITIES, DemoEntity("porch light", "light", "porch"))))
    assert phrase_brain.vocabulary_key(before)[0] != phrase_brain.vocabulary_key(after)[0]
    assert phrase_brain.vocabulary_key(before)[0] == phrase_brain.vocabulary_key(RecordingRouter())[0]


def test_a_rebuild_waits_for_the_decode_that_started_with_the_old_grammar() -> None:
    brain = PhraseBrain(PhraseSettings())
    router = RecordingRouter()
    old = brain.build(router)
    first, second = utterances_from_file(SAMPLE)
    brain.prefetch(first.pcm, router)  # a decode starts with the old grammar
    router.set_tools(demo_tools((*DEMO_ENTITIES, DemoEntity("porch light", "light", "porch"))))
    new = brain.build(router)  # a new device arrives meanwhile: swapped in at once
    assert new is not old and brain.grammar is new
    assert brain.installed_searches == 2, "the old search must stay while its decode is pending"
    turn = brain.handle(first, router, NEVER)  # the turn that started keeps the old grammar
    assert "prefetched" in turn.flags
    assert [c.name for c in router.calls] == ["HassTurnOn"]
    assert brain.installed_searches == 1, "the old search is removed once no decode holds it"
    turn = brain.handle(second, router, NEVER)  # the next turn uses the new one
    assert turn.understood and [c.name for c in router.calls] == ["HassTurnOn", "get_time"]
    for _ in range(5):  # many rebuilds while guesses come and go: nothing accumulates
        brain.prefetch(second.pcm, router)
        router.set_tools(demo_tools((*DEMO_ENTITIES, DemoEntity(f"lamp {_}", "light", "porch"))))
        brain.build(router)
    brain.handle(second, router, NEVER)
    assert brain.installed_searches == 1


def test_the_hybrid_brain_passes_the_early_decode_on(phrase_brain: PhraseBrain) -> None:
    from assistant.brains.hybrid import HybridBrain

    class NoGemma:
        name = "gemma"

        def handle(self, *_args: object) -> object:
            raise AssertionError("an understood command never reaches Gemma")

    router = RecordingRouter()
    phrase_brain.build(router)
    hybrid = HybridBrain(phrase_brain, NoGemma())  # type: ignore[arg-type]
    first, _ = utterances_from_file(SAMPLE)
    hybrid.prefetch(first.pcm, router)
    turn = hybrid.handle(first, Wrapper(router), NEVER)
    assert "prefetched" in turn.flags
    assert [c.name for c in router.calls] == ["HassTurnOn"]
