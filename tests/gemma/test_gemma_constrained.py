"""Grammar-constrained, jump-forward decoding (assistant/brains/gemma/constrained.py).

* the grammar: what the live declarations allow after ``<|tool_call>``;
* tokenisation: the tokens a constrained round leaves in the cache are the tokenizer's own
  encoding of the whole output (fixture and tiny tokenizers, tricky entity names);
* an invalid call is impossible: random logits only ever produce calls the grammar accepts;
* exactness on the real-architecture oracle: a valid greedy path is unchanged, and inside a
  call the batched passes (forced runs, verified drafts, rolled-back caches through the
  sliding-window and shared-KV layers) give the tokens of token-by-token masked decoding.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gemma_helpers import ROOT, ScriptedChoices

from assistant.brains.gemma.constrained import CallGrammar, ConstrainedDecoder, Cursor, vocabulary_of
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.parser import parse_output
from assistant.brains.gemma.runtime import GemmaRuntime, KVCache, Sampler, Sampling
from assistant.tools.base import Tool

ORACLE = ROOT / "tests" / "data" / "gemma" / "oracle"
ENTITIES = ["kitchen light", "bedroom lamp", "living room lamp", "lamp", "lamps", "thermostat"]


def _tool(name: str, properties: dict[str, Any], required: list[str] | None = None) -> Tool:
    return Tool(
        name=name,
        description=name,
        parameters={"type": "object", "properties": properties, "required": required or []},
        handler=lambda **_: {},
    )


def home_tools(entities: list[str] = ENTITIES) -> list[Tool]:
    """HA-like intents over the entity names (the inventory's enums)."""
    name = {"type": "string", "enum": entities}
    area = {"type": "string", "enum": ["kitchen", "bedroom", "living room"]}
    return [
        _tool(
            "HassTurnOn", {"name": name, "area": area, "domain": {"type": "string", "enum": ["light", "fan"]}}
        ),
        _tool("HassTurnOff", {"name": name, "area": area}),
        _tool("HassLightSet", {"name": name, "brightness": {"type": "integer"}, "color": {"type": "string"}}),
        _tool(
            "HassClimateSetTemperature", {"name": name, "temperature": {"type": "number"}}, ["temperature"]
        ),
        _tool("HassTimer", {"minutes": {"type": "integer"}, "label": {"type": "string", "nullable": True}}),
        _tool("HassMute", {"on": {"type": "boolean"}, "rooms": {"type": "array", "items": area}}),
    ]


@pytest.fixture(scope="module")
def oracle() -> GemmaRuntime:
    return GemmaRuntime(load_model_files(ORACLE, "fp32", "fp32"))


def _decoder(runtime_or_tokenizer: Any, tools: list[Tool], stops: frozenset[int]) -> ConstrainedDecoder:
    tokenizer = getattr(runtime_or_tokenizer, "tokenizer", runtime_or_tokenizer)
    return ConstrainedDecoder(CallGrammar(tools), vocabulary_of(tokenizer), stops)


def _stops(tokenizer: Any) -> frozenset[int]:
    return frozenset(int(tokenizer.token_to_id(t)) for t in ("<eos>", "<turn|>", "<|tool_response>"))


# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|>', True),
        ('call:HassTurnOn{area:<|"|>kitchen<|"|>,name:<|"|>lamp<|"|>}<tool_call|>', True),
        ('call:HassTurnOn{name:<|"|>lamp<|"|>,area:<|"|>kitchen<|"|>}<tool_call|>', True),  # any order
        ("call:HassTurnOn{}<tool_call|>", True),
        ("call:HassClimateSetTemperature{temperature:21}<tool_call|>", True),
        ("call:HassClimateSetTemperature{temperature:-0.5}<tool_call|>", True),
        ("call:HassLightSet{brightness:30}<tool_call|>", True),
        ('call:HassLightSet{color:<|"|>any text, at all<|"|>}<tool_call|>', True),
        ("call:HassTimer{label:null,minutes:5}<tool_call|>", True),
        ('call:HassMute{on:true,rooms:[<|"|>kitchen<|"|>,<|"|>bedroom<|"|>]}<tool_call|>', True),
        ("call:HassMute{rooms:[]}<tool_call|>", True),
        ('call:HassTurnOn{name:<|"|>kitchen<|"|>}<tool_call|>', False),  # not an entity
        ('call:HassTurnOn{name:<|"|>kitchen light}<tool_call|>', False),  # string left open
        ("call:HassClimateSetTemperature{}<tool_call|>", False),  # required argument missing
        ("call:HassClimateSetTemperature{name:1}<tool_call|>", False),
        ("call:HassLightSet{brightness:30.5}<tool_call|>", False),  # an integer
        ("call:HassLightSet{brightness:030}<tool_call|>", False),
        ('call:HassTurnOn{name:<|"|>lamp<|"|>,name:<|"|>lamp<|"|>}<tool_call|>', False),  # twice
        ('call:HassTurnOn{colour:<|"|>red<|"|>}<tool_call|>', False),  # not declared
        ("call:HassTimer{label:none}<tool_call|>", False),
        ("call:HassMute{rooms:[,]}<tool_call|>", False),
        ("call:HassTurnOn{}", False),  # not closed
        ("call:HassUnknown{}<tool_call|>", False),
        ('call:HassTurnOn{,name:<|"|>lamp<|"|>}<tool_call|>', False),
    ],
)
def test_the_grammar_accepts_what_the_declarations_allow(text: str, valid: bool) -> None:
    assert CallGrammar(home_tools()).accepts(text) is valid


