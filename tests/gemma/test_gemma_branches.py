"""Branch verification: the grammar's continuations at the next branch point as batch rows of one pass.

GemmaRuntime.verify_rows feeds several continuations of one cache in a single decoder run
(the past replicated per row, short rows padded at their end); ConstrainedDecoder.generate
with ``branches`` keeps the row the model's own pick selects, as far as it agrees, and that
row's cache cut to it. Exactness: the tokens equal masked greedy decoding with one decoder
run per token (and plain greedy where the model's greedy output is a valid call), over
several prompts and rounds, on two tiny generated models and on the real-architecture
oracle (sliding window shorter than the prompts, shared-KV layers); the cache afterwards
gives the logits of a fresh prefill; no row the grammar refuses is ever fed. Real ONNX
sessions throughout; the bench's scripted stand-in decoder (gemma_helpers.ScriptedChoices)
is checked for its pass counts.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import CONTEXT, ROOT, Lights, ScriptedChoices, recording, settings_for
from test_gemma_constrained import OneByOne, home_tools

from assistant.brains.gemma.brain import make_gemma_brain
from assistant.brains.gemma.constrained import (
    CallGrammar,
    ConstrainedDecoder,
    Cursor,
    symbols_of,
    vocabulary_of,
)
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.runtime import Cancelled, GemmaRuntime, KVCache, Sampler, Sampling
from assistant.config import ConfigError, parse_settings
from assistant.errors import BrainError
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from tests.support.scripts import load_script

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"
BUDGETS = ((4, 16), (16, 64))


@pytest.fixture(scope="module")
def models(sized_pair: dict[str, Path]) -> dict[str, GemmaRuntime]:
    """Two tiny random models of different shapes and the oracle (real architecture)."""
    paths = {"tiny": sized_pair["big"], "tiny small": sized_pair["small"], "oracle": ORACLE}
    return {name: GemmaRuntime(load_model_files(path, "fp32", "fp32")) for name, path in paths.items()}


class Recorder:
    """The runtime, recording every row a branch pass feeds with the tokens before it."""

    def __init__(self, runtime: GemmaRuntime) -> None:
        self.runtime = runtime
        self.encode = runtime.encode
        self.batched = runtime.batched
        self.fed: list[int] = []
        self.rows: list[tuple[list[int], list[int]]] = []
        """Each fed row with the history before its pass."""

    def prefill(self, cache: KVCache, ids: Any, **kwargs: Any) -> tuple[Any, KVCache]:
        self.fed = self.fed[: cache.length] + list(ids)
        return self.runtime.prefill(cache, ids, **kwargs)

    def verify(self, cache: KVCache, ids: Any, *, cancel: Any = None) -> tuple[Any, KVCache]:
        self.fed = self.fed[: cache.length] + list(ids)
        return self.runtime.verify(cache, ids, cancel=cancel)

    def verify_rows(self, cache: KVCache, rows: Any, *, cancel: Any = None) -> tuple[Any, Any]:
        before = self.fed[: cache.length]
        self.rows.extend((before, list(row)) for row in rows)
        logits, row_cache = self.runtime.verify_rows(cache, rows, cancel=cancel)

        def kept(index: int, length: int) -> KVCache:
            self.fed = before + list(rows[index][: length - cache.length])
            return row_cache(index, length)

        return logits, kept


def _prompts(runtime: GemmaRuntime, count: int, seed: int) -> list[list[int]]:
    """Random prompts ending in <|tool_call> (the grammar is on from the first token)."""
    rng = np.random.default_rng(seed)
    size = min(int(runtime.tokenizer.get_vocab_size()), 370)
    call_open = int(runtime.tokenizer.token_to_id("<|tool_call>"))
    return [
        [2, *(int(t) for t in rng.integers(10, size - 10, size=int(rng.integers(20, 40)))), call_open]
        for _ in range(count)
    ]


def _rounds(
    model: Any, runtime: GemmaRuntime, prompt: list[int], budget: tuple[int, int]
) -> tuple[list[tuple[int, ...]], KVCache, list[int], list[ConstrainedDecoder]]:
    """Three rounds of masked greedy decoding, fixed 'response' ids fed between them (as the brain does)."""
    vocabulary = vocabulary_of(runtime.tokenizer)
    logits, cache = runtime.prefill(runtime.empty_cache(), prompt)
    fed = list(prompt)
    out: list[tuple[int, ...]] = []
    decoders = []
    for extra in ([7, 8, 9], [12, 13], None):
        decoder = ConstrainedDecoder(CallGrammar(home_tools()), vocabulary, runtime.tokens.stop)
        decoders.append(decoder)
        generation = decoder.generate(
            model,
            cache,
            logits,
            max_new_tokens=24,
            sampler=Sampler(Sampling()),
            draft=budget[0] > 0,
            cursor=decoder.in_call(),
            branches=budget[0],
            branch_tokens=budget[1],
        )
        out.append(generation.tokens)
        fed += list(generation.tokens[: generation.cache.length - len(fed)])
        if extra is None:
            return out, generation.cache, fed, decoders
        # Each round is a call again: the response ids, then <|tool_call> (the grammar restarts).
        feed = [*generation.unfed, *extra, int(runtime.tokenizer.token_to_id("<|tool_call>"))]
        fed += feed
        logits, cache = runtime.prefill(generation.cache, feed)
        if isinstance(model, Recorder):
            model.fed = list(fed)
    raise AssertionError("unreachable")  # pragma: no cover


def _same_as_fresh(runtime: GemmaRuntime, cache: KVCache, fed: list[int]) -> None:
    """The cache holds exactly ``fed``: its next logits are a fresh prefill's, and so is every slot."""
    assert cache.length == len(fed)
    fresh_logits, fresh = runtime.prefill(runtime.empty_cache(), fed)
    check, _ = runtime.prefill(cache.truncated(cache.length - 1), fed[-1:])
    assert float(np.max(np.abs(fresh_logits - check))) < 1e-3
    for ours, theirs in zip((*cache.keys, *cache.values), (*fresh.keys, *fresh.values), strict=True):
        assert ours.shape == theirs.shape
        assert float(np.max(np.abs(ours - theirs))) < 1e-3


