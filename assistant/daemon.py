"""The orchestrator: one asyncio loop from wake word to spoken reply, as an explicit state machine.

::

    idle ──wake word / push-to-talk──► wake ──earcon──► listening ──utterance──► thinking
      ▲                                                    │ timeout                │ tool call
      │                                                    ▼                        ▼
      └──────────────────────────────── (idle) ◄── speaking ◄──────────────────── acting
                      follow-up / confirmation question: speaking ──► listening (no wake word)
                      any stage fails: ──► error (error earcon, apology) ──► idle

The parts arrive through small protocols (frame source, wake words, utterance segmenter,
brain, tool gateway, TTS sink, earcons), so tests drive the whole machine with in-memory
audio and simple fakes; optional abilities (burst pacing, early decode, close) are
declared capabilities checked with ``isinstance``. A brain that is ``Streaming`` gets the
utterance while it is spoken: a stream opens when listening starts, the speech so far is
fed as it grows, ``finish`` gets the whole utterance at the end of speech, and anything
else (timeout, stop, a dropped burst, shutdown) aborts it; a barge-in while thinking
cancels the finish. A brain that ``SpeaksAhead`` hands reply sentences over while it still
generates; they are spoken in order as they come (nothing more once the run is cancelled),
and at the end only the rest of the reply. Requests from outside (push-to-talk, announce,
mute, stop, shutdown) arrive as typed commands through one ``Inbox``
(assistant.inbox). Blocking work (brain, synthesis, playback) runs in worker threads with
a cancel event; the loop keeps reading audio meanwhile, so a wake or stop word can barge
in while the assistant speaks, and ``health_problem()`` sees a live audio loop. A
``TurnHandoff`` (assistant.handoff: Home Assistant's pipeline through our Wyoming satellite
endpoint) is offered each heard utterance before the brain; a turn it takes the brain never
sees, and its answer is played (or its text spoken) here. The assistant
never hears itself: while it thinks or speaks, frames reach only the wake/stop detector
(when barge-in is armed) and never the segmenter.

Listeners see every event; each state change is followed by an event whose
``data["state"]`` is the new state (RUN_END carries ``idle``), which is what the Home
Assistant state sensor needs. RUN_END carries the run's report (assistant.runs): timings
in ms, the brain's counts and flags, the counters.

No failure of one utterance ends the daemon: every stage's error becomes a coded ERROR
event, the error state, an error earcon and a short message, and the machine returns to
idle. Signals, the systemd watchdog and reloads are not its business (assistant.lifecycle,
assistant.supervisor): it offers ``health_problem()`` and reports readiness to a ``StatusReporter``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from assistant.brains.base import (
    Brain,
    Prefetching,
    SpeaksAhead,
    SpeechStream,
    Streaming,
    ToolGateway,
    turn_figures,
)
from assistant.capabilities import AsyncClosable, Closable, PlaysPcm, SupportsBatching, SupportsVolume
from assistant.config import Settings
from assistant.errors import AssistantError, BrainError, ErrorCode, TtsError, coded
from assistant.frame_bridge import ThreadedFrameSource
from assistant.handoff import HandedOff, TurnHandoff
from assistant.inbox import Announce, Command, Inbox, PushToTalk, SetMuted, SetVolume, Shutdown, Stop
from assistant.runs import Counters, Run
from assistant.threadnames import name_native_thread
from assistant.tools.base import Tool
from assistant.tts.base import SpeakResult, TtsSink
from assistant.types import (
    AssistState,
    AudioFrame,
    BrainTurn,
    Event,
    EventType,
    Reply,
    ToolCall,
    ToolResult,
    Utterance,
)
from assistant.wake.detector import Detection

if TYPE_CHECKING:
    from assistant.audio.frontend import SegmenterStep

__all__ = [
    "ERROR_MESSAGE",
    "IDLE_BATCH_MS",
    "PREFETCH_SILENCE_S",
    "STREAM_FEED_S",
    "Earcons",
    "EventListener",
    "FrameSource",
    "Orchestrator",
    "State",
    "StatusReporter",
    "ThreadedFrameSource",
    "UtteranceSegmenter",
    "WakeWords",
]

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

PREFETCH_SILENCE_S = 0.36
"""Quiet time after which the brain may start on an utterance before the endpointer closes
it (vad.silence_end_ms is 600 by default): enough for the 0.15 s the phrase brain keeps
after the last word plus the VAD's lag."""

STREAM_FEED_S = 0.08
"""While the user speaks, the speech so far goes to a streaming brain at most this often
(stream seconds): the brain's worker steps every 240 ms anyway, and each feed joins the
segmenter's frames once."""