# -- tokenisation: the cache holds the tokenizer's own encoding ----------------------------------

TRICKY = [
    "kitchen light",
    "lamp",
    "lamps",
    "living room lamp",
    "Küche Decke",
    "kid's room",
    "TV  2",
    "3D printer",
    "a.b-c_d",
    "light,light",
    "日本",
]


def _tokenizers(general_dir: Path) -> list[Any]:
    from tokenizers import Tokenizer

    return [
        Tokenizer.from_file(str(ORACLE / "tokenizer.json")),
        Tokenizer.from_file(str(general_dir / "tokenizer.json")),
    ]


def _round(tokenizer: Any, text: str, tools: list[Tool], **kwargs: Any) -> tuple[Any, ScriptedChoices]:
    stops = _stops(tokenizer)
    target = list(tokenizer.encode(text, add_special_tokens=False).ids)
    model = ScriptedChoices(tokenizer, target, **kwargs)
    decoder = _decoder(tokenizer, tools, stops)
    generation = decoder.generate(
        model, KVCache((), (), 0), model.row(0), max_new_tokens=200, sampler=Sampler(Sampling())
    )
    return generation, model


@pytest.mark.parametrize("entity", TRICKY)
@pytest.mark.parametrize("draft", [True, False])
def test_forced_runs_are_tokenised_as_the_tokenizer_does(general_dir: Path, entity: str, draft: bool) -> None:
    tools = home_tools([*TRICKY, "kitchen"])
    calls = [
        f'<|tool_call>call:HassTurnOn{{name:<|"|>{entity}<|"|>}}<tool_call|><|tool_response>',
        f'<|tool_call>call:HassLightSet{{brightness:30,name:<|"|>{entity}<|"|>}}<tool_call|><|tool_response>',
        f'<|tool_call>call:HassTurnOff{{area:<|"|>living room<|"|>,name:<|"|>{entity}<|"|>}}<tool_call|>'
        "<turn|>",
        f'<|tool_call>call:HassLightSet{{color:<|"|>{entity}<|"|>}}<tool_call|><|tool_response>',
    ]
    for tokenizer in _tokenizers(general_dir):
        for text in calls:
            stops = _stops(tokenizer)
            target = list(tokenizer.encode(text, add_special_tokens=False).ids)
            model = ScriptedChoices(tokenizer, target, noise=1.0)
            decoder = _decoder(tokenizer, tools, stops)
            generation = decoder.generate(
                model,
                KVCache((), (), 0),
                model.row(0),
                max_new_tokens=200,
                sampler=Sampler(Sampling()),
                draft=draft,
            )
            assert list(generation.tokens) == target, (text, tokenizer.get_vocab_size())
            assert model.fed[: generation.cache.length] == target[:-1]  # the cache: all but the stop
            assert generation.steps < len(target) - 1


def test_a_reply_instead_of_a_call_is_free(general_dir: Path) -> None:
    for tokenizer in _tokenizers(general_dir):
        text = "It is sunny, call me later: {fine}.<turn|>"
        generation, _ = _round(tokenizer, text, home_tools(), noise=1.0)
        assert tokenizer.decode(list(generation.tokens), skip_special_tokens=False) == text
        assert generation.steps == len(generation.tokens) - 1  # nothing is forced in free text


def test_control_tokens_the_parser_refuses_are_masked_in_a_reply(general_dir: Path) -> None:
    tokenizer = _tokenizers(general_dir)[0]
    quote = tokenizer.token_to_id('<|"|>')
    decoder = _decoder(tokenizer, home_tools(), _stops(tokenizer))
    free = Cursor(None)
    assert decoder.after(free, quote) is None
    assert decoder.after(free, tokenizer.token_to_id("<tool_call|>")) is None
    assert decoder.after(free, tokenizer.token_to_id("<turn|>")) is free
    inside = decoder.in_call()
    assert decoder.after(inside, tokenizer.token_to_id("<turn|>")) is None  # no stop inside a call


