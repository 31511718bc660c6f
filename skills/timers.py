"""Timers skill: start, cancel, remaining, list; persisted so a restart keeps them.

Timers are stored as wall-clock end times in ``<state_dir>/timers.json`` (written
atomically on every change). A timer that ended while the assistant was down
fires at start-up; one that ended more than ``MISSED_GRACE_S`` ago is announced
as missed. When a timer ends the notifier announces it at the site that started
it and publishes a ``timer_finished`` event.

``TimerService`` is both the tool provider and the runner: ``start()`` / ``stop()``
manage one daemon-owned thread; ``tick()`` does the work and is what tests call
with a manual clock.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from assistant.errors import ToolError
from assistant.tools.context import Clock, Notifier, SkillContext, current_site
from assistant.tools.declare import tool
from assistant.tools.schema import Field, Range

_LOGGER = logging.getLogger("assistant.skills.timers")

STATE_FILE = "timers.json"
MISSED_GRACE_S = 60.0
"""A timer found more than this far past its end at start-up is reported as missed."""
MAX_TIMERS = 20
_POLL_S = 1.0  # the runner re-reads the wall clock at least this often (clock changes, suspend)
_IDLE_WAIT_S = 60.0  # with no timer running nothing can fall due: adding one wakes the runner at once

Label = Annotated[str, Field(description="Name of the timer, e.g. pasta.", min_length=1, max_length=40)]


@dataclass(frozen=True)
class Timer:
    """One running timer; ``ends_at`` is wall-clock seconds since the epoch."""

    id: str
    label: str | None
    duration_s: int
    ends_at: float
    site: str | None = None

    @property
    def name(self) -> str:
        """How the timer is spoken of: ``pasta timer`` or ``timer``."""
        return f"{self.label} timer" if self.label else "timer"


def spoken_duration(seconds: float) -> str:
    """``1 hour 5 minutes``, ``10 minutes``, ``1 minute and 30 seconds``, ``45 seconds``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n} {unit}{'' if n == 1 else 's'}"
             for n, unit in ((hours, "hour"), (minutes, "minute"), (secs, "second")) if n]
    if not parts:
        return "0 seconds"
    if len(parts) == 1:
        return parts[0]
    return " ".join(parts[:-1]) + " and " + parts[-1]


