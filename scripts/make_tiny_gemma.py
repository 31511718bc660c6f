#!/usr/bin/env python3
"""Generate a tiny synthetic Gemma 4 model set with the onnx-community export's I/O contract.

The graphs have exactly the export's input/output names, dtypes and ranks
(embed_tokens -> inputs_embeds + per_layer_inputs; audio_encoder with
input_features + input_features_mask; decoder_model_merged with attention_mask,
position_ids, per_layer_inputs and KV slots of two head dims, sliding vs full),
but a few hundred kilobytes of random weights. A real Gemma 4 tokenizer has 262 144
tokens; the tiny byte-level BPE tokenizer holds every Gemma 4 special-token string,
the low ones (<eos> 1, <|tool_call> 48, <turn|> 106 ...) at their real ids and the
multimodal ones (<|audio|> ...) at the top of the small vocabulary, declared in
config.json exactly where the real export declares them.

``--script`` builds a *scripted* decoder whose weights make greedy decoding emit
chosen text (a tool call, then a reply after the tool response): next-token
logits are a linear function of the current and the previous token, the previous
one fetched by a position-based attention head in KV slot 0, fitted by least
squares at build time.

Usage: make_tiny_gemma.py DEST [--variants fp32,q4] [--audio-variants fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SUFFIX = {"fp32": "", "fp16": "_fp16", "q4": "_q4", "q4f16": "_q4f16", "quantized": "_quantized"}
HALF_VARIANTS = {"fp16", "q4f16"}

# Gemma 4 special tokens that fit below a small vocabulary, at their real ids.
LOW_SPECIALS = {
    "<pad>": 0,
    "<eos>": 1,
    "<bos>": 2,
    "<unk>": 3,
    "<mask>": 4,
    "<|tool>": 46,
    "<tool|>": 47,
    "<|tool_call>": 48,
    "<tool_call|>": 49,
    "<|tool_response>": 50,
    "<tool_response|>": 51,
    '<|"|>': 52,
    "<|think|>": 98,
    "<|channel>": 100,
    "<channel|>": 101,
    "<|turn>": 105,
    "<turn|>": 106,
}
# Real ids 255999 ... 258884; here the last seven ids of the vocabulary, same order.
HIGH_SPECIALS = ("<|image>", "<|audio>", "<|image|>", "<|audio|>", "<image|>", "<audio|>", "<|video|>")

CORPUS = """
<|turn>system
You are a voice assistant for a home. Answer briefly.
<|turn>user
<|turn>model
<|channel>thought
call:HassTurnOn{name:kitchen light} call:HassTurnOff{area:kitchen,domain:light}
call:HassLightSet{brightness:50,name:bedroom lamp} call:start_timer{minutes:5}
response:HassTurnOn{status:ok} response:start_timer{minutes:5,label:tea}
declaration:HassTurnOn{description:Turns on a device or entity,parameters:{properties:{area:{
description:Name of an area,type:STRING},name:{description:Name of a device or entity,type:STRING,
enum:[kitchen light,bedroom lamp,living room fan,front door]}},type:OBJECT}}
Turned on the kitchen light. Turned off the lights. The timer is set for five minutes.
It is 21 degrees in the kitchen. What time is it? Set a timer for ten minutes.
Sorry, I did not catch that. Done. OK. Yes. No. Transcribe the following speech segment.
"""


@dataclass(frozen=True)
class TinyDims:
    """Shapes of the tiny model (the real E2B values in comments)."""

    hidden: int = 64  # 1536
    per_layer: int = 8  # hidden_size_per_layer_input 256
    layers: int = 6  # 35
    kv_shared: int = 3  # 20 -> 3 KV slots here (15 in E2B)
    kv_heads: int = 2  # 1 (E4B: 2)
    head_dim: int = 16  # 256
    global_head_dim: int = 32  # 512
    layer_types: tuple[str, ...] = field(
        default=("sliding_attention", "sliding_attention", "full_attention") * 2
    )
    mels: int = 128
    vocab_target: int = 448

    @property
    def slots(self) -> int:
        return self.layers - self.kv_shared

    def slot_dim(self, slot: int) -> int:
        return self.global_head_dim if self.layer_types[slot] == "full_attention" else self.head_dim


# ---------------------------------------------------------------------------------------------
# Tokenizer


def build_tokenizer(vocab_target: int) -> Tokenizer:
    """A byte-level BPE with Gemma 4's special strings; low ones at real ids, multimodal ones last."""
    specials = list(LOW_SPECIALS) + list(HIGH_SPECIALS)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    ordinary = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in specials]
    size = len(ordinary) + len(specials)
    assignment = dict(LOW_SPECIALS)
    for offset, token in enumerate(HIGH_SPECIALS):
        assignment[token] = size - len(HIGH_SPECIALS) + offset
    taken = set(assignment.values())
    free = (i for i in range(size) if i not in taken)
    for token in ordinary:
        assignment[token] = next(free)
    data["model"]["vocab"] = dict(sorted(assignment.items(), key=lambda kv: kv[1]))
    for entry in data["added_tokens"]:
        entry["id"] = assignment[entry["content"]]
    data["added_tokens"].sort(key=lambda e: e["id"])
    return Tokenizer.from_str(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# Graph helpers


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: object) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _io(name: str, elem: int, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _finish(
    g: _Graph,
    inputs: list[tuple[str, int, list[int | str]]],
    outputs: list[tuple[str, str, int, list[int | str]]],
    *,
    half: bool,
    path: Path,
    name: str,
) -> None:
    """Wire graph inputs/outputs (casting to float16 for half variants) and save with external data."""
    f32 = TensorProto.FLOAT
    graph_inputs, graph_outputs = [], []
    for io_name, elem, shape in inputs:
        if elem == f32 and half:
            graph_inputs.append(_io(io_name, TensorProto.FLOAT16, shape))
            g.nodes.insert(0, helper.make_node("Cast", [io_name], [io_name + "__f32"], to=f32))
        else:
            graph_inputs.append(_io(io_name, elem, shape))
            g.nodes.insert(0, helper.make_node("Identity", [io_name], [io_name + "__f32"]))
    for io_name, internal, elem, shape in outputs:
        if elem == f32 and half:
            g.nodes.append(helper.make_node("Cast", [internal], [io_name], to=TensorProto.FLOAT16))
            graph_outputs.append(_io(io_name, TensorProto.FLOAT16, shape))
        else:
            g.nodes.append(helper.make_node("Identity", [internal], [io_name]))
            graph_outputs.append(_io(io_name, elem, shape))
    graph = helper.make_graph(g.nodes, name, graph_inputs, graph_outputs, g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_tiny_gemma"
    )
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + "_data",
        size_threshold=1024,
    )


