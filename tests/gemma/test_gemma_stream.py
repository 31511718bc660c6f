"""Speech streamed into the decoder while the user speaks: the result is the offline turn's.

On the transformers oracle (tests/data/gemma/oracle/) the streamed prefill must give
transformers' own greedy tokens; on the brain it must give the same tokens as
``handle``; an aborted, cancelled or mismatched stream never changes the prefix cache.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import ROOT, Lights, greedy, recording, settings_for

from assistant.brains.gemma.brain import (
    STEPPED_STREAM_STEP_MS,
    STREAM_STEP_MS,
    GemmaBrain,
    make_gemma_brain,
)
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.runtime import GemmaRuntime
from assistant.brains.gemma.stream import AudioPrefill, Streaming, final_tokens
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import Utterance

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"
CASES = {c["name"]: c for c in json.loads((ORACLE / "oracle.json").read_text(encoding="utf-8"))["cases"]}
FRAME = 320  # 20 ms capture frames


def _pcm(name: str) -> bytes:
    return (ORACLE / CASES[name]["audio"]).read_bytes()


def _frames(pcm: bytes) -> Iterator[bytes]:
    for start in range(0, len(pcm), FRAME * 2):
        yield pcm[start : start + FRAME * 2]


@pytest.fixture(scope="module")
def runtime() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"))


def _stream(runtime: GemmaRuntime, prefix: Any, pcm: bytes, step_samples: int = 3840) -> AudioPrefill:
    core = AudioPrefill(runtime, prefix)
    for frame in _frames(pcm):
        core.add(frame)
        if core.pending_samples >= step_samples:
            core.step()
    return core


def test_final_token_formula() -> None:
    from assistant.brains.gemma.features import FeatureConfig

    config = FeatureConfig()
    assert [final_tokens(n, config) for n in (0, 1, 640, 641, 1280, 1281, 32000)] == [0, 0, 0, 1, 1, 2, 49]
    assert final_tokens(10 * 480_000, config) == 750


@pytest.mark.parametrize("name", ["audio_2s", "audio_3s"])
@pytest.mark.parametrize("step_samples", [3840, 5120, 640])
def test_streamed_prefill_gives_transformers_tokens(
    runtime: GemmaRuntime, name: str, step_samples: int
) -> None:
    case = CASES[name]
    cut = case["prefix_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][:cut])
    prefix = prefix.frozen()
    pcm = _pcm(name)
    core = _stream(runtime, prefix, pcm, step_samples)
    assert core.early_tokens > 0.85 * case["audio_tokens"]
    tail = case["ids"][cut + 2 + case["audio_tokens"] :]
    result = core.close(pcm, tail)
    assert result is not None and not result.reprefilled
    assert result.early_tokens == core.early_tokens
    assert result.audio_tokens == case["audio_tokens"]
    # After the end of speech: the last soft tokens, <audio|> and the generation prompt only.
    assert result.prefill_tokens == case["audio_tokens"] - result.early_tokens + 1 + len(tail)
    assert greedy(runtime, result.logits, result.cache, len(case["tokens"])) == case["tokens"]


def test_early_tokens_that_differ_are_thrown_away(runtime: GemmaRuntime) -> None:
    """Fed audio that is not the utterance's: the early tokens fail the check, the suffix is re-prefilled."""
    case = CASES["audio_2s"]
    cut = case["prefix_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][:cut])
    prefix = prefix.frozen()
    snapshot = [k.copy() for k in prefix.keys]
    other = (np.random.default_rng(3).standard_normal(32000) * 3000).astype("<i2").tobytes()
    core = _stream(runtime, prefix, other)
    assert core.early_tokens > 0
    tail = case["ids"][cut + 2 + case["audio_tokens"] :]
    result = core.close(_pcm("audio_2s"), tail)
    assert result is not None and result.reprefilled and result.early_tokens == 0
    assert greedy(runtime, result.logits, result.cache, len(case["tokens"])) == case["tokens"]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, prefix.keys, strict=True))


@pytest.mark.parametrize("name", ["audio_2s", "audio_3s"])
def test_audio_fed_past_the_utterance_end_keeps_the_matching_tokens(runtime: GemmaRuntime, name: str) -> None:
    """The daemon feeds the hangover; the utterance ends sooner: the streamed cache is cut, not dropped."""
    case = CASES[name]
    cut = case["prefix_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][:cut])
    prefix = prefix.frozen()
    snapshot = [k.copy() for k in prefix.keys]
    pcm = _pcm(name)
    hangover = (np.random.default_rng(9).standard_normal(9600) * 300).astype("<i2").tobytes()
    core = _stream(runtime, prefix, pcm + hangover, 3840)
    assert core.early_tokens > case["audio_tokens"]  # streamed past the utterance's last token
    tail = case["ids"][cut + 2 + case["audio_tokens"] :]
    result = core.close(pcm, tail)
    assert result is not None and not result.reprefilled
    assert 0 < result.early_tokens <= case["audio_tokens"] and result.dropped > 0
    assert result.early_tokens + result.dropped == core.early_tokens
    assert result.prefill_tokens == case["audio_tokens"] - result.early_tokens + 1 + len(tail)
    assert result.prefill_tokens <= 12
    assert greedy(runtime, result.logits, result.cache, len(case["tokens"])) == case["tokens"]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, prefix.keys, strict=True))


