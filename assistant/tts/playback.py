"""Play int16 PCM on the output device in short blocks so a cancel takes effect fast.

The audio front end may provide ``assistant.audio.playback.play(pcm, rate, device, volume,
cancel)``; when it does, ``make_player`` uses it, otherwise the small sounddevice helper
here plays.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from assistant.errors import AssistantError, TtsError
from assistant.tts.base import Pcm, Player

_LOGGER = logging.getLogger(__name__)

BLOCK_S = 0.05
"""Playback block length: the worst-case delay between a cancel and silence."""


def scale(pcm: Pcm, volume: float) -> Pcm:
    """Apply a 0..1 volume to int16 samples without wrap-around."""
    if volume >= 1.0:
        return pcm
    scaled = pcm.astype(np.float32) * max(0.0, volume)
    out: Pcm = np.clip(scaled, -32768, 32767).astype(np.int16)
    return out


class SoundDevicePlayer:
    """Plays through a sounddevice OutputStream opened per clip (device by index or name)."""

    def __init__(self, device: str | int | None = None, volume: float = 1.0) -> None:
        self.device = device
        self.volume = volume
        self._lock = threading.Lock()  # one clip at a time on the device

    def play(
        self, pcm: Pcm, rate: int, cancel: threading.Event, on_start: Callable[[], None] | None = None
    ) -> bool:
        """Play to the end (True) or until ``cancel`` is set (False)."""
        if cancel.is_set():
            return False
        try:
            import sounddevice as sd  # noqa: PLC0415 - PortAudio is loaded only when audio is played
        except OSError as err:
            raise TtsError(f"cannot load PortAudio: {err}", code="tts_output_unavailable") from err
        samples = scale(np.asarray(pcm, dtype=np.int16).reshape(-1), self.volume)
        block = max(1, int(rate * BLOCK_S))
        with self._lock:
            try:
                stream = sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
            except (sd.PortAudioError, ValueError) as err:
                raise TtsError(
                    f"cannot open output device {self.device!r}: {err}", code="tts_output_unavailable"
                ) from err
            cancelled = False
            try:
                stream.start()
                if on_start is not None:
                    on_start()
                for start in range(0, len(samples), block):
                    if cancel.is_set():
                        cancelled = True
                        break
                    stream.write(samples[start : start + block].reshape(-1, 1))
            except sd.PortAudioError as err:
                raise TtsError(f"playback failed: {err}", code="tts_output_failed") from err
            finally:
                try:
                    if cancelled:
                        stream.abort()  # drop what is queued: silence now
                    else:
                        stream.stop()  # let the last block drain
                    stream.close()
                except sd.PortAudioError as err:
                    _LOGGER.debug("closing output stream: %s", err)
            return not cancelled and not cancel.is_set()


class FrontEndPlayer:
    """Adapter over ``assistant.audio.playback.play`` from the audio front end."""

    def __init__(self, play: Callable[..., Any], device: str | int | None, volume: float) -> None:
        self._play = play
        self.device = device
        self.volume = volume

    def play(
        self, pcm: Pcm, rate: int, cancel: threading.Event, on_start: Callable[[], None] | None = None
    ) -> bool:
        """Play to the end (True) or until ``cancel`` is set (False)."""
        if cancel.is_set():
            return False
        if on_start is not None:
            on_start()
        try:
            completed = self._play(pcm, rate, device=self.device, volume=self.volume, cancel=cancel)
        except AssistantError as err:
            raise TtsError(err.message, code=err.code) from err
        return bool(completed) and not cancel.is_set()


def make_player(device: str | int | None = None, volume: float = 1.0) -> Player:
    """The front end's player when it exists, else the local sounddevice helper."""
    if importlib.util.find_spec("assistant.audio.playback") is not None:
        module = importlib.import_module("assistant.audio.playback")
        play = getattr(module, "play", None)
        if callable(play):
            return FrontEndPlayer(play, device, volume)
    return SoundDevicePlayer(device, volume)
