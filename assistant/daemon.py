"""The orchestrator: one asyncio loop from wake word to spoken reply, as an explicit state machine.

::

    idle ──wake word / push-to-talk──► wake ──earcon──► listening ──utterance──► thinking
      ▲                                                    │ timeout                │ tool call
      │                                                    ▼                        ▼
      └──────────────────────────────── (idle) ◄── speaking ◄──────────────────── acting
                      follow-up / confirmation question: speaking ──► listening (no wake word)

The parts arrive through small protocols (frame source, wake detector, segmenter, brain,
router, TTS sink, earcons), so tests drive the whole machine with in-memory audio and
simple fakes. Blocking work (brain, synthesis, playback) runs in worker threads with a
cancel event; the loop keeps reading audio meanwhile, so a wake or stop word can barge in
while the assistant speaks, and the watchdog sees a live audio loop. The assistant never
hears itself: while it thinks or speaks, frames reach only the wake/stop detector (when
barge-in is armed) and never the segmenter.

Listeners see every event; each state change is followed by an event whose
``data["state"]`` is the new state (RUN_END carries ``idle``), which is what the Home
Assistant state sensor needs. RUN_END also carries the run's timings and the counters.

No failure of one utterance ends the daemon: every stage's error becomes a coded ERROR
event, an error earcon and a short message, and the machine returns to idle.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import inspect
import itertools
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from assistant import sdnotify
from assistant.brains.base import Brain, Router
from assistant.config import Settings
from assistant.errors import AssistantError, BrainError, TtsError
from assistant.tools.base import Tool
from assistant.tts.base import SpeakResult, TtsSink
from assistant.types import AudioFrame, Event, EventType, ToolCall, ToolResult, Utterance
from assistant.wake.detector import Detection

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

PREFETCH_SILENCE_S = 0.36
"""Quiet time after which the brain may start on an utterance before the endpointer closes
it (vad.silence_end_ms is 600 by default): enough for the 0.15 s the phrase brain keeps
after the last word plus the VAD's lag."""

ERROR_MESSAGE = "Sorry, something went wrong."
"""Spoken when a stage fails without a reply of its own."""

IDLE_BATCH_MS = 90
"""While idle, capture hands audio on in bursts this long: one thread and loop wake-up per
burst instead of per 30 ms frame, which is most of the idle CPU. It delays only the wake
word (by up to this much); listening and barge-in get every frame at once."""


class State(StrEnum):
    """Where the pipeline is; published as the assistant's state sensor."""

    IDLE = "idle"
    WAKE = "wake"
    LISTENING = "listening"
    THINKING = "thinking"
    ACTING = "acting"
    SPEAKING = "speaking"


# --------------------------------------------------------------------------- protocols


class FrameSource(Protocol):
    """Audio in: an async iterable of 16 kHz mono int16 frames (stream-time stamped)."""

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        """Frames until the source ends."""
        ...


class Segmenter(Protocol):
    """Frames in, endpointed utterances out (VAD + endpointer; see assistant.audio)."""

    def feed(self, frame: AudioFrame) -> list[Utterance]:
        """Add one frame; return the utterances it completed."""
        ...

    def reset(self) -> None:
        """Drop any utterance in progress (called when listening starts)."""
        ...


class WakeWords(Protocol):
    """Wake and stop words (assistant.wake.WakeDetector)."""

    def process(self, pcm: bytes, timestamp: float) -> Detection | None:
        """Feed one frame at stream time ``timestamp``; a detection or None."""
        ...

    def reset(self) -> None:
        """Forget buffered audio (after a gap in what it was fed)."""
        ...


class Earcons(Protocol):
    """Short sounds for wake, done and error (assistant.tts.EarconPlayer)."""

    def play(self, name: str, cancel: threading.Event | None = None) -> None:
        """Play one earcon to the end; blocking, never raises for a missing sound."""
        ...


EventListener = Callable[[Event], None]
"""Called on the loop thread for every event (MQTT state, timings, logs); must not block."""

Hook = Callable[[], object]
"""A shutdown or reload hook; may return an awaitable."""


@dataclass
class Counters:
    """Running totals since start, published with each run's timings."""

    wakes: int = 0
    """Wake-word detections that started listening."""
    push_to_talk: int = 0
    """Listening started by the button, SIGUSR1 or the CLI."""
    utterances: int = 0
    """Utterances handed to the brain."""
    cancelled_wakes: int = 0
    """Runs ended by barge-in or by silence after the wake."""
    listen_timeouts: int = 0
    """Of those, ended because nothing was said."""
    errors: int = 0
    """Stage failures (coded ERROR events)."""

    def as_dict(self) -> dict[str, int]:
        """Plain mapping for events and logs."""
        return dataclasses.asdict(self)


