"""The hybrid brain: the phrase brain first, Gemma for what the grammar rejects.

Simple home commands stay on the fast grammar path; anything it refuses (out of
grammar, low confidence) goes to Gemma, which hears the same audio. A pending
confirmation is always answered by the phrase brain, which decodes an explicit
yes/no grammar: a language model never gets to say "yes" for the user.

It declares every capability (warm, prefetch, stream, close) and forwards each to the
brains that have it, so the phrase brain's early decode serves hybrid mode too.

Streaming: Gemma is only the fallback, but when it comes it comes after the phrase
brain, so its stream runs alongside while the user speaks. ``finish`` runs the phrase
brain on the whole utterance; a hit (or a confirmation answer, or a cancel) aborts the
Gemma stream (its partial state is thrown away, Gemma's prefix cache untouched), a
rejection finishes it. With a Gemma brain that cannot stream, the hybrid stream only
defers to ``handle``.
"""

from __future__ import annotations

import logging
import threading
import time

from assistant.brains.base import (
    Brain,
    Closable,
    Prefetching,
    SpeechStream,
    Streaming,
    ToolGateway,
    turn_figures,
    warm_brain,
)
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

    def begin_stream(self, site: str = "default", router: ToolGateway | None = None) -> SpeechStream:
        """Stream the utterance into Gemma (when it can) while the user speaks; see the module notes."""
        inner = self._gemma.begin_stream(site, router) if isinstance(self._gemma, Streaming) else None
        return _HybridStream(self, inner)

    def close(self) -> None:
        """Close both brains (those that hold anything)."""
        for brain in (self._phrase, self._gemma):
            if isinstance(brain, Closable):
                brain.close()

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """Process one utterance: phrase brain, then Gemma for a rejected one."""
        return self._handle(utterance, router, cancel, None)

    def _handle(
        self, utterance: Utterance, router: ToolGateway, cancel: threading.Event, stream: SpeechStream | None
    ) -> BrainTurn:
        confirming = router.pending_confirmation(utterance.site) is not None
        started = time.monotonic()
        try:
            first = self._phrase.handle(utterance, router, cancel)
        except BaseException:
            if stream is not None:
                stream.abort()
            raise
        if first.understood or confirming or cancel.is_set():
            if stream is not None:
                stream.abort()
            return first
        phrase_ms = (time.monotonic() - started) * 1000.0
        _LOGGER.info("phrase brain rejected the utterance (%.0f ms); asking Gemma", phrase_ms)
        if stream is not None:
            second = stream.finish(utterance, router, cancel)
        else:
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


class _HybridStream:
    """The hybrid brain's SpeechStream: audio goes on to Gemma's stream, the turn is decided at the end."""

    def __init__(self, brain: HybridBrain, gemma: SpeechStream | None) -> None:
        self._brain = brain
        self._gemma = gemma

    def feed(self, pcm: bytes) -> None:
        """Hand the audio to Gemma's stream (it only appends)."""
        if self._gemma is not None:
            self._gemma.feed(pcm)

    def finish(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """Phrase first on the whole utterance; Gemma's stream finishes only for a rejection."""
        gemma, self._gemma = self._gemma, None
        return self._brain._handle(utterance, router, cancel, gemma)

    def abort(self) -> None:
        """Throw Gemma's partial state away; idempotent."""
        gemma, self._gemma = self._gemma, None
        if gemma is not None:
            gemma.abort()
