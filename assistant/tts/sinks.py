"""The sinks: speaker (espeak-ng or piper), MQTT text, a WAV file per reply, none."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

from assistant.errors import TtsError
from assistant.tools.context import Publish
from assistant.tts.base import MAX_TEXT_CHARS, Pcm, Player, SentenceStreamer, SpeakResult, Synthesizer

_LOGGER = logging.getLogger(__name__)

class SpeakerSink:
    """Synthesize and play, starting with the first sentence while the rest synthesize."""

    def __init__(self, name: str, synthesizer: Synthesizer, player: Player) -> None:
        self.name = name
        self.synthesizer = synthesizer
        self.player = player
        self._streamer = SentenceStreamer(synthesizer, player)

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        """The whole reply as one clip (samples, rate), without playing it."""
        return self.synthesizer.synthesize(" ".join(text.split())[:MAX_TEXT_CHARS])

    def set_volume(self, percent: int) -> None:
        """Play replies and earcons at ``percent`` (0..100) of full scale from the next clip on."""
        self.player.volume = max(0, min(100, percent)) / 100

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Say ``text`` on the output device."""
        if not text.strip():
            return SpeakResult(completed=True)
        return self._streamer.speak(text, cancel)

    def play_pcm(self, pcm: bytes, rate: int, cancel: threading.Event) -> SpeakResult:
        """Play int16 mono ``pcm`` made elsewhere (Home Assistant's spoken answer) on the output device."""
        started: list[float] = []
        samples = np.frombuffer(pcm[:len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.int16)
        completed = self.player.play(samples, rate, cancel, on_start=lambda: started.append(time.monotonic()))
        return SpeakResult(completed=completed, first_audio_at=started[0] if started else None)

    def close(self) -> None:
        """Nothing held between replies (the stream opens per clip)."""


class MqttSink:
    """Publish the reply text on a topic, for Home Assistant to speak on a media player."""

    name = "mqtt"

    def __init__(self, publish: Publish, topic: str) -> None:
        if any(c in topic for c in "+#") or not topic:
            raise TtsError(f"tts.topic must be a topic without wildcards, got {topic!r}", code="tts_config")
        self.publish = publish
        self.topic = topic

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Publish ``text``; returns at once."""
        clean = " ".join(text.split())[:MAX_TEXT_CHARS]
        if not clean or cancel.is_set():
            return SpeakResult(completed=not cancel.is_set())
        try:
            self.publish(self.topic, clean)
        except Exception as err:
            raise TtsError(f"cannot publish reply on {self.topic}: {err}", code="tts_publish_failed") from err
        return SpeakResult(completed=True, first_audio_at=time.monotonic())

    def close(self) -> None:
        """The MQTT client belongs to the caller."""


_REPLY_NAME = re.compile(r"^reply-(\d{6,})\.wav$")


class FileSink:
    """Write each reply as ``reply-NNNNNN.wav`` (increasing numbers), atomically."""

    name = "file"

    def __init__(self, synthesizer: Synthesizer, output_dir: Path) -> None:
        self.synthesizer = synthesizer
        self.output_dir = output_dir
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TtsError(f"cannot create {output_dir}: {err}", code="tts_output_unavailable") from err
        self._lock = threading.Lock()
        self._next = self._scan() + 1

    def _scan(self) -> int:
        highest = 0
        for entry in self.output_dir.iterdir():
            match = _REPLY_NAME.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
        return highest

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        """The whole reply as one clip (samples, rate), without writing it."""
        return self.synthesizer.synthesize(" ".join(text.split())[:MAX_TEXT_CHARS])

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Synthesize ``text`` sentence by sentence into one WAV; nothing is written when cancelled."""
        if not text.strip():
            return SpeakResult(completed=True)
        parts = []
        rate = 0
        for pcm, chunk_rate in self.synthesizer.stream(text):
            if cancel.is_set():
                return SpeakResult(completed=False)
            if rate and chunk_rate != rate:
                raise TtsError("synthesizer changed sample rate mid-reply", code="tts_bad_audio")
            rate = chunk_rate
            parts.append(np.asarray(pcm, dtype=np.int16).reshape(-1))
        if cancel.is_set() or not parts:
            return SpeakResult(completed=not cancel.is_set())
        audio = np.concatenate(parts)
        with self._lock:
            # Re-scan: another process (or a restart) may have written since.
            number = max(self._next, self._scan() + 1)
            path = self.output_dir / f"reply-{number:06d}.wav"
            self._write_atomic(path, audio.astype("<i2").tobytes(), rate)
            self._next = number + 1
        _LOGGER.info("Reply written to %s", path)
        return SpeakResult(completed=True, first_audio_at=time.monotonic(), path=str(path))

    def _write_atomic(self, path: Path, frames: bytes, rate: int) -> None:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".reply-", suffix=".tmp", dir=self.output_dir)
            try:
                with os.fdopen(fd, "wb") as handle, wave.open(handle, "wb") as wav:
                    wav.setnchannels(1)
                    wav.setsampwidth(2)
                    wav.setframerate(rate)
                    wav.writeframes(frames)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            raise TtsError(f"cannot write {path}: {err}", code="tts_output_failed") from err

    def close(self) -> None:
        """Nothing held."""


class NullSink:
    """Say nothing (the reply is still logged and published as an event)."""

    name = "none"

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        """Log the text and return."""
        _LOGGER.debug("Reply (tts none): %s", text)
        return SpeakResult(completed=not cancel.is_set())

    def close(self) -> None:
        """Nothing held."""
