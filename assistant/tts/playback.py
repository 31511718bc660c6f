"""The TTS sinks' player: the audio front end's ``play`` behind the small Player interface.

``assistant.audio.playback.play`` plays int16 PCM in short blocks and stops within one
block of a cancel; this adapter adds the ``on_start`` hook the sinks use to time the
first audio out, and turns audio errors into TTS errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from assistant.audio.playback import play
from assistant.errors import AssistantError, TtsError
from assistant.tts.base import Pcm, Player


class DevicePlayer:
    """Plays on one output device (index or name part) at one volume."""

    def __init__(self, device: str | int | None, volume: float) -> None:
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
            completed = play(pcm, rate, device=self.device, volume=self.volume, cancel=cancel)
        except AssistantError as err:
            raise TtsError(err.message, code=err.code) from err
        return bool(completed) and not cancel.is_set()


def make_player(device: str | int | None = None, volume: float = 1.0) -> Player:
    """A player for the configured output device and volume."""
    return DevicePlayer(device, volume)
