"""The model-file contract of the onnx-community Gemma 4 E2B/E4B export.

Layout (repo root): config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, chat_template.jinja, processor_config.json and
``onnx/{embed_tokens,audio_encoder,decoder_model_merged}{,_fp16,_q4,_q4f16,_quantized}.onnx``
with their external data (``.onnx_data``, ``.onnx_data_1`` ...). The decoder and
embedding precision and the audio-encoder precision are chosen separately.

Everything the files declare is read from them: layer and KV-slot counts, head
dims per slot, special token ids (config.json + tokenizer.json) and stop ids
(generation_config.json). ``check_model_dir`` opens every graph and compares its
inputs and outputs with what the runtime feeds and reads.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.brains.gemma.features import FeatureConfig
from assistant.brains.gemma.template import NATIVE, PromptFormat, load_format
from assistant.errors import ModelFilesError

_LOGGER = logging.getLogger(__name__)

VARIANT_SUFFIX: Mapping[str, str] = {
    "fp32": "",
    "fp16": "_fp16",
    "q4": "_q4",
    "q4f16": "_q4f16",
    "quantized": "_quantized",
}
"""Precision name -> file-name suffix used by the export."""

GRAPHS = ("embed_tokens", "audio_encoder", "decoder_model_merged")
METADATA_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "processor_config.json",
)
"""Root files of the export; the first three and processor_config.json are required."""
OPTIONAL_GRAPHS: Mapping[str, str] = {"audio_encoder_step": "onnx/audio_encoder_step.onnx"}
"""Graphs the runtime uses when present: the per-step audio encoder (scripts/convert_audio_encoder.py)."""
REQUIRED_METADATA = ("config.json", "generation_config.json", "tokenizer.json", "processor_config.json")

# Special-token strings the runtime looks up in tokenizer.json (ids differ per tokenizer).
TOKEN_STRINGS: Mapping[str, str] = {
    "bos": "<bos>",
    "eos": "<eos>",
    "pad": "<pad>",
    "turn_open": "<|turn>",
    "turn_close": "<turn|>",
    "tool_open": "<|tool>",
    "tool_close": "<tool|>",
    "call_open": "<|tool_call>",
    "call_close": "<tool_call|>",
    "response_open": "<|tool_response>",
    "response_close": "<tool_response|>",
    "quote": '<|"|>',
    "think": "<|think|>",
    "channel_open": "<|channel>",
    "channel_close": "<channel|>",
    "audio_open": "<|audio>",
    "audio": "<|audio|>",
    "audio_close": "<audio|>",
}

FLOAT_TYPES = frozenset({"tensor(float)", "tensor(float16)"})
INT64 = frozenset({"tensor(int64)"})
BOOL = frozenset({"tensor(bool)"})


def graph_file(name: str, variant: str) -> str:
    """Relative path of one graph for a precision, e.g. ``onnx/decoder_model_merged_q4.onnx``."""
    if variant not in VARIANT_SUFFIX:
        raise ModelFilesError(f"unknown variant {variant!r}; one of {', '.join(VARIANT_SUFFIX)}")
    return f"onnx/{name}{VARIANT_SUFFIX[variant]}.onnx"


def graph_files(variant: str, audio_variant: str) -> dict[str, str]:
    """Graph name -> relative path, for the decoder/embedding and audio precisions."""
    return {
        "embed_tokens": graph_file("embed_tokens", variant),
        "audio_encoder": graph_file("audio_encoder", audio_variant),
        "decoder_model_merged": graph_file("decoder_model_merged", variant),
    }


@dataclass(frozen=True)
class TextConfig:
    """What the decoder loop needs from config.json (text_config)."""

    num_hidden_layers: int
    num_kv_shared_layers: int
    num_key_value_heads: int
    head_dim: int
    global_head_dim: int
    hidden_size: int
    hidden_size_per_layer_input: int
    vocab_size: int
    layer_types: tuple[str, ...]
    layer_head_dims: tuple[int, ...] = ()
    """Head dim of every layer, resolved as transformers does (empty: from head_dim/global_head_dim)."""
    layer_kv_heads: tuple[int, ...] = ()
    """KV heads of every layer (empty: num_key_value_heads everywhere)."""

    @property
    def num_kv_slots(self) -> int:
        """KV-cache slots in the decoder graph: layers that own their K/V."""
        return self.num_hidden_layers - self.num_kv_shared_layers

    def slot_head_dim(self, slot: int) -> int:
        """Head dim of one KV slot (the full-attention layers have the wider ``global_head_dim``)."""
        if self.layer_head_dims:
            return self.layer_head_dims[slot]
        return self.global_head_dim if self.layer_types[slot] == "full_attention" else self.head_dim

    def slot_kv_heads(self, slot: int) -> int:
        """KV heads of one KV slot."""
        return self.layer_kv_heads[slot] if self.layer_kv_heads else self.num_key_value_heads


# transformers' Gemma4TextConfig default when a config names neither global_head_dim nor
# per_layer_config (configuration_gemma4.py: ``kwargs.pop("global_head_dim", 512)``).
DEFAULT_GLOBAL_HEAD_DIM = 512


def _layer_overrides(text: Mapping[str, Any], layers: int, where: str) -> dict[int, Mapping[str, Any]]:
    """``per_layer_config`` as transformers 5.x writes it: zero-padded index strings -> overrides."""
    raw = text.get("per_layer_config")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ModelFilesError(f"{where}: per_layer_config must be an object of layer index -> overrides")
    overrides: dict[int, Mapping[str, Any]] = {}
    for key, value in raw.items():
        try:
            index = int(str(key), 10)
        except ValueError:
            raise ModelFilesError(f"{where}: per_layer_config key {key!r} is not a layer index") from None
        if not 0 <= index < layers or not isinstance(value, dict):
            raise ModelFilesError(f"{where}: per_layer_config entry {key!r} is not a layer override")
        overrides[index] = value
    return overrides


@dataclass(frozen=True)
class TokenIds:
    """Special token ids, from config.json, generation_config.json and tokenizer.json."""

    bos: int
    pad: int
    audio: int
    audio_open: int
    audio_close: int
    stop: frozenset[int]
    named: Mapping[str, int] = field(default_factory=dict)
    """TOKEN_STRINGS key -> id for every string the tokenizer knows."""

    def get(self, key: str) -> int | None:
        """Id of a TOKEN_STRINGS key, or None when the tokenizer lacks it."""
        return self.named.get(key)


@dataclass(frozen=True)
class ModelFiles:
    """A model directory, resolved and read."""

    root: Path
    variant: str
    audio_variant: str
    graphs: Mapping[str, Path]
    text: TextConfig
    tokens: TokenIds
    features: FeatureConfig
    tokenizer_path: Path
    sampling: Mapping[str, Any]
    """generation_config.json as read (temperature, top_k, top_p ...)."""
    prompt: PromptFormat = NATIVE
    """The prompt layout: read from chat_template.jinja when the directory ships one."""
    prompt_summary: str = ""
    """One line on where the layout came from (shown by `models check`)."""
    optional_graphs: Mapping[str, Path] = field(default_factory=dict)
    """OPTIONAL_GRAPHS that the directory has (name -> path)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelFilesError(f"{path}: missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"{path}: unreadable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFilesError(f"{path}: expected a JSON object")
    return data


def _int(block: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = block.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelFilesError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _id_list(value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def read_text_config(config: Mapping[str, Any], where: str = "config.json") -> TextConfig:
    """Decoder facts from config.json (top level or its ``text_config``)."""
    text = config.get("text_config", config)
    if not isinstance(text, dict):
        raise ModelFilesError(f"{where}: text_config is not an object")
    layers = _int(text, "num_hidden_layers", where)
    shared = _int(text, "num_kv_shared_layers", where, 0)
    head_dim = _int(text, "head_dim", where)
    kv_heads = _int(text, "num_key_value_heads", where)
    layer_types = text.get("layer_types")
    if not isinstance(layer_types, list) or len(layer_types) != layers:
        raise ModelFilesError(f"{where}: layer_types must list one type per layer ({layers})")
    if shared >= layers:
        raise ModelFilesError(f"{where}: num_kv_shared_layers {shared} >= num_hidden_layers {layers}")
    types = tuple(str(t) for t in layer_types)
    # Two shapes of the same facts. transformers 4.x-era configs name global_head_dim (and
    # num_global_key_value_heads); transformers 5.x writes per_layer_config instead
    # ({"04": {"head_dim": 512}, ...}: layers not listed use the global values) and drops
    # global_head_dim. A config with neither gets transformers' own default of 512.
    overrides = _layer_overrides(text, layers, where)
    if "per_layer_config" in text:
        head_dims = tuple(_int(overrides.get(i, {}), "head_dim", where, head_dim) for i in range(layers))
        kv = tuple(_int(overrides.get(i, {}), "num_key_value_heads", where, kv_heads) for i in range(layers))
        full = [head_dims[i] for i in range(layers) if types[i] == "full_attention"]
        global_head_dim = full[0] if full else head_dim
    else:
        global_head_dim = _int(text, "global_head_dim", where, DEFAULT_GLOBAL_HEAD_DIM)
        head_dims = tuple(global_head_dim if t == "full_attention" else head_dim for t in types)
        global_kv = text.get("num_global_key_value_heads")
        if isinstance(global_kv, int) and not isinstance(global_kv, bool) and text.get("attention_k_eq_v"):
            kv = tuple(global_kv if t == "full_attention" else kv_heads for t in types)
        else:
            kv = (kv_heads,) * layers
    return TextConfig(
        num_hidden_layers=layers,
        num_kv_shared_layers=shared,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        global_head_dim=global_head_dim,
        hidden_size=_int(text, "hidden_size", where),
        hidden_size_per_layer_input=_int(text, "hidden_size_per_layer_input", where),
        vocab_size=_int(text, "vocab_size", where),
        layer_types=types,
        layer_head_dims=head_dims,
        layer_kv_heads=kv,
    )


def read_token_ids(
    config: Mapping[str, Any], generation: Mapping[str, Any], vocab: Mapping[str, int]
) -> TokenIds:
    """Special ids: multimodal ids from config.json, stops from generation_config.json, the rest by string."""
    text = config.get("text_config", config)
    text = text if isinstance(text, dict) else {}
    named = {key: vocab[s] for key, s in TOKEN_STRINGS.items() if s in vocab}

    def pick(*candidates: Any, what: str) -> int:
        for value in candidates:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        raise ModelFilesError(f"model files declare no id for {what}")

    stop = set(_id_list(generation.get("eos_token_id")))
    stop |= set(_id_list(config.get("eos_token_id"))) | set(_id_list(text.get("eos_token_id")))
    if not stop:
        raise ModelFilesError("generation_config.json: no eos_token_id (stop ids)")
    # The runtime needs these to drive a turn; the tokenizer must know them.
    for key in ("turn_open", "turn_close", "call_open", "call_close", "response_open", "response_close"):
        if key not in named:
            raise ModelFilesError(f"tokenizer.json: no token {TOKEN_STRINGS[key]!r}")
    # <|tool_response> must stop generation or the model invents the tool's answer; copies of
    # generation_config.json that list only [1, 106] exist (config.json's eos), so add it here.
    stop.add(named["response_open"])
    return TokenIds(
        bos=pick(generation.get("bos_token_id"), text.get("bos_token_id"), named.get("bos"), what="<bos>"),
        pad=pick(generation.get("pad_token_id"), text.get("pad_token_id"), named.get("pad"), what="<pad>"),
        audio=pick(config.get("audio_token_id"), named.get("audio"), what="<|audio|>"),
        audio_open=pick(config.get("boa_token_id"), named.get("audio_open"), what="<|audio>"),
        audio_close=pick(
            config.get("eoa_token_id"),
            config.get("eoa_token_index"),
            named.get("audio_close"),
            what="<audio|>",
        ),
        stop=frozenset(stop),
        named=named,
    )


def _tokenizer_vocab(path: Path) -> dict[str, int]:
    """String -> id for the added tokens and the model vocabulary of a tokenizer.json."""
    data = _read_json(path)
    vocab: dict[str, int] = {}
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("vocab"), dict):
        vocab.update({str(k): v for k, v in model["vocab"].items() if isinstance(v, int)})
    for entry in data.get("added_tokens") or []:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("content"), str)
            and isinstance(entry.get("id"), int)
        ):
            vocab[entry["content"]] = entry["id"]
    return vocab