def _x(name: str) -> str:
    return name + "__f32"


# ---------------------------------------------------------------------------------------------
# Weights


@dataclass
class Weights:
    embed: np.ndarray  # [V, H]
    ple: np.ndarray  # [V, L*P]
    audio_proj: np.ndarray  # [128, H]
    w_ple: np.ndarray  # [L*P, H]
    wq: list[np.ndarray]  # per slot [H, kvh*hd]
    wk: list[np.ndarray]
    wv: list[np.ndarray]
    wo: list[np.ndarray]  # per slot [kvh*hd, H]
    pos_alpha: list[float]  # per slot: previous-token position bias strength
    lm_head: np.ndarray  # [H, V]


def random_weights(dims: TinyDims, vocab: int, rng: np.random.Generator) -> Weights:
    """Random weights: every input (per_layer_inputs, every KV slot, positions) changes the logits."""
    h, lp = dims.hidden, dims.layers * dims.per_layer

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(rows)).astype(np.float32)

    widths = [dims.kv_heads * dims.slot_dim(s) for s in range(dims.slots)]
    return Weights(
        embed=mat(vocab, h, np.sqrt(vocab)),
        ple=mat(vocab, lp, np.sqrt(vocab)),
        audio_proj=mat(dims.mels, h, 0.2),
        w_ple=mat(lp, h, 0.5),
        wq=[mat(h, w, 2.0) for w in widths],
        wk=[mat(h, w, 2.0) for w in widths],
        wv=[mat(h, w, 1.0) for w in widths],
        wo=[mat(w, h, 1.0) for w in widths],
        pos_alpha=[0.0] * dims.slots,
        lm_head=mat(h, vocab, 8.0),
    )


