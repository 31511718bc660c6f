"""Escalation in the hybrid brain: what goes to the server, and what never waits for it.

The phrase brain is conftest's stand-in (the real one needs recordings of these
sentences); the router, the tools, the remote brain and its loopback server are real.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from assistant.brains.base import Closable, HearsText, Warmable
from assistant.brains.hybrid import HybridBrain, stays_local
from assistant.brains.remote.brain import UNAVAILABLE_NOTE
from assistant.compose import make_brain
from assistant.config import ConfigError, parse_settings
from assistant.errors import BrainError
from assistant.tools.base import Tool
from assistant.types import BrainTurn, ToolCall
from tests.support.chat_server import ScriptedServer, calls_then_finish, closed_port, sse, text_chunks
from tests.support.remote_house import House, StandInPhrase, remote, spoken

Serve = Callable[..., ScriptedServer]


def test_a_rejected_utterance_goes_to_the_server_with_the_phrase_transcript(
    house: House, serve: Serve
) -> None:
    server = serve(sse(text_chunks("Paris is the capital of France.")))
    phrase = StandInPhrase("what is the capital of france", None)
    turn = HybridBrain(phrase, remote(server.url)).handle(spoken(), house.router, threading.Event())
    assert turn.reply.text == "Paris is the capital of France." and turn.understood
    assert server.requests[0].body["messages"][-1]["content"] == "what is the capital of france"


def test_under_rejected_an_understood_skill_call_stays_local(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("never")))
    phrase = StandInPhrase("what time is it", ToolCall("get_time"))
    turn = HybridBrain(phrase, remote(server.url)).handle(spoken(), house.router, threading.Event())
    assert house.clock == [{}] and turn.reply.text == "It is noon." and server.requests == []


def test_under_everything_a_home_command_never_waits_for_the_network(house: House) -> None:
    dead = remote(f"http://127.0.0.1:{closed_port()}/v1")
    phrase = StandInPhrase("kitchen light on", ToolCall("light_on", {"room": "kitchen"}))
    turn = HybridBrain(phrase, dead, escalate="everything").handle(spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "kitchen"}] and turn.reply.text == "The kitchen light is on."
    assert "remote_fallback" not in turn.flags


def test_home_tools_and_assistant_controls_stay_local_other_skills_do_not() -> None:
    def tool(source: str) -> Tool:
        return Tool("t", "", {"type": "object"}, lambda: None, source=source)

    assert stays_local(tool("home")) and stays_local(tool("/opt/assistant/skills/assistant_control.py"))
    assert not stays_local(tool("/opt/assistant/skills/timers.py")) and not stays_local(tool(""))


def test_under_everything_a_skill_call_is_held_back_and_the_server_answers(
    house: House, serve: Serve
) -> None:
    server = serve(calls_then_finish(("get_time", "{}")), sse(text_chunks("It is noon, time for lunch.")))
    phrase = StandInPhrase("what time is it", ToolCall("get_time"))
    turn = HybridBrain(phrase, remote(server.url), escalate="everything").handle(
        spoken(), house.router, threading.Event())
    assert house.clock == [{}]  # once: the server's call, not the phrase brain's as well
    assert turn.reply.text == "It is noon, time for lunch."
    assert server.requests[0].body["messages"][-1]["content"] == "what time is it"


def test_under_everything_a_dead_server_makes_the_held_call_locally_with_a_note(house: House) -> None:
    dead = remote(f"http://127.0.0.1:{closed_port()}/v1")
    phrase = StandInPhrase("what time is it", ToolCall("get_time"))
    turn = HybridBrain(phrase, dead, escalate="everything").handle(spoken(), house.router, threading.Event())
    assert house.clock == [{}] and turn.reply.text == f"{UNAVAILABLE_NOTE} It is noon."
    assert [c.name for c in turn.tool_calls] == ["get_time"]


def test_a_pending_confirmation_never_reaches_the_server(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("yes yes")))
    asked = StandInPhrase("unlock the door", ToolCall("unlock_door"))
    HybridBrain(asked, remote(server.url), escalate="everything").handle(
        spoken(), house.router, threading.Event())
    answer = StandInPhrase("purple", None)
    turn = HybridBrain(answer, remote(server.url), escalate="everything").handle(
        spoken(), house.router, threading.Event())
    assert server.requests == [] and house.unlocked == [] and not turn.understood


def test_kind_remote_builds_phrase_first_then_the_server() -> None:
    settings = parse_settings("brain:\n  kind: remote\n  remote:\n    url: http://127.0.0.1:9/v1\n"
                              "    escalate: everything\n")
    brain = make_brain(settings)
    assert isinstance(brain, HybridBrain) and isinstance(brain._gemma, HearsText)
    assert brain._escalate == "everything"


@pytest.mark.parametrize(("text", "complaint"), [
    ("brain:\n  kind: remote\n", "brain.remote.url is not set"),
    ("brain:\n  remote:\n    url: ftp://server/v1\n", "http:// or https://"),
    ("brain:\n  remote:\n    url: http://server/v1\n    ca_file: /etc/ssl/x.pem\n", "not https"),
    ("brain:\n  remote:\n    url: http://server/v1\n    first_token_timeout_s: 40\n", "total_timeout_s"),
    ("brain:\n  remote:\n    url: http://server/v1\n    escalate: always\n", "escalate"),
    ("brain:\n  kind: remote\n  remote:\n    url: http://server/v1\n    hear: gemma\n", "model_dir"),
])
def test_bad_remote_settings_are_reported(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_settings(text)


def test_an_unknown_kind_is_a_brain_error() -> None:
    settings = parse_settings("brain:\n  kind: phrase\n")
    object.__setattr__(settings.brain, "kind", "oracle")
    with pytest.raises(BrainError, match=r"unknown brain\.kind"):
        make_brain(settings)


def test_the_remote_brain_warms_and_closes_its_fallback(house: House) -> None:
    class Local:
        name = "local"

        def __init__(self) -> None:
            self.warmed: list[object] = []
            self.closed = 0

        def handle(self, utterance: object, router: object, cancel: object) -> BrainTurn:
            raise AssertionError("not asked")

        def warm(self, router: object) -> None:
            self.warmed.append(router)

        def close(self) -> None:
            self.closed += 1

    local = Local()
    brain = remote(f"http://127.0.0.1:{closed_port()}/v1", fallback=local)
    assert isinstance(brain, Warmable) and isinstance(brain, Closable)
    HybridBrain(StandInPhrase(None, None), brain).warm(house.router)
    HybridBrain(StandInPhrase(None, None), brain).close()
    assert local.warmed == [house.router] and local.closed == 1
