"""Helpers of the pipeline tests: synthesized speech, an in-memory frame source, one typed fake per seam.

The fakes stand in for parts other engineers own (brain, router) or for hardware timing
(a paced player that "plays" by waiting, as a sound card does); the TTS synthesis, wake
words, segmenter and sd_notify socket are the real ones.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr

from assistant.tools.base import Tool
from assistant.tts.base import Pcm, SpeakResult
from assistant.types import (
    AudioFrame,
    BrainTurn,
    Event,
    Reply,
    ResultStatus,
    ToolCall,
    ToolResult,
    Utterance,
)

RATE = 16_000
FRAME = 480  # 30 ms


# --------------------------------------------------------------------------- speech


@functools.lru_cache(maxsize=64)
def espeak16(text: str, voice: str = "en-us", speed: int = 160) -> bytes:
    """``text`` spoken by espeak-ng, as 16 kHz mono int16 bytes."""
    from assistant.tts.espeak import EspeakSynthesizer

    pcm, rate = EspeakSynthesizer(voice, speed).synthesize(text)
    return to16k(pcm, rate)


@functools.lru_cache(maxsize=1)
def _piper() -> Any:
    from assistant.tts.piper import PiperSynthesizer

    return PiperSynthesizer()


@functools.lru_cache(maxsize=64)
def piper16(text: str) -> bytes:
    """``text`` spoken by the piper joe voice, as 16 kHz mono int16 bytes; the same bytes every run.

    Piper samples its voice's noise afresh on every call (its graph has random ops), so two
    runs of a test would hear different audio; with the noise scales at 0 it renders one
    fixed reading, and a test that passes once passes every time.
    """
    from piper.config import SynthesisConfig

    synthesizer = _piper()
    fixed = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = [np.asarray(c.audio_int16_array, dtype=np.int16).reshape(-1)
              for c in synthesizer.voice.synthesize(" ".join(text.split()), syn_config=fixed)]
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return to16k(pcm, synthesizer.rate)


def to16k(pcm: Pcm, rate: int) -> bytes:
    """Resample int16 samples to 16 kHz int16 bytes (soxr)."""
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, rate, RATE)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def silence(seconds: float, *, noise: float = 30.0, seed: int = 1) -> bytes:
    """Low-level noise (a real room is never digital zero)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, noise, int(RATE * seconds)).astype("<i2").tobytes()


def pad_frames(pcm: bytes) -> bytes:
    """Zero-pad to whole 30 ms frames."""
    return pcm + b"\0" * ((-len(pcm)) % (FRAME * 2))


# --------------------------------------------------------------------------- frame source


@dataclass
class Segment:
    """Audio the source plays, optionally after waiting for a condition."""

    pcm: bytes
    wait_for: Callable[[], bool] | None = None
    label: str = ""
    paced: bool | None = None
    """Override the source's pacing for this segment."""


