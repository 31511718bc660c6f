"""Speculative greedy decoding: a smaller Gemma drafts, the target verifies in one batched pass.

The draft (E2B for an E4B target; any model with the same tokenizer) proposes ``k`` tokens
one by one on its own cache; the target runs once on its pick plus the ``k`` drafted
tokens and gets the logits after each. The longest drafted prefix the target's own
greedy pick agrees with is kept, plus the target's next pick after it, so the output is
token for token the target's greedy output. Both caches are cut back to what was kept
(``KVCache.truncated``: every slot holds the whole sequence, the sliding-window layers
are windowed by the mask and the shared-KV layers read the same slots, so cutting the
time axis is exact and no rejected token's KV survives).

Greedy only (temperature 0): sampling would need rejection sampling to stay exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.brains.gemma.runtime import Cancelled, GemmaRuntime, Generation, KVCache


@dataclass
class SpeculativeStats:
    """What the draft proposed and the target kept (over every round decoded)."""

    drafted: int = 0
    accepted: int = 0
    target_passes: int = 0
    draft_passes: int = 0
    rounds: list[tuple[int, int]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Accepted / drafted tokens (0 before any draft)."""
        return self.accepted / self.drafted if self.drafted else 0.0


class SpeculativeDecoder:
    """Greedy decoding of ``target`` with ``draft`` proposing ``k`` tokens per target pass."""

    def __init__(self, draft: GemmaRuntime, *, k: int = 4) -> None:
        if k < 1:
            raise ValueError("lookahead k must be at least 1")
        self.draft = draft
        self.k = k
        self.stats = SpeculativeStats()

    def prefill(self, ids: list[int], cache: KVCache | None = None) -> tuple[npt.NDArray[Any], KVCache]:
        """The draft's own prefill of the prompt (text ids; the draft has its own cache)."""
        return self.draft.prefill(cache or self.draft.empty_cache(), ids)

    def generate(
        self,
        target: GemmaRuntime,
        cache: KVCache,
        logits: npt.NDArray[Any],
        draft_cache: KVCache,
        *,
        max_new_tokens: int,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """The target's greedy tokens from ``logits``; ``draft_cache`` holds the same prompt for the draft.

        ``steps`` counts the target's sequential passes (the draft's are in ``stats``).
        """
        stops = target.tokens.stop
        tokens: list[int] = []
        steps = 0
        pick = int(np.argmax(logits))
        behind: list[int] = []  # tokens the target kept that the draft's cache does not hold yet
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during decoding")
            tokens.append(pick)
            if pick in stops:
                return Generation(tuple(tokens), pick, cache, (), steps)
            if len(tokens) >= max_new_tokens:
                return Generation(tuple(tokens), None, cache, (pick,), steps)
            budget = min(self.k, max_new_tokens - len(tokens))
            draft_logits, draft_cache = self.draft.prefill(draft_cache, [*behind, pick])
            self.stats.draft_passes += 1
            proposed: list[int] = []
            while len(proposed) < budget:
                guess = int(np.argmax(draft_logits))
                proposed.append(guess)
                if guess in stops or len(proposed) == budget:
                    break
                draft_logits, draft_cache = self.draft.prefill(draft_cache, [guess])
                self.stats.draft_passes += 1
            draft_fed = draft_cache.length  # the pick and every proposed token but the last
            rows, verified = target.verify(cache, [pick, *proposed], cancel=cancel)
            steps += 1
            self.stats.target_passes += 1
            kept = 0
            while kept < len(proposed) and int(np.argmax(rows[kept])) == proposed[kept]:
                kept += 1
            self.stats.drafted += len(proposed)
            self.stats.accepted += kept
            self.stats.rounds.append((len(proposed), kept))
            cache = verified.truncated(cache.length + 1 + kept)
            accepted = proposed[:kept]
            # The draft holds pick + proposed[:-1]: cut what the target refused, catch up the rest later.
            in_draft = min(kept, len(proposed) - 1)
            draft_cache = draft_cache.truncated(draft_fed - (len(proposed) - 1 - in_draft))
            behind = accepted[in_draft:]
            for token in accepted:
                tokens.append(token)
                if token in stops:
                    # A stop is never fed: the target's cache ends before it.
                    cut = cache.truncated(cache.length - 1)
                    return Generation(tuple(tokens), token, cut, (), steps)
            if len(tokens) >= max_new_tokens:
                return Generation(tuple(tokens), None, cache, (), steps)
            pick = int(np.argmax(rows[kept]))