def load_model_files(root: Path | str, variant: str = "q4", audio_variant: str = "fp32") -> ModelFiles:
    """Read and cross-check a model directory; raises ModelFilesError with the first problem."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ModelFilesError(f"model directory {root} does not exist (run `assistant models pull e2b`)")
    missing = [name for name in REQUIRED_METADATA if not (root / name).is_file()]
    graphs = {name: root / rel for name, rel in graph_files(variant, audio_variant).items()}
    missing += [str(path.relative_to(root)) for path in graphs.values() if not path.is_file()]
    if missing:
        raise ModelFilesError(f"{root}: missing {', '.join(missing)}")
    config = _read_json(root / "config.json")
    generation = _read_json(root / "generation_config.json")
    processor = _read_json(root / "processor_config.json")
    if "feature_extractor" not in processor:
        # Converted repos without this block silently ignored audio (reference section 6).
        raise ModelFilesError(f"{root}/processor_config.json: no feature_extractor block")
    try:
        features = FeatureConfig.from_processor_config(processor)
    except ValueError as exc:
        raise ModelFilesError(f"{root}/{exc}") from exc
    text = read_text_config(config, str(root / "config.json"))
    tokens = read_token_ids(config, generation, _tokenizer_vocab(root / "tokenizer.json"))
    # The shipped template is the truth: its layout is used, and the native declaration,
    # call and response rendering must match it (ModelFilesError chat_template_mismatch).
    prompt, prompt_summary = load_format(root)
    optional = {name: root / rel for name, rel in OPTIONAL_GRAPHS.items() if (root / rel).is_file()}
    return ModelFiles(
        root=root,
        variant=variant,
        audio_variant=audio_variant,
        graphs=graphs,
        text=text,
        tokens=tokens,
        features=features,
        tokenizer_path=root / "tokenizer.json",
        sampling=generation,
        prompt=prompt,
        prompt_summary=prompt_summary,
        optional_graphs=optional,
    )


# ---------------------------------------------------------------------------------------------
# The I/O contract and the checker.


@dataclass(frozen=True)
class TensorSpec:
    """One expected input or output: name, allowed ONNX types, allowed ranks, known static dims."""

    name: str
    types: frozenset[str]
    ranks: frozenset[int]
    dims: Mapping[int, int] = field(default_factory=dict)
    optional: bool = False


def expected_io(text: TextConfig) -> dict[str, tuple[list[TensorSpec], list[TensorSpec]]]:
    """Graph name -> (inputs, outputs) the runtime feeds and reads."""
    r2, r3, r4 = frozenset({2}), frozenset({3}), frozenset({4})
    ple_dims = {2: text.num_hidden_layers, 3: text.hidden_size_per_layer_input}
    decoder_in = [
        TensorSpec("inputs_embeds", FLOAT_TYPES, r3, {2: text.hidden_size}),
        TensorSpec("per_layer_inputs", FLOAT_TYPES, r4, ple_dims),
        TensorSpec("attention_mask", INT64, r2),
        TensorSpec("position_ids", INT64, r2),
        TensorSpec("num_logits_to_keep", INT64, frozenset({0, 1}), optional=True),
        # Optimum-style merged decoders select the with-past branch with this flag.
        TensorSpec("use_cache_branch", BOOL, frozenset({0, 1}), optional=True),
    ]
    decoder_out = [TensorSpec("logits", FLOAT_TYPES, r3, {2: text.vocab_size})]
    for slot in range(text.num_kv_slots):
        dims = {1: text.slot_kv_heads(slot), 3: text.slot_head_dim(slot)}
        for kind in ("key", "value"):
            decoder_in.append(TensorSpec(f"past_key_values.{slot}.{kind}", FLOAT_TYPES, r4, dims))
            decoder_out.append(TensorSpec(f"present.{slot}.{kind}", FLOAT_TYPES, r4, dims))
    return {
        "embed_tokens": (
            [TensorSpec("input_ids", INT64, r2)],
            [
                TensorSpec("inputs_embeds", FLOAT_TYPES, r3, {2: text.hidden_size}),
                TensorSpec("per_layer_inputs", FLOAT_TYPES, r4, ple_dims),
            ],
        ),
        "audio_encoder": (
            [
                TensorSpec("input_features", FLOAT_TYPES, r3, {2: 128}),
                TensorSpec("input_features_mask", BOOL, r2),
            ],
            # Rank 2 [tokens, hidden] as transformers.js merges it; rank 3 [batch, tokens, hidden] also works.
            [TensorSpec("audio_features", FLOAT_TYPES, frozenset({2, 3}))],
        ),
        "decoder_model_merged": (decoder_in, decoder_out),
        "audio_encoder_step": (
            [
                TensorSpec("input_features", FLOAT_TYPES, r3, {2: 128}),
                TensorSpec("input_features_mask", BOOL, r2),
                TensorSpec("past_tokens", INT64, frozenset({1})),
                TensorSpec("past_keys", FLOAT_TYPES, r3),
                TensorSpec("past_values", FLOAT_TYPES, r3),
                TensorSpec("past_conv", FLOAT_TYPES, r3),
            ],
            [
                TensorSpec("audio_features", FLOAT_TYPES, r2, {1: text.hidden_size}),
                TensorSpec("present_keys", FLOAT_TYPES, r3),
                TensorSpec("present_values", FLOAT_TYPES, r3),
                TensorSpec("present_conv", FLOAT_TYPES, r3),
            ],
        ),
    }


@dataclass(frozen=True)
class GraphReport:
    """The verdict on one graph."""

    name: str
    path: Path
    problems: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """The verdict on a model directory."""

    root: Path
    variant: str
    audio_variant: str
    problems: tuple[str, ...]
    graphs: tuple[GraphReport, ...] = ()
    summary: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every file is there and every graph matches the contract."""
        return not self.problems and all(not g.problems for g in self.graphs)

    def render(self) -> str:
        """A human-readable report ending in a one-line verdict."""
        lines = [f"model directory: {self.root} (variant {self.variant}, audio {self.audio_variant})"]
        lines += [f"  {line}" for line in self.summary]
        lines += [f"  problem: {p}" for p in self.problems]
        for graph in self.graphs:
            state = "ok" if not graph.problems else "MISMATCH"
            lines.append(
                f"  {graph.name}: {state} ({graph.path.name}, {len(graph.inputs)} inputs, "
                f"{len(graph.outputs)} outputs)"
            )
            lines += [f"    - {p}" for p in graph.problems]
        verdict = "OK: the runtime can drive these files" if self.ok else "BROKEN: fix the problems above"
        lines.append(f"verdict: {verdict}")
        return "\n".join(lines)


