"""The audio front end: frames -> VAD -> endpointer -> Utterances.

The Segmenter owns the samples: a pre-roll ring buffer (so the first syllable
survives the speech-start delay) and the utterance being collected. It is fed one
frame at a time, so the daemon uses it incrementally and files use it in a loop.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from assistant.audio.endpointer import Endpointer, EndpointEvent, EndpointEventType
from assistant.audio.pcm import Framer
from assistant.audio.sources import WavFileSource
from assistant.audio.vad import Vad, make_vad
from assistant.audio.wav import DEFAULT_MAX_SECONDS
from assistant.config import VadSettings
from assistant.types import SAMPLE_RATE, SAMPLE_WIDTH, AudioFrame, Utterance

_LOGGER = logging.getLogger(__name__)

_END_EVENTS = (EndpointEventType.SPEECH_END, EndpointEventType.MAX_LENGTH, EndpointEventType.DISCARDED)

_GATE_MARGIN_DB = 3.0
"""A frame must be this far above the tracked noise floor to count as speech (local SNR >= 0 dB)."""
_EDGE_MARGIN_DB = 4.0
"""Boundary refinement: a 10 ms window this far above the floor is still speech."""
_FLOOR_RISE_DB_PER_S = 1.0
"""How fast the noise-floor estimate climbs when the room gets louder (it falls at once)."""
_WINDOW = SAMPLE_RATE // 100
"""Boundary refinement resolution: 10 ms."""
_END_SEARCH_S = 0.3
"""VADs keep saying speech for a while after it stopped (webrtcvad's hangover, Silero's lag)."""
_START_SEARCH_S = 0.15
_FULL_SCALE_DB = 20 * math.log10(32768.0)


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB full scale (-100 for digital silence)."""
    if samples.size == 0:
        return -100.0
    power = float(np.dot(samples.astype(np.float32), samples.astype(np.float32))) / samples.size
    return max(-100.0, 10 * math.log10(power + 1e-12) - _FULL_SCALE_DB)


def _window_levels(pcm: np.ndarray) -> np.ndarray:
    """dBFS of consecutive 10 ms windows."""
    n = pcm.size // _WINDOW
    if n == 0:
        return np.zeros(0)
    win = pcm[: n * _WINDOW].astype(np.float32).reshape(n, _WINDOW)
    power = np.einsum("ij,ij->i", win, win) / _WINDOW
    levels: np.ndarray = np.maximum(-100.0, 10 * np.log10(power + 1e-12) - _FULL_SCALE_DB)
    return levels


@dataclass(frozen=True, slots=True)
class SegmenterStep:
    """What one frame produced: finished utterances and the endpointer's events."""

    utterances: list[Utterance] = field(default_factory=list)
    events: list[EndpointEvent] = field(default_factory=list)

    @property
    def timed_out(self) -> bool:
        """True when the armed no-speech timeout expired on this frame (nothing was said)."""
        return any(e.type is EndpointEventType.TIMEOUT for e in self.events)


