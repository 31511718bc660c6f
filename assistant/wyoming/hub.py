"""The hub: existing wyoming-satellite devices served by this assistant's brain and router.

One ``SatelliteLink`` per configured satellite, each one long-lived asyncio task that
connects to the satellite (``tcp://host:10700``, where wyoming-satellite listens), sends
``run-satellite`` and handles what comes back; on a drop it reconnects with backoff
(assistant.backoff). wyoming-satellite 1.0.0 with a local wake word (``--wake-uri`` or
``--wake-command``) then works like this:

    satellite                              hub
    run-pipeline {start_stage: asr}  ──►   a new capture (segmenter armed)
    audio-chunk ... (no audio-start) ──►   VAD + endpointer (the satellite sends no
                                           audio-stop: the hub decides where speech ends)
                                     ◄──   voice-started / voice-stopped
                                           brain + the SAME router, site = the satellite's
                                     ◄──   transcript (the satellite stops streaming and
                                           waits for its wake word again)
                                     ◄──   synthesize, audio-start, audio-chunk..., audio-stop
    played (newer satellites)        ──►   the reply is over (else: after its duration)

A satellite configured to stream all the time (no local wake word: ``run-pipeline`` with
``start_stage: wake``) is woken by the hub itself, with this assistant's wake words
(``wake.words``, one detector per such satellite): on a detection the hub sends
``detection`` and captures the command as above. While a turn of that satellite is being
answered its audio is not searched for the wake word (it is hearing our reply).
Without wake words (``wake.enabled: false``) such a satellite is refused with a log line.

Guarantees: a capture cut by a drop is discarded (half a command never acts); a command
whose speech ended more than ``freshness_s`` ago is never acted on (checked before the
brain and again at every tool call); the action of a fresh command whose satellite
dropped afterwards still happens (once), and its reply is sent again when the satellite is
back while the command is fresh.
Confirmations stay with the satellite's site (the router scopes them by site); timers
set there announce there (assistant.wyoming.hub_announce).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event as WireEvent
from wyoming.info import Describe
from wyoming.satellite import RunSatellite
from wyoming.tts import Synthesize
from wyoming.vad import VoiceStarted, VoiceStopped
from wyoming.wake import Detection

from assistant.audio.endpointer import EndpointEventType
from assistant.audio.frontend import Segmenter
from assistant.backoff import Backoff
from assistant.brains.base import Brain, ToolGateway
from assistant.config import SatelliteSettings, VadSettings
from assistant.errors import ErrorCode
from assistant.threadnames import name_native_thread
from assistant.tools.base import Tool
from assistant.tts.base import Synthesizer, split_sentences
from assistant.types import (
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    AudioFrame,
    ResultStatus,
    ToolCall,
    ToolResult,
    Utterance,
)
from assistant.wyoming.hub_announce import SatelliteAnnouncer
from assistant.wyoming.hub_state import write_states
from assistant.wyoming.wire import SATELLITE_LIMITS, WireError, read_event, write_event

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
"""A satellite that does not accept the TCP connection within this is tried again later."""
STABLE_S = 5.0
"""A connection that lasted this long resets the backoff (a flapping one keeps backing off)."""
REPLY_CHUNK_SAMPLES = 1024
"""Samples per audio-chunk of a reply (wyoming-satellite's own chunk size)."""
REPLY_ATTEMPTS = 3
"""A reply whose sending failed (the satellite dropped) is tried again this often in all."""
PLAYED_MARGIN_S = 0.5
"""Without a played event, the reply counts as heard this long after its audio's duration."""
WAKE_FRAME_BYTES = 480 * SAMPLE_WIDTH
"""30 ms of 16 kHz audio: what the wake-word detector is fed at a time."""
ANNOUNCE_LIMIT = 5
"""Announcements kept per satellite while it is offline or busy; older ones are dropped."""
STALE_SPEECH = "That came too late, so I did nothing."
BRAIN_FAILED_SPEECH = "Sorry, something went wrong."
"""The reply to a command that was no longer fresh."""
NO_WAKE_MODE = (
    "satellite %s streams for the server's wake word (no --wake-uri / --wake-command) but "
    "wake.enabled is false here: give it a local wake word, or enable wake words"
)


class WakeWords(Protocol):
    """The wake-word detector the hub runs for a satellite that streams all the time."""

    def process(self, pcm: bytes, timestamp: float) -> WakeDetection | None:
        """Feed 16 kHz mono int16 at stream time ``timestamp``; a detection or None."""
        ...

    def reset(self) -> None:
        """Forget buffered audio and model state."""
        ...

    def close(self) -> None:
        """Free the models."""
        ...


class WakeDetection(Protocol):
    """What a detector reports (assistant.wake.detector.Detection has these)."""

    @property
    def word(self) -> str:
        """The wake word's model id (okay_nabu)."""
        ...


class LinkState(StrEnum):
    """What one satellite link is doing."""

    CONNECTING = "connecting"
    WAITING = "waiting"
    """Connected; the satellite listens for its wake word."""
    STREAMING = "streaming"
    """The satellite streams a command."""
    THINKING = "thinking"
    SPEAKING = "speaking"
    OFFLINE = "offline"
    """Dropped or refused; the next attempt waits for the backoff."""


class TurnOutcome(StrEnum):
    """How one satellite turn ended."""

    OK = "ok"
    STALE = "stale"
    """Older than freshness_s: nothing was done."""
    NO_SPEECH = "no_speech"
    """The satellite woke but nobody spoke."""
    DROPPED = "dropped"
    """The connection ended during the capture: the partial command was discarded."""
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class HubTurn:
    """What one satellite turn did (for tests, the bench and the log)."""

    site: str
    outcome: TurnOutcome
    transcript: str | None = None
    reply: str = ""
    tools: tuple[str, ...] = ()
    ended_at: float | None = None
    """monotonic() at the end of speech (None when there was none)."""
    acted_at: float | None = None
    """monotonic() when the first tool call returned."""
    reply_sent: bool = False
    results: tuple[ToolResult, ...] = ()
    """What the router answered to the turn's calls (the HA device's last intent shows them)."""


@dataclass(frozen=True, slots=True)
class SatelliteStatus:
    """One satellite as ``assistant home`` shows it."""

    site: str
    uri: str
    state: LinkState
    name: str | None = None
    area: str | None = None
    connects: int = 0
    turns: int = 0
    stale: int = 0
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    """time.time() of the last state change."""


# --------------------------------------------------------------------------- freshness at the router


class FreshGateway:
    """The router as a satellite turn sees it: no call acts once the command is stale."""

    def __init__(self, router: ToolGateway, ended_at: float, freshness_s: float,
                 on_result: Callable[[ToolResult], None] | None = None) -> None:
        self._router = router
        self._ended_at = ended_at
        self._freshness_s = freshness_s
        self._on_result = on_result
        self.refused = 0

    def fresh(self) -> bool:
        """True while the speech ended no longer than freshness_s ago."""
        return time.monotonic() - self._ended_at <= self._freshness_s

    def _stale(self, call: ToolCall) -> ToolResult:
        self.refused += 1
        _LOGGER.warning("tool=%s refused: the command is %.1f s old (freshness %.1f s)",
                        call.name, time.monotonic() - self._ended_at, self._freshness_s)
        return ToolResult(call, ResultStatus.ERROR, error_code=ErrorCode.STALE_COMMAND, speech=STALE_SPEECH)

    def _seen(self, result: ToolResult) -> ToolResult:
        if self._on_result is not None:
            self._on_result(result)
        return result

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Validate and maybe execute, unless stale."""
        if not self.fresh():
            return self._stale(call)
        return self._seen(self._router.call(call, site=site))

    def pending_confirmation(self, site: str) -> str | None:
        """The waiting question of ``site``, if any."""
        return self._router.pending_confirmation(site)

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Resolve the waiting call; a stale yes cancels it instead."""
        if not self.fresh():
            self._router.answer_confirmation(None, site=site)
            return self._stale(ToolCall("confirmation"))
        return self._seen(self._router.answer_confirmation(transcript, site=site))

    def tools(self) -> Sequence[Tool]:
        """The current tool set."""
        return self._router.tools()

    @property
    def tools_version(self) -> int:
        """Changes with the tool set."""
        return self._router.tools_version


# --------------------------------------------------------------------------- one satellite


def _host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"satellite uri must be tcp://host:port, got {uri!r}")
    return parts.hostname, parts.port


