"""Fixtures of the audio front-end tests: the bundled sample, synthetic signals, a child runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "assistant" / "data" / "samples"
CHILD = Path(__file__).resolve().parent / "portaudio_child.py"


@pytest.fixture
def two_commands() -> tuple[Path, list[dict[str, Any]]]:
    """The bundled two-command recording and its true speech start/end times."""
    meta = json.loads((SAMPLES / "two_commands.json").read_text(encoding="utf-8"))
    return SAMPLES / "two_commands.wav", meta["utterances"]


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    """Float sine in [-1, 1]."""
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def dominant_hz(pcm: np.ndarray, rate: int = 16000) -> float:
    """Frequency of the strongest spectral peak."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / rate)[int(np.argmax(spectrum))])


def run_child(args: list[str], env: dict[str, str], timeout: float = 30) -> dict[str, Any]:
    """Run portaudio_child.py with an ALSA environment; return its JSON result."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from child: {proc.stdout[-1000:]} {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