def scripted_weights(
    dims: TinyDims,
    tok: Tokenizer,
    segments: Sequence[tuple[str, bool]],
    stop_ids: set[int],
    rng: np.random.Generator,
) -> Weights:
    """Weights whose greedy decoding follows ``segments`` (text, generated?) after their context."""
    vocab = tok.get_vocab_size()
    w = random_weights(dims, vocab, rng)
    h, half = dims.hidden, dims.hidden // 2
    width0 = dims.kv_heads * dims.slot_dim(0)
    if width0 < half:
        raise ValueError("slot 0 is too narrow to carry the previous token")
    ident = np.eye(half, dtype=np.float32) * 1.0
    codes = rng.standard_normal((vocab, half)).astype(np.float32)
    codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    w.embed = np.zeros((vocab, h), np.float32)
    w.embed[:, :half] = codes
    w.w_ple[:] = 0.0
    for slot in range(dims.slots):
        w.wo[slot][:] = 0.0
    w.wq[0][:] = 0.0
    w.wk[0][:] = 0.0
    w.wv[0] = np.zeros((h, width0), np.float32)
    w.wv[0][:half, :half] = ident
    w.wo[0] = np.zeros((width0, h), np.float32)
    w.wo[0][:half, half:] = ident
    w.pos_alpha[0] = 40.0
    # Walk the token stream the runtime will produce; a generated stop token is predicted
    # but never fed back (the runtime feeds its own tool-response block instead).
    rows: dict[tuple[int, int], int] = {}
    stream: list[int] = []
    for text, generated in segments:
        ids = tok.encode(text, add_special_tokens=False).ids
        if not generated:
            stream += ids
            continue
        for tid in ids:
            if len(stream) < 2:
                raise ValueError("a generated segment needs two context tokens before it")
            key = (stream[-1], stream[-2])
            if rows.get(key, tid) != tid:
                raise ValueError(f"script is ambiguous at tokens {key}: {rows[key]} vs {tid}")
            rows[key] = tid
            if tid in stop_ids:
                break
            stream.append(tid)
    keys = list(rows)
    x = np.stack([np.concatenate([codes[c], codes[p]]) for c, p in keys])
    y = np.zeros((len(keys), vocab), np.float32)
    y[np.arange(len(keys)), [rows[k] for k in keys]] = 20.0
    lm, *_ = np.linalg.lstsq(x, y, rcond=None)
    logits = x @ lm
    order = np.sort(logits, axis=1)
    if (
        not (np.argmax(logits, axis=1) == [rows[k] for k in keys]).all()
        or (order[:, -1] - order[:, -2]).min() < 5
    ):
        raise ValueError(f"script too long for a {h}-wide tiny model ({len(keys)} transitions)")
    w.lm_head = lm.astype(np.float32)
    return w


# ---------------------------------------------------------------------------------------------
# The three graphs


def build_embed(w: Weights, dims: TinyDims, path: Path, half: bool) -> None:
    g = _Graph()
    table = g.const(w.embed, "embed_table")
    ple_table = g.const(w.ple, "ple_table")
    ids = "input_ids"
    emb = g.op("Gather", [table, _x(ids)], "emb", axis=0)
    ple_flat = g.op("Gather", [ple_table, _x(ids)], "ple", axis=0)
    shape = g.op(
        "Concat",
        [g.op("Shape", [_x(ids)]), g.const(np.array([dims.layers, dims.per_layer], np.int64))],
        axis=0,
    )
    ple = g.op("Reshape", [ple_flat, shape], "ple4")
    _finish(
        g,
        [("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"])],
        [
            ("inputs_embeds", emb, TensorProto.FLOAT, ["batch_size", "sequence_length", dims.hidden]),
            (
                "per_layer_inputs",
                ple,
                TensorProto.FLOAT,
                ["batch_size", "sequence_length", dims.layers, dims.per_layer],
            ),
        ],
        half=half,
        path=path,
        name="embed_tokens",
    )


