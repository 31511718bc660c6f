"""The hub test rig: real wyoming-satellite processes, a real mosquitto, the real assistant.

``HubRig`` starts one satellite per site (tests.wyoming.satellites), builds the assistant
from settings as ``assistant run`` does (phrase brain, the demo house's entities declared
by hand, the broker, the shipped skills with their timer runner), and runs the hub on its
own event loop in a thread. Actions are real MQTT publishes, seen by a watcher client.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.brains.base import warm_brain
from assistant.compose import Assistant, build_assistant, build_hub, demo_entities
from assistant.config import Settings, parse_settings
from assistant.wyoming.hub import Hub, HubTurn, LinkState, TurnOutcome
from assistant.wyoming.hub_announce import SatelliteAnnouncer
from tests.e2e.live_daemon import Seen, Watcher
from tests.support.mosquitto import Broker
from tests.support.pipeline import espeak16, silence
from tests.wyoming.satellites import RealSatellite


def spoken(text: str, speed: int = 160) -> bytes:
    """``text`` by espeak-ng, then a second of room noise (the endpointer needs the pause)."""
    return espeak16(text, "en-us", speed) + silence(1.0)


def rig_settings(folder: Path, broker: Broker, satellites: Sequence[RealSatellite],
                 extra: dict[str, dict[str, Any]] | None = None,
                 entities: Sequence[dict[str, Any]] = ()) -> Settings:
    rows = []
    for sat in satellites:
        row = {"uri": sat.uri, "site": sat.site, "area": sat.site.title(),
               "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, **(extra or {}).get(sat.site, {})}
        rows.append("    - {" + ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}"
                                          for k, v in row.items()) + "}")
    text = "\n".join([
        "site: hubbox",
        f"state_dir: {folder / 'state'}",
        "brain: {kind: phrase}",
        "tts: {kind: none}",
        f"mqtt: {{host: {broker.host}, port: {broker.port}}}",
        "wyoming:",
        "  satellites:",
        *rows,
    ])
    settings = parse_settings(text)
    return replace(settings, home=replace(settings.home, entities=(*demo_entities(), *entities)))


class HubRig:
    """Satellites + broker + assistant + hub; ``close`` stops all of it."""

    def __init__(self, folder: Path, broker: Broker, sites: Sequence[str],
                 extra: dict[str, dict[str, Any]] | None = None, *, streaming: Sequence[str] = (),
                 entities: Sequence[dict[str, Any]] = ()) -> None:
        """``streaming``: sites whose satellite has no local wake word (the hub wakes them);
        ``entities``: declared beside the demo house's."""
        self.broker = broker
        self.satellites = {site: RealSatellite(folder, site, local_wake=site not in streaming).start()
                           for site in sites}
        self.settings = rig_settings(folder, broker, list(self.satellites.values()), extra, entities)
        self.watcher = Watcher(broker, ["demo/#"], client_id=f"hub-watch-{folder.name}")
        self.announcer = SatelliteAnnouncer(sites)
        self.assistant: Assistant = build_assistant(self.settings, with_tts=False, satellites=self.announcer)
        self.assistant.start()
        self.assistant.wait_for_home()
        assert self.assistant.brain is not None
        warm_brain(self.assistant.brain, self.assistant.router)
        self.turns: list[HubTurn] = []
        self._lock = threading.Lock()
        self.hub: Hub = build_hub(self.settings, self.assistant, self.announcer)
        self.mirror = self.hub.on_turn
        """What build_hub set: the turns onto the assistant's HA device."""
        self.hub.on_turn = self._on_turn
        self.threads_before_hub = threading.active_count()
        """Python threads of the assistant alone (MQTT, skills, router) before the hub runs."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self.hub.run(),),
                                        name="hub-loop", daemon=True)
        self._thread.start()
        for site in sites:
            self.wait_state(site, LinkState.WAITING)

    def _on_turn(self, turn: HubTurn) -> None:
        if self.mirror is not None:
            self.mirror(turn)
        with self._lock:
            self.turns.append(turn)

    def turns_of(self, site: str) -> list[HubTurn]:
        with self._lock:
            return [t for t in self.turns if t.site == site]

    def say(self, site: str, pcm: bytes) -> None:
        """Speak at ``site`` once its satellite has taken the last transcript (it listens again).

        wyoming-satellite stops streaming when the transcript arrives; words spoken before
        that would go to the previous turn, as they would for a person who talks on.
        """
        sat = self.satellites[site]
        answered = sum(t.outcome is not TurnOutcome.DROPPED for t in self.turns_of(site))
        self.wait(lambda: sum(line.startswith("transcript:") for line in sat.said()) >= answered, 5.0,
                  f"{site} listening again")
        sat.say(pcm)

    def wait(self, condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}; turns: {self.turns}")
            time.sleep(0.02)

    def wait_state(self, site: str, state: LinkState, timeout: float = 10.0) -> None:
        link = self.hub.links[site]
        self.wait(lambda: link.status.state is state, timeout, f"{site} {state}")

    def wait_turns(self, site: str, count: int, timeout: float = 15.0) -> list[HubTurn]:
        self.wait(lambda: len(self.turns_of(site)) >= count, timeout, f"{count} turns at {site}")
        return self.turns_of(site)

    def actions(self, since: int) -> list[Seen]:
        return self.watcher.since(since)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.hub.stop)
        self._thread.join(5)
        self.assistant.close()
        self.watcher.close()
        for sat in self.satellites.values():
            sat.stop()
