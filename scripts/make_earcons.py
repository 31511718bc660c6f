#!/usr/bin/env python3
"""Generate the earcon WAVs (wake, done, error) under assistant/data/earcons/.

Short sine tones with raised-cosine fades so they do not click: a rising two-note chime
for wake, a single soft note for done, a falling pair for error. 16 kHz mono int16, a few
kilobytes each. Deterministic: running it again gives identical files.
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np

RATE = 16_000
OUT = Path(__file__).resolve().parent.parent / "assistant" / "data" / "earcons"


def tone(freq: float, seconds: float, level: float = 0.3) -> np.ndarray:
    """One sine note with 10 ms raised-cosine fade in and out."""
    n = int(RATE * seconds)
    t = np.arange(n) / RATE
    note = np.sin(2 * np.pi * freq * t) * level
    fade = min(n // 2, int(RATE * 0.01))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    note[:fade] *= ramp
    note[n - fade :] *= ramp[::-1]
    return note


def gap(seconds: float) -> np.ndarray:
    """Silence."""
    return np.zeros(int(RATE * seconds))


EARCONS = {
    "wake": lambda: np.concatenate([tone(660, 0.06), gap(0.015), tone(990, 0.08)]),
    "done": lambda: tone(880, 0.08, level=0.2),
    "error": lambda: np.concatenate([tone(440, 0.09), gap(0.02), tone(330, 0.14)]),
}


def write(path: Path, samples: np.ndarray) -> None:
    """Write float samples in [-1, 1] as 16-bit mono WAV."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in EARCONS.items():
        path = args.out / f"{name}.wav"
        write(path, make())
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
