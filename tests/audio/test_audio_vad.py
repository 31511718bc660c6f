"""webrtcvad and Silero (ONNX via onnxruntime) on real synthesized speech vs silence and noise."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.vad import SileroVad, WebRtcVad, make_vad, silero_model_path
from assistant.audio.wav import read_wav
from assistant.config import VadSettings
from assistant.errors import AudioError

needs_silero = pytest.mark.skipif(
    silero_model_path() is None, reason="silero-vad's ONNX file is not installed"
)


def _frames(pcm: np.ndarray, n: int = 480) -> list[bytes]:
    return [pcm[i : i + n].tobytes() for i in range(0, pcm.size - n + 1, n)]


def _voiced_fraction(vad: Any, pcm: np.ndarray, region: tuple[float, float]) -> float:
    """Fraction of frames inside ``region`` (seconds) that the VAD calls speech, run over the whole clip."""
    decisions = [vad.is_speech(f) for f in _frames(pcm)]
    first, last = int(region[0] / 0.03), int(region[1] / 0.03)
    return float(np.mean(decisions[first:last]))


@pytest.fixture
def speech(two_commands: tuple[Path, list[dict[str, Any]]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    path, truth = two_commands
    return read_wav(path), truth


def _engines() -> list[Any]:
    engines: list[Any] = [pytest.param(lambda: WebRtcVad(2, 30), id="webrtc")]
    engines.append(pytest.param(lambda: SileroVad(0.5, 30), id="silero", marks=needs_silero))
    return engines


@pytest.mark.parametrize("factory", _engines())
def test_speech_is_voiced_and_the_pause_is_not(
    factory: Any, speech: tuple[np.ndarray, list[dict[str, Any]]]
) -> None:
    pcm, truth = speech
    first, second = truth
    inside = (first["start_s"] + 0.1, first["end_s"] - 0.1)
    pause = (first["end_s"] + 0.5, second["start_s"] - 0.3)
    assert _voiced_fraction(factory(), pcm, inside) > 0.7
    assert _voiced_fraction(factory(), pcm, pause) < 0.1


@pytest.mark.parametrize("factory", _engines())
def test_digital_silence_is_not_speech(factory: Any) -> None:
    vad = factory()
    assert not any(vad.is_speech(f) for f in _frames(np.zeros(16000, dtype=np.int16)))


@needs_silero
def test_silero_ignores_white_noise() -> None:
    rng = np.random.default_rng(3)
    noise = np.clip(rng.normal(0, 1000, 32000), -32768, 32767).astype(np.int16)
    vad = SileroVad(0.5, 30)
    decisions = [vad.is_speech(f) for f in _frames(noise)]
    assert sum(decisions) == 0
    assert vad.probability < 0.5


@needs_silero
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_silero_adapts_any_frame_length_to_its_512_sample_chunks(frame_ms: int, speech: Any) -> None:
    pcm, truth = speech
    n = 16 * frame_ms
    vad = SileroVad(0.5, frame_ms)
    decisions = [vad.is_speech(f) for f in _frames(pcm, n)]
    first = truth[0]
    a, b = int((first["start_s"] + 0.1) * 1000 / frame_ms), int((first["end_s"] - 0.1) * 1000 / frame_ms)
    assert np.mean(decisions[a:b]) > 0.7


@needs_silero
def test_silero_reset_forgets_the_stream(speech: Any) -> None:
    pcm, truth = speech
    vad = SileroVad(0.5, 30)
    for f in _frames(pcm[: int(truth[0]["end_s"] * 16000)]):
        vad.is_speech(f)
    vad.reset()
    assert vad.probability == 0.0
    assert not vad.is_speech(np.zeros(480, dtype=np.int16).tobytes())


@needs_silero
def test_silero_is_found_without_importing_the_package() -> None:
    path = silero_model_path()
    assert path is not None
    assert path.name == "silero_vad.onnx"
    assert "silero_vad" not in sys.modules  # importing it would pull in torch


def test_missing_silero_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"silero_vad\.onnx") as info:
        SileroVad(model_path=tmp_path / "absent.onnx")
    assert info.value.code == "vad_unavailable"
    assert "webrtc" in info.value.message


def test_make_vad_picks_the_engine() -> None:
    assert isinstance(make_vad(VadSettings()), WebRtcVad)
    if silero_model_path() is not None:
        assert isinstance(make_vad(VadSettings(engine="silero")), SileroVad)
    else:
        with pytest.raises(AudioError, match="silero"):
            make_vad(VadSettings(engine="silero"))


@pytest.mark.parametrize("kwargs", [{"frame_ms": 25}, {"aggressiveness": 4}])
def test_bad_vad_settings_are_clear_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(AudioError, match=r"frame length|aggressiveness"):
        WebRtcVad(**kwargs)


def test_wrong_frame_size_is_an_error_not_a_crash() -> None:
    with pytest.raises(AudioError, match="bytes"):
        WebRtcVad(2, 30).is_speech(b"\0" * 501)