def test_a_changed_tail_keeps_the_tokens_before_it(runtime: GemmaRuntime) -> None:
    case = CASES["audio_3s"]
    cut = case["prefix_len"]
    _, prefix = runtime.prefill(runtime.empty_cache(), case["ids"][:cut])
    pcm = _pcm("audio_3s")
    changed = pcm[:32000] + (np.random.default_rng(4).standard_normal(8000) * 3000).astype("<i2").tobytes()
    core = _stream(runtime, prefix.frozen(), changed, 3840)
    tail = case["ids"][cut + 2 + case["audio_tokens"] :]
    result = core.close(pcm, tail)
    assert result is not None and not result.reprefilled
    # Tokens wholly before the change (sample 16000) are kept, none after it.
    assert final_tokens(16000, runtime.features.config) <= result.early_tokens <= 16000 // 640
    assert result.dropped > 0
    assert greedy(runtime, result.logits, result.cache, len(case["tokens"])) == case["tokens"]


# -- the brain ------------------------------------------------------------------------------


@pytest.fixture
def router() -> Iterator[Router]:
    registry = ToolRegistry()
    registry.add(Lights().tool(), group="home")
    r = Router(registry)
    yield r
    r.close()


def _utterance(pcm: bytes) -> Utterance:
    return Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source="test")


def _oracle_brain(**overrides: Any) -> GemmaBrain:
    return make_gemma_brain(settings_for(ORACLE, max_new_tokens=12, templated_reply=False, **overrides))


def _feed_live(stream: Any, pcm: bytes, realtime: float = 0.0) -> None:
    for frame in _frames(pcm):
        stream.feed(frame)
        if realtime:
            time.sleep(0.02 * realtime)


@pytest.mark.parametrize("draft", ["prompt_lookup", "model"])
def test_a_streamed_turn_with_drafting_equals_the_offline_turn(router: Router, draft: str) -> None:
    """The drafter's prompt is the stream's too (the draft model hears the audio through its own
    encoder on the real architecture; here the oracle drafts for itself: every draft accepted)."""
    pcm = _pcm("audio_2s")
    offline = _oracle_brain()
    offline_tokens = recording(offline)
    reference = offline.handle(_utterance(pcm), router, threading.Event())
    drafting = _oracle_brain(draft=draft, draft_model_dir=ORACLE if draft == "model" else None)
    tokens = recording(drafting)
    stream = drafting.begin_stream("default", router)
    _feed_live(stream, pcm)
    turn = stream.finish(_utterance(pcm), router, threading.Event())
    assert tokens == offline_tokens and tokens
    assert turn.reply == reference.reply and turn.tool_calls == reference.tool_calls
    assert "streamed" in turn.flags
    if draft == "model":
        refused = turn.counts["draft_tokens"] - turn.counts["draft_accepted"]
        assert turn.counts["draft_passes"] > 0 and turn.counts["draft_accepted"] > 0
        assert refused <= turn.counts.get("prefill_draft_tokens", 0)  # only the grammar's opening guess


def test_the_gemma_brain_declares_streaming() -> None:
    assert issubclass(GemmaBrain, Streaming)


@pytest.mark.parametrize("name", ["audio_2s", "audio_3s"])
def test_brain_stream_equals_the_offline_turn(router: Router, name: str) -> None:
    pcm = _pcm(name)
    offline = _oracle_brain()
    offline_tokens = recording(offline)
    reference = offline.handle(_utterance(pcm), router, threading.Event())
    streamed = _oracle_brain()
    streamed_tokens = recording(streamed)
    streamed.warm(router)
    stream = streamed.begin_stream("default", router)
    _feed_live(stream, pcm, realtime=0.25)
    turn = stream.finish(_utterance(pcm), router, threading.Event())
    assert streamed_tokens == offline_tokens and streamed_tokens
    assert turn.reply == reference.reply and turn.tool_calls == reference.tool_calls
    assert "streamed" in turn.flags and "stream_reprefilled" not in turn.flags
    assert turn.counts["stream_early_tokens"] > 0
    assert turn.counts["prefill_tokens"] < reference.counts["prefill_tokens"]
    assert turn.counts["prefill_tokens"] <= 12 + 8  # 160 ms steps on a loaded CI core may lag a step or two
    # The oracle ships the per-step encoder graph: after the end of speech only the soft
    # tokens that were not final at the last step go through the encoder.
    assert streamed.runtime.step_encoder is not None
    left = turn.counts["audio_tokens"] - turn.counts["stream_early_tokens"]
    assert turn.counts["encoder_tokens_after_speech"] == left < turn.counts["audio_tokens"]


