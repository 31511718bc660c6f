"""The endpointer: a pure, time-based state machine over (duration, is_speech) steps.

No audio inside, so it is tested with plain booleans. The pre-roll ring buffer is
kept by the segmenter (assistant.audio.frontend), which owns the samples.

Times are stream seconds: the machine's clock advances by each step's duration,
starting at ``start_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from assistant.config import VadSettings


class EndpointEventType(StrEnum):
    """What the endpointer can report."""

    SPEECH_START = "speech-start"
    """Enough voiced audio in a row: an utterance began at ``time_s``."""
    SPEECH_END = "speech-end"
    """Silence long enough after speech: the utterance's speech stopped at ``time_s``."""
    MAX_LENGTH = "max-length"
    """The utterance reached the maximum length and was cut at ``time_s``."""
    DISCARDED = "discarded"
    """A voiced burst shorter than the minimum utterance ended; nothing to process."""
    TIMEOUT = "timeout"
    """Armed for a wake and nothing was said for the timeout; ``time_s`` is when it expired."""


@dataclass(frozen=True, slots=True)
class EndpointEvent:
    """One endpointer decision. ``start_s`` is the utterance's speech start for end events."""

    type: EndpointEventType
    time_s: float
    start_s: float | None = None


class EndpointState(StrEnum):
    """Where the machine is."""

    SILENCE = "silence"
    SPEECH = "speech"


class Endpointer:
    """Speech starts after ``speech_start_s`` voiced in a row; ends after ``silence_end_s`` of silence.

    A start is reported at the first voiced step of the run that triggered it; an end
    at the first silent step of the run that ended it (where the speech stopped, not
    where the hangover expired). Utterances shorter than ``min_utterance_s`` are
    reported as DISCARDED; utterances reaching ``max_utterance_s`` are cut (MAX_LENGTH).
    The no-speech timeout only runs while armed (after a wake), so files and
    continuous listening never time out.
    """

    def __init__(
        self,
        *,
        speech_start_s: float = 0.09,
        silence_end_s: float = 0.6,
        min_utterance_s: float = 0.25,
        max_utterance_s: float = 30.0,
        no_speech_timeout_s: float = 8.0,
        start_s: float = 0.0,
    ) -> None:
        if speech_start_s < 0 or silence_end_s <= 0 or max_utterance_s <= 0:
            raise ValueError("endpointer durations must be positive")
        self.speech_start_s = speech_start_s
        self.silence_end_s = silence_end_s
        self.min_utterance_s = min_utterance_s
        self.max_utterance_s = max_utterance_s
        self.no_speech_timeout_s = no_speech_timeout_s
        self._time = start_s
        self._armed_at: float | None = None
        self._timeout_s = no_speech_timeout_s
        self._reset_run()

    @classmethod
    def from_settings(cls, vad: VadSettings, *, max_utterance_s: float | None = None) -> Endpointer:
        """An endpointer with the settings' durations (``max_utterance_s`` overrides the maximum)."""
        return cls(
            speech_start_s=vad.speech_start_ms / 1000,
            silence_end_s=vad.silence_end_ms / 1000,
            min_utterance_s=vad.min_utterance_ms / 1000,
            max_utterance_s=vad.max_utterance_s if max_utterance_s is None else max_utterance_s,
            no_speech_timeout_s=vad.no_speech_timeout_s,
        )

    def _reset_run(self) -> None:
        self.state = EndpointState.SILENCE
        self._voiced_since: float | None = None
        self._speech_start: float | None = None
        self._silence_since: float | None = None

    @property
    def time_s(self) -> float:
        """The machine's clock: stream time after the last step."""
        return self._time

    @property
    def trailing_silence_s(self) -> float:
        """How long the utterance in progress has been silent (0 while voiced or not in speech)."""
        if self.state is not EndpointState.SPEECH or self._silence_since is None:
            return 0.0
        return self._time - self._silence_since

    @property
    def armed(self) -> bool:
        """True while the no-speech timeout runs."""
        return self._armed_at is not None

    def arm(self, timeout_s: float | None = None) -> None:
        """Start the no-speech timeout now (after a wake); ``timeout_s`` overrides the default."""
        self._armed_at = self._time
        self._timeout_s = self.no_speech_timeout_s if timeout_s is None else timeout_s

    def disarm(self) -> None:
        """Stop the no-speech timeout."""
        self._armed_at = None

    def reset(self, *, time_s: float | None = None) -> None:
        """Forget any utterance in progress (and the timeout); optionally move the clock."""
        if time_s is not None:
            self._time = time_s
        self._armed_at = None
        self._reset_run()

    def sync(self, time_s: float) -> None:
        """Move the clock to stream time ``time_s`` (after a gap), keeping the state."""
        self._time = time_s

    def process(self, duration_s: float, is_speech: bool) -> list[EndpointEvent]:
        """Advance the clock by one step of ``duration_s``; return what that step decided."""
        if duration_s < 0:
            raise ValueError("step duration must not be negative")
        step_start = self._time
        self._time = step_end = step_start + duration_s
        events: list[EndpointEvent] = []
        if self.state is EndpointState.SILENCE:
            if is_speech:
                if self._voiced_since is None:
                    self._voiced_since = step_start
                if step_end - self._voiced_since >= self.speech_start_s - 1e-9:
                    start = self._voiced_since
                    self.state = EndpointState.SPEECH
                    self._speech_start = start
                    self._voiced_since = None
                    self._silence_since = None
                    self._armed_at = None  # something was said: the wake timeout is over
                    events.append(EndpointEvent(EndpointEventType.SPEECH_START, start))
            else:
                self._voiced_since = None
            if (
                self.state is EndpointState.SILENCE
                and self._armed_at is not None
                and step_end - self._armed_at >= self._timeout_s - 1e-9
            ):
                self._armed_at = None
                self._voiced_since = None
                events.append(EndpointEvent(EndpointEventType.TIMEOUT, step_end))
            return events
        # In speech.
        start = self._speech_start if self._speech_start is not None else step_start
        if is_speech:
            self._silence_since = None
        elif self._silence_since is None:
            self._silence_since = step_start
        if self._silence_since is not None and step_end - self._silence_since >= self.silence_end_s - 1e-9:
            end = self._silence_since
            kind = (
                EndpointEventType.SPEECH_END
                if end - start >= self.min_utterance_s - 1e-9
                else EndpointEventType.DISCARDED
            )
            self._reset_run()
            events.append(EndpointEvent(kind, end, start))
        elif step_end - start >= self.max_utterance_s - 1e-9:
            self._reset_run()
            events.append(EndpointEvent(EndpointEventType.MAX_LENGTH, step_end, start))
        return events

    def finish(self) -> list[EndpointEvent]:
        """End of stream: close an utterance in progress (speech stops where silence began)."""
        if self.state is not EndpointState.SPEECH or self._speech_start is None:
            self._reset_run()
            return []
        start = self._speech_start
        end = self._silence_since if self._silence_since is not None else self._time
        kind = (
            EndpointEventType.SPEECH_END
            if end - start >= self.min_utterance_s - 1e-9
            else EndpointEventType.DISCARDED
        )
        self._reset_run()
        return [EndpointEvent(kind, end, start)]
