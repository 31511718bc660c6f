"""Speculative drafting wired into the Gemma brain (speculative.py drafters, brain.gemma.draft).

Exactness: with greedy decoding the tokens are the same with and without a drafter, over
several rounds and turns in a row (the drafter's cache and the target's are rolled back
across refused drafts, response blocks and turns), with a draft equal to the target (every
draft accepted), an unrelated one (almost none) and prompt lookup. Real ONNX sessions:
tiny generated models sharing one tokenizer, and the real-architecture oracle (sliding
window shorter than the prompts, shared-KV layers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import ROOT, recording, settings_for

from assistant.brains.gemma.brain import GemmaBrain, make_gemma_brain
from assistant.brains.gemma.constrained import CallGrammar, ConstrainedDecoder, vocabulary_of
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.runtime import GemmaRuntime, Generation, KVCache, Sampler, Sampling
from assistant.brains.gemma.speculative import Drafter, ModelDrafter, PromptLookup, drafted_generate
from assistant.config import ConfigError, parse_settings
from assistant.errors import ModelFilesError
from assistant.tools.gemma_format import render_response
from assistant.tools.router import Router
from assistant.types import Utterance

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"


def test_prompt_lookup_drafts_what_followed_the_latest_longest_match() -> None:
    lookup = PromptLookup([10, 11, 12, 13, 14, 11, 12, 15, 16, 17])
    assert lookup.propose([11, 12], 2) == [15, 16]  # '11 12' twice: the later one
    assert lookup.propose([13, 11, 12], 3) == [15, 16, 17]
    assert lookup.propose([14, 99, 13, 14], 3) == [11, 12, 15]  # trigram '99 13 14' absent: '13 14'
    assert lookup.propose([42], 4) == []
    assert lookup.passes == 0


# -- the decoding loops over rounds -----------------------------------------------------------


def _rounds(
    target: GemmaRuntime,
    prompt: list[int],
    drafter: Drafter | None,
    *,
    decoder: Callable[[], ConstrainedDecoder] | None = None,
    k: int = 4,
    budget: int = 10,
) -> tuple[list[tuple[int, ...]], int, int, KVCache, list[int]]:
    """Three rounds with fixed 'response' ids fed between them, as the brain's tool loop does."""
    logits, cache = target.prefill(target.empty_cache(), prompt)
    base = cache.length
    history: list[int] = []
    out: list[tuple[int, ...]] = []
    drafted = accepted = 0
    for extra in ([7, 8, 9], [12, 13], None):
        generation: Generation
        if decoder is not None:
            constrained = decoder()
            generation = constrained.generate(
                target,
                cache,
                logits,
                max_new_tokens=budget,
                sampler=Sampler(Sampling()),
                draft=drafter is not None,
                drafter=drafter,
                history=history,
                lookahead=k,
            )
            drafted += constrained.drafted
            accepted += constrained.accepted
        elif drafter is not None:
            generation, d, a = drafted_generate(
                target, cache, logits, drafter=drafter, history=history, lookahead=k, max_new_tokens=budget
            )
            drafted, accepted = drafted + d, accepted + a
        else:
            generation = target.generate(cache, logits, max_new_tokens=budget, sampler=Sampler(Sampling()))
        out.append(generation.tokens)
        history += list(generation.tokens[: generation.cache.length - base - len(history)])
        if extra is None:
            return out, drafted, accepted, generation.cache, history
        feed = [*generation.unfed, *extra]
        history += feed
        logits, cache = target.prefill(generation.cache, feed)
    raise AssertionError("unreachable")  # pragma: no cover


def _same_state(target: GemmaRuntime, prompt: list[int], cache: KVCache, history: list[int]) -> None:
    """The cache holds prompt + history and nothing of a refused draft: same logits as a fresh prefill."""
    fed = [*prompt, *history]
    assert cache.length == len(fed)
    fresh, _ = target.prefill(target.empty_cache(), fed)
    check, _ = target.prefill(cache.truncated(cache.length - 1), fed[-1:])
    assert float(np.max(np.abs(fresh - check))) < 1e-3


@pytest.fixture(scope="module")
def pair(sized_pair: dict[str, Path]) -> dict[str, GemmaRuntime]:
    """Two tiny models of different sizes sharing the generator's tokenizer (as E2B and E4B do)."""
    paths = {"target": sized_pair["big"], "unrelated": sized_pair["small"]}
    return {name: GemmaRuntime(load_model_files(path, "fp32", "fp32")) for name, path in paths.items()}


