"""The seam through which another assistant may take a turn instead of our brain.

The orchestrator offers each heard utterance to its ``TurnHandoff`` (when it has one)
before the brain sees it. ``take`` answers None when it does not take the turn (then the
brain does: nothing is lost), or a ``HandedOff`` once the turn is the other side's: the
brain must not act on it then, whatever the result (the other side may have acted). The
one implementation is the Wyoming satellite endpoint (``assistant.wyoming.satellite``):
Home Assistant's pipeline hears the turn, acts and answers with speech.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from assistant.types import Utterance


@dataclass(frozen=True)
class HandedOff:
    """How a handed-off turn ended: what was heard and answered, and the answer's sound."""

    transcript: str | None = None
    """What the other side heard (None: it did not say)."""
    reply: str = ""
    """Its answer as text ("" when none came)."""
    audio: bytes = b""
    """Its answer spoken: int16 mono PCM at ``rate`` (empty when none came)."""
    rate: int = 0
    problem: str | None = None
    """Why the turn ended without an answer (its error, a lost connection, a timeout); None when answered."""
    code: str | None = None
    """The error code of ``problem`` (``assistant.errors.ErrorCode``)."""


class TurnHandoff(Protocol):
    """Takes turns away from the brain (see the module docstring)."""

    @property
    def active(self) -> bool:
        """Whether it would take a turn now (the brain then gets no head start on the speech)."""
        ...

    async def take(self, utterance: Utterance, cancel: threading.Event) -> HandedOff | None:
        """None: not taken (the brain answers). Else the turn's end; returns soon after ``cancel`` is set."""
        ...

    async def played(self) -> None:
        """The answer of the last taken turn has been played (or given up on)."""
        ...
