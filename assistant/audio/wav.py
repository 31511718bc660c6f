"""Reading untrusted WAV files into 16 kHz mono int16, and writing WAVs.

The RIFF header is parsed here (not with :mod:`wave`) so that every defect gets a
clear :class:`AudioError`, WAVE_FORMAT_EXTENSIBLE and 24-bit PCM work on Python
3.11, and an over-long or over-large file is refused from its header before its data
is read. Only regular files are opened (a FIFO, a device such as /dev/zero or a
directory is refused from ``stat``), and the samples are decoded a chunk at a time, so
memory follows the 16 kHz result, not the size of the file.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import wave
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import soxr

from assistant.audio.pcm import Int16Array, float_to_int16, mix_to_mono
from assistant.errors import AudioError
from assistant.paths import file_kind, shown_name
from assistant.types import SAMPLE_RATE

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 600.0
"""Longest recording read_wav accepts unless told otherwise (10 minutes)."""
DEFAULT_MAX_BYTES = 256 << 20
"""Most sample data read_wav reads unless told otherwise (256 MiB: 10 minutes of 48 kHz
stereo 32-bit fit). A header promising more is refused before anything is read."""
_CHUNK_BYTES = 1 << 20
"""Sample data decoded at a time."""

_FORMAT_PCM = 0x0001
_FORMAT_FLOAT = 0x0003
_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {
    0x0002: "MS ADPCM",
    0x0003: "IEEE float",
    0x0006: "A-law",
    0x0007: "mu-law",
    0x0011: "IMA ADPCM",
    0x0055: "MP3",
}
# Writers that stream to a pipe cannot seek back to fill in the data size and leave one of
# these placeholders; the data then runs to the end of the file.
_STREAMING_SIZES = (0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)
_MAX_CHANNELS = 64
_MIN_RATE = 1000
_MAX_RATE = 768_000


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a WAV header says."""

    rate: int
    channels: int
    bits: int
    frames: int
    data_offset: int

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate


def read_wav(
    path: str | os.PathLike[str],
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Int16Array:
    """Read a PCM WAV of any rate, channel count and 8/16/24/32-bit depth as 16 kHz mono int16.

    Raises AudioError (with the file name and what is wrong) for a missing, empty,
    truncated, non-PCM or absurd file, for anything but a regular file, and for one
    longer than ``max_seconds`` or with more than ``max_bytes`` of sample data (both
    checked from the header, before the samples are read).
    """
    name = shown_name(path)
    with _open(path, name) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            info = _parse_header(fh, size, name, max_seconds, max_bytes)
            fh.seek(info.data_offset)
            return _decode(fh, info, name)
        except OSError as err:
            raise AudioError(f"{name}: cannot read: {err.strerror or err}", code="wav_unreadable") from None


def wav_info(path: str | os.PathLike[str]) -> WavInfo:
    """Parse only the header (same checks as read_wav, no length or size limit)."""
    name = shown_name(path)
    with _open(path, name) as fh:
        try:
            return _parse_header(fh, os.fstat(fh.fileno()).st_size, name)
        except OSError as err:
            raise AudioError(f"{name}: cannot read: {err.strerror or err}", code="wav_unreadable") from None


def _refuse_irregular(mode: int, name: str) -> None:
    if stat.S_ISDIR(mode):
        raise AudioError(f"{name}: is a directory, not a WAV file", code="wav_invalid")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{name}: is {file_kind(mode)}, not a regular WAV file", code="wav_invalid")


def _open(path: str | os.PathLike[str], name: str) -> io.BufferedReader:
    """Open a regular file for reading; stat first and O_NONBLOCK, so a FIFO cannot block."""
    try:
        _refuse_irregular(os.stat(path).st_mode, name)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file", code="wav_missing") from None
    except PermissionError:
        raise AudioError(f"{name}: permission denied", code="wav_unreadable") from None
    except OSError as err:
        raise AudioError(f"{name}: cannot read: {err.strerror or err}", code="wav_unreadable") from None
    try:
        _refuse_irregular(os.fstat(fd).st_mode, name)  # swapped since the stat above?
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def write_wav(
    path: str | os.PathLike[str], pcm: npt.NDArray[np.int16] | bytes, rate: int = SAMPLE_RATE
) -> None:
    """Write mono (or (n, channels)) int16 PCM as a 16-bit WAV."""
    arr = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes) else np.asarray(pcm, dtype=np.int16)
    channels = 1 if arr.ndim == 1 else int(arr.shape[1])
    with wave.open(os.fspath(path), "wb") as wf:
        wf.setnchannels(channels)
        wf.setsampwidth(2)
        wf.setframerate(int(rate))
        wf.writeframes(arr.astype("<i2").tobytes())


