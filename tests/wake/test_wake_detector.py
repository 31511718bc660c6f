"""Wake words: the pure refractory gate, and real microWakeWord models on synthesized speech."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from assistant.config import WakeWordSettings
from assistant.errors import ConfigError
from assistant.wake import Detection, RefractoryGate, WakeDetector, WordRule
from tests.support.pipeline import FRAME, espeak16, piper16, silence

# --------------------------------------------------------------------------- pure gate


def gate() -> RefractoryGate:
    return RefractoryGate({"a": WordRule(0.8, 2.0), "b": WordRule(0.5, 1.0)})


def test_fires_only_above_threshold() -> None:
    g = gate()
    assert not g.decide("a", 0.8, 0.0)
    assert g.decide("a", 0.81, 0.1)


def test_refractory_turns_a_run_of_high_scores_into_one_detection() -> None:
    g = gate()
    fired = [g.decide("a", 0.95, t / 100) for t in range(0, 150, 3)]
    assert fired.count(True) == 1


def test_fires_again_after_the_refractory_time() -> None:
    g = gate()
    assert g.decide("a", 0.9, 1.0)
    assert not g.decide("a", 0.9, 2.99)
    assert g.decide("a", 0.9, 3.0)


def test_words_have_their_own_refractory_periods() -> None:
    g = gate()
    assert g.decide("a", 0.9, 0.0)
    assert g.decide("b", 0.6, 0.1)
    assert not g.decide("b", 0.6, 1.0)
    assert g.decide("b", 0.6, 1.1)
    assert not g.decide("a", 0.9, 1.1)


def test_unknown_word_never_fires() -> None:
    assert not gate().decide("zzz", 1.0, 0.0)


def test_stream_restart_clears_the_period() -> None:
    g = gate()
    assert g.decide("a", 0.9, 100.0)
    assert g.decide("a", 0.9, 0.5)  # clock went back: a new stream


def test_suppress_starts_the_period_without_a_detection() -> None:
    g = gate()
    g.suppress(5.0)
    assert not g.decide("a", 0.99, 6.0)
    assert g.decide("a", 0.99, 7.0)


# --------------------------------------------------------------------------- real models


def run_detector(detector: WakeDetector, pcm: bytes) -> list[Detection]:
    found = []
    for offset in range(0, len(pcm) - FRAME * 2 + 1, FRAME * 2):
        hit = detector.process(pcm[offset : offset + FRAME * 2], offset / 32000)
        if hit is not None:
            found.append(hit)
    return found


@pytest.fixture(scope="module")
def detector() -> WakeDetector:
    words = [WakeWordSettings("okay_nabu"), WakeWordSettings("alexa")]
    return WakeDetector(words, stop_words=("hey_mycroft",))


def clip(speech: bytes) -> bytes:
    return silence(0.5) + speech + silence(1.0)


@pytest.mark.parametrize(
    ("make", "text", "word"),
    [
        (espeak16, "okay nabu", "okay_nabu"),
        (piper16, "okay nabu", "okay_nabu"),
        (espeak16, "alexa", "alexa"),
        (piper16, "alexa", "alexa"),
    ],
)
def test_detects_a_synthesized_wake_phrase_once(detector: WakeDetector, make, text: str, word: str) -> None:
    detector.reset()
    detector.gate.reset()
    found = run_detector(detector, clip(make(text)))
    assert [(d.word, d.kind) for d in found] == [(word, "wake")]
    assert 0.5 < found[0].timestamp < 0.5 + len(make(text)) / 32000 + 1.0


def test_stop_word_is_reported_as_stop(detector: WakeDetector) -> None:
    detector.reset()
    detector.gate.reset()
    found = run_detector(detector, clip(piper16("hey mycroft")))
    assert [(d.word, d.kind) for d in found] == [("hey_mycroft", "stop")]


def test_no_detection_on_ordinary_speech(detector: WakeDetector) -> None:
    detector.reset()
    detector.gate.reset()
    sentences = [
        "turn on the kitchen light", "what time is it", "set a timer for five minutes",
        "the weather is nice today", "okay, now play some music", "hey, can you hear me",
    ]
    audio = b"".join(clip(espeak16(s)) + clip(piper16(s)) for s in sentences)
    assert run_detector(detector, audio) == []


def test_custom_model_by_json_path(tmp_path: Path) -> None:
    import pymicro_wakeword

    models = Path(pymicro_wakeword.__file__).parent / "models"
    for name in ("okay_nabu.json", "okay_nabu.tflite"):
        shutil.copy(models / name, tmp_path / name)
    word = WakeWordSettings(str(tmp_path / "okay_nabu.json"), threshold=0.5, refractory_s=1.0)
    custom = WakeDetector([word])
    assert custom.words == {"okay_nabu": "wake"}
    assert [d.word for d in run_detector(custom, clip(espeak16("okay nabu")))] == ["okay_nabu"]


def test_unknown_builtin_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not built in"):
        WakeDetector([WakeWordSettings("hey_toaster")])


def test_missing_custom_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        WakeDetector([WakeWordSettings(str(tmp_path / "nope.json"))])


def test_threshold_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="threshold"):
        WakeDetector([WakeWordSettings("okay_nabu", threshold=1.5)])


WORDS = (
    "the", "a", "kitchen", "light", "living", "room", "bedroom", "turn", "on", "off", "set", "timer",
    "minutes", "seconds", "what", "is", "time", "weather", "today", "tomorrow", "music", "play", "stop",
    "pause", "volume", "up", "down", "door", "window", "garage", "open", "close", "please", "thank",
    "you", "dinner", "ready", "call", "mom", "later", "remind", "me", "buy", "milk", "eggs", "bread",
    "temperature", "degrees", "warm", "cold", "fan", "speed", "okay", "now", "then", "maybe", "nobody",
    "knows", "about", "alarm", "morning", "evening", "nab", "nail", "banana", "cabana", "jar", "vis",
    "jarring", "mike", "craft", "aloha", "lexicon", "alex", "my", "crochet", "hey", "hay",
)


def paragraph(rng: Any, sentences: int = 12) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS, size=int(rng.integers(4, 12)))).capitalize() + "."
        for _ in range(sentences)
    )


@pytest.mark.slow
def test_false_accepts_over_ten_minutes_of_speech_and_noise() -> None:
    """All four built-in words over >= 10 minutes of non-wake speech (several espeak voices and
    speeds, seeded random sentences, near-miss words like "banana", "jarring", "lexicon") and
    noise. The count is the figure; the acceptance is zero."""
    import numpy as np

    from assistant.tts.espeak import EspeakSynthesizer
    from tests.support.pipeline import to16k

    rng = np.random.default_rng(2024)
    voices = [("en-us", 150), ("en-us", 210), ("en-gb", 170), ("en-gb-scotland", 160), ("en-029", 180),
              ("en-gb-x-rp", 140)]
    parts: list[bytes] = []
    seconds = 0.0
    while seconds < 9 * 60:
        voice, speed = voices[len(parts) % len(voices)]
        pcm, rate = EspeakSynthesizer(voice, speed).synthesize(paragraph(rng))
        chunk = to16k(pcm, rate)
        parts.append(chunk)
        seconds += len(chunk) / 32000
    noise = rng.normal(0, 400, 16000 * 75)
    noise[::4000] += rng.normal(0, 8000, noise[::4000].size)  # clicks
    parts.append(np.clip(noise, -32768, 32767).astype("<i2").tobytes())
    audio = b"".join(parts)
    assert len(audio) / 32000 >= 600
    words = [WakeWordSettings(w) for w in ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")]
    found = run_detector(WakeDetector(words), audio)
    assert [(d.word, round(d.timestamp, 1)) for d in found] == []
