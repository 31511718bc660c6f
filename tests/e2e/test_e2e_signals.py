"""Signals over the daemon's whole life: none kills it, a refused reload changes nothing.

`assistant run` as a subprocess with a real mosquitto (a light announced by retained
discovery) and live audio on stdin, fed in real time. Signals arrive during start-up,
during a reload, and while it runs; a bad settings file is refused without touching the
running pipeline (no rebuild, availability stays online); a good one rebuilds it; after
each, push-to-talk (SIGUSR1) and a spoken command still act. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from tests.e2e.test_e2e_daemon import Watcher, piper_speech, silence
from tests.support.mosquitto import Broker, mosquitto_available

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")

RATE = 16000
CHUNK = 480  # 30 ms


class RealTimeStdin:
    """Writes silence to the daemon's stdin at real-time pace; ``say`` inserts speech next."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.pending: queue.Queue[np.ndarray] = queue.Queue()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)

    def start(self) -> RealTimeStdin:
        self.thread.start()
        return self

    def say(self, audio: np.ndarray) -> None:
        self.pending.put(audio)

    def _pump(self) -> None:
        assert self.process.stdin is not None
        started = time.monotonic()
        sent = 0
        buffer = np.zeros(0, dtype=np.int16)
        while not self.stopped.is_set():
            if buffer.size == 0:
                try:
                    buffer = self.pending.get_nowait()
                except queue.Empty:
                    buffer = silence(CHUNK / RATE)
            chunk, buffer = buffer[:CHUNK], buffer[CHUNK:]
            try:
                self.process.stdin.write(chunk.tobytes())
                self.process.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return
            sent += chunk.size
            delay = started + sent / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)


def _catches(pid: int, signals: tuple[int, ...], timeout: float) -> bool:
    """Wait until the process has handlers for ``signals`` (SigCgt in /proc/PID/status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if all(caught & (1 << (sig - 1)) for sig in signals):
            return True
        time.sleep(0.005)
    return False


def _settings(path: Path, broker: Broker, tmp_path: Path, *, volume: float = 1.0, bad: bool = False) -> None:
    text = (
        "site: kitchen\n"
        f"state_dir: {tmp_path / 'state'}\n"
        f"audio:\n  source: stdin\n  volume: {volume}\n"
        "wake:\n  enabled: false\n"
        f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n"
        f"tts:\n  kind: file\n  output_dir: {tmp_path / 'replies'}\n"
    )
    if bad:
        text += "vad:\n  silence_end_ms: -5\n  aggressivenes: 2\n"
    path.write_text(text)


def test_signals_at_any_moment_never_kill_and_a_bad_reload_changes_nothing(tmp_path: Path) -> None:
    command = np.concatenate([piper_speech("Turn on the kitchen light."), silence(1.0)])
    with Broker(tmp_path) as broker:
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="signals-ha")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        config = {"name": None, "uniq_id": "sig_kitchen_light", "cmd_t": "test/kitchen/light/set",
                  "dev": {"ids": ["sig_kitchen"], "name": "Kitchen Light", "sa": "Kitchen"}}
        publisher.publish("homeassistant/light/sig_kitchen/config", json.dumps(config), qos=1, retain=True)
        watcher = Watcher(broker)
        settings = tmp_path / "config.yaml"
        _settings(settings, broker, tmp_path)
        log_path = tmp_path / "daemon.log"
        availability = "assistant/kitchen/availability"
        light = "test/kitchen/light/set"
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "assistant", "-v", "--config", str(settings), "run"],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            feeder = RealTimeStdin(daemon).start()

            def log_text() -> str:
                return log_path.read_text(errors="replace")

            def wait_log(needle: str, timeout: float, count: int = 1) -> bool:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if log_text().count(needle) >= count:
                        return True
                    time.sleep(0.05)
                return False

            def command_acts(expected: int) -> None:
                daemon.send_signal(signal.SIGUSR1)  # push-to-talk
                time.sleep(1.5)  # the wake earcon plays
                feeder.say(command)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and watcher.count(light, b"ON") < expected:
                    time.sleep(0.05)
                assert watcher.count(light, b"ON") == expected, log_text()[-4000:]

            try:
                # During start-up (building the pipeline, broker, grammar): reloads and
                # push-to-talk, from the moment the process says it catches them.
                assert _catches(daemon.pid, (signal.SIGHUP, signal.SIGUSR1, signal.SIGTERM), 10)
                assert "Assistant ready" not in log_text()
                for sig in (signal.SIGHUP, signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP):
                    daemon.send_signal(sig)
                    time.sleep(0.1)
                assert watcher.wait_for(availability, b"online", timeout=60), log_text()[-4000:]
                assert wait_log("Assistant ready", 30), log_text()[-4000:]
                assert daemon.poll() is None, log_text()[-4000:]
                time.sleep(1.0)  # the grammar for the light is built in the background
                command_acts(1)

                # A refused reload: logged, nothing rebuilt, never offline.
                with watcher.lock:
                    watcher.messages.clear()
                _settings(settings, broker, tmp_path, bad=True)
                daemon.send_signal(signal.SIGHUP)
                assert wait_log("reload refused", 10), log_text()[-4000:]
                time.sleep(0.5)
                assert watcher.count(availability, b"offline") == 0
                assert log_text().count("Assistant ready") == 1, "a refused reload rebuilt the pipeline"
                time.sleep(4.0)  # the follow-up window of the last turn is long over
                command_acts(1)

                # A good reload, with more signals during the rebuild.
                _settings(settings, broker, tmp_path, volume=0.8)
                daemon.send_signal(signal.SIGHUP)
                for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGHUP):
                    time.sleep(0.1)
                    daemon.send_signal(sig)
                assert wait_log("Assistant ready", 60, count=2), log_text()[-4000:]
                assert daemon.poll() is None, log_text()[-4000:]
                assert watcher.wait_for(availability, b"online", timeout=20)
                time.sleep(5.0)  # at most one extra reload check after the rebuild; let it settle
                with watcher.lock:
                    watcher.messages.clear()
                command_acts(1)

                daemon.send_signal(signal.SIGTERM)
                rc = daemon.wait(timeout=10)
            finally:
                feeder.stop()
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait()
                publisher.loop_stop()
                publisher.disconnect()
                watcher.close()
        assert rc == 0, log_text()[-4000:]