@pytest.mark.parametrize("name", ["tiny", "tiny small", "oracle"])
def test_verify_rows_equals_each_row_fed_alone(models: dict[str, GemmaRuntime], name: str) -> None:
    runtime = models[name]
    rng = np.random.default_rng(5)
    prompt = [2, *(int(t) for t in rng.integers(10, 300, size=40))]  # longer than the oracle's window
    _, cache = runtime.prefill(runtime.empty_cache(), prompt)
    rows = [[5, 6, 7, 8, 9], [5, 11], [12, 13, 14]]
    logits, row_cache = runtime.verify_rows(cache, rows)
    assert logits.shape[:2] == (3, 5)
    for index, row in enumerate(rows):
        alone, alone_cache = runtime.verify(cache, row)
        assert float(np.max(np.abs(logits[index, : len(row)] - alone))) < 1e-4
        for keep in (0, 1, len(row)):
            got = row_cache(index, cache.length + keep)
            assert got.length == cache.length + keep
            want = alone_cache.truncated(cache.length + keep)
            for ours, theirs in zip((*got.keys, *got.values), (*want.keys, *want.values), strict=True):
                assert ours.shape == theirs.shape and ours.flags.c_contiguous
                assert float(np.max(np.abs(ours - theirs))) < 1e-4
    with pytest.raises(ValueError, match="holds"):
        row_cache(1, cache.length + 3)  # row 1 has two tokens; the rest of its row is padding
    assert runtime.rows_problem(cache) is None
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        runtime.verify_rows(cache, rows, cancel=cancel)


@pytest.mark.parametrize("name", ["tiny", "tiny small", "oracle"])
def test_branched_rounds_equal_one_run_per_token(models: dict[str, GemmaRuntime], name: str) -> None:
    """Masked greedy inside calls, three rounds per prompt: with branch rows at two budgets the tokens
    are those of one decoder run per token (no draft, no rows), the cache equals a fresh prefill's,
    and every row fed is valid per grammar from where its pass starts."""
    runtime = models[name]
    passes = hits = 0
    for prompt in _prompts(runtime, 3, 8):
        reference, *_ = _rounds(OneByOne(runtime), runtime, prompt, (0, 16))
        for budget in BUDGETS:
            recorder = Recorder(runtime)
            recorder.fed = list(prompt)
            tokens, cache, fed, decoders = _rounds(recorder, runtime, prompt, budget)
            assert tokens == reference, budget
            _same_as_fresh(runtime, cache, fed)
            assert fed[: len(prompt)] == prompt
            passes += sum(d.branch_passes for d in decoders)
            hits += sum(d.branch_hits for d in decoders)
            _rows_are_valid(runtime, recorder.rows)
    assert passes > 0 and hits > 0  # the rows were fed, and some were kept


