"""The whole Gemma brain on scripted tiny models, through real ONNX Runtime sessions and the real router."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from gemma_helpers import Lights, settings_for

from assistant.brains.gemma.brain import SORRY, GemmaBrain, make_gemma_brain
from assistant.brains.gemma.prompt import generation_prompt
from assistant.config import GemmaSettings
from assistant.errors import ModelFilesError
from assistant.tools.gemma_format import render_response
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import ResultStatus, Utterance

Home = tuple[Router, Lights, ToolRegistry]


def _brain(path: Path, **overrides: object) -> GemmaBrain:
    return make_gemma_brain(settings_for(path, **overrides))


def test_tool_loop_call_router_response_appended_then_model_reply(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    brain = _brain(scripted_dir, templated_reply=False)
    turn = brain.handle(utterance(1.0), router, threading.Event())
    assert lights.ran == [{"name": "kitchen light"}]
    assert [(c.name, dict(c.arguments)) for c in turn.tool_calls] == [
        ("HassTurnOn", {"name": "kitchen light"})
    ]
    assert turn.results[0].status is ResultStatus.OK
    assert turn.reply.text == "The kitchen light is on now."  # the model's second pass, not the template
    assert turn.understood and turn.transcript is None
    # Per utterance only the audio suffix and the response block were prefilled: nothing re-rendered.
    runtime = brain.runtime
    suffix = 2 + 25 + len(runtime.encode(generation_prompt(False, runtime.files.prompt)))
    response = len(runtime.encode(render_response(turn.results[0])))
    assert turn.counts["prefill_tokens"] == suffix + response
    assert turn.counts["rounds"] == 1
    assert turn.counts["decode_steps"] > 0
    assert turn.timings_ms["end_of_speech_to_action"] >= 0


@pytest.mark.parametrize("constrained", [True, False])
def test_templated_reply_skips_the_second_pass(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance], constrained: bool
) -> None:
    router, lights, _ = home
    brain = _brain(scripted_dir, templated_reply=True)
    brain.constrained = constrained
    turn = brain.handle(utterance(1.0), router, threading.Event())
    assert lights.ran == [{"name": "kitchen light"}]
    assert turn.reply.text == "Turned on the kitchen light."  # the router's template
    call_tokens = len(
        brain.runtime.encode(
            '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|><|tool_response>'
        )
    )
    assert turn.counts["generated_tokens"] == call_tokens
    if constrained:
        # One tool with one argument: '<|tool_call>call:HassTurnOn{name:<|"|>' rides on the prefill as a
        # draft (the model agrees), then one pass feeds its 'kitchen' with ' light<|"|>}<tool_call|>';
        # <|tool_response> ends the round unfed.
        assert turn.counts["decode_steps"] == 1
        assert turn.counts["draft_accepted"] == turn.counts["draft_tokens"] > 0
    else:
        assert turn.counts["decode_steps"] == call_tokens - 1


def test_prefix_is_prefilled_once_per_tool_set(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, _, registry = home
    brain = _brain(scripted_dir)
    first = brain.handle(utterance(1.0), router, threading.Event())
    cache = brain.prefix_cache
    assert cache is not None
    snapshot = [k.copy() for k in cache.keys]
    second = brain.handle(utterance(0.5), router, threading.Event())
    assert ("prefix_rebuilt" in first.flags, "prefix_rebuilt" in second.flags) == (True, False)
    assert brain.prefix_cache is cache
    for before, after in zip(snapshot, cache.keys, strict=True):
        np.testing.assert_array_equal(before, after)  # reused without being modified
    registry.add(dataclasses.replace(Lights().tool(), name="HassTurnOff"), group="home")
    third = brain.handle(utterance(0.5), router, threading.Event())
    assert "prefix_rebuilt" in third.flags
    assert third.counts["prefix_tokens"] > first.counts["prefix_tokens"]


def test_tool_rounds_are_bounded(
    looping_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    brain = _brain(looping_dir, templated_reply=False, max_rounds=2)
    turn = brain.handle(utterance(1.0), router, threading.Event())
    assert len(lights.ran) == 2
    assert turn.counts["rounds"] == 2
    assert turn.reply.text == "Turned on the kitchen light. Turned on the kitchen light."


def test_malformed_model_output_means_no_action(
    malformed_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    brain = _brain(malformed_dir)
    brain.constrained = False
    turn = brain.handle(utterance(1.0), router, threading.Event())
    assert lights.ran == []
    assert turn.tool_calls == ()
    assert not turn.understood
    assert turn.reply.text == SORRY


def test_constrained_decoding_cannot_write_the_malformed_call(
    malformed_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    """The model leaves the string open ('kitchen light}'); the grammar only allows the closing quote."""
    router, lights, _ = home
    turn = _brain(malformed_dir).handle(utterance(1.0), router, threading.Event())
    calls = [(c.name, dict(c.arguments)) for c in turn.tool_calls]
    assert calls == [("HassTurnOn", {"name": "kitchen light"})]
    assert lights.ran == [{"name": "kitchen light"}]


def test_sensitive_call_asks_and_a_non_yes_answer_runs_nothing(
    scripted_dir: Path, utterance: Callable[[float], Utterance]
) -> None:
    lights = Lights()
    registry = ToolRegistry()
    registry.add(
        dataclasses.replace(lights.tool(), sensitive=True, confirm="turn on the {name}"), group="home"
    )
    router = Router(registry)
    try:
        brain = _brain(scripted_dir)
        asked = brain.handle(utterance(1.0), router, threading.Event())
        assert asked.results[0].status is ResultStatus.NEEDS_CONFIRMATION
        assert asked.reply.expects_answer
        assert asked.reply.text == asked.results[0].speech
        assert lights.ran == []
        # The scripted model "transcribes" the answer as its tool-call text: not a yes.
        answer = brain.handle(utterance(0.5), router, threading.Event())
        assert answer.results[0].status is ResultStatus.CANCELLED
        assert answer.transcript is not None
        assert lights.ran == []
    finally:
        router.close()


def test_cancel_flag_returns_promptly_without_action(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    cancel = threading.Event()
    cancel.set()
    turn = _brain(scripted_dir).handle(utterance(1.0), router, cancel)
    assert not turn.understood and lights.ran == [] and turn.tool_calls == ()


def test_too_short_audio_is_not_understood(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    turn = _brain(scripted_dir).handle(utterance(0.01), router, threading.Event())
    assert turn.reply.text == SORRY and lights.ran == []


def test_handle_runs_in_a_worker_thread(
    scripted_dir: Path, home: Home, utterance: Callable[[float], Utterance]
) -> None:
    router, _, _ = home
    brain = _brain(scripted_dir)
    results = []
    worker = threading.Thread(
        target=lambda: results.append(brain.handle(utterance(1.0), router, threading.Event()))
    )
    worker.start()
    worker.join(timeout=60)
    assert results and results[0].reply.text == "Turned on the kitchen light."


def test_factory_errors_are_clear(general_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match="model_dir is not set"):
        make_gemma_brain(GemmaSettings())
    with pytest.raises(ModelFilesError, match="does not exist"):
        make_gemma_brain(settings_for(tmp_path / "missing"))
    with pytest.raises(ModelFilesError, match="embed_tokens_q4f16"):
        make_gemma_brain(settings_for(general_dir, variant="q4f16"))
