"""A real router with a few recording tools, loopback chat servers that close themselves, and a
stand-in for the phrase brain.

The phrase brain is a stand-in (the real one needs recordings of these sentences): it
behaves as PhraseBrain.handle does, calling the router with the call it matched, or
rejecting with the words it heard. The router, the tools, the remote brain and its
loopback server are real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.chat_server import ScriptedServer, Step
from tests.support.remote_house import House, make_house


@pytest.fixture
def house() -> Iterator[House]:
    with make_house() as home:
        yield home


@pytest.fixture
def serve() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(*steps: Step, **kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(list(steps), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