class TimerService:
    """Timer bookkeeping, persistence, the runner thread and the timer tools."""

    def __init__(self, state_dir: Path, clock: Clock, notifier: Notifier) -> None:
        self._path = Path(state_dir) / STATE_FILE
        self._clock = clock
        self._notifier = notifier
        self._lock = threading.RLock()
        self._timers: dict[str, Timer] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # ---------------------------------------------------------------- runner

    def start(self) -> None:
        """Fire what ended while down, then run the runner thread."""
        self.tick()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the runner thread and persist (timers keep running across the restart)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=2.0)
        with self._lock:
            self._save()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the runner must outlive one bad announcement
                _LOGGER.exception("timer tick failed")
            due = self.next_due()
            wait = _IDLE_WAIT_S if due is None else min(_POLL_S, max(0.0, due - self._clock.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def next_due(self) -> float | None:
        """Wall-clock end of the next timer, or None."""
        with self._lock:
            return min((t.ends_at for t in self._timers.values()), default=None)

    def tick(self) -> list[Timer]:
        """Finish every timer whose end has passed: announce, publish, persist. Returns them."""
        now = self._clock.time()
        with self._lock:
            due = sorted((t for t in self._timers.values() if t.ends_at <= now), key=lambda t: t.ends_at)
            for timer in due:
                del self._timers[timer.id]
            if due:
                self._save()
        for timer in due:
            missed = now - timer.ends_at > MISSED_GRACE_S
            text = f"Your {timer.name} ended while I was away." if missed else f"Your {timer.name} is done."
            try:
                self._notifier.announce(text, timer.site)
            except Exception:  # a failing TTS sink must not lose the event
                _LOGGER.exception("timer %s: announcement failed", timer.id)
            try:
                self._notifier.publish_event("timer_finished", {**asdict(timer), "missed": missed})
            except Exception:
                _LOGGER.exception("timer %s: event publish failed", timer.id)
        return due

    def timers(self) -> list[Timer]:
        """Running timers, soonest first."""
        with self._lock:
            return sorted(self._timers.values(), key=lambda t: t.ends_at)

    # ---------------------------------------------------------------- tools

    @tool(
        reply="{what} set for {duration}.",
        sentences=(
            "set [a] timer for {minutes} minute[s]",
            "set [a] timer for {seconds} second[s]",
            "set [a] timer for {hours} hour[s]",
            "set [a] timer for {minutes} minute[s] and {seconds} second[s]",
            "set [a] timer for {hours} hour[s] and {minutes} minute[s]",
            "set [a|an] {label} timer for {minutes} minute[s]",
            "(start|create) [a] timer for {minutes} minute[s]",
            "[set] [a] {minutes} minute timer",
            "timer for {minutes} minute[s]",
        ),
    )
    def start_timer(
        self,
        hours: Annotated[int, Range(0, 23)] = 0,
        minutes: Annotated[int, Range(0, 1440)] = 0,
        seconds: Annotated[int, Range(0, 3600)] = 0,
        label: Label | None = None,
    ) -> dict[str, Any]:
        """Start a countdown timer.

        Args:
            hours: Hours to count down.
            minutes: Minutes to count down.
            seconds: Seconds to count down.
            label: Optional name of the timer, e.g. pasta.
        """
        total = hours * 3600 + minutes * 60 + seconds
        if total <= 0:
            raise ToolError("How long should the timer run?", code="no_duration")
        if total > 24 * 3600:
            raise ToolError("Timers can run for at most a day.", code="out_of_range")
        label = _clean_label(label)
        with self._lock:
            if len(self._timers) >= MAX_TIMERS:
                raise ToolError(f"You already have {MAX_TIMERS} timers.", code="too_many")
            if label and self._find(label):
                raise ToolError(f"There is already a {label} timer.", code="exists")
            timer = Timer(uuid.uuid4().hex[:8], label, total, self._clock.time() + total, current_site())
            self._timers[timer.id] = timer
            self._save()
        self._wake.set()
        what = f"{label.capitalize()} timer" if label else "Timer"
        return {"id": timer.id, "what": what, "duration": spoken_duration(total), "label": label,
                "duration_s": total}

    @tool(
        reply="{what} cancelled.",
        sentences=(
            "(cancel|stop|delete) [the|my] timer",
            "(cancel|stop|delete) [the|my] {label} timer",
        ),
    )
    def cancel_timer(self, label: Label | None = None) -> dict[str, Any]:
        """Cancel a timer: the one with this label, or the only one running.

        Args:
            label: Name of the timer to cancel; may be left out when only one runs.
        """
        with self._lock:
            timer = self._pick(label, "cancel")
            del self._timers[timer.id]
            self._save()
        self._wake.set()
        what = f"{timer.label.capitalize()} timer" if timer.label else "Timer"
        return {"id": timer.id, "what": what, "label": timer.label}

    @tool(
        reply="{what} cancelled.",
        sentences=("(cancel|stop|delete) all [the|my] timers",),
    )
    def cancel_all_timers(self) -> dict[str, Any]:
        """Cancel every running timer."""
        with self._lock:
            count = len(self._timers)
            self._timers.clear()
            self._save()
        self._wake.set()
        what = "No timers were running, nothing" if count == 0 else (
            "One timer" if count == 1 else f"All {count} timers")
        return {"count": count, "what": what}

    @tool(
        reply="{summary}",
        sentences=(
            "how much time is left [on [the|my] timer]",
            "how much time is left on [the|my] {label} timer",
            "how long is left on [the|my] timer",
            "how long (until|before) [the|my] timer (ends|is done|goes off)",
        ),
    )
    def timer_remaining(self, label: Label | None = None) -> dict[str, Any]:
        """Tell how much time is left on a timer.

        Args:
            label: Name of the timer; may be left out when only one runs.
        """
        with self._lock:
            timer = self._pick(label, "check")
        left = max(0.0, timer.ends_at - self._clock.time())
        return {"summary": f"{spoken_duration(left)} left on the {timer.name}.",
                "remaining_s": round(left), "label": timer.label}

    @tool(
        reply="{summary}",
        sentences=(
            "(list|what are) [the|my] timers",
            "what timers (are running|do I have)",
            "which timers are running",
        ),
    )
    def list_timers(self) -> dict[str, Any]:
        """List the running timers with the time left on each."""
        now = self._clock.time()
        timers = self.timers()
        left = [round(max(0.0, t.ends_at - now)) for t in timers]
        parts = [f"{t.name} with {spoken_duration(s)} left" for t, s in zip(timers, left, strict=True)]
        if not parts:
            summary = "You have no timers running."
        elif len(parts) == 1:
            summary = f"You have one {parts[0]}."
        else:
            summary = f"You have {len(parts)} timers: " + ", ".join(parts[:-1]) + ", and " + parts[-1] + "."
        items = [{"label": t.label, "remaining_s": s} for t, s in zip(timers, left, strict=True)]
        return {"summary": summary, "timers": items}

    # ---------------------------------------------------------------- internals

    def _find(self, label: str) -> Timer | None:
        folded = label.casefold()
        for timer in self._timers.values():
            if timer.label is not None and timer.label.casefold() == folded:
                return timer
        return None

    def _pick(self, label: str | None, verb: str) -> Timer:
        label = _clean_label(label)
        if label:
            found = self._find(label)
            if found is None:
                raise ToolError(f"There is no {label} timer.", code="not_found")
            return found
        if not self._timers:
            raise ToolError("You have no timers running.", code="not_found")
        if len(self._timers) > 1:
            raise ToolError(f"You have {len(self._timers)} timers. Which one should I {verb}?",
                            code="ambiguous")
        return next(iter(self._timers.values()))

    def _load(self) -> None:
        try:
            raw = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as err:
            _LOGGER.error("cannot read %s: %s; starting without saved timers", self._path, err)
            return
        try:
            doc = json.loads(raw)
            entries = doc["timers"] if isinstance(doc, dict) else None
            if not isinstance(entries, list):
                raise ValueError("no timers list")
        except (ValueError, KeyError) as err:
            _LOGGER.error("%s is corrupt (%s); starting without saved timers", self._path, err)
            return
        for entry in entries:
            timer = _timer_from_json(entry)
            if timer is None:
                _LOGGER.warning("%s: skipped a malformed timer entry", self._path)
                continue
            self._timers[timer.id] = timer

    def _save(self) -> None:
        """Write all timers atomically (temp file + fsync + rename); failures are logged."""
        doc = {"version": 1, "timers": [asdict(t) for t in self._timers.values()]}
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".timers.", suffix=".tmp", dir=self._path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(doc, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self._path)
                _fsync_dir(self._path.parent)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as err:
            _LOGGER.error("cannot save timers to %s: %s", self._path, err)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _clean_label(label: str | None) -> str | None:
    if label is None:
        return None
    label = " ".join(label.split())
    if label.casefold().endswith(" timer"):
        label = label[: -len(" timer")].rstrip()
    return label or None


def _timer_from_json(entry: Any) -> Timer | None:
    if not isinstance(entry, dict):
        return None
    ident, label, duration, ends_at, site = (entry.get(k) for k in
                                             ("id", "label", "duration_s", "ends_at", "site"))
    if not isinstance(ident, str) or not ident or not isinstance(duration, int) or isinstance(duration, bool):
        return None
    if not isinstance(ends_at, (int, float)) or isinstance(ends_at, bool) or not math.isfinite(ends_at):
        return None
    if label is not None and not isinstance(label, str):
        return None
    if site is not None and not isinstance(site, str):
        return None
    return Timer(ident, label, duration, float(ends_at), site)


def setup(ctx: SkillContext) -> TimerService:
    """The timer tools; the runner is handed to the daemon as a service."""
    service = TimerService(ctx.state_dir, ctx.clock, ctx.notifier)
    ctx.add_service(service)
    return service