def _rows_are_valid(runtime: GemmaRuntime, rows: list[list[int]]) -> None:
    """Each recorded row (the history before its pass + the row) walks the grammar from the last
    <|tool_call> on: no token of a fed row is one the grammar refuses there."""
    call_open = int(runtime.tokenizer.token_to_id("<|tool_call>"))
    decoder = ConstrainedDecoder(
        CallGrammar(home_tools()), vocabulary_of(runtime.tokenizer), runtime.tokens.stop
    )
    assert rows
    for history, row in rows:
        start = len(history) - history[::-1].index(call_open)
        cursor: Cursor | None = decoder.in_call()
        for token in [*history[start:], *row]:
            assert cursor is not None, runtime.decode([*history[start:], *row])
            cursor = decoder.after(cursor, token)
        assert cursor is not None, runtime.decode([*history[start:], *row])


def test_branches_give_plain_greedy_on_a_model_that_calls(scripted_dir: Path) -> None:
    """The scripted tiny model's own greedy output is a valid call: with branch rows the tokens are
    plain (unmasked) greedy's, in fewer passes."""
    runtime = GemmaRuntime(load_model_files(scripted_dir, "fp32", "fp32"))
    ids = runtime.encode("<bos><|turn>user\nturn on the kitchen light<turn|>\n" + CONTEXT)
    logits, cache = runtime.prefill(runtime.empty_cache(), ids)
    plain = runtime.generate(cache, logits, max_new_tokens=40, sampler=Sampler(Sampling()))
    grammar = CallGrammar([Lights().tool()])
    steps, hits = {}, {}
    for budget in ((0, 16), *BUDGETS):
        decoder = ConstrainedDecoder(grammar, vocabulary_of(runtime.tokenizer), runtime.tokens.stop)
        generation = decoder.generate(
            runtime,
            cache,
            logits,
            max_new_tokens=40,
            sampler=Sampler(Sampling()),
            branches=budget[0],
            branch_tokens=budget[1],
        )
        assert generation.tokens == plain.tokens
        steps[budget] = generation.steps
        hits[budget] = decoder.branch_hits
    # The one key's enum after a long forced run: two rows fit the larger budget only.
    assert hits[BUDGETS[1]] > 0 and steps[BUDGETS[1]] < steps[(0, 16)]


def test_sampling_feeds_no_rows(models: dict[str, GemmaRuntime]) -> None:
    """Branch rows are for greedy decoding only (like drafts): with a temperature none is fed."""
    runtime = models["oracle"]
    recorder = Recorder(runtime)
    decoder = ConstrainedDecoder(
        CallGrammar(home_tools()), vocabulary_of(runtime.tokenizer), runtime.tokens.stop
    )
    prompt = _prompts(runtime, 1, 3)[0]
    logits, cache = runtime.prefill(runtime.empty_cache(), prompt)
    generation = decoder.generate(
        recorder,
        cache,
        logits,
        max_new_tokens=24,
        sampler=Sampler(Sampling(temperature=0.8, seed=1)),
        cursor=decoder.in_call(),
        branches=16,
        branch_tokens=64,
    )
    assert generation.steps > 0 and recorder.rows == [] and decoder.branch_passes == 0


def test_the_bench_counts_four_passes_for_dim_the_lamp(models: dict[str, GemmaRuntime]) -> None:
    """ScriptedChoices (the bench's stand-in decoder) with branch rows: the three home commands in
    at most 4 passes at 16 rows / 64 positions, the tokens and what the cache holds unchanged."""
    bench = load_script("bench/bench_gemma_loop.py")
    tokenizer = models["oracle"].tokenizer
    stops = {int(tokenizer.token_to_id(t)) for t in ("<eos>", "<turn|>", "<|tool_response>")}
    vocabulary = vocabulary_of(tokenizer)
    passes = {}
    for command, call in bench.COMMANDS.items():
        target = list(tokenizer.encode(call + "<|tool_response>", add_special_tokens=False).ids)
        for budget in ((0, 16), *BUDGETS):
            model = ScriptedChoices(tokenizer, target, noise=1.0, prompt=1)
            decoder = ConstrainedDecoder(CallGrammar(bench.home_tools()), vocabulary, stops)
            opened = decoder.prefill(model, KVCache((), (), 0), tokenizer.encode("\n").ids[-1:])
            generation = decoder.generate(
                model,
                opened.cache,
                opened.rows[0],
                max_new_tokens=256,
                sampler=Sampler(Sampling()),
                opened=opened,
                branches=budget[0],
                branch_tokens=budget[1],
            )
            assert list(generation.tokens) == target
            assert model.generated() == target[:-1]
            assert all(2 <= rows <= budget[0] for rows in model.rows)
            assert bool(model.rows) == bool(budget[0])
            passes[command, budget] = generation.steps
    dim = "dim the lamp to 30 %"
    assert passes[dim, (0, 16)] == 7 and passes[dim, (4, 16)] == 5 and passes[dim, (16, 64)] == 4
    assert all(passes[c, (16, 64)] <= 4 for c in bench.COMMANDS)


# -- the brain ----------------------------------------------------------------------------


