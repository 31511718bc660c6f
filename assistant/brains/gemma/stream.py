"""Speech streamed into the decoder while the user speaks, with the stock onnx-community graphs.

The Gemma 4 audio encoder is causal at 40 ms granularity (reference
gemma4-audio-streaming.md): after N samples of an utterance, soft tokens
``[0, floor((N-1)/640))`` are final and equal the whole-clip result; at most the last one
is provisional. The decoder treats audio placeholders causally. So while the user speaks,
every ``step`` re-runs the (monolithic, stateless) audio encoder over the audio so far
and prefills the *newly final* soft tokens onto the cached prefix. At the end of speech
only the last few soft tokens, ``<audio|>`` and the generation prompt are left.

With the per-step encoder graph (``onnx/audio_encoder_step.onnx``, made by
scripts/convert_audio_encoder.py; encoder_step.py) each step encodes only the newly final
soft tokens, carrying the conformer state, and ``close`` encodes only the utterance's last
tokens when the utterance starts with the audio that was streamed (causal: the early
tokens are then the final pass's).

Otherwise ``close`` re-encodes the whole utterance once (the stock encoder has no state, so this
is the offline encoder work) and checks the soft tokens prefilled early against the final
pass: the streamed cache is kept up to the first one that differs (different PCM, a
non-causal encoder graph, an fp16 drift beyond the tolerance) or that the utterance no
longer has (the daemon feeds the endpointer's hangover; the utterance ends sooner), cut
there (exact: the decoder is causal), and the rest of the suffix is prefilled on it.
When none matches, the offline suffix is prefilled on the prefix. Either way the result
is the offline turn's.

KV caches are immutable snapshots (runtime.KVCache): a stream only ever extends the
prefix into new arrays, so dropping a stream (abort, cancel, rejection) cannot change
the prefix cache.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.brains.base import SpeechStream, Streaming
from assistant.brains.gemma.encoder_step import EncoderState, window_start
from assistant.brains.gemma.features import MAX_AUDIO_TOKENS, AudioFeatures, FeatureConfig
from assistant.brains.gemma.runtime import GemmaRuntime, KVCache

__all__ = [
    "EARLY_TOLERANCE", "AudioPrefill", "SpeechStream", "StreamResult", "Streaming", "final_tokens",
    "samples_per_token",
]

KEPT_STATES = 8
"""Encoder states kept from the last steps: an utterance that ends before the streamed audio
(the endpointer's hangover) restarts the per-step encoder from the last one before its end."""

EARLY_TOLERANCE = 1e-4
"""Max |early - final| of a soft token, relative to the final pass's max |value|.

fp32 encoders differ by ~3e-6 between lengths (GEMM shapes); a real change of the
audio under a token moves it by ~1e-2 (reference gemma4-audio-streaming.md section 2).
"""


def samples_per_token(config: FeatureConfig) -> int:
    """Audio samples per soft token: 4 mel hops (640 at 16 kHz)."""
    return 4 * config.hop_length


def final_tokens(num_samples: int, config: FeatureConfig) -> int:
    """Soft tokens that no later audio can change once ``num_samples`` have arrived."""
    if num_samples <= 0:
        return 0
    return min((num_samples - 1) // samples_per_token(config), MAX_AUDIO_TOKENS)


@dataclass(frozen=True)
class StreamResult:
    """The decoder state after the whole utterance and the generation prompt."""

    logits: npt.NDArray[Any]
    cache: KVCache
    audio_tokens: int
    """Soft tokens of the utterance."""
    early_tokens: int
    """Soft tokens prefilled while the user spoke (0 after a re-prefill)."""
    prefill_tokens: int
    """Tokens prefilled after the end of speech."""
    encoder_tokens: int
    """Soft tokens the encoder produced after the end of speech (the whole clip: stock graph)."""
    reprefilled: bool
    """True when no early token matched the final pass and the suffix was prefilled anew."""
    dropped: int = 0
    """Early tokens cut off the streamed cache because the final pass differs from them (or ends before)."""


class AudioPrefill:
    """Incremental audio prefill onto one prefix; not thread-safe (the brain serialises it)."""

    def __init__(
        self, runtime: GemmaRuntime, prefix: KVCache, *, chunk: int = 0, tolerance: float = EARLY_TOLERANCE
    ) -> None:
        self.runtime = runtime
        self.prefix = prefix
        self.chunk = chunk
        self.tolerance = tolerance
        self._pcm = bytearray()
        self._cache = prefix
        self._rows: list[npt.NDArray[Any]] = []
        self._done = 0  # soft tokens in self._cache
        self._encoded_samples = 0  # samples seen by the last step
        self.steps = 0
        self.early_encoder_tokens = 0
        self._encoder = runtime.step_encoder
        self._states: deque[EncoderState] = deque(maxlen=KEPT_STATES)
        if self._encoder is not None:
            self._states.append(self._encoder.start())

    # -- while the user speaks ------------------------------------------------------------

    def add(self, pcm: bytes) -> None:
        """Append 16 kHz mono int16 PCM (no work is done here)."""
        self._pcm += pcm

    @property
    def samples(self) -> int:
        """Samples received so far."""
        return len(self._pcm) // 2

    @property
    def pending_samples(self) -> int:
        """Samples received since the last step."""
        return self.samples - self._encoded_samples

    @property
    def early_tokens(self) -> int:
        """Soft tokens prefilled so far."""
        return self._done

    def step(self, cancel: threading.Event | None = None) -> int:
        """Encode the audio so far and prefill the newly final soft tokens; returns how many."""
        samples = self.samples
        self._encoded_samples = samples
        final = final_tokens(samples, self.runtime.features.config)
        if final <= self._done:
            return 0
        state = self._states[-1] if self._states else None
        if self._encoder is not None and state is not None:
            # Only the frames this step reads: the extractor's cost stays per step, not per utterance.
            first_sample, first_frame = window_start(self._done, self.runtime.features.config.hop_length)
            pcm = np.frombuffer(bytes(self._pcm[first_sample * 2 : samples * 2]), dtype="<i2")
            window = self.runtime.features(pcm)
            new, state = self._encoder.step(state, window, final, first_frame=first_frame)
            self.early_encoder_tokens += int(new.shape[0])
        else:
            pcm = np.frombuffer(bytes(self._pcm[: samples * 2]), dtype="<i2")
            features = self.runtime.features(pcm)
            if features.num_tokens < final:  # cannot happen with the stock extractor; be safe
                final = features.num_tokens
                if final <= self._done:
                    return 0
            audio = self.runtime.encode_audio(features)
            self.early_encoder_tokens += int(audio.shape[0])
            new = audio[self._done : final]
        tokens = self.runtime.tokens
        ids = ([tokens.audio_open] if self._done == 0 else []) + [tokens.audio] * int(new.shape[0])
        _, self._cache = self.runtime.prefill(self._cache, ids, audio=new, chunk=self.chunk, cancel=cancel)
        self._rows.append(np.array(new, copy=True))
        self._done = final
        if state is not None:  # only once the tokens are in the cache (a cancelled prefill keeps both behind)
            self._states.append(state)
        self.steps += 1
        return int(new.shape[0])

    # -- end of speech --------------------------------------------------------------------

    def _matching(self, audio: npt.NDArray[Any]) -> int:
        """How many leading early soft tokens equal the final pass (within the tolerance).

        The decoder is causal, so the streamed cache is exact up to the first token that
        differs; a clip that ends before the streamed audio did (the daemon feeds the
        endpointer's hangover, the utterance keeps only the pre-roll of it) or a changed
        token keeps what came before it.
        """
        if self._done == 0:
            return 0
        count = min(self._done, int(audio.shape[0]))
        if count == 0:
            return 0
        early = np.concatenate(self._rows, axis=0)[:count].astype(np.float32)
        final = audio[:count].astype(np.float32)
        scale = max(float(np.max(np.abs(audio).astype(np.float32))), 1e-6)
        bad = np.flatnonzero(np.max(np.abs(early - final), axis=1) > self.tolerance * scale)
        return int(bad[0]) if bad.size else count

    def close(
        self,
        pcm: bytes,
        tail: Sequence[int],
        cancel: threading.Event | None = None,
        *,
        audio: npt.NDArray[Any] | None = None,
        features: AudioFeatures | None = None,
    ) -> StreamResult | None:
        """Finish with the whole utterance ``pcm`` and the ``tail`` ids; None when it has no audio token.

        ``audio`` may pass the utterance's soft tokens when the caller encoded them already,
        ``features`` its features (computed here otherwise).
        """
        encoded: int | None = None
        if audio is None:
            if features is None:
                features = self.runtime.features(np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2"))
            if features.num_tokens == 0:
                return None
            stepped = self._stepped(pcm, features)
            if stepped is None:
                audio = self.runtime.encode_audio(features)
            else:
                audio, encoded = stepped
        count = int(audio.shape[0])
        tokens = self.runtime.tokens
        done = self._matching(audio)
        reprefilled = self._done > 0 and done == 0
        if done == 0:
            cache = self.prefix
        elif done == self._done:
            cache = self._cache
        else:  # keep the prefix, <|audio> and the matching tokens: exact, the decoder is causal
            cache = _truncated(self._cache, self.prefix.length + 1 + done)
        ids = (
            ([tokens.audio_open] if done == 0 else [])
            + [tokens.audio] * (count - done)
            + [tokens.audio_close]
            + list(tail)
        )
        logits, cache = self.runtime.prefill(cache, ids, audio=audio[done:], chunk=self.chunk, cancel=cancel)
        encoder_tokens = count if encoded is None else encoded
        return StreamResult(
            logits, cache, count, done, len(ids), encoder_tokens, reprefilled, self._done - done
        )

    def _stepped(self, pcm: bytes, features: AudioFeatures) -> tuple[npt.NDArray[Any], int] | None:
        """The utterance's soft tokens from early ones and the per-step encoder (with how many it made).

        The encoder is causal: token t needs samples ``[0, 640·(t+1)]``. The early tokens
        the utterance shares with the stream (the same samples, final in both) are kept up
        to the last kept encoder state at or before them, and the rest is encoded from that
        state. None when no state fits (the caller runs the stock encoder).
        """
        if self._encoder is None or not self._states:
            return None
        per = samples_per_token(self.runtime.features.config)
        shared = min(self._done, final_tokens(len(pcm) // 2, self.runtime.features.config))
        need = 2 * (per * shared + 1) if shared else 0
        if pcm[:need] != bytes(self._pcm[:need]):
            return None
        state = next((s for s in reversed(self._states) if s.done <= shared), None)
        if state is None:
            return None
        parts = [np.concatenate(self._rows, axis=0)[: state.done]] if state.done else []
        if features.num_tokens > state.done:
            last, _ = self._encoder.step(state, features, features.num_tokens)
            parts.append(last)
        if not parts:
            return None
        return np.concatenate(parts, axis=0), features.num_tokens - state.done

    def drop(self) -> None:
        """Forget the streamed state (the prefix is untouched: it was never written)."""
        self._cache = self.prefix
        self._rows.clear()
        self._done = 0
        self._pcm.clear()
        self._encoded_samples = 0
        self._states.clear()
        if self._encoder is not None:
            self._states.append(self._encoder.start())


def _truncated(cache: KVCache, length: int) -> KVCache:
    """The state after the first ``length`` tokens: every slot holds the whole sequence on axis 2.

    Sliding-window layers are windowed by the decoder's mask and shared-KV layers read
    these slots, so cutting the time axis is exact. The streamed cache is never written
    (the cut is copied, contiguous for onnxruntime).
    """
    if not 0 <= length <= cache.length:
        raise ValueError(f"cannot cut a {cache.length}-token cache to {length}")
    if length == cache.length:
        return cache
    return KVCache(
        tuple(np.ascontiguousarray(k[:, :, :length]) for k in cache.keys),
        tuple(np.ascontiguousarray(v[:, :, :length]) for v in cache.values),
        length,
    )