ERROR_MESSAGE = "Sorry, something went wrong."
"""Spoken when a stage fails without a reply of its own."""

IDLE_BATCH_MS = 90
"""While idle, capture hands audio on in bursts this long: one thread and loop wake-up per
burst instead of per 30 ms frame, which is most of the idle CPU. It delays only the wake
word (by up to this much); listening and barge-in get every frame at once."""

State = AssistState
"""The orchestrator's states are the published assist states (assistant.types)."""

_BUSY = (State.THINKING, State.ACTING, State.SPEAKING, State.ERROR)
"""States in which only barge-in words are listened for."""


# --------------------------------------------------------------------------- protocols


class FrameSource(Protocol):
    """Audio in: an async iterable of 16 kHz mono int16 frames (stream-time stamped)."""

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        """Frames until the source ends."""
        ...


class UtteranceSegmenter(Protocol):
    """Frames in, endpointed utterances and a no-speech timeout out (assistant.audio.frontend.Segmenter)."""

    def step(self, frame: AudioFrame) -> SegmenterStep:
        """Add one frame; the utterances it completed and whether the armed timeout expired."""
        ...

    def reset(self) -> None:
        """Drop any utterance in progress (called when listening starts)."""
        ...

    def arm(self, timeout_s: float | None = None) -> None:
        """Start the no-speech timeout at the next frame (after ``reset``)."""
        ...

    def pending_pcm(self, min_silence_s: float) -> bytes | None:
        """The utterance in progress once it has been quiet ``min_silence_s`` (for the early decode)."""
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


class StatusReporter(Protocol):
    """Where readiness and status go (systemd's notify socket: assistant.lifecycle.SystemdStatus)."""

    def ready(self, status: str) -> None:
        """The pipeline runs and listens."""
        ...

    def status(self, status: str) -> None:
        """A new one-line status (back to idle)."""
        ...

    def stopping(self, status: str) -> None:
        """A graceful stop has begun."""
        ...


EventListener = Callable[[Event], None]
"""Called on the loop thread for every event (MQTT state, timings, logs); must not block."""


# --------------------------------------------------------------------------- the gateway seen by the brain


