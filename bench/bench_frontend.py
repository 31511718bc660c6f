#!/usr/bin/env python3
"""CPU cost of the audio front end per second of audio, as a fraction of one core.

The capture side is replayed exactly as MicrophoneSource runs it after the PortAudio
callback: copy the block, a bounded queue put/get, mono mix-down (and resampling when
the device runs at another rate), framing into AudioFrames; then the Segmenter: level
gate, VAD, endpointer, pre-roll buffering and Utterance assembly. Only PortAudio's own
driver work is left out (there is no sound card here).

Audio: the bundled two-command recording tiled with a faint noise floor up to
--minutes (default 10) minutes: speech and pauses in a realistic ratio.

Goal (issue 2): < 0.5 % of one core. CPU time is time.process_time(); the figure is
CPU seconds / audio seconds. Usage: .venv/bin/python bench/bench_frontend.py [--minutes N]
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.audio.frontend import Segmenter  # noqa: E402 - after the path set-up above
from assistant.audio.pcm import PcmConverter, frame_samples  # noqa: E402
from assistant.audio.vad import SileroVad, WebRtcVad, silero_model_path  # noqa: E402
from assistant.audio.wav import read_wav  # noqa: E402
from assistant.config import VadSettings  # noqa: E402
from assistant.types import AudioFrame, Utterance  # noqa: E402

SAMPLE = ROOT / "assistant" / "data" / "samples" / "two_commands.wav"
BLOCK_MS = 30


def make_audio(minutes: float) -> np.ndarray:
    """The sample tiled to ``minutes`` with seeded noise (16 kHz mono int16)."""
    one = read_wav(SAMPLE)
    reps = int(np.ceil(minutes * 60 * 16000 / one.size))
    audio = np.tile(one, reps)[: int(minutes * 60 * 16000)].astype(np.float64)
    audio += np.random.default_rng(1).normal(0, 30, audio.size)
    return np.clip(np.rint(audio), -32768, 32767).astype(np.int16)


def capture_blocks(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    """Blocks shaped (n, 1) as the PortAudio callback hands them over, at the device rate."""
    if rate != 16000:
        audio = np.clip(np.rint(soxr.resample(audio.astype(np.float32), 16000, rate)), -32768, 32767).astype(
            np.int16
        )
    n = rate * BLOCK_MS // 1000
    return [audio[i : i + n].reshape(-1, 1) for i in range(0, audio.size - n + 1, n)]


def run_capture(blocks: list[np.ndarray], rate: int) -> tuple[float, list[AudioFrame]]:
    """CPU seconds of the capture side: callback copy + bounded queue + conversion + framing."""
    q: queue.Queue[np.ndarray] = queue.Queue(maxsize=100)
    converter = PcmConverter(rate, 1, frame_samples(30))
    frames: list[AudioFrame] = []
    start = time.process_time()
    for block in blocks:
        q.put_nowait(block.copy())  # what the callback does
        frames.extend(converter.push(q.get_nowait()))  # what the reading side does
    frames.extend(converter.flush())
    return time.process_time() - start, frames


def run_segmenter(frames: list[AudioFrame], segmenter: Segmenter) -> tuple[float, list[Utterance]]:
    """CPU seconds of gate + VAD + endpointer + buffering."""
    utterances: list[Utterance] = []
    start = time.process_time()
    for frame in frames:
        utterances.extend(segmenter.feed(frame))
    utterances.extend(segmenter.flush())
    return time.process_time() - start, utterances


def pct(cpu_s: float, audio_s: float) -> str:
    """Figure as printed: percent of one core and times faster than real time."""
    share = 100.0 * cpu_s / audio_s
    return f"{share:.3f}% of one core (x real time {audio_s / cpu_s:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    audio = make_audio(args.minutes)
    audio_s = audio.size / 16000
    print(f"audio: {audio_s:.0f} s ({args.minutes:g} min), 16 kHz mono, {BLOCK_MS} ms blocks")

    blocks16 = capture_blocks(audio, 16000)
    cap_s, frames = run_capture(blocks16, 16000)
    settings = VadSettings()
    seg_s, utterances = run_segmenter(frames, Segmenter(settings, vad=WebRtcVad(2, 30)))
    print(f"  capture side (16 kHz device): {pct(cap_s, audio_s)}")
    print(f"  VAD + endpointing (webrtc):   {pct(seg_s, audio_s)}  [{len(utterances)} utterances]")
    total = cap_s + seg_s
    verdict = "meets" if 100 * total / audio_s < 0.5 else "MISSES"
    print(f"frontend: {pct(total, audio_s)} -- {verdict} the < 0.5% goal")

    blocks48 = capture_blocks(audio, 48000)
    cap48_s, frames48 = run_capture(blocks48, 48000)
    seg48_s, _ = run_segmenter(frames48, Segmenter(settings, vad=WebRtcVad(2, 30)))
    print(f"frontend, 48 kHz device (soxr resampling): {pct(cap48_s + seg48_s, audio_s)}")

    if silero_model_path() is not None:
        silero = Segmenter(VadSettings(engine="silero"), vad=SileroVad(0.5, 30))
        sil_s, sil_utts = run_segmenter(frames, silero)
        print("webrtc vs silero, same frames, same machine:")
        print(f"  webrtc: {pct(seg_s, audio_s)}  [{len(utterances)} utterances]")
        print(f"  silero: {pct(sil_s, audio_s)}  [{len(sil_utts)} utterances]  ratio x{sil_s / seg_s:.1f}")
        print(f"frontend with silero: {pct(cap_s + sil_s, audio_s)}")
    else:
        print("silero: not installed (pip install --no-deps silero-vad), skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
