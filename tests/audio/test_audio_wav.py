"""WAV reading: every PCM depth, rate and channel count to 16 kHz mono; every bad file -> AudioError."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.wav import read_wav, wav_info, write_wav
from assistant.errors import AudioError
from tests.support.signals import dominant_hz, sine


def _encode(samples: np.ndarray, bits: int) -> bytes:
    """Float samples (n, channels) in [-1, 1] -> interleaved little-endian PCM bytes."""
    flat = samples.reshape(-1)
    if bits == 8:
        return np.clip(np.rint(flat * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    if bits == 16:
        return np.clip(np.rint(flat * 32767), -32768, 32767).astype("<i2").tobytes()
    if bits == 24:
        ints = np.clip(np.rint(flat * (2**23 - 1)), -(2**23), 2**23 - 1).astype(np.int32)
        as_bytes = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        return as_bytes.tobytes()
    ints32 = np.clip(np.rint(flat * (2**31 - 1)), -(2**31), 2**31 - 1).astype("<i4")
    return ints32.tobytes()


def make_wav(
    path: Path,
    samples: np.ndarray,
    rate: int,
    bits: int = 16,
    *,
    extensible: bool = False,
    tag: int = 1,
    data_size: int | None = None,
    extra_chunk: bool = False,
) -> Path:
    """Write a WAV by hand so every header field can be chosen (the stdlib writer cannot)."""
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    channels = samples.shape[1]
    data = _encode(samples, bits)
    block = channels * bits // 8
    if extensible:
        guid = struct.pack("<H", tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block, block, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        chunks += b"LIST" + struct.pack("<I", 5) + b"abcde\x00"  # odd size: padded to a word
    size = len(data) if data_size is None else data_size
    chunks += b"data" + struct.pack("<I", size) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_every_depth_and_rate_becomes_16k_mono_with_the_tone_preserved(
    tmp_path: Path, bits: int, rate: int
) -> None:
    path = make_wav(tmp_path / "tone.wav", sine(1000, rate, 0.5), rate, bits)
    pcm = read_wav(path)
    assert pcm.dtype == np.int16
    assert abs(pcm.size - 8000) <= 2
    assert dominant_hz(pcm) == pytest.approx(1000, abs=5)
    # A real resampler keeps the level (0.5 full scale -> peak ~16384).
    assert 0.45 * 32768 < np.abs(pcm[500:-500]).max() < 0.55 * 32768


def test_resampled_audio_matches_a_reference_sine(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "tone.wav", sine(440, 44100, 1.0), 44100, 16)
    pcm = read_wav(path).astype(np.float64) / 32768
    reference = sine(440, 16000, 1.0)[: pcm.size]
    middle = slice(1000, pcm.size - 1000)  # away from the filter's edges
    corr = np.corrcoef(pcm[middle], reference[middle])[0, 1]
    assert corr > 0.999


def test_resampling_is_band_limited_not_naive_decimation(tmp_path: Path) -> None:
    # 11 kHz is above the 8 kHz Nyquist limit of the output: a real resampler removes it,
    # decimation by 3 would fold it down to 5 kHz at full level.
    path = make_wav(tmp_path / "high.wav", sine(11000, 48000, 0.5), 48000, 16)
    pcm = read_wav(path)
    assert np.abs(pcm[200:-200]).max() < 0.01 * 32768


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    left, right = sine(500, 22050, 0.5), sine(1500, 22050, 0.5)
    path = make_wav(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 22050, 16)
    pcm = read_wav(path)
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / 16000)
    peaks = sorted(float(freqs[i]) for i in np.argsort(spectrum)[-2:])
    assert peaks == [pytest.approx(500, abs=5), pytest.approx(1500, abs=5)]


def test_opposite_channels_cancel_when_mixed(tmp_path: Path) -> None:
    tone = sine(700, 16000, 0.2)
    path = make_wav(tmp_path / "anti.wav", np.stack([tone, -tone], axis=1), 16000, 16)
    assert np.abs(read_wav(path)).max() <= 1


def test_16k_mono_16bit_is_read_bit_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32767, 4000, dtype=np.int16)
    write_wav(tmp_path / "x.wav", pcm, 16000)
    assert np.array_equal(read_wav(tmp_path / "x.wav"), pcm)


def test_extensible_pcm_and_extra_chunks_are_read(tmp_path: Path) -> None:
    path = make_wav(
        tmp_path / "ext.wav", sine(1000, 48000, 0.3), 48000, 24, extensible=True, extra_chunk=True
    )
    pcm = read_wav(path)
    assert dominant_hz(pcm) == pytest.approx(1000, abs=5)


def test_write_then_read_round_trip_at_another_rate(tmp_path: Path) -> None:
    pcm = (sine(300, 8000, 0.5) * 32767).astype(np.int16)
    write_wav(tmp_path / "r.wav", pcm, 8000)
    info = wav_info(tmp_path / "r.wav")
    assert (info.rate, info.channels, info.bits, info.frames) == (8000, 1, 16, 4000)
    assert dominant_hz(read_wav(tmp_path / "r.wav")) == pytest.approx(300, abs=5)


# ----------------------------------------------------------------------------- bad input


def _error(path: Path, **kwargs: float) -> AudioError:  # max_seconds, max_bytes
    with pytest.raises(AudioError) as info:
        read_wav(path, **kwargs)
    assert str(path) in info.value.message  # the message names the file
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope.wav")
    assert "no such file" in err.message
    assert err.code == "wav_missing"


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    err = _error(tmp_path / "empty.wav")
    assert "empty" in err.message


def test_header_without_samples(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "nodata.wav", np.zeros(0), 16000)
    assert "no audio" in _error(path).message


def test_truncated_data_chunk(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "t.wav", sine(440, 16000, 1.0), 16000)
    path.write_bytes(path.read_bytes()[:-5000])
    err = _error(path)
    assert "truncated" in err.message
    assert err.code == "wav_truncated"


def test_truncated_header(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "t.wav", sine(440, 16000, 0.1), 16000)
    path.write_bytes(path.read_bytes()[:30])
    assert "truncated" in _error(path).message


def test_float_wav_is_refused_as_not_integer_pcm(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "f.wav", sine(440, 16000, 0.1), 16000, 32, tag=3)
    err = _error(path)
    assert "not integer PCM" in err.message
    assert "float" in err.message


def test_compressed_wav_is_refused(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "mp3.wav", sine(440, 16000, 0.1), 16000, 16, tag=0x55)
    assert "MP3" in _error(path).message


def test_extensible_float_is_refused(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "ef.wav", sine(440, 16000, 0.1), 16000, 32, extensible=True, tag=3)
    assert "not integer PCM" in _error(path).message


def test_not_a_wav_at_all(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("hello, this is not audio at all, sorry")
    assert "not a WAV file" in _error(tmp_path / "text.wav").message


@pytest.mark.parametrize(
    ("channels", "rate", "bits", "fragment"),
    [
        (0, 16000, 16, "channel"),
        (1, 10, 16, "sample rate"),
        (1, 16000, 12, "12 bits"),
        (500, 16000, 16, "channel"),
    ],
)
def test_absurd_headers(tmp_path: Path, channels: int, rate: int, bits: int, fragment: str) -> None:
    block = max(1, channels * bits // 8)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + b"\0\0\0\0"
    path = tmp_path / "absurd.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert fragment in _error(path).message


def test_a_two_hour_header_is_refused_quickly_without_reading_the_data(tmp_path: Path) -> None:
    # 2 h of 48 kHz stereo 16-bit would be 1.4 GB; the header alone must be enough to refuse it.
    two_hours = 2 * 3600 * 48000 * 4
    fmt = struct.pack("<HHIIHH", 1, 2, 48000, 48000 * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", two_hours)
    path = tmp_path / "long.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + body + b"\0" * 4096)
    err = _error(path)
    assert "2h00m00s" in err.message
    assert "limit" in err.message
    assert err.code == "wav_too_long"


def test_a_real_two_hour_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    # A sparse 1.4 GB file: the real size on disk of 2 h of 48 kHz stereo, costing no disk space.
    path = tmp_path / "sparse.wav"
    frames = 2 * 3600 * 48000
    fmt = struct.pack("<HHIIHH", 1, 2, 48000, 48000 * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", frames * 4)
    with path.open("wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", len(body) + frames * 4) + body)
        fh.truncate(12 + len(body) + frames * 4)
    tracemalloc.start()
    try:
        assert "2h00m00s" in _error(path).message
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # reading the data would allocate 1.4 GB


def test_a_real_long_file_is_refused_by_the_limit(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "long.wav", np.zeros(16000 * 3), 16000)
    assert "limit is 2s" in _error(path, max_seconds=2.0).message
    assert read_wav(path, max_seconds=5.0).size == 16000 * 3


def test_streaming_placeholder_size_reads_to_end_of_file(tmp_path: Path) -> None:
    # arecord and other pipe writers cannot seek back and leave 0xFFFFFFFF as the data size.
    path = make_wav(tmp_path / "pipe.wav", sine(1000, 16000, 0.25), 16000, data_size=0xFFFFFFFF)
    assert read_wav(path).size == 4000


def test_a_directory_is_not_a_wav(tmp_path: Path) -> None:
    assert "directory" in _error(tmp_path).message


# ----------------------------------------------------------------------------- not a regular file


def _within(seconds: float, fn: Callable[[], object]) -> object:
    """fn() in a daemon thread; fails (instead of hanging the run) when it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the test thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"read_wav did not return within {seconds} s"
    if isinstance(box.get("error"), BaseException):
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(AudioError) as info:
        _within(10, lambda: read_wav(fifo))
    assert info.value.message == f"{fifo}: is a FIFO (named pipe), not a regular WAV file"
    assert info.value.code == "wav_invalid"
    with pytest.raises(AudioError, match="FIFO"):
        _within(10, lambda: wav_info(fifo))


