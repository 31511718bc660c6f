"""Announcements (a timer that ended) for the satellite whose site asked, handed to the hub.

Built before the hub and the skills (compose builds it first, like the orchestrator's
inbox) so that the skills' notifier can be given it; the hub attaches to it when it
runs. Called from any thread (the timer runner); cheap and never blocks.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable

_LOGGER = logging.getLogger(__name__)

EARLY_LIMIT = 10
"""Announcements kept while no hub is attached yet (start-up); older ones are dropped."""

Target = Callable[[str, str], None]
"""(text, site): must be thread-safe and return at once."""


class SatelliteAnnouncer:
    """Routes ``announce(text, site)`` for satellite sites to the running hub."""

    def __init__(self, sites: Iterable[str]) -> None:
        self.sites = frozenset(sites)
        self._lock = threading.Lock()
        self._target: Target | None = None
        self._early: deque[tuple[str, str]] = deque(maxlen=EARLY_LIMIT)

    def announce(self, text: str, site: str | None) -> bool:
        """True when ``site`` is a satellite's and the announcement was taken for it."""
        if site is None or site not in self.sites:
            return False
        with self._lock:
            target = self._target
            if target is None:
                if len(self._early) == self._early.maxlen:
                    _LOGGER.warning("announcement for %s dropped: too many before the hub started", site)
                self._early.append((text, site))
                return True
        target(text, site)
        return True

    def attach(self, target: Target) -> None:
        """The hub is running: hand it what came early, then everything new."""
        with self._lock:
            self._target = target
            early, self._early = list(self._early), deque(maxlen=EARLY_LIMIT)
        for text, site in early:
            target(text, site)

    def detach(self) -> None:
        """The hub stopped: keep what comes (bounded) for the next one."""
        with self._lock:
            self._target = None
