"""The small typed objects that flow through the pipeline, one way.

audio frames -> Utterance -> ToolCall -> ToolResult -> Reply -> audio out.
Every arrow is a frozen dataclass a test can build by hand. Audio is always
16 kHz mono signed 16-bit little-endian PCM inside the house; sources convert
at the edge.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SAMPLE_RATE = 16_000
"""Samples per second of every frame and utterance inside the pipeline."""

SAMPLE_WIDTH = 2
"""Bytes per sample (int16)."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A short block of 16 kHz mono int16 PCM.

    ``timestamp`` is the stream time in seconds of the first sample, counted from
    the start of the source (not wall-clock), so files and live capture share one
    clock.
    """

    pcm: bytes
    timestamp: float

    @property
    def samples(self) -> int:
        """Number of samples in the frame."""
        return len(self.pcm) // SAMPLE_WIDTH

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Utterance:
    """One endpointed stretch of speech.

    ``pcm`` holds 16 kHz mono int16 PCM including the pre-roll. ``start_s`` and
    ``end_s`` are the detected speech start and end in stream seconds; ``source``
    names where it came from (a file path, ``mic:<device>``, ...). ``ended_at`` is
    the ``time.monotonic()`` reading when the endpointer closed it: the anchor
    for end-of-speech latency figures.
    """

    pcm: bytes
    start_s: float
    end_s: float
    source: str
    site: str = "default"
    ended_at: float = field(default_factory=time.monotonic)

    @property
    def duration(self) -> float:
        """Length of the PCM in seconds."""
        return len(self.pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A request to run one tool, as a brain produced it (not yet validated)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    confirm: bool = False
    """Ask before running it, as for a sensitive call: the brain is not sure it heard this
    (a number that sounds like another, "seventy" / "seventeen"). Never set from model output."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form: ``{"name", "arguments"}``."""
        return {"name": self.name, "arguments": dict(self.arguments)}


class ResultStatus(StrEnum):
    """How a tool call ended."""

    OK = "ok"
    """The handler ran and succeeded."""
    ERROR = "error"
    """Refused by validation, or the handler failed or timed out; nothing (more) happened."""
    NEEDS_CONFIRMATION = "needs_confirmation"
    """A sensitive call is parked until the user confirms it in the next turn."""
    CANCELLED = "cancelled"
    """A parked call was declined, timed out, or superseded; nothing happened."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The router's answer to one ToolCall.

    ``data`` is what the handler returned (JSON-able); ``error_code`` is set when
    ``status`` is ERROR; ``speech`` is the short spoken reply rendered from the
    tool's template (or an apology / a confirmation question).
    """

    call: ToolCall
    status: ResultStatus
    data: Mapping[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    speech: str = ""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the handler ran and succeeded."""
        return self.status is ResultStatus.OK

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able form for logs and ``assistant process --json``."""
        return {
            "name": self.call.name,
            "status": str(self.status),
            "data": dict(self.data),
            "error_code": self.error_code,
            "speech": self.speech,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """What the assistant says back, plus the site it says it at."""

    text: str
    site: str = "default"
    is_error: bool = False
    expects_answer: bool = False
    """True when the reply is a question (confirmation): listen again without wake word."""


@dataclass(frozen=True, slots=True)
class BrainTurn:
    """Everything one brain did with one utterance.

    ``transcript`` is None when the brain has no text form (Gemma listens to audio
    directly). ``timings_ms`` holds named stage durations in milliseconds, and only
    those: token counts go in ``counts`` and yes/no facts (the early decode was used)
    in ``flags``.
    """

    transcript: str | None
    tool_calls: tuple[ToolCall, ...]
    results: tuple[ToolResult, ...]
    reply: Reply
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    understood: bool = True
    """False when the brain rejected the input ("Sorry, I didn't catch that.")."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Named counts of the turn (prefill tokens, decode steps, rounds)."""
    flags: frozenset[str] = frozenset()
    """Named facts that held for the turn: ``prefetched`` (the early decode served it), ..."""


class AssistState(StrEnum):
    """Where the pipeline is: the orchestrator's states, published as the assist state sensor.

    The one list of them: the Home Assistant device advertises exactly these values.
    """

    IDLE = "idle"
    WAKE = "wake"
    LISTENING = "listening"
    THINKING = "thinking"
    ACTING = "acting"
    SPEAKING = "speaking"
    ERROR = "error"
    """A stage failed: the error earcon and the apology play, then idle."""


class EventType(StrEnum):
    """The pipeline's event vocabulary: logs, MQTT state and tests read the same names."""

    RUN_START = "run-start"
    RUN_END = "run-end"
    WAKE_DETECTED = "wake-detected"
    LISTEN_START = "listen-start"
    SPEECH_START = "speech-start"
    SPEECH_END = "speech-end"
    LISTEN_TIMEOUT = "listen-timeout"
    THINK_START = "think-start"
    THINK_END = "think-end"
    TRANSCRIPT = "transcript"
    TOOL_CALL = "tool-call"
    TOOL_RESULT = "tool-result"
    CONFIRMATION_REQUESTED = "confirmation-requested"
    TTS_START = "tts-start"
    TTS_END = "tts-end"
    CANCELLED = "cancelled"
    ERROR = "error"
    CONTROLS_CHANGED = "controls-changed"
    """Mute or volume changed: ``data`` has ``muted`` or ``volume`` and ``from_home``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in the pipeline, with a monotonic timestamp."""

    type: EventType
    data: Mapping[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.monotonic)
    site: str = "default"
