"""The numpy front end against transformers' Gemma4AudioFeatureExtractor (a dev/test dependency)."""

from __future__ import annotations

import shutil
import subprocess
import types
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.brains.gemma.features import FeatureConfig, FeatureExtractor, audio_token_count

fe_module = pytest.importorskip("transformers.models.gemma4.feature_extraction_gemma4")
proc_module = pytest.importorskip("transformers.models.gemma4.processing_gemma4")


@pytest.fixture(scope="module")
def reference() -> object:
    return fe_module.Gemma4AudioFeatureExtractor()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """'Turn on the kitchen light' from espeak-ng, resampled to 16 kHz floats."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    import soxr

    path: Path = tmp_path_factory.mktemp("speech") / "cmd.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "Turn on the kitchen light"], check=True, capture_output=True
    )
    with wave.open(str(path)) as handle:
        rate = handle.getframerate()
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    audio = pcm.astype(np.float32) / 32768.0
    return np.asarray(soxr.resample(audio, rate, 16000), dtype=np.float32)


def _compare(reference: object, audio: np.ndarray) -> float:
    expected = reference([audio], return_tensors="np")  # type: ignore[operator]
    ours = FeatureExtractor()(audio)
    assert ours.features.shape == expected["input_features"].shape
    assert (ours.mask == expected["input_features_mask"]).all()
    return float(np.abs(ours.features - expected["input_features"]).max())


def test_parity_on_speech(reference: object, speech: np.ndarray) -> None:
    assert speech.size > 8000
    assert _compare(reference, speech) <= 1e-4


def test_parity_on_noise_and_odd_lengths(reference: object) -> None:
    rng = np.random.default_rng(3)
    for n in (321, 1600, 16000 + 77, 48_000 + 5, 16000 * 31):  # the last one is truncated at 30 s
        noise = (rng.standard_normal(n) * 0.3).astype(np.float32)
        assert _compare(reference, noise) <= 1e-4, n


def test_int16_input_is_scaled_like_float() -> None:
    rng = np.random.default_rng(4)
    pcm = (rng.standard_normal(16000) * 3000).astype(np.int16)
    ours = FeatureExtractor()
    np.testing.assert_allclose(ours(pcm).features, ours(pcm.astype(np.float32) / 32768.0).features, atol=1e-6)


def test_token_counts_match_the_processor_from_0_1_to_40_seconds(reference: object) -> None:
    fake = types.SimpleNamespace(feature_extractor=reference, audio_seq_length=750)
    lengths = sorted({*range(1600, 640_001, 1597), 1600, 16000, 480_000, 480_001, 640_000})
    for n in lengths:
        expected = proc_module.Gemma4Processor._compute_audio_num_tokens(fake, np.zeros(n), 16000)
        assert audio_token_count(n) == expected, n
    assert audio_token_count(16000) == 25
    assert audio_token_count(640_000) == 750


def test_feature_mask_count_equals_the_processor_placeholder_count(reference: object) -> None:
    extractor = FeatureExtractor()
    for n in (1600, 4000, 16_123, 100_001):
        mask = reference([np.zeros(n, np.float32)], return_tensors="np")["input_features_mask"][0]  # type: ignore[operator]
        for _ in range(2):
            mask = mask[::2]
        assert extractor(np.zeros(n, np.float32)).num_tokens == int(mask.sum()) == audio_token_count(n)


def test_processor_config_is_honoured_and_bad_values_refused() -> None:
    config = FeatureConfig.from_processor_config(
        {"feature_extractor": {"padding_side": "left", "feature_size": 128}}
    )
    assert config.padding_side == "left"
    with pytest.raises(ValueError, match="preemphasis"):
        FeatureConfig.from_processor_config({"feature_extractor": {"preemphasis": 0.97}})
    with pytest.raises(ValueError, match="sampling_rate"):
        FeatureConfig.from_processor_config({"feature_extractor": {"sampling_rate": 24000}})


def test_empty_and_tiny_audio_give_no_tokens() -> None:
    extractor = FeatureExtractor()
    assert extractor(np.zeros(0, np.float32)).num_tokens == 0
    assert extractor(np.zeros(100, np.float32)).num_tokens == 0
