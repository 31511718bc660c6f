"""Sources other than PortAudio: WAV file, a real command's stdout, stdin; backoff."""

from __future__ import annotations

import io
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.audio.sources import (
    Backoff,
    CommandSource,
    MicrophoneSource,
    StdinSource,
    WavFileSource,
    make_source,
)
from assistant.audio.wav import write_wav
from assistant.config import AudioSettings, Settings
from assistant.errors import AudioError
from tests.support.signals import dominant_hz, sine


def _joined(frames: list) -> np.ndarray:  # type: ignore[type-arg]
    return np.frombuffer(b"".join(f.pcm for f in frames), dtype="<i2")


@pytest.fixture
def raw_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(42)
    pcm = rng.integers(-20000, 20000, 16000, dtype=np.int16)  # 1 s
    path = tmp_path / "audio.raw"
    path.write_bytes(pcm.astype("<i2").tobytes())
    return path, pcm


def test_wav_source_yields_fixed_frames_with_stream_timestamps(tmp_path: Path) -> None:
    pcm = (sine(440, 16000, 1.0) * 20000).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm[: 16000 - 100])
    with WavFileSource(tmp_path / "a.wav", frame_ms=20) as source:
        frames = list(source)
    assert all(f.samples == 320 for f in frames)
    assert [f.timestamp for f in frames[:3]] == pytest.approx([0.0, 0.02, 0.04])
    got = _joined(frames)
    assert np.array_equal(got[: 16000 - 100], pcm[: 16000 - 100])
    assert not got[16000 - 100 :].any()  # the last frame is padded with zeros


def test_wav_source_reports_a_bad_file_on_open(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"), WavFileSource(tmp_path / "missing.wav"):
        pass


def test_command_source_reads_a_real_command_bit_exact(raw_file: tuple[Path, np.ndarray]) -> None:
    path, pcm = raw_file
    settings = AudioSettings(source="command", command=f"cat '{path}'")
    with CommandSource(settings, restart=False) as source:
        frames = list(source)
    assert all(f.samples == 480 for f in frames)
    assert np.array_equal(_joined(frames)[: pcm.size], pcm)
    assert frames[-1].timestamp == pytest.approx((len(frames) - 1) * 0.03)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_command_source_converts_48k_stereo(tmp_path: Path) -> None:
    write_wav(tmp_path / "tone.wav", (sine(1200, 48000, 1.0) * 20000).astype(np.int16), 48000)
    command = f"sox '{tmp_path / 'tone.wav'}' -t raw -e signed -b 16 -c 2 -"
    settings = AudioSettings(command=command, command_rate=48000, command_channels=2)
    with CommandSource(settings, restart=False) as source:
        got = _joined(list(source))
    assert abs(got.size - 16000) < 600
    assert dominant_hz(got[1000:15000]) == pytest.approx(1200, abs=5)


def test_a_failing_command_is_a_clear_error_with_its_stderr() -> None:
    command = f"{sys.executable} -c \"import sys; sys.stderr.write('no such card\\n'); sys.exit(3)\""
    source = CommandSource(AudioSettings(command=command), restart=False)
    with pytest.raises(AudioError) as info:
        list(source)
    assert "exited with status 3" in info.value.message
    assert "no such card" in info.value.message


def test_a_missing_program_is_a_clear_error() -> None:
    source = CommandSource(AudioSettings(command="/nonexistent/arecord -q"), restart=False)
    with pytest.raises(AudioError, match="not found: /nonexistent/arecord"):
        list(source)


def test_a_failing_live_command_is_restarted_with_backoff_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = AudioSettings(command="false", retry_max_s=0.05)
    source = CommandSource(settings, restart=True, initial_retry_s=0.01)
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            list(source)
        except BaseException as err:  # the test checks that nothing escapes
            errors.append(err)

    with caplog.at_level(logging.WARNING, logger="assistant.audio"):
        thread = threading.Thread(target=consume)
        thread.start()
        thread.join(0.6)
        source.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert errors == []
    assert source.starts >= 3
    assert "exited with status 1" in caplog.text
    assert "restarting in" in caplog.text


@pytest.mark.parametrize("command", ["", "   ", "arecord 'unbalanced"])
def test_bad_command_settings_are_refused(command: str) -> None:
    with pytest.raises(AudioError, match=r"audio\.command"):
        CommandSource(AudioSettings(command=command))


def test_stdin_source_reads_a_pipe(raw_file: tuple[Path, np.ndarray]) -> None:
    _, pcm = raw_file
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_fd, pcm.tobytes()), os.close(write_fd)))
    writer.start()
    with os.fdopen(read_fd, "rb") as stream:
        frames = list(StdinSource(stream=stream))
    writer.join()
    assert np.array_equal(_joined(frames)[: pcm.size], pcm)


def test_stdin_source_with_odd_chunking_and_two_channels() -> None:
    stereo = np.stack([np.arange(1000, dtype=np.int16), -np.arange(1000, dtype=np.int16)], axis=1)
    frames = list(StdinSource(AudioSettings(command_channels=2), stream=io.BytesIO(stereo.tobytes())))
    assert not _joined(frames).any()  # the channels cancel when mixed


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(initial_s=0.5, max_s=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5
    stop = threading.Event()
    stop.set()
    assert Backoff(1.0, 1.0).wait(stop) is False  # a set stop event ends the wait at once


def test_make_source_follows_the_settings() -> None:
    assert isinstance(make_source(Settings()), MicrophoneSource)
    settings = Settings(audio=AudioSettings(source="command", command="arecord -q"))
    assert isinstance(make_source(settings), CommandSource)
    assert isinstance(make_source(Settings(audio=AudioSettings(source="stdin"))), StdinSource)


def test_leaving_a_command_source_early_ends_the_command() -> None:
    source = CommandSource(AudioSettings(command="cat /dev/zero"))
    with source:
        for count, _ in enumerate(source):
            proc = source._proc  # the running child, to check it is gone afterwards
            if count == 10:
                break
    assert proc is not None
    assert proc.poll() is not None  # terminated, not left running
    assert source.starts == 1
