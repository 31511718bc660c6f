"""What the Wyoming server offers, over our brains and router: ``asr`` and ``handle``.

- ``PhraseTranscriber`` (asr): audio -> the transcript the phrase brain would act on. The
  audio goes through the phrase brain's own decoder on the current tool grammar, with all
  its rejection (filler path, phone-loop confidence, plausibility, twins), through a
  gateway that lets nothing execute (``DryGateway``); a turn the brain would not act on
  gives an empty transcript: it refuses rather than guesses. While the router waits for a
  yes from the server's site, the brain decodes with its yes / no / PIN grammar, so HA's
  next turn can answer a confirmation question by voice.
- ``GemmaTranscriber`` (asr with ``asr: gemma``): audio -> Gemma 4's own transcription (its audio
  encoder and Google's ASR prompt, no tools: it never acts), free text of whatever was said,
  spaces collapsed, at most ``MAX_TRANSCRIPT_CHARS``; "" for no speech, a cancel or a failure.
- ``RouterConversation`` (handle): text -> the phrase brain's hassil matching of the
  current tool set (``PhraseBrain.match``, the templates of
  ``assistant.brains.phrase.templates``) -> the router, which validates, confirms
  sensitive calls (the site is the server's) and executes -> the spoken answer.

Both are blocking (the server runs them in worker threads) and never raise for what a
peer said: an utterance or text they cannot place is a refusal, not an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from assistant.brains.base import ToolGateway
from assistant.brains.phrase.brain import NOT_UNDERSTOOD
from assistant.tools.base import Tool
from assistant.types import BrainTurn, ResultStatus, ToolCall, ToolResult, Utterance

if TYPE_CHECKING:
    from assistant.brains.phrase.brain import Grammar, Match

FAILED = "Sorry, that didn't work."
MAX_TRANSCRIPT_CHARS = 1000
"""The longest transcript handed back (a model's output is untrusted: bounded like a peer's text)."""

Hearing = Callable[[Utterance, threading.Event], "str | None"]
"""Speech to text of a brain with ears of its own (``GemmaBrain.transcribe``): None for no words."""


class Transcriber(Protocol):
    """What ``asr`` runs in a worker thread: 16 kHz mono int16 PCM -> a transcript ("" for none)."""

    def transcribe(self, pcm: bytes, cancel: threading.Event) -> str:
        """The transcript, or "" (nothing to say, or cancelled)."""
        ...


class PhraseLike(Protocol):
    """What the server needs of the phrase brain (``assistant.brains.phrase.PhraseBrain``)."""

    def build(self, router: ToolGateway) -> Grammar:
        """The grammar for the router's current tools (built when they changed; blocking)."""
        ...

    def match(self, text: str, grammar: Grammar) -> Match | None:
        """A transcript matched to a tool call (None when no intent matches)."""
        ...

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """One utterance through decoder, rejection and matching, calling ``router``."""
        ...


class DryGateway:
    """A ``ToolGateway`` over the real router that never executes a call.

    The brain sees the real tool set (so the real grammar) and the real pending
    confirmation of a site (so the answer grammar when one waits), and nothing it asks for
    happens.
    """

    def __init__(self, router: ToolGateway) -> None:
        self._router = router

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Nothing runs: the call is only answered."""
        return ToolResult(call, ResultStatus.OK)

    def pending_confirmation(self, site: str) -> str | None:
        """The real router's question waiting for ``site``."""
        return self._router.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Leave the waiting call alone (the ``handle`` turn answers it)."""
        return ToolResult(ToolCall("answer_confirmation", {}), ResultStatus.CANCELLED)

    def tools(self) -> Sequence[Tool]:
        """The real router's tools."""
        return self._router.tools()

    @property
    def tools_version(self) -> int:
        """The real router's tool-set version."""
        return self._router.tools_version


class PhraseTranscriber:
    """asr: 16 kHz mono int16 PCM -> the transcript the phrase brain would act on ("" when it would not)."""

    def __init__(self, brain: PhraseLike, router: ToolGateway, *, site: str) -> None:
        self._brain = brain
        self._router = router
        self._site = site

    def transcribe(self, pcm: bytes, cancel: threading.Event) -> str:
        """The transcript, or "" (rejected, or cancelled)."""
        utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32_000, source="wyoming",
                              site=self._site, ended_at=time.monotonic())
        turn = self._brain.handle(utterance, DryGateway(self._router), cancel)
        if not turn.understood or cancel.is_set():
            return ""
        return turn.transcript or ""


class GemmaTranscriber:
    """asr: 16 kHz mono int16 PCM -> Gemma's own transcription of it ("" when it heard no words)."""

    def __init__(self, hearing: Hearing, *, site: str) -> None:
        self._hearing = hearing
        self._site = site

    def transcribe(self, pcm: bytes, cancel: threading.Event) -> str:
        """The words Gemma heard, one line, bounded; "" for none (or a cancel, or a failure: logged
        by the brain)."""
        utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32_000, source="wyoming",
                              site=self._site, ended_at=time.monotonic())
        words = self._hearing(utterance, cancel)
        if not words or cancel.is_set():
            return ""
        return " ".join(words.split())[:MAX_TRANSCRIPT_CHARS]


@dataclass(frozen=True)
class Answer:
    """What ``handle`` says back: ``handled`` (the router placed the text) and the spoken ``text``."""

    handled: bool
    text: str


class RouterConversation:
    """handle: a transcript -> hassil match on the current tools -> the router acts -> the answer."""

    def __init__(self, brain: PhraseLike, router: ToolGateway, *, site: str) -> None:
        self._brain = brain
        self._router = router
        self._site = site

    def handle(self, text: str) -> Answer:
        """Act on ``text`` through the router; an unplaced text is not handled and calls nothing."""
        site = self._site
        if self._router.pending_confirmation(site) is not None:
            return _answer(self._router.answer_confirmation(text.strip() or None, site=site))
        words = " ".join(text.split())
        if not words:
            return Answer(False, NOT_UNDERSTOOD)
        match = self._brain.match(words, self._brain.build(self._router))
        if match is None:
            return Answer(False, NOT_UNDERSTOOD)
        return _answer(self._router.call(match.call, site=site))


def _answer(result: ToolResult) -> Answer:
    if result.status is ResultStatus.ERROR:
        return Answer(False, result.speech or FAILED)
    return Answer(True, result.speech or ("Okay." if result.ok else ""))
