#!/usr/bin/env python3
"""Gemma brain loop on the tiny synthetic model: critical-path token counts and loop overhead.

1. Per utterance after the end of speech (a 2 s command, thinking off, prefix cached):
   tokens prefilled and sequential decode steps, with the templated reply (one model
   pass) and with the model's own spoken reply (second pass). These counts depend on
   the prompt format and the tokenizer, not on the model's size.
2. Loop overhead per generated token: GemmaRuntime.generate against a bare loop of the
   same two session.run calls (embed_tokens + decoder) with nothing else, same model,
   same steps, in the same run.
3. Sequential decoder passes after the end of speech for home commands with scripted
   choices (a stand-in decoder whose pick is the next token of the command's tokenised
   call): one pass per token (plain greedy) against grammar-constrained jump-forward
   decoding and jump-forward plus the grammar's verified draft (constrained.py).
4. Speculative decoding of a spoken answer: target passes, draft passes, accepted tokens
   and identity with plain greedy, with the target itself, a smaller scripted model and an
   unrelated one as the draft (tiny models sharing one tokenizer).
5. Work left after the end of speech, offline vs streamed (speech prefilled while the
   user speaks, stock graphs), per utterance length: encoder soft tokens, prefill
   tokens, sequential decode steps, and a Pi 5 estimate at LiteRT-LM's published E2B
   rates. "ideal" steps every 240 ms exactly as the audio arrives (the worker always
   free); "live" feeds 20 ms frames in real time to GemmaBrain.begin_stream.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.brains.gemma.brain import make_gemma_brain  # noqa: E402
from assistant.brains.gemma.files import load_model_files  # noqa: E402
from assistant.brains.gemma.runtime import GemmaRuntime, Sampler, Sampling  # noqa: E402
from assistant.config import GemmaSettings  # noqa: E402
from assistant.tools.base import Tool  # noqa: E402
from assistant.tools.registry import ToolRegistry  # noqa: E402
from assistant.tools.router import Router  # noqa: E402
from assistant.types import Utterance  # noqa: E402

CALL = '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|><|tool_response>'
RESPONSE = '<|tool_response>response:HassTurnOn{state:<|"|>on<|"|>}<tool_response|>'
REPLY = "The kitchen light is on now.<turn|>"


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_tiny_gemma", ROOT / "scripts" / "make_tiny_gemma.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["make_tiny_gemma"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _router() -> Router:
    registry = ToolRegistry()
    registry.add(
        Tool(
            name="HassTurnOn",
            description="Turns on a device or entity",
            parameters={
                "type": "object",
                "properties": {"name": {"type": "string", "enum": ["kitchen light", "bedroom lamp"]}},
                "required": ["name"],
            },
            handler=lambda name: {"state": "on"},
            reply="Turned on the {name}.",
            source="home",
        ),
        group="home",
    )
    return Router(registry)


# Published Raspberry Pi 5 rates for Gemma 4 E2B (reference gemma4.md section 7).
PI5_LITERT = (133.0, 7.6)  # LiteRT-LM CPU: prefill tok/s, decode tok/s
PI5_LLAMA_CPP = (28.0, 6.7)  # llama.cpp Q4_K_M pp512 / tg128


def counts(scripted: Path) -> None:
    rng = np.random.default_rng(0)
    router = _router()
    try:
        for seconds in (1.0, 2.0, 4.0):
            pcm = (rng.standard_normal(int(16000 * seconds)) * 2000).astype("<i2").tobytes()
            utterance = Utterance(pcm=pcm, start_s=0.0, end_s=seconds, source="bench")
            for templated, constrained in ((True, False), (True, True), (False, True)):
                settings = GemmaSettings(model_dir=scripted, variant="fp32", templated_reply=templated)
                brain = make_gemma_brain(settings)
                brain.constrained = constrained
                brain.warm(router)
                turn = brain.handle(utterance, router, threading.Event())
                t = turn.counts
                mode = "templated reply" if templated else "model reply"
                mode += ", constrained" if constrained else ", plain greedy"
                print(
                    f"{seconds:3.0f} s {mode:31s} audio_tokens={t['audio_tokens']:.0f} "
                    f"prefill_tokens={t['prefill_tokens']:.0f} decode_steps={t['decode_steps']:.0f} "
                    f"generated={t['generated_tokens']:.0f} prefix_tokens(cached)={t['prefix_tokens']:.0f} "
                    f"reply={turn.reply.text!r}"
                )
                if templated:
                    for label, (pp, tg) in (("LiteRT-LM", PI5_LITERT), ("llama.cpp", PI5_LLAMA_CPP)):
                        estimate = t["prefill_tokens"] / pp + t["decode_steps"] / tg
                        print(
                            f"      Pi 5 E2B at {label} rates ({pp:.0f} pp / {tg:.1f} tg tok/s): "
                            f"{estimate:.2f} s prefill+decode to the action (audio encoder not included)"
                        )
    finally:
        router.close()


def overhead(general: Path, steps: int = 200, repeats: int = 15) -> None:
    runtime = GemmaRuntime(load_model_files(general, "fp32", "fp32"))
    prefix = runtime.encode("<bos><|turn>system\nYou are a voice assistant.<turn|>\n<|turn>user\nhello")
    logits, cache = runtime.prefill(runtime.empty_cache(), prefix)
    never_stop = frozenset({-1})
    runtime.tokens = dataclasses.replace(runtime.tokens, stop=never_stop)
    sampler = Sampler(Sampling())
    embed, decoder = runtime.embed_session, runtime.decoder_session
    names = ["logits"] + [f"present.{i}.{kv}" for i in range(3) for kv in ("key", "value")]

    def ours() -> float:
        started = time.perf_counter()
        generation = runtime.generate(cache, logits, max_new_tokens=steps + 1, sampler=sampler)
        if generation.steps != steps:
            raise RuntimeError(f"expected {steps} steps, got {generation.steps}")
        return (time.perf_counter() - started) / steps

    def bare() -> float:
        past = list(cache.keys) + list(cache.values)
        kv = {f"past_key_values.{i}.key": past[i] for i in range(3)}
        kv |= {f"past_key_values.{i}.value": past[3 + i] for i in range(3)}
        token = int(np.argmax(logits))
        length = cache.length
        started = time.perf_counter()
        for _ in range(steps):
            emb, ple = embed.run(None, {"input_ids": np.array([[token]], dtype=np.int64)})
            out = decoder.run(
                names,
                {
                    "inputs_embeds": emb,
                    "per_layer_inputs": ple,
                    "attention_mask": np.ones((1, length + 1), dtype=np.int64),
                    "position_ids": np.array([[length]], dtype=np.int64),
                    **kv,
                },
            )
            length += 1
            token = int(np.argmax(out[0][0, -1]))
            for i in range(3):
                kv[f"past_key_values.{i}.key"] = out[1 + 2 * i]
                kv[f"past_key_values.{i}.value"] = out[2 + 2 * i]
        return (time.perf_counter() - started) / steps

    ours(), bare()  # warm-up
    results_ours, results_bare = [], []
    for _ in range(repeats):  # interleaved so background load hits both alike
        results_bare.append(bare())
        results_ours.append(ours())
    for label, pick in (("best", min), ("median", np.median)):
        b, o = float(pick(results_bare)), float(pick(results_ours))
        print(
            f"per generated token ({steps} steps, {label} of {repeats}): bare session.run {b * 1e6:.0f} us, "
            f"GemmaRuntime.generate {o * 1e6:.0f} us, overhead {100 * (o - b) / b:+.1f}% (goal <= 10%)"
        )


E2B_TEMPLATE = ROOT / "tests" / "data" / "gemma" / "templates" / "litert-lm_chat_template_e2b_e4b.jinja"


def after_speech(scripted: Path) -> None:
    from assistant.brains.gemma.stream import AudioPrefill

    rng = np.random.default_rng(1)
    router = _router()
    litert_pp, litert_tg = PI5_LITERT
    print("work after the end of speech (prefix cached; templated reply; tiny scripted model, E2B template)")
    print(
        f"{'utt':>4} {'mode':18} {'encoder tok':>11} {'prefill tok':>11} {'decode steps':>12} "
        f"{'early tok':>9} {'prefill, Gemma tok':>18}  Pi 5 E2B, LiteRT-LM {litert_pp:.0f}/{litert_tg} tok/s"
    )
    try:
        for seconds in (2.0, 4.0):
            pcm = (rng.standard_normal(int(16000 * seconds)) * 2000).astype("<i2").tobytes()
            utterance = Utterance(pcm=pcm, start_s=0.0, end_s=seconds, source="bench")
            settings = GemmaSettings(model_dir=scripted, variant="fp32")
            brain = make_gemma_brain(settings)
            brain.warm(router)
            offline = brain.handle(utterance, router, threading.Event())
            rows = []
            t = offline.counts
            rows.append(("offline", t["audio_tokens"], t["prefill_tokens"], t["decode_steps"], 0))
            # ideal: a step every 240 ms of audio, each done before the next audio arrives
            prefix = brain.prefix_cache
            if prefix is None:
                raise RuntimeError("warm() left no prefix")
            core = AudioPrefill(brain.runtime, prefix)
            for start in range(0, len(pcm), 640):
                core.add(pcm[start : start + 640])
                if core.pending_samples >= 3840:
                    core.step()
            tail = brain.runtime.encode("<turn|>\n<|turn>model\n")
            result = core.close(pcm, tail)
            if result is None:
                raise RuntimeError("no audio tokens")
            rows.append(
                (
                    "streamed, ideal",
                    result.encoder_tokens,
                    result.prefill_tokens,
                    t["decode_steps"],
                    result.early_tokens,
                )
            )
            stream = brain.begin_stream("default", router)
            for start in range(0, len(pcm), 640):
                stream.feed(pcm[start : start + 640])
                time.sleep(0.02)
            live = stream.finish(utterance, router, threading.Event())
            lt = live.counts
            rows.append(
                (
                    "streamed, live",
                    lt["audio_tokens"],
                    lt["prefill_tokens"],
                    lt["decode_steps"],
                    live.counts.get("stream_early_tokens", 0),
                )
            )
            # Gemma's own tokenizer spells the tail <turn|> \n <|turn> model \n: 5 tokens.
            real = 5 - len(tail)
            for mode, enc, pre, dec, early in rows:
                pre_real = pre + real
                estimate = pre_real / litert_pp + dec / litert_tg
                print(
                    f"{seconds:3.0f} s {mode:18} {enc:11.0f} {pre:11.0f} {dec:12.0f} {early:9.0f} "
                    f"{pre_real:18.0f}  {estimate:.2f} s = {pre_real / litert_pp * 1000:.0f} ms prefill"
                    f" + {dec / litert_tg:.2f} s decode"
                )
        print(
            "  encoder: the stock audio_encoder graph has no state, so the final pass re-encodes the whole\n"
            "  clip after the end of speech (a per-step encoder graph would leave ~2 tokens); no published\n"
            "  Pi 5 rate for the encoder, so it is not in the estimate. 'prefill tok' uses the tiny\n"
            "  tokenizer; 'prefill, Gemma tok' counts the tail <audio|><turn|>\\n<|turn>model\\n as the\n"
            "  real tokenizer does (6 tokens); the Pi 5 estimate uses that column."
        )
    finally:
        router.close()


# Home commands as the model writes them (the stop <|tool_response> ends the round unfed).
COMMANDS = {
    "turn on the kitchen light": '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|>',
    "set the thermostat to 21": "<|tool_call>call:HassClimateSetTemperature{temperature:21}<tool_call|>",
    "dim the lamp to 30 %": (
        '<|tool_call>call:HassLightSet{brightness:30,name:<|"|>bedroom lamp<|"|>}<tool_call|>'
    ),
}
SPOKEN = "It is twenty one degrees in the living room and the kitchen light is on, the lamp is off.<turn|>"


def home_tools() -> list[Tool]:
    """HA-like intents over a small inventory (the enums a live home would declare)."""
    entities = ["kitchen light", "bedroom lamp", "living room lamp", "thermostat", "kitchen fan"]
    name = {"type": "string", "enum": entities}
    area = {"type": "string", "enum": ["kitchen", "bedroom", "living room"]}
    domain = {"type": "string", "enum": ["light", "fan", "climate"]}

    def tool(tool_name: str, properties: dict[str, object], required: list[str] | None = None) -> Tool:
        schema = {"type": "object", "properties": properties, "required": required or []}
        return Tool(name=tool_name, description=tool_name, parameters=schema, handler=lambda **_: {})

    return [
        tool("HassTurnOn", {"name": name, "area": area, "domain": domain}),
        tool("HassTurnOff", {"name": name, "area": area, "domain": domain}),
        tool(
            "HassLightSet",
            {"name": name, "area": area, "brightness": {"type": "integer"}, "color": {"type": "string"}},
        ),
        tool(
            "HassClimateSetTemperature",
            {"name": name, "area": area, "temperature": {"type": "number"}},
            ["temperature"],
        ),
        tool("HassStartTimer", {"minutes": {"type": "integer"}, "name": {"type": "string"}}, ["minutes"]),
        tool("HassGetWeather", {}),
    ]


def passes(general: Path) -> None:
    from tokenizers import Tokenizer

    from assistant.brains.gemma.constrained import CallGrammar, ConstrainedDecoder, vocabulary_of
    from assistant.brains.gemma.runtime import KVCache

    sys.path.insert(0, str(ROOT / "tests" / "gemma"))
    from gemma_helpers import ScriptedChoices

    tokenizers = {
        "oracle tokenizer": ROOT / "tests" / "data" / "gemma" / "oracle" / "tokenizer.json",
        "tiny tokenizer": general / "tokenizer.json",
    }
    _, tg = PI5_LITERT
    print(
        "sequential decoder passes after the end of speech (prefix and audio prefilled; scripted choices;"
        " the stop token ends the round unfed)"
    )
    print(
        f"  {'command':28} {'tokenizer':17} {'tokens':>6} {'before':>6} {'jump-fwd':>8} {'+draft':>6} "
        f"{'tok/pass':>8} {'draft ok':>8}  Pi 5 decode E2B {tg} tok/s: before -> after"
    )
    for label, path in tokenizers.items():
        tokenizer = Tokenizer.from_file(str(path))
        stops = {int(tokenizer.token_to_id(t)) for t in ("<eos>", "<turn|>", "<|tool_response>")}
        vocabulary = vocabulary_of(tokenizer)
        for command, call in [*COMMANDS.items(), ("(a 30-token spoken answer)", None)]:
            text = call + "<|tool_response>" if call else SPOKEN
            target = list(tokenizer.encode(text, add_special_tokens=False).ids)
            if call is None:
                target = [*target[:29], int(tokenizer.token_to_id("<turn|>"))]
            counts = []
            rate = ""
            for draft in (False, True):
                model = ScriptedChoices(tokenizer, target, noise=1.0, prompt=1)
                decoder = ConstrainedDecoder(CallGrammar(home_tools()), vocabulary, stops)
                # The prompt's last id ('\n' after '<|turn>model'); with draft, the opening rides on it.
                prompt = tokenizer.encode("\n", add_special_tokens=False).ids[-1:]
                opened = decoder.prefill(model, KVCache((), (), 0), prompt) if draft else None
                logits, cache = model.prefill(KVCache((), (), 0), prompt) if not draft else (None, None)
                generation = decoder.generate(
                    model,
                    opened.cache if opened else cache,
                    opened.rows[0] if opened else logits,
                    max_new_tokens=256,
                    sampler=Sampler(Sampling()),
                    draft=draft,
                    opened=opened,
                )
                if list(generation.tokens) != target or model.generated()[: len(target) - 1] != target[:-1]:
                    raise RuntimeError(f"{command}: constrained tokens differ from the tokenizer's")
                counts.append(generation.steps)
                if draft and decoder.drafted:
                    rate = f"{decoder.accepted}/{decoder.drafted}"
            before = len(target) - 1
            after = counts[1]
            per = (len(target) - 1) / max(1, after)
            print(
                f"  {command:28} {label:17} {len(target):6} {before:6} {counts[0]:8} {after:6} {per:8.1f} "
                f"{rate:>8}  {before / tg:.2f} s -> {after / tg:.2f} s"
                f" (E4B at 3.2 tok/s: {before / 3.2:.2f} s -> {after / 3.2:.2f} s)"
            )
    print(
        "  before = one decoder pass per generated token (plain greedy). jump-fwd = the model picks\n"
        "  where the grammar of the live declarations allows several tokens; the forced run after each\n"
        "  pick is fed with it in one pass. +draft = also the grammar's guess (closing tokens, required\n"
        "  keys) fed in that same pass, and '<|tool_call>call:' riding on the prompt's prefill; drafted\n"
        "  tokens are kept only where the model's own masked greedy pick agrees (draft ok = kept/fed).\n"
        "  Passes are sequential decoder runs after the prefill; the first pick comes from the prefill's\n"
        "  logits. A spoken answer is free text: nothing is forced (a draft model helps there: next\n"
        "  section). Real Gemma's tokenizer writes every digit as its own token: '21' and '30' cost one\n"
        "  pick per digit there too."
    )


def speculative(tmp: Path, gen) -> None:  # type: ignore[no-untyped-def]
    """Target passes and accepted-token rate for a spoken answer with a draft model (tiny models)."""
    from assistant.brains.gemma.speculative import SpeculativeDecoder

    small = gen.TinyDims(
        hidden=48, layers=4, kv_shared=2, layer_types=("sliding_attention", "full_attention") * 2
    )
    template = E2B_TEMPLATE.read_text(encoding="utf-8")
    script = [("<|turn>model\n", False), (SPOKEN, True)]
    made = {
        "target": gen.make_tiny_gemma(
            tmp / "s_target", variants=("fp32",), script=script, seed=3, chat_template=template
        ),
        "smaller scripted": gen.make_tiny_gemma(
            tmp / "s_small", variants=("fp32",), script=script, seed=4, dims=small, chat_template=template
        ),
        "unrelated": gen.make_tiny_gemma(tmp / "s_unrelated", variants=("fp32",), seed=9, dims=small),
    }
    runtimes = {name: GemmaRuntime(load_model_files(path, "fp32", "fp32")) for name, path in made.items()}
    target = runtimes["target"]
    ids = target.encode("<bos><|turn>user\nhow warm is it<turn|>\n<|turn>model\n")
    logits, cache = target.prefill(target.empty_cache(), ids)
    plain = target.generate(cache, logits, max_new_tokens=64, sampler=Sampler(Sampling()))
    e4b, e2b = 3.2, PI5_LITERT[1]  # published Pi 5 decode rates, tok/s
    print(
        f"speculative decoding, a {len(plain.tokens)}-token spoken answer (tiny models sharing one tokenizer;"
        " greedy; target and draft passes are both sequential)"
    )
    print(
        f"  {'draft':18} {'k':>2} {'target passes':>13} {'draft passes':>12} {'accepted':>9} {'identical':>9}"
        f"  Pi 5, target E4B {e4b} + draft E2B {e2b} tok/s"
    )
    print(f"  {'(none)':18} {'-':>2} {plain.steps:13} {0:12} {'-':>9} {'-':>9}  {plain.steps / e4b:.1f} s")
    for name in ("target", "smaller scripted", "unrelated"):
        for k in (2, 4, 8):
            decoder = SpeculativeDecoder(runtimes[name], k=k)
            _, draft_cache = decoder.prefill(ids)
            generation = decoder.generate(target, cache, logits, draft_cache, max_new_tokens=64)
            same = "yes" if generation.tokens == plain.tokens else "NO"
            st = decoder.stats
            estimate = generation.steps / e4b + st.draft_passes / e2b
            print(
                f"  {name:18} {k:2} {generation.steps:13} {st.draft_passes:12} "
                f"{st.accepted:4}/{st.drafted:<4} {same:>9}  {estimate:.1f} s"
            )
    print(
        "  Acceptance on real weights cannot be measured without them: the rows are the bounds (a draft\n"
        "  that agrees: k+1 tokens per target pass; an unrelated one: one token per pass plus the draft's\n"
        "  passes, slower than none). The estimate counts every pass at the published decode rates (a\n"
        "  verify pass of k+1 tokens is taken as one decode step: GUESS, memory-bound). Memory: E2B 1.5 GB\n"
        "  + E4B 3.1 GB RSS (published) fit a Pi 5 8 GB together. Not wired into the brain (no\n"
        "  brain.gemma.draft_model_dir setting yet): off."
    )


def main() -> int:
    gen = _generator()
    with tempfile.TemporaryDirectory() as tmp:
        general = gen.make_tiny_gemma(Path(tmp) / "general", variants=("fp32",))
        e2b = gen.make_tiny_gemma(
            Path(tmp) / "e2b",
            variants=("fp32",),
            script=[("<|turn>model\n", False), (CALL, True), (RESPONSE, False), (REPLY, True)],
            chat_template=E2B_TEMPLATE.read_text(encoding="utf-8"),
        )
        counts(e2b)
        passes(general)
        speculative(Path(tmp), gen)
        overhead(general)
        after_speech(e2b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