def _prompts(size: int, count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [
        [2, *(int(t) for t in rng.integers(110, size - 10, size=int(rng.integers(8, 40))))]
        for _ in range(count)
    ]


@pytest.mark.parametrize("draft", ["target", "unrelated", "prompt lookup"])
def test_drafted_rounds_equal_greedy_on_two_tiny_models(pair: dict[str, GemmaRuntime], draft: str) -> None:
    target = pair["target"]
    drafted = accepted = 0
    for prompt in _prompts(target.tokenizer.get_vocab_size(), 4, 21):
        reference, *_ = _rounds(target, prompt, None)
        if draft == "prompt lookup":
            drafter: Drafter = PromptLookup(prompt)
        else:
            model = pair[draft]
            drafter = ModelDrafter(model, lambda m=model, p=prompt: m.prefill(m.empty_cache(), p))
        tokens, d, a, cache, history = _rounds(target, prompt, drafter, k=3)
        assert tokens == reference
        _same_state(target, prompt, cache, history)
        if isinstance(drafter, ModelDrafter) and drafter._cache is not None:
            # The draft's own cache holds its prompt + what it was fed and no refused draft.
            _same_state(pair[draft], prompt, drafter._cache, drafter._fed)
        drafted, accepted = drafted + d, accepted + a
    assert drafted > 0
    if draft == "target":
        assert accepted == drafted  # a draft equal to the target: every token accepted
    elif draft == "unrelated":
        assert accepted < 0.3 * drafted  # unrelated random weights: hardly any


@pytest.fixture(scope="module")
def oracle() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"))


class Noisy:
    """The oracle drafting for itself with perturbed logits: some drafts refused, caches cut back."""

    def __init__(self, runtime: GemmaRuntime) -> None:
        self.runtime = runtime
        self.tokens = runtime.tokens
        self._rng = np.random.default_rng(0)

    def empty_cache(self) -> KVCache:
        return self.runtime.empty_cache()

    def prefill(self, cache: KVCache, ids: list[int], **kwargs: Any) -> tuple[Any, KVCache]:
        logits, cache = self.runtime.prefill(cache, ids, **kwargs)
        return logits + self._rng.standard_normal(logits.shape).astype(np.float32) * 0.7, cache


@pytest.mark.parametrize("constrained", [False, True])
def test_drafted_rounds_equal_greedy_on_the_oracle(oracle: GemmaRuntime, constrained: bool) -> None:
    """Free text (drafted_generate) and the call grammar (a prompt ending in <|tool_call>: refused
    draft tokens cut, forced runs still jumped), the oracle drafting for itself, exact and noisy."""
    from test_gemma_constrained import home_tools

    call_open = oracle.tokenizer.token_to_id("<|tool_call>")
    vocabulary = vocabulary_of(oracle.tokenizer)

    def decoder() -> ConstrainedDecoder:
        return ConstrainedDecoder(CallGrammar(home_tools()), vocabulary, oracle.tokens.stop)

    rng = np.random.default_rng(4)
    for index in range(3):
        prompt = [2, *(int(t) for t in rng.integers(10, 370, size=int(rng.integers(20, 45))))]
        if constrained:
            prompt.append(call_open)
        make = decoder if constrained else None
        reference, *_ = _rounds(oracle, prompt, None, decoder=make)
        noisy = index % 2 == 1
        source: Any = Noisy(oracle) if noisy else oracle
        drafter = ModelDrafter(source, lambda s=source, p=prompt: s.prefill(s.empty_cache(), p))
        tokens, drafted, accepted, cache, history = _rounds(oracle, prompt, drafter, decoder=make)
        assert tokens == reference
        _same_state(oracle, prompt, cache, history)
        assert drafter.passes > 0
        if not constrained:
            assert drafted > 0 and (accepted < drafted if noisy else accepted == drafted)
        lookup, *_ = _rounds(oracle, prompt, PromptLookup(prompt), decoder=make)
        assert lookup == reference


# -- the brain --------------------------------------------------------------------------------


def _turns(brain: GemmaBrain, router: Router, make: Callable[[float], Utterance]) -> list[Any]:
    return [brain.handle(make(seconds), router, threading.Event()) for seconds in (1.0, 1.5, 1.0)]


@pytest.mark.parametrize("target", ["scripted", "general"])
def test_the_brains_tokens_are_the_same_with_every_draft(
    scripted_dir: Path,
    general_dir: Path,
    home: tuple[Router, Any, Any],
    utterance: Callable[[float], Utterance],
    target: str,
) -> None:
    """Three turns in a row (call, response block, spoken reply): the same tokens, replies and calls."""
    router = home[0]
    path, other = (scripted_dir, general_dir) if target == "scripted" else (general_dir, scripted_dir)
    runs: dict[str, tuple[list[tuple[int, ...]], list[Any]]] = {}
    options = {
        "none": {},
        "prompt lookup": {"draft": "prompt_lookup"},
        "draft = target": {"draft": "model", "draft_model_dir": path, "lookahead": 3},
        "unrelated draft": {"draft": "model", "draft_model_dir": other},
    }
    for label, extra in options.items():
        brain = make_gemma_brain(settings_for(path, templated_reply=False, max_new_tokens=24, **extra))
        seen = recording(brain)
        runs[label] = seen, _turns(brain, router, utterance)
    reference_tokens, reference_turns = runs["none"]
    assert len(reference_tokens) >= 3
    for label, (tokens, turns) in runs.items():
        assert tokens == reference_tokens, label
        assert [(t.reply, t.tool_calls) for t in turns] == [(t.reply, t.tool_calls) for t in reference_turns]
    exact = runs["draft = target"][1]
    # Every token the target drafted for itself is accepted; only the grammar's opening draft on the
    # prefill ('<|tool_call>call:...', no model behind it) may be refused.
    for turn in exact:
        refused = turn.counts["draft_tokens"] - turn.counts["draft_accepted"]
        assert turn.counts["draft_accepted"] > 0 and refused <= turn.counts.get("prefill_draft_tokens", 0)
    assert all(t.counts["draft_passes"] > 0 for t in exact)
    if target == "scripted":
        assert sum(t.counts["decode_steps"] for t in exact) < sum(
            t.counts["decode_steps"] for t in reference_turns
        )
    unrelated = runs["unrelated draft"][1]
    assert sum(t.counts["draft_accepted"] for t in unrelated) < sum(
        t.counts["draft_tokens"] for t in unrelated
    )


def test_the_drafter_sees_what_the_target_was_fed_across_rounds(
    scripted_dir: Path, home: tuple[Router, Any, Any], utterance: Callable[[float], Utterance]
) -> None:
    """Round 2's history: round 1's call as the cache holds it (the stop unfed), the response block."""
    router = home[0]
    brain = make_gemma_brain(settings_for(scripted_dir, templated_reply=False, draft="prompt_lookup"))
    seen = recording(brain)
    histories: list[list[int]] = []
    make = brain._drafter

    def drafter(*args: Any) -> Drafter | None:
        inner = make(*args)
        assert inner is not None
        original = inner.propose

        def propose(history: Any, k: int) -> list[int]:
            histories.append(list(history))
            return original(history, k)

        inner.propose = propose  # type: ignore[method-assign]
        return inner

    brain._drafter = drafter  # type: ignore[method-assign]
    for _ in range(2):
        histories.clear()
        seen.clear()
        turn = brain.handle(utterance(1.0), router, threading.Event())
        assert len(seen) == 2 and turn.tool_calls
        block = brain.runtime.encode("".join(render_response(r) for r in turn.results))
        fed = [*seen[0][:-1], *block]  # the call's stop <|tool_response> is never fed
        later = [h for h in histories if len(h) > len(fed)]
        assert later and all(h[: len(fed)] == fed for h in later)
        first = [h for h in histories if len(h) <= len(seen[0])]
        assert first and all(h == list(seen[0][: len(h)]) for h in first)  # round 1: its own tokens so far


def test_drafting_is_off_when_sampling(general_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="assistant.brains.gemma.brain"):
        brain = make_gemma_brain(settings_for(general_dir, draft="prompt_lookup", temperature=0.7))
    assert brain.draft == "none"
    assert "drafting (prompt_lookup) is off: temperature 0.7 > 0" in caplog.text


def test_a_draft_with_another_tokenizer_is_refused(general_dir: Path) -> None:
    with pytest.raises(ModelFilesError, match="tokenizer differs"):
        make_gemma_brain(settings_for(general_dir, draft="model", draft_model_dir=ORACLE))


def test_draft_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="draft_model_dir"):
        parse_settings("brain:\n  gemma:\n    draft: model\n")
    with pytest.raises(ConfigError, match="lookahead"):
        parse_settings("brain:\n  gemma:\n    lookahead: 0\n")
    settings = parse_settings("brain:\n  gemma:\n    draft: prompt_lookup\n    lookahead: 6\n")
    assert (settings.brain.gemma.draft, settings.brain.gemma.lookahead) == ("prompt_lookup", 6)


def test_a_cancel_during_the_draft_models_pass_ends_the_turn_without_action(
    scripted_dir: Path,
    home: tuple[Router, Any, Any],
    utterance: Callable[[float], Utterance],
    caplog: pytest.LogCaptureFixture,
) -> None:
    router, lights, _ = home
    brain = make_gemma_brain(settings_for(scripted_dir, draft="model", draft_model_dir=scripted_dir))
    brain.warm(router)
    draft = brain.draft_runtime
    assert draft is not None
    cancel = threading.Event()
    original = draft.prefill

    def prefill(*args: Any, **kwargs: Any) -> Any:
        cancel.set()  # the user said "stop" while the draft model hears the utterance
        return original(*args, **kwargs)

    draft.prefill = prefill  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="assistant.brains.gemma"):
        turn = brain.handle(utterance(1.0), router, cancel)
    assert lights.ran == [] and turn.tool_calls == ()
    assert not turn.understood and turn.reply.text == ""
    assert "gemma turn cancelled" in caplog.text
    assert "draft model failed" not in caplog.text  # a cancel is no failure of the draft
