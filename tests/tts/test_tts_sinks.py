"""TTS sinks for real: espeak-ng and piper synthesis, file and MQTT sinks, streaming, playback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.config import MqttSettings, Settings, TtsSettings
from assistant.errors import TtsError
from assistant.tts import (
    EarconPlayer,
    FileSink,
    MqttSink,
    NullSink,
    SpeakerSink,
    make_earcons,
    make_tts,
    split_sentences,
)
from assistant.tts.base import Pcm, SentenceStreamer, wav_bytes_to_pcm
from assistant.tts.earcons import EARCON_DIR, EARCONS, load_wav
from assistant.tts.espeak import EspeakSynthesizer
from assistant.tts.piper import PiperSynthesizer, find_packaged_voice
from tests.support.pipeline import PacedPlayer

CHILD = Path(__file__).resolve().parent / "tts_child.py"


def test_split_sentences() -> None:
    assert split_sentences("  Turned on the light.  It is  21 degrees!  Anything else? ") == [
        "Turned on the light.", "It is 21 degrees!", "Anything else?"]
    assert split_sentences("   ") == []


def test_espeak_synthesizes_pcm() -> None:
    pcm, rate = EspeakSynthesizer("en-us", 175).synthesize("Turn on the kitchen light.")
    assert rate == 22050
    assert pcm.dtype == np.int16
    assert 0.8 < len(pcm) / rate < 3.0
    assert np.abs(pcm).max() > 1000


def test_espeak_text_starting_with_a_dash_is_spoken_not_parsed() -> None:
    pcm, _ = EspeakSynthesizer().synthesize("--help me")
    assert len(pcm) > 0


def test_espeak_missing_is_a_clear_error() -> None:
    with pytest.raises(TtsError, match="not installed") as info:
        EspeakSynthesizer(binary="espeak-ng-does-not-exist")
    assert info.value.code == "tts_unavailable"


def test_espeak_unknown_voice_is_a_tts_error() -> None:
    with pytest.raises(TtsError) as info:
        EspeakSynthesizer("xx-nonexistent-voice").synthesize("hello")
    assert info.value.code == "tts_synthesis_failed"


@pytest.mark.parametrize("data", [b"", b"RIFF1234WAVE", b"NOTAWAVEFILE" * 4])
def test_bad_wav_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(TtsError):
        wav_bytes_to_pcm(data)


def test_piper_joe_voice_streams_one_chunk_per_sentence() -> None:
    assert find_packaged_voice() is not None
    synth = PiperSynthesizer()
    chunks = list(synth.stream("Turned on the kitchen light. It is twenty degrees."))
    assert len(chunks) == 2
    assert all(rate == synth.rate == 22050 and len(pcm) > 0.5 * rate for pcm, rate in chunks)


def test_piper_voice_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(TtsError, match="not found"):
        PiperSynthesizer(str(tmp_path / "voice.onnx"))


def read_wav(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


def test_file_sink_writes_numbered_wavs_atomically(tmp_path: Path) -> None:
    out = tmp_path / "replies"
    sink = make_tts(Settings(state_dir=tmp_path, tts=TtsSettings(kind="file")))
    assert isinstance(sink, FileSink)
    first = sink.speak("Turned on the kitchen light. Anything else?", threading.Event())
    second = sink.speak("It is noon.", threading.Event())
    assert first.completed and first.path == str(out / "reply-000001.wav")
    assert second.path == str(out / "reply-000002.wav")
    channels, width, rate, frames = read_wav(out / "reply-000001.wav")
    assert (channels, width, rate) == (1, 2, 22050)
    assert frames / rate > 1.5  # both sentences are in it
    assert sorted(p.name for p in out.iterdir()) == ["reply-000001.wav", "reply-000002.wav"]
    # A restart continues the numbering instead of overwriting.
    again = FileSink(EspeakSynthesizer(), out).speak("Hello.", threading.Event())
    assert again.path == str(out / "reply-000003.wav")


def test_file_sink_writes_nothing_when_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result = FileSink(EspeakSynthesizer(), tmp_path).speak("Hello there.", cancel)
    assert not result.completed
    assert list(tmp_path.iterdir()) == []


def test_mqtt_sink_publishes_the_text() -> None:
    sent: list[tuple[str, str]] = []
    settings = Settings(site="kitchen", tts=TtsSettings(kind="mqtt"), mqtt=MqttSettings(host="localhost"))
    sink = make_tts(settings, publish=lambda topic, payload: sent.append((topic, payload)))
    result = sink.speak("  The front door\n is locked. ", threading.Event())
    assert result.completed
    assert sent == [("assistant/kitchen/tts", "The front door is locked.")]


def test_mqtt_sink_needs_a_publisher_and_a_plain_topic() -> None:
    with pytest.raises(TtsError, match="broker"):
        make_tts(Settings(tts=TtsSettings(kind="mqtt")))
    with pytest.raises(TtsError, match="wildcards"):
        MqttSink(lambda t, p: None, "assistant/+/tts")


def test_mqtt_publish_failure_is_a_tts_error() -> None:
    def broken(topic: str, payload: str) -> None:
        raise ConnectionError("broker gone")

    with pytest.raises(TtsError) as info:
        MqttSink(broken, "a/b").speak("hello", threading.Event())
    assert info.value.code == "tts_publish_failed"


def test_none_sink() -> None:
    sink = make_tts(Settings(tts=TtsSettings(kind="none")))
    assert isinstance(sink, NullSink)
    assert sink.speak("anything", threading.Event()).completed


class GatedSynth:
    """Real espeak synthesis, but sentence 3 waits until sentence 1 has started playing."""

    def __init__(self, log: list[str], first_played: threading.Event) -> None:
        self.inner = EspeakSynthesizer()
        self.log = log
        self.first_played = first_played

    def synthesize(self, text: str) -> tuple[Pcm, int]:
        return self.inner.synthesize(text)

    def stream(self, text: str) -> Iterator[tuple[Pcm, int]]:
        for index, sentence in enumerate(split_sentences(text)):
            if index == 2:
                self.first_played.wait(5.0)
            self.log.append(f"synth {index}")
            yield self.inner.synthesize(sentence)


class LoggingPlayer(PacedPlayer):
    def __init__(self, log: list[str], first_played: threading.Event) -> None:
        super().__init__()
        self.log = log
        self.first_played = first_played
        self.count = 0

    def play(self, pcm, rate, cancel, on_start=None):  # type: ignore[no-untyped-def]
        self.log.append(f"play {self.count}")
        self.count += 1
        self.first_played.set()
        return super().play(pcm[: rate // 10], rate, cancel, on_start)  # 100 ms is enough here


def test_streaming_starts_speaking_before_the_last_sentence_is_synthesized() -> None:
    log: list[str] = []
    first_played = threading.Event()
    sink = SpeakerSink("espeak", GatedSynth(log, first_played), LoggingPlayer(log, first_played))
    result = sink.speak("One is first. Two is second. Three is third.", threading.Event())
    assert result.completed and result.first_audio_at is not None
    assert log.index("play 0") < log.index("synth 2")
    assert [e for e in log if e.startswith("play")] == ["play 0", "play 1", "play 2"]


def test_cancel_stops_speech_and_synthesis() -> None:
    player = PacedPlayer()
    sink = SpeakerSink("espeak", EspeakSynthesizer(), player)
    cancel = threading.Event()
    text = " ".join(f"This is sentence number {i} of a long reply." for i in range(12))
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    result = sink.speak(text, cancel)
    timer.cancel()
    assert not result.completed
    assert player.stopped_at is not None
    assert time.monotonic() - started < 5.0  # far from the ~40 s the whole text would take


def test_synthesis_failure_surfaces_as_tts_error() -> None:
    class Broken:
        def synthesize(self, text: str) -> tuple[Pcm, int]:
            raise RuntimeError("model file corrupt")

        def stream(self, text: str) -> Iterator[tuple[Pcm, int]]:
            yield self.synthesize(text)

    stream = SentenceStreamer(Broken(), PacedPlayer())
    with pytest.raises(TtsError, match="model file corrupt") as info:
        stream.speak("Hello.", threading.Event())
    assert info.value.code == "tts_synthesis_failed"


def test_espeak_plays_through_portaudio_to_the_alsa_file_device(tmp_path: Path) -> None:
    from tests.support.alsa import PLAYBACK_DEVICE, alsa_file_devices

    # One sentence: the test device truncates its WAV each time a stream opens.
    text = "Turned on the kitchen light."
    expected = len(EspeakSynthesizer().synthesize(text)[0])
    with alsa_file_devices(tmp_path) as alsa:
        proc = subprocess.run(
            [sys.executable, str(CHILD), PLAYBACK_DEVICE, text],
            env=alsa.env, capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["completed"] and result["first_audio"]
        channels, width, rate, frames = read_wav(alsa.playback_wav)
    assert (channels, width, rate) == (1, 2, 22050)
    assert abs(frames - expected) < 0.1 * expected


def test_earcons_are_small_16k_wavs() -> None:
    for name in EARCONS:
        path = EARCON_DIR / f"{name}.wav"
        assert path.stat().st_size < 16_000
        pcm, rate = load_wav(path)
        assert rate == 16000 and 0.05 < len(pcm) / rate < 0.5
        assert np.abs(pcm).max() > 3000


def test_earcon_player_plays_each_sound() -> None:
    player = PacedPlayer()
    earcons = EarconPlayer(player)
    earcons.play("wake")
    earcons.play("no-such-earcon")  # ignored
    assert sum(player.played) == len(load_wav(EARCON_DIR / "wake.wav")[0])


def test_earcons_are_silent_for_sinks_without_a_speaker(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, tts=TtsSettings(kind="none"))
    assert not isinstance(make_earcons(settings, make_tts(settings)), EarconPlayer)
