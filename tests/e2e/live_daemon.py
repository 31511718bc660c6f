"""The real daemon as a user runs it, for long end-to-end runs (the evening test, the soak bench).

- :class:`Watcher`: an MQTT client that records every message with its arrival time.
- :func:`announce`: Home Assistant style retained discovery configs on the broker.
- :func:`write_settings`: the daemon's settings file for the ALSA FIFO microphone and
  (optionally) the real-time FIFO loudspeaker of ``tests.support.alsa``.
- :class:`DaemonProcess`: ``python -m assistant -v run`` as a subprocess with its log in a
  file; /proc readings (CPU time, RSS, threads, open files) and the log tail for messages.

Speech comes from ``tests.support.pipeline`` (``piper16``, ``espeak16``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml

from tests.support.mosquitto import Broker

TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- MQTT


@dataclass(frozen=True)
class Seen:
    """One message at the watcher."""

    at: float
    """monotonic() when it arrived."""
    topic: str
    payload: bytes
    retain: bool

    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")


class Watcher:
    """A second MQTT client recording every message under ``topics`` with its arrival time."""

    def __init__(self, broker: Broker, topics: Iterable[str] = ("#",), client_id: str = "e2e-watch") -> None:
        self.messages: list[Seen] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe([(t, 1) for t in topics])
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        seen = Seen(time.monotonic(), msg.topic, bytes(msg.payload), bool(msg.retain))
        with self.lock:
            self.messages.append(seen)

    def mark(self) -> int:
        """An index: messages from here on arrived after now."""
        with self.lock:
            return len(self.messages)

    def since(self, index: int, predicate: Callable[[Seen], bool] | None = None) -> list[Seen]:
        with self.lock:
            found = self.messages[index:]
        return [m for m in found if predicate is None or predicate(m)]

    def wait(self, predicate: Callable[[Seen], bool], *, since: int = 0, timeout: float) -> Seen | None:
        """The first message from ``since`` on that matches, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.since(since):
                if predicate(message):
                    return message
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)

    def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def announce(watcher: Watcher, entities: Iterable[Mapping[str, Any]], prefix: str = "homeassistant") -> None:
    """Retained discovery configs: ``{component, object_id, name, area, command_topic, ...}`` each."""
    for entity in entities:
        extra = {k: v for k, v in entity.items() if k not in ("component", "object_id", "name", "area")}
        config = {
            "name": None,  # the entity is named after its device, as many HA integrations do
            "unique_id": entity["object_id"],
            **extra,
            "device": {"identifiers": [entity["object_id"]], "name": entity["name"],
                       "suggested_area": entity["area"]},
        }
        watcher.publish(f"{prefix}/{entity['component']}/{entity['object_id']}/config", json.dumps(config),
                        retain=True)


# --------------------------------------------------------------------------- settings


def write_settings(path: Path, *, state_dir: Path, broker: Broker | None, site: str = "evening",
                   speaker: bool = False, follow_up_s: float = 0.0, tts_speed: int = 175,
                   skills: Iterable[Path] = (), replies: Path | None = None,
                   extra: Mapping[str, Any] | None = None) -> Path:
    """The daemon's config.yaml: FIFO microphone (30 ms blocks), okay_nabu, phrase brain.

    ``speaker``: replies and earcons are spoken by espeak-ng on the ALSA ``fileplay`` device
    (a real-time FIFO with ``PlaybackDrain``); else a WAV per reply in ``replies``.
    """
    settings: dict[str, Any] = {
        "site": site,
        "state_dir": str(state_dir),
        "audio": {"device": "filecap", "block_ms": 30},
        "vad": {"frame_ms": 30},
        "wake": {"words": [{"model": "okay_nabu"}], "follow_up_s": follow_up_s, "barge_in": True},
        "brain": {"kind": "phrase"},
    }
    if broker is not None:
        settings["mqtt"] = {"host": broker.host, "port": broker.port}
    if speaker:
        settings["audio"]["output_device"] = "fileplay"
        settings["tts"] = {"kind": "espeak", "voice": "en-us", "speed": tts_speed}
    else:
        settings["tts"] = {"kind": "file", "output_dir": str(replies or state_dir / "replies")}
    if skills:
        settings["skills"] = {"paths": [str(p) for p in skills]}
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(settings.get(key), dict):
            settings[key].update(value)
        else:
            settings[key] = value
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the process


class DaemonProcess:
    """``python -m assistant -v run`` with ``ASSISTANT_CONFIG``; stdout and stderr in ``log_path``."""

    def __init__(self, config: Path, env: Mapping[str, str], log_path: Path, *, verbose: str = "-v") -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**env, "ASSISTANT_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", verbose, "run"], env=full_env,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_for_log(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    # /proc readings
    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    def status(self) -> dict[str, str]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            out[key] = value.strip()
        return out

    def rss_mb(self) -> float:
        return int(self.status()["VmRSS"].split()[0]) / 1024

    def threads(self) -> int:
        return int(self.status()["Threads"])

    def thread_names(self) -> list[str]:
        """The OS name of each of the process's threads (``/proc/PID/task/*/comm``), sorted."""
        names = []
        for task in os.listdir(f"/proc/{self.pid}/task"):
            with contextlib.suppress(OSError):
                names.append(Path(f"/proc/{self.pid}/task/{task}/comm").read_text().strip())
        return sorted(names)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; killed when it does not exit in time. The exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
