"""The daemon's life as a process: signals, systemd readiness and watchdog, reload checks.

Signals for the daemon's whole life: installed first, kept across reloads.

``assistant run`` builds its pipeline, runs it, and after a reload builds it again; signals
may arrive at any of those moments. A handler installed only while the pipeline runs
leaves the default action (terminate) in place during start-up and between two pipelines,
so a second SIGHUP or a push-to-talk SIGUSR1 at the wrong moment killed the daemon.
``SignalRelay`` is installed before anything else and stays installed: while a pipeline
runs, signals are handed to its event loop; while none runs, they wait (SIGTERM/SIGINT,
one coalesced SIGHUP) or are dropped with a log line (SIGUSR1: nobody listens yet).

``SystemdStatus`` tells systemd READY / STATUS / STOPPING for the orchestrator,
``Watchdog`` pings WATCHDOG=1 while the pipeline is healthy, and ``ReloadCheck`` reads and
validates the settings on SIGHUP: only valid, changed settings are accepted, and a refused
reload changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from assistant import sdnotify
from assistant.config import Settings, load_settings
from assistant.errors import ConfigError

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


# --------------------------------------------------------------------------- systemd


class SystemdStatus:
    """The orchestrator's StatusReporter over sd_notify (no-ops outside systemd)."""

    def ready(self, status: str) -> None:
        """READY=1 with a status line."""
        sdnotify.ready(status)

    def status(self, status: str) -> None:
        """STATUS=..."""
        sdnotify.status(status)

    def stopping(self, status: str) -> None:
        """STOPPING=1 with a status line."""
        sdnotify.stopping(status)


HealthCheck = Callable[[], "str | None"]
"""What is wrong with the pipeline now (a short reason), or None while healthy."""


class Watchdog:
    """WATCHDOG=1 every ``interval_s`` while ``check()`` finds nothing wrong.

    ``interval_s`` None takes half of systemd's watchdog interval (``WATCHDOG_USEC``); with
    no watchdog configured, ``run()`` returns at once. Pings stop while the pipeline is
    unhealthy (no audio, a stuck brain call), so systemd restarts a hung daemon.
    """

    def __init__(self, check: HealthCheck, *, interval_s: float | None = None) -> None:
        self.check = check
        self.interval_s = interval_s

    async def run(self) -> None:
        """Ping until cancelled."""
        interval = self.interval_s
        if interval is None:
            deadline_s = sdnotify.watchdog_interval_s()
            if deadline_s is None:
                return
            interval = deadline_s / 2
        was_healthy = True
        while True:
            problem = self.check()
            if problem is None:
                sdnotify.watchdog()
            elif was_healthy:
                _LOGGER.error("Pipeline unhealthy (%s): watchdog pings stop", problem)
            was_healthy = problem is None
            await asyncio.sleep(interval)


# --------------------------------------------------------------------------- reloads


class ReloadCheck:
    """SIGHUP: read and validate the settings off the loop; accept only valid, changed ones.

    ``on_accepted`` runs (on the loop) once new settings are accepted: the supervisor then
    stops the pipeline and builds a new one from ``accepted``. A refused or unchanged
    reload rebuilds nothing: the running pipeline goes on and READY=1 is sent again.
    Requests during a check are coalesced into one more check.
    """

    def __init__(self, settings: Settings, config_path: str | None, *,
                 on_accepted: Callable[[], None], status: Callable[[], str]) -> None:
        self.settings = settings
        self.config_path = config_path
        self._on_accepted = on_accepted
        self._status = status
        self.accepted: Settings | None = None
        self._busy = False
        self._again = False
        self._task: asyncio.Future[None] | None = None

    def request(self) -> None:
        """On the loop: start a check, or ask for one more after the running one."""
        if self.accepted is not None:
            return  # already reloading
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._task = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        try:
            while True:
                self._again = False
                sdnotify.reloading()
                _LOGGER.info("Reloading: checking the settings")
                started = time.monotonic()
                new = await asyncio.to_thread(self._load)
                if new is not None and new != self.settings:
                    self.accepted = new
                    self._on_accepted()
                    return
                if new is not None:
                    _LOGGER.info("Reload: the settings are unchanged; nothing to do (%.0f ms)",
                                 (time.monotonic() - started) * 1000)
                sdnotify.ready(self._status())
                if not self._again:
                    return
        finally:
            self._busy = False

    def _load(self) -> Settings | None:
        try:
            return load_settings(self.config_path)
        except ConfigError as err:
            # Refused: the running pipeline stays as it is, and the log says exactly why.
            for problem in err.problems:
                _LOGGER.error("reload refused: %s", problem)
        except Exception as err:  # reading the file failed in an unexpected way
            _LOGGER.error("reload refused: %s", err)
        return None