@dataclass
class _Run:
    """Book-keeping for one wake-to-reply run."""

    id: int
    reason: str
    cancel: threading.Event = field(default_factory=threading.Event)
    marks: dict[str, float] = field(default_factory=dict)
    """monotonic() readings: wake, end_of_speech, think_start, think_end, tool_call, action, first_audio."""
    transcript: str | None = None
    reply: str = ""
    outcome: str = "pending"

    def mark(self, name: str, when: float | None = None) -> None:
        if name not in self.marks:
            self.marks[name] = time.monotonic() if when is None else when

    def timings_ms(self) -> dict[str, float]:
        """Stage figures in milliseconds; only those whose marks exist."""
        pairs = {
            "wake_to_end_of_speech": ("wake", "end_of_speech"),
            "end_of_speech_to_tool_call": ("end_of_speech", "tool_call"),
            "end_of_speech_to_action": ("end_of_speech", "action"),
            "end_of_speech_to_first_audio": ("end_of_speech", "first_audio"),
            "think": ("think_start", "think_end"),
        }
        out: dict[str, float] = {}
        for name, (start, end) in pairs.items():
            if start in self.marks and end in self.marks:
                out[name] = round((self.marks[end] - self.marks[start]) * 1000.0, 1)
        return out


# --------------------------------------------------------------------------- the router seen by the brain