def test_streams_step_more_often_with_the_per_step_encoder(router: Router) -> None:
    """160 ms steps when each step encodes only new tokens; 240 ms when it re-encodes the clip."""
    stepped = _oracle_brain()
    assert stepped.runtime.step_encoder is not None
    stream = stepped.begin_stream("default", router)
    try:
        assert stream._step_samples == 16 * STEPPED_STREAM_STEP_MS
    finally:
        stream.abort()
    stepped.runtime.step_encoder = None  # as with a model directory without the step graph
    stream = stepped.begin_stream("default", router)
    try:
        assert stream._step_samples == 16 * STREAM_STEP_MS
    finally:
        stream.abort()


def test_abort_mid_stream_leaves_the_prefix_as_a_fresh_brain_has_it(router: Router) -> None:
    pcm = _pcm("audio_2s")
    fresh = _oracle_brain()
    fresh_tokens = recording(fresh)
    fresh.handle(_utterance(pcm), router, threading.Event())
    brain = _oracle_brain()
    tokens = recording(brain)
    brain.warm(router)
    prefix = brain.prefix_cache
    assert prefix is not None
    snapshot = [k.copy() for k in prefix.keys]
    other = (np.random.default_rng(5).standard_normal(24000) * 3000).astype("<i2").tobytes()
    stream = brain.begin_stream("default", router)
    _feed_live(stream, other)
    deadline = time.monotonic() + 10
    while stream.early_tokens == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.early_tokens > 0
    stream.abort()
    stream.abort()  # idempotent
    assert brain.prefix_cache is prefix
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, prefix.keys, strict=True))
    brain.handle(_utterance(pcm), router, threading.Event())
    assert tokens == fresh_tokens


def test_cancelled_stream_turn_does_not_touch_the_prefix(router: Router) -> None:
    pcm = _pcm("audio_2s")
    brain = _oracle_brain()
    tokens = recording(brain)
    brain.warm(router)
    stream = brain.begin_stream("default", router)
    _feed_live(stream, pcm)
    cancel = threading.Event()
    cancel.set()
    turn = stream.finish(_utterance(pcm), router, cancel)
    assert not turn.understood and not tokens
    fresh = _oracle_brain()
    fresh_tokens = recording(fresh)
    fresh.handle(_utterance(pcm), router, threading.Event())
    brain.handle(_utterance(pcm), router, threading.Event())
    assert tokens == fresh_tokens


def test_tools_changing_mid_stream_fall_back_to_the_offline_prefill() -> None:
    pcm = _pcm("audio_2s")
    registry = ToolRegistry()
    registry.add(Lights().tool(), group="home")
    router = Router(registry)
    try:
        brain = _oracle_brain()
        tokens = recording(brain)
        stream = brain.begin_stream("default", router)
        _feed_live(stream, pcm)
        deadline = time.monotonic() + 10
        while stream.early_tokens == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        registry.remove_group("home")  # the tool set changes while the user speaks
        turn = stream.finish(_utterance(pcm), router, threading.Event())
        assert "stream_stale" in turn.flags and "streamed" not in turn.flags
        fresh = _oracle_brain()
        fresh_tokens = recording(fresh)
        fresh.handle(_utterance(pcm), router, threading.Event())
        assert tokens == fresh_tokens
    finally:
        router.close()


def test_stream_without_router_or_warm_prefix_is_just_the_offline_turn(router: Router) -> None:
    pcm = _pcm("audio_2s")
    brain = _oracle_brain()
    tokens = recording(brain)
    stream = brain.begin_stream("default")  # no prefix yet: nothing to stream onto
    _feed_live(stream, pcm)
    turn = stream.finish(_utterance(pcm), router, threading.Event())
    assert "streamed" not in turn.flags
    fresh = _oracle_brain()
    fresh_tokens = recording(fresh)
    fresh.handle(_utterance(pcm), router, threading.Event())
    assert tokens == fresh_tokens


def test_scripted_brain_streams_to_the_same_call_and_reply(
    scripted_dir: Path, home: tuple[Router, Lights, ToolRegistry], utterance: Callable[[float], Utterance]
) -> None:
    router, lights, _ = home
    spoken = utterance(2.0)
    brain = make_gemma_brain(settings_for(scripted_dir, templated_reply=False))
    offline = brain.handle(spoken, router, threading.Event())
    stream = brain.begin_stream(spoken.site, router)
    _feed_live(stream, spoken.pcm)
    turn = stream.finish(spoken, router, threading.Event())
    assert turn.reply.text == offline.reply.text == "The kitchen light is on now."
    assert [c.name for c in turn.tool_calls] == ["HassTurnOn"]
    assert "streamed" in turn.flags and lights.ran == [{"name": "kitchen light"}] * 2
