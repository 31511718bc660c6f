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

Escalation to a brain that ``HearsText`` (the remote brain): it gets the phrase brain's
transcript. ``escalate="rejected"`` sends it what the phrase brain rejects;
``"unknown"`` first lets the ``local`` brain (Gemma E2B/E4B on the device) answer what
the phrase brain rejects, and sends the server only what the local brain did not know:
a local turn that made no tool call and whose reply is a not-understood one
(``dont_know``: ``understood`` False, an error reply, or a short "I don't know" / "I'm
not sure" / "I can't help with that"); when the server then fails, that local answer is
spoken (after the note) without asking the local brain twice; ``"everything"`` also
what the phrase brain understood as anything but a home command or an assistant control
(stop, volume, mute): the phrase brain then runs behind a gateway that lets those through
and holds every other call (clock, timers, user skills) back unexecuted; home commands
never wait for the network. When the server
cannot answer, a held call is made after all: the local answer.

Speaking ahead: the hybrid brain (and its stream) declares ``SpeaksAhead`` and hands the
daemon's ``say`` to the second brain's turn when that brain (or its stream) speaks ahead
or hears text; the phrase brain's short replies are spoken at the end as before.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from pathlib import PurePath
from typing import Literal

from assistant.brains.base import (
    Brain,
    Closable,
    HearsText,
    Prefetching,
    Say,
    SpeaksAhead,
    SpeechStream,
    Streaming,
    ToolGateway,
    turn_figures,
    warm_brain,
)
from assistant.errors import ErrorCode
from assistant.tools.base import Tool
from assistant.types import BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance

Escalate = Literal["rejected", "unknown", "everything"]
HOME_SOURCE = "home"
"""``Tool.source`` of the home-control tools (assistant.home.control)."""
CONTROL_SKILL = "assistant_control.py"
"""File name of the shipped skill whose tools (stop, volume, mute) must act at once too."""


def stays_local(tool: Tool) -> bool:
    """Whether a call of ``tool`` the phrase brain understood never waits for the network."""
    return tool.source == HOME_SOURCE or PurePath(tool.source).name == CONTROL_SKILL


_DONT_KNOW = re.compile(
    r"(?:sorry,?\s*)?(?:i\s+(?:do\s*n[o']t|don't|really\s+don't)\s+know"
    r"|i'?m\s+not\s+sure|i\s+am\s+not\s+sure|i\s+(?:can't|cannot|can\s+not)\s+(?:help|answer|tell)"
    r"|i\s+(?:didn't|did\s+not)\s+(?:catch|understand|get)|i\s+(?:don't|do\s+not)\s+have\s+"
    r"(?:that|any|enough|access|information))",
    re.IGNORECASE,
)
DONT_KNOW_CHARS = 160
"""A reply longer than this is an answer, even when it starts with "I'm not sure"."""


def dont_know(turn: BrainTurn) -> bool:
    """Whether a local turn understood nothing useful: no tool call, and a not-understood reply.

    Not understood (``understood`` False: the phrase brain's rejection, Gemma's "didn't
    catch that" or a broken output), an error reply, or a short reply that starts with
    "I don't know", "I'm not sure", "I can't help / answer / tell", "I didn't catch /
    understand", "I don't have that / any / access / information" (with or without a
    "Sorry,"). A turn that called a tool acted on something: it is an answer.
    """
    if turn.tool_calls:
        return False
    if not turn.understood or turn.reply.is_error:
        return True
    text = " ".join(turn.reply.text.split())
    return not text or (len(text) <= DONT_KNOW_CHARS and _DONT_KNOW.match(text) is not None)

_LOGGER = logging.getLogger(__name__)


class HybridBrain:
    """Phrase first; Gemma when the phrase brain did not understand."""

    name = "hybrid"

    def __init__(self, phrase: Brain, gemma: Brain, *, escalate: Escalate = "rejected",
                 local: Brain | None = None) -> None:
        """``gemma``: the second brain (Gemma, or the remote brain); ``local``: under
        ``escalate="unknown"``, the device's brain asked before the server (None: the phrase
        brain's rejection is all the local side knows)."""
        self._phrase = phrase
        self._gemma = gemma
        self._escalate = escalate
        self._local = local

    @property
    def parts(self) -> tuple[Brain, ...]:
        """The brains it asks: the phrase brain, the second one, and the local one when there is one."""
        return tuple(b for b in (self._phrase, self._gemma, self._local) if b is not None)

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
        return self._handle(utterance, router, cancel, None, None)

    def handle_speaking(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event,
                        say: Say) -> BrainTurn:
        """``handle``; the second brain's reply goes to ``say`` sentence by sentence when it can."""
        return self._handle(utterance, router, cancel, None, say)

    def _handle(
        self, utterance: Utterance, router: ToolGateway, cancel: threading.Event, stream: SpeechStream | None,
        say: Say | None,
    ) -> BrainTurn:
        confirming = router.pending_confirmation(utterance.site) is not None
        hears_text = isinstance(self._gemma, HearsText)
        gate = _HomeOnly(router) if hears_text and self._escalate == "everything" and not confirming else None
        started = time.monotonic()
        try:
            first = self._phrase.handle(utterance, gate or router, cancel)
        except BaseException:
            if stream is not None:
                stream.abort()
            raise
        held = gate.held if gate is not None else ()
        if (first.understood and not held) or confirming or cancel.is_set():
            if stream is not None:
                stream.abort()
            return first
        phrase_ms = (time.monotonic() - started) * 1000.0
        _LOGGER.info("phrase brain %s the utterance (%.0f ms); asking the %s brain",
                     "held back" if held else "rejected", phrase_ms, self._gemma.name)
        if isinstance(self._gemma, HearsText) and first.transcript:
            if stream is not None:
                stream.abort()
            second = self._ask_server(self._gemma, first, held, utterance, router, cancel=cancel, say=say)
        elif stream is not None:
            if say is not None and isinstance(stream, SpeaksAhead):
                second = stream.handle_speaking(utterance, router, cancel, say)
            else:
                second = stream.finish(utterance, router, cancel)
        elif say is not None and isinstance(self._gemma, SpeaksAhead):
            second = self._gemma.handle_speaking(utterance, router, cancel, say)
        else:
            second = self._gemma.handle(utterance, router, cancel)
        return _merged(first, second, phrase_ms)


    def _ask_server(self, server: HearsText, first: BrainTurn, held: Sequence[ToolCall], utterance: Utterance,
                    router: ToolGateway, *, cancel: threading.Event, say: Say | None) -> BrainTurn:
        """The server's turn on the phrase brain's transcript (under "unknown": when the local brain
        did not know); the local answer is its fallback."""
        transcript = first.transcript or ""
        local = (lambda: _make_held(held, first, utterance, router)) if held else None
        if self._escalate == "unknown" and self._local is not None:
            known = self._local.handle(utterance, router, cancel)
            if cancel.is_set() or not dont_know(known):
                return known
            _LOGGER.info("the %s brain did not know; asking the server", self._local.name)
            local = lambda: known  # noqa: E731 - the server's fallback: the answer already given
        return server.handle_transcript(transcript, utterance, router, cancel, local, say=say)


def _merged(first: BrainTurn, second: BrainTurn, phrase_ms: float) -> BrainTurn:
    """The second brain's turn, with the phrase brain's figures (prefixed ``phrase_``) beside its own."""
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
        return self._brain._handle(utterance, router, cancel, gemma, None)

    def handle_speaking(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event,
                        say: Say) -> BrainTurn:
        """``finish``, with the second brain's reply handed to ``say`` sentence by sentence when it can."""
        gemma, self._gemma = self._gemma, None
        return self._brain._handle(utterance, router, cancel, gemma, say)

    def abort(self) -> None:
        """Throw Gemma's partial state away; idempotent."""
        gemma, self._gemma = self._gemma, None
        if gemma is not None:
            gemma.abort()


class _HomeOnly:
    """A ToolGateway for the phrase brain under ``escalate="everything"``: home tools pass, other
    calls are held back unexecuted (the hybrid brain escalates them)."""

    def __init__(self, router: ToolGateway) -> None:
        self._router = router
        self.held: list[ToolCall] = []

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Run a home call; hold back any other."""
        tool = next((t for t in self._router.tools() if t.name == call.name), None)
        if tool is None or stays_local(tool):
            return self._router.call(call, site=site)
        self.held.append(call)
        return ToolResult(call=call, status=ResultStatus.ERROR, error_code=ErrorCode.NOT_ALLOWED.value)

    def pending_confirmation(self, site: str) -> str | None:
        """As the router says."""
        return self._router.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """As the router does."""
        return self._router.answer_confirmation(transcript, site=site)

    def tools(self) -> Sequence[Tool]:
        """The router's tools."""
        return self._router.tools()

    @property
    def tools_version(self) -> int:
        """The router's tools version."""
        return self._router.tools_version


def _make_held(held: Sequence[ToolCall], first: BrainTurn, utterance: Utterance,
               router: ToolGateway) -> BrainTurn:
    """The local answer after all: the calls the phrase brain made, now through the real router."""
    results = tuple(router.call(call, site=utterance.site) for call in held)
    failed = any(r.status is ResultStatus.ERROR for r in results)
    text = " ".join(r.speech for r in results if r.speech)
    text = text or ("Sorry, that didn't work." if failed else "OK.")
    asks = any(r.status is ResultStatus.NEEDS_CONFIRMATION for r in results)
    return BrainTurn(first.transcript, tuple(held), results, Reply(text, utterance.site, is_error=failed,
                                                                    expects_answer=asks),
                     timings_ms=first.timings_ms, understood=True, counts=first.counts, flags=first.flags)