# -- invalid calls are impossible -------------------------------------------------------------


class RandomModel(ScriptedChoices):
    """Seeded random logits that open a call first: the grammar alone keeps the call valid."""

    def __init__(self, tokenizer: Any, seed: int) -> None:
        super().__init__(tokenizer, [int(tokenizer.token_to_id("<|tool_call>"))], noise=3.0, seed=seed)
        self.ends = [int(tokenizer.token_to_id(t)) for t in ('<|"|>', "<|tool_response>")]

    def row(self, position: int) -> Any:
        logits = super().row(position)
        logits[self.ends] += 3.0  # free strings and rounds end now and then
        return logits


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_random_logits_never_write_an_invalid_call(general_dir: Path, temperature: float) -> None:
    tokenizer = _tokenizers(general_dir)[0]
    tools = home_tools()
    grammar = CallGrammar(tools)
    finished = 0
    for seed in range(40):
        model = RandomModel(tokenizer, seed)
        decoder = _decoder(tokenizer, tools, _stops(tokenizer))
        generation = decoder.generate(
            model,
            KVCache((), (), 0),
            model.row(0),
            max_new_tokens=120,
            sampler=Sampler(Sampling(temperature=temperature, seed=seed)),
        )
        text = tokenizer.decode(list(generation.tokens), skip_special_tokens=False)
        if generation.stop_token is None:
            continue  # the budget ran out (inside a free string): nothing to parse
        finished += 1
        parsed = parse_output(text)
        assert parsed.ok, (seed, text, parsed.error)
        assert parsed.calls, text
        for block in text.split("<|tool_call>")[1:]:
            call = block[: block.index("<tool_call|>") + len("<tool_call|>")]
            assert grammar.accepts(call), call
    assert finished >= 20


# -- exactness on the real-architecture oracle ----------------------------------------------------


def _prompts(runtime: GemmaRuntime, count: int) -> list[list[int]]:
    rng = np.random.default_rng(5)
    specials = set(vocabulary_of(runtime.tokenizer).specials)
    plain = [i for i in range(runtime.tokenizer.get_vocab_size()) if i not in specials]
    bos = runtime.tokenizer.token_to_id("<bos>")
    return [[bos, *(int(t) for t in rng.choice(plain, size=int(rng.integers(4, 40))))] for _ in range(count)]


def test_a_valid_greedy_path_is_unchanged_on_the_oracle(oracle: GemmaRuntime) -> None:
    stops = oracle.tokens.stop
    decoder = _decoder(oracle, home_tools(), stops)
    valid = 0
    for ids in _prompts(oracle, 40):
        logits, cache = oracle.prefill(oracle.empty_cache(), ids)
        plain = oracle.generate(cache, logits, max_new_tokens=16, sampler=Sampler(Sampling()))
        cursor: Cursor | None = Cursor(None)
        for token in plain.tokens:
            cursor = None if cursor is None else decoder.after(cursor, token)
        if cursor is None:
            continue  # the model wrote something the grammar refuses: masking must change it
        valid += 1
        constrained = oracle.generate(
            cache, logits, max_new_tokens=16, sampler=Sampler(Sampling()), constraint=decoder
        )
        assert constrained.tokens == plain.tokens
        assert constrained.stop_token == plain.stop_token
    assert valid >= 20


class OneByOne:
    """The runtime, but every pass is split into one decoder run per token (the reference)."""

    def __init__(self, runtime: GemmaRuntime) -> None:
        self.runtime = runtime
        self.encode = runtime.encode

    def verify(self, cache: KVCache, ids: Any, *, cancel: Any = None) -> tuple[Any, KVCache]:
        rows = []
        for token in ids:
            logits, cache = self.runtime.prefill(cache, [token])
            rows.append(logits)
        return np.stack(rows), cache


@pytest.mark.parametrize("draft", [True, False])
def test_batched_passes_equal_one_run_per_token_on_the_oracle(oracle: GemmaRuntime, draft: bool) -> None:
    """Inside a call (the prompt ends with <|tool_call>): one batched pass per pick (forced run and
    draft included, rejected draft tokens cut from the cache, through the sliding-window and shared-KV
    layers: prompts are longer than the window) gives the tokens of one decoder run per token."""
    tools = home_tools()
    call_open = oracle.tokenizer.token_to_id("<|tool_call>")
    passes = tokens = drafted = 0
    for ids in _prompts(oracle, 25):
        logits, cache = oracle.prefill(oracle.empty_cache(), [*ids, call_open])
        runs = {}
        for name, model in (("batched", oracle), ("one by one", OneByOne(oracle))):
            decoder = _decoder(oracle, tools, oracle.tokens.stop)
            runs[name] = decoder.generate(
                model,
                cache,
                logits,
                max_new_tokens=40,
                sampler=Sampler(Sampling()),
                cursor=decoder.in_call(),
                draft=draft if name == "batched" else False,
                cancel=threading.Event(),
            )
            drafted += decoder.drafted
        batched, reference = runs["batched"], runs["one by one"]
        assert batched.tokens == reference.tokens
        # Same state: what is in the cache plus what is left unfed (a budget end may differ in which).
        fed = batched.cache.length + len(batched.unfed)
        assert fed == reference.cache.length + len(reference.unfed)
        common = min(batched.cache.length, reference.cache.length)
        for mine, theirs in zip(batched.cache.keys, reference.cache.keys, strict=True):
            assert float(np.max(np.abs(mine[:, :, :common] - theirs[:, :, :common]))) < 1e-4
        passes += batched.steps
        tokens += len(batched.tokens)
    assert passes < tokens
    assert (drafted > 0) is draft


