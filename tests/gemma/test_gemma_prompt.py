"""Gemma 4's native prompt: layout, tool order, thinking, and a prefix that tokenizes on its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gemma_helpers import Lights, settings_for

from assistant.brains.gemma.brain import make_gemma_brain
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.prompt import (
    asr_prompt,
    audio_placeholder,
    generation_prompt,
    order_tools,
    system_prefix,
)
from assistant.brains.gemma.runtime import GemmaRuntime
from assistant.tools.base import Tool
from assistant.tools.router import Router
from assistant.types import Utterance

CLOCK = Tool(
    name="get_time",
    description="Tell the time",
    parameters={"type": "object", "properties": {}},
    handler=lambda: None,
)


def test_native_layout_ends_with_a_bare_model_turn() -> None:
    prefix = system_prefix([CLOCK], system="Be brief.")
    assert prefix.startswith("<bos><|turn>system\nBe brief.<|tool>declaration:get_time{")
    assert prefix.endswith("<tool|><turn|>\n<|turn>user\n")
    # E2B/E4B (Google's template): no empty thought channel; that belongs to the dense models.
    assert generation_prompt(False) == "<turn|>\n<|turn>model\n"
    assert audio_placeholder(3) == "<|audio><|audio|><|audio|><|audio|><audio|>"


def test_thinking_on_marks_the_system_turn_and_leaves_the_channel_to_the_model() -> None:
    assert system_prefix([], system="S", thinking=True).startswith("<bos><|turn>system\n<|think|>\nS")
    assert generation_prompt(True) == "<turn|>\n<|turn>model\n"


def test_home_tools_with_entity_enums_go_last() -> None:
    home = Lights().tool()
    zebra = Tool(
        name="zz_stop",
        description="Stop",
        parameters={"type": "object", "properties": {}},
        handler=lambda: None,
    )
    assert [t.name for t in order_tools([home, zebra, CLOCK])] == ["get_time", "zz_stop", "HassTurnOn"]
    prefix = system_prefix([home, zebra, CLOCK])
    assert prefix.index("declaration:zz_stop") < prefix.index("declaration:HassTurnOn")


def test_prefix_and_suffix_tokenize_independently(general_dir: Path) -> None:
    runtime = GemmaRuntime(load_model_files(general_dir, "fp32", "fp32"))
    prefix = system_prefix([Lights().tool(), CLOCK])
    suffix = audio_placeholder(5) + generation_prompt(False)
    assert runtime.encode(prefix) + runtime.encode(suffix) == runtime.encode(prefix + suffix)
    ids = runtime.encode(asr_prompt(4))
    assert ids.count(runtime.tokens.audio) == 4


def test_random_weights_never_crash_and_act_only_through_valid_calls(
    general_dir: Path, home: tuple[Router, Lights, object], utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    brain = make_gemma_brain(
        settings_for(general_dir, max_new_tokens=24, temperature=1.0, top_k=0, top_p=1.0)
    )
    for seconds in (0.3, 1.0, 2.5):
        turn = brain.handle(utterance(seconds), router, threading.Event())
        spoken = turn.reply.text
        assert "<|" not in spoken and "call:" not in spoken, spoken  # never call syntax aloud
        assert len(lights.ran) == len([r for r in turn.results if r.ok])