def build_audio(w: Weights, dims: TinyDims, path: Path, half: bool) -> None:
    """Two stride-2 subsamplings (the encoder's 4x), a projection, padded frames stripped by the mask."""
    g = _Graph()
    feats, mask = _x("input_features"), _x("input_features_mask")
    maskf = g.op("Unsqueeze", [g.op("Cast", [mask], to=TensorProto.FLOAT), g.const(np.array([-1], np.int64))])
    x = g.op("Mul", [feats, maskf])
    starts, ends = g.const(np.array([0], np.int64)), g.const(np.array([2**62], np.int64))
    axes, steps = g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64))
    for _ in range(2):
        x = g.op("Slice", [x, starts, ends, axes, steps])
        mask = g.op("Slice", [mask, starts, ends, axes, steps])
    x = g.op("Tanh", [g.op("MatMul", [x, g.const(w.audio_proj, "audio_proj")])])
    flat = g.op("Reshape", [x, g.const(np.array([-1, dims.hidden], np.int64))])
    keep = g.op("Reshape", [mask, g.const(np.array([-1], np.int64))])
    out = g.op("Compress", [flat, keep], axis=0)
    _finish(
        g,
        [
            ("input_features", TensorProto.FLOAT, ["batch_size", "num_frames", dims.mels]),
            ("input_features_mask", TensorProto.BOOL, ["batch_size", "num_frames"]),
        ],
        [("audio_features", out, TensorProto.FLOAT, ["num_audio_tokens", dims.hidden])],
        half=half,
        path=path,
        name="audio_encoder",
    )


def build_decoder(w: Weights, dims: TinyDims, vocab: int, path: Path, half: bool) -> None:
    """One attention block per KV slot (applied in turn), per-layer inputs, softcapped logits."""
    g = _Graph()
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    x0 = _x("inputs_embeds")
    ple = g.op("Reshape", [_x("per_layer_inputs"), g.const(np.array([0, 0, -1], np.int64))])
    x = g.op("Add", [x0, g.op("MatMul", [ple, g.const(w.w_ple, "w_ple")])])
    # Masks: key position t is visible from query position p when t <= p and attention_mask[t] == 1.
    total = g.op("Gather", [g.op("Shape", [_x("attention_mask")]), g.const(np.array(1, np.int64))], axis=0)
    kpos = g.op(
        "Cast",
        [g.op("Range", [g.const(np.array(0, np.int64)), total, g.const(np.array(1, np.int64))])],
        to=f32,
    )
    qpos = g.op(
        "Unsqueeze", [g.op("Cast", [_x("position_ids")], to=f32), g.const(np.array([1, 3], np.int64))]
    )
    kpos4 = g.op("Reshape", [kpos, g.const(np.array([1, 1, 1, -1], np.int64))])
    causal = g.op("LessOrEqual", [kpos4, qpos])
    am = g.op(
        "Unsqueeze",
        [g.op("Cast", [_x("attention_mask")], to=TensorProto.BOOL), g.const(np.array([1, 2], np.int64))],
    )
    bias = g.op(
        "Where",
        [g.op("And", [causal, am]), g.const(np.array(0.0, np.float32)), g.const(np.array(-1e9, np.float32))],
    )
    # |q - 1 - k|: the scripted model's previous-token head uses it as a position bias.
    distance = g.op("Abs", [g.op("Sub", [g.op("Sub", [qpos, g.const(np.array(1.0, np.float32))]), kpos4])])
    inputs = [
        ("inputs_embeds", f32, ["batch_size", "sequence_length", dims.hidden]),
        ("per_layer_inputs", f32, ["batch_size", "sequence_length", dims.layers, dims.per_layer]),
        ("attention_mask", i64, ["batch_size", "total_sequence_length"]),
        ("position_ids", i64, ["batch_size", "sequence_length"]),
    ]
    outputs: list[tuple[str, str, int, list[int | str]]] = []
    heads = g.const(np.array([0, 0, dims.kv_heads, -1], np.int64))
    for slot in range(dims.slots):
        hd = dims.slot_dim(slot)
        past_shape: list[int | str] = ["batch_size", dims.kv_heads, "past_sequence_length", hd]
        present_shape: list[int | str] = ["batch_size", dims.kv_heads, "total_sequence_length", hd]
        inputs += [
            (f"past_key_values.{slot}.key", f32, past_shape),
            (f"past_key_values.{slot}.value", f32, past_shape),
        ]

        def split(weight: np.ndarray, hint: str, _slot: int = slot, _x_in: str = x) -> str:
            y = g.op("MatMul", [_x_in, g.const(weight, f"{hint}{_slot}")])
            return g.op("Transpose", [g.op("Reshape", [y, heads])], perm=[0, 2, 1, 3])

        q, k_new, v_new = split(w.wq[slot], "wq"), split(w.wk[slot], "wk"), split(w.wv[slot], "wv")
        k = g.op("Concat", [_x(f"past_key_values.{slot}.key"), k_new], f"present_k{slot}", axis=2)
        v = g.op("Concat", [_x(f"past_key_values.{slot}.value"), v_new], f"present_v{slot}", axis=2)
        scores = g.op(
            "Mul",
            [
                g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                g.const(np.array(1.0 / np.sqrt(hd), np.float32)),
            ],
        )
        scores = g.op(
            "Sub",
            [
                g.op("Add", [scores, bias]),
                g.op("Mul", [distance, g.const(np.array(w.pos_alpha[slot], np.float32))]),
            ],
        )
        attn = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        merged = g.op(
            "Reshape", [g.op("Transpose", [attn], perm=[0, 2, 1, 3]), g.const(np.array([0, 0, -1], np.int64))]
        )
        x = g.op("Add", [x, g.op("MatMul", [merged, g.const(w.wo[slot], f"wo{slot}")])])
        outputs += [
            (f"present.{slot}.key", k, f32, present_shape),
            (f"present.{slot}.value", v, f32, present_shape),
        ]
    raw = g.op("MatMul", [x, g.const(w.lm_head, "lm_head")])
    cap = g.const(np.array(30.0, np.float32))
    logits = g.op("Mul", [g.op("Tanh", [g.op("Div", [raw, cap])]), cap])
    outputs.insert(0, ("logits", logits, f32, ["batch_size", "sequence_length", vocab]))
    _finish(g, inputs, outputs, half=half, path=path, name="decoder_model_merged")


