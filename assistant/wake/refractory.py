"""The pure decision logic of wake-word detection: threshold and refractory time per word.

No audio and no models in here: ``decide`` takes a word, a probability and a stream time,
so tests drive it with plain numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WordRule:
    """How one word turns probabilities into detections."""

    threshold: float
    """A probability above this is a detection."""
    refractory_s: float
    """After a detection, ignore this word for this many stream seconds."""


class RefractoryGate:
    """Per-word threshold and refractory period over stream time.

    A word fires when its probability exceeds its threshold and it has not fired within
    its refractory time. The sliding-window probability stays high for several steps
    after one spoken wake word; the refractory period turns that run into one detection.
    """

    def __init__(self, rules: Mapping[str, WordRule]) -> None:
        self.rules = dict(rules)
        self._last: dict[str, float] = {}

    def decide(self, word: str, probability: float, timestamp: float) -> bool:
        """True when ``word`` fires at stream time ``timestamp`` (seconds)."""
        rule = self.rules.get(word)
        if rule is None or not probability > rule.threshold:
            return False
        last = self._last.get(word)
        if last is not None and 0.0 <= timestamp - last < rule.refractory_s:
            return False
        # A timestamp before the last one means the stream restarted: start afresh.
        self._last[word] = timestamp
        return True

    def suppress(self, timestamp: float, words: tuple[str, ...] | None = None) -> None:
        """Start the refractory period now without a detection (after our own speech, say)."""
        for word in words if words is not None else tuple(self.rules):
            self._last[word] = timestamp

    def reset(self) -> None:
        """Forget all past detections."""
        self._last.clear()