def _compare(kind: str, actual: Iterable[Any], expected: list[TensorSpec], strict_extra: bool) -> list[str]:
    problems: list[str] = []
    by_name = {arg.name: arg for arg in actual}
    for spec in expected:
        arg = by_name.pop(spec.name, None)
        if arg is None:
            if not spec.optional:
                problems.append(f"missing {kind} {spec.name!r}")
            continue
        if arg.type not in spec.types:
            problems.append(
                f"{kind} {spec.name!r} has type {arg.type}, expected {' or '.join(sorted(spec.types))}"
            )
        shape = arg.shape if isinstance(arg.shape, list) else []
        if len(shape) not in spec.ranks:
            problems.append(f"{kind} {spec.name!r} has rank {len(shape)}, expected {sorted(spec.ranks)}")
            continue
        for axis, size in spec.dims.items():
            actual_size = shape[axis] if axis < len(shape) else None
            if isinstance(actual_size, int) and actual_size != size:
                problems.append(f"{kind} {spec.name!r} dim {axis} is {actual_size}, the config says {size}")
    if strict_extra:
        problems += [f"unexpected {kind} {name!r} (the runtime cannot feed it)" for name in by_name]
    return problems


def session_problems(name: str, session: Any, text: TextConfig) -> list[str]:
    """Contract mismatches of an open onnxruntime session for graph ``name``."""
    inputs_spec, outputs_spec = expected_io(text)[name]
    problems = _compare("input", session.get_inputs(), inputs_spec, strict_extra=True)
    problems += _compare("output", session.get_outputs(), outputs_spec, strict_extra=False)
    return problems


