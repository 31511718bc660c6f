"""Our Wyoming server for tests, on its own event loop in a thread, over the real parts.

``served(tmp, broker)`` builds the assistant (router, demo house entities on the real
broker, no audio), a phrase brain warmed on its tools and the server on a free loopback
port, as the daemon would run them side by side; with ``satellite=True`` also our
satellite endpoint on a port of its own, on the same loop (``Served.loop``); with
``asr="gemma"`` the asr is ``hearing`` (a Gemma brain's transcription).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from assistant.brains.phrase import PhraseBrain
from assistant.compose import Assistant, build_assistant, demo_entities
from assistant.config import HomeSettings, MqttSettings, PhraseSettings, Settings, WyomingServerSettings
from assistant.tts.base import Synthesizer
from assistant.wyoming.satellite import SatelliteEndpoint, start_satellite_endpoint
from assistant.wyoming.server import WyomingServer, start_wyoming_server
from assistant.wyoming.server_brains import Hearing
from tests.support.mosquitto import Broker, free_port

T = TypeVar("T")


class LoopThread:
    """An event loop in a thread: the server's home, apart from the tests' own ``asyncio.run``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wyoming-server", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Served:
    server: WyomingServer
    assistant: Assistant
    phrase: PhraseBrain
    loop: LoopThread
    satellite: SatelliteEndpoint | None = None

    @property
    def port(self) -> int:
        return self.server.port


@contextlib.contextmanager
def served(tmp: Path, broker: Broker, *, serve: tuple[Any, ...] = ("asr", "handle"),
           host: str = "127.0.0.1", synthesizer: Synthesizer | None = None,
           satellite: bool = False, asr: Any = "phrase", hearing: Hearing | None = None) -> Iterator[Served]:
    settings = Settings(site="kitchen", state_dir=tmp / "state",
                        mqtt=MqttSettings(host=broker.host, port=broker.port),
                        home=HomeSettings(entities=demo_entities()))
    assistant = build_assistant(settings, with_brain=False, with_tts=False)
    assistant.start()
    loop: LoopThread | None = None
    server: WyomingServer | None = None
    endpoint: SatelliteEndpoint | None = None
    try:
        assistant.wait_for_home()
        phrase = PhraseBrain(PhraseSettings())
        phrase.build(assistant.router)  # the daemon's warm-up does this before the first request
        loop = LoopThread()
        server_settings = WyomingServerSettings(host=host, port=free_port(), serve=serve,
                                                satellite_port=free_port(), asr=asr)
        server = loop.run(start_wyoming_server(server_settings, phrase=phrase, router=assistant.router,
                                               synthesizer=synthesizer, hearing=hearing))
        if satellite:
            endpoint = loop.run(start_satellite_endpoint(server_settings, area="kitchen"))
        yield Served(server, assistant, phrase, loop, endpoint)
    finally:
        if loop is not None:
            if endpoint is not None:
                loop.run(endpoint.stop())
            if server is not None:
                loop.run(server.stop())
            loop.close()
        assistant.close()
