"""The TTS sink interface, sentence streaming and the small helpers every sink shares.

A sink turns reply text into sound (or a file, or an MQTT message). ``speak`` blocks the
calling worker thread until the reply is out or ``cancel`` is set; cancellation is
honoured within one playback block (~50 ms).
"""

from __future__ import annotations

import logging
import queue
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from assistant.errors import ErrorCode, TtsError

_LOGGER = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]
"""Mono int16 samples."""

MAX_TEXT_CHARS = 2000
"""Longer replies are cut: a reply is a sentence or two, never a document."""


@dataclass(frozen=True, slots=True)
class SpeakResult:
    """How one ``speak`` call ended."""

    completed: bool
    """True when the whole reply went out; False when cancelled."""
    first_audio_at: float | None = None
    """``time.monotonic()`` when the first sample was handed to the output (None: no audio)."""
    path: str | None = None
    """For the file sink: the WAV written."""


class TtsSink(Protocol):
    """Where replies go."""

    name: str

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Say ``text``; returns when done, or within ~50 ms of ``cancel`` being set."""
        ...

    def close(self) -> None:
        """Release devices and models."""
        ...


class Synthesizer(Protocol):
    """Text to PCM."""

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        """One piece of text to (int16 samples, sample rate)."""
        ...

    def stream(self, text: str) -> Iterator[tuple[Pcm, int]]:
        """Sentence by sentence, so playback can start with the first one."""
        ...


class Player(Protocol):
    """Plays int16 PCM, honouring a cancel flag between short blocks."""

    volume: float

    def play(
        self, pcm: Pcm, rate: int, cancel: threading.Event, on_start: Callable[[], None] | None = None
    ) -> bool:
        """Play to the end (True) or until ``cancel`` is set (False)."""
        ...


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    """Split reply text into sentences for streaming; never returns empty pieces."""
    clean = " ".join(text.split())[:MAX_TEXT_CHARS]
    return [part for part in _SENTENCE_END.split(clean) if part.strip()]


def wav_bytes_to_pcm(data: bytes) -> tuple[Pcm, int]:
    """Parse a 16-bit mono PCM WAV held in memory, tolerating the bogus sizes of streamed WAVs.

    ``espeak-ng --stdout`` cannot seek back, so its RIFF and data sizes are placeholders;
    the data chunk is taken to run to the end of the buffer.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TtsError("synthesizer output is not a WAV file", code="tts_bad_audio")
    pos = 12
    rate = channels = bits = 0
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                break
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if fmt != 1 or channels != 1 or bits != 16:
                raise TtsError(
                    f"synthesizer output must be 16-bit mono PCM (format {fmt}, {channels} ch, {bits} bit)",
                    code="tts_bad_audio",
                )
        elif chunk_id == b"data":
            if not rate:
                break
            end = min(len(data), body + size)
            end -= (end - body) % 2
            return np.frombuffer(data[body:end], dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise TtsError("synthesizer output has no fmt/data chunk", code="tts_bad_audio")


class SentenceStreamer:
    """Synthesize sentence by sentence in a producer thread while the caller plays.

    The queue between them is bounded (two sentences ahead), so a long reply never holds
    more than a few seconds of audio in memory, and a cancel stops both sides.
    """

    def __init__(self, synthesizer: Synthesizer, player: Player, *, ahead: int = 2) -> None:
        self.synthesizer = synthesizer
        self.player = player
        self.ahead = ahead

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Say ``text`` through the player; synthesis errors raise TtsError."""
        chunks: queue.Queue[tuple[Pcm, int] | BaseException | None] = queue.Queue(maxsize=self.ahead)
        done = threading.Event()  # tells the producer the consumer has gone

        def put(item: tuple[Pcm, int] | BaseException | None) -> bool:
            while not (cancel.is_set() or done.is_set()):
                try:
                    chunks.put(item, timeout=0.05)
                except queue.Full:
                    continue
                return True
            return False

        def produce() -> None:
            try:
                for chunk in self.synthesizer.stream(text):
                    if not put(chunk):
                        return
            except Exception as err:  # handed to the consumer, raised there with a code
                put(err)
                return
            put(None)

        producer = threading.Thread(target=produce, name="tts-synth", daemon=True)
        producer.start()
        first_audio: list[float] = []

        def started() -> None:
            if not first_audio:
                first_audio.append(time.monotonic())

        completed = False
        try:
            while not cancel.is_set():
                try:
                    item = chunks.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is None:
                    completed = True
                    break
                if isinstance(item, BaseException):
                    raise _synthesis_error(item)
                pcm, rate = item
                if not self.player.play(pcm, rate, cancel, on_start=started):
                    break
        finally:
            done.set()
            producer.join(timeout=1.0)
        return SpeakResult(completed=completed and not cancel.is_set(),
                           first_audio_at=first_audio[0] if first_audio else None)


def _synthesis_error(err: BaseException) -> TtsError:
    """What the producer thread raised, as a coded TtsError (its cause kept)."""
    if isinstance(err, TtsError):
        return err
    wrapped = TtsError(f"speech synthesis failed: {err}", code=ErrorCode.TTS_SYNTHESIS_FAILED)
    wrapped.__cause__ = err
    return wrapped


def sentence_stream(synthesize: Callable[[str], tuple[Pcm, int]], text: str) -> Iterator[tuple[Pcm, int]]:
    """Default ``Synthesizer.stream``: split into sentences, synthesize each."""
    for sentence in split_sentences(text):
        yield synthesize(sentence)
