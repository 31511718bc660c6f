"""PCM helpers shared by every source: mono mix-down, soxr resampling, fixed-size framing.

Everything leaves here as 16 kHz mono int16 (``assistant.types.SAMPLE_RATE``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from assistant.types import SAMPLE_RATE, AudioFrame

Int16Array = npt.NDArray[np.int16]
FloatArray = npt.NDArray[np.floating]

_QUALITY = "HQ"
"""soxr quality: band-limited, far below audible/ASR-relevant aliasing, and cheap enough."""


def frame_samples(frame_ms: int) -> int:
    """Samples per frame of ``frame_ms`` milliseconds at 16 kHz."""
    return SAMPLE_RATE * frame_ms // 1000


def float_to_int16(samples: npt.NDArray[np.floating]) -> Int16Array:
    """Float samples in [-1, 1] -> int16 with rounding and clipping."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def mix_to_mono(samples: npt.NDArray[np.integer] | npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """(n, channels) or (n,) samples -> (n,) float64 mean of the channels (same scale)."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        return arr.astype(np.float64)
    if arr.shape[1] == 1:
        return arr[:, 0].astype(np.float64)
    mean: npt.NDArray[np.float64] = arr.mean(axis=1, dtype=np.float64)
    return mean


def int16_to_mono(samples: npt.NDArray[np.int16]) -> Int16Array:
    """(n, channels) int16 -> (n,) int16; a single channel passes through bit-exact."""
    arr: Int16Array = np.asarray(samples, dtype=np.int16)
    if arr.ndim == 1:
        return arr
    if arr.shape[1] == 1:
        return np.ascontiguousarray(arr[:, 0])
    mono = np.rint(arr.mean(axis=1, dtype=np.float64))
    out: Int16Array = np.clip(mono, -32768, 32767).astype(np.int16)
    return out


def resample_to_16k(samples: npt.NDArray[np.floating], rate: int) -> Int16Array:
    """Mono float samples in [-1, 1] at ``rate`` -> 16 kHz int16, band-limited (soxr)."""
    if rate == SAMPLE_RATE:
        return float_to_int16(samples)
    out = soxr.resample(np.asarray(samples, dtype=np.float32), rate, SAMPLE_RATE, quality=_QUALITY)
    return float_to_int16(out)


class StreamResampler:
    """Block-by-block int16 mono resampling to 16 kHz that keeps filter state across blocks."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream = (
            None
            if rate == SAMPLE_RATE
            else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16", quality=_QUALITY)
        )

    def process(self, block: Int16Array, *, last: bool = False) -> Int16Array:
        """Resample one mono block; ``last`` drains the filter's delay line."""
        if self._stream is None:
            return block
        out = self._stream.resample_chunk(block, last=last)
        return np.asarray(out, dtype=np.int16)


class Framer:
    """Cuts a stream of 16 kHz int16 samples into fixed-size AudioFrames.

    Timestamps count samples emitted, so they are stream time from the first sample.
    """

    def __init__(self, samples_per_frame: int, start_s: float = 0.0) -> None:
        if samples_per_frame <= 0:
            raise ValueError("frame size must be positive")
        self.samples_per_frame = samples_per_frame
        self._pending = np.zeros(0, dtype=np.int16)
        self._emitted = 0
        self._start_s = start_s

    @property
    def time_s(self) -> float:
        """Stream time of the next frame's first sample."""
        return self._start_s + self._emitted / SAMPLE_RATE

    @property
    def pending_s(self) -> float:
        """Duration of the samples held back for the next frame."""
        return self._pending.size / SAMPLE_RATE

    def push(self, samples: Int16Array) -> list[AudioFrame]:
        """Add samples; return every complete frame now available."""
        if self._pending.size:
            samples = np.concatenate((self._pending, samples))
        n = self.samples_per_frame
        whole = samples.size // n
        frames = []
        for i in range(whole):
            chunk = samples[i * n : (i + 1) * n]
            frames.append(AudioFrame(chunk.tobytes(), self.time_s))
            self._emitted += n
        self._pending = samples[whole * n :].copy()
        return frames

    def flush(self) -> list[AudioFrame]:
        """Emit the last partial frame padded with zeros (VADs need whole frames)."""
        if not self._pending.size:
            return []
        padded = np.zeros(self.samples_per_frame, dtype=np.int16)
        padded[: self._pending.size] = self._pending
        frame = AudioFrame(padded.tobytes(), self.time_s)
        self._emitted += self.samples_per_frame
        self._pending = np.zeros(0, dtype=np.int16)
        return [frame]


class PcmConverter:
    """Device- or command-format int16 blocks -> 16 kHz mono AudioFrames, incrementally."""

    def __init__(self, rate: int, channels: int, samples_per_frame: int) -> None:
        if rate <= 0 or channels <= 0:
            raise ValueError(f"bad PCM format: {rate} Hz, {channels} channel(s)")
        self.rate = rate
        self.channels = channels
        self._resampler = StreamResampler(rate)
        self.framer = Framer(samples_per_frame)
        self._leftover = b""

    def push(self, block: Int16Array) -> list[AudioFrame]:
        """One block shaped (n, channels) or (n,) of int16."""
        mono = int16_to_mono(block.reshape(-1, self.channels) if block.ndim == 1 else block)
        return self.framer.push(self._resampler.process(mono))

    def push_bytes(self, data: bytes) -> list[AudioFrame]:
        """Raw s16le interleaved bytes; partial sample frames are kept for the next call."""
        data = self._leftover + data
        step = 2 * self.channels
        usable = len(data) - len(data) % step
        self._leftover = data[usable:]
        if not usable:
            return []
        block = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        return self.push(block.reshape(-1, self.channels))

    def flush(self) -> list[AudioFrame]:
        """Drain the resampler and emit the last, zero-padded frame."""
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        frames = self.framer.push(tail) if tail.size else []
        return frames + self.framer.flush()
