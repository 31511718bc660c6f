"""Gemma 4's audio front end in numpy: 16 kHz PCM -> log-mel features + frame mask.

Matches transformers' ``Gemma4AudioFeatureExtractor`` (checked numerically in
tests/gemma/test_gemma_features.py): 128 HTK mel bins without normalisation,
20 ms periodic Hann window, 10 ms hop, FFT 512 on the *magnitude* spectrum,
``log(mel + 0.001)``, "semicausal" framing (160 zeros prepended, 321-sample
windows of which the first 320 are used) and a frame mask that is true only when
the last sample of a frame's window is real audio. Earlier ports that diverged
in any of these produced garbled transcripts (reference section 6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
MS_PER_TOKEN = 40
"""Audio soft-token duration: 25 tokens per second."""
MAX_AUDIO_TOKENS = 750
"""Soft tokens per clip at most (30 s)."""


@dataclass(frozen=True)
class FeatureConfig:
    """Feature-extractor parameters (``processor_config.json`` ``feature_extractor`` block)."""

    feature_size: int = 128
    sampling_rate: int = SAMPLE_RATE
    frame_length_ms: float = 20.0
    hop_length_ms: float = 10.0
    min_frequency: float = 0.0
    max_frequency: float = 8000.0
    mel_floor: float = 1e-3
    fft_overdrive: bool = False
    input_scale_factor: float = 1.0
    pad_to_multiple_of: int = 128
    max_length: int = 480_000
    padding_side: str = "right"
    padding_value: float = 0.0

    @property
    def frame_length(self) -> int:
        """Window length in samples (320)."""
        return round(self.sampling_rate * self.frame_length_ms / 1000.0)

    @property
    def hop_length(self) -> int:
        """Hop in samples (160)."""
        return round(self.sampling_rate * self.hop_length_ms / 1000.0)

    @property
    def fft_length(self) -> int:
        """FFT size: next power of two of the window (512), doubled with overdrive."""
        n = int(2 ** math.ceil(math.log2(self.frame_length)))
        return n * 2 if self.fft_overdrive else n

    @classmethod
    def from_processor_config(cls, data: dict[str, Any]) -> FeatureConfig:
        """Read the fields we use from a ``processor_config.json`` mapping; refuse what we cannot honour."""
        block = data.get("feature_extractor", data)
        if not isinstance(block, dict):
            raise ValueError("processor_config.json: feature_extractor is not an object")
        unsupported = []
        if float(block.get("preemphasis", 0.0) or 0.0) != 0.0:
            unsupported.append("preemphasis")
        if float(block.get("dither", 0.0) or 0.0) != 0.0:
            unsupported.append("dither")
        if block.get("per_bin_mean") is not None or block.get("per_bin_stddev") is not None:
            unsupported.append("per_bin_mean/per_bin_stddev")
        if unsupported:
            raise ValueError("processor_config.json: unsupported feature settings: " + ", ".join(unsupported))
        defaults = cls()
        try:
            config = cls(
                feature_size=int(block.get("feature_size", defaults.feature_size)),
                sampling_rate=int(block.get("sampling_rate", defaults.sampling_rate)),
                frame_length_ms=float(block.get("frame_length_ms", defaults.frame_length_ms)),
                hop_length_ms=float(block.get("hop_length_ms", defaults.hop_length_ms)),
                min_frequency=float(block.get("min_frequency", defaults.min_frequency)),
                max_frequency=float(block.get("max_frequency", defaults.max_frequency)),
                mel_floor=float(block.get("mel_floor", defaults.mel_floor)),
                fft_overdrive=bool(block.get("fft_overdrive", defaults.fft_overdrive)),
                input_scale_factor=float(block.get("input_scale_factor", defaults.input_scale_factor)),
                padding_side=str(block.get("padding_side", defaults.padding_side)),
                padding_value=float(block.get("padding_value", defaults.padding_value)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"processor_config.json: bad feature_extractor value: {exc}") from exc
        if config.sampling_rate != SAMPLE_RATE:
            raise ValueError(f"processor_config.json: sampling_rate {config.sampling_rate} is not 16000")
        if config.padding_side not in ("left", "right"):
            raise ValueError(f"processor_config.json: padding_side {config.padding_side!r}")
        return config


def _hz_to_mel_htk(freq: npt.NDArray[np.float64] | float) -> Any:
    return 2595.0 * np.log10(1.0 + np.asarray(freq) / 700.0)


def _mel_to_hz_htk(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(700.0 * (10.0 ** (mel / 2595.0) - 1.0), dtype=np.float64)


def mel_filters(config: FeatureConfig) -> npt.NDArray[np.float64]:
    """Triangular HTK mel filters, shape (fft_length//2 + 1, feature_size), no area normalisation."""
    n_bins = config.fft_length // 2 + 1
    mel_points = np.linspace(
        _hz_to_mel_htk(config.min_frequency), _hz_to_mel_htk(config.max_frequency), config.feature_size + 2
    )
    edges = _mel_to_hz_htk(mel_points)
    bin_freqs = np.linspace(0, config.sampling_rate // 2, n_bins)
    widths = np.diff(edges)
    offsets = edges[None, :] - bin_freqs[:, None]
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return np.asarray(np.maximum(0.0, np.minimum(rising, falling)), dtype=np.float64)


def periodic_hann(length: int) -> npt.NDArray[np.float32]:
    """Periodic Hann window (the symmetric window of length+1 without its last sample)."""
    n = np.arange(length, dtype=np.float64)
    return np.asarray(0.5 - 0.5 * np.cos(2.0 * np.pi * n / length), dtype=np.float32)


def audio_token_count(num_samples: int, config: FeatureConfig | None = None) -> int:
    """Soft tokens the encoder yields for ``num_samples`` of 16 kHz audio (25/s, at most 750)."""
    config = config or FeatureConfig()
    num_samples = min(max(0, int(num_samples)), config.max_length)
    frames = (num_samples + config.frame_length // 2 - (config.frame_length + 1)) // config.hop_length + 1
    if frames <= 0:
        return 0
    t = frames
    for _ in range(2):  # two stride-2 convolutions (kernel 3, padding 1) in the encoder
        t = (t + 2 - 3) // 2 + 1
    return min(t, MAX_AUDIO_TOKENS)


@dataclass(frozen=True)
class AudioFeatures:
    """Encoder input for one clip."""

    features: npt.NDArray[np.float32]
    """(1, T, 128) log-mel frames; frames outside the audio are zero."""
    mask: npt.NDArray[np.bool_]
    """(1, T) true where the frame's window lies on real audio."""
    num_tokens: int
    """Soft tokens the encoder yields for the valid frames."""


class FeatureExtractor:
    """Stateless log-mel front end; one instance per model (filters precomputed)."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self._filters = mel_filters(self.config)
        self._window = periodic_hann(self.config.frame_length)

    def __call__(self, audio: npt.ArrayLike) -> AudioFeatures:
        """Features for one clip of float samples in [-1, 1] (or int16 PCM, scaled here)."""
        cfg = self.config
        wave = np.asarray(audio)
        if wave.dtype == np.int16:
            wave = wave.astype(np.float32) / 32768.0
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(wave)):
            wave = np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
        wave = wave[: cfg.max_length]
        n = wave.shape[0]
        target = n
        if cfg.pad_to_multiple_of and target % cfg.pad_to_multiple_of:
            target = (target // cfg.pad_to_multiple_of + 1) * cfg.pad_to_multiple_of
        real = np.ones(n, dtype=np.int32)
        if target > n:
            pad = np.full(target - n, cfg.padding_value, dtype=np.float32)
            zeros = np.zeros(target - n, dtype=np.int32)
            if cfg.padding_side == "left":
                wave, real = np.concatenate([pad, wave]), np.concatenate([zeros, real])
            else:
                wave, real = np.concatenate([wave, pad]), np.concatenate([real, zeros])
        if cfg.input_scale_factor != 1.0:
            wave = wave * np.float32(cfg.input_scale_factor)
        half = cfg.frame_length // 2
        wave = np.concatenate([np.zeros(half, dtype=np.float32), wave])
        real = np.concatenate([np.zeros(half, dtype=np.int32), real])
        size = cfg.frame_length + 1
        hop = cfg.hop_length
        frames_n = (wave.shape[0] - size) // hop + 1
        if frames_n <= 0:
            empty = np.zeros((1, 0, cfg.feature_size), dtype=np.float32)
            return AudioFeatures(empty, np.zeros((1, 0), dtype=bool), 0)
        windows = np.lib.stride_tricks.as_strided(
            wave, shape=(frames_n, size), strides=(wave.strides[0] * hop, wave.strides[0]), writeable=False
        )
        spectrum = np.abs(np.fft.rfft(windows[:, :-1] * self._window, n=cfg.fft_length, axis=-1))
        log_mel = np.log(spectrum @ self._filters + cfg.mel_floor).astype(np.float32)
        mask = real[np.arange(frames_n) * hop + size - 1].astype(bool)
        log_mel *= mask[:, None]
        t = mask
        for _ in range(2):
            t = t[::2]
        tokens = min(int(t.sum()), MAX_AUDIO_TOKENS)
        return AudioFeatures(log_mel[None], mask[None], tokens)
