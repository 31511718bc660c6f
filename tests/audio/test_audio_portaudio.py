"""The real sounddevice/PortAudio path without a sound card, through ALSA's ``file`` plugin.

Each test runs portaudio_child.py in a subprocess whose environment selects a
generated ALSA config (PortAudio reads it once, at ``import sounddevice``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.wav import read_wav
from tests.support.alsa import FifoFeeder, alsa_file_devices, write_asoundrc
from tests.support.portaudio import CHILD, run_child
from tests.support.signals import dominant_hz

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/alsa/alsa.conf").exists(), reason="alsa-lib configuration not installed"
)


@pytest.fixture
def source_pcm() -> np.ndarray:
    rng = np.random.default_rng(1234)
    return np.clip(rng.normal(0, 4000, 32000), -32768, 32767).astype(np.int16)  # 2 s


def _read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    with wave.open(str(path)) as wf:
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
        return pcm, wf.getframerate(), wf.getnchannels()


def test_devices_lists_the_file_plugin_devices(tmp_path: Path) -> None:
    with alsa_file_devices(tmp_path, capture=b"\0" * 960) as alsa:
        devices = run_child(["devices"], alsa.env)["devices"]
    names = {d["name"]: d for d in devices}
    assert {"filecap", "fileplay"} <= set(names)
    assert names["filecap"]["in"] > 0


def test_microphone_capture_from_a_file_is_bit_exact(tmp_path: Path, source_pcm: np.ndarray) -> None:
    with alsa_file_devices(tmp_path, capture=source_pcm.tobytes()) as alsa:
        result = run_child(["capture", "filecap", str(source_pcm.size), str(tmp_path / "got.raw")], alsa.env)
    got = np.frombuffer((tmp_path / "got.raw").read_bytes(), dtype="<i2")
    assert result["samples"] == source_pcm.size
    assert np.array_equal(got, source_pcm)
    assert result["timestamps_regular"]
    assert result["opens"] == 1


def test_microphone_capture_through_a_fifo_is_bit_exact_and_real_time(
    tmp_path: Path, source_pcm: np.ndarray
) -> None:
    with (
        alsa_file_devices(tmp_path, fifo=True) as alsa,
        FifoFeeder(alsa.capture_path, source_pcm.tobytes()) as feeder,
    ):
        result = run_child(["capture", "filecap", str(source_pcm.size), str(tmp_path / "got.raw")], alsa.env)
        assert feeder.error is None
    got = np.frombuffer((tmp_path / "got.raw").read_bytes(), dtype="<i2")
    assert np.array_equal(got, source_pcm)
    # Paced by the feeder: 2 s of audio cannot arrive much faster than 2 s (a lower bound only).
    assert result["elapsed_s"] > 1.5


def test_a_48k_stereo_device_is_mixed_and_resampled_to_16k_mono(tmp_path: Path) -> None:
    # The file PCM hands over the raw file in whatever format the stream is opened with.
    t = np.arange(48000) / 48000
    left = 0.6 * np.sin(2 * np.pi * 1000 * t)
    right = 0.2 * np.sin(2 * np.pi * 1000 * t)  # the mean of the two is 0.4 of full scale
    stereo = (np.stack([left, right], axis=1) * 32767).astype("<i2")
    with alsa_file_devices(tmp_path, capture=stereo.tobytes()) as alsa:
        out = str(tmp_path / "got.raw")
        result = run_child(
            ["capture", "filecap", "14400", out, "--rate", "48000", "--channels", "2"], alsa.env
        )
    got = np.frombuffer((tmp_path / "got.raw").read_bytes(), dtype="<i2")
    assert result["samples"] == 14400
    assert dominant_hz(got[2000:14000]) == pytest.approx(1000, abs=5)
    assert 0.35 * 32768 < np.abs(got[2000:14000]).max() < 0.45 * 32768


def test_live_capture_through_the_front_end_finds_both_commands(
    tmp_path: Path, two_commands: tuple[Path, list[dict[str, Any]]]
) -> None:
    # The daemon's path in real time: FIFO -> ALSA file PCM -> PortAudio -> MicrophoneSource -> Segmenter.
    path, truth = two_commands
    pcm = read_wav(path)
    seconds = pcm.size / 16000 + 0.8  # the feeder adds silence after the audio: room for the hangover
    with alsa_file_devices(tmp_path, fifo=True) as alsa, FifoFeeder(alsa.capture_path, pcm.tobytes()):
        result = run_child(["segment", "filecap", str(seconds)], alsa.env)
    found = result["utterances"]
    assert len(found) == 2, found
    for got, true in zip(found, truth, strict=True):
        assert got["start_s"] == pytest.approx(true["start_s"], abs=0.1)
        assert got["end_s"] == pytest.approx(true["end_s"], abs=0.1)


def test_a_slow_consumer_overflows_the_bounded_queue_and_it_is_logged(
    tmp_path: Path, source_pcm: np.ndarray
) -> None:
    # The file device is not paced: the callback delivers far faster than this consumer reads.
    with alsa_file_devices(tmp_path, capture=source_pcm.tobytes()) as alsa:
        result = run_child(
            ["capture", "filecap", "9600", str(tmp_path / "got.raw"), "--queue", "5", "--slow", "0.02"],
            alsa.env,
        )
    got = np.frombuffer((tmp_path / "got.raw").read_bytes(), dtype="<i2")
    assert result["overflows"] > 0
    assert any("capture queue full" in m for m in result["messages"])
    assert np.array_equal(got[: 5 * 480], source_pcm[: 5 * 480])  # what was queued is intact and in order


def test_playback_writes_the_samples_to_the_wav(tmp_path: Path, source_pcm: np.ndarray) -> None:
    (tmp_path / "in.raw").write_bytes(source_pcm.tobytes())
    with alsa_file_devices(tmp_path, capture=b"") as alsa:
        result = run_child(["play", str(tmp_path / "in.raw"), "fileplay"], alsa.env)
        played, rate, channels = _read_wav(alsa.playback_wav)
    assert result == {"completed": True}
    assert (rate, channels) == (16000, 1)
    assert np.array_equal(played[: source_pcm.size], source_pcm)


def test_playback_volume_scales_the_samples(tmp_path: Path, source_pcm: np.ndarray) -> None:
    (tmp_path / "in.raw").write_bytes(source_pcm.tobytes())
    with alsa_file_devices(tmp_path, capture=b"") as alsa:
        run_child(["play", str(tmp_path / "in.raw"), "play", "--volume", "0.5"], alsa.env)  # name substring
        played, _, _ = _read_wav(alsa.playback_wav)
    expected = np.rint(source_pcm.astype(np.float32) * 0.5).astype(np.int16)
    assert np.array_equal(played[: source_pcm.size], expected)


def test_a_cancelled_playback_stops_early(tmp_path: Path, source_pcm: np.ndarray) -> None:
    (tmp_path / "in.raw").write_bytes(source_pcm.tobytes())
    with alsa_file_devices(tmp_path, capture=b"") as alsa:
        result = run_child(["play", str(tmp_path / "in.raw"), "fileplay", "--cancel-after", "5"], alsa.env)
        played, _, _ = _read_wav(alsa.playback_wav)
    assert result == {"completed": False}
    # 5 blocks of 20 ms were written, then the stream was aborted: far less than the 2 s clip.
    assert played.size <= 5 * 320 + 2048
    assert played.size < source_pcm.size // 4


def test_a_missing_output_device_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "in.raw").write_bytes(b"\0" * 320)
    with alsa_file_devices(tmp_path, capture=b"") as alsa:
        result = run_child(["play", str(tmp_path / "in.raw"), "hdmi speaker"], alsa.env)
    assert result["code"] == "device_missing"
    assert "no output device matches 'hdmi speaker'" in result["audio_error"]
    assert "fileplay" in result["audio_error"]  # lists what exists


def test_a_missing_microphone_is_retried_with_backoff_without_crashing(tmp_path: Path) -> None:
    with alsa_file_devices(tmp_path, capture=b"\0" * 960) as alsa:
        result = run_child(["missing", "usb mic", "0.6"], alsa.env)
    assert result["error"] is None
    assert not result["alive_after_stop"]
    assert result["frames"] == 0
    retries = [m for m in result["messages"] if "microphone unavailable" in m]
    assert len(retries) >= 3
    assert "no input device matches 'usb mic'" in retries[0]
    assert "filecap" in retries[0]  # says what is there instead


def test_a_microphone_that_appears_later_is_picked_up(tmp_path: Path, source_pcm: np.ndarray) -> None:
    with alsa_file_devices(tmp_path, capture=source_pcm.tobytes()) as alsa:
        write_asoundrc(alsa.config_dir, None, alsa.playback_wav)  # the microphone is not plugged in yet
        out = tmp_path / "got.raw"
        args = [sys.executable, str(CHILD), "capture", "filecap", "4800", str(out), "--retry-max", "0.1"]
        with subprocess.Popen(
            args, env=alsa.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            try:
                time.sleep(0.8)
                write_asoundrc(alsa.config_dir, alsa.capture_path, alsa.playback_wav)  # plugged in
                stdout, stderr = proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    result = json.loads(stdout.splitlines()[-1])
    assert result["samples"] == 4800, stderr
    assert np.array_equal(np.frombuffer(out.read_bytes(), dtype="<i2"), source_pcm[:4800])
    assert any("microphone unavailable" in m for m in result["messages"])
    assert any("open again" in m for m in result["messages"])
