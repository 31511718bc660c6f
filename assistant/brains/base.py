"""The one interface every brain implements, and the optional capabilities a brain declares.

A brain is ``Brain`` (``name`` and ``handle``). What it can do beyond that is declared by
implementing one of the small runtime-checkable protocols below, and the daemon asks with
``isinstance``, never with ``getattr``:

- ``Warmable``: ``warm(router)`` prepares grammar or prompt prefix for the current tools;
- ``Prefetching``: ``prefetch(pcm, router)`` starts on an utterance before the endpointer
  closes it (the early decode);
- ``Streaming``: ``begin_stream(site, router)`` takes an utterance while it is spoken
  (a ``SpeechStream``: ``feed`` while the user speaks, then ``finish`` or ``abort``);
- ``Closable``: ``close()`` releases models and threads at shutdown;
- ``HearsText``: ``handle_transcript(...)`` answers a transcript another brain heard;
- ``SpeaksAhead``: ``handle_speaking(..., say)`` hands the reply to the daemon sentence by
  sentence while it is still generated (a brain's ``handle``, or a stream's ``finish``).

A wrapper (the hybrid brain) declares what it forwards, so a capability cannot be lost
silently on the way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from assistant.capabilities import Closable
from assistant.tools.base import Tool
from assistant.types import BrainTurn, ToolCall, ToolResult, Utterance


class ToolGateway(Protocol):
    """What a brain may ask of the tool router (implemented by assistant.tools.router.Router)."""

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Validate and (maybe) execute one call; never raises for bad input."""
        ...

    def pending_confirmation(self, site: str) -> str | None:
        """The question asked, when a sensitive call from ``site`` waits for a yes (else None)."""
        ...

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Resolve the waiting call with the next turn's words.

        Only an explicit yes (or the configured PIN) within the window, from the same
        site, runs it; anything else, ``None`` (silence, no transcript) or a late
        answer cancels it and returns a CANCELLED result.
        """
        ...

    def tools(self) -> Sequence[Tool]:
        """The current tool set, sorted by name."""
        ...

    @property
    def tools_version(self) -> int:
        """Increases whenever the tool set changes (skills reloaded, inventory changed)."""
        ...


__all__ = [
    "Brain", "Closable", "HearsText", "Prefetching", "Router", "Say", "SpeaksAhead", "SpeechStream",
    "Streaming", "ToolGateway", "Warmable", "turn_figures", "warm_brain",
]

Router = ToolGateway
"""The protocol's former name, kept while the phrase and Gemma brains still import it."""

Say = Callable[[str], None]
"""Hands one finished sentence of the reply to the daemon to be spoken now; called from the
brain's worker thread, returns at once (the daemon queues it)."""


class Brain(Protocol):
    """Speech in, tool calls through the router, a reply out.

    ``handle`` runs in a worker thread; it checks ``cancel`` between steps and
    returns promptly (with ``understood=False``) once it is set.
    """

    name: str

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """Process one utterance end to end."""
        ...


@runtime_checkable
class Warmable(Protocol):
    """A brain that prepares for the current tool set ahead of the first utterance."""

    def warm(self, router: ToolGateway) -> object:
        """Build what ``handle`` needs for ``router.tools()`` (blocking, off the audio loop)."""
        ...


@runtime_checkable
class Prefetching(Protocol):
    """A brain that can start on an utterance while the endpointer still waits out its hangover."""

    def prefetch(self, pcm: bytes, router: ToolGateway) -> None:
        """Begin decoding ``pcm`` in the background; ``handle`` uses it when the speech matches."""
        ...


class SpeechStream(Protocol):
    """One utterance handed to a brain while it is still being spoken.

    The daemon calls ``feed`` from its audio loop (so it must only append and return),
    then exactly one of ``finish`` (end of speech) or ``abort`` (no speech, a discarded
    burst, a cancelled run). The fed audio is a head start, never the truth: ``finish``
    gets the whole utterance and must give the turn ``handle`` gives on it. Neither
    ``abort`` nor a cancelled ``finish`` may change anything the brain caches.
    """

    def feed(self, pcm: bytes) -> None:
        """Append 16 kHz mono int16 PCM as it arrives; returns at once."""
        ...

    def finish(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """The turn for the whole utterance (equal to ``handle`` on it)."""
        ...

    def abort(self) -> None:
        """Forget the partial state; nothing the brain caches is changed; idempotent."""
        ...


@runtime_checkable
class Streaming(Protocol):
    """A brain that takes speech while the user speaks (``isinstance(brain, Streaming)``)."""

    def begin_stream(self, site: str = "default", router: ToolGateway | None = None) -> SpeechStream:
        """Open a stream for one utterance from ``site`` (cheap: work happens off the caller's thread)."""
        ...


@runtime_checkable
class HearsText(Protocol):
    """A brain that can answer what another brain heard (the remote brain: its server has no ears)."""

    def handle_transcript(
        self,
        transcript: str,
        utterance: Utterance,
        router: ToolGateway,
        cancel: threading.Event,
        local: Callable[[], BrainTurn] | None = None,
        *,
        say: Say | None = None,
    ) -> BrainTurn:
        """Answer ``transcript`` (heard in ``utterance``); ``local`` answers when this brain cannot.

        ``say``: as in ``SpeaksAhead.handle_speaking``.
        """
        ...


@runtime_checkable
class SpeaksAhead(Protocol):
    """A brain (or a brain's ``SpeechStream``) whose reply can be spoken while it is still generated.

    The daemon asks ``isinstance(brain, SpeaksAhead)`` (and of the stream it finishes) and
    then calls ``handle_speaking`` instead of ``handle`` (``finish``), so the first sentence
    of a long answer is heard while the rest is on its way.
    """

    def handle_speaking(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event,
                        say: Say) -> BrainTurn:
        """The turn ``handle`` (on a stream: ``finish``) gives, handing finished sentences to ``say``.

        Contract: what went to ``say`` is, in order, the start of the returned
        ``reply.text``; the daemon speaks only the rest after it (all of ``reply.text``
        when it does not start with what was said: a confirmation question, a note).
        Nothing goes to ``say`` once ``cancel`` is set, nor anything a tool call could
        still turn into something else (text the router did not yet see through).
        """
        ...


def warm_brain(brain: object, router: ToolGateway) -> None:
    """Prepare a brain for the router's current tools if it declares ``Warmable``; blocking."""
    if isinstance(brain, Warmable):
        brain.warm(router)


def turn_figures(turn: BrainTurn) -> tuple[dict[str, float], dict[str, int], frozenset[str]]:
    """A turn's (timings in ms, counts, flags), as plain copies."""
    return dict(turn.timings_ms), dict(turn.counts), frozenset(turn.flags)