def check_graph(name: str, path: Path, text: TextConfig) -> GraphReport:
    """Open one graph with onnxruntime and compare its I/O with the contract."""
    import onnxruntime as ort  # noqa: PLC0415  (heavy import only when checking)

    try:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for broken files
        return GraphReport(name, path, (f"onnxruntime cannot open it: {exc}",))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    problems = session_problems(name, session, text)
    return GraphReport(
        name, path, tuple(problems), tuple(a.name for a in inputs), tuple(a.name for a in outputs)
    )


def check_model_dir(root: Path | str, variant: str = "q4", audio_variant: str = "fp32") -> CheckReport:
    """Read the metadata, open every graph, compare with the contract; never raises for bad files."""
    root = Path(root).expanduser()
    try:
        files = load_model_files(root, variant, audio_variant)
    except ModelFilesError as exc:
        return CheckReport(root, variant, audio_variant, (exc.message,))
    text = files.text
    summary = (
        f"layers {text.num_hidden_layers}, KV slots {text.num_kv_slots} x "
        f"{sorted({text.slot_kv_heads(i) for i in range(text.num_kv_slots)})} heads, "
        f"head dims {sorted({text.slot_head_dim(i) for i in range(text.num_kv_slots)})}, "
        f"hidden {text.hidden_size}, vocab {text.vocab_size}",
        f"audio token {files.tokens.audio}, stop ids {sorted(files.tokens.stop)}",
        files.prompt_summary,
    )
    every = {**files.graphs, **files.optional_graphs}
    reports = tuple(check_graph(name, path, text) for name, path in every.items())
    return CheckReport(root, variant, audio_variant, (), reports, summary)
