"""``wyoming.server.asr: gemma``: Gemma 4's own transcription as the asr Home Assistant adds.

Real parts: the Gemma brain is onnxruntime on scripts/make_tiny_gemma.py's tiny scripted model
(its "transcription" of any speech is the text its script makes it say, through the real ASR
prompt, audio encoder and decoder: all a test of the wiring needs; what real weights hear needs
real weights); the server, router, demo house and mosquitto are the real ones; the client is
the real ``wyoming`` library, doing what HA's pipeline does: asr, then handle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from wyoming.handle import Handled

from assistant.brains.gemma.brain import GemmaBrain, make_gemma_brain
from assistant.brains.hybrid import HybridBrain
from assistant.brains.phrase import PhraseBrain
from assistant.compose import gemma_of
from assistant.config import (
    BrainSettings,
    ConfigError,
    GemmaSettings,
    PhraseSettings,
    Settings,
    parse_settings,
)
from assistant.supervisor import _gemma_ears
from assistant.types import Utterance
from assistant.wyoming.server_brains import MAX_TRANSCRIPT_CHARS, GemmaTranscriber
from tests.e2e.live_daemon import Watcher
from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.scripts import load_script
from tests.support.wyoming_server import Served, served
from tests.wyoming.test_wyoming_server import describe_info, handle, transcribe

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "tests" / "data" / "gemma" / "templates" / "litert-lm_chat_template_e2b_e4b.jinja"
SAID = "turn on the kitchen light"
KITCHEN = "demo/kitchen/light/set"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> GemmaBrain:
    path = load_script("scripts/make_tiny_gemma.py").make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "asr", variants=("fp32",),
        script=[("<|turn>model\n", False), (SAID + "<turn|>", True)],
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
    )
    return make_gemma_brain(GemmaSettings(model_dir=path, variant="fp32", audio_variant="fp32"))


@pytest.fixture(scope="module")
def running(gemma: GemmaBrain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Watcher]]:
    tmp = tmp_path_factory.mktemp("wyoming-gemma")
    with Broker(tmp) as broker, served(tmp, broker, asr="gemma", hearing=gemma.transcribe) as parts:
        watcher = Watcher(broker, topics=("demo/#",), client_id="wyoming-gemma-test")
        try:
            yield parts, watcher
        finally:
            watcher.close()


def noise(seconds: float, seed: int) -> bytes:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 2000).astype("<i2").tobytes()


def test_describe_names_gemma_as_the_asr(running: tuple[Served, Watcher]) -> None:
    info = describe_info(running[0].port)
    (asr,) = info.asr
    assert asr.name == "assistant-gemma" and asr.installed
    assert [m.languages for m in asr.models] == [["en"]] and "Gemma" in asr.models[0].attribution.name
    assert [h.name for h in info.handle] == ["assistant-router"]


def test_gemma_transcribes_each_turn_and_acts_on_none(running: tuple[Served, Watcher]) -> None:
    parts, watcher = running
    mark = watcher.mark()
    texts = transcribe(parts.port, noise(1.0, 1), noise(2.0, 2), noise(0.6, 3))
    assert texts == [SAID, SAID, SAID]  # Gemma's words, three turns on one connection
    time.sleep(0.3)
    assert [m.topic for m in watcher.since(mark)] == []  # asr only hears: nothing acted


def test_home_assistants_pipeline_asr_then_handle_acts_once(running: tuple[Served, Watcher]) -> None:
    parts, watcher = running
    for _ in range(2):  # a pipeline run, twice: each turn acts once
        mark = watcher.mark()
        (text,) = transcribe(parts.port, noise(1.5, 4))
        event = handle(parts.port, text)
        assert Handled.is_type(event.type), event
        assert watcher.wait(lambda m: m.topic == KITCHEN, since=mark, timeout=5) is not None
        time.sleep(0.3)
        assert [m.topic for m in watcher.since(mark)] == [KITCHEN]


def test_gemmas_words_are_one_bounded_line_and_none_is_no_transcript() -> None:
    heard: list[Utterance] = []

    def rambling(utterance: Utterance, cancel: threading.Event) -> str | None:
        heard.append(utterance)
        return "turn on\nthe light " * 1000

    transcriber = GemmaTranscriber(rambling, site="home-assistant")
    text = transcriber.transcribe(noise(1.0, 5), threading.Event())
    assert len(text) == MAX_TRANSCRIPT_CHARS and "\n" not in text and text.startswith("turn on the light")
    assert heard[0].site == "home-assistant" and abs(heard[0].end_s - 1.0) < 1e-6
    assert GemmaTranscriber(lambda u, c: None, site="x").transcribe(noise(1.0, 6), threading.Event()) == ""
    cancel = threading.Event()
    cancel.set()
    assert transcriber.transcribe(noise(1.0, 7), cancel) == ""


def test_asr_gemma_without_a_model_is_a_settings_error() -> None:
    with pytest.raises(ConfigError, match=r"server\.asr is 'gemma' but brain\.gemma\.model_dir is not set"):
        parse_settings("wyoming:\n  server:\n    asr: gemma\n")
    # asr not served: no model needed
    assert parse_settings("wyoming:\n  server:\n    asr: gemma\n    serve: [handle]\n").wyoming.server


def test_the_server_shares_the_daemons_gemma_and_loads_one_only_when_there_is_none(
    gemma: GemmaBrain, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    phrase = PhraseBrain(PhraseSettings())
    assert gemma_of(gemma) is gemma and gemma_of(HybridBrain(phrase, gemma)) is gemma
    assert gemma_of(phrase) is None and gemma_of(None) is None
    daemon = SimpleNamespace(assistant=SimpleNamespace(brain=HybridBrain(phrase, gemma)))
    shared = _gemma_ears(Settings(), daemon)  # type: ignore[arg-type]  # the daemon's brain is all it reads
    assert shared is not None and shared.__self__ is gemma  # type: ignore[attr-defined]  # one model in memory
    empty = tmp_path / "no-model"
    empty.mkdir()
    settings = Settings(brain=BrainSettings(gemma=GemmaSettings(model_dir=empty)))
    with caplog.at_level(logging.ERROR):
        assert _gemma_ears(settings, SimpleNamespace(assistant=SimpleNamespace(brain=phrase))) is None  # type: ignore[arg-type]
    assert "Gemma for asr could not be loaded" in caplog.text  # logged; the rest of the server serves
