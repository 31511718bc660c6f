"""Runs PortAudio work in a child process whose environment selects a test ALSA config.

PortAudio reads the ALSA configuration once, at ``import sounddevice``, so every test
that needs the file-plugin devices runs this script with ``AlsaFiles.env``. It prints
one JSON object on stdout.

    python portaudio_child.py devices
    python portaudio_child.py capture DEVICE SAMPLES OUT.raw [--queue N] [--retry-max S] [--slow S]
    python portaudio_child.py play IN.raw DEVICE [--volume V] [--cancel-after BLOCKS]
    python portaudio_child.py segment DEVICE SECONDS
    python portaudio_child.py missing DEVICE RUN_S
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from assistant.audio.frontend import Segmenter
from assistant.audio.playback import play
from assistant.audio.sources import MicrophoneSource, list_devices
from assistant.config import AudioSettings, VadSettings
from assistant.errors import AudioError


class _CountingEvent(threading.Event):
    """A cancel event that becomes set after ``n`` checks: a deterministic mid-play cancel."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.checks = 0
        self.n = n

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > self.n or super().is_set()


def _collect_logs() -> list[str]:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logging.getLogger("assistant").addHandler(Collect())
    logging.getLogger("assistant").setLevel(logging.INFO)
    return records


def _capture(args: argparse.Namespace) -> dict[str, object]:
    messages = _collect_logs()
    settings = AudioSettings(
        device=args.device,
        block_ms=30,
        queue_blocks=args.queue,
        retry_max_s=args.retry_max,
        sample_rate=args.rate,
        channels=args.channels,
    )
    want = args.samples
    got: list[bytes] = []
    count = 0
    timestamps: list[float] = []
    start = time.monotonic()
    with MicrophoneSource(settings, frame_ms=30, stall_timeout_s=10.0, initial_retry_s=0.02) as source:
        for frame in source:
            if args.slow:
                time.sleep(args.slow)
            got.append(frame.pcm)
            timestamps.append(frame.timestamp)
            count += frame.samples
            if count >= want:
                break
        elapsed = time.monotonic() - start
        overflows, opens = source.overflows, source.opens
    Path(args.out).write_bytes(b"".join(got)[: want * 2])
    steps = np.diff(np.array(timestamps)) if len(timestamps) > 1 else np.zeros(1)
    return {
        "samples": min(count, want),
        "elapsed_s": elapsed,
        "overflows": overflows,
        "opens": opens,
        "timestamps_regular": bool(np.allclose(steps, 0.03)),
        "messages": messages,
    }


def _segment(args: argparse.Namespace) -> dict[str, object]:
    """The daemon's capture path: microphone -> Segmenter, for a fixed stretch of stream time."""
    segmenter = Segmenter(VadSettings(), source="mic:test")
    found: list[dict[str, float]] = []
    with MicrophoneSource(AudioSettings(device=args.device), frame_ms=30) as source:
        for frame in source:
            found.extend({"start_s": u.start_s, "end_s": u.end_s} for u in segmenter.feed(frame))
            if frame.timestamp >= args.seconds:
                break
    return {"utterances": found}


def _play(args: argparse.Namespace) -> dict[str, object]:
    pcm = np.frombuffer(Path(args.input).read_bytes(), dtype="<i2")
    cancel = _CountingEvent(args.cancel_after) if args.cancel_after is not None else None
    done = play(pcm, 16000, device=args.device, volume=args.volume, cancel=cancel)
    return {"completed": done}


def _missing(args: argparse.Namespace) -> dict[str, object]:
    records = _collect_logs()
    settings = AudioSettings(device=args.device, retry_max_s=0.05)
    source = MicrophoneSource(settings, initial_retry_s=0.01)
    frames = 0
    error = None

    def consume() -> None:
        nonlocal frames, error
        try:
            for _ in source:
                frames += 1
        except Exception as err:  # the test asserts that nothing escapes
            error = repr(err)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(args.run_s)
    source.stop()
    thread.join(5)
    return {
        "frames": frames,
        "error": error,
        "alive_after_stop": thread.is_alive(),
        "messages": records,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("devices")
    cap = sub.add_parser("capture")
    cap.add_argument("device")
    cap.add_argument("samples", type=int)
    cap.add_argument("out")
    cap.add_argument("--queue", type=int, default=400)
    cap.add_argument("--retry-max", type=float, default=30.0)
    cap.add_argument("--rate", type=int, default=16000, help="rate the device is opened at")
    cap.add_argument("--channels", type=int, default=1)
    cap.add_argument("--slow", type=float, default=0.0, help="seconds to stall per frame (a slow consumer)")
    pl = sub.add_parser("play")
    pl.add_argument("input")
    pl.add_argument("device")
    pl.add_argument("--volume", type=float, default=1.0)
    pl.add_argument("--cancel-after", type=int, default=None)
    seg = sub.add_parser("segment")
    seg.add_argument("device")
    seg.add_argument("seconds", type=float)
    miss = sub.add_parser("missing")
    miss.add_argument("device")
    miss.add_argument("run_s", type=float)
    args = parser.parse_args()
    try:
        if args.mode == "devices":
            result: dict[str, object] = {
                "devices": [
                    {"index": d.index, "name": d.name, "in": d.max_input_channels} for d in list_devices()
                ]
            }
        elif args.mode == "capture":
            result = _capture(args)
        elif args.mode == "segment":
            result = _segment(args)
        elif args.mode == "play":
            result = _play(args)
        else:
            result = _missing(args)
    except AudioError as err:
        result = {"audio_error": err.message, "code": err.code}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
