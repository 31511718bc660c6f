#!/usr/bin/env python3
"""Idle cost of the daemon: wake word + VAD + the orchestrator loop, and resident memory.

Figures (CPU as % of one core = CPU seconds per second of audio x 100):
  wake      the wake-word detector alone (features + every loaded model)
  vad       the segmenter (webrtcvad + endpointer) alone, which runs while listening
  idle      the real Orchestrator, idle, fed through ThreadedFrameSource (the capture hop:
            a thread + call_soon_threadsafe per 30 ms frame) -- the daemon's idle path
  realtime  the same idle path paced at real time for --realtime-s seconds: process CPU
            over wall time, including event-loop wake-ups; twice, side by side: "per-frame"
            hands every 30 ms frame on at once (the orchestrator's idle_batch_ms=0), "batched"
            lets the paced source gather bursts of idle_batch_ms as MicrophoneSource does
            while the daemon idles (one reader and loop wake-up per burst)
and ru_maxrss after the wake models, the segmenter and the espeak sink are loaded.
Goals: idle CPU <= 3% of one core; RSS with the phrase brain <= 150 MB (the lead measures
the whole daemon with the brain).

    .venv/bin/python bench/bench_daemon.py [--seconds 60] [--realtime-s 10] [--words okay_nabu,alexa]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.audio.frontend import Segmenter
from assistant.config import Settings, TtsSettings, WakeSettings, WakeWordSettings
from assistant.daemon import IDLE_BATCH_MS, Orchestrator, ThreadedFrameSource
from assistant.tools.base import Tool
from assistant.tts import make_tts
from assistant.types import AudioFrame, BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance
from assistant.wake import WakeDetector

FRAME = 480  # 30 ms


def room_audio(seconds: float, seed: int = 7) -> bytes:
    """Quiet room: low noise with a few louder bursts (doors, steps), never speech."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(0, 60, int(16000 * seconds))
    for start in rng.integers(0, len(samples) - 8000, size=max(1, int(seconds // 5))):
        samples[start : start + 4000] += rng.normal(0, 2000, 4000)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def frames(pcm: bytes) -> Iterator[AudioFrame]:
    for offset in range(0, len(pcm) - FRAME * 2 + 1, FRAME * 2):
        yield AudioFrame(pcm[offset : offset + FRAME * 2], offset / 32000)


class NoBrain:
    name = "none"

    def handle(self, utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        return BrainTurn(None, (), (), Reply(""))


class NoRouter:
    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        return ToolResult(call, ResultStatus.ERROR)

    def pending_confirmation(self, site: str) -> str | None:
        return None

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        return ToolResult(ToolCall("x"), ResultStatus.CANCELLED)

    def tools(self) -> list[Tool]:
        return []

    @property
    def tools_version(self) -> int:
        return 0


class Counting:
    """Counts frames that reach the orchestrator (the threaded hop may drop some when fed fast)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.frames = 0

    def set_batch_ms(self, ms: int) -> None:
        self.inner.set_batch_ms(ms)

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AudioFrame]:
        async for frame in self.inner:
            self.frames += 1
            yield frame


class Paced:
    """Frames at real time, handed on in bursts of ``set_batch_ms`` (like MicrophoneSource)."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.batch = 1

    def set_batch_ms(self, ms: int) -> None:
        self.batch = max(1, round(ms / 30))

    def __iter__(self) -> Iterator[AudioFrame]:
        for batch in self.frame_batches():
            yield from batch

    def frame_batches(self) -> Iterator[list[AudioFrame]]:
        start = time.monotonic()
        pending: list[AudioFrame] = []
        for frame in frames(self.pcm):
            delay = start + frame.timestamp + frame.duration - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the capture clock: one wake-up per block, like PortAudio's thread
            pending.append(frame)
            if len(pending) >= self.batch:
                yield pending
                pending = []
        if pending:
            yield pending


def run_idle(settings: Settings, detector: WakeDetector, source: Any,
             idle_batch_ms: int = IDLE_BATCH_MS) -> tuple[float, float, int]:
    """(cpu seconds, wall seconds, frames) of the orchestrator over ``source``."""
    counting = Counting(ThreadedFrameSource(source, max_frames=100_000))
    orch = Orchestrator(settings, source=counting, segmenter=Segmenter(settings.vad), brain=NoBrain(),
                        router=NoRouter(), tts=make_tts(Settings(tts=TtsSettings(kind="none"))),
                        wake=detector, idle_batch_ms=idle_batch_ms)
    cpu0, wall0 = time.process_time(), time.monotonic()
    asyncio.run(orch.run())
    return time.process_time() - cpu0, time.monotonic() - wall0, counting.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio fed as fast as possible")
    parser.add_argument("--realtime-s", type=float, default=10.0, help="audio fed in real time (0 = skip)")
    parser.add_argument("--words", default="okay_nabu", help="comma-separated wake words")
    args = parser.parse_args()

    words = tuple(WakeWordSettings(w) for w in args.words.split(","))
    settings = Settings(wake=WakeSettings(words=words))
    detector = WakeDetector.from_settings(settings.wake)
    segmenter = Segmenter(settings.vad)
    sink = make_tts(Settings(tts=TtsSettings(kind="espeak")))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audio = room_audio(args.seconds)
    audio_s = len(audio) / 32000
    print(f"audio: {audio_s:.0f} s of synthetic room noise, 30 ms frames; wake words: {args.words}")

    cpu0 = time.process_time()
    for frame in frames(audio):
        detector.process(frame.pcm, frame.timestamp)
    wake_cpu = time.process_time() - cpu0
    print(f"wake      {wake_cpu / audio_s * 100:6.2f} % of one core  ({wake_cpu:.2f} s CPU)")

    cpu0 = time.process_time()
    for frame in frames(audio):
        segmenter.feed(frame)
    vad_cpu = time.process_time() - cpu0
    print(f"vad       {vad_cpu / audio_s * 100:6.2f} % of one core  ({vad_cpu:.2f} s CPU)")

    detector.reset()
    cpu, _wall, count = run_idle(settings, detector, frames(audio))
    fed_s = count * FRAME / 16000
    print(f"idle      {cpu / fed_s * 100:6.2f} % of one core  (orchestrator + capture hop + wake; "
          f"{count} frames)")

    if args.realtime_s > 0:
        live = room_audio(args.realtime_s, seed=8)
        for label, batch_ms in (("per-frame", 0), ("batched", IDLE_BATCH_MS)):
            detector.reset()
            cpu, wall, count = run_idle(settings, detector, Paced(live), batch_ms)
            print(f"realtime  {cpu / wall * 100:6.2f} % of one core  {label} (idle_batch_ms={batch_ms}; "
                  f"{wall:.1f} s wall, {count} frames, whole process incl. the feeder thread)")

    print(f"rss       {rss_mb:6.1f} MB ru_maxrss after wake models + segmenter + espeak sink")
    del sink


if __name__ == "__main__":
    main()