# ---------------------------------------------------------------------------------------------
# Metadata and the whole set


def write_metadata(dest: Path, dims: TinyDims, tok: Tokenizer, chat_template: str | None = None) -> None:
    vocab = tok.get_vocab_size()
    ids = {s: tok.token_to_id(s) for s in HIGH_SPECIALS}
    text_config = {
        "model_type": "gemma4_text",
        "num_hidden_layers": dims.layers,
        "num_kv_shared_layers": dims.kv_shared,
        "num_key_value_heads": dims.kv_heads,
        "num_attention_heads": dims.kv_heads,
        "head_dim": dims.head_dim,
        "global_head_dim": dims.global_head_dim,
        "hidden_size": dims.hidden,
        "hidden_size_per_layer_input": dims.per_layer,
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab,
        "layer_types": list(dims.layer_types),
        "sliding_window": 512,
        "final_logit_softcapping": 30.0,
        "pad_token_id": 0,
        "eos_token_id": [1, 106],
        "bos_token_id": 2,
    }
    config = {
        "architectures": ["Gemma4ForConditionalGeneration"],
        "model_type": "gemma4",
        "text_config": text_config,
        "audio_config": {"model_type": "gemma4_audio", "hidden_size": dims.hidden},
        "boi_token_id": ids["<|image>"],
        "boa_token_id": ids["<|audio>"],
        "image_token_id": ids["<|image|>"],
        "audio_token_id": ids["<|audio|>"],
        "eoi_token_id": ids["<image|>"],
        "eoa_token_index": ids["<audio|>"],
        "eoa_token_id": ids["<audio|>"],
        "video_token_id": ids["<|video|>"],
        "eos_token_id": [1, 106],
        "_note": "tiny synthetic model generated by scripts/make_tiny_gemma.py; not a language model",
    }
    generation = {
        "bos_token_id": 2,
        "pad_token_id": 0,
        "eos_token_id": [1, 106, 50],
        "do_sample": True,
        "temperature": 1.0,
        "top_k": 64,
        "top_p": 0.95,
    }
    processor = {
        "processor_class": "Gemma4Processor",
        "audio_seq_length": 750,
        "audio_ms_per_token": 40,
        "feature_extractor": {
            "feature_extractor_type": "Gemma4AudioFeatureExtractor",
            "feature_size": 128,
            "sampling_rate": 16000,
            "frame_length_ms": 20.0,
            "hop_length_ms": 10.0,
            "min_frequency": 0.0,
            "max_frequency": 8000.0,
            "mel_floor": 0.001,
            "preemphasis": 0.0,
            "preemphasis_htk_flavor": True,
            "fft_overdrive": False,
            "dither": 0.0,
            "input_scale_factor": 1.0,
            "per_bin_mean": None,
            "per_bin_stddev": None,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": True,
        },
    }
    tokenizer_config = {
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "padding_side": "left",
        "audio_token": "<|audio|>",
        "boa_token": "<|audio>",
        "eoa_token": "<audio|>",
        "image_token": "<|image|>",
    }
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("config.json", config),
        ("generation_config.json", generation),
        ("processor_config.json", processor),
        ("tokenizer_config.json", tokenizer_config),
    ):
        (dest / name).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tok.save(str(dest / "tokenizer.json"))
    if chat_template is not None:
        # A real checkpoint's template (the tests pass Google's E2B/E4B one): the brain reads
        # the prompt layout from it and checks its own rendering against it.
        (dest / "chat_template.jinja").write_text(chat_template, encoding="utf-8")