class Segmenter:
    """Cuts a frame stream into Utterances.

    ``Utterance.start_s``/``end_s`` are where speech started and stopped (stream
    seconds); the PCM also holds up to ``pre_roll_ms`` before the start and as much
    after the end (trailing context helps recognizers), never more than
    ``max_utterance_s`` in total.
    """

    def __init__(
        self,
        settings: VadSettings | None = None,
        *,
        vad: Vad | None = None,
        source: str = "stream",
        site: str = "default",
    ) -> None:
        self.settings = settings = settings if settings is not None else VadSettings()
        self.vad = vad if vad is not None else make_vad(settings)
        self.source = source
        self.site = site
        self.frame_samples = SAMPLE_RATE * self.vad.frame_ms // 1000
        self._frame_bytes = self.frame_samples * SAMPLE_WIDTH
        self._frame_s = self.frame_samples / SAMPLE_RATE
        self.pre_roll_s = settings.pre_roll_ms / 1000
        self.max_total_s = settings.max_utterance_s
        # The cut counts speech only; leave room for the pre-roll inside the 30 s limit.
        self.endpointer = Endpointer.from_settings(
            settings, max_utterance_s=max(self._frame_s, settings.max_utterance_s - self.pre_roll_s)
        )
        # Enough history for the pre-roll before a start that refinement may move earlier.
        history_s = self.pre_roll_s + _START_SEARCH_S + settings.speech_start_ms / 1000 + 2 * self._frame_s
        self._history: deque[AudioFrame] = deque(maxlen=max(1, math.ceil(history_s / self._frame_s)))
        self._collected: list[AudioFrame] = []
        self._framer: Framer | None = None
        self._started = False
        self.min_speech_dbfs = settings.min_speech_dbfs
        self.noise_floor_dbfs: float | None = None
        """Tracked background level: falls to any quieter frame at once, climbs slowly."""
        self._arm_timeout_s: float | None = None
        self._arm_deadline_s: float | None = None
        self._arm_pending = False

    # ------------------------------------------------------------------ control

    def arm(self, timeout_s: float | None = None) -> None:
        """Start the no-speech timeout (after a wake); a TIMEOUT event follows if nothing is said.

        After ``reset`` the clock follows the next frame, so the timeout starts there. A
        voiced burst too short to be an utterance (a cough, a click) does not use the
        timeout up: it runs on to its original deadline.
        """
        self._arm_timeout_s = self.endpointer.no_speech_timeout_s if timeout_s is None else timeout_s
        if self._started:
            self._arm_now()
        else:
            self._arm_pending = True

    def _arm_now(self) -> None:
        timeout_s = self._arm_timeout_s if self._arm_timeout_s is not None else 0.0
        self._arm_deadline_s = self.endpointer.time_s + timeout_s
        self._arm_pending = False
        self.endpointer.arm(timeout_s)

    def disarm(self) -> None:
        """Stop the no-speech timeout."""
        self._arm_pending = False
        self._arm_deadline_s = None
        self.endpointer.disarm()

    def reset(self) -> None:
        """Drop any utterance in progress, the pre-roll and VAD state.

        The endpointer's clock follows the next frame's timestamp: the daemon feeds the
        segmenter only while listening, so stream time has moved on since the last frame.
        """
        self.endpointer.reset()
        self._arm_pending = False
        self._arm_deadline_s = None
        self.vad.reset()
        self._history.clear()
        self._collected = []
        self._framer = None
        self._started = False

    @property
    def in_speech(self) -> bool:
        """True while an utterance is being collected."""
        return bool(self._collected)

    def pending_pcm(self, min_silence_s: float) -> bytes | None:
        """The audio of the utterance in progress once it has been silent ``min_silence_s``.

        While the endpointer still waits out its hangover the words are usually over: a
        brain can start on this audio early (speculatively). It starts at a 10 ms multiple
        before the finished utterance's PCM and holds all its speech, so the two agree
        after trimming silence on a 10 ms grid. None while voiced or not in speech.
        """
        if not self._collected or self.endpointer.trailing_silence_s < min_silence_s - 1e-9:
            return None
        return b"".join(f.pcm for f in self._collected)

    # ------------------------------------------------------------------ feeding

    def feed(self, frame: AudioFrame) -> list[Utterance]:
        """Add one frame; return the utterances it completed."""
        return self.step(frame).utterances

    def step(self, frame: AudioFrame) -> SegmenterStep:
        """Add one frame; return completed utterances and endpointer events."""
        if not self._started:
            self._started = True
            self.endpointer.reset(time_s=frame.timestamp)
            if self._arm_pending:
                self._arm_now()
        if len(frame.pcm) == self._frame_bytes and self._framer is None:
            return self._step_vad_frame(frame)
        # Frames of another size: re-cut them to the VAD's frame length.
        framer = self._framer
        if framer is not None and abs(framer.time_s + framer.pending_s - frame.timestamp) > 0.005:
            self._framer = None  # a gap in the stream: start a new grid at this frame
        if self._framer is None:
            self._framer = Framer(self.frame_samples, start_s=frame.timestamp)
        result = SegmenterStep()
        for vad_frame in self._framer.push(np.frombuffer(frame.pcm, dtype="<i2")):
            part = self._step_vad_frame(vad_frame)
            result.utterances.extend(part.utterances)
            result.events.extend(part.events)
        return result

    def flush(self) -> list[Utterance]:
        """End of stream: close the utterance in progress, if long enough."""
        utterances: list[Utterance] = []
        if self._framer is not None:
            for vad_frame in self._framer.flush():
                utterances.extend(self._step_vad_frame(vad_frame).utterances)
        for event in self.endpointer.finish():
            utterance = self._close(event)
            if utterance is not None:
                utterances.append(utterance)
        self._collected = []
        return utterances

    def _gate(self, frame: AudioFrame) -> bool:
        """True when the frame is loud enough to be speech (absolute gate and above the noise floor)."""
        level = level_dbfs(np.frombuffer(frame.pcm, dtype="<i2"))
        floor = self.noise_floor_dbfs
        if floor is None or level < floor:
            floor = level
        else:
            floor += _FLOOR_RISE_DB_PER_S * self._frame_s
        self.noise_floor_dbfs = floor
        # webrtcvad calls a faint noise floor speech until its noise model has adapted.
        return level >= self.min_speech_dbfs and level >= floor + _GATE_MARGIN_DB

    def _step_vad_frame(self, frame: AudioFrame) -> SegmenterStep:
        gap = frame.timestamp - self.endpointer.time_s
        if abs(gap) > self._frame_s / 2:
            # Frames went missing (dropped by a slow loop, or not fed while idle): the
            # clock follows the stream, so event times stay in stream seconds and the
            # cut of the collected samples stays where the speech is.
            if self._collected:
                _LOGGER.debug("%.0f ms gap in the stream inside an utterance", 1000 * gap)
            self.endpointer.sync(frame.timestamp)
        loud = self._gate(frame)
        # Run the VAD on every frame so its internal state follows the stream.
        voiced = self.vad.is_speech(frame.pcm) and loud
        if self._collected:
            self._collected.append(frame)
        else:
            self._history.append(frame)
        events = self.endpointer.process(self._frame_s, voiced)
        result = SegmenterStep(events=events)
        for event in events:
            if event.type is EndpointEventType.SPEECH_START:
                keep_from = event.time_s - self.pre_roll_s - _START_SEARCH_S
                self._collected = [f for f in self._history if f.timestamp + self._frame_s > keep_from + 1e-9]
                self._history.clear()
            elif event.type in _END_EVENTS:
                utterance = self._close(event)
                if utterance is not None:
                    result.utterances.append(utterance)
                    self._arm_deadline_s = None  # something was said: the timeout is over
                elif self._arm_deadline_s is not None:
                    # Speech start disarmed the endpointer, but nothing was said after all.
                    self.endpointer.arm(max(0.0, self._arm_deadline_s - self.endpointer.time_s))
            elif event.type is EndpointEventType.TIMEOUT:
                self._arm_deadline_s = None
        return result

    def _close(self, event: EndpointEvent) -> Utterance | None:
        collected, self._collected = self._collected, []
        # Frames after the end stay available as pre-roll for the next utterance.
        self._history.clear()
        self._history.extend(collected[-(self._history.maxlen or 1) :])
        if event.type is EndpointEventType.DISCARDED or not collected or event.start_s is None:
            if event.type is EndpointEventType.DISCARDED:
                burst_ms = 1000 * (event.time_s - (event.start_s or 0.0))
                _LOGGER.debug("dropped a %.0f ms burst of voice", burst_ms)
            return None
        start, end = event.start_s, event.time_s
        t0 = collected[0].timestamp
        pcm = b"".join(f.pcm for f in collected)
        start, end = self._refine(np.frombuffer(pcm, dtype="<i2"), t0, start, end, event.type)
        begin_s = max(t0, start - self.pre_roll_s)
        stop_s = end if event.type is EndpointEventType.MAX_LENGTH else end + self.pre_roll_s
        stop_s = min(stop_s, begin_s + self.max_total_s)
        first = max(0, round((begin_s - t0) * SAMPLE_RATE)) * SAMPLE_WIDTH
        last = min(len(pcm), round((stop_s - t0) * SAMPLE_RATE) * SAMPLE_WIDTH)
        _LOGGER.debug("utterance %.2f-%.2f s (%s)", start, end, event.type)
        return Utterance(
            pcm=pcm[first:last],
            start_s=round(start, 3),
            end_s=round(end, 3),
            source=self.source,
            site=self.site,
        )

    def _refine(
        self, pcm: np.ndarray, t0: float, start: float, end: float, kind: EndpointEventType
    ) -> tuple[float, float]:
        """Move start/end to where the level crosses the noise floor, at 10 ms resolution.

        VAD decisions come per frame and lag (hangover); the level of 10 ms windows
        around each boundary says where speech really began and stopped.
        """
        levels = _window_levels(pcm)
        if levels.size == 0:
            return start, end
        floor = self.noise_floor_dbfs if self.noise_floor_dbfs is not None else -100.0
        threshold = max(self.min_speech_dbfs, floor + _EDGE_MARGIN_DB)
        above = levels >= threshold
        # A single loud 10 ms window in noise is chance; speech lasts at least two.
        loud = above & (np.roll(above, 1) | np.roll(above, -1))

        def index(t: float) -> int:
            return min(levels.size - 1, max(0, int((t - t0) * 100)))

        i = index(start)
        lowest = index(start - _START_SEARCH_S)
        if loud[i]:
            while i > lowest and loud[i - 1]:
                i -= 1
        else:
            highest = index(start + _START_SEARCH_S)
            while i < highest and not loud[i]:
                i += 1
            if not loud[i]:
                i = index(start)
        new_start = t0 + i / 100
        if kind is not EndpointEventType.MAX_LENGTH:
            j = index(end) - 1
            lowest = max(i, index(end - _END_SEARCH_S))
            while j > lowest and not loud[j]:
                j -= 1
            if loud[j]:
                end = min(end, t0 + (j + 1) / 100)
        return new_start, max(end, new_start + 0.01)


def segment_frames(
    frames: Iterable[AudioFrame],
    settings: VadSettings | None = None,
    *,
    vad: Vad | None = None,
    source: str = "stream",
) -> list[Utterance]:
    """Run a finite frame stream through a fresh Segmenter."""
    segmenter = Segmenter(settings, vad=vad, source=source)
    utterances: list[Utterance] = []
    for frame in frames:
        utterances.extend(segmenter.feed(frame))
    utterances.extend(segmenter.flush())
    return utterances


def utterances_from_file(
    path: str | os.PathLike[str],
    settings: VadSettings | None = None,
    *,
    vad: Vad | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> list[Utterance]:
    """Every utterance in a WAV file (any PCM format; AudioError for a bad file)."""
    settings = settings if settings is not None else VadSettings()
    with WavFileSource(path, frame_ms=settings.frame_ms, max_seconds=max_seconds) as source:
        return segment_frames(source, settings, vad=vad, source=os.fspath(path))