def test_dev_zero_is_refused_not_read() -> None:
    with pytest.raises(AudioError) as info:
        _within(10, lambda: read_wav("/dev/zero"))
    assert info.value.message == "/dev/zero: is a character device, not a regular WAV file"


def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.wav"
    link.symlink_to("/dev/zero")
    with pytest.raises(AudioError, match="character device"):
        _within(10, lambda: read_wav(link))


# ----------------------------------------------------------------------------- bytes limit


def _sparse_wav(path: Path, channels: int, rate: int, bits: int, seconds: float) -> Path:
    """A header plus `seconds` of zero samples as a sparse file (no disk space used)."""
    block = channels * bits // 8
    size = int(rate * seconds) * block
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    with path.open("wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", len(body) + size) + body)
        fh.truncate(12 + len(body) + size)
    return path


def test_a_983_mb_five_second_file_is_refused_from_its_header(tmp_path: Path) -> None:
    # 64 channels x 32 bits at 768 kHz: only 5 s, but 983 MB of samples (it used to take 1.1 GB).
    path = _sparse_wav(tmp_path / "wide.wav", 64, 768_000, 32, 5.0)
    tracemalloc.start()
    try:
        err = _error(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.code == "wav_too_large"
    assert "983.0 MB" in err.message
    assert "limit is 268.4 MB" in err.message
    assert peak < 1_000_000


def test_the_bytes_limit_applies_to_streamed_sizes_too(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "pipe.wav", np.zeros(16000), 16000, data_size=0xFFFFFFFF)
    err = _error(path, max_bytes=1000)
    assert err.code == "wav_too_large"
    assert read_wav(path, max_bytes=32000).size == 16000


def test_a_file_at_the_bytes_limit_is_read(tmp_path: Path) -> None:
    path = make_wav(tmp_path / "x.wav", np.zeros((8000, 2)), 16000)
    assert read_wav(path, max_bytes=32000).size == 8000
    assert _error(path, max_bytes=31999).code == "wav_too_large"


def test_memory_follows_the_16k_result_not_the_file_size(tmp_path: Path) -> None:
    # 20 s of 48 kHz 8-channel 32-bit is 61 MB of samples; the 16 kHz mono result is 640 kB.
    path = _sparse_wav(tmp_path / "many.wav", 8, 48000, 32, 20.0)
    tracemalloc.start()
    try:
        pcm = read_wav(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pcm.size == 320000
    assert peak < 12_000_000  # reading it whole took more than 61 MB


def test_chunked_decoding_matches_across_chunk_boundaries(tmp_path: Path) -> None:
    # Long enough for several decode chunks at 44.1 kHz stereo 24-bit.
    path = make_wav(tmp_path / "long.wav", np.stack([sine(440, 44100, 8.0)] * 2, axis=1), 44100, 24)
    pcm = read_wav(path).astype(np.float64) / 32768
    assert abs(pcm.size - 8 * 16000) <= 2
    reference = sine(440, 16000, 8.0)[: pcm.size]
    middle = slice(1000, pcm.size - 1000)
    assert np.abs(pcm[middle] - reference[middle]).max() < 0.002


# ----------------------------------------------------------------------------- odd names


def test_a_non_utf8_name_is_shown_escaped(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/\xff.wav"
    with open(raw, "wb") as fh:
        fh.write(b"not a wav at all, sorry, nothing here")
    with pytest.raises(AudioError) as info:
        read_wav(raw)
    assert info.value.message == f"{tmp_path}/\\xff.wav: not a WAV file (no RIFF/WAVE header)"
    info.value.message.encode("utf-8")  # printable under a strict UTF-8 locale
    with pytest.raises(AudioError) as info:
        read_wav(os.fsdecode(raw))  # as it comes from sys.argv
    assert "\\xff.wav" in info.value.message
