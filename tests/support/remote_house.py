"""The remote brain's test house: a real router with recording tools, the remote brain on a
URL with short timeouts, an utterance, and a stand-in for the phrase brain (it behaves as
PhraseBrain.handle does: calls the router with the call it matched, or rejects)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from assistant.brains.base import Brain
from assistant.brains.remote.brain import Hearing, RemoteBrain, make_remote_brain
from assistant.config import RemoteSettings
from assistant.tools.base import Tool
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import BrainTurn, Reply, ToolCall, Utterance

ROOM = {"type": "object", "properties": {"room": {"type": "string", "enum": ["kitchen", "hall"]}},
        "required": ["room"], "additionalProperties": False}
NOTHING = {"type": "object", "properties": {}, "additionalProperties": False}


@dataclass
class House:
    """The router and what its tools' handlers were asked to do."""

    router: Router
    lights: list[dict[str, Any]] = field(default_factory=list)
    clock: list[dict[str, Any]] = field(default_factory=list)
    unlocked: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def make_house() -> Iterator[House]:
    """A real router with three recording tools (a light, the clock, a sensitive unlock)."""
    registry = ToolRegistry()
    router = Router(registry)
    home = House(router)

    def light_on(**kwargs: Any) -> dict[str, Any]:
        home.lights.append(kwargs)
        return {"state": "on"}

    def get_time(**kwargs: Any) -> dict[str, Any]:
        home.clock.append(kwargs)
        return {"time": "noon"}

    def unlock(**kwargs: Any) -> dict[str, Any]:
        home.unlocked.append(kwargs)
        return {}

    registry.set_group("home", [
        Tool("light_on", "Turn on the light of a room.", ROOM, light_on, reply="The {room} light is on.",
             source="home"),
        Tool("unlock_door", "Unlock the front door.", NOTHING, unlock, reply="Unlocked.", sensitive=True,
             confirm="unlock the front door", source="home"),
    ])
    registry.set_group("clock", [
        Tool("get_time", "The current time.", NOTHING, get_time, reply="It is {time}.",
             source="skills/clock.py"),
    ])
    try:
        yield home
    finally:
        router.close()


def remote(url: str, *, fallback: Brain | None = None, hearing: Hearing | None = None,
           **overrides: Any) -> RemoteBrain:
    """The brain make_remote_brain builds for ``url``, with short timeouts unless overridden."""
    values: dict[str, Any] = {"connect_timeout_s": 1.0, "first_token_timeout_s": 0.5, "total_timeout_s": 3.0}
    values.update(overrides)
    return make_remote_brain(RemoteSettings(url=url, **values), fallback=fallback, hearing=hearing)


def spoken(site: str = "default") -> Utterance:
    """An utterance (its audio is not used: the remote brain reads the transcript)."""
    return Utterance(pcm=b"\0\0" * 1600, start_s=0.0, end_s=0.1, source="test", site=site)


class StandInPhrase:
    """Hears ``transcript``; calls ``call`` through the router it is given, or rejects."""

    name = "phrase"

    def __init__(self, transcript: str | None, call: ToolCall | None) -> None:
        self.transcript = transcript
        self.call = call

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        if self.call is None:
            return BrainTurn(self.transcript, (), (), Reply("Sorry, I didn't catch that.", is_error=True),
                             understood=False)
        result = router.call(self.call, site=utterance.site)  # type: ignore[attr-defined]
        return BrainTurn(self.transcript, (self.call,), (result,), Reply(result.speech))