def make_tiny_gemma(
    dest: Path | str,
    *,
    variants: Sequence[str] = ("fp32", "q4"),
    audio_variants: Sequence[str] = ("fp32",),
    script: Sequence[tuple[str, bool]] | None = None,
    seed: int = 0,
    dims: TinyDims | None = None,
    chat_template: str | None = None,
) -> Path:
    """Write a tiny model set to ``dest``; ``script`` makes the decoder follow it (see module doc)."""
    dest = Path(dest)
    dims = dims or TinyDims()
    rng = np.random.default_rng(seed)
    tok = build_tokenizer(dims.vocab_target)
    vocab = tok.get_vocab_size()
    if script is None:
        weights = random_weights(dims, vocab, rng)
    else:
        weights = scripted_weights(dims, tok, script, {1, 106, 50}, rng)
    write_metadata(dest, dims, tok, chat_template)
    for variant in variants:
        half = variant in HALF_VARIANTS
        build_embed(weights, dims, dest / "onnx" / f"embed_tokens{SUFFIX[variant]}.onnx", half)
        build_decoder(
            weights, dims, vocab, dest / "onnx" / f"decoder_model_merged{SUFFIX[variant]}.onnx", half
        )
    for variant in audio_variants:
        build_audio(
            weights, dims, dest / "onnx" / f"audio_encoder{SUFFIX[variant]}.onnx", variant in HALF_VARIANTS
        )
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--variants", default="fp32,q4")
    parser.add_argument("--audio-variants", default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat-template", type=Path, default=None, help="a chat_template.jinja to ship")
    parser.add_argument(
        "--script",
        nargs=2,
        metavar=("CALL", "REPLY"),
        help="scripted decoder: first output (ending <|tool_response>) and the reply (ending <turn|>)",
    )
    args = parser.parse_args(argv)
    script = None
    if args.script:
        script = [
            ("<|turn>model\n", False),
            (args.script[0], True),
            ('<|tool_response>response:x{status:<|"|>ok<|"|>}<tool_response|>', False),
            (args.script[1], True),
        ]
    out = make_tiny_gemma(
        args.dest,
        variants=args.variants.split(","),
        audio_variants=args.audio_variants.split(","),
        script=script,
        seed=args.seed,
        chat_template=args.chat_template.read_text(encoding="utf-8") if args.chat_template else None,
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