def _hms(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _bad(name: str, what: str, code: str = "wav_invalid") -> AudioError:
    return AudioError(f"{name}: {what}", code=code)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _check_length(  # noqa: PLR0917 - private helper
    frames: int, rate: int, block_align: int, max_seconds: float | None, max_bytes: int | None, name: str
) -> None:
    if max_seconds is not None and frames / rate > max_seconds:
        raise AudioError(
            f"{name}: recording is {_hms(frames / rate)} long; the limit is {_hms(max_seconds)}",
            code="wav_too_long",
        )
    if max_bytes is not None and frames * block_align > max_bytes:
        channels = "channel" if block_align == 1 else "bytes per frame"
        raise AudioError(
            f"{name}: sample data is {_megabytes(frames * block_align)} ({block_align} {channels} "
            f"at {rate} Hz); the limit is {_megabytes(max_bytes)}",
            code="wav_too_large",
        )


def _parse_header(
    fh: BinaryIO, size: int, name: str, max_seconds: float | None = None, max_bytes: int | None = None
) -> WavInfo:
    if size == 0:
        raise _bad(name, "empty file (0 bytes)", "wav_empty")
    head = fh.read(12)
    if len(head) < 12:
        raise _bad(name, f"too short to be a WAV file ({size} bytes)", "wav_truncated")
    riff, _riff_size, wave_id = struct.unpack("<4sI4s", head)
    if riff == b"RF64":
        raise _bad(name, "RF64 (64-bit WAV) is not supported; convert to a plain WAV")
    if riff != b"RIFF" or wave_id != b"WAVE":
        raise _bad(name, "not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, block_align, bits
    pos = 12
    while True:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            if fmt is None:
                raise _bad(name, "truncated: no 'fmt ' chunk", "wav_truncated")
            raise _bad(name, "truncated: no 'data' chunk", "wav_truncated")
        chunk_id, chunk_size = struct.unpack("<4sI", chunk)
        body = pos + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16:
                raise _bad(name, f"'fmt ' chunk is {chunk_size} bytes; at least 16 expected")
            raw = fh.read(min(chunk_size, 40))
            if len(raw) < 16:
                raise _bad(name, "truncated inside the 'fmt ' chunk", "wav_truncated")
            fmt = _parse_fmt(raw, name)
        elif chunk_id == b"data":
            if fmt is None:
                raise _bad(name, "'data' chunk comes before the 'fmt ' chunk")
            return _data_info(fmt, chunk_size, body, size, name, (max_seconds, max_bytes))
        pos = body + chunk_size + (chunk_size & 1)  # chunks are word-aligned
        if pos > size:
            raise _bad(name, f"truncated: chunk {chunk_id!r} runs past the end of the file", "wav_truncated")


def _parse_fmt(raw: bytes, name: str) -> tuple[int, int, int, int, int]:
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == _FORMAT_EXTENSIBLE:
        if len(raw) < 40:
            raise _bad(name, "WAVE_FORMAT_EXTENSIBLE header is too short")
        # The sub-format GUID starts with the real format tag.
        tag = struct.unpack("<H", raw[24:26])[0]
    if tag != _FORMAT_PCM:
        kind = _FORMAT_NAMES.get(tag, f"format tag 0x{tag:04x}")
        hint = " (32-bit float)" if tag == _FORMAT_FLOAT else ""
        raise _bad(
            name,
            f"not integer PCM: {kind}{hint}; only 8/16/24/32-bit integer PCM WAVs are read",
            "wav_unsupported",
        )
    if not 1 <= channels <= _MAX_CHANNELS:
        raise _bad(name, f"absurd channel count {channels}")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise _bad(name, f"absurd sample rate {rate} Hz")
    if bits not in (8, 16, 24, 32):
        raise _bad(name, f"unsupported sample size {bits} bits; 8, 16, 24 or 32 expected", "wav_unsupported")
    if block_align != channels * bits // 8:
        raise _bad(name, f"inconsistent header: block align {block_align} for {channels} x {bits} bits")
    return tag, channels, rate, block_align, bits


def _data_info(  # noqa: PLR0917 - private helper, called once
    fmt: tuple[int, int, int, int, int],
    declared: int,
    offset: int,
    size: int,
    name: str,
    limits: tuple[float | None, int | None],
) -> WavInfo:
    _tag, channels, rate, block_align, bits = fmt
    max_seconds, max_bytes = limits
    available = size - offset
    if declared not in _STREAMING_SIZES:
        # The header's own claim decides "too long" first: no need to look at the data.
        _check_length(declared // block_align, rate, block_align, max_seconds, max_bytes, name)
    if declared > available:
        if declared not in _STREAMING_SIZES:
            raise _bad(
                name,
                f"truncated: header promises {declared} data bytes, file holds {available}",
                "wav_truncated",
            )
        declared = available
    elif declared == 0 and available > 0:
        declared = available
    frames = declared // block_align
    if declared % block_align:
        _LOGGER.warning("%s: data chunk ends with a partial sample frame; ignored", name)
    if frames == 0:
        raise _bad(name, "no audio: the data chunk is empty", "wav_empty")
    _check_length(frames, rate, block_align, max_seconds, max_bytes, name)
    return WavInfo(rate=rate, channels=channels, bits=bits, frames=frames, data_offset=offset)


def _decode(fh: io.BufferedReader, info: WavInfo, name: str) -> Int16Array:
    """The data chunk (``fh`` at its start) as 16 kHz mono, read and converted a chunk at a time."""
    block = info.channels * info.bits // 8
    if info.bits == 16 and info.channels == 1 and info.rate == SAMPLE_RATE:
        # Already the house format: read straight into the result, bit-exact.
        out = np.empty(info.frames, dtype="<i2")
        view = out.data.cast("B")
        got = 0
        while got < len(view):
            n = fh.readinto(view[got:])
            if not n:
                raise AudioError(f"{name}: truncated: data ends early", code="wav_truncated")
            got += n
        return out.astype(np.int16, copy=False)
    resampler = (
        None
        if info.rate == SAMPLE_RATE
        else soxr.ResampleStream(info.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
    )
    step = max(1, _CHUNK_BYTES // block)
    pieces: list[Int16Array] = []
    done = 0
    while done < info.frames:
        count = min(step, info.frames - done)
        data = fh.read(count * block)
        if len(data) < count * block:
            raise AudioError(f"{name}: truncated: data ends early", code="wav_truncated")
        done += count
        mono = _to_mono_float(data, info, count)
        if resampler is not None:
            mono = np.asarray(resampler.resample_chunk(mono, last=done >= info.frames), dtype=np.float32)
        if mono.size:
            pieces.append(float_to_int16(mono))
    if not pieces:
        return np.zeros(0, dtype=np.int16)
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


def _to_mono_float(data: bytes, info: WavInfo, frames: int) -> npt.NDArray[np.float32]:
    """``frames`` interleaved PCM frames -> mono float32 in [-1, 1]."""
    n = frames * info.channels
    samples: npt.NDArray[np.integer]
    if info.bits == 16:
        samples = np.frombuffer(data, dtype="<i2", count=n)
        scale = 32768.0
    elif info.bits == 8:
        samples = np.frombuffer(data, dtype=np.uint8, count=n).astype(np.int16) - 128
        scale = 128.0
    elif info.bits == 24:
        raw = np.frombuffer(data, dtype=np.uint8, count=n * 3).reshape(-1, 3).astype(np.int32)
        value = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        samples = np.where(value & 0x800000, value - (1 << 24), value)
        scale = float(1 << 23)
    else:
        samples = np.frombuffer(data, dtype="<i4", count=n)
        scale = float(1 << 31)
    mono = mix_to_mono(samples.reshape(-1, info.channels)) / scale
    return mono.astype(np.float32)
