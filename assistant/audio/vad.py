"""Voice activity detection: webrtcvad, or Silero's ONNX model run by onnxruntime.

Both take 16 kHz mono int16 frames of ``frame_ms`` (10, 20 or 30 ms) and answer
speech / not speech per frame.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.config import VadSettings
from assistant.errors import AudioError
from assistant.types import SAMPLE_RATE, SAMPLE_WIDTH

_LOGGER = logging.getLogger(__name__)

_FRAME_MS = (10, 20, 30)
_SILERO_CHUNK = 512
"""Samples per Silero step at 16 kHz (32 ms)."""
_SILERO_CONTEXT = 64
"""Samples of the previous chunk the model sees in front of each chunk."""
_SILERO_FILE = "silero_vad.onnx"
_SILERO_HYSTERESIS = 0.15
"""Once speaking, a frame stays voiced until the probability drops this far below the threshold."""


class Vad(Protocol):
    """Speech / not speech for fixed-size 16 kHz mono int16 frames."""

    frame_ms: int

    def is_speech(self, frame: bytes) -> bool:
        """Decide one frame of exactly ``frame_ms`` milliseconds."""
        ...

    def reset(self) -> None:
        """Forget any state carried between frames (a new stream begins)."""
        ...


def _check_frame_ms(frame_ms: int) -> int:
    if frame_ms not in _FRAME_MS:
        raise AudioError(f"VAD frame length must be 10, 20 or 30 ms, not {frame_ms}", code="vad_invalid")
    return frame_ms


class WebRtcVad:
    """webrtcvad (the webrtcvad-wheels package) with aggressiveness 0-3."""

    def __init__(self, aggressiveness: int = 2, frame_ms: int = 30) -> None:
        import webrtcvad  # noqa: PLC0415 - keep the native module out of import time of the package

        if not 0 <= aggressiveness <= 3:
            raise AudioError(
                f"webrtcvad aggressiveness must be 0..3, not {aggressiveness}", code="vad_invalid"
            )
        self.frame_ms = _check_frame_ms(frame_ms)
        self._frame_bytes = SAMPLE_RATE * frame_ms // 1000 * SAMPLE_WIDTH
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        """Decide one frame."""
        if len(frame) != self._frame_bytes:
            raise AudioError(
                f"VAD frame is {len(frame)} bytes; {self._frame_bytes} expected", code="vad_frame_size"
            )
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))

    def reset(self) -> None:
        """webrtcvad keeps only short internal state; nothing to do."""


def silero_model_path() -> Path | None:
    """The silero_vad.onnx shipped in the installed silero-vad wheel, found WITHOUT importing it.

    Importing the silero_vad package pulls in torch; only its data file is needed here.
    """
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "data" / _SILERO_FILE
            if candidate.is_file():
                return candidate
    try:
        dist = importlib.metadata.distribution("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == _SILERO_FILE:
            located = Path(str(dist.locate_file(file)))
            if located.is_file():
                return located
    return None


class SileroVad:
    """Silero VAD v5 ONNX model: 512-sample chunks with 64 samples of context, state (2, 1, 128).

    Frames of 10/20/30 ms are buffered into 512-sample chunks; each frame is judged by
    the most recent chunk's probability, with hysteresis as Silero's own utilities do.
    """

    def __init__(
        self, threshold: float = 0.5, frame_ms: int = 30, model_path: str | Path | None = None
    ) -> None:
        self.frame_ms = _check_frame_ms(frame_ms)
        if not 0.0 < threshold < 1.0:
            raise AudioError(f"Silero threshold must be between 0 and 1, not {threshold}", code="vad_invalid")
        path = Path(model_path) if model_path is not None else silero_model_path()
        if path is None or not path.is_file():
            raise AudioError(
                "Silero VAD needs the silero_vad.onnx file from the silero-vad package "
                "(pip install --no-deps silero-vad); it was not found. Use vad.engine: webrtc instead.",
                code="vad_unavailable",
            )
        import onnxruntime as ort  # noqa: PLC0415 - heavy; only when Silero is chosen

        options = ort.SessionOptions()
        # One frame at a time is tiny work: more threads only add wake-up overhead.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise AudioError(f"cannot load Silero VAD model {path}: {err}", code="vad_unavailable") from err
        self.model_path = path
        self.threshold = threshold
        self._frame_bytes = SAMPLE_RATE * frame_ms // 1000 * SAMPLE_WIDTH
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: zero state, context and buffer."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(_SILERO_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._speaking = False
        self.probability = 0.0

    def _run(self, chunk: np.ndarray) -> float:
        x = np.concatenate((self._context, chunk))[np.newaxis, :]
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
        self._context = chunk[-_SILERO_CONTEXT:]
        return float(out[0][0])

    def is_speech(self, frame: bytes) -> bool:
        """Decide one frame."""
        if len(frame) != self._frame_bytes:
            raise AudioError(
                f"VAD frame is {len(frame)} bytes; {self._frame_bytes} expected", code="vad_frame_size"
            )
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate((self._pending, samples))
        while self._pending.size >= _SILERO_CHUNK:
            self.probability = self._run(self._pending[:_SILERO_CHUNK])
            self._pending = self._pending[_SILERO_CHUNK:]
            if self.probability >= self.threshold:
                self._speaking = True
            elif self.probability < self.threshold - _SILERO_HYSTERESIS:
                self._speaking = False
        return self._speaking


def make_vad(settings: VadSettings) -> Vad:
    """The VAD engine the settings ask for; AudioError with a clear message when unavailable."""
    if settings.engine == "silero":
        return SileroVad(settings.silero_threshold, settings.frame_ms)
    return WebRtcVad(settings.aggressiveness, settings.frame_ms)