class _Capture:
    """The command being streamed: segmenter + the clock of the satellite's audio."""

    def __init__(self, vad: VadSettings, site: str) -> None:
        self.segmenter = Segmenter(vad, source=f"wyoming:{site}", site=site)
        self.segmenter.arm(vad.no_speech_timeout_s)
        self.converter = Hub.converter()
        self.samples = 0
        self.voiced = False

    def feed(self, pcm: bytes) -> tuple[list[Utterance], bool, bool]:
        """(utterances, speech started, timed out) after ``pcm`` (16 kHz mono int16)."""
        pcm = pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]
        step = self.segmenter.step(AudioFrame(pcm, self.samples / SAMPLE_RATE))
        self.samples += len(pcm) // SAMPLE_WIDTH
        started = any(e.type is EndpointEventType.SPEECH_START for e in step.events)
        return step.utterances, started, step.timed_out


class SatelliteLink:
    """One satellite: the connection with its reconnect loop, captures, turns and replies."""

    def __init__(self, settings: SatelliteSettings, hub: Hub) -> None:
        self.settings = settings
        self.site = settings.site
        self.host, self.port = _host_port(settings.uri)
        self._hub = hub
        self._backoff = Backoff(settings.reconnect_initial_s, settings.reconnect_max_s)
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._capture: _Capture | None = None
        self._turn_lock = asyncio.Lock()
        self._played = asyncio.Event()
        self._announcements: deque[str] = deque(maxlen=ANNOUNCE_LIMIT)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refused_wake_mode = False
        self._wake: WakeWords | None = None
        """The hub's own detector, once the satellite asked for server-side wake words."""
        self._wake_samples = 0
        self._wake_converter = Hub.converter()
        self._wake_rest = b""
        self.status = SatelliteStatus(self.site, settings.uri, LinkState.CONNECTING,
                                      name=settings.name, area=settings.area)

    # ------------------------------------------------------------------ connection

    async def run(self, stopping: asyncio.Event) -> None:
        """Connect, serve, reconnect with backoff, until ``stopping`` is set."""
        while not stopping.is_set():
            self._set(state=LinkState.CONNECTING)
            began = time.monotonic()
            error: str | None = None
            try:
                await self._session_until(stopping)
                error = "the satellite closed the connection"
            except (OSError, TimeoutError, WireError) as err:
                error = f"{type(err).__name__}: {err}"[:200]
            finally:
                self._end_session()
            if stopping.is_set():
                break
            if time.monotonic() - began >= STABLE_S:
                self._backoff.reset()
            delay = self._backoff.next()
            _LOGGER.warning("satellite %s (%s): %s; again in %.1f s",
                            self.site, self.settings.uri, error, delay)
            self._set(state=LinkState.OFFLINE, last_error=error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    async def _session_until(self, stopping: asyncio.Event) -> None:
        """One connection, cut short by ``stopping``."""
        session = asyncio.ensure_future(self._session())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({session, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not session.done():
                session.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await session

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=SATELLITE_LIMITS.header_bytes + 1),
            CONNECT_TIMEOUT_S)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a satellite that lost power is noticed by TCP keepalive
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._writer = writer
        await write_event(Describe().event(), writer)
        await write_event(RunSatellite().event(), writer)
        self._set(state=LinkState.WAITING, connects=self.status.connects + 1, last_error=None)
        _LOGGER.info("satellite %s connected (%s)", self.site, self.settings.uri)
        self._connected.set()
        self._flush_announcements()
        while True:
            event = await read_event(reader, SATELLITE_LIMITS)
            if event is None:
                return
            await self._on_event(event)

    def _end_session(self) -> None:
        self._connected.clear()
        writer, self._writer = self._writer, None
        if self._capture is not None:
            self._capture = None
            _LOGGER.warning("satellite %s dropped during a command: the partial command is discarded",
                            self.site)
            self._hub.report(HubTurn(self.site, TurnOutcome.DROPPED))
        if writer is not None:
            writer.close()

    async def send(self, event: WireEvent) -> bool:
        """Send one event; False when not connected or the write failed."""
        writer = self._writer
        if writer is None:
            return False
        try:
            await write_event(event, writer)
        except (OSError, RuntimeError) as err:
            _LOGGER.warning("satellite %s: send failed: %s", self.site, err)
            # The connection is gone: nothing more is sent on it, and closing it ends the
            # session's reader, so the link reconnects.
            if self._writer is writer:
                self._writer = None
                self._connected.clear()
            writer.close()
            return False
        return True

    # ------------------------------------------------------------------ incoming events

    async def _on_event(self, event: WireEvent) -> None:
        kind = event.type
        if kind == "run-pipeline":
            self._on_run_pipeline(event.data)
        elif kind == "audio-chunk":
            await self._on_audio(event)
        elif kind == "audio-stop":
            if self._capture is not None:
                await self._end_capture(self._capture.segmenter.flush())
        elif kind == "played":
            self._played.set()
        elif kind == "info":
            self._on_info(event.data)
        else:
            _LOGGER.debug("satellite %s: %s ignored", self.site, kind)

    def _on_info(self, data: dict[str, Any]) -> None:
        satellite = data.get("satellite")
        if isinstance(satellite, dict) and self.settings.name is None:
            name = satellite.get("name")
            if isinstance(name, str) and name.isprintable():
                self._set(name=name[:100])

    def _on_run_pipeline(self, data: dict[str, Any]) -> None:
        if data.get("start_stage") == "wake":
            if self._hub.wake_factory is None:
                if not self._refused_wake_mode:
                    _LOGGER.error(NO_WAKE_MODE, self.site)
                    self._refused_wake_mode = True
                return
            if self._wake is None:
                self._wake = self._hub.wake_factory()
                _LOGGER.info("satellite %s streams all the time: the hub listens for the wake word",
                             self.site)
            return
        self._begin_capture()

    def _begin_capture(self) -> None:
        self._capture = _Capture(self._hub.vad, self.site)
        self._set(state=LinkState.STREAMING)
        _LOGGER.debug("satellite %s: woke, capturing", self.site)

    async def _listen_for_wake(self, event: WireEvent) -> None:
        """A satellite that streams all the time: search its audio for the wake word."""
        wake = self._wake
        if wake is None:
            return
        if self._turn_lock.locked():  # it is hearing our reply: never wake on our own voice
            self._wake_samples = 0
            return
        try:
            chunk = self._wake_converter.convert(AudioChunk.from_event(event))
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("satellite %s: bad audio-chunk ignored: %s", self.site, err)
            return
        if self._wake_samples == 0:
            wake.reset()
            self._wake_rest = b""
        # The detector's features want whole 30 ms frames (the daemon's frame size).
        pcm = self._wake_rest + bytes(chunk.audio)
        whole = len(pcm) - len(pcm) % WAKE_FRAME_BYTES
        self._wake_rest = pcm[whole:]
        for at in range(0, whole, WAKE_FRAME_BYTES):
            found = wake.process(pcm[at : at + WAKE_FRAME_BYTES], self._wake_samples / SAMPLE_RATE)
            self._wake_samples += WAKE_FRAME_BYTES // SAMPLE_WIDTH
            if found is not None:
                _LOGGER.info("satellite %s: wake word %s", self.site, found.word)
                self._wake_samples = 0
                await self.send(Detection(name=found.word).event())
                self._begin_capture()
                return

    async def _on_audio(self, event: WireEvent) -> None:
        capture = self._capture
        if capture is None:
            await self._listen_for_wake(event)
            return
        try:
            chunk = capture.converter.convert(AudioChunk.from_event(event))
        except (KeyError, TypeError, ValueError) as err:
            _LOGGER.warning("satellite %s: bad audio-chunk ignored: %s", self.site, err)
            return
        utterances, started, timed_out = capture.feed(bytes(chunk.audio))
        if started and not capture.voiced:
            capture.voiced = True
            await self.send(VoiceStarted().event())
        if utterances or timed_out:
            await self._end_capture(utterances)

    async def _end_capture(self, utterances: list[Utterance]) -> None:
        self._capture = None
        if not utterances:
            _LOGGER.info("satellite %s: nothing said after the wake word", self.site)
            await self.send(Transcript(text="").event())  # ends the satellite's streaming
            self._set(state=LinkState.WAITING)
            self._hub.report(HubTurn(self.site, TurnOutcome.NO_SPEECH))
            self._flush_announcements()
            return
        await self.send(VoiceStopped().event())
        self._set(state=LinkState.THINKING)
        self._spawn(self._turn(utterances[0]), "turn")

    # ------------------------------------------------------------------ turns

    async def _turn(self, utterance: Utterance) -> None:
        async with self._turn_lock:
            turn = await self._think(utterance)
            if turn.outcome is TurnOutcome.STALE:
                await self.send(Error(text=STALE_SPEECH, code=ErrorCode.STALE_COMMAND).event())
            sent = await self.send(Transcript(text=turn.transcript or "").event())
            heard_at: float | None = None
            for _attempt in range(REPLY_ATTEMPTS if turn.reply else 0):
                # A drop during the turn: the reply goes out again once the satellite is back,
                # while the command is still fresh (the action itself has happened once).
                if not await self._back_in_time(utterance):
                    break
                heard_at = await self._speak(turn.reply)
                if heard_at is not None:
                    break
            sent = heard_at is not None if turn.reply else sent
            stale = turn.outcome is TurnOutcome.STALE
            self._set(turns=self.status.turns + 1, stale=self.status.stale + stale)
            self._hub.report(replace(turn, reply_sent=sent))
            if heard_at is not None:
                await self._heard(heard_at)
            self._settle()
        self._flush_announcements()

    def _settle(self) -> None:
        """Back to waiting for the wake word, unless the satellite woke again meanwhile."""
        if self._writer is not None and self._capture is None:
            self._set(state=LinkState.WAITING)

    async def _think(self, utterance: Utterance) -> HubTurn:
        freshness = self.settings.freshness_s
        acted: list[float] = []
        gateway = FreshGateway(self._hub.router, utterance.ended_at, freshness,
                               on_result=lambda _result: acted.append(time.monotonic()))
        if not gateway.fresh():
            _LOGGER.warning("satellite %s: command dropped, %.1f s old", self.site,
                            time.monotonic() - utterance.ended_at)
            return HubTurn(self.site, TurnOutcome.STALE, reply=STALE_SPEECH, ended_at=utterance.ended_at)
        try:
            result = await self._hub.in_worker(self._hub.brain.handle, utterance, gateway, threading.Event())
        except Exception:  # a failed brain call must not end the link
            _LOGGER.exception("satellite %s: brain failed", self.site)
            return HubTurn(self.site, TurnOutcome.ERROR, reply=BRAIN_FAILED_SPEECH,
                           ended_at=utterance.ended_at)
        outcome = TurnOutcome.STALE if gateway.refused else TurnOutcome.OK
        return HubTurn(self.site, outcome, transcript=result.transcript, reply=result.reply.text,
                       tools=tuple(c.name for c in result.tool_calls), ended_at=utterance.ended_at,
                       acted_at=acted[0] if acted else None, results=tuple(result.results))

    async def _back_in_time(self, utterance: Utterance) -> bool:
        """True when connected; after a drop, waits for the satellite while the reply is still fresh."""
        if self._connected.is_set():
            return True
        left = self.settings.freshness_s - (time.monotonic() - utterance.ended_at)
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), left)
            return True
        return False

    async def _speak(self, text: str) -> float | None:
        """Synthesize ``text`` and send it as audio: when it will have been heard (monotonic),
        or None when it could not be sent."""
        self._set(state=LinkState.SPEAKING)
        self._played.clear()
        if not await self.send(Synthesize(text=text).event()):
            return None
        began: float | None = None
        seconds = 0.0
        for sentence in split_sentences(text):
            try:
                pcm, rate = await self._hub.in_worker(self._hub.synthesizer.synthesize, sentence)
            except Exception:  # an unspeakable reply must not end the link
                _LOGGER.exception("satellite %s: synthesis failed", self.site)
                break
            samples = np.asarray(pcm, dtype="<i2").tobytes()
            if began is None:
                began = time.monotonic()
                if not await self.send(AudioStart(rate=rate, width=2, channels=1).event()):
                    return None
            step = REPLY_CHUNK_SAMPLES * 2
            for at in range(0, len(samples), step):
                chunk = AudioChunk(rate=rate, width=2, channels=1, audio=samples[at : at + step])
                if not await self.send(chunk.event()):
                    return None
            seconds += len(samples) / 2 / rate
        if began is None:
            return time.monotonic()
        if not await self.send(AudioStop().event()):
            return None
        return began + seconds + PLAYED_MARGIN_S

    async def _heard(self, until: float) -> None:
        """Wait for the satellite's played event, or until the reply's audio has run out."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._played.wait(), max(0.0, until - time.monotonic()))

    # ------------------------------------------------------------------ announcements

    def announce(self, text: str) -> None:
        """Speak ``text`` on this satellite when it is connected and free (loop thread)."""
        self._announcements.append(text)
        self._flush_announcements()

    def _flush_announcements(self) -> None:
        if not self._announcements or self._writer is None or self._turn_lock.locked() \
                or self._capture is not None:
            return
        text = self._announcements.popleft()
        self._spawn(self._announce(text), "announce")

    async def _announce(self, text: str) -> None:
        async with self._turn_lock:
            _LOGGER.info("satellite %s: announcing %r", self.site, text)
            heard_at = await self._speak(text)
            if heard_at is not None:
                await self._heard(heard_at)
            self._settle()
        self._flush_announcements()

    # ------------------------------------------------------------------ bookkeeping

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"satellite-{self.site}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("satellite %s: task %s failed", self.site, task.get_name(),
                          exc_info=task.exception())

    def _set(self, **changes: Any) -> None:
        if "state" in changes:
            changes["since"] = time.time()
        self.status = replace(self.status, **changes)
        self._hub.status_changed()


# --------------------------------------------------------------------------- the hub


class Hub:
    """Every configured satellite, served by one brain, one router and one synthesizer."""

    def __init__(
        self,
        satellites: Sequence[SatelliteSettings],
        *,
        brain: Brain,
        router: ToolGateway,
        synthesizer: Synthesizer,
        vad: VadSettings,
        announcer: SatelliteAnnouncer | None = None,
        on_turn: Callable[[HubTurn], None] | None = None,
        state_file: Path | None = None,
        wake_factory: Callable[[], WakeWords] | None = None,
        workers: int = 2,
    ) -> None:
        """``wake_factory`` makes the detector for a satellite that streams all the time
        (None: such satellites are refused)."""
        self.brain = brain
        self.wake_factory = wake_factory
        self.router = router
        self.synthesizer = synthesizer
        self.vad = vad
        self.announcer = announcer
        self.on_turn = on_turn
        self.state_file = state_file
        self.links = {s.site: SatelliteLink(s, self) for s in satellites}
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hub",
                                                               initializer=name_native_thread)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    async def run(self) -> None:
        """Serve every satellite until ``stop``."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self.announcer is not None:
            self.announcer.attach(self._announce_threadsafe)
        try:
            await asyncio.gather(*(link.run(self._stopping) for link in self.links.values()))
        finally:
            if self.announcer is not None:
                self.announcer.detach()
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.status_changed()

    def stop(self) -> None:
        """End ``run`` (loop thread)."""
        if self._stopping is not None:
            self._stopping.set()

    def status(self) -> list[SatelliteStatus]:
        """Each satellite's state."""
        return [link.status for link in self.links.values()]

    @staticmethod
    def converter() -> Any:
        """A converter of a satellite's audio chunks to 16 kHz mono int16 (wyoming's)."""
        return AudioChunkConverter(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=1)

    async def in_worker(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (brain, synthesis) in the hub's worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    def report(self, turn: HubTurn) -> None:
        """One turn ended: log it and tell ``on_turn``."""
        _LOGGER.info("satellite %s turn: %s transcript=%r tools=%s reply_sent=%s", turn.site, turn.outcome,
                     turn.transcript, ",".join(turn.tools) or "-", turn.reply_sent)
        if self.on_turn is not None:
            try:
                self.on_turn(turn)
            except Exception:  # observers must never break a link
                _LOGGER.exception("on_turn failed")

    def status_changed(self) -> None:
        """Write the satellites' states for ``assistant home`` (atomically; never raises)."""
        if self.state_file is None:
            return
        stopped = self._stopping is not None and self._stopping.is_set()
        write_states(self.state_file, [{**asdict(s), "state": str(LinkState.OFFLINE if stopped else s.state)}
                                       for s in self.status()])

    def _announce_threadsafe(self, text: str, site: str) -> None:
        loop, link = self._loop, self.links.get(site)
        if loop is None or link is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: shutting down
            loop.call_soon_threadsafe(link.announce, text)