class MemorySource:
    """An async frame source over in-memory segments with one continuous stream clock.

    ``paced``: frames come in real time (a microphone); otherwise as fast as the loop takes
    them. ``hang``: after the last segment, wait forever (a stuck audio driver) instead of
    ending. Records (wall time, stream time) of every frame and where each segment started.
    """

    def __init__(self, segments: Sequence[Segment], *, paced: bool = False, hang: bool = False) -> None:
        self.segments = list(segments)
        self.paced = paced
        self.hang = hang
        self.log: list[tuple[float, float]] = []
        self.starts: dict[str, float] = {}
        self.hung = threading.Event()
        self.closed = False

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[AudioFrame]:
        t = 0.0
        for segment in self.segments:
            if segment.wait_for is not None:
                deadline = time.monotonic() + 20
                while not segment.wait_for():
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"source: condition for segment {segment.label!r} never met")
                    await asyncio.sleep(0.005)
            if segment.label:
                self.starts[segment.label] = t
            pcm = pad_frames(segment.pcm)
            wall0 = time.monotonic()
            t0 = t
            for offset in range(0, len(pcm), FRAME * 2):
                if self.paced if segment.paced is None else segment.paced:
                    delay = wall0 + (t - t0) - time.monotonic()
                    await asyncio.sleep(max(0.0, delay))
                else:
                    await asyncio.sleep(0)
                self.log.append((time.monotonic(), t))
                yield AudioFrame(pcm[offset : offset + FRAME * 2], t)
                t += FRAME / RATE
        if self.hang:
            self.hung.set()
            await asyncio.Event().wait()

    def stream_time_at(self, wall: float) -> float:
        """Stream time of the latest frame delivered at or before wall time ``wall``."""
        best = 0.0
        for when, stream in self.log:
            if when <= wall:
                best = stream
        return best

    def close(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------- fakes


class FakeRouter:
    """The one fake ToolGateway: records calls, every call succeeds, and a confirmation
    question can be set as waiting (the real router is tested in tests/tools)."""

    def __init__(self, pending: str | None = None) -> None:
        self.calls: list[ToolCall] = []
        self.answers: list[str | None] = []
        self.pending = pending

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        self.calls.append(call)
        return ToolResult(call, ResultStatus.OK, speech="Done.")

    def pending_confirmation(self, site: str) -> str | None:
        return self.pending

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        self.answers.append(transcript)
        return ToolResult(ToolCall("confirm"), ResultStatus.CANCELLED)

    def tools(self) -> Sequence[Tool]:
        return []

    @property
    def tools_version(self) -> int:
        return 0


BrainStep = Callable[[Utterance, Any, threading.Event], BrainTurn]


class ScriptedBrain:
    """Plays one scripted step per utterance (the last one repeats)."""

    name = "scripted"

    def __init__(self, *steps: BrainStep) -> None:
        self.steps = list(steps)
        self.utterances: list[Utterance] = []

    def handle(self, utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        self.utterances.append(utterance)
        step = self.steps[min(len(self.utterances), len(self.steps)) - 1]
        return step(utterance, router, cancel)


def tool_reply(text: str, *, tool: str = "HassTurnOn", expects_answer: bool = False) -> BrainStep:
    """A step that calls one tool and replies ``text``."""

    def step(utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        call = ToolCall(tool, {"name": "kitchen light"})
        result = router.call(call, site=utterance.site)
        return BrainTurn("turn on the kitchen light", (call,), (result,),
                         Reply(text, expects_answer=expects_answer))

    return step


def failing(message: str = "decoder exploded") -> BrainStep:
    def step(utterance: Utterance, router: Any, cancel: threading.Event) -> BrainTurn:
        raise RuntimeError(message)

    return step


class RecordingSink:
    """A TTS sink that records replies; ``hold`` keeps "speaking" until cancelled (max 10 s)."""

    name = "recording"

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.spoken: list[str] = []
        self.cancelled_at: float | None = None
        self.speaking = threading.Event()

    def speak(self, text: str, cancel: threading.Event) -> SpeakResult:
        self.spoken.append(text)
        self.speaking.set()
        start = time.monotonic()
        if self.hold:
            while not cancel.wait(0.01):
                if time.monotonic() - start > 10:
                    break
        if cancel.is_set():
            self.cancelled_at = time.monotonic()
            return SpeakResult(completed=False, first_audio_at=start)
        return SpeakResult(completed=True, first_audio_at=start)

    def close(self) -> None:
        pass


class PacedPlayer:
    """A player that takes real time to "play", in 20 ms blocks, like a sound card."""

    volume = 1.0

    def __init__(self) -> None:
        self.played: list[int] = []
        self.stopped_at: float | None = None

    def play(self, pcm: Pcm, rate: int, cancel: threading.Event,
             on_start: Callable[[], None] | None = None) -> bool:
        if on_start is not None:
            on_start()
        block = rate // 50
        for offset in range(0, len(pcm), block):
            if cancel.is_set():
                self.stopped_at = time.monotonic()
                return False
            time.sleep(block / rate)
            self.played.append(min(block, len(pcm) - offset))
        return not cancel.is_set()


class RecordingEarcons:
    def __init__(self) -> None:
        self.played: list[str] = []

    def play(self, name: str, cancel: threading.Event | None = None) -> None:
        self.played.append(name)


@dataclass
class EventLog:
    events: list[Event] = field(default_factory=list)

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [str(e.type) for e in self.events]

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if str(e.type) == kind]


# --------------------------------------------------------------------------- sd_notify socket


class NotifySocket:
    """A bound unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)

    def drain(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except (TimeoutError, BlockingIOError):
                return out

    def close(self) -> None:
        self.sock.close()


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    """Poll ``condition`` (state owned by other threads, so no asyncio.Event to wait on)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)
