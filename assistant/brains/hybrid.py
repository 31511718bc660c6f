"""The hybrid brain: the phrase brain first, Gemma for what the grammar rejects.

Simple home commands stay on the fast grammar path; anything it refuses (out of
grammar, low confidence) goes to Gemma, which hears the same audio. A pending
confirmation is always answered by the phrase brain, which decodes an explicit
yes/no grammar: a language model never gets to say "yes" for the user.

It declares every capability (warm, prefetch, close) and forwards each to the brains
that have it, so the phrase brain's early decode serves hybrid mode too.
"""

from __future__ import annotations

import logging
import threading
import time

from assistant.brains.base import Brain, Closable, Prefetching, ToolGateway, turn_figures, warm_brain
from assistant.types import BrainTurn, Utterance

_LOGGER = logging.getLogger(__name__)


class HybridBrain:
    """Phrase first; Gemma when the phrase brain did not understand."""

    name = "hybrid"

    def __init__(self, phrase: Brain, gemma: Brain) -> None:
        self._phrase = phrase
        self._gemma = gemma

    def warm(self, router: ToolGateway) -> None:
        """Prepare both brains for the current tools (blocking)."""
        warm_brain(self._phrase, router)
        warm_brain(self._gemma, router)

    def prefetch(self, pcm: bytes, router: ToolGateway) -> None:
        """Let the phrase brain start early on the utterance (its early decode serves most turns)."""
        if isinstance(self._phrase, Prefetching):
            self._phrase.prefetch(pcm, router)

    def close(self) -> None:
        """Close both brains (those that hold anything)."""
        for brain in (self._phrase, self._gemma):
            if isinstance(brain, Closable):
                brain.close()

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """Process one utterance: phrase brain, then Gemma for a rejected one."""
        confirming = router.pending_confirmation(utterance.site) is not None
        started = time.monotonic()
        first = self._phrase.handle(utterance, router, cancel)
        if first.understood or confirming or cancel.is_set():
            return first
        phrase_ms = (time.monotonic() - started) * 1000.0
        _LOGGER.info("phrase brain rejected the utterance (%.0f ms); asking Gemma", phrase_ms)
        second = self._gemma.handle(utterance, router, cancel)
        first_ms, first_counts, first_flags = turn_figures(first)
        second_ms, second_counts, second_flags = turn_figures(second)
        timings = {f"phrase_{k}": v for k, v in first_ms.items()}
        timings.update(second_ms)
        timings["phrase_ms"] = phrase_ms
        counts = {f"phrase_{k}": v for k, v in first_counts.items()}
        counts.update(second_counts)
        flags = frozenset(f"phrase_{f}" for f in first_flags) | second_flags
        return BrainTurn(
            transcript=second.transcript if second.transcript is not None else first.transcript,
            tool_calls=second.tool_calls,
            results=second.results,
            reply=second.reply,
            timings_ms=timings,
            understood=second.understood,
            counts=counts,
            flags=flags,
        )
