"""The front end end to end on real synthesized speech: frames -> VAD -> endpointer -> Utterances."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assistant.audio.endpointer import EndpointEventType
from assistant.audio.frontend import Segmenter, segment_frames, utterances_from_file
from assistant.audio.pcm import Framer
from assistant.audio.vad import silero_model_path
from assistant.audio.wav import read_wav, write_wav
from assistant.config import VadSettings
from assistant.errors import AudioError
from assistant.types import AudioFrame

TOLERANCE_S = 0.1


def _frames(pcm: np.ndarray, samples: int = 480) -> list[AudioFrame]:
    framer = Framer(samples)
    return framer.push(pcm) + framer.flush()


def _assert_matches(utterances: list[Any], truth: list[dict[str, Any]]) -> None:
    assert len(utterances) == len(truth), [(u.start_s, u.end_s) for u in utterances]
    for utt, true in zip(utterances, truth, strict=True):
        assert utt.start_s == pytest.approx(true["start_s"], abs=TOLERANCE_S)
        assert utt.end_s == pytest.approx(true["end_s"], abs=TOLERANCE_S)


ENGINES = [
    pytest.param(VadSettings(), id="webrtc"),
    pytest.param(
        VadSettings(engine="silero"),
        id="silero",
        marks=pytest.mark.skipif(silero_model_path() is None, reason="silero-vad not installed"),
    ),
]


@pytest.mark.parametrize("settings", ENGINES)
def test_two_commands_give_two_utterances_within_100ms_of_the_truth(
    two_commands: tuple[Path, list[dict[str, Any]]], settings: VadSettings
) -> None:
    path, truth = two_commands
    utterances = utterances_from_file(path, settings)
    _assert_matches(utterances, truth)
    assert all(u.source == str(path) for u in utterances)


@pytest.mark.parametrize("snr_db", [30.0, 15.0, 10.0])
def test_a_noisy_room_still_gives_the_right_boundaries(
    two_commands: tuple[Path, list[dict[str, Any]]], snr_db: float, tmp_path: Path
) -> None:
    path, truth = two_commands
    clean = read_wav(path).astype(np.float64)
    speech = np.concatenate([clean[round(t["start_s"] * 16000) : round(t["end_s"] * 16000)] for t in truth])
    noise_rms = np.sqrt(np.mean(speech**2)) / 10 ** (snr_db / 20)
    noisy = clean + np.random.default_rng(11).normal(0, noise_rms, clean.size)
    write_wav(tmp_path / "noisy.wav", np.clip(np.rint(noisy), -32768, 32767).astype(np.int16))
    _assert_matches(utterances_from_file(tmp_path / "noisy.wav"), truth)


def test_the_same_recording_at_44k_stereo_gives_the_same_utterances(
    two_commands: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    import soxr

    path, truth = two_commands
    pcm = read_wav(path)
    up = np.clip(np.rint(soxr.resample(pcm.astype(np.float32), 16000, 44100)), -32768, 32767).astype(np.int16)
    write_wav(tmp_path / "stereo44.wav", np.stack([up, up], axis=1), 44100)
    _assert_matches(utterances_from_file(tmp_path / "stereo44.wav"), truth)


def test_pre_roll_keeps_the_audio_before_the_detected_start(two_commands: tuple[Path, Any]) -> None:
    path, _ = two_commands
    pcm = read_wav(path)
    settings = VadSettings(pre_roll_ms=300)
    for utt in utterances_from_file(path, settings):
        begin = round((utt.start_s - 0.3) * 16000)
        got = np.frombuffer(utt.pcm, dtype="<i2")
        assert np.array_equal(got[:4800], pcm[begin : begin + 4800])  # the first syllable survives
        assert got.size / 16000 <= settings.max_utterance_s


def test_incremental_use_reports_each_utterance_when_it_ends(two_commands: tuple[Path, Any]) -> None:
    path, truth = two_commands
    segmenter = Segmenter(VadSettings(), source="mic:test")
    seen: list[tuple[float, str]] = []
    padded = np.concatenate([read_wav(path), np.zeros(16000, dtype=np.int16)])  # room for the hangover
    for frame in _frames(padded):
        step = segmenter.step(frame)
        seen.extend((frame.timestamp, str(e.type)) for e in step.events)
        seen.extend((frame.timestamp, "utterance") for _ in step.utterances)
    kinds = [kind for _, kind in seen]
    assert kinds == ["speech-start", "speech-end", "utterance", "speech-start", "speech-end", "utterance"]
    first_done = seen[2][0]
    # Reported about silence_end after the speech stopped, long before the second command begins.
    assert truth[0]["end_s"] < first_done < truth[1]["start_s"]
    assert segmenter.flush() == []


def test_flush_closes_speech_cut_off_by_the_end_of_the_stream(two_commands: tuple[Path, Any]) -> None:
    path, truth = two_commands
    pcm = read_wav(path)[: round((truth[1]["end_s"] - 0.05) * 16000)]
    segmenter = Segmenter(VadSettings())
    utterances = [u for f in _frames(pcm) for u in segmenter.feed(f)]
    assert len(utterances) == 1
    tail = segmenter.flush()
    assert len(tail) == 1
    assert tail[0].start_s == pytest.approx(truth[1]["start_s"], abs=TOLERANCE_S)


def test_frames_of_another_length_are_recut_to_the_vad_frame(two_commands: tuple[Path, Any]) -> None:
    path, truth = two_commands
    _assert_matches(segment_frames(_frames(read_wav(path), 320), VadSettings()), truth)


def test_reset_drops_the_utterance_in_progress(two_commands: tuple[Path, Any]) -> None:
    path, truth = two_commands
    pcm = read_wav(path)
    middle = round((truth[0]["start_s"] + 0.5) * 16000)
    segmenter = Segmenter(VadSettings())
    out = [u for f in _frames(pcm[:middle]) for u in segmenter.feed(f)]
    assert segmenter.in_speech
    segmenter.reset()
    assert not segmenter.in_speech
    assert out == []
    assert segmenter.flush() == []


@pytest.mark.parametrize("samples", [480, 320], ids=["vad-frames", "other-frames"])
@pytest.mark.parametrize("idle_s", [0.0, 0.09, 4.0, 600.0])
def test_each_utterance_after_idle_time_is_whole(
    two_commands: tuple[Path, Any], samples: int, idle_s: float
) -> None:
    """The daemon feeds the segmenter only while listening: between turns, stream time moves on.

    Every turn must give the whole command, with boundaries in stream time, whatever the
    idle time between turns (this was the daemon's "only the first command acts" defect:
    the clock stayed behind and later utterances were cut to the pre-roll).
    """
    path, truth = two_commands
    pcm = read_wav(path)
    split = round((truth[0]["end_s"] + truth[1]["start_s"]) / 2 * 16000)
    first = _frames(np.concatenate([pcm[:split], np.zeros(16000, dtype=np.int16)]), samples)
    offset = first[-1].timestamp + first[-1].duration + idle_s
    second = [AudioFrame(f.pcm, f.timestamp + offset)
              for f in _frames(np.concatenate([pcm[split:], np.zeros(16000, dtype=np.int16)]), samples)]
    segmenter = Segmenter(VadSettings())
    got = []
    for turn, frames in enumerate((first, second, first, second)):
        segmenter.reset()  # listening starts
        shift = 0.0 if turn < 2 else offset + second[-1].timestamp + 1.0
        utterances = [u for f in frames for u in segmenter.feed(AudioFrame(f.pcm, f.timestamp + shift))]
        assert len(utterances) == 1, f"turn {turn + 1}"
        got.append((utterances[0], shift + (0.0 if turn % 2 == 0 else offset - split / 16000)))
    for turn, (utt, shift) in enumerate(got):
        expected = truth[turn % 2]
        assert utt.start_s - shift == pytest.approx(expected["start_s"], abs=TOLERANCE_S), f"turn {turn + 1}"
        assert utt.end_s - shift == pytest.approx(expected["end_s"], abs=TOLERANCE_S), f"turn {turn + 1}"
        speech_s = expected["end_s"] - expected["start_s"]
        assert utt.duration >= speech_s, f"turn {turn + 1}: {utt.duration:.2f} s of audio"


class LoudIsSpeech:
    """A deterministic VAD stand-in (constructor injection): a frame is speech when it is loud."""

    frame_ms = 30

    def is_speech(self, frame: bytes) -> bool:
        return bool(np.abs(np.frombuffer(frame, dtype="<i2")).max() > 1000)

    def reset(self) -> None:
        pass


def test_continuous_speech_is_cut_into_pieces_of_at_most_30_s() -> None:
    rng = np.random.default_rng(5)
    loud = np.clip(rng.normal(0, 5000, 16000 * 35), -32768, 32767).astype(np.int16)
    pcm = np.concatenate([np.zeros(16000, dtype=np.int16), loud, np.zeros(16000, dtype=np.int16)])
    utterances = segment_frames(_frames(pcm), VadSettings(), vad=LoudIsSpeech())
    assert len(utterances) == 2
    assert utterances[0].duration <= 30.0 + 1e-9
    assert utterances[0].duration == pytest.approx(30.0, abs=0.05)
    assert utterances[0].start_s == pytest.approx(1.0, abs=0.01)
    assert utterances[1].end_s == pytest.approx(36.0, abs=0.05)


def test_a_short_click_is_not_an_utterance() -> None:
    pcm = np.zeros(16000 * 2, dtype=np.int16)
    pcm[16000 : 16000 + 16 * 150] = 8000  # 150 ms burst, below the 250 ms minimum
    assert segment_frames(_frames(pcm), VadSettings(), vad=LoudIsSpeech()) == []


def test_armed_segmenter_times_out_on_silence() -> None:
    segmenter = Segmenter(VadSettings(no_speech_timeout_s=1.0), vad=LoudIsSpeech())
    silence = _frames(np.zeros(16000 * 2, dtype=np.int16))
    assert all(not segmenter.step(f).events for f in silence[:20])
    segmenter.arm()
    kinds = [e.type for f in silence[20:] for e in segmenter.step(f).events]
    assert kinds == [EndpointEventType.TIMEOUT]


def test_a_bad_file_is_an_audio_error(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF1234WAVEjunk")
    with pytest.raises(AudioError, match=r"bad\.wav"):
        utterances_from_file(tmp_path / "bad.wav")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_speech_at_22k_from_a_pipe_header_is_found(tmp_path: Path) -> None:
    # espeak-ng --stdout cannot seek back, so its header carries a placeholder data size.
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", "set a timer for five minutes"],
        check=True,
        capture_output=True,
    ).stdout
    (tmp_path / "espeak.wav").write_bytes(wav)
    speech = read_wav(tmp_path / "espeak.wav")
    loud = np.flatnonzero(np.abs(speech) > 328)
    speech = speech[loud[0] : loud[-1] + 1]
    pcm = np.concatenate([np.zeros(16000, dtype=np.int16), speech, np.zeros(16000, dtype=np.int16)])
    write_wav(tmp_path / "padded.wav", pcm)
    _assert_matches(
        utterances_from_file(tmp_path / "padded.wav"),
        [{"start_s": 1.0, "end_s": 1.0 + speech.size / 16000}],
    )
