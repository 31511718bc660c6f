#!/usr/bin/env python3
"""The real daemon's idle cost and memory: `assistant run` as a subprocess.

The microphone is ALSA's file plugin fed in real time through a FIFO with quiet room noise
(the daemon cannot tell it from a USB microphone); the phrase brain is loaded with the demo
house's grammar; TTS goes to files. After a warm-up, CPU time (utime + stime from
/proc/PID/stat) is measured over a window of wall time, and resident memory is read from
/proc/PID/status (VmRSS now, VmHWM peak). The same window is split per thread
(/proc/PID/task/*/stat), which shows where the idle CPU goes: the main thread (asyncio
loop + wake word), PortAudio's callback thread, the capture reader, MQTT, timers.
``--mqtt`` adds a mosquitto broker on loopback, as a real home has.

Goals: idle CPU <= 3 % of one core; RSS with the phrase brain <= 150 MB.

    .venv/bin/python bench/bench_daemon_process.py [--window-s 20] [--words okay_nabu] [--mqtt]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.alsa import FifoFeeder, alsa_file_devices  # noqa: E402 - after sys.path
from tests.support.mosquitto import Broker  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid`` (threads that ended meanwhile are left out)."""
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_seconds_of(task / "stat")
        except (OSError, ValueError, IndexError):
            continue
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--window-s", type=float, default=20.0, help="measured idle window")
    parser.add_argument("--warmup-s", type=float, default=8.0, help="start-up time before measuring")
    parser.add_argument("--words", default="okay_nabu", help="comma-separated wake words")
    parser.add_argument("--mqtt", action="store_true", help="connect to a mosquitto broker on loopback")
    args = parser.parse_args()

    total_s = args.warmup_s + args.window_s + 5
    rng = np.random.default_rng(7)
    noise = (rng.normal(0, 60, int(total_s * 16000))).astype(np.int16)  # quiet room, about -55 dBFS
    demo = yaml.safe_load((ROOT / "assistant/data/demo-home.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        settings: dict[str, object] = {
            "site": "bench",
            "state_dir": str(tmp / "state"),
            "audio": {"device": "filecap", "block_ms": 30},
            "wake": {"words": [{"model": w} for w in args.words.split(",")]},
            "home": {"entities": demo["home"]["entities"]},
            "tts": {"kind": "file", "output_dir": str(tmp / "replies")},
        }
        if args.mqtt:
            broker = stack.enter_context(Broker(tmp))
            settings["mqtt"] = {"host": broker.host, "port": broker.port}
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump(settings))
        with alsa_file_devices(tmp, fifo=True) as alsa:
            env = {**alsa.env, "ASSISTANT_CONFIG": str(config)}
            daemon = subprocess.Popen(
                [sys.executable, "-m", "assistant", "run"], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            feeder = FifoFeeder(alsa.capture_path, noise.tobytes()).start()
            try:
                time.sleep(args.warmup_s)
                if daemon.poll() is not None:
                    err = daemon.stderr.read().decode() if daemon.stderr else ""
                    raise SystemExit(f"daemon exited early:\n{err}")
                cpu0, threads0, wall0 = cpu_seconds(daemon.pid), thread_cpu(daemon.pid), time.monotonic()
                time.sleep(args.window_s)
                cpu1, threads1, wall1 = cpu_seconds(daemon.pid), thread_cpu(daemon.pid), time.monotonic()
                rss, hwm = memory_mb(daemon.pid)
            finally:
                feeder.stop()
                daemon.terminate()
                daemon.wait(timeout=10)
    share = (cpu1 - cpu0) / (wall1 - wall0) * 100
    per_thread = sorted(
        ((threads1[tid] - threads0[tid]) / (wall1 - wall0) * 100, tid) for tid in threads1 if tid in threads0
    )[::-1]
    split = ", ".join(
        f"{'main' if tid == daemon.pid else tid} {pct:.2f}%" for pct, tid in per_thread if pct >= 0.005
    )
    print(f"wake words: {args.words}; idle window {wall1 - wall0:.1f} s of real-time audio"
          + ("; MQTT broker connected" if args.mqtt else ""))
    print(f"daemon idle CPU: {share:.2f}% of one core (goal <= 3%)")
    print(f"per thread: {split or 'none measurable'}")
    print(f"daemon memory with the phrase brain: RSS {rss:.1f} MB, peak {hwm:.1f} MB (goal <= 150 MB)")


if __name__ == "__main__":
    main()
