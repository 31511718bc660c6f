"""Speech streamed into the decoder while the user speaks, with the stock onnx-community graphs.

The Gemma 4 audio encoder is causal at 40 ms granularity (reference
gemma4-audio-streaming.md): after N samples of an utterance, soft tokens
``[0, floor((N-1)/640))`` are final and equal the whole-clip result; at most the last one
is provisional. The decoder treats audio placeholders causally. So while the user speaks,
every ``step`` re-runs the (monolithic, stateless) audio encoder over the audio so far
and prefills the *newly final* soft tokens onto the cached prefix. At the end of speech
only the last few soft tokens, ``<audio|>`` and the generation prompt are left.

``close`` re-encodes the whole utterance once (the stock encoder has no state, so this
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.brains.base import SpeechStream, Streaming
from assistant.brains.gemma.features import MAX_AUDIO_TOKENS, FeatureConfig
from assistant.brains.gemma.runtime import GemmaRuntime, KVCache

__all__ = [
    "EARLY_TOLERANCE", "AudioPrefill", "SpeechStream", "StreamResult", "Streaming", "final_tokens",
    "samples_per_token",
]

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
    ) -> StreamResult | None:
        """Finish with the whole utterance ``pcm`` and the ``tail`` ids; None when it has no audio token.

        ``audio`` may pass the utterance's soft tokens when the caller encoded them already.
        """
        if audio is None:
            wave = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
            features = self.runtime.features(wave)
            if features.num_tokens == 0:
                return None
            audio = self.runtime.encode_audio(features)
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
        return StreamResult(logits, cache, count, done, len(ids), count, reprefilled, self._done - done)

    def drop(self) -> None:
        """Forget the streamed state (the prefix is untouched: it was never written)."""
        self._cache = self.prefix
        self._rows.clear()
        self._done = 0
        self._pcm.clear()
        self._encoded_samples = 0


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
