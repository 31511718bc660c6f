"""Process signals for the daemon's whole life: installed first, kept across reloads.

``assistant run`` builds its pipeline, runs it, and after a reload builds it again; signals
may arrive at any of those moments. A handler installed only while the pipeline runs
leaves the default action (terminate) in place during start-up and between two pipelines,
so a second SIGHUP or a push-to-talk SIGUSR1 at the wrong moment killed the daemon.
``SignalRelay`` is installed before anything else and stays installed: while a pipeline
runs, signals are handed to its event loop; while none runs, they wait (SIGTERM/SIGINT,
one coalesced SIGHUP) or are dropped with a log line (SIGUSR1: nobody listens yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType

_LOGGER = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP
LISTEN_SIGNAL = signal.SIGUSR1
HANDLED = (*STOP_SIGNALS, RELOAD_SIGNAL, LISTEN_SIGNAL)

SignalHandler = Callable[[], None]


class SignalRelay:
    """Routes SIGTERM/SIGINT, SIGHUP and SIGUSR1 to whichever pipeline runs now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: Mapping[int, SignalHandler] = {}
        self._previous: dict[int, object] = {}
        self.stop_requested = False
        """A stop signal arrived (at any time): the daemon must not start another pipeline."""
        self._reload_waiting = False

    def install(self) -> None:
        """Install the process-wide handlers (main thread only); idempotent."""
        for sig in HANDLED:
            if sig not in self._previous:
                self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)

    def uninstall(self) -> None:
        """Restore what was installed before (tests; the process normally exits instead)."""
        for sig, previous in self._previous.items():
            with contextlib.suppress(TypeError, ValueError):
                signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def attach(self, loop: asyncio.AbstractEventLoop, handlers: Mapping[int, SignalHandler]) -> None:
        """From now on, run ``handlers[sig]`` on ``loop``; signals that waited are delivered."""
        with self._lock:
            self._loop = loop
            self._handlers = dict(handlers)
            stop, reload = self.stop_requested, self._reload_waiting
            self._reload_waiting = False
        if stop:
            self._deliver(signal.SIGTERM)
        elif reload:
            self._deliver(RELOAD_SIGNAL)

    def detach(self) -> None:
        """The pipeline is gone: signals wait for the next one."""
        with self._lock:
            self._loop = None
            self._handlers = {}

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes: only hand the work on.
        if signum in STOP_SIGNALS:
            self.stop_requested = True
        with self._lock:
            attached = self._loop is not None
            if not attached and signum == RELOAD_SIGNAL:
                self._reload_waiting = True  # several while starting: one reload check
        if attached:
            self._deliver(signum)
        elif signum == LISTEN_SIGNAL:
            _LOGGER.warning("SIGUSR1 (push-to-talk) ignored: the pipeline is not running yet")
        elif signum == RELOAD_SIGNAL:
            _LOGGER.info("SIGHUP while starting: the settings are checked once the pipeline runs")

    def _deliver(self, signum: int) -> None:
        with self._lock:
            loop, handler = self._loop, self._handlers.get(signum)
        if loop is None or handler is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(handler)


_PROCESS_RELAY: SignalRelay | None = None


def process_relay() -> SignalRelay:
    """The process's one relay, (re)installed (main thread only)."""
    global _PROCESS_RELAY  # noqa: PLW0603 - one set of signal handlers per process
    if _PROCESS_RELAY is None:
        _PROCESS_RELAY = SignalRelay()
    _PROCESS_RELAY.install()
    return _PROCESS_RELAY
