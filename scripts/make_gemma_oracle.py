#!/usr/bin/env python3
"""Build the real-architecture Gemma 4 oracle fixture (tests/data/gemma/oracle/).

A tiny, randomly initialised ``Gemma4ForConditionalGeneration`` is built from
transformers' own modeling code: sliding and full attention layers with two head dims
(16 and 32, proportional RoPE on the full layers), GQA, a sliding window shorter than
the prompts, KV sharing (the last two layers reuse layers 3 and 2), per-layer inputs,
a double-wide MLP on the shared layers, and the USM conformer audio tower (SSCP,
chunked local attention with relative positions, causal light conv, clippable linears
with finite bounds) with the multimodal embedder. It is exported in the onnx-community
layout the runtime drives (``onnx/embed_tokens.onnx``, ``onnx/audio_encoder.onnx``,
``onnx/decoder_model_merged.onnx`` + config.json written by transformers,
generation_config.json, processor_config.json, tokenizer.json), and transformers'
greedy tokens and per-step logits for a few prompts (text only, with audio, a tool
round) are stored in ``oracle.json`` for tests/gemma/test_gemma_oracle.py, which runs
without torch.

The export wraps transformers' modules; only two functions are replaced while
exporting, with the same arithmetic in ops the TorchScript exporter handles: the audio
encoder's attention mask (transformers builds it with vmap) and its block-context
``unfold`` (a gather). The decoder wrapper hands transformers a list-backed cache
(``present = concat(past, new)``, full length for every slot as the onnx-community
graphs return it) and the per-type masks (causal; causal and within the sliding window)
as precomputed additive masks. The oracle numbers come from the *unpatched* model.

Special tokens sit at ids that are not Gemma's real ones (a seeded permutation of the
tiny tokenizer), so nothing in the runtime can work by accident of a hard-coded id.

Needs torch and transformers (the ``oracle`` extra, in a separate virtualenv):

    python3.11 -m venv /tmp/oracle-venv
    /tmp/oracle-venv/bin/pip install torch==2.13.0 transformers==5.24.0 onnx onnxruntime tokenizers numpy
    /tmp/oracle-venv/bin/python scripts/make_gemma_oracle.py tests/data/gemma/oracle

This script rewrites the folder; the per-step audio encoder graph of the same weights
(``onnx/audio_encoder_step.onnx``, tests/gemma/test_gemma_encoder_step.py) is then made with

    /tmp/oracle-venv/bin/python scripts/convert_audio_encoder.py tests/data/gemma/oracle --oracle
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F
from transformers import Gemma4Config, Gemma4ForConditionalGeneration
from transformers.models.gemma4 import modeling_gemma4 as mg
from transformers.models.gemma4.feature_extraction_gemma4 import Gemma4AudioFeatureExtractor

ROOT = Path(__file__).resolve().parents[1]
SEED = 1234
VOCAB_TARGET = 384
SLIDING_WINDOW = 24
TEMPLATE = ROOT / "tests" / "data" / "gemma" / "templates" / "litert-lm_chat_template_e2b_e4b.jinja"

SYSTEM = "<bos><|turn>system\nYou are a voice assistant for a home. Answer briefly."
DECLARATION = (
    '<|tool>declaration:HassTurnOn{description:<|"|>Turns on a device or entity<|"|>,'
    'parameters:{properties:{name:{description:<|"|>Name of a device or entity<|"|>,'
    'type:<|"|>STRING<|"|>}},type:<|"|>OBJECT<|"|>}}<tool|>'
)
PREFIX = SYSTEM + DECLARATION + "<turn|>\n<|turn>user\n"
TAIL = "<turn|>\n<|turn>model\n"
RESPONSE = '<|tool_response>response:HassTurnOn{state:<|"|>on<|"|>}<tool_response|>'


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_tiny_gemma", ROOT / "scripts" / "make_tiny_gemma.py")
    if spec is None or spec.loader is None:
        raise ImportError("scripts/make_tiny_gemma.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_tiny_gemma"] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Tokenizer with special tokens away from Gemma's real ids


def permuted_tokenizer(gen: Any, rng: np.random.Generator) -> Tokenizer:
    """The tiny BPE with every id permuted; no special token keeps its real Gemma id."""
    base = gen.build_tokenizer(VOCAB_TARGET)
    data = json.loads(base.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    size = len(vocab)
    real = dict(gen.LOW_SPECIALS)
    while True:
        perm = rng.permutation(size)
        mapping = {token: int(perm[i]) for token, i in vocab.items()}
        if all(mapping[t] != i for t, i in real.items()) and all(
            mapping[t] < 255_999 for t in gen.HIGH_SPECIALS
        ):
            break
    data["model"]["vocab"] = dict(sorted(mapping.items(), key=lambda kv: kv[1]))
    for entry in data["added_tokens"]:
        entry["id"] = mapping[entry["content"]]
    data["added_tokens"].sort(key=lambda e: e["id"])
    return Tokenizer.from_str(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# The model


def build_config(tok: Tokenizer) -> Gemma4Config:
    ids = {s: tok.token_to_id(s) for s in ("<pad>", "<eos>", "<bos>", "<turn|>")}
    vocab = tok.get_vocab_size()
    layer_types = ["sliding_attention", "sliding_attention", "full_attention"] * 2
    text = {
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "global_head_dim": 32,
        "hidden_size_per_layer_input": 8,
        "num_kv_shared_layers": 2,
        "use_double_wide_mlp": True,
        "layer_types": layer_types,
        "sliding_window": SLIDING_WINDOW,
        "final_logit_softcapping": 30.0,
        "max_position_embeddings": 4096,
        "pad_token_id": ids["<pad>"],
        "eos_token_id": [ids["<eos>"], ids["<turn|>"]],
        "bos_token_id": ids["<bos>"],
    }
    audio = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "subsampling_conv_channels": [128, 4],  # the first must stay 128: SSCP flattens (128//4) x C
        "output_proj_dims": 48,
    }
    config = Gemma4Config(
        text_config=text,
        audio_config=audio,
        vision_config=None,
        boi_token_id=tok.token_to_id("<|image>"),
        eoi_token_id=tok.token_to_id("<image|>"),
        image_token_id=tok.token_to_id("<|image|>"),
        video_token_id=tok.token_to_id("<|video|>"),
        boa_token_id=tok.token_to_id("<|audio>"),
        eoa_token_index=tok.token_to_id("<audio|>"),
        audio_token_id=tok.token_to_id("<|audio|>"),
    )
    config.eoa_token_id = tok.token_to_id("<audio|>")
    config.eos_token_id = [ids["<eos>"], ids["<turn|>"]]
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.audio_config._attn_implementation = "eager"
    return config


@torch.no_grad()
def randomise(model: nn.Module, seed: int) -> None:
    """Weights with signal: linears ~N(0, 1/fan_in), norms 1 +- 0.1, finite clip bounds that bind."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if param.ndim >= 2:
            fan_in = int(np.prod(param.shape[1:]))
            std = 0.15 if "embed_tokens" in name else fan_in**-0.5
            param.copy_(torch.randn(param.shape, generator=gen) * std)
        elif name.endswith("per_dim_scale"):
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
        elif "bias" in name:
            param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
        else:
            param.copy_(1.0 + torch.randn(param.shape, generator=gen) * 0.1)
    for name, buf in model.named_buffers():
        if name.endswith("layer_scalar"):
            buf.copy_(0.7 + 0.6 * torch.rand(buf.shape, generator=gen))
        elif name.endswith(("input_max", "output_max")):
            buf.fill_(2.5)
        elif name.endswith(("input_min", "output_min")):
            buf.fill_(-2.5)


