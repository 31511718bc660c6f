"""The one interface every brain implements."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from assistant.tools.base import Tool
from assistant.types import BrainTurn, ToolCall, ToolResult, Utterance


class Router(Protocol):
    """What a brain may ask of the tool router (implemented in assistant.tools.router)."""

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


class Brain(Protocol):
    """Speech in, tool calls through the router, a reply out.

    ``handle`` runs in a worker thread; it checks ``cancel`` between steps and
    returns promptly (with ``understood=False``) once it is set.
    """

    name: str

    def handle(self, utterance: Utterance, router: Router, cancel: threading.Event) -> BrainTurn:
        """Process one utterance end to end."""
        ...


def warm_brain(brain: object, router: Router) -> None:
    """Prepare a brain for the router's current tools (grammar, prompt prefix); blocking.

    Brains that prepare lazily expose ``warm(router)`` (Gemma, hybrid) or
    ``build(router)`` (phrase); others need nothing.
    """
    for method in ("warm", "build"):
        prepare = getattr(brain, method, None)
        if callable(prepare):
            prepare(router)
            return