class _ObservedRouter:
    """Passes every call to the real router and reports tool calls and results to the loop."""

    def __init__(self, router: Router, on_call: Callable[[ToolCall | None], None],
                 on_result: Callable[[ToolResult], None]) -> None:
        self._router = router
        self._on_call = on_call
        self._on_result = on_result

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Validate and maybe execute (in the brain's worker thread)."""
        self._on_call(call)
        result = self._router.call(call, site=site)
        self._on_result(result)
        return result

    def pending_confirmation(self, site: str) -> str | None:
        """The waiting confirmation question for ``site``, if any."""
        return self._router.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Resolve the waiting call; running it counts as the run's action."""
        self._on_call(None)  # the parked call is known only from the result
        result = self._router.answer_confirmation(transcript, site=site)
        self._on_result(result)
        return result

    def tools(self) -> Sequence[Tool]:
        """The current tool set."""
        return self._router.tools()

    @property
    def tools_version(self) -> int:
        """Changes with the tool set."""
        return self._router.tools_version


# --------------------------------------------------------------------------- orchestrator


class Orchestrator:
    """The daemon's state machine. ``await run()`` until ``stop()`` (or SIGTERM)."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: FrameSource,
        segmenter: Segmenter,
        brain: Brain,
        router: Router,
        tts: TtsSink,
        wake: WakeWords | None = None,
        earcons: Earcons | None = None,
        listeners: Iterable[EventListener] = (),
        shutdown_hooks: Iterable[Hook] = (),
        reload_hooks: Iterable[Hook] = (),
        watchdog_interval_s: float | None = None,
        frame_stall_s: float = 5.0,
        brain_stall_s: float = 60.0,
        handle_signals: bool = False,
        idle_batch_ms: int = IDLE_BATCH_MS,
    ) -> None:
        """Wire the parts.

        ``wake`` None (or ``wake.enabled: false``) listens only on push-to-talk.
        ``watchdog_interval_s``: seconds between WATCHDOG=1 pings; None takes half of
        systemd's WATCHDOG_USEC, and no pings when that is unset. Pings stop while no
        frame arrived for ``frame_stall_s`` or a brain call runs longer than
        ``brain_stall_s``. ``handle_signals`` installs SIGTERM/SIGINT (stop), SIGHUP
        (reload hooks) and SIGUSR1 (push-to-talk) handlers while ``run()`` runs.
        ``idle_batch_ms``: burst length asked of a source with ``set_batch_ms`` while
        latency does not matter (idle); 0 keeps every frame immediate.
        """
        self.settings = settings
        self.site = settings.site
        self.source = source
        self.segmenter = segmenter
        self.brain = brain
        self.router = router
        self.tts = tts
        self.wake = wake if settings.wake.enabled else None
        self.earcons = earcons
        self.listeners: list[EventListener] = list(listeners)
        self.shutdown_hooks: list[Hook] = list(shutdown_hooks)
        self.reload_hooks: list[Hook] = list(reload_hooks)
        self.watchdog_interval_s = watchdog_interval_s
        self.frame_stall_s = frame_stall_s
        self.brain_stall_s = brain_stall_s
        self.handle_signals = handle_signals
        self.idle_batch_ms = idle_batch_ms
        self._batch_ms: int | None = None
        self.counters = Counters()
        self.muted = False
        self.failure: AssistantError | None = None
        """Set when the audio source failed and ended the run (exit non-zero: systemd restarts)."""

        self._state = State.IDLE
        self._run: _Run | None = None
        self._run_ids = itertools.count(1)
        self._listen_started: float | None = None
        self._prefetched_for: int | None = None
        self._listen_timeout_s = settings.vad.no_speech_timeout_s
        self._listen_reason = ""
        self._brain_calls: dict[int, float] = {}
        self._last_frame_at = time.monotonic()
        self._stream_time = 0.0
        self._wake_fed_until = 0.0
        self._announcements: deque[str] = deque(maxlen=5)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None  # set while idle or listening (no run in flight)
        self._stop_requested = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="assistant")

    # ------------------------------------------------------------------ public, thread-safe

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def push_to_talk(self) -> None:
        """Start listening now, without the wake word (HA button, SIGUSR1, CLI); any thread."""
        self._call_soon(self._on_push_to_talk)

    def announce(self, text: str) -> None:
        """Speak ``text`` when idle (timers, HA's text entity); queued while busy. Any thread."""
        self._call_soon(self._on_announce, text)

    def set_muted(self, muted: bool) -> None:
        """Mute: no wake-word detection (push-to-talk still works). Any thread."""
        self._call_soon(self._on_mute, muted)

    def stop(self) -> None:
        """Ask ``run()`` to finish gracefully; idempotent, any thread (and signal handlers)."""
        self._stop_requested = True
        self._call_soon(self._on_stop)

    def healthy(self) -> bool:
        """True while audio arrives and no brain call is stuck: the condition for WATCHDOG=1."""
        now = time.monotonic()
        if now - self._last_frame_at > self.frame_stall_s:
            return False
        return all(now - started <= self.brain_stall_s for started in self._brain_calls.values())

    # ------------------------------------------------------------------ run / stop

    async def run(self) -> None:
        """Run until stopped or the audio source ends; then shut down within about 2 s."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        if self._stop_requested:
            self._stopping.set()
        self._last_frame_at = time.monotonic()
        self._pace_source()
        installed = self._install_signals() if self.handle_signals else {}
        self._spawn(self._audio_loop(), "audio")
        self._spawn(self._watchdog_loop(), "watchdog")
        sdnotify.ready(self._status_line())
        _LOGGER.info("Assistant ready: %s", self._status_line())
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown()
            for sig, previous in installed.items():
                with contextlib.suppress(Exception):
                    self._loop.remove_signal_handler(sig)
                    # asyncio leaves SIG_DFL behind (terminate on SIGHUP/SIGUSR1): restore
                    signal.signal(sig, previous)  # type: ignore[arg-type]

    async def _shutdown(self) -> None:
        sdnotify.stopping("stopping")
        _LOGGER.info("Stopping")
        if self._run is not None:
            self._run.cancel.set()  # brain and speech threads return within ~50 ms
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                _LOGGER.warning("Task %s did not stop in time", task.get_name())
        await self._close_source()
        for hook in self.shutdown_hooks:
            await self._call_hook(hook, "shutdown", limit_s=0.5)
        # Never wait for worker threads here: a stuck brain must not hold the exit.
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.tts.close)
        self._set_state(State.IDLE, emit=False)
        _LOGGER.info("Stopped (%s)", self.counters.as_dict())

    async def _close_source(self) -> None:
        for name in ("aclose", "close"):
            closer = getattr(self.source, name, None)
            if callable(closer):
                try:
                    result = closer()
                    if inspect.isawaitable(result):
                        await asyncio.wait_for(result, timeout=0.5)
                except Exception as err:  # a failing close must not stop the rest of the shutdown
                    _LOGGER.warning("Closing the audio source failed: %s", err)
                return

    async def _call_hook(self, hook: Hook, what: str, *, limit_s: float) -> None:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await asyncio.wait_for(result, timeout=limit_s)
        except Exception as err:  # one failing hook must not skip the others
            _LOGGER.warning("%s hook %r failed: %s", what, hook, err)

    def _install_signals(self) -> dict[int, object]:
        loop = self._loop
        assert loop is not None  # noqa: S101 - set by run() before this is called
        handlers: dict[int, Callable[[], None]] = {
            signal.SIGTERM: self.stop,
            signal.SIGINT: self.stop,
            signal.SIGHUP: self._on_sighup,
            signal.SIGUSR1: self.push_to_talk,
        }
        installed: dict[int, object] = {}
        for sig, handler in handlers.items():
            try:
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, handler)
                installed[sig] = previous
            except (NotImplementedError, RuntimeError, ValueError) as err:
                _LOGGER.debug("No handler for %s: %s", sig, err)
        return installed

    def _on_sighup(self) -> None:
        self._spawn(self._reload(), "reload")

    async def reload(self) -> None:
        """Run the reload hooks (SIGHUP) with RELOADING=1 / READY=1 around them."""
        await self._reload()

    async def _reload(self) -> None:
        sdnotify.reloading()
        _LOGGER.info("Reloading")
        for hook in self.reload_hooks:
            await self._call_hook(hook, "reload", limit_s=10.0)
        sdnotify.ready(self._status_line())

    # ------------------------------------------------------------------ loops

    async def _audio_loop(self) -> None:
        try:
            async for frame in self.source:
                self._last_frame_at = time.monotonic()
                self._stream_time = frame.timestamp + frame.duration
                try:
                    await self._on_frame(frame)
                except Exception as err:  # one bad frame or part must not end the loop
                    failure = AssistantError(f"frame handling failed: {err}", code="pipeline_failed")
                    self._error("audio", failure)
                    self._end_run("error")
                if self._stopping is not None and self._stopping.is_set():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.failure = _coded(err, AssistantError, "audio_source_failed")
            self._error("audio", self.failure)
        _LOGGER.info("Audio source ended")
        # A finite source (a file, a test): let the current run finish, then stop.
        await self._wait_session()
        self.stop()

    async def _wait_session(self) -> None:
        if self._settled is not None:
            await self._settled.wait()

    async def _watchdog_loop(self) -> None:
        interval = self.watchdog_interval_s
        if interval is None:
            usec = sdnotify.watchdog_interval()
            if usec is None:
                return
            interval = usec / 2
        was_healthy = True
        while True:
            healthy = self.healthy()
            if healthy:
                sdnotify.watchdog()
            elif was_healthy:
                _LOGGER.error(
                    "Pipeline unhealthy (no audio for %.1f s or a stuck brain): watchdog pings stop",
                    time.monotonic() - self._last_frame_at,
                )
            was_healthy = healthy
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ per frame

    async def _on_frame(self, frame: AudioFrame) -> None:
        state = self._state
        if state is State.IDLE:
            if self.wake is None or self.muted:
                return
            detection = self._detect(frame)
            if detection is not None and detection.kind == "wake":
                await self._start_listening("wake", detection)
        elif state is State.LISTENING:
            self._listen(frame)
        elif state in (State.THINKING, State.ACTING, State.SPEAKING) and self._barge_in_armed():
            # Gated: the segmenter never hears the assistant; only barge-in words are checked.
            detection = self._detect(frame)
            if detection is not None:
                await self._barge_in(detection)
        # WAKE: the earcon plays; these frames are dropped

    def _barge_in_armed(self) -> bool:
        return self.wake is not None and self.settings.wake.barge_in and not self.muted

    def _detect(self, frame: AudioFrame) -> Detection | None:
        assert self.wake is not None  # noqa: S101 - callers check
        try:
            if abs(frame.timestamp - self._wake_fed_until) > 0.005:
                # The detector skipped audio (listening, gated speech): its streaming state
                # would join two unrelated stretches and can fire on stale features.
                self.wake.reset()
            self._wake_fed_until = frame.timestamp + frame.duration
            return self.wake.process(frame.pcm, frame.timestamp)
        except Exception as err:  # a failing detector is logged and counted, the loop goes on
            self._error("wake", AssistantError(f"wake-word detection failed: {err}", code="wake_failed"))
            return None

    def _listen(self, frame: AudioFrame) -> None:
        if self._listen_started is None:
            self._listen_started = frame.timestamp
        try:
            utterances = self.segmenter.feed(frame)
        except Exception as err:
            self._error("listen", AssistantError(f"segmenter failed: {err}", code="segmenter_failed"))
            self._end_run("error")
            return
        if utterances:
            self._prefetched_for = None
            self._begin_thinking(utterances[0])
            return
        self._maybe_prefetch()
        elapsed = frame.timestamp + frame.duration - self._listen_started
        in_speech = bool(getattr(self.segmenter, "in_speech", False))
        hard_cap = self._listen_timeout_s + self.settings.vad.max_utterance_s + 1.0
        if (not in_speech and elapsed >= self._listen_timeout_s) or elapsed >= hard_cap:
            self._listen_timeout()

    def _maybe_prefetch(self) -> None:
        """Let the brain start on the utterance while the endpointer waits out its hangover.

        Once the speech has been quiet for PREFETCH_SILENCE_S, the words are most likely
        over; a brain with ``prefetch(pcm, router)`` decodes them in a worker thread, and
        its ``handle`` uses that result when the finished utterance holds the same speech
        (else it decodes as usual). Speech that goes on simply makes the guess unused.
        """
        prefetch = getattr(self.brain, "prefetch", None)
        pending_pcm = getattr(self.segmenter, "pending_pcm", None)
        if not callable(prefetch) or not callable(pending_pcm):
            return
        pcm = pending_pcm(PREFETCH_SILENCE_S)
        if pcm is None:
            self._prefetched_for = None
            return
        if self._prefetched_for is not None:
            return  # one guess per quiet stretch
        self._prefetched_for = len(pcm)
        try:
            prefetch(pcm, self.router)
        except Exception as err:  # only an optimisation: the utterance is decoded anyway
            _LOGGER.warning("brain prefetch failed: %s", err)

    # ------------------------------------------------------------------ transitions

    async def _start_listening(self, reason: str, detection: Detection | None = None) -> None:
        """wake -> listening, with the wake earcon in between."""
        run = self._new_run(reason)
        if reason == "wake":
            self.counters.wakes += 1
        else:
            self.counters.push_to_talk += 1
        data: dict[str, Any] = {"reason": reason, "stream_time": round(self._stream_time, 3)}
        if detection is not None:
            data.update(word=detection.word, probability=round(detection.probability, 3),
                        stream_time=round(detection.timestamp, 3))
        self._emit(EventType.RUN_START, {"run": run.id, "reason": reason})
        self._set_state(State.WAKE)
        self._emit(EventType.WAKE_DETECTED, data)
        await self._earcon("wake", run.cancel)
        if self._run is not run or run.cancel.is_set():
            return
        self._enter_listening(reason, self.settings.vad.no_speech_timeout_s)

    def _enter_listening(self, reason: str, timeout_s: float) -> None:
        try:
            self.segmenter.reset()
        except Exception as err:
            self._error("listen", AssistantError(f"segmenter reset failed: {err}", code="segmenter_failed"))
        self._listen_started = None
        self._listen_timeout_s = timeout_s
        self._listen_reason = reason
        self._set_state(State.LISTENING)
        self._emit(EventType.LISTEN_START, {"reason": reason, "timeout_s": timeout_s})

    def _next_turn(self, reason: str, timeout_s: float) -> None:
        """A new run that listens without the wake word (confirmation answer, follow-up)."""
        run = self._new_run(reason)
        self._emit(EventType.RUN_START, {"run": run.id, "reason": reason})
        self._enter_listening(reason, timeout_s)

    def _listen_timeout(self) -> None:
        self.counters.listen_timeouts += 1
        if self._listen_reason in ("wake", "push_to_talk"):
            self.counters.cancelled_wakes += 1
        self._emit(EventType.LISTEN_TIMEOUT, {"reason": self._listen_reason})
        if self._listen_reason == "confirmation":
            # Silence answers a confirmation question with "no": the router cancels the action.
            answer = self._in_thread(self.router.answer_confirmation, None, site=self.site)
            self._spawn(answer, "confirmation-timeout")
        self._end_run("timeout")

    def _begin_thinking(self, utterance: Utterance) -> None:
        run = self._run
        if run is None:  # cannot happen through the transitions; keep the run book straight anyway
            run = self._new_run(self._listen_reason or "listen")
            self._emit(EventType.RUN_START, {"run": run.id, "reason": run.reason})
        self.counters.utterances += 1
        run.mark("end_of_speech", utterance.ended_at)
        self._emit(EventType.SPEECH_END, {"start_s": round(utterance.start_s, 3),
                                          "end_s": round(utterance.end_s, 3),
                                          "duration_s": round(utterance.duration, 3)})
        self._set_state(State.THINKING)
        self._spawn(self._think_and_speak(run, utterance), f"run-{run.id}")

    async def _think_and_speak(self, run: _Run, utterance: Utterance) -> None:
        run.mark("think_start")
        self._emit(EventType.THINK_START, {"run": run.id})
        self._brain_calls[run.id] = time.monotonic()
        router = _ObservedRouter(self.router, lambda c: self._from_thread(self._on_tool_call, run, c),
                                 lambda r: self._from_thread(self._on_tool_result, run, r))
        try:
            turn = await self._in_thread(self.brain.handle, utterance, router, run.cancel)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if self._run is run and not run.cancel.is_set():
                await self._fail(run, "brain", _coded(err, BrainError, "brain_failed"))
            return
        finally:
            self._brain_calls.pop(run.id, None)
        run.mark("think_end")
        if self._run is not run or run.cancel.is_set():
            return  # barge-in or stop took over
        run.transcript = turn.transcript
        run.reply = turn.reply.text
        self._emit(EventType.THINK_END, {"understood": turn.understood,
                                         "tool_calls": [c.to_json() for c in turn.tool_calls],
                                         "timings_ms": dict(turn.timings_ms)})
        if turn.transcript is not None:
            self._emit(EventType.TRANSCRIPT, {"text": turn.transcript})
        reply = turn.reply
        if reply.expects_answer:
            self._emit(EventType.CONFIRMATION_REQUESTED, {"question": reply.text})
        if reply.is_error:
            await self._earcon("error", run.cancel)
        spoken = await self._speak(run, reply.text)
        if spoken is None or self._run is not run or run.cancel.is_set():
            return
        if not reply.text.strip() and not reply.is_error:
            await self._earcon("done", run.cancel)
        if reply.expects_answer:
            # The answer needs no wake word; it must come inside the router's window.
            self._finish_run(run, "question")
            self._next_turn("confirmation", min(self.settings.vad.no_speech_timeout_s,
                                                self.settings.router.confirmation_window_s))
        elif self.settings.wake.follow_up_s > 0:
            self._finish_run(run, "error" if reply.is_error else "ok")
            self._next_turn("follow_up", self.settings.wake.follow_up_s)
        else:
            self._end_run("error" if reply.is_error else "ok")

    async def _speak(self, run: _Run, text: str) -> SpeakResult | None:
        """speaking: the reply through the sink; None when it failed (already reported)."""
        self._set_state(State.SPEAKING)
        self._emit(EventType.TTS_START, {"text": text, "sink": getattr(self.tts, "name", "")})
        try:
            result = await self._in_thread(self.tts.speak, text, run.cancel)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if self._run is run and not run.cancel.is_set():
                await self._fail(run, "tts", _coded(err, TtsError, "tts_failed"), speak=False)
            return None
        if result.first_audio_at is not None:
            run.mark("first_audio", result.first_audio_at)
        self._emit(EventType.TTS_END, {"completed": result.completed, "path": result.path})
        return result

    async def _fail(self, run: _Run, stage: str, err: AssistantError, *, speak: bool = True) -> None:
        """A stage failed: ERROR event, error earcon, a short message, back to idle."""
        self._error(stage, err)
        await self._earcon("error", run.cancel)
        if speak and self._run is run and not run.cancel.is_set():
            self._set_state(State.SPEAKING)
            try:
                await self._in_thread(self.tts.speak, ERROR_MESSAGE, run.cancel)
            except Exception as speak_err:  # the apology itself failed: the log must do
                _LOGGER.warning("Error message not spoken: %s", speak_err)
        if self._run is run:
            self._end_run("error")

    async def _barge_in(self, detection: Detection) -> None:
        """A wake or stop word while thinking or speaking: cancel speech and generation."""
        run = self._run
        if run is not None:
            run.cancel.set()
            run.outcome = "cancelled"
        self.counters.cancelled_wakes += 1
        self._emit(EventType.CANCELLED, {"reason": "barge-in", "word": detection.word, "kind": detection.kind,
                                         "stream_time": round(detection.timestamp, 3)})
        _LOGGER.info("Barge-in by %s at %.2f s", detection.word, detection.timestamp)
        self._end_run("cancelled")
        if detection.kind == "wake":
            await self._start_listening("wake", detection)

    # ------------------------------------------------------------------ runs

    def _new_run(self, reason: str) -> _Run:
        if self._run is not None:
            self._run.cancel.set()
        run = _Run(next(self._run_ids), reason)
        run.mark("wake")
        self._run = run
        return run

    def _finish_run(self, run: _Run, outcome: str) -> None:
        """Publish the run's timings and counters (RUN_END)."""
        run.outcome = outcome
        timings = run.timings_ms()
        data = {"run": run.id, "reason": run.reason, "outcome": outcome, "transcript": run.transcript,
                "reply": run.reply, "timings_ms": timings, "counters": self.counters.as_dict()}
        _LOGGER.info("Run %d %s: transcript=%r timings_ms=%s", run.id, outcome, run.transcript, timings)
        self._emit(EventType.RUN_END, data)

    def _end_run(self, outcome: str) -> None:
        """Back to idle; RUN_END (carrying state idle) closes the run."""
        run = self._run
        self._run = None
        self._go_idle()
        if run is not None:
            self._finish_run(run, outcome)
        self._flush_announcements()

    def _go_idle(self) -> None:
        self._set_state(State.IDLE)

    def _flush_announcements(self) -> None:
        if self._state is State.IDLE and self._announcements and not self._stop_requested:
            self._spawn(self._announce(self._announcements.popleft()), "announce")

    # ------------------------------------------------------------------ loop-side handlers

    def _on_push_to_talk(self) -> None:
        if self._stop_requested or self._state in (State.WAKE, State.LISTENING):
            return
        if self._run is not None:
            self._run.cancel.set()
            self.counters.cancelled_wakes += 1
            self._emit(EventType.CANCELLED, {"reason": "push-to-talk"})
            self._end_run("cancelled")
        self._spawn(self._start_listening("push_to_talk"), "push-to-talk")

    def _on_announce(self, text: str) -> None:
        if self._state is State.IDLE and not self._stop_requested:
            self._spawn(self._announce(text), "announce")
        else:
            self._announcements.append(text)

    async def _announce(self, text: str) -> None:
        if self._state is not State.IDLE:
            self._announcements.appendleft(text)
            return
        run = self._new_run("announce")
        await self._speak(run, text)
        if self._run is run:
            self._end_run("announced")

    def _on_mute(self, muted: bool) -> None:
        self.muted = muted
        _LOGGER.info("Wake word %s", "muted" if muted else "unmuted")

    def _on_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def _on_tool_call(self, run: _Run, call: ToolCall | None) -> None:
        if self._run is not run:
            return
        if self._state is State.THINKING:
            self._set_state(State.ACTING)
        self._emit(EventType.TOOL_CALL, call.to_json() if call is not None else {"confirmation": True})

    def _on_tool_result(self, run: _Run, result: ToolResult) -> None:
        if self._run is run:
            self._emit(EventType.TOOL_RESULT, result.to_json())

    # ------------------------------------------------------------------ plumbing

    def _set_state(self, state: State, *, emit: bool = True) -> None:
        if state is self._state:
            return
        _LOGGER.debug("State %s -> %s", self._state, state)
        self._state = state
        self._pace_source()
        if self._settled is not None:
            if state in (State.IDLE, State.LISTENING):
                self._settled.set()
            else:
                self._settled.clear()
        if emit and state is State.IDLE:
            sdnotify.status(self._status_line())

    def _pace_source(self) -> None:
        """Bursts from the capture while only the wake word listens; every frame at once otherwise."""
        setter = getattr(self.source, "set_batch_ms", None)
        if not callable(setter):
            return
        state = self._state
        urgent = state is State.LISTENING or (
            state in (State.THINKING, State.ACTING, State.SPEAKING) and self._barge_in_armed()
        )
        batch_ms = 0 if urgent else self.idle_batch_ms
        if batch_ms != self._batch_ms:
            self._batch_ms = batch_ms
            try:
                setter(batch_ms)
            except Exception as err:  # pacing is an optimisation: never fail a transition for it
                _LOGGER.warning("Audio source pacing failed: %s", err)

    def _status_line(self) -> str:
        words = "push-to-talk only" if self.wake is None else "listening for the wake word"
        return f"{self._state}: {words}"

    def _emit(self, kind: EventType, data: Mapping[str, Any] | None = None) -> None:
        payload = dict(data or {})
        payload["state"] = str(self._state)
        event = Event(kind, payload, site=self.site)
        _LOGGER.debug("Event %s %s", kind, payload)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception as err:  # a broken listener must not break the pipeline
                _LOGGER.warning("Event listener %r failed on %s: %s", listener, kind, err)

    def _error(self, stage: str, err: AssistantError) -> None:
        self.counters.errors += 1
        _LOGGER.error("%s failed [%s]: %s", stage, err.code, err.message)
        self._emit(EventType.ERROR, {"stage": stage, "code": err.code, "message": err.message})

    async def _earcon(self, name: str, cancel: threading.Event) -> None:
        if self.earcons is None:
            return
        try:
            await self._in_thread(self.earcons.play, name, cancel)
        except Exception as err:  # earcons are decoration: never fail a run for one
            _LOGGER.warning("Earcon %s failed: %s", name, err)

    async def _in_thread(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: func(*args, **kwargs))

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("Task %s failed", task.get_name(), exc_info=task.exception())

    def _call_soon(self, func: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            if func == self._on_stop:
                return  # run() has not started: it checks _stop_requested
            _LOGGER.warning("Orchestrator not running: %s ignored", getattr(func, "__name__", func))
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            func(*args)
        else:
            loop.call_soon_threadsafe(func, *args)

    def _from_thread(self, func: Callable[..., Any], *args: Any) -> None:
        """From a worker thread: run ``func`` on the loop, and note the time now (for timings)."""
        if args and isinstance(args[0], _Run):
            args[0].mark("tool_call" if func == self._on_tool_call else "action")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(func, *args)


def _coded(err: BaseException, kind: type[AssistantError], code: str) -> AssistantError:
    """The error as an AssistantError with a code (unexpected exceptions wrapped, cause kept)."""
    if isinstance(err, AssistantError):
        return err
    wrapped = kind(f"{type(err).__name__}: {err}", code=code)
    wrapped.__cause__ = err
    return wrapped


# --------------------------------------------------------------------------- adapters


class ThreadedFrameSource:
    """An async FrameSource over a blocking iterable of frames (the audio front end's sources).

    A thread iterates the blocking source and hands frames to the loop through a bounded
    queue; when the loop falls behind, the oldest frames are dropped and counted, never
    blocking the capture side. ``stop`` (e.g. ``AudioSource.stop``) is called on close so
    the thread ends. A source with ``frame_batches()`` (an AudioSource) is read in the
    bursts it produces, one loop wake-up per burst; ``set_batch_ms`` is passed on to it.
    """

    def __init__(self, frames: Iterable[AudioFrame], *, stop: Callable[[], None] | None = None,
                 max_frames: int = 100) -> None:
        self.frames = frames
        self._stop = stop
        self.max_frames = max_frames
        self.overflows = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def set_batch_ms(self, ms: int) -> None:
        """Pass the source's batching on (see ``AudioSource.set_batch_ms``); a no-op for plain iterables."""
        setter = getattr(self.frames, "set_batch_ms", None)
        if callable(setter):
            setter(ms)

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioFrame | BaseException | None] = asyncio.Queue(self.max_frames)

        def push(item: AudioFrame | BaseException | None) -> None:
            if queue.full():
                queue.get_nowait()  # drop the oldest: fresh audio matters more
                self.overflows += 1
                if self.overflows % 100 == 1:
                    _LOGGER.warning("Audio loop behind: %d frames dropped", self.overflows)
            queue.put_nowait(item)

        def push_batch(batch: list[AudioFrame]) -> None:
            for frame in batch:
                push(frame)

        def batches() -> Iterator[list[AudioFrame]]:
            produce = getattr(self.frames, "frame_batches", None)
            if callable(produce):
                yield from produce()
            else:
                for frame in self.frames:
                    yield [frame]

        def pump() -> None:
            item: BaseException | None = None
            try:
                for batch in batches():
                    if self._closed.is_set():
                        return
                    # One wake-up of the loop per burst, not per frame.
                    loop.call_soon_threadsafe(push_batch, batch)
            except Exception as err:  # reported on the loop side
                item = err
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(push, item)

        self._thread = threading.Thread(target=pump, name="audio-source", daemon=True)
        self._thread.start()
        try:
            while True:
                got = await queue.get()
                if got is None:
                    return
                if isinstance(got, BaseException):
                    raise AssistantError(f"audio source failed: {got}", code="audio_source_failed") from got
                yield got
        finally:
            self.close()

    def close(self) -> None:
        """Stop the blocking source and let the thread end."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._stop is not None:
            with contextlib.suppress(Exception):
                self._stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)
