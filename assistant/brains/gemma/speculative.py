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

The brain's drafters (``Drafter``): ``ModelDrafter`` (a draft model kept in step with the
turn's history by common-prefix rollback, across rounds and refused drafts) and
``PromptLookup`` (n-grams of the prompt and the history, no model). ``drafted_generate`` is
the greedy loop with a drafter for free decoding; ConstrainedDecoder.generate takes the same
drafter inside its grammar (a drafted token the grammar refuses ends the draft).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from assistant.brains.gemma.runtime import Cancelled, GemmaRuntime, Generation, KVCache

_LOGGER = logging.getLogger(__name__)


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


# -- drafters the brain uses (greedy, any decoding loop) ----------------------------------------


class Drafter(Protocol):
    """Proposes the tokens that follow a turn's history (to be verified by the target).

    ``history``: every id after the turn's prompt that the target holds or is about to feed
    (generated tokens, response blocks), ending with the pick just made. The proposal is only
    a guess: the decoding loops keep a drafted token only where the target's own pick agrees.
    """

    passes: int
    """Sequential decoder passes the drafter ran (0 for prompt lookup)."""
    over_grammar: bool
    """Inside a call, propose before the grammar's own guess (a model) or only where it has none."""

    def propose(self, history: Sequence[int], k: int) -> list[int]: ...


class PromptLookup:
    """Drafts by n-gram lookup: the tokens that followed the latest earlier occurrence of the
    history's last ``n`` ids (longest ``n`` first) in the prompt (system text, tool declarations)
    and the history itself (response blocks: entity and argument names recur)."""

    def __init__(self, prompt: Sequence[int], *, max_ngram: int = 3) -> None:
        self.prompt = list(prompt)
        self.max_ngram = max(1, max_ngram)
        self.passes = 0
        self.over_grammar = False  # an n-gram of the declarations guesses worse than the grammar

    def propose(self, history: Sequence[int], k: int) -> list[int]:
        text = np.asarray([*self.prompt, *history], dtype=np.int64)
        end = text.shape[0]
        for n in range(min(self.max_ngram, end - 1), 0, -1):
            tail = text[end - n :]
            # every start i < end - n where text[i:i+n] == tail (the tail itself excluded)
            hits = np.ones(end - n, dtype=bool)
            for j in range(n):
                hits &= text[j : end - n + j] == tail[j]
            found = np.flatnonzero(hits)
            if found.size:
                start = int(found[-1]) + n
                return [int(t) for t in text[start : start + k]]
        return []


class ModelDrafter:
    """A smaller model with the same tokenizer drafting greedily on its own cache.

    Its prompt (the same ids, its own audio soft tokens) is prefilled on first use; after that
    its cache is kept equal to prompt + history by cutting back to the longest common prefix
    with what it was fed (a refused draft, a new round's response block) and feeding the rest.
    """

    def __init__(
        self,
        runtime: GemmaRuntime,
        prompt: Callable[[], tuple[npt.NDArray[Any], KVCache]],
        *,
        cancel: threading.Event | None = None,
    ) -> None:
        self.runtime = runtime
        self._prompt = prompt
        self._cancel = cancel
        """The turn's cancel flag: checked before each of the draft's passes (Cancelled ends the turn)."""
        self._base: KVCache | None = None
        self._cache: KVCache | None = None
        self._fed: list[int] = []
        self._broken = False
        self.passes = 0
        self.over_grammar = True

    def propose(self, history: Sequence[int], k: int) -> list[int]:
        if not history or k <= 0 or self._broken:
            return []
        try:
            return self._propose(history, k)
        except Cancelled:
            raise
        except Exception:  # a failing draft must not fail the turn: the target decodes on alone
            _LOGGER.exception("gemma draft model failed; decoding on without drafts this turn")
            self._broken = True
            return []

    def _propose(self, history: Sequence[int], k: int) -> list[int]:
        if self._base is None:
            _, self._base = self._prompt()
            self._cache = self._base
        cache = self._cache
        if cache is None:  # pragma: no cover - set with the base
            return []
        common = 0
        limit = min(len(self._fed), len(history) - 1)  # the last id is always fed: its logits are needed
        while common < limit and self._fed[common] == history[common]:
            common += 1
        cache = cache.truncated(self._base.length + common)
        logits, cache = self.runtime.prefill(cache, list(history[common:]), cancel=self._cancel)
        self.passes += 1
        fed = [*history]
        proposed: list[int] = []
        stops = self.runtime.tokens.stop
        while True:
            guess = int(np.argmax(logits))
            proposed.append(guess)
            if guess in stops or len(proposed) >= k:
                break
            logits, cache = self.runtime.prefill(cache, [guess], cancel=self._cancel)
            self.passes += 1
            fed.append(guess)
        self._cache, self._fed = cache, fed
        return proposed


def drafted_generate(
    model: GemmaRuntime,
    cache: KVCache,
    logits: npt.NDArray[Any],
    *,
    drafter: Drafter,
    history: Sequence[int],
    lookahead: int,
    max_new_tokens: int,
    cancel: threading.Event | None = None,
) -> tuple[Generation, int, int]:
    """Greedy decoding of ``model`` with ``drafter`` proposing ``lookahead`` tokens per pass.

    The output is the model's greedy output token for token; returns it with the drafted and
    accepted counts. ``history``: the turn's ids after its prompt that ``cache`` holds.
    """
    stops = model.tokens.stop
    tokens: list[int] = []
    steps = drafted = accepted = 0
    pick = int(np.argmax(logits))
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled during decoding")
        tokens.append(pick)
        if pick in stops:
            return Generation(tuple(tokens), pick, cache, (), steps), drafted, accepted
        if len(tokens) >= max_new_tokens:
            return Generation(tuple(tokens), None, cache, (pick,), steps), drafted, accepted
        budget = min(lookahead, max_new_tokens - len(tokens))
        proposed = drafter.propose([*history, *tokens], budget)[:budget]
        rows, verified = model.verify(cache, [pick, *proposed], cancel=cancel)
        steps += 1
        kept = 0
        while kept < len(proposed) and int(np.argmax(rows[kept])) == proposed[kept]:
            kept += 1
        drafted += len(proposed)
        accepted += kept
        cache = verified.truncated(cache.length + 1 + kept)
        for token in proposed[:kept]:
            tokens.append(token)
            if token in stops:  # a stop is never fed: the cache ends before it
                cut = cache.truncated(cache.length - 1)
                return Generation(tuple(tokens), token, cut, (), steps), drafted, accepted
        if len(tokens) >= max_new_tokens:
            return Generation(tuple(tokens), None, cache, (), steps), drafted, accepted
        pick = int(np.argmax(rows[kept]))