class _ObservedGateway:
    """Passes every call to the real router and reports tool calls and results, with their time."""

    def __init__(self, router: ToolGateway, on_call: Callable[[ToolCall | None, float], None],
                 on_result: Callable[[ToolResult, float], None]) -> None:
        self._router = router
        self._on_call = on_call
        self._on_result = on_result

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Validate and maybe execute (in the brain's worker thread)."""
        self._on_call(call, time.monotonic())
        result = self._router.call(call, site=site)
        self._on_result(result, time.monotonic())
        return result

    def pending_confirmation(self, site: str) -> str | None:
        """The waiting confirmation question for ``site``, if any."""
        return self._router.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Resolve the waiting call; running it counts as the run's action."""
        self._on_call(None, time.monotonic())  # the parked call is known only from the result
        result = self._router.answer_confirmation(transcript, site=site)
        self._on_result(result, time.monotonic())
        return result

    def tools(self) -> Sequence[Tool]:
        """The current tool set."""
        return self._router.tools()

    @property
    def tools_version(self) -> int:
        """Changes with the tool set."""
        return self._router.tools_version


@dataclasses.dataclass
class _Ahead:
    """One run's sentences a brain handed over while it still generated, spoken in order by one task."""

    pending: deque[str] = dataclasses.field(default_factory=deque)
    said: list[str] = dataclasses.field(default_factory=list)
    task: asyncio.Task[None] | None = None
    failed: bool = False


def unsaid(said: Sequence[str], text: str) -> str:
    """What of the reply ``text`` is left to speak after ``said`` (which starts it, as
    ``SpeaksAhead`` promises; when it does not, all of ``text``)."""
    if not said:
        return text
    head = " ".join(" ".join(s.split()) for s in said)
    clean = " ".join(text.split())
    if clean.startswith(head):
        return clean[len(head):].strip()
    return text


# --------------------------------------------------------------------------- orchestrator


class Orchestrator:
    """The daemon's state machine. ``await run()`` until a ``Shutdown`` command (or the audio ends)."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: FrameSource,
        segmenter: UtteranceSegmenter,
        brain: Brain,
        router: ToolGateway,
        tts: TtsSink,
        wake: WakeWords | None = None,
        earcons: Earcons | None = None,
        listeners: Iterable[EventListener] = (),
        inbox: Inbox | None = None,
        status: StatusReporter | None = None,
        frame_stall_s: float = 5.0,
        brain_stall_s: float = 60.0,
        idle_batch_ms: int = IDLE_BATCH_MS,
        handoff: TurnHandoff | None = None,
    ) -> None:
        """Wire the parts.

        ``wake`` None (or ``wake.enabled: false``) listens only on push-to-talk.
        ``inbox``: where commands arrive (a new one when None). ``status``: told when the
        pipeline is ready, idle again and stopping. ``health_problem()`` names what is wrong while no
        frame arrived for ``frame_stall_s`` or a brain call runs longer than
        ``brain_stall_s``. ``idle_batch_ms``: burst length asked of a source that
        ``SupportsBatching`` while latency does not matter (idle); 0 keeps every frame
        immediate. ``handoff``: offered each utterance before the brain (``assistant.handoff``:
        Home Assistant's pipeline through our Wyoming satellite endpoint); it may also be
        set later (``orchestrator.handoff``), before a turn.
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
        self.inbox = inbox if inbox is not None else Inbox()
        self.status_reporter = status
        self.frame_stall_s = frame_stall_s
        self.brain_stall_s = brain_stall_s
        self.idle_batch_ms = idle_batch_ms
        self.handoff = handoff
        self._batch_ms: int | None = None
        self.counters = Counters()
        self.muted = False
        self.volume = round(settings.audio.volume * 100)
        """Output volume in percent, as last set (applied to a sink that SupportsVolume)."""
        self.failure: AssistantError | None = None
        """Set when the audio source failed and ended the run (exit non-zero: systemd restarts)."""

        self._state = State.IDLE
        self._run: Run | None = None
        self._run_ids = itertools.count(1)
        self._prefetched_for: int | None = None
        self._stream: SpeechStream | None = None
        self._stream_head = b""  # what the stream was fed: the utterance in progress so far
        self._stream_fed_at = -1.0
        self._listen_reason = ""
        self._brain_calls: dict[int, float] = {}
        self._last_frame_at = time.monotonic()
        self._stream_time = 0.0
        self._wake_fed_until = 0.0
        self._announcements: deque[Announce] = deque(maxlen=5)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._settled: asyncio.Event | None = None  # set while idle or listening (no run in flight)
        self._stop_requested = False
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="assistant",
                                                               initializer=name_native_thread)

    # ------------------------------------------------------------------ public

    @property
    def state(self) -> State:
        """The current state."""
        return self._state

    def health_problem(self) -> str | None:
        """Why the pipeline is not healthy (no audio, a stuck brain call), or None when it is."""
        now = time.monotonic()
        silent_s = now - self._last_frame_at
        if silent_s > self.frame_stall_s:
            return f"no audio for {silent_s:.1f} s"
        stuck = [now - t for t in self._brain_calls.values() if now - t > self.brain_stall_s]
        if stuck:
            return f"a brain call has run for {max(stuck):.1f} s"
        return None

    def status_line(self) -> str:
        """One line for ``systemctl status``: the state and how listening starts."""
        words = "push-to-talk only" if self.wake is None else "listening for the wake word"
        return f"{self._state}: {words}"

    # ------------------------------------------------------------------ run / stop

    async def run(self) -> None:
        """Run until a ``Shutdown`` command or the end of the audio; then shut down within about 2 s."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self.inbox.attach()
        if self.inbox.shutdown_requested:
            self._request_shutdown()
        self._last_frame_at = time.monotonic()
        self._pace_source()
        self._spawn(self._audio_loop(), "audio")
        self._spawn(self._command_loop(), "commands")
        if self.status_reporter is not None:
            self.status_reporter.ready(self.status_line())
        _LOGGER.info("Assistant ready: %s", self.status_line())
        try:
            await self._stopping.wait()
        finally:
            self.inbox.detach()
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.status_reporter is not None:
            self.status_reporter.stopping("stopping")
        _LOGGER.info("Stopping")
        if self._run is not None:
            self._run.cancel.set()  # brain and speech threads return within ~50 ms
        self._abort_stream()
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                _LOGGER.warning("Task %s did not stop in time", task.get_name())
        await self._close_source()
        # Never wait for worker threads here: a stuck brain must not hold the exit.
        self._executor.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.tts.close)
        self._set_state(State.IDLE, report=False)
        _LOGGER.info("Stopped (%s)", self.counters.as_dict())

    async def _close_source(self) -> None:
        source = self.source
        try:
            if isinstance(source, AsyncClosable):
                await asyncio.wait_for(source.aclose(), timeout=0.5)
            elif isinstance(source, Closable):
                source.close()
        except Exception as err:  # a failing close must not stop the rest of the shutdown
            _LOGGER.warning("Closing the audio source failed: %s", err)

    def _request_shutdown(self) -> None:
        self._stop_requested = True
        if self._stopping is not None:
            self._stopping.set()

    # ------------------------------------------------------------------ loops

    async def _command_loop(self) -> None:
        while True:
            command = await self.inbox.get()
            try:
                self._on_command(command)
            except Exception:  # one bad command must not end the loop
                _LOGGER.exception("Command %s failed", command)

    def _on_command(self, command: Command) -> None:
        match command:
            case Shutdown():
                self._request_shutdown()
            case PushToTalk():
                self._on_push_to_talk()
            case Announce():
                self._on_announce(command)
            case SetMuted(muted=muted, from_home=from_home):
                self.muted = muted
                self._pace_source()
                _LOGGER.info("Wake word %s", "muted" if muted else "unmuted")
                self._emit(EventType.CONTROLS_CHANGED, {"muted": muted, "from_home": from_home})
            case SetVolume(percent=percent, from_home=from_home):
                self.volume = max(0, min(100, percent))
                if isinstance(self.tts, SupportsVolume):
                    self.tts.set_volume(self.volume)
                self._emit(EventType.CONTROLS_CHANGED, {"volume": self.volume, "from_home": from_home})
            case Stop():
                self._on_stop_activity()

    async def _audio_loop(self) -> None:
        try:
            async for frame in self.source:
                self._last_frame_at = time.monotonic()
                self._stream_time = frame.timestamp + frame.duration
                try:
                    await self._on_frame(frame)
                except Exception as err:  # one bad frame or part must not end the loop
                    failure = AssistantError(f"frame handling failed: {err}", code=ErrorCode.PIPELINE_FAILED)
                    self._error("audio", failure)
                    self._end_run("error")
                if self._stopping is not None and self._stopping.is_set():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.failure = coded(err, AssistantError, ErrorCode.AUDIO_SOURCE_FAILED)
            self._error("audio", self.failure)
        _LOGGER.info("Audio source ended")
        # A finite source (a file, a test): let the current run finish, then stop.
        if self._settled is not None:
            await self._settled.wait()
        self._request_shutdown()

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
        elif state in _BUSY and self._barge_in_armed():
            # Gated: the segmenter never hears the assistant; only barge-in words are checked.
            detection = self._detect(frame)
            if detection is not None:
                await self._barge_in(detection)
        # WAKE: the earcon plays; these frames are dropped

    def _barge_in_armed(self) -> bool:
        return self.wake is not None and self.settings.wake.barge_in and not self.muted

    def _detect(self, frame: AudioFrame) -> Detection | None:
        wake = self.wake
        if wake is None:
            return None
        try:
            if abs(frame.timestamp - self._wake_fed_until) > 0.005:
                # The detector skipped audio (listening, gated speech): its streaming state
                # would join two unrelated stretches and can fire on stale features.
                wake.reset()
            self._wake_fed_until = frame.timestamp + frame.duration
            return wake.process(frame.pcm, frame.timestamp)
        except Exception as err:  # a failing detector is logged and counted, the loop goes on
            failure = AssistantError(f"wake-word detection failed: {err}", code=ErrorCode.WAKE_FAILED)
            self._error("wake", failure)
            return None

    def _listen(self, frame: AudioFrame) -> None:
        try:
            step = self.segmenter.step(frame)
        except Exception as err:
            self._error("listen", AssistantError(f"segmenter failed: {err}", code=ErrorCode.SEGMENTER_FAILED))
            self._end_run("error")
            return
        if step.utterances:
            self._prefetched_for = None
            self._begin_thinking(step.utterances[0])
        elif step.timed_out:
            self._listen_timeout()
        else:
            self._feed_stream(frame)
            self._maybe_prefetch()

    # ------------------------------------------------------------------ streaming brain

    def _begin_stream(self) -> None:
        """A fresh stream for the utterance about to be spoken (a brain that is ``Streaming``)."""
        self._abort_stream()
        brain = self.brain
        if not isinstance(brain, Streaming) or self._handed_away():
            return
        try:
            self._stream = brain.begin_stream(self.site, self.router)
        except Exception as err:  # only an optimisation: the utterance is handled offline then
            _LOGGER.warning("brain stream failed to start: %s", err)

    def _abort_stream(self) -> None:
        """Throw the stream's partial state away (in a worker: abort waits for a running step)."""
        stream, self._stream = self._stream, None
        self._stream_head = b""
        self._stream_fed_at = -1.0
        if stream is not None:
            try:
                self._executor.submit(_quietly_abort, stream)
            except RuntimeError:  # the executor is shut down (the daemon is stopping)
                _quietly_abort(stream)

    def _take_stream(self) -> tuple[SpeechStream | None, bytes]:
        stream, head = self._stream, self._stream_head
        self._stream, self._stream_head, self._stream_fed_at = None, b"", -1.0
        return stream, head

    def _feed_stream(self, frame: AudioFrame) -> None:
        """Hand the speech collected so far to the stream (only appends: never blocks the loop)."""
        if self._stream is None or frame.timestamp - self._stream_fed_at < STREAM_FEED_S - 1e-6:
            return
        self._stream_fed_at = frame.timestamp
        if self.segmenter.pending_pcm(self.settings.vad.pre_roll_ms / 1000) is not None:
            return  # quiet longer than the utterance keeps after its end: more is work thrown away
        pcm = self.segmenter.pending_pcm(0.0)
        head = self._stream_head
        if head and (pcm is None or not pcm.startswith(head)):
            # The segmenter dropped what was fed (a cough, a click): it is no head of any utterance.
            self._begin_stream()
            head = b""
        stream = self._stream
        if stream is None or pcm is None or len(pcm) <= len(head):
            return
        try:
            stream.feed(pcm[len(head) :])
        except Exception as err:  # only an optimisation: the utterance is handled offline then
            _LOGGER.warning("brain stream feed failed: %s", err)
            self._abort_stream()
            return
        self._stream_head = pcm

    def _maybe_prefetch(self) -> None:
        """Let the brain start on the utterance while the endpointer waits out its hangover.

        Once the speech has been quiet for PREFETCH_SILENCE_S, the words are most likely
        over; a brain that is ``Prefetching`` decodes them in a worker thread, and its
        ``handle`` uses that result when the finished utterance holds the same speech
        (else it decodes as usual). Speech that goes on simply makes the guess unused.
        """
        brain = self.brain
        if not isinstance(brain, Prefetching) or self._handed_away():
            return
        pcm = self.segmenter.pending_pcm(PREFETCH_SILENCE_S)
        if pcm is None:
            self._prefetched_for = None
            return
        if self._prefetched_for is not None:
            return  # one guess per quiet stretch
        self._prefetched_for = len(pcm)
        try:
            brain.prefetch(pcm, self.router)
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
            self.segmenter.arm(timeout_s)
        except Exception as err:
            self._error("listen", AssistantError(f"segmenter reset failed: {err}",
                                                 code=ErrorCode.SEGMENTER_FAILED))
        self._listen_reason = reason
        self._begin_stream()
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
        stream, head = self._take_stream()
        self._set_state(State.THINKING)
        self._spawn(self._think_and_speak(run, utterance, stream, head), f"run-{run.id}")

    def _think(self, utterance: Utterance, gateway: ToolGateway, cancel: threading.Event,
               stream: SpeechStream | None, head: bytes, *, say: Callable[[str], None]) -> BrainTurn:
        """The brain's turn (in a worker thread): the stream's finish when one was fed, else handle;
        their ``handle_speaking`` when they speak ahead."""
        if stream is None:
            if isinstance(self.brain, SpeaksAhead):
                return self.brain.handle_speaking(utterance, gateway, cancel, say)
            return self.brain.handle(utterance, gateway, cancel)
        try:
            clip = streamed_clip(head, utterance)
            if isinstance(stream, SpeaksAhead):
                return stream.handle_speaking(clip, gateway, cancel, say)
            return stream.finish(clip, gateway, cancel)
        except BaseException:
            stream.abort()
            raise

    async def _think_and_speak(self, run: Run, utterance: Utterance, stream: SpeechStream | None = None,
                               head: bytes = b"") -> None:
        run.mark("think_start")
        self._emit(EventType.THINK_START, {"run": run.id})
        if (handed := await self._hand_off(run, utterance)) is not None:
            if stream is not None:
                _quietly_abort(stream)
            await self._handed_off(run, handed)
            return
        self._brain_calls[run.id] = time.monotonic()
        gateway = _ObservedGateway(
            self.router,
            lambda call, at: self._from_thread(self._on_tool_call, run, call, at),
            lambda result, at: self._from_thread(self._on_tool_result, run, result, at),
        )
        ahead = _Ahead()

        def say(sentence: str) -> None:
            self._from_thread(self._say_ahead, run, ahead, sentence)

        try:
            turn = await self._in_thread(self._think, utterance, gateway, run.cancel, stream, head, say=say)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await self._spoken_ahead(ahead)
            if self._run is run and not run.cancel.is_set():
                await self._fail(run, "brain", coded(err, BrainError, ErrorCode.BRAIN_FAILED))
            return
        finally:
            self._brain_calls.pop(run.id, None)
        run.mark("think_end")
        await self._spoken_ahead(ahead)
        if self._run is not run or run.cancel.is_set():
            return  # barge-in or stop took over (or speaking ahead failed: already reported)
        run.transcript = turn.transcript
        run.reply = turn.reply.text
        timings, counts, flags = turn_figures(turn)
        run.brain_counts, run.brain_flags = counts, flags
        self._emit(EventType.THINK_END, {"understood": turn.understood,
                                         "tool_calls": [c.to_json() for c in turn.tool_calls],
                                         "timings_ms": timings, "counts": counts,
                                         "flags": sorted(flags)})
        if turn.transcript is not None:
            self._emit(EventType.TRANSCRIPT, {"text": turn.transcript})
        rest = dataclasses.replace(turn.reply, text=unsaid(ahead.said, turn.reply.text))
        await self._reply(run, rest, ahead=bool(ahead.said))

    def _handed_away(self) -> bool:
        """The turn being heard will most likely go to the handoff: no head start for the brain
        (its decode would take the cores the other side's work needs: HA calls our asr)."""
        return self.handoff is not None and self.handoff.active and self._listen_reason != "confirmation"

    async def _hand_off(self, run: Run, utterance: Utterance) -> HandedOff | None:
        """The turn given to the handoff (None: the brain's). An answer to our own question stays ours."""
        handoff = self.handoff
        if handoff is None or self._listen_reason == "confirmation":
            return None
        if self.router.pending_confirmation(self.site) is not None:
            return None
        try:
            return await handoff.take(utterance, run.cancel)
        except Exception as err:  # it may have handed the turn over already: the brain must not act on it too
            _LOGGER.exception("The turn handoff failed")
            return HandedOff(problem=f"the turn handoff failed: {err}", code=ErrorCode.HA_SATELLITE_LOST)

    async def _handed_off(self, run: Run, handed: HandedOff) -> None:
        """The other side's turn: its answer played (or its text spoken), the run ended; no brain sees it."""
        run.mark("think_end")
        run.transcript, run.reply = handed.transcript, handed.reply
        run.brain_flags = frozenset({"handed_off"})  # the run's report says whose turn it was
        self._emit(EventType.THINK_END, {"understood": handed.problem is None, "tool_calls": [],
                                         "timings_ms": {}, "counts": {}, "flags": ["handed_off"]})
        if handed.transcript is not None:
            self._emit(EventType.TRANSCRIPT, {"text": handed.transcript})
        handoff = self.handoff
        try:
            if self._run is not run or run.cancel.is_set():
                return  # a barge-in or stop took over: the answer is not played
            if handed.audio and handed.rate and isinstance(self.tts, PlaysPcm):
                if await self._play(run, self.tts, handed.reply, handed.audio, handed.rate) is None:
                    return
            elif handed.reply:  # no sound came (or this sink cannot play it): our voice says it
                if await self._speak(run, handed.reply) is None:
                    return
            else:
                problem = AssistantError(handed.problem or "no answer",
                                         code=handed.code or ErrorCode.HA_PIPELINE_FAILED)
                await self._fail(run, "handoff", problem, speak=False)
                return
        finally:
            if handoff is not None:
                await handoff.played()
        if self._run is run and not run.cancel.is_set():
            self._end_run("ok")

    async def _play(self, run: Run, sink: PlaysPcm, text: str, pcm: bytes, rate: int) -> SpeakResult | None:
        """speaking: sound made elsewhere (saying ``text``) through the sink; None when it failed
        (already reported)."""
        return await self._sound_out(run, text, lambda: sink.play_pcm(pcm, rate, run.cancel),
                                     ErrorCode.TTS_OUTPUT_FAILED)

    async def _reply(self, run: Run, reply: Reply, *, ahead: bool = False) -> None:
        """speaking, then idle, or listening again for a confirmation or a follow-up.

        ``ahead``: sentences of this reply were spoken already; ``reply`` is the rest.
        """
        if reply.expects_answer:
            self._emit(EventType.CONFIRMATION_REQUESTED, {"question": reply.text})
        if reply.is_error:
            await self._earcon("error", run.cancel)
        if reply.text.strip() or not ahead:
            spoken = await self._speak(run, reply.text)
            if spoken is None:
                return
        if self._run is not run or run.cancel.is_set():
            return
        if not reply.text.strip() and not reply.is_error and not ahead:
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

    def _say_ahead(self, run: Run, ahead: _Ahead, sentence: str) -> None:
        """A sentence the brain handed over (on the loop): queued; the first one starts the speaker task.

        The queue holds at most one reply's text (the brain's own bound on it)."""
        if self._run is not run or run.cancel.is_set() or ahead.failed:
            return
        ahead.pending.append(sentence)
        if ahead.task is None:
            ahead.task = self._spawn(self._speak_ahead(run, ahead), f"ahead-{run.id}")

    async def _speak_ahead(self, run: Run, ahead: _Ahead) -> None:
        """Speak the queued sentences in order until none is left or the run is cancelled."""
        try:
            while ahead.pending and self._run is run and not run.cancel.is_set():
                sentence = ahead.pending.popleft()
                ahead.said.append(sentence)
                if await self._speak(run, sentence) is None:
                    ahead.failed = True
                    return
        finally:
            ahead.task = None
            ahead.pending.clear()

    async def _spoken_ahead(self, ahead: _Ahead) -> None:
        """Until the sentences handed over so far are spoken (or dropped by a cancel)."""
        task = ahead.task
        if task is not None:
            await asyncio.wait([task])

    async def _speak(self, run: Run, text: str) -> SpeakResult | None:
        """speaking: the reply through the sink; None when it failed (already reported)."""
        speak = self.tts.speak
        return await self._sound_out(run, text, lambda: speak(text, run.cancel), ErrorCode.TTS_FAILED)

    async def _sound_out(self, run: Run, text: str, work: Callable[[], SpeakResult],
                         code: ErrorCode) -> SpeakResult | None:
        """speaking: ``work`` (saying ``text``) in a worker thread, TTS_START/TTS_END around it;
        None when it failed (reported with ``code``, unless the run was cancelled)."""
        self._set_state(State.SPEAKING)
        self._emit(EventType.TTS_START, {"text": text, "sink": self.tts.name})
        try:
            result = await self._in_thread(work)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            if self._run is run and not run.cancel.is_set():
                await self._fail(run, "tts", coded(err, TtsError, code), speak=False)
            return None
        if result.first_audio_at is not None:
            run.mark("first_audio", result.first_audio_at)
        self._emit(EventType.TTS_END, {"completed": result.completed, "path": result.path})
        return result

    async def _fail(self, run: Run, stage: str, err: AssistantError, *, speak: bool = True) -> None:
        """A stage failed: the error state, an ERROR event, the error earcon, a short message, idle."""
        self._set_state(State.ERROR)
        self._error(stage, err)
        await self._earcon("error", run.cancel)
        if speak and self._run is run and not run.cancel.is_set():
            try:
                await self._in_thread(self.tts.speak, ERROR_MESSAGE, run.cancel)
            except Exception as speak_err:  # the apology itself failed: the log must do
                _LOGGER.warning("Error message not spoken: %s", speak_err)
        if self._run is run:
            self._end_run("error")

    async def _barge_in(self, detection: Detection) -> None:
        """A wake or stop word while thinking or speaking: cancel speech and generation."""
        self._cancel_run("barge-in", word=detection.word, kind=detection.kind,
                         stream_time=round(detection.timestamp, 3))
        _LOGGER.info("Barge-in by %s at %.2f s", detection.word, detection.timestamp)
        if detection.kind == "wake":
            await self._start_listening("wake", detection)

    def _cancel_run(self, reason: str, **data: Any) -> None:
        """Cancel the run in flight (CANCELLED event, RUN_END cancelled) and go idle."""
        run = self._run
        if run is not None:
            run.cancel.set()
            run.outcome = "cancelled"
        if reason != "stop":  # asked to stop is not a wake gone wrong
            self.counters.cancelled_wakes += 1
        self._emit(EventType.CANCELLED, {"reason": reason, **data})
        self._end_run("cancelled")

    # ------------------------------------------------------------------ runs

    def _new_run(self, reason: str) -> Run:
        if self._run is not None:
            self._run.cancel.set()
        run = Run(next(self._run_ids), reason)
        run.mark("wake")
        self._run = run
        return run

    def _finish_run(self, run: Run, outcome: str) -> None:
        """Publish the run's report (RUN_END): outcome, timings, the brain's counts and flags, counters."""
        run.outcome = outcome
        report = run.report(self.counters)
        _LOGGER.info("Run %d %s: transcript=%r timings_ms=%s flags=%s", run.id, outcome, run.transcript,
                     report.timings_ms, ",".join(report.flags) or "-")
        self._emit(EventType.RUN_END, report.to_json())

    def _end_run(self, outcome: str) -> None:
        """Back to idle; RUN_END (carrying state idle) closes the run."""
        run = self._run
        self._run = None
        self._abort_stream()
        self._set_state(State.IDLE)
        if run is not None:
            self._finish_run(run, outcome)
        self._flush_announcements()

    def _flush_announcements(self) -> None:
        if self._state is State.IDLE and self._announcements and not self._stop_requested:
            self._spawn(self._announce(self._announcements.popleft()), "announce")

    # ------------------------------------------------------------------ command handlers (on the loop)

    def _on_push_to_talk(self) -> None:
        if self._stop_requested or self._state in (State.WAKE, State.LISTENING):
            return
        if self._run is not None:
            self._cancel_run("push-to-talk")
        self._spawn(self._start_listening("push_to_talk"), "push-to-talk")

    def _on_stop_activity(self) -> None:
        for dropped in self._announcements:
            if dropped.done is not None:
                dropped.done()
        self._announcements.clear()
        if self._run is None:
            return
        _LOGGER.info("Stop: cancelling %s", self._state)
        self._cancel_run("stop")

    def _on_announce(self, announcement: Announce) -> None:
        if self._state is State.IDLE and not self._stop_requested:
            self._spawn(self._announce(announcement), "announce")
        else:
            self._announcements.append(announcement)

    async def _announce(self, announcement: Announce) -> None:
        if self._state is not State.IDLE:
            self._announcements.appendleft(announcement)
            return
        run = self._new_run("announce")
        try:
            if announcement.sound and announcement.rate and isinstance(self.tts, PlaysPcm):
                await self._play(run, self.tts, announcement.text, announcement.sound, announcement.rate)
            elif announcement.text or not announcement.sound:  # a sound this sink cannot play: nothing
                await self._speak(run, announcement.text)
        finally:
            if announcement.done is not None:
                announcement.done()
        if self._run is run:
            self._end_run("announced")

    def _on_tool_call(self, run: Run, call: ToolCall | None, at: float) -> None:
        run.mark("tool_call", at)
        if self._run is not run:
            return
        if self._state is State.THINKING:
            self._set_state(State.ACTING)
        self._emit(EventType.TOOL_CALL, call.to_json() if call is not None else {"confirmation": True})

    def _on_tool_result(self, run: Run, result: ToolResult, at: float) -> None:
        run.mark("action", at)
        if self._run is run:
            self._emit(EventType.TOOL_RESULT, result.to_json())

    # ------------------------------------------------------------------ plumbing

    def _set_state(self, state: State, *, report: bool = True) -> None:
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
        if report and state is State.IDLE and self.status_reporter is not None:
            self.status_reporter.status(self.status_line())

    def _pace_source(self) -> None:
        """Bursts from the capture while only the wake word listens; every frame at once otherwise."""
        source = self.source
        if not isinstance(source, SupportsBatching):
            return
        state = self._state
        urgent = state is State.LISTENING or (state in _BUSY and self._barge_in_armed())
        batch_ms = 0 if urgent else self.idle_batch_ms
        if batch_ms != self._batch_ms:
            self._batch_ms = batch_ms
            try:
                source.set_batch_ms(batch_ms)
            except Exception as err:  # pacing is an optimisation: never fail a transition for it
                _LOGGER.warning("Audio source pacing failed: %s", err)

    def _emit(self, kind: EventType, data: dict[str, Any] | None = None) -> None:
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

    def _from_thread(self, func: Callable[..., Any], *args: Any) -> None:
        """From a worker thread: run ``func(*args)`` on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(func, *args)


def _quietly_abort(stream: SpeechStream) -> None:
    try:
        stream.abort()
    except Exception as err:  # the stream is dropped either way
        _LOGGER.warning("brain stream abort failed: %s", err)


STREAM_PROBE_BYTES = 3200
"""Bytes (0.1 s) of the utterance's start looked for in the fed audio."""


def streamed_clip(head: bytes, utterance: Utterance) -> Utterance:
    """The utterance as the stream heard it: starting at the first fed sample.

    The segmenter decides where an utterance starts only when it closes it (refined
    start minus pre-roll), a little after the start of what it collected and fed. A
    stream's early work counts only when the fed audio is a head of the clip it
    finishes, so the clip handed to ``finish`` gets back the up to ~0.3 s of collected
    audio before the utterance's PCM. When the utterance cannot be found in the fed
    audio (nothing fed, another stretch) it is returned as it is: ``finish`` then
    checks the early work against it and redoes what differs.
    """
    pcm = utterance.pcm
    if not head or not pcm:
        return utterance
    lead = len(pcm) - len(pcm.lstrip(b"\0"))  # digital silence matches anywhere: look for what follows
    if lead == len(pcm):
        return utterance
    probe = pcm[lead : lead + STREAM_PROBE_BYTES]
    view, whole = memoryview(head), memoryview(pcm)
    found = head.find(probe)
    for _ in range(16):  # real audio matches once
        if found < 0:
            break
        at = found - lead
        overlap = min(len(head) - at, len(pcm))
        if at >= 0 and at % 2 == 0 and view[at : at + overlap] == whole[:overlap]:
            return utterance if at == 0 else dataclasses.replace(utterance, pcm=head[:at] + pcm)
        found = head.find(probe, found + 1)
    return utterance