def _lights_with_areas() -> tuple[Router, list[dict[str, Any]]]:
    """The real router over HassTurnOn(name, area), both optional: the call branches after '{'
    and after the name (',' or '}')."""
    ran: list[dict[str, Any]] = []

    def turn_on(**args: Any) -> dict[str, Any]:
        ran.append(args)
        return {"state": "on"}

    tool = Lights().tool()
    parameters = dict(tool.parameters)
    parameters["properties"] = {
        **parameters["properties"],
        "area": {"type": "string", "enum": ["kitchen", "bedroom"]},
    }
    parameters["required"] = []
    registry = ToolRegistry()
    registry.add(dataclasses.replace(tool, parameters=parameters, handler=turn_on), group="home")
    return Router(registry), ran


def test_the_brains_turns_are_the_same_with_branches(scripted_dir: Path, utterance: Any) -> None:
    router, ran = _lights_with_areas()
    runs = {}
    try:
        for branches in (0, 4):
            brain = make_gemma_brain(settings_for(scripted_dir, branches=branches, templated_reply=False))
            seen = recording(brain)
            turns = [brain.handle(utterance(s), router, threading.Event()) for s in (1.0, 1.5)]
            steps = sum(t.counts["decode_steps"] for t in turns)
            runs[branches] = (seen, [t.reply.text for t in turns], steps)
            if branches:
                assert all(t.counts["branch_passes"] > 0 for t in turns)
    finally:
        router.close()
    assert runs[4][:2] == runs[0][:2]
    assert runs[4][2] < runs[0][2]
    assert ran == [{"name": "kitchen light"}] * 4


def _fixed_batch_copy(source: Path, dest: Path) -> Path:
    """The model folder with its decoder graph declaring batch size 1 (the weights untouched)."""
    import onnx

    shutil.copytree(source, dest)
    path = dest / "onnx" / "decoder_model_merged.onnx"
    model = onnx.load(str(path), load_external_data=False)
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].dim_param == "batch_size":
            dims[0].dim_value = 1
    onnx.save(model, str(path))
    return dest


def test_branches_are_off_when_sampling_or_without_a_dynamic_batch(
    general_dir: Path,
    home: tuple[Router, Any, Any],
    tmp_path: Path,
    utterance: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    router, *_ = home
    assert make_gemma_brain(settings_for(general_dir, temperature=0.7)).branches == 0
    assert make_gemma_brain(settings_for(general_dir)).branches == 4  # the default
    brain = make_gemma_brain(settings_for(_fixed_batch_copy(general_dir, tmp_path / "fixed")))
    assert not brain.runtime.batched
    with caplog.at_level(logging.WARNING, logger="assistant.brains.gemma.brain"):
        brain.warm(router)
    assert brain.branches == 0
    assert "branch verification is off: the decoder graph has a fixed batch size" in caplog.text
    with pytest.raises(BrainError, match="fixed batch size"):
        brain.runtime.verify_rows(brain.runtime.empty_cache(), [[1], [2]])
    turn = brain.handle(utterance(1.0), router, threading.Event())  # the turn runs without rows
    assert turn.counts.get("branch_passes", 0) == 0


def test_branch_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="branches"):
        parse_settings("brain:\n  gemma:\n    branches: -1\n")
    with pytest.raises(ConfigError, match="branch_tokens"):
        parse_settings("brain:\n  gemma:\n    branch_tokens: 1\n")
    gemma = parse_settings("brain:\n  gemma:\n    branches: 16\n    branch_tokens: 64\n").brain.gemma
    assert (gemma.branches, gemma.branch_tokens) == (16, 64)


def test_branch_rows_put_the_keys_after_the_last_written_first() -> None:
    """Gemma's template writes a call's arguments sorted by key (dictsort): after ``{`` the rows
    start with the keys, after ``brightness:30,`` with the keys after ``brightness``; a key before
    it stays allowed (only the order of the rows changes)."""
    bench = load_script("bench/bench_gemma_loop.py")
    grammar = CallGrammar(bench.home_tools())

    def walk(text: str) -> frozenset[Any]:
        states = grammar.start()
        for sym in symbols_of(text):
            states = grammar.step(states, sym)
        assert states, text
        return states

    opened = walk("call:HassLightSet{")
    assert grammar.keys_ahead(opened) == {"a": "area", "b": "brightness", "c": "color", "n": "name"}
    after = walk("call:HassLightSet{brightness:30,")
    assert grammar.keys_ahead(after) == {"c": "color", "n": "name"}
    assert "a" in grammar.next_symbols(after)  # area, before brightness, is still valid
    assert grammar.keys_ahead(walk("call:HassLightSet{brightness:3")) == {}
