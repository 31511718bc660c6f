"""What a skill is given: settings, a state folder, and small seams to the rest of the house.

Skills never import the daemon, the MQTT client or a TTS sink. They receive these
protocols; the daemon passes real implementations, tests pass simple ones. The
defaults here log instead of speaking or publishing, so skills run anywhere.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from assistant.config import Settings

_LOGGER = logging.getLogger(__name__)

_CURRENT_SITE: contextvars.ContextVar[str | None] = contextvars.ContextVar("assistant_site", default=None)


def current_site() -> str | None:
    """The site whose call the running handler serves (set by the router), else None."""
    return _CURRENT_SITE.get()


def set_current_site(site: str | None) -> contextvars.Token[str | None]:
    """Mark the site of the call about to run; the router calls this around handlers."""
    return _CURRENT_SITE.set(site)


class Clock(Protocol):
    """Time as skills see it; injectable so tests never sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (timeouts)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (what survives a restart)."""
        ...

    def now(self) -> dt.datetime:
        """Current local date and time, time-zone aware."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def monotonic(self) -> float:
        """time.monotonic()."""
        return time.monotonic()

    def time(self) -> float:
        """time.time()."""
        return time.time()

    def now(self) -> dt.datetime:
        """Local time with the system's time zone."""
        return dt.datetime.now().astimezone()


class ManualClock:
    """A clock that moves only when told to: for tests and simulations."""

    def __init__(self, wall: float = 1_800_000_000.0, tz: dt.tzinfo = dt.UTC) -> None:
        self._wall = wall
        self._mono = 1000.0
        self.tz = tz
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        """Current monotonic reading."""
        with self._lock:
            return self._mono

    def time(self) -> float:
        """Current wall-clock reading."""
        with self._lock:
            return self._wall

    def now(self) -> dt.datetime:
        """Current wall-clock time in ``tz``."""
        return dt.datetime.fromtimestamp(self.time(), tz=self.tz)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        with self._lock:
            self._wall += seconds
            self._mono += seconds


class Notifier(Protocol):
    """Announcements and events that happen outside a request (a timer ending)."""

    def announce(self, text: str, site: str | None = None) -> None:
        """Speak ``text`` at ``site`` (None: this satellite's own site)."""
        ...

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Report an event to the outside world (MQTT, once it is wired)."""
        ...


class LogNotifier:
    """Default notifier: writes announcements and events to the log."""

    def announce(self, text: str, site: str | None = None) -> None:
        """Log the announcement."""
        _LOGGER.info("announce site=%s: %s", site, text)

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Log the event."""
        _LOGGER.info("event %s %s", name, dict(data))


class Publish(Protocol):
    """Publish a payload on an MQTT topic (the MQTT client implements it)."""

    def __call__(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        """Send one message; raises an AssistantError subclass on failure."""
        ...


class AssistantController(Protocol):
    """The assistant's own controls, implemented by the daemon."""

    def stop(self, site: str | None) -> None:
        """Stop speaking / cancel what the assistant is doing at ``site``."""
        ...

    def get_volume(self) -> int:
        """Output volume in percent, 0..100."""
        ...

    def set_volume(self, percent: int) -> None:
        """Set output volume in percent, 0..100."""
        ...

    def is_muted(self) -> bool:
        """Whether output is muted."""
        ...

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute output."""
        ...


class InMemoryController:
    """Default controller: remembers volume and mute; stop only counts."""

    def __init__(self, volume: int = 50) -> None:
        self._lock = threading.Lock()
        self._volume = volume
        self._muted = False
        self.stops = 0

    def stop(self, site: str | None) -> None:
        """Count the stop."""
        with self._lock:
            self.stops += 1

    def get_volume(self) -> int:
        """Remembered volume."""
        with self._lock:
            return self._volume

    def set_volume(self, percent: int) -> None:
        """Remember the volume, clamped to 0..100."""
        with self._lock:
            self._volume = max(0, min(100, int(percent)))

    def is_muted(self) -> bool:
        """Remembered mute state."""
        with self._lock:
            return self._muted

    def set_muted(self, muted: bool) -> None:
        """Remember the mute state."""
        with self._lock:
            self._muted = muted


class Service(Protocol):
    """A long-lived helper a skill hands to the daemon (the timer runner)."""

    def start(self) -> None:
        """Begin work (threads, schedules)."""
        ...

    def stop(self) -> None:
        """End work and persist state; returns promptly."""
        ...


def _no_publish(topic: str, payload: str | bytes, retain: bool = False) -> None:
    from assistant.errors import ToolError  # noqa: PLC0415 - tiny, keeps the import graph flat

    raise ToolError("No MQTT connection is configured.", code="mqtt_disabled")


@dataclass(frozen=True)
class SkillContext:
    """Everything a skill's ``setup(ctx)`` may use."""

    settings: Settings = field(default_factory=Settings)
    state_dir: Path = field(default_factory=lambda: Settings().state_dir)
    notifier: Notifier = field(default_factory=LogNotifier)
    publish: Publish = _no_publish
    clock: Clock = field(default_factory=SystemClock)
    controller: AssistantController = field(default_factory=InMemoryController)
    services: list[Service] = field(default_factory=list)
    """Services registered by skills; the daemon starts and stops them."""

    def add_service(self, service: Service) -> None:
        """Hand a long-lived helper to the daemon (started after loading, stopped at exit)."""
        self.services.append(service)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SkillContext:
        """A context for ``settings`` with its state_dir; other seams from ``overrides``."""
        return cls(settings=settings, state_dir=settings.state_dir, **overrides)
