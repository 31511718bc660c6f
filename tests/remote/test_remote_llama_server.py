"""End to end against llama.cpp's real OpenAI-compatible server (llama-cpp-python 0.3.16).

The server runs on loopback from the venv scripts/llama_server_env builds and caches, on
the tiny random-weight GGUF that scripts/make_tiny_gguf.py writes. Its weights are noise,
so the call is forced: ``tool_choice`` names a function and the server (chat format
chatml-function-calling) constrains sampling with a grammar made from that tool's JSON
schema, which is ours. The whole path runs for real: our declarations, llama.cpp's SSE
chunks and tool-call deltas (id and name repeated in each), our router, the tool message
back, a streamed (gibberish) reply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.brains.remote.brain import UNAVAILABLE_NOTE
from assistant.types import ResultStatus
from tests.support.chat_server import LlamaServer, llama_server_venv, make_tiny_gguf
from tests.support.remote_house import House, remote, spoken

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    if not (llama_server_venv() / "bin" / "python").exists():
        pytest.skip(f"no llama.cpp server venv at {llama_server_venv()}: run scripts/llama_server_env")
    folder = tmp_path_factory.mktemp("llama")
    server = LlamaServer(make_tiny_gguf(folder / "tiny.gguf"), folder / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def forced(tool: str) -> tuple[dict[str, object], str]:
    """Round one must call ``tool``; then a plain reply (llama-cpp-python streams "auto" as nothing)."""
    return {"type": "function", "function": {"name": tool}}, "none"


def test_a_forced_call_from_llama_cpp_runs_through_the_router_and_the_reply_streams(
    llama: LlamaServer, house: House
) -> None:
    brain = remote(llama.url, first_token_timeout_s=20.0, total_timeout_s=40.0, max_tokens=24,
                   temperature=0.0)
    brain.tool_choice = forced("light_on")
    turn = brain.handle_transcript("turn on the kitchen light", spoken(), house.router, threading.Event())
    assert [c.name for c in turn.tool_calls] == ["light_on"]
    assert turn.tool_calls[0].arguments["room"] in ("kitchen", "hall")
    assert house.lights == [dict(turn.tool_calls[0].arguments)]
    assert turn.results[0].status is ResultStatus.OK
    assert turn.understood and turn.reply.text and "remote_failed" not in turn.flags
    assert turn.counts["rounds"] == 2
    assert turn.counts["remote_chunks"] > 5  # streamed: one chunk per generated token


def test_a_call_of_a_tool_we_did_not_declare_is_refused_by_the_server_and_nothing_runs(
    llama: LlamaServer, house: House
) -> None:
    brain = remote(llama.url, first_token_timeout_s=20.0, total_timeout_s=40.0, max_tokens=8)
    brain.tool_choice = forced("open_every_door")
    turn = brain.handle_transcript("open all doors", spoken(), house.router, threading.Event())
    assert turn.reply.text.startswith(UNAVAILABLE_NOTE)
    assert house.lights == house.unlocked == [] and turn.tool_calls == ()


def test_the_tiny_model_is_small(tmp_path: Path) -> None:
    assert make_tiny_gguf(tmp_path / "m.gguf").stat().st_size < 1_000_000