def test_the_opening_draft_on_the_prefill_changes_no_token_on_the_oracle(oracle: GemmaRuntime) -> None:
    """'<|tool_call>call:' fed with the prompt (chunked) and cut off when the model does not open a
    call (the random oracle never does; the scripted brain test shows the accepted case)."""
    tools = home_tools()
    for prompt in _prompts(oracle, 16):
        decoder = _decoder(oracle, tools, oracle.tokens.stop)
        logits, cache = oracle.prefill(oracle.empty_cache(), prompt)
        plain = decoder.generate(oracle, cache, logits, max_new_tokens=24, sampler=Sampler(Sampling()))
        decoder = _decoder(oracle, tools, oracle.tokens.stop)
        opened = decoder.prefill(oracle, oracle.empty_cache(), prompt, chunk=7)
        riding = decoder.generate(
            oracle,
            opened.cache,
            opened.rows[0],
            max_new_tokens=24,
            sampler=Sampler(Sampling()),
            opened=opened,
        )
        assert riding.tokens == plain.tokens
        assert riding.cache.length + len(riding.unfed) == plain.cache.length + len(plain.unfed)
        assert riding.steps <= plain.steps
    assert decoder.drafted > 0


# A pass gives the logits of one position past what was forced or drafted, so each branch of the
# grammar whose pick the draft does not guess costs a pass (oracle tokenizer, scripted choices):
#   kitchen light: prefill rows pick HassTurnOn (the drafted 'Hass' refused: one token); passes pick
#                  name (the guess '}' refused), kitchen, stop                                 -> 3
#   thermostat 21: prefill rows pick C (after the drafted 'Hass'); passes pick 2, 1, stop      -> 3
#   lamp to 30 %:  prefill rows pick L; passes pick b, 3, 0, ',', name, be, stop              -> 7
PASSES = {
    '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|>': 3,
    "<|tool_call>call:HassClimateSetTemperature{temperature:21}<tool_call|>": 3,
    '<|tool_call>call:HassLightSet{brightness:30,name:<|"|>bedroom lamp<|"|>}<tool_call|>': 7,
}


@pytest.mark.parametrize("lookup", [False, True])
@pytest.mark.parametrize(("call", "expected"), PASSES.items())
def test_forced_text_the_jump_cannot_fix_is_drafted(call: str, expected: int, lookup: bool) -> None:
    """'Hass' is forced text but not a stable token boundary ('HassTurnOn' is one token): the jump
    leaves it to the model and the draft (prefill and passes) carries it instead. Prompt lookup
    over the declarations only fills in where the grammar has no guess: never more passes."""
    from tokenizers import Tokenizer

    from assistant.brains.gemma.prompt import system_prefix
    from assistant.brains.gemma.speculative import PromptLookup

    tokenizer = Tokenizer.from_file(str(ORACLE / "tokenizer.json"))
    target = list(tokenizer.encode(call + "<|tool_response>", add_special_tokens=False).ids)
    model = ScriptedChoices(tokenizer, target, noise=1.0, prompt=1)
    decoder = _decoder(tokenizer, home_tools(), _stops(tokenizer))
    prompt = tokenizer.encode("\n", add_special_tokens=False).ids
    opened = decoder.prefill(model, KVCache((), (), 0), prompt)
    hass = tokenizer.token_to_id("Hass")
    assert hass in opened.draft
    declared = tokenizer.encode(system_prefix(home_tools()), add_special_tokens=False).ids
    generation = decoder.generate(
        model,
        opened.cache,
        opened.rows[0],
        max_new_tokens=64,
        sampler=Sampler(Sampling()),
        opened=opened,
        drafter=PromptLookup([*declared, *prompt]) if lookup else None,
    )
    assert list(generation.tokens) == target
    assert model.generated()[: len(target) - 1] == target[:-1]
    assert generation.steps == expected
