"""Speculative greedy decoding (assistant/brains/gemma/speculative.py) on tiny models of two sizes.

The tiny generator's tokenizer is the same for every size, as E2B's and E4B's are. The
output must be the target's own greedy output token for token, whatever the draft: the
target itself (every draft accepted), an unrelated random model (almost none), and a
smaller model scripted with the same reply (a draft that mostly agrees).
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gemma_helpers import CONTEXT, E2B_TEMPLATE, ROOT

from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.runtime import GemmaRuntime, KVCache, Sampler, Sampling
from assistant.brains.gemma.speculative import SpeculativeDecoder

SPOKEN = "It is twenty one degrees in the living room and the kitchen light is on.<turn|>"


def small_dims(tiny: ModuleType) -> object:
    """A smaller model (fewer, narrower layers) with the same tokenizer."""
    return tiny.TinyDims(
        hidden=48, layers=4, kv_shared=2, layer_types=("sliding_attention", "full_attention") * 2
    )


@pytest.fixture(scope="module")
def models(tiny: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, GemmaRuntime]:
    root = tmp_path_factory.mktemp("speculative")
    template = E2B_TEMPLATE.read_text(encoding="utf-8")
    script = [(CONTEXT, False), (SPOKEN, True)]
    paths: dict[str, Path] = {
        "target": tiny.make_tiny_gemma(root / "target", variants=("fp32",), seed=3),
        "unrelated": tiny.make_tiny_gemma(
            root / "unrelated", variants=("fp32",), seed=9, dims=small_dims(tiny)
        ),
        "scripted target": tiny.make_tiny_gemma(
            root / "st", variants=("fp32",), script=script, seed=3, chat_template=template
        ),
        "scripted draft": tiny.make_tiny_gemma(
            root / "sd",
            variants=("fp32",),
            script=script,
            seed=4,
            dims=small_dims(tiny),
            chat_template=template,
        ),
    }
    return {name: GemmaRuntime(load_model_files(path, "fp32", "fp32")) for name, path in paths.items()}


def _prompts(runtime: GemmaRuntime, count: int) -> list[list[int]]:
    rng = np.random.default_rng(11)
    size = runtime.tokenizer.get_vocab_size()
    return [
        [2, *(int(t) for t in rng.integers(110, size - 10, size=int(rng.integers(5, 40))))]
        for _ in range(count)
    ]


def _speculate(
    target: GemmaRuntime, draft: GemmaRuntime, ids: list[int], k: int, budget: int
) -> tuple[tuple[int, ...], SpeculativeDecoder, int]:
    decoder = SpeculativeDecoder(draft, k=k)
    logits, cache = target.prefill(target.empty_cache(), ids)
    _, draft_cache = decoder.prefill(ids)
    generation = decoder.generate(
        target, cache, logits, draft_cache, max_new_tokens=budget, cancel=threading.Event()
    )
    # The target's cache holds exactly what was kept: its next logits match a fresh prefill.
    fed = [*ids, *generation.tokens[: generation.cache.length - len(ids)]]
    fresh, _ = target.prefill(target.empty_cache(), fed)
    check, _ = target.prefill(generation.cache.truncated(generation.cache.length - 1), fed[-1:])
    assert float(np.max(np.abs(fresh - check))) < 1e-3  # fp32 noise on logits of size ~20
    return generation.tokens, decoder, generation.steps


def _greedy(target: GemmaRuntime, ids: list[int], budget: int) -> tuple[int, ...]:
    logits, cache = target.prefill(target.empty_cache(), ids)
    return target.generate(cache, logits, max_new_tokens=budget, sampler=Sampler(Sampling())).tokens


@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("draft", ["target", "unrelated"])
def test_output_is_the_targets_greedy_output(models: dict[str, GemmaRuntime], draft: str, k: int) -> None:
    target = models["target"]
    drafted = accepted = 0
    for ids in _prompts(target, 6):
        tokens, decoder, _ = _speculate(target, models[draft], ids, k, 30)
        assert tokens == _greedy(target, ids, 30)
        drafted += decoder.stats.drafted
        accepted += decoder.stats.accepted
    rate = accepted / drafted
    if draft == "target":
        assert rate == 1.0  # a draft equal to the target: every token accepted
    else:
        assert rate < 0.3  # unrelated random weights: hardly any


def test_a_smaller_scripted_draft_saves_target_passes(models: dict[str, GemmaRuntime]) -> None:
    target, draft = models["scripted target"], models["scripted draft"]
    ids = target.encode("<bos><|turn>user\nhello<turn|>\n" + CONTEXT)
    tokens, decoder, steps = _speculate(target, draft, ids, 4, 60)
    assert tokens == _greedy(target, ids, 60)
    assert target.decode(tokens) == SPOKEN
    assert decoder.stats.rate > 0.8
    assert steps <= len(tokens) // 3


class NoisyDraft:
    """The oracle itself as the draft, its logits perturbed: some drafts are refused, so both
    caches are cut back on the real architecture (sliding window shorter than the prompts, KV sharing)."""

    def __init__(self, runtime: GemmaRuntime, noise: float) -> None:
        self.runtime = runtime
        self.noise = noise
        self._rng = np.random.default_rng(0)

    def empty_cache(self) -> KVCache:
        return self.runtime.empty_cache()

    def prefill(self, cache: KVCache, ids: list[int]) -> tuple[Any, KVCache]:
        logits, cache = self.runtime.prefill(cache, ids)
        return logits + self._rng.standard_normal(logits.shape).astype(np.float32) * self.noise, cache


@pytest.mark.parametrize("noise", [0.0, 0.5, 3.0])
def test_identity_and_rollback_on_the_oracle(noise: float) -> None:
    oracle = GemmaRuntime(load_model_files(ROOT / "tests" / "data" / "gemma" / "oracle", "fp32", "fp32"))
    rng = np.random.default_rng(2)
    drafted = accepted = 0
    for _ in range(6):
        ids = [5, *(int(t) for t in rng.integers(10, 370, size=int(rng.integers(20, 50))))]
        decoder = SpeculativeDecoder(NoisyDraft(oracle, noise), k=4)  # type: ignore[arg-type]
        logits, cache = oracle.prefill(oracle.empty_cache(), ids)
        _, draft_cache = decoder.prefill(ids)
        generation = decoder.generate(oracle, cache, logits, draft_cache, max_new_tokens=24)
        assert generation.tokens == _greedy(oracle, ids, 24)
        drafted += decoder.stats.drafted
        accepted += decoder.stats.accepted
    if noise == 0.0:
        assert accepted == drafted
    else:
        assert accepted < drafted
