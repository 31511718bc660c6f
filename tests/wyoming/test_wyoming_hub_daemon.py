"""`assistant run` with a satellite and a Wyoming server configured: the real daemon serves a
real wyoming-satellite, and Home Assistant's requests (the real wyoming client) on its server.

The daemon is ``python -m assistant -v run`` as a subprocess (its own microphone is a
command printing room noise, wake word off), the satellite a real wyoming-satellite 1.0.0
process, the broker a real mosquitto. A command spoken at the satellite acts once on the
broker and its reply reaches the satellite; ``assistant home`` shows the satellite's
state while the daemon runs; the daemon's Wyoming server describes what it serves and its
``handle`` acts through the same router, and its satellite endpoint (on a port of its own)
describes a satellite and takes HA's ``run-satellite``; SIGTERM ends the daemon cleanly and
the state says offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping
from wyoming.satellite import RunSatellite

from assistant.compose import demo_entities
from tests.e2e.live_daemon import DaemonProcess, Watcher
from tests.support.mosquitto import Broker, free_port, mosquitto_available
from tests.wyoming.hub_rig import spoken
from tests.wyoming.satellites import IO_SCRIPT, RealSatellite, satellite_python

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed"),
    pytest.mark.skipif(satellite_python() is None,
                       reason="no wyoming-satellite venv (scripts/wyoming_satellite_env makes it)"),
]


def test_assistant_run_serves_a_satellite_and_shows_it_in_assistant_home(tmp_path: Path) -> None:
    broker = Broker(tmp_path).start()
    server_port, satellite_port = free_port(), free_port()
    satellite = RealSatellite(tmp_path, "kitchen").start()
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    state_dir = tmp_path / "state"
    config = tmp_path / "config.yaml"
    settings = {
        "site": "hubbox",
        "state_dir": str(state_dir),
        "audio": {"source": "command", "command": f"{shlex.quote(sys.executable)} {IO_SCRIPT} mic {quiet}"},
        "wake": {"enabled": False},
        "brain": {"kind": "phrase"},
        "tts": {"kind": "none"},
        "mqtt": {"host": broker.host, "port": broker.port},
        "home": {"entities": [dict(e) for e in demo_entities()]},
        "wyoming": {"satellites": [{"uri": satellite.uri, "site": "kitchen", "area": "Kitchen"}],
                    "server": {"host": "127.0.0.1", "port": server_port,
                               "serve": ["asr", "handle", "satellite"], "satellite_port": satellite_port}},
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    offline_view = tmp_path / "home.yaml"  # assistant home reads the satellites' states from state_dir
    without_broker = {k: v for k, v in settings.items() if k != "mqtt"}
    offline_view.write_text(yaml.safe_dump(without_broker), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    watcher = Watcher(broker, ["demo/#"], client_id="hub-daemon-watch")
    daemon = DaemonProcess(config, env, tmp_path / "daemon.log")
    try:
        assert daemon.wait_for_log("satellite kitchen connected", 30.0), daemon.tail()
        assert daemon.wait_for_log("Phrase grammar", 30.0), daemon.tail()
        mark = watcher.mark()
        satellite.say(spoken("Turn on the coffee maker."))
        seen = watcher.wait(lambda m: m.topic == "demo/kitchen/coffee/set", since=mark, timeout=15.0)
        assert seen is not None and seen.text() == "ON", daemon.tail()
        assert daemon.wait_for_log("satellite kitchen turn: ok", 10.0), daemon.tail()
        home = subprocess.run(
            [sys.executable, "-m", "assistant", "--config", str(offline_view), "home", "--json"],
            env=env, capture_output=True, text=True, timeout=30, check=False)
        rows = json.loads(home.stdout)["satellites"]
        assert [(r["site"], r["area"], r["turns"]) for r in rows] == [("kitchen", "Kitchen", 1)], home.stdout
        assert rows[0]["state"] in ("speaking", "waiting"), rows  # the reply may still be playing
        assert len(satellite.reply_files()) == 1
        assert watcher.since(mark) == [seen]  # acted once
        # Home Assistant's side: the daemon's Wyoming server, over the same router
        assert daemon.wait_for_log("Wyoming server listening", 10.0), daemon.tail()
        info, handled = asyncio.run(_ask_server(server_port, "turn off the coffee maker"))
        assert [p["name"] for p in info.data["asr"]] and [p["name"] for p in info.data["handle"]], info.data
        assert handled.type == "handled", handled
        off = watcher.wait(lambda m: m.topic == "demo/kitchen/coffee/set" and m.text() == "OFF",
                           since=mark, timeout=15.0)
        assert off is not None, daemon.tail()
        # our microphone for HA: the satellite endpoint answers as a satellite and is run by HA
        satellite_info = asyncio.run(_run_satellite(satellite_port))
        offered = satellite_info.data
        assert offered["satellite"]["installed"] and not offered["asr"], offered
        assert daemon.wait_for_log("Home Assistant runs our satellite", 10.0), daemon.tail()
        assert daemon.wait_for_log("disconnected; our brain takes the turns", 10.0), daemon.tail()
        assert daemon.stop() == 0, daemon.tail()
        states = json.loads((state_dir / "satellites.json").read_text(encoding="utf-8"))["satellites"]
        assert [s["state"] for s in states] == ["offline"]
    finally:
        daemon.stop()
        watcher.close()
        satellite.stop()
        broker.stop()


async def _run_satellite(port: int) -> Event:
    """describe -> info, then run-satellite, as HA's integration does on a satellite's endpoint."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        info = await asyncio.wait_for(client.read_event(), 10.0)
        await client.write_event(RunSatellite().event())
        await client.write_event(Ping().event())
        pong = await asyncio.wait_for(client.read_event(), 10.0)  # read after run-satellite: it arrived
    assert info is not None and pong is not None and pong.type == "pong", (info, pong)
    return info


async def _ask_server(port: int, text: str) -> tuple[Event, Event]:
    """describe -> info, then a transcript -> handled / not-handled, as HA's integration asks."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        info = await asyncio.wait_for(client.read_event(), 10.0)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(text=text).event())
        answer = await asyncio.wait_for(client.read_event(), 15.0)
    assert info is not None and answer is not None
    return info, answer
