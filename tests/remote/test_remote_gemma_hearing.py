"""``hear: gemma``: Gemma E2B/E4B's speech recognition is the remote brain's ears.

The Gemma brain is real (onnxruntime on scripts/make_tiny_gemma.py's tiny scripted model:
its "transcription" is the text its script makes it say, which is all a test needs: the
same words must reach the server); the server is the scripted loopback one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from assistant.brains.gemma.brain import GemmaBrain, make_gemma_brain
from assistant.brains.hybrid import HybridBrain
from assistant.brains.remote.brain import UNAVAILABLE_NOTE
from assistant.config import GemmaSettings
from assistant.types import BrainTurn, Reply, Utterance
from tests.support.chat_server import ScriptedServer, closed_port, sse, text_chunks
from tests.support.remote_house import House, remote
from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "tests" / "data" / "gemma" / "templates" / "litert-lm_chat_template_e2b_e4b.jinja"
SAID = "turn off the hall light"

pytestmark = pytest.mark.slow


def _generator() -> ModuleType:
    return load_script("scripts/make_tiny_gemma.py")


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GemmaBrain]:
    path = _generator().make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "asr", variants=("fp32",),
        script=[("<|turn>model\n", False), (SAID + "<turn|>", True)],
        chat_template=TEMPLATE.read_text(encoding="utf-8"),
    )
    yield make_gemma_brain(GemmaSettings(model_dir=path, variant="fp32", audio_variant="fp32"))


def noise(seconds: float = 1.0) -> Utterance:
    pcm = (np.random.default_rng(7).standard_normal(int(16000 * seconds)) * 2000).astype("<i2").tobytes()
    return Utterance(pcm=pcm, start_s=0.0, end_s=seconds, source="test")


class Rejects:
    """A phrase brain that heard only grammar words and matched nothing."""

    name = "phrase"

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        return BrainTurn("turn of the", (), (), Reply("Sorry.", is_error=True), understood=False)


def test_gemma_transcribes_and_its_words_reach_the_server(gemma: GemmaBrain, house: House) -> None:
    words = gemma.transcribe(noise(), threading.Event())
    assert words is not None and SAID in words
    server = ScriptedServer([sse(text_chunks("Done."))])
    try:
        brain = HybridBrain(Rejects(), remote(server.url, fallback=gemma, hearing=gemma.transcribe))
        turn = brain.handle(noise(), house.router, threading.Event())
    finally:
        server.close()
    assert server.requests[0].body["messages"][-1]["content"] == words  # Gemma's words, not the grammar's
    assert turn.reply.text == "Done." and turn.transcript == words and "hear" in turn.timings_ms


def test_with_the_server_down_gemma_answers_itself_with_a_note(gemma: GemmaBrain, house: House) -> None:
    brain = remote(f"http://127.0.0.1:{closed_port()}/v1", fallback=gemma, hearing=gemma.transcribe)
    turn = brain.handle(noise(), house.router, threading.Event())
    assert turn.reply.text.startswith(UNAVAILABLE_NOTE) and "remote_fallback" in turn.flags
    assert house.lights == []  # the tiny model's script says words, it calls nothing


def test_no_speech_means_no_request(gemma: GemmaBrain, house: House) -> None:
    server = ScriptedServer([sse(text_chunks("never"))])
    try:
        brain = remote(server.url, fallback=None, hearing=gemma.transcribe)
        turn = brain.handle(noise(0.01), house.router, threading.Event())
    finally:
        server.close()
    assert server.requests == [] and not turn.understood
