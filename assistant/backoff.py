"""Exponential backoff for anything that reconnects: a microphone, a command, the broker."""

from __future__ import annotations

import threading


class Backoff:
    """Delays ``initial_s``, then doubling (``factor``), capped at ``max_s``; ``reset`` after success."""

    def __init__(self, initial_s: float, max_s: float, factor: float = 2.0) -> None:
        if initial_s <= 0 or max_s < initial_s or factor < 1:
            raise ValueError(f"bad backoff bounds: initial {initial_s}, max {max_s}, factor {factor}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self._next = initial_s
        self.attempts = 0
        """Delays handed out since the last reset."""

    def next(self) -> float:
        """The delay to wait now (and advance to the following one)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.max_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Success: the next failure starts from the initial delay again."""
        self._next = self.initial_s
        self.attempts = 0

    def wait(self, stop: threading.Event) -> bool:
        """Sleep the next delay; False when ``stop`` was set (give up), at once if so."""
        return not stop.wait(self.next())
