"""Drive the three onnx-community Gemma 4 graphs with ONNX Runtime on the CPU.

embed_tokens(input_ids) -> inputs_embeds + per_layer_inputs; audio_encoder(features,
mask) -> audio soft tokens, scattered into inputs_embeds at the ``<|audio|>``
positions; decoder_model_merged(inputs_embeds, per_layer_inputs, attention_mask,
position_ids, past_key_values.*) -> logits + present.*.

A ``KVCache`` is an immutable snapshot: ONNX Runtime returns fresh ``present``
arrays on every run, so a cached prefix is reused by many turns without copying
or recomputing it (its arrays are made read-only to keep it that way).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from assistant.brains.gemma.encoder_step import StepEncoder
from assistant.brains.gemma.features import AudioFeatures, FeatureExtractor
from assistant.brains.gemma.files import ModelFiles, session_problems
from assistant.errors import BrainError, ErrorCode, ModelFilesError

_LOGGER = logging.getLogger(__name__)

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class Cancelled(BrainError):
    """Generation stopped because the cancel flag was set."""

    code = "cancelled"


@dataclass(frozen=True)
class KVCache:
    """The decoder state after ``length`` tokens: one (key, value) pair per KV slot."""

    keys: tuple[npt.NDArray[Any], ...]
    values: tuple[npt.NDArray[Any], ...]
    length: int

    def frozen(self) -> KVCache:
        """The same cache with read-only arrays (safe to share between turns)."""
        for array in (*self.keys, *self.values):
            array.flags.writeable = False
        return self

    def truncated(self, length: int) -> KVCache:
        """The state after the first ``length`` tokens (drafted tokens the target refused are dropped).

        Every slot holds the whole sequence (sliding-window layers are windowed by the
        decoder's mask, shared-KV layers read these slots), so cutting the time axis is exact.
        """
        if length == self.length:
            return self
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot cut a {self.length}-token cache to {length}")
        return KVCache(
            tuple(k[:, :, :length] for k in self.keys), tuple(v[:, :, :length] for v in self.values), length
        )


@dataclass(frozen=True)
class Generation:
    """One round of decoding."""

    tokens: tuple[int, ...]
    """Generated ids including the stop token (when one ended the round)."""
    stop_token: int | None
    """The stop id that ended the round; None when max_new_tokens ran out."""
    cache: KVCache
    """State after every generated token except the stop token (which is never fed)."""
    unfed: tuple[int, ...]
    """Generated non-stop tokens not yet in ``cache`` (the last one when the budget ran out)."""
    steps: int
    """Sequential decoder runs."""


@dataclass(frozen=True)
class Sampling:
    """Decoding policy: greedy when temperature is 0."""

    temperature: float = 0.0
    top_k: int = 64
    top_p: float = 0.95
    seed: int | None = None


class Sampler:
    """Picks the next token from logits."""

    def __init__(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self._rng = np.random.default_rng(sampling.seed)

    def __call__(self, logits: npt.NDArray[Any]) -> int:
        s = self.sampling
        if s.temperature <= 0.0:
            return int(np.argmax(logits))
        scores = logits.astype(np.float64) / s.temperature
        k = max(1, min(int(s.top_k) if s.top_k > 0 else scores.shape[0], scores.shape[0]))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        probs = np.exp(scores[top] - scores[top[0]])
        probs /= probs.sum()
        if 0.0 < s.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), s.top_p) + 1)
            top, probs = top[:keep], probs[:keep] / probs[:keep].sum()
        return int(self._rng.choice(top, p=probs))


class Constraint(Protocol):
    """A decoding policy that replaces the plain loop (constrained.ConstrainedDecoder)."""

    def generate(
        self,
        model: Any,
        cache: KVCache,
        logits: npt.NDArray[Any],
        *,
        max_new_tokens: int,
        sampler: Sampler,
        cancel: threading.Event | None = None,
        opened: Any = None,
    ) -> Generation: ...


def _session(path: str, threads: int) -> Any:
    import onnxruntime as ort  # noqa: PLC0415  (only the Gemma brain needs it at import time)

    # External data: on the CPU provider ONNX Runtime memory-maps external initializers by
    # itself when their offsets are page-aligned; there is no switch to set here.
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for broken graphs
        raise ModelFilesError(
            f"{path}: onnxruntime cannot load it ({exc}); run `assistant models check`"
        ) from exc


class GemmaRuntime:
    """Sessions, tokenizer and feature extractor for one model directory (thread-safe per call)."""

    def __init__(self, files: ModelFiles, *, intra_op_threads: int = 0, step_encoder: bool = True) -> None:
        from tokenizers import Tokenizer  # noqa: PLC0415  (optional dependency: the gemma extra)

        self.files = files
        self.text = files.text
        self.tokens = files.tokens
        try:
            self.tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        except Exception as exc:  # tokenizers raises a plain Exception on bad JSON
            raise ModelFilesError(f"{files.tokenizer_path}: cannot load ({exc})") from exc
        self.features = FeatureExtractor(files.features)
        self.embed_session = _session(str(files.graphs["embed_tokens"]), intra_op_threads)
        self.audio_session = _session(str(files.graphs["audio_encoder"]), intra_op_threads)
        self.decoder_session = _session(str(files.graphs["decoder_model_merged"]), intra_op_threads)
        problems = [
            f"{name}: {problem}"
            for name, session in (
                ("embed_tokens", self.embed_session),
                ("audio_encoder", self.audio_session),
                ("decoder_model_merged", self.decoder_session),
            )
            for problem in session_problems(name, session, self.text)
        ]
        self.step_encoder: StepEncoder | None = None
        """The per-step audio encoder (onnx/audio_encoder_step.onnx) when the directory has one."""
        step_path = files.optional_graphs.get("audio_encoder_step") if step_encoder else None
        if step_path is not None:
            step_session = _session(str(step_path), intra_op_threads)
            problems += [
                f"audio_encoder_step: {p}"
                for p in session_problems("audio_encoder_step", step_session, self.text)
            ]
            if not problems:
                self.step_encoder = StepEncoder(step_session)
        if problems:
            raise ModelFilesError(
                f"{files.root} does not match the runtime's contract: " + "; ".join(problems)
            )
        dec_inputs = {arg.name: arg for arg in self.decoder_session.get_inputs()}
        self._embeds_dtype = _NP_TYPES.get(dec_inputs["inputs_embeds"].type, np.float32)
        self._ple_dtype = _NP_TYPES.get(dec_inputs["per_layer_inputs"].type, np.float32)
        self._kv_dtype = _NP_TYPES.get(dec_inputs["past_key_values.0.key"].type, np.float32)
        self._has_logits_to_keep = "num_logits_to_keep" in dec_inputs
        batch = dec_inputs["inputs_embeds"].shape[0] if dec_inputs["inputs_embeds"].shape else 1
        self.batched = not isinstance(batch, int)
        """The decoder's batch dimension is dynamic: branch rows can share one pass (verify_rows)."""
        self._use_cache_branch_rank = (
            len(dec_inputs["use_cache_branch"].shape) if "use_cache_branch" in dec_inputs else None
        )
        audio_inputs = {arg.name: arg for arg in self.audio_session.get_inputs()}
        self._audio_dtype = _NP_TYPES.get(audio_inputs["input_features"].type, np.float32)
        slots = self.text.num_kv_slots
        self._past_names = [(f"past_key_values.{i}.key", f"past_key_values.{i}.value") for i in range(slots)]
        self._output_names = ["logits"] + [
            n for i in range(slots) for n in (f"present.{i}.key", f"present.{i}.value")
        ]
        self._embed_names = ["inputs_embeds", "per_layer_inputs"]
        self._lock = threading.Lock()

    # -- text ---------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of text (special-token strings become their ids; no BOS added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        """Text of ids; special tokens kept unless asked (the call parser needs them)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special))

    # -- graphs -------------------------------------------------------------------------------

    def embed(self, ids: Sequence[int]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """inputs_embeds and per_layer_inputs for ids.

        Audio placeholders are looked up as the pad id: their embeddings are replaced by
        audio features anyway, and the per-layer token part at those positions is the
        pad row, as the reference model computes it (reference section 2.2).
        """
        return self._embed_rows(np.asarray(ids, dtype=np.int64)[None, :])

    def _embed_rows(self, ids: npt.NDArray[np.int64]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """``embed`` for a [rows, seq] batch of ids (audio placeholders looked up as the pad id)."""
        lookup = np.where(ids == self.tokens.audio, self.tokens.pad, ids)
        embeds, per_layer = self.embed_session.run(self._embed_names, {"input_ids": lookup})
        return embeds, per_layer

    def encode_audio(self, features: AudioFeatures) -> npt.NDArray[Any]:
        """Audio soft tokens [n, hidden] for one clip, padding rows removed."""
        out = self.audio_session.run(
            ["audio_features"],
            {
                "input_features": features.features.astype(self._audio_dtype, copy=False),
                "input_features_mask": features.mask,
            },
        )[0]
        rows = out.reshape(-1, out.shape[-1])
        if rows.shape[0] != features.num_tokens:
            if out.ndim == 3 and out.shape[1] >= features.num_tokens:
                # Rank-3 output with padded positions: keep the encoder-valid ones.
                mask = features.mask[0]
                for _ in range(2):
                    mask = mask[::2]
                rows = out[0][: mask.shape[0]][mask[: out.shape[1]]]
            if rows.shape[0] != features.num_tokens:
                raise BrainError(
                    f"audio encoder returned {rows.shape[0]} soft tokens, expected {features.num_tokens}",
                    code="audio_token_mismatch",
                )
        result: npt.NDArray[Any] = rows
        return result

    def empty_cache(self) -> KVCache:
        """State before any token."""
        keys = tuple(
            np.zeros((1, self.text.slot_kv_heads(i), 0, self.text.slot_head_dim(i)), dtype=self._kv_dtype)
            for i in range(self.text.num_kv_slots)
        )
        values = tuple(np.zeros_like(k) for k in keys)
        return KVCache(keys, values, 0)

    def forward(
        self,
        cache: KVCache,
        embeds: npt.NDArray[Any],
        per_layer: npt.NDArray[Any],
        *,
        every_position: bool = False,
    ) -> tuple[npt.NDArray[Any], KVCache]:
        """Run the decoder on new positions; returns the extended cache and the last position's
        logits, or with ``every_position`` the logits of every new position [seq, vocab]."""
        seq = embeds.shape[1]
        total = cache.length + seq
        outputs = self._run_decoder(cache, embeds, per_layer, keep=seq if every_position else 1)
        logits = outputs[0][0, -seq:] if every_position else outputs[0][0, -1]
        logits = logits.astype(np.float32, copy=False)
        presents = outputs[1:]
        return logits, KVCache(tuple(presents[0::2]), tuple(presents[1::2]), total)

    def _run_decoder(
        self, cache: KVCache, embeds: npt.NDArray[Any], per_layer: npt.NDArray[Any], *, keep: int
    ) -> list[Any]:
        """One decoder run over new positions for each of ``embeds``'s rows, the past repeated per
        row; ``keep``: the positions whose logits are wanted (``num_logits_to_keep``)."""
        count, seq = embeds.shape[0], embeds.shape[1]
        total = cache.length + seq
        positions = np.arange(cache.length, total, dtype=np.int64)[None, :]
        feed: dict[str, Any] = {
            "inputs_embeds": embeds.astype(self._embeds_dtype, copy=False),
            "per_layer_inputs": per_layer.astype(self._ple_dtype, copy=False),
            "attention_mask": np.ones((count, total), dtype=np.int64),
            "position_ids": positions if count == 1 else np.repeat(positions, count, axis=0),
        }
        if self._has_logits_to_keep:
            feed["num_logits_to_keep"] = np.array(keep, dtype=np.int64)
        if self._use_cache_branch_rank is not None:
            flag = np.array(cache.length > 0, dtype=bool)
            feed["use_cache_branch"] = flag.reshape((1,) * self._use_cache_branch_rank)
        for (key_name, value_name), key, value in zip(
            self._past_names, cache.keys, cache.values, strict=True
        ):
            feed[key_name] = key if count == 1 else np.repeat(key, count, axis=0)
            feed[value_name] = value if count == 1 else np.repeat(value, count, axis=0)
        return list(self.decoder_session.run(self._output_names, feed))

    def prefill(
        self,
        cache: KVCache,
        ids: Sequence[int],
        *,
        audio: npt.NDArray[Any] | None = None,
        chunk: int = 0,
        cancel: threading.Event | None = None,
        rows: int = 0,
    ) -> tuple[npt.NDArray[Any], KVCache]:
        """Feed ids (audio soft tokens scattered at ``<|audio|>`` positions), optionally in chunks.

        Returns the last position's logits, or with ``rows`` > 0 the logits after each of the
        last ``rows`` ids [rows, vocab] (those ids are fed together in the last run: drafted
        tokens riding on the prefill are verified there).
        """
        if not ids:
            raise ValueError("prefill needs at least one token")
        embeds, per_layer = self.embed(ids)
        positions = np.flatnonzero(np.asarray(ids) == self.tokens.audio)
        if positions.size:
            if audio is None or audio.shape[0] != positions.size:
                got = 0 if audio is None else audio.shape[0]
                raise BrainError(
                    f"{positions.size} audio placeholders but {got} audio soft tokens",
                    code="audio_token_mismatch",
                )
            embeds = embeds.copy()
            embeds[0, positions] = audio.astype(embeds.dtype, copy=False)
        rows = min(max(0, rows), len(ids))
        body = len(ids) - rows
        step = chunk if chunk > 0 else max(1, body)
        logits: npt.NDArray[Any] | None = None
        for start in range(0, body, step):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during prefill")
            end = min(body, start + step)
            logits, cache = self.forward(cache, embeds[:, start:end], per_layer[:, start:end])
        if rows:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during prefill")
            logits, cache = self.forward(cache, embeds[:, body:], per_layer[:, body:], every_position=True)
        if logits is None:  # pragma: no cover - ids is non-empty
            raise ValueError("nothing was fed")
        return logits, cache

    def verify(
        self, cache: KVCache, ids: Sequence[int], *, cancel: threading.Event | None = None
    ) -> tuple[npt.NDArray[Any], KVCache]:
        """Feed ids in one pass; the logits after each of them [len(ids), vocab] and the extended cache."""
        if not ids:
            raise ValueError("verify needs at least one token")
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before a decoder pass")
        embeds, per_layer = self.embed(ids)
        return self.forward(cache, embeds, per_layer, every_position=True)

    def verify_rows(
        self, cache: KVCache, rows: Sequence[Sequence[int]], *, cancel: threading.Event | None = None
    ) -> tuple[npt.NDArray[Any], Callable[[int, int], KVCache]]:
        """Feed several continuations of ``cache`` in one decoder pass, one batch row each.

        The past is replicated per row; rows shorter than the longest are padded at their end
        (causal attention: a position never sees a later one, so padding changes nothing before
        it). Returns the logits after each id of each row [rows, longest, vocab] and a function
        giving row r's cache after ``length`` tokens in all (the kept part of one row, copied so
        the batch is freed).
        """
        if not rows or not all(rows):
            raise ValueError("verify_rows needs non-empty rows")
        if not self.batched:
            raise BrainError("this decoder graph has a fixed batch size: no branch rows",
                             code=ErrorCode.NO_BATCH)
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled before a decoder pass")
        count, seq = len(rows), max(len(r) for r in rows)
        ids = np.full((count, seq), self.tokens.pad, dtype=np.int64)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = row
        embeds, per_layer = self._embed_rows(ids)
        outputs = self._run_decoder(cache, embeds, per_layer, keep=seq)
        logits = outputs[0][:, -seq:].astype(np.float32, copy=False)
        presents = outputs[1:]
        limits = [cache.length + len(r) for r in rows]

        def row_cache(row: int, length: int) -> KVCache:
            if not cache.length <= length <= limits[row]:
                raise ValueError(f"row {row} holds {cache.length}..{limits[row]} tokens, not {length}")
            keys = tuple(np.ascontiguousarray(k[row : row + 1, :, :length]) for k in presents[0::2])
            values = tuple(np.ascontiguousarray(v[row : row + 1, :, :length]) for v in presents[1::2])
            return KVCache(keys, values, length)

        return logits, row_cache

    def rows_problem(self, cache: KVCache) -> str | None:
        """Why branch rows cannot share a pass on this decoder graph (None: they can).

        A dynamic batch dimension is declared by the onnx-community exports; this also runs
        two one-token rows after ``cache`` and compares each with the same token fed alone.
        """
        if not self.batched:
            return "the decoder graph has a fixed batch size"
        ids = [self.tokens.pad, self.tokens.bos]
        try:
            rows, _ = self.verify_rows(cache, [[ids[0]], [ids[1]]])
            for index, token in enumerate(ids):
                alone, _ = self.verify(cache, [token])
                if not np.allclose(rows[index, 0], alone[0], rtol=1e-2, atol=1e-2):
                    return "batch rows give other logits than the same tokens fed alone"
        except Exception as exc:  # onnxruntime raises its own types for shape errors
            return f"a batch of two rows fails ({exc})"
        return None

    def generate(
        self,
        cache: KVCache,
        logits: npt.NDArray[Any],
        *,
        max_new_tokens: int,
        sampler: Sampler,
        cancel: threading.Event | None = None,
        constraint: Constraint | None = None,
        opened: Any = None,
    ) -> Generation:
        """Decode from ``logits`` until a stop id or the budget; the cancel flag is checked every step.

        With ``constraint`` (a tool-call grammar) that policy decodes instead, over this runtime;
        ``opened`` is what its own prefill returned (a draft verified with the prompt).
        """
        if constraint is not None:
            return constraint.generate(
                self,
                cache,
                logits,
                max_new_tokens=max_new_tokens,
                sampler=sampler,
                cancel=cancel,
                opened=opened,
            )
        stops = self.tokens.stop
        tokens: list[int] = []
        steps = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during decoding")
            token = sampler(logits)
            tokens.append(token)
            if token in stops:
                return Generation(tuple(tokens), token, cache, (), steps)
            if len(tokens) >= max_new_tokens:
                return Generation(tuple(tokens), None, cache, (token,), steps)
            lookup = self.tokens.pad if token == self.tokens.audio else token
            embeds, per_layer = self.embed_session.run(
                self._embed_names, {"input_ids": np.array([[lookup]], dtype=np.int64)}
            )
            logits, cache = self.forward(cache, embeds, per_layer)
            steps += 1

    @property
    def lock(self) -> threading.Lock:
        """Serialises turns that share this runtime."""
        return self._lock
