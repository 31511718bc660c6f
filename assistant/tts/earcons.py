"""Earcons: the short wake / done / error sounds (WAVs made by scripts/make_earcons.py)."""

from __future__ import annotations

import logging
import threading
import wave
from pathlib import Path
from typing import Literal

import numpy as np

from assistant.errors import TtsError
from assistant.tts.base import Pcm, Player

_LOGGER = logging.getLogger(__name__)

EARCON_DIR = Path(__file__).resolve().parent.parent / "data" / "earcons"
"""Where the shipped earcon WAVs live inside the package."""

EarconName = Literal["wake", "done", "error"]
EARCONS: tuple[EarconName, ...] = ("wake", "done", "error")


def load_wav(path: Path) -> tuple[Pcm, int]:
    """A 16-bit mono WAV file as (samples, rate)."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise TtsError(f"{path}: earcons must be 16-bit mono WAV", code="tts_bad_audio")
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as err:
        raise TtsError(f"cannot read earcon {path}: {err}", code="tts_bad_audio") from err
    return np.frombuffer(frames, dtype="<i2").astype(np.int16), rate


class EarconPlayer:
    """Plays the earcons through a Player; a missing or broken file is logged, never fatal."""

    def __init__(self, player: Player, folder: Path = EARCON_DIR) -> None:
        self.player = player
        self.sounds: dict[str, tuple[Pcm, int]] = {}
        for name in EARCONS:
            try:
                self.sounds[name] = load_wav(folder / f"{name}.wav")
            except TtsError as err:
                _LOGGER.warning("Earcon %s unavailable: %s", name, err)

    def play(self, name: str, cancel: threading.Event | None = None) -> None:
        """Play one earcon to the end (blocking; call from a worker thread)."""
        sound = self.sounds.get(name)
        if sound is None:
            return
        try:
            self.player.play(sound[0], sound[1], cancel or threading.Event())
        except TtsError as err:
            _LOGGER.warning("Earcon %s not played: %s", name, err)


class SilentEarcons:
    """For sinks with no speaker (mqtt, file, none)."""

    def play(self, name: str, cancel: threading.Event | None = None) -> None:
        """Do nothing."""
