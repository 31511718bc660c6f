"""The orchestrator's inbox: small typed commands posted from any thread, read on its loop.

Everything outside the state machine that wants something of it (the Home Assistant
device, the assistant-control skill, timers, signals, the CLI) posts one of these
commands; nothing calls into the orchestrator's internals, and nothing needs the
orchestrator to exist first: the inbox is built before the parts that post into it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushToTalk:
    """Start listening now, without the wake word (HA's listen button, SIGUSR1)."""


@dataclass(frozen=True, slots=True)
class Announce:
    """Speak ``text`` when idle (timers, HA's say entity, a dropped command); queued while busy.

    With ``sound`` (int16 mono PCM at ``rate``: an announcement Home Assistant sent our
    satellite) that is played instead, where the speaker can play sound. ``done`` is called
    (on the orchestrator's loop) once it is over: played, skipped, or cleared by a stop.
    """

    text: str
    sound: bytes = b""
    rate: int = 0
    done: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class SetMuted:
    """Mute or unmute the wake word (push-to-talk still works)."""

    muted: bool
    from_home: bool = False
    """Home Assistant's switch said so (its device has already shown the new state)."""


@dataclass(frozen=True, slots=True)
class SetVolume:
    """Set the output volume in percent (0..100)."""

    percent: int
    from_home: bool = False
    """Home Assistant's number entity said so (its device has already shown the new value)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop what the assistant is doing (speech, thinking, listening): the "stop" skill."""


@dataclass(frozen=True, slots=True)
class Shutdown:
    """Finish ``Orchestrator.run()`` gracefully (SIGTERM, an accepted reload, end of audio)."""


Command = PushToTalk | Announce | SetMuted | SetVolume | Stop | Shutdown


class Inbox:
    """A bounded, thread-safe queue of commands for one orchestrator.

    ``post`` works from any thread (MQTT callbacks, worker threads, signal relays) and
    before the loop runs (held until it attaches). When full, the command is dropped and
    counted, except ``Shutdown``, which is never lost: it also sets ``shutdown_requested``.
    """

    def __init__(self, maxsize: int = 32) -> None:
        self.maxsize = maxsize
        self.dropped = 0
        self.shutdown_requested = False
        self._lock = threading.Lock()
        self._held: collections.deque[Command] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Command] | None = None

    def post(self, command: Command) -> None:
        """Hand ``command`` to the orchestrator (any thread; never blocks)."""
        if isinstance(command, Shutdown):
            self.shutdown_requested = True
        with self._lock:
            loop = self._loop
            if loop is None:
                if len(self._held) >= self.maxsize and not isinstance(command, Shutdown):
                    self._drop(command)
                    return
                self._held.append(command)
                return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._put(command)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody reads
                loop.call_soon_threadsafe(self._put, command)

    def attach(self) -> None:
        """On the reading loop: start delivering, held commands first."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Command] = asyncio.Queue()
        with self._lock:
            self._loop, self._queue = loop, queue
            held, self._held = list(self._held), collections.deque()
        for command in held:
            self._put(command)

    def detach(self) -> None:
        """The reader is gone: later posts are held again (and dropped when they overflow)."""
        with self._lock:
            self._loop, self._queue = None, None

    async def get(self) -> Command:
        """The next command (on the attached loop)."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("Inbox.get() before attach()")
        return await queue.get()

    def _put(self, command: Command) -> None:
        queue = self._queue
        if queue is None:
            return
        if queue.qsize() >= self.maxsize and not isinstance(command, Shutdown):
            self._drop(command)
            return
        queue.put_nowait(command)

    def _drop(self, command: Command) -> None:
        self.dropped += 1
        _LOGGER.warning("Orchestrator inbox full: %s dropped (%d so far)",
                        type(command).__name__, self.dropped)
