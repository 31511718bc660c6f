"""espeak-ng: the embedded default voice, run as a subprocess (no shell)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterator

from assistant.errors import TtsError
from assistant.tts.base import Pcm, sentence_stream, wav_bytes_to_pcm

_LOGGER = logging.getLogger(__name__)

TIMEOUT_S = 20.0
"""A sentence that takes longer than this to synthesize means espeak-ng hangs."""


class EspeakSynthesizer:
    """Text to PCM with the espeak-ng command (22 050 Hz mono int16)."""

    def __init__(self, voice: str | None = None, speed: int = 175, *, binary: str = "espeak-ng") -> None:
        path = shutil.which(binary)
        if path is None:
            raise TtsError(
                f"{binary} is not installed (Debian / Raspberry Pi OS: sudo apt install espeak-ng)",
                code="tts_unavailable",
            )
        self.binary = path
        self.voice = voice or "en-us"
        if not 80 <= speed <= 500:
            raise TtsError(f"espeak-ng speed must be 80..500 wpm, got {speed}", code="tts_config")
        self.speed = speed

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        """One piece of text to (samples, rate); the text goes in on stdin, never as an option."""
        argv = [self.binary, "--stdout", "--stdin", "-v", self.voice, "-s", str(self.speed)]
        try:
            proc = subprocess.run(  # noqa: S603 - fixed argv, text on stdin
                argv, input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise TtsError("espeak-ng timed out", code="tts_synthesis_failed") from err
        except OSError as err:
            raise TtsError(f"cannot run espeak-ng: {err}", code="tts_unavailable") from err
        if proc.returncode != 0 or not proc.stdout:
            reason = proc.stderr.decode("utf-8", "replace").strip()[:200]
            raise TtsError(
                f"espeak-ng failed (exit {proc.returncode}) for voice {self.voice!r}: {reason}",
                code="tts_synthesis_failed",
            )
        return wav_bytes_to_pcm(proc.stdout)

    def stream(self, text: str) -> Iterator[tuple[Pcm, int]]:
        """Sentence by sentence."""
        return sentence_stream(self.synthesize, text)
