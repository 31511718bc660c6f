"""The ONNX Runtime loop on the tiny random model: caching and chunking do not change results."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.prompt import audio_placeholder, generation_prompt, system_prefix
from assistant.brains.gemma.runtime import Cancelled, GemmaRuntime, Sampler, Sampling
from assistant.tools.base import Tool

TOOLS = [
    Tool(
        name="get_weather",
        description="Get current weather",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        handler=lambda **_: None,
    )
]


@pytest.fixture(scope="module")
def runtime(general_dir: Path) -> GemmaRuntime:
    return GemmaRuntime(load_model_files(general_dir, "fp32", "fp32"))


def _audio(runtime: GemmaRuntime, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(11)
    features = runtime.features((rng.standard_normal(int(16000 * seconds)) * 0.2).astype(np.float32))
    return runtime.encode_audio(features)


def _prompt(runtime: GemmaRuntime, audio_tokens: int) -> tuple[list[int], list[int]]:
    prefix = runtime.encode(system_prefix(TOOLS))
    suffix = runtime.encode(audio_placeholder(audio_tokens) + generation_prompt(False))
    return prefix, suffix


def test_prefix_cache_gives_the_logits_of_a_full_prefill(runtime: GemmaRuntime) -> None:
    audio = _audio(runtime, 1.3)
    prefix, suffix = _prompt(runtime, audio.shape[0])
    _, cache = runtime.prefill(runtime.empty_cache(), prefix)
    cache = cache.frozen()
    cached, _ = runtime.prefill(cache, suffix, audio=audio)
    again, _ = runtime.prefill(cache, suffix, audio=audio)  # the shared prefix survives a turn
    full, _ = runtime.prefill(runtime.empty_cache(), prefix + suffix, audio=audio)
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(cached, again)
    assert np.abs(full).max() > 0.1  # not trivially zero


def test_results_do_not_depend_on_prompt_chunking(runtime: GemmaRuntime) -> None:
    audio = _audio(runtime, 0.7)
    prefix, suffix = _prompt(runtime, audio.shape[0])
    ids = prefix + suffix
    reference, ref_cache = runtime.prefill(runtime.empty_cache(), ids, audio=audio)
    for chunk in (1, 5, 64):
        logits, cache = runtime.prefill(runtime.empty_cache(), ids, audio=audio, chunk=chunk)
        np.testing.assert_allclose(logits, reference, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(cache.keys[2], ref_cache.keys[2], atol=1e-4, rtol=1e-4)
        assert cache.length == len(ids)


def test_incremental_decoding_equals_refeeding_everything(runtime: GemmaRuntime) -> None:
    prefix, _ = _prompt(runtime, 0)
    logits, cache = runtime.prefill(runtime.empty_cache(), prefix)
    generation = runtime.generate(cache, logits, max_new_tokens=6, sampler=Sampler(Sampling()))
    fed = [t for t in generation.tokens if t not in runtime.tokens.stop][
        : generation.cache.length - len(prefix)
    ]
    assert generation.cache.length == len(prefix) + len(fed)
    assert len(fed) >= 5
    _, direct = runtime.prefill(runtime.empty_cache(), prefix + fed)
    for stepped_kv, direct_kv in zip(generation.cache.values, direct.values, strict=True):
        np.testing.assert_allclose(stepped_kv, direct_kv, atol=1e-4, rtol=1e-4)


def test_kv_slots_have_the_declared_head_dims(runtime: GemmaRuntime) -> None:
    prefix, _ = _prompt(runtime, 0)
    _, cache = runtime.prefill(runtime.empty_cache(), prefix[:10])
    assert [k.shape for k in cache.keys] == [(1, 2, 10, 16), (1, 2, 10, 16), (1, 2, 10, 32)]


def test_audio_positions_use_the_pad_row_for_per_layer_inputs(runtime: GemmaRuntime) -> None:
    audio_id, pad = runtime.tokens.audio, runtime.tokens.pad
    _, ple_audio = runtime.embed([audio_id])
    _, ple_pad = runtime.embed([pad])
    np.testing.assert_array_equal(ple_audio, ple_pad)


def test_audio_soft_tokens_equal_placeholders_for_odd_lengths(runtime: GemmaRuntime) -> None:
    for samples in (1601, 16000, 22_222, 48_000 + 129):
        features = runtime.features(np.zeros(samples, np.float32))
        assert runtime.encode_audio(features).shape == (features.num_tokens, runtime.text.hidden_size)


def test_fp16_graphs_are_driven_with_fp16_tensors(general_dir: Path, runtime: GemmaRuntime) -> None:
    half = GemmaRuntime(load_model_files(general_dir, "fp16", "fp32"))
    prefix, _ = _prompt(half, 0)
    logits16, cache16 = half.prefill(half.empty_cache(), prefix)
    logits32, _ = runtime.prefill(runtime.empty_cache(), prefix)
    assert cache16.keys[0].dtype == np.float16
    np.testing.assert_allclose(logits16, logits32, atol=0.1)


def test_cancel_stops_decoding(runtime: GemmaRuntime) -> None:
    prefix, _ = _prompt(runtime, 0)
    logits, cache = runtime.prefill(runtime.empty_cache(), prefix)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        runtime.generate(cache, logits, max_new_tokens=50, sampler=Sampler(Sampling()), cancel=cancel)


def test_sampling_respects_top_k() -> None:
    logits = np.array([0.0, 5.0, 4.9, -3.0, 1.0], np.float32)
    assert Sampler(Sampling())(logits) == 1
    sampler = Sampler(Sampling(temperature=1.0, top_k=2, top_p=1.0, seed=3))
    assert {sampler(logits) for _ in range(200)} == {1, 2}
