"""``escalate: unknown``: the device's brain answers what the grammar rejects; the server gets
only what it did not know.

The local brain is a stand-in for Gemma E2B/E4B (a real one needs the model's weights, and
a tiny random-weight model cannot be made to say "I don't know" on purpose): it answers as
GemmaBrain.handle does, with a call through the router it is given or a reply. conftest's
stand-in phrase brain rejects or matches; the router, the tools, the remote brain and its
loopback server are real.
"""

from __future__ import annotations

import threading

import pytest

from assistant.brains.hybrid import HybridBrain, dont_know
from assistant.brains.remote.brain import UNAVAILABLE_NOTE
from assistant.config import ConfigError, parse_settings
from assistant.types import BrainTurn, Reply, ToolCall, Utterance
from tests.remote.test_remote_escalation import Serve
from tests.support.chat_server import closed_port, sse, text_chunks
from tests.support.remote_house import House, StandInPhrase, remote, spoken

SORRY = "Sorry, I didn't catch that."  # what GemmaBrain says when it understood nothing


class StandInLocal:
    """Answers ``reply`` (after ``call`` through the router, when given); records each utterance."""

    name = "gemma"

    def __init__(self, reply: str, call: ToolCall | None = None, *, understood: bool = True) -> None:
        self.reply = reply
        self.call = call
        self.understood = understood
        self.asked: list[Utterance] = []

    def handle(self, utterance: Utterance, router: object, cancel: threading.Event) -> BrainTurn:
        self.asked.append(utterance)
        if self.call is None:
            return BrainTurn("what", (), (), Reply(self.reply, utterance.site), understood=self.understood)
        result = router.call(self.call, site=utterance.site)  # type: ignore[attr-defined]
        return BrainTurn("what", (self.call,), (result,), Reply(result.speech or self.reply))


def unknown(url: str, local: StandInLocal, phrase: StandInPhrase | None = None) -> HybridBrain:
    phrase = phrase or StandInPhrase("who wrote hamlet", None)
    return HybridBrain(phrase, remote(url), escalate="unknown", local=local)


@pytest.mark.parametrize("said", [
    "I don't know.", "Sorry, I do not know who that is.", "I'm not sure.", "I can't help with that.",
    "I don't have that information.",
])
def test_what_the_local_brain_did_not_know_goes_to_the_server(said: str, house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("Shakespeare wrote Hamlet.")))
    local = StandInLocal(said)
    turn = unknown(server.url, local).handle(spoken(), house.router, threading.Event())
    assert turn.reply.text == "Shakespeare wrote Hamlet." and len(local.asked) == 1
    assert server.requests[0].body["messages"][-1]["content"] == "who wrote hamlet"


def test_a_local_turn_that_understood_nothing_goes_to_the_server(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("Shakespeare.")))
    turn = unknown(server.url, StandInLocal(SORRY, understood=False)).handle(
        spoken(), house.router, threading.Event())
    assert turn.reply.text == "Shakespeare." and len(server.requests) == 1


def test_a_local_answer_stays_local(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("never")))
    local = StandInLocal("Shakespeare wrote it, around 1600.")
    turn = unknown(server.url, local).handle(spoken(), house.router, threading.Event())
    assert turn.reply.text == "Shakespeare wrote it, around 1600." and server.requests == []


def test_a_local_tool_call_is_an_answer_even_with_a_doubtful_reply(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("never")))
    local = StandInLocal("I'm not sure.", ToolCall("get_time"))
    turn = unknown(server.url, local).handle(spoken(), house.router, threading.Event())
    assert house.clock == [{}] and turn.reply.text == "It is noon." and server.requests == []


def test_a_home_command_the_grammar_handles_never_waits_for_the_network(house: House) -> None:
    local = StandInLocal("I don't know.")
    phrase = StandInPhrase("kitchen light on", ToolCall("light_on", {"room": "kitchen"}))
    brain = unknown(f"http://127.0.0.1:{closed_port()}/v1", local, phrase)
    turn = brain.handle(spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "kitchen"}] and turn.reply.text == "The kitchen light is on."
    assert local.asked == []


def test_a_dead_server_speaks_the_local_answer_with_the_note_without_asking_twice(house: House) -> None:
    local = StandInLocal("I don't know.")
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    turn = unknown(dead, local).handle(spoken(), house.router, threading.Event())
    assert turn.reply.text == f"{UNAVAILABLE_NOTE} I don't know." and len(local.asked) == 1


def test_under_rejected_the_local_brain_is_not_asked_first(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("Shakespeare.")))
    local = StandInLocal("Shakespeare wrote it.")
    brain = HybridBrain(StandInPhrase("who wrote hamlet", None), remote(server.url), local=local)
    assert brain.handle(spoken(), house.router, threading.Event()).reply.text == "Shakespeare."
    assert local.asked == []


def test_dont_know_is_no_tool_call_and_a_not_understood_reply() -> None:
    def turn(text: str, *, understood: bool = True, is_error: bool = False, calls: int = 0) -> BrainTurn:
        return BrainTurn("t", (ToolCall("get_time"),) * calls, (), Reply(text, is_error=is_error),
                         understood=understood)

    assert dont_know(turn("I don't know.")) and dont_know(turn("", understood=False))
    assert dont_know(turn("Sorry, that didn't work.", is_error=True)) and dont_know(turn(""))
    assert not dont_know(turn("I don't know.", calls=1))
    assert not dont_know(turn("It is noon.")) and not dont_know(turn("Paris knows how to party."))
    assert not dont_know(turn("I'm not sure it matters, but " + "the tower is tall. " * 10))


def test_escalate_unknown_needs_a_local_gemma_for_kind_remote() -> None:
    with pytest.raises(ConfigError, match="no local Gemma"):
        parse_settings("brain:\n  kind: remote\n  remote:\n    url: http://server/v1\n"
                       "    escalate: unknown\n")
    settings = parse_settings("brain:\n  kind: hybrid\n  gemma:\n    model_dir: /opt/gemma\n"
                              "  remote:\n    url: http://server/v1\n    escalate: unknown\n")
    assert settings.brain.remote.escalate == "unknown"
