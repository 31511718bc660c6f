"""Book-keeping of one wake-to-reply run and the daemon's running totals.

The orchestrator owns the state machine; this module owns the figures it publishes with
every RUN_END event: stage timings in milliseconds, the brain's counts and flags, and the
counters since start. ``RunReport`` is that payload, typed, with ``to_json()`` for MQTT.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    """Running totals since start, published with each run's timings."""

    wakes: int = 0
    """Wake-word detections that started listening."""
    push_to_talk: int = 0
    """Listening started by the button, SIGUSR1 or the CLI."""
    utterances: int = 0
    """Utterances handed to the brain."""
    cancelled_wakes: int = 0
    """Runs ended by barge-in, a push-to-talk over them, or silence after the wake (not by "stop")."""
    listen_timeouts: int = 0
    """Of those, ended because nothing was said."""
    errors: int = 0
    """Stage failures (coded ERROR events)."""

    def as_dict(self) -> dict[str, int]:
        """Plain mapping for events and logs."""
        return dataclasses.asdict(self)


_STAGES = {
    "wake_to_end_of_speech": ("wake", "end_of_speech"),
    "end_of_speech_to_tool_call": ("end_of_speech", "tool_call"),
    "end_of_speech_to_action": ("end_of_speech", "action"),
    "end_of_speech_to_first_audio": ("end_of_speech", "first_audio"),
    "think": ("think_start", "think_end"),
}
"""Published stage figure -> (first mark, second mark)."""


@dataclass
class Run:
    """Book-keeping for one wake-to-reply run."""

    id: int
    reason: str
    cancel: threading.Event = field(default_factory=threading.Event)
    marks: dict[str, float] = field(default_factory=dict)
    """monotonic() readings: wake, end_of_speech, think_start, think_end, tool_call, action, first_audio."""
    transcript: str | None = None
    reply: str = ""
    outcome: str = "pending"
    brain_counts: dict[str, int] = field(default_factory=dict)
    """The brain's counts for this run (tokens, rounds)."""
    brain_flags: frozenset[str] = frozenset()
    """The brain's flags for this run (``prefetched``: the early decode served it)."""

    def mark(self, name: str, when: float | None = None) -> None:
        """Note the first time ``name`` happened (later calls keep the first reading)."""
        if name not in self.marks:
            self.marks[name] = time.monotonic() if when is None else when

    def timings_ms(self) -> dict[str, float]:
        """Stage figures in milliseconds; only those whose marks exist."""
        out: dict[str, float] = {}
        for name, (start, end) in _STAGES.items():
            if start in self.marks and end in self.marks:
                out[name] = round((self.marks[end] - self.marks[start]) * 1000.0, 1)
        return out

    def report(self, counters: Counters) -> RunReport:
        """What RUN_END publishes about this run."""
        return RunReport(
            run=self.id,
            reason=self.reason,
            outcome=self.outcome,
            transcript=self.transcript,
            reply=self.reply,
            timings_ms=self.timings_ms(),
            counts=dict(self.brain_counts),
            flags=tuple(sorted(self.brain_flags)),
            counters=counters.as_dict(),
        )


@dataclass(frozen=True, slots=True)
class RunReport:
    """The RUN_END payload: one run's outcome, timings (ms), brain counts and flags, counters."""

    run: int
    reason: str
    outcome: str
    transcript: str | None
    reply: str
    timings_ms: Mapping[str, float]
    """Stage durations in milliseconds (only those that happened)."""
    counts: Mapping[str, int]
    """The brain's counts (tokens, decode steps, rounds)."""
    flags: tuple[str, ...]
    """The brain's flags, sorted (``prefetched``: the early decode was used)."""
    counters: Mapping[str, int]
    """Running totals since start (Counters)."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form: the event data and the MQTT timings message.

        Flags go out as ``{"prefetched": true}``: a mapping of booleans survives the
        device's number-only timings filter, where a list would not.
        """
        data = dataclasses.asdict(self)
        data["flags"] = dict.fromkeys(self.flags, True)
        return data
