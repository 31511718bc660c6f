"""``assistant process`` as a subprocess with ``brain.kind: remote``: the real phrase brain hears
the bundled sample ("turn on the kitchen light", "what time is it"), the home command stays
local, the question goes to a loopback server (scripted, see tests/support/chat_server.py),
whose call runs through the real router and the shipped clock skill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assistant.brains.remote.brain import UNAVAILABLE_NOTE
from tests.support.chat_server import ScriptedServer, calls_then_finish, closed_port, sse, text_chunks

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def process(url: str, tmp_path: Path) -> list[dict[str, Any]]:
    config = tmp_path / "config.yaml"
    config.write_text(f"brain:\n  kind: remote\n  remote:\n    url: {url}\n    escalate: everything\n"
                      "    first_token_timeout_s: 2\n    total_timeout_s: 5\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "assistant", "--config", str(config), "process", "--json", "--tts", "none"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_the_home_command_stays_local_and_the_question_goes_to_the_server(tmp_path: Path) -> None:
    server = ScriptedServer([calls_then_finish(("get_time", "{}")),
                             sse(text_chunks("It is time for lunch."))])
    try:
        light, question = process(server.url, tmp_path)
    finally:
        server.close()
    assert [c["name"] for c in light["tool_calls"]] == ["HassTurnOn"] and "rounds" not in light["counts"]
    assert question["transcript"] == "what time is it"
    assert [r["name"] for r in question["results"]] == ["get_time"]  # once: the server's call
    assert question["reply"] == "It is time for lunch."
    assert len(server.requests) == 2
    assert server.requests[0].body["messages"][-1] == {"role": "user", "content": "what time is it"}


def test_with_the_server_down_the_question_is_answered_locally_with_a_note(tmp_path: Path) -> None:
    light, question = process(f"http://127.0.0.1:{closed_port()}/v1", tmp_path)
    assert light["results"][0]["status"] == "ok"
    assert question["reply"].startswith(f"{UNAVAILABLE_NOTE} It is ")
    assert [r["name"] for r in question["results"]] == ["get_time"]