# ---------------------------------------------------------------------------------------------
# Export wrappers


class EmbedTokens(nn.Module):
    def __init__(self, model: Gemma4ForConditionalGeneration) -> None:
        super().__init__()
        self.lm = model.model.language_model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lm.embed_tokens(input_ids), self.lm.get_per_layer_inputs(input_ids)


def _audio_forward(self: Any, input_features: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
    """Gemma4AudioModel.forward with the vmap-built mask written in plain ops (same values)."""
    hidden_states, output_mask = self.subsample_conv_projection(input_features, attention_mask)
    position_embeddings = self.rel_pos_enc(hidden_states)
    seq = torch.arange(hidden_states.shape[1], device=hidden_states.device)
    dist = seq[:, None] - seq[None, :]
    left, right = self.config.attention_context_left - 1, self.config.attention_context_right
    allowed = ((dist >= 0) & (dist < left)) | ((dist < 0) & (-dist < right))
    allowed = allowed[None, None] & output_mask[:, None, None, :]
    min_value = torch.finfo(hidden_states.dtype).min
    mask = torch.where(allowed, torch.tensor(0.0), torch.tensor(min_value))
    mask = self._convert_4d_mask_to_blocked_5d(mask)
    for layer in self.layers[: self.config.num_hidden_layers]:
        hidden_states = layer(hidden_states, attention_mask=mask, position_embeddings=position_embeddings)
    return mg.Gemma4AudioModelOutput(
        last_hidden_state=self.output_proj(hidden_states), attention_mask=output_mask
    )


def _extract_block_context(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    """Gemma4AudioAttention._extract_block_context with ``unfold`` written as a gather."""
    hidden_states = F.pad(
        hidden_states, (0, 0, 0, 0, self.max_past_horizon, self.max_future_horizon + self.chunk_size - 1)
    )
    padded = hidden_states.shape[1]
    blocks = (padded - self.context_size) // self.chunk_size + 1
    index = torch.arange(blocks)[:, None] * self.chunk_size + torch.arange(self.context_size)[None, :]
    return hidden_states[:, index]  # [batch, blocks, context, heads, dim]


class AudioEncoder(nn.Module):
    def __init__(self, model: Gemma4ForConditionalGeneration) -> None:
        super().__init__()
        self.model = model.model

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> torch.Tensor:
        out = self.model.get_audio_features(input_features, input_features_mask, return_dict=True)
        return out.pooler_output[out.attention_mask]  # [tokens, hidden]: padding stripped as HF does


class ListCache:
    """What the attention layers ask of a cache: ``update`` returns concat(past, new)."""

    is_compileable = False

    def __init__(self, past: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.past = past
        self.present: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(
        self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> Any:
        past_k, past_v = self.past[layer_idx]
        k, v = torch.cat([past_k, key], dim=2), torch.cat([past_v, value], dim=2)
        self.present[layer_idx] = (k, v)
        return k, v


class Decoder(nn.Module):
    def __init__(self, model: Gemma4ForConditionalGeneration, slots: int) -> None:
        super().__init__()
        self.lm = model.model.language_model
        self.head = model.lm_head
        self.slots = slots
        self.window = model.config.text_config.sliding_window
        self.cap = model.config.text_config.final_logit_softcapping

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        per_layer_inputs: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        cache = ListCache([(past[2 * i], past[2 * i + 1]) for i in range(self.slots)])
        total = attention_mask.shape[1]
        kpos = torch.arange(total)[None, None, None, :]
        qpos = position_ids[:, None, :, None]
        valid = attention_mask[:, None, None, :].bool()
        causal = (kpos <= qpos) & valid
        sliding = causal & (qpos - kpos < self.window)
        low = torch.finfo(inputs_embeds.dtype).min
        masks = {
            "full_attention": torch.where(causal, torch.tensor(0.0), torch.tensor(low)),
            "sliding_attention": torch.where(sliding, torch.tensor(0.0), torch.tensor(low)),
        }
        out = self.lm(
            inputs_embeds=inputs_embeds,
            per_layer_inputs=per_layer_inputs,
            attention_mask=masks,
            position_ids=position_ids,
            cache=cache,
            use_cache=True,
        )
        logits = self.head(out.last_hidden_state)
        logits = torch.tanh(logits / self.cap) * self.cap
        presents = [t for i in range(self.slots) for t in cache.present[i]]
        return (logits, *presents)


def export(model: Gemma4ForConditionalGeneration, dest: Path) -> None:
    text = model.config.text_config
    slots = text.num_hidden_layers - text.num_kv_shared_layers
    onnx_dir = dest / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[3, 5, 7, 9]], dtype=torch.long)
    torch.onnx.export(
        EmbedTokens(model),
        (ids,),
        str(onnx_dir / "embed_tokens.onnx"),
        input_names=["input_ids"],
        output_names=["inputs_embeds", "per_layer_inputs"],
        dynamic_axes={
            "input_ids": {0: "batch_size", 1: "sequence_length"},
            "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
            "per_layer_inputs": {0: "batch_size", 1: "sequence_length"},
        },
        opset_version=17,
        dynamo=False,
    )
    frames = 203
    feats = torch.randn(1, frames, 128)
    fmask = torch.ones(1, frames, dtype=torch.bool)
    fmask[0, -7:] = False
    saved = (mg.Gemma4AudioModel.forward, mg.Gemma4AudioAttention._extract_block_context)
    mg.Gemma4AudioModel.forward = _audio_forward  # type: ignore[method-assign]
    mg.Gemma4AudioAttention._extract_block_context = _extract_block_context  # type: ignore[method-assign]
    try:
        torch.onnx.export(
            AudioEncoder(model),
            (feats, fmask),
            str(onnx_dir / "audio_encoder.onnx"),
            input_names=["input_features", "input_features_mask"],
            output_names=["audio_features"],
            dynamic_axes={
                "input_features": {0: "batch_size", 1: "num_frames"},
                "input_features_mask": {0: "batch_size", 1: "num_frames"},
                "audio_features": {0: "num_audio_tokens"},
            },
            opset_version=17,
            dynamo=False,
        )
    finally:
        mg.Gemma4AudioModel.forward, mg.Gemma4AudioAttention._extract_block_context = saved  # type: ignore[method-assign]
    past_len, seq = 5, 3
    names_in = ["inputs_embeds", "per_layer_inputs", "attention_mask", "position_ids"]
    names_out = ["logits"]
    past: list[torch.Tensor] = []
    dyn: dict[str, dict[int, str]] = {
        "inputs_embeds": {0: "batch_size", 1: "sequence_length"},
        "per_layer_inputs": {0: "batch_size", 1: "sequence_length"},
        "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
        "position_ids": {0: "batch_size", 1: "sequence_length"},
        "logits": {0: "batch_size", 1: "sequence_length"},
    }
    for slot in range(slots):
        hd = text.per_layer_config[slot].head_dim
        kvh = text.per_layer_config[slot].num_key_value_heads
        for kind in ("key", "value"):
            past.append(torch.randn(1, kvh, past_len, hd))
            names_in.append(f"past_key_values.{slot}.{kind}")
            names_out.append(f"present.{slot}.{kind}")
            dyn[names_in[-1]] = {0: "batch_size", 2: "past_sequence_length"}
            dyn[names_out[-1]] = {0: "batch_size", 2: "total_sequence_length"}
    args = (
        torch.randn(1, seq, text.hidden_size),
        torch.randn(1, seq, text.num_hidden_layers, text.hidden_size_per_layer_input),
        torch.ones(1, past_len + seq, dtype=torch.long),
        torch.arange(past_len, past_len + seq)[None],
        *past,
    )
    torch.onnx.export(
        Decoder(model, slots),
        args,
        str(onnx_dir / "decoder_model_merged.onnx"),
        input_names=names_in,
        output_names=names_out,
        dynamic_axes=dyn,
        opset_version=17,
        dynamo=False,
    )


# ---------------------------------------------------------------------------------------------
# Oracle runs


def clip(seconds: float, seed: int) -> np.ndarray:
    """A deterministic 'speech-like' int16 clip: noise bursts under a slow envelope."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    t = np.arange(n) / 16000.0
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    tone = np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 2 * t)) * t)
    wave = (0.3 * tone + 0.2 * rng.standard_normal(n)) * envelope
    return np.clip(wave * 12000, -32768, 32767).astype("<i2")


@torch.no_grad()
def greedy(
    model: Gemma4ForConditionalGeneration,
    ids: list[int],
    steps: int,
    audio: dict[str, torch.Tensor] | None,
) -> tuple[list[int], list[list[float]], list[float]]:
    """transformers' own greedy generate; tokens, per-step logits, and top-1 minus top-2 margins."""
    inputs: dict[str, Any] = {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
    }
    if audio is not None:
        inputs.update(audio)
    out = model.generate(
        **inputs,
        do_sample=False,
        max_new_tokens=steps,
        min_new_tokens=steps,
        output_logits=True,
        return_dict_in_generate=True,
        eos_token_id=None,
        pad_token_id=model.config.text_config.pad_token_id,
    )
    tokens = out.sequences[0, len(ids) :].tolist()
    logits = [step[0].float().numpy() for step in out.logits]
    margins = [float(np.diff(np.sort(row)[-2:])[0]) for row in logits]
    # Cross-check generate against a plain full forward (no cache) on the whole sequence.
    full = model(
        input_ids=torch.tensor([ids + tokens[:-1]]),
        attention_mask=torch.ones(1, len(ids) + len(tokens) - 1, dtype=torch.long),
        **(audio or {}),
    ).logits[0, len(ids) - 1 :]
    if not torch.equal(full.argmax(-1), torch.tensor(tokens)):
        raise RuntimeError("generate and a full forward disagree")
    return tokens, [[round(float(v), 6) for v in row] for row in logits], margins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    dest: Path = args.dest
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    gen = _generator()
    tok = permuted_tokenizer(gen, rng)
    if dest.exists():
        shutil.rmtree(dest)
    dims = gen.TinyDims(vocab_target=VOCAB_TARGET)
    gen.write_metadata(dest, dims, tok, TEMPLATE.read_text(encoding="utf-8"))
    config = build_config(tok)
    model = Gemma4ForConditionalGeneration(config).eval()
    randomise(model, SEED)
    config.save_pretrained(dest)
    stops = [tok.token_to_id(s) for s in ("<eos>", "<turn|>", "<|tool_response>")]
    (dest / "generation_config.json").write_text(
        json.dumps(
            {
                "bos_token_id": tok.token_to_id("<bos>"),
                "pad_token_id": tok.token_to_id("<pad>"),
                "eos_token_id": stops,
                "do_sample": False,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    export(model, dest)
    fe = Gemma4AudioFeatureExtractor()

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    audio_id = tok.token_to_id("<|audio|>")
    cases: list[dict[str, Any]] = []
    prefix = encode(PREFIX)
    text_ids = prefix + encode("What time is it in the kitchen?") + encode(TAIL)
    toks, logits, margins = greedy(model, text_ids, args.steps, None)
    cases.append(
        {
            "name": "text",
            "ids": text_ids,
            "prefix_len": len(prefix),
            "tokens": toks,
            "logits": logits,
            "min_margin": min(margins),
        }
    )
    for name, seconds, seed in (("audio_2s", 2.0, 1), ("audio_3s", 3.13, 2)):
        pcm = clip(seconds, seed)
        (dest / f"{name}.pcm").write_bytes(pcm.tobytes())
        feats = fe([pcm.astype(np.float32) / 32768.0], sampling_rate=16000, return_tensors="pt")
        audio = {
            "input_features": feats["input_features"],
            "input_features_mask": feats["input_features_mask"],
        }
        count = int(
            model.model.get_audio_features(
                audio["input_features"], audio["input_features_mask"], return_dict=True
            ).attention_mask.sum()
        )
        ids = prefix + encode("<|audio>") + [audio_id] * count + encode("<audio|>") + encode(TAIL)
        toks, logits, margins = greedy(model, ids, args.steps, audio)
        cases.append(
            {
                "name": name,
                "ids": ids,
                "prefix_len": len(prefix),
                "audio": f"{name}.pcm",
                "audio_tokens": count,
                "tokens": toks,
                "logits": logits,
                "min_margin": min(margins),
            }
        )
        if name == "audio_2s":
            # A tool round: the first round's tokens stand for a call, then the response block.
            first = toks[: args.steps // 2]
            round_ids = ids + first + encode(RESPONSE)
            toks2, logits2, margins2 = greedy(model, round_ids, args.steps, audio)
            cases.append(
                {
                    "name": "tool_round",
                    "ids": round_ids,
                    "prefix_len": len(prefix),
                    "audio": f"{name}.pcm",
                    "audio_tokens": count,
                    "first_round": first,
                    "first_round_len": len(ids),
                    "response": encode(RESPONSE),
                    "tokens": toks2,
                    "logits": logits2,
                    "min_margin": min(margins2),
                }
            )
    import transformers  # noqa: PLC0415

    oracle = {
        "_note": "transformers' greedy tokens and logits for the tiny random Gemma 4 in this folder; "
        "generated by scripts/make_gemma_oracle.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": SEED,
        "sliding_window": SLIDING_WINDOW,
        "stop_ids": stops,
        "cases": cases,
    }
    (dest / "oracle.json").write_text(json.dumps(oracle) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    for case in cases:
        print(
            f"{case['name']}: {len(case['ids'])} prompt tokens, tokens {case['tokens']}, "
            f"min margin {case['min_margin']:.4f}"
        )
    print(f"wrote {dest} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
