"""The phrase brain against the real tool router, the shipped skills and contract-shaped home tools.

The home tools come from assistant.brains.phrase.testkit (same schema contract as
assistant/home/control.py, handlers that record instead of publishing to MQTT: no
broker is involved in this test).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.brains.phrase import PhraseBrain
from assistant.brains.phrase.testkit import home_tools
from assistant.config import Settings
from assistant.tools.base import Tool
from assistant.tools.context import SkillContext
from assistant.tools.loader import install_skills, load_skills
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import ResultStatus, Utterance

NEVER = threading.Event()


@pytest.fixture()
def real_router(tmp_path: Path) -> Iterator[tuple[Any, list[tuple[str, dict[str, Any]]]]]:
    settings = Settings(state_dir=tmp_path)
    ctx = SkillContext.from_settings(settings)
    loaded = load_skills(settings, ctx)
    registry = ToolRegistry()
    assert install_skills(registry, loaded) == []
    ran: list[tuple[str, dict[str, Any]]] = []

    def recording(tool: Tool) -> Tool:
        def handler(**arguments: Any) -> dict[str, Any]:
            ran.append((tool.name, arguments))
            return {}
        return Tool(tool.name, tool.description, tool.parameters, handler, reply="Done.",
                    sensitive=tool.sensitive, confirm=tool.confirm, source="home")

    assert registry.set_group("home", [recording(t) for t in home_tools()]) == []
    router = Router(registry)
    yield router, ran
    router.close()


def _turn(brain: PhraseBrain, router: Any, pcm: bytes):  # type: ignore[no-untyped-def]
    utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source="test",
                          ended_at=time.monotonic())
    brain.build(router)  # the shared brain served other tool sets: as the daemon's warm-up does
    return brain.handle(utterance, router, NEVER)


def test_skill_commands_run_through_the_real_router(
    phrase_brain: PhraseBrain, real_router: Any, say: Callable[[str], bytes]
) -> None:
    router, _ = real_router
    turn = _turn(phrase_brain, router, say("set a timer for five minutes"))
    assert [c.to_json() for c in turn.tool_calls] == [{"name": "start_timer", "arguments": {"minutes": 5}}]
    assert turn.results[0].status is ResultStatus.OK
    turn = _turn(phrase_brain, router, say("what time is it"))
    assert [c.name for c in turn.tool_calls] == ["get_time"] and turn.results[0].ok


def test_unlock_needs_a_spoken_yes_through_the_real_router(
    phrase_brain: PhraseBrain, real_router: Any, say: Callable[[str], bytes]
) -> None:
    router, ran = real_router
    turn = _turn(phrase_brain, router, say("unlock the front door"))
    assert turn.results[0].status is ResultStatus.NEEDS_CONFIRMATION
    assert ran == [] and router.pending_confirmation("default") is not None
    turn = _turn(phrase_brain, router, say("yes"))
    assert turn.transcript == "yes" and turn.results[0].ok
    assert ran == [("HassTurnOff", {"name": "front door"})]


def test_out_of_domain_speech_reaches_no_tool(
    phrase_brain: PhraseBrain, real_router: Any, say: Callable[[str], bytes]
) -> None:
    router, ran = real_router
    for text in ("play some music", "tell me a joke"):
        turn = _turn(phrase_brain, router, say(text))
        assert turn.tool_calls == () and not turn.understood
    assert ran == []
