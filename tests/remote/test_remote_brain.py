"""The remote brain over a scripted loopback server: the tool loop, and every way a server fails.

The server here is tests/support/chat_server.py: our own protocol-faithful player of
OpenAI-style SSE chunks (the shapes llama.cpp, vLLM and llama-cpp-python emit), because
a real server cannot be made to stall, lie or hang up on purpose. The same path against
llama.cpp's real server is in test_remote_llama_server.py. The router and tools are real.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.brains.remote.brain import STOPPED_NOTE, UNAVAILABLE_NOTE
from assistant.config import Secret
from assistant.types import BrainTurn, Reply, ResultStatus
from tests.support.chat_server import (
    ScriptedServer,
    call_deltas,
    calls_then_finish,
    chunk,
    closed_port,
    drop_after,
    garbage,
    self_signed,
    sse,
    stall,
    status,
    text_chunks,
    trickle,
)
from tests.support.remote_house import House, remote, spoken

Serve = Callable[..., ScriptedServer]
LOCAL = BrainTurn("local", (), (), Reply("Local answer."), understood=True)


def local_answer(calls: list[int]) -> Callable[[], BrainTurn]:
    def answer() -> BrainTurn:
        calls.append(1)
        return LOCAL
    return answer


def test_a_call_split_over_deltas_runs_once_and_its_result_goes_back_as_a_tool_message(
    house: House, serve: Serve
) -> None:
    server = serve(calls_then_finish(("light_on", '{"room": "kitchen"}')),
                   sse(text_chunks("Done, it is bright.")))
    brain = remote(server.url, api_key=Secret("s3cret"), model="gemma-4-26b-a4b")
    turn = brain.handle_transcript("light in the kitchen please", spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "kitchen"}]
    assert turn.reply.text == "Done, it is bright." and turn.understood
    assert [(c.name, dict(c.arguments)) for c in turn.tool_calls] == [("light_on", {"room": "kitchen"})]
    first, second = server.requests
    assert first.path == "/v1/chat/completions" and first.headers["Authorization"] == "Bearer s3cret"
    assert first.body["stream"] is True and first.body["model"] == "gemma-4-26b-a4b"
    declared = sorted(t["function"]["name"] for t in first.body["tools"])
    assert declared == ["get_time", "light_on", "unlock_door"]
    assert first.body["messages"][-1] == {"role": "user", "content": "light in the kitchen please"}
    assistant, tool = second.body["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "light_on", "arguments": '{"room": "kitchen"}'}
    assert tool["role"] == "tool" and tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert json.loads(tool["content"])["status"] == "ok"
    assert turn.counts["rounds"] == 2 and turn.timings_ms["end_of_speech_to_request"] >= 0


def test_name_and_id_repeated_in_every_delta_make_one_call(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("light_on", '{"room" : "hall"} '), repeat_name=True),
                   sse(text_chunks("OK.")))
    turn = remote(server.url).handle_transcript("hall light", spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "hall"}] and len(turn.tool_calls) == 1


def test_gemma_native_call_text_in_content_is_parsed_and_routed(house: House, serve: Serve) -> None:
    native = '<|tool_call>call:light_on{room:<|"|>hall<|"|>}<tool_call|>'
    server = serve(sse([chunk({"content": native[:20]}), chunk({"content": native[20:]}, "stop")]),
                   sse(text_chunks("The hall is lit.")))
    turn = remote(server.url).handle_transcript("hall light", spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "hall"}] and turn.reply.text == "The hall is lit."


def test_an_unknown_tool_is_refused_by_the_router_and_nothing_runs(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("open_every_door", "{}")), sse(text_chunks("I can't do that.")))
    turn = remote(server.url).handle_transcript("open up", spoken(), house.router, threading.Event())
    assert turn.results[0].status is ResultStatus.ERROR and turn.results[0].error_code == "unknown_tool"
    assert house.lights == house.unlocked == []
    assert json.loads(server.requests[1].body["messages"][-1]["content"])["error_code"] == "unknown_tool"


def test_a_sensitive_call_asks_and_the_question_is_the_reply(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("unlock_door", "{}")))
    turn = remote(server.url).handle_transcript("let me in", spoken(), house.router, threading.Event())
    assert turn.reply.expects_answer and "unlock the front door" in turn.reply.text
    assert house.unlocked == [] and len(server.requests) == 1


def test_a_waiting_confirmation_is_answered_locally_never_by_the_server(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("unlock_door", "{}")))
    brain = remote(server.url)
    brain.handle_transcript("let me in", spoken(), house.router, threading.Event())
    used: list[int] = []
    turn = brain.handle_transcript("yes", spoken(), house.router, threading.Event(), local_answer(used))
    assert used == [1] and turn.reply.text == "Local answer." and len(server.requests) == 1


def test_the_previous_exchange_is_sent_along(house: House, serve: Serve) -> None:
    server = serve(sse(text_chunks("It is sunny.")))
    brain = remote(server.url)
    brain.handle_transcript("how is the weather", spoken(), house.router, threading.Event())
    brain.handle_transcript("and tomorrow", spoken(), house.router, threading.Event())
    roles = [(m["role"], m["content"]) for m in server.requests[1].body["messages"][1:]]
    assert roles == [("user", "how is the weather"), ("assistant", "It is sunny."), ("user", "and tomorrow")]


def test_a_server_that_stalls_before_the_first_token_falls_back_in_time(house: House, serve: Serve) -> None:
    server = serve(stall)
    used: list[int] = []
    started = time.monotonic()
    turn = remote(server.url, first_token_timeout_s=0.4).handle_transcript(
        "turn on the kitchen light", spoken(), house.router, threading.Event(), local_answer(used))
    elapsed = time.monotonic() - started
    assert used == [1] and turn.reply.text == f"{UNAVAILABLE_NOTE} Local answer."
    assert "remote_fallback" in turn.flags and house.lights == []
    assert elapsed < 1.0  # one wait of 0.4 s: a timeout is not retried (that would double the wait)
    assert len(server.requests) == 1


def test_a_refused_connection_falls_back_to_the_fallback_brain(house: House) -> None:
    class Local:
        name = "local"

        def handle(self, utterance: object, router: object, cancel: object) -> BrainTurn:
            return LOCAL

    brain = remote(f"http://127.0.0.1:{closed_port()}/v1", fallback=Local())
    turn = brain.handle_transcript("what now", spoken(), house.router, threading.Event())
    assert turn.reply.text == f"{UNAVAILABLE_NOTE} Local answer." and turn.counts["remote_retries"] == 1


def test_garbage_acts_on_nothing_and_is_not_retried(house: House, serve: Serve) -> None:
    server = serve(garbage)
    turn = remote(server.url).handle_transcript("kitchen light", spoken(), house.router, threading.Event())
    assert house.lights == [] and turn.reply.text.startswith(UNAVAILABLE_NOTE)
    assert len(server.requests) == 1


def test_a_stream_dropped_after_a_complete_looking_call_acts_on_nothing(house: House, serve: Serve) -> None:
    server = serve(drop_after(call_deltas("light_on", '{"room": "kitchen"}')))
    turn = remote(server.url).handle_transcript("kitchen light", spoken(), house.router, threading.Event())
    assert house.lights == [] and turn.tool_calls == () and "remote_fallback" in turn.flags
    assert len(server.requests) == 1  # the answer had begun: never asked again


def test_a_drop_after_an_action_says_what_was_done_and_does_not_act_again(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("light_on", '{"room": "hall"}')),
                   drop_after(text_chunks("The hall")[:2]))
    used: list[int] = []
    turn = remote(server.url).handle_transcript(
        "hall light", spoken(), house.router, threading.Event(), local_answer(used))
    assert house.lights == [{"room": "hall"}] and used == []
    assert turn.reply.text == f"The hall light is on. {STOPPED_NOTE}"
    assert len(server.requests) == 2


def test_a_busy_server_is_asked_once_more_and_acts_once(house: House, serve: Serve) -> None:
    server = serve(status(503), calls_then_finish(("light_on", '{"room": "hall"}')), sse(text_chunks("On.")))
    turn = remote(server.url).handle_transcript("hall light", spoken(), house.router, threading.Event())
    assert house.lights == [{"room": "hall"}] and turn.reply.text == "On."
    assert len(server.requests) == 3 and turn.counts["remote_retries"] == 1


def test_more_calls_than_allowed_are_refused_whole(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(*[("light_on", '{"room": "hall"}')] * 3))
    turn = remote(server.url, max_tool_calls=2).handle_transcript(
        "all lights", spoken(), house.router, threading.Event())
    assert house.lights == [] and turn.reply.text.startswith(UNAVAILABLE_NOTE)


def test_arguments_that_are_not_a_json_object_are_refused(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("light_on", '["kitchen"]')))
    turn = remote(server.url).handle_transcript("kitchen", spoken(), house.router, threading.Event())
    assert house.lights == [] and turn.tool_calls == ()


def test_an_oversized_answer_is_refused(house: House, serve: Serve) -> None:
    server = serve(sse([chunk({"content": "blah " * 100}) for _ in range(40)] + [chunk({}, "stop")]))
    turn = remote(server.url, max_response_bytes=4096).handle_transcript(
        "talk", spoken(), house.router, threading.Event())
    assert turn.reply.text.startswith(UNAVAILABLE_NOTE) and "blah" not in turn.reply.text


def test_a_trickle_of_keepalives_is_cut_at_the_total_timeout(house: House, serve: Serve) -> None:
    server = serve(trickle)
    started = time.monotonic()
    turn = remote(server.url, total_timeout_s=1.0).handle_transcript(
        "talk", spoken(), house.router, threading.Event())
    assert time.monotonic() - started < 1.7
    assert turn.reply.text.startswith(UNAVAILABLE_NOTE)


def test_cancel_ends_the_turn_promptly_without_action(house: House, serve: Serve) -> None:
    server = serve(stall)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    turn = remote(server.url, first_token_timeout_s=5.0, total_timeout_s=10.0).handle_transcript(
        "kitchen", spoken(), house.router, cancel)
    assert time.monotonic() - started < 1.0
    assert not turn.understood and house.lights == []


def test_tls_checks_the_certificate_and_trusts_the_given_ca(
    house: House, serve: Serve, tmp_path: Path
) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = serve(sse(text_chunks("Secure hello.")), tls=context)
    untrusted = remote(server.url).handle_transcript("hi", spoken(), house.router, threading.Event())
    assert untrusted.reply.text.startswith(UNAVAILABLE_NOTE) and server.requests == []
    trusted = remote(server.url, ca_file=cert).handle_transcript(
        "hi", spoken(), house.router, threading.Event())
    assert trusted.reply.text == "Secure hello." and len(server.requests) == 1


@pytest.mark.parametrize("answer", [
    sse([chunk({"content": "half a sentence"})], done=False),  # EOF without finish_reason
    sse(['{"error": {"message": "model crashed"}}']),
    sse(["[1, 2, 3]"]),
    sse([{"choices": "nope"}]),
    sse([chunk({"tool_calls": [{"index": 99, "function": {"name": "light_on"}}]}, "tool_calls")]),
    sse([chunk({"tool_calls": [{"index": 0, "function": {"name": "light_on", "arguments": "{"}}]},
               "tool_calls")]),
    status(401),
])
def test_broken_answers_never_act(house: House, serve: Serve, answer: Callable[..., None]) -> None:
    server = serve(answer)
    turn = remote(server.url).handle_transcript("kitchen light", spoken(), house.router, threading.Event())
    assert house.lights == [] and turn.reply.text.startswith(UNAVAILABLE_NOTE)


def test_a_server_that_keeps_calling_is_stopped_at_max_rounds(house: House, serve: Serve) -> None:
    server = serve(calls_then_finish(("light_on", '{"room": "hall"}')))  # every round, the same call
    turn = remote(server.url, max_rounds=3).handle_transcript(
        "hall", spoken(), house.router, threading.Event())
    assert len(server.requests) == 3
    assert house.lights == [{"room": "hall"}] * 2  # the last round's call is not made
    assert [r.body["tool_choice"] for r in server.requests] == ["auto", "auto", "none"]
    assert turn.reply.text == "The hall light is on. The hall light is on."
