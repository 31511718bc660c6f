"""Our microphone and speaker for Home Assistant's pipelines: a Wyoming satellite endpoint.

``wyoming.server.serve: [satellite]`` listens on ``satellite_port`` for HA's wyoming
integration; the daemon's orchestrator hands its wake-word turns to it (``take``, the
``assistant.handoff`` seam) while HA runs it.

What HA 2025.4 does with an endpoint whose ``info`` has a ``satellite`` (read in its
``components/wyoming``: ``data.py``, ``__init__.py``, ``assist_satellite.py``): the whole
config entry is a satellite (no stt, tts or conversation entities from it), an
``assist_satellite`` entity plus its switches and selects. It keeps one connection open;
on it it sends ``run-satellite``, then ``describe`` (again each pipeline loop) and a
``ping`` 2 s after each ``pong`` (no event for 5 s and it reconnects), and
``pause-satellite`` when muted or removed. A satellite starts a turn with ``run-pipeline``
(here from ``asr`` to ``tts``), streams ``audio-chunk`` (16 kHz 16-bit mono) and ends its
speech with ``audio-stop``. HA forwards its pipeline's events: ``transcribe`` (stt start),
``voice-started`` / ``voice-stopped`` (its own VAD), ``transcript`` (stt end),
``synthesize`` (the answer text, at tts start), then the answer's speech as
``audio-start`` / ``audio-chunk``... / ``audio-stop`` (WAV from the pipeline's tts engine,
asked for as 22 050 Hz mono 16-bit), or ``error`` (code, message) when a stage fails. It
sends no run end: a turn is over at the answer's ``audio-stop`` or at an ``error``;
``played`` from us tells HA the answer is over (its entity goes idle). A pipeline that ends
at ``handle`` would forward no answer text at all (HA sends nothing at intent end), hence
tts, and HA needs a speech engine for it (``serve: [tts]`` offers ours). Outside a turn
HA may announce (``assist_satellite.announce``: audio-start / audio-chunk... / audio-stop
at 22 050 Hz, then it waits for ``played`` up to the sound's length plus 0.5 s): the sound
goes to the orchestrator's inbox as an ``Announce`` (played when idle, like our own
announcements) and ``played`` follows its end. Timer events are logged.

Who takes a turn (never both): HA, when it is connected and has sent ``run-satellite``
(not paused) and the ``run-pipeline`` went out; our brain otherwise (``take`` returns None
and says why in the log). Once ``run-pipeline`` is written the turn is HA's: a connection
that drops after it ends the turn without an answer (HA may have acted on what it got) and
nothing of ours acts on it.

Untrusted peer: events are read within ``WireLimits``, the answer's audio within
``max_answer_s``, every wait is bounded; what breaks the protocol gets an ``error`` event
and a disconnect; nothing raises into the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wyoming.audio import AudioChunk, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Attribution, Info, Satellite
from wyoming.ping import Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.snd import Played

from assistant.config import WyomingServerSettings
from assistant.errors import ErrorCode
from assistant.handoff import HandedOff
from assistant.inbox import Announce
from assistant.types import Utterance
from assistant.wyoming.wire import WireError, WireLimits, read_event

_LOGGER = logging.getLogger(__name__)

OURS = Attribution(name="assistant (offline voice assistant)", url="")
RATE = 16_000
MAX_TEXT_CHARS = 2000
"""Longest transcript or answer text taken from HA."""
ANSWER_RATES = range(8000, 48001)
"""Sample rates an answer may have (HA asks its tts for 22 050 Hz)."""


@dataclass(frozen=True)
class SatelliteLimits:
    """How much HA (or anything on the port) may ask of the endpoint."""

    wire: WireLimits = field(default_factory=WireLimits)
    idle_timeout_s: float = 30.0
    """Longest quiet on a connection before it is dropped (HA pings every 2 s while it runs us;
    a muted satellite hears nothing)."""
    stale_after_s: float = 8.0
    """Quiet this long, the connection is not trusted with a turn (our brain takes it): HA pings
    2 s after each pong, so a live HA is never this quiet while it runs us; a host that vanished
    without closing the connection is."""
    write_timeout_s: float = 5.0
    """Longest wait for the peer to take one event."""
    answer_timeout_s: float = 30.0
    """Longest wait from the end of our speech to the end of HA's answer."""
    speech_timeout_s: float = 8.0
    """Longest wait, once HA said its answer's text (``synthesize``), for that answer's sound
    (a pipeline whose tts fails sends none: then our own voice says the text)."""
    max_answer_s: float = 60.0
    """Most answer audio (at its own rate)."""
    chunk_samples: int = 1024
    """Microphone samples per ``audio-chunk`` (64 ms, as HA's own satellites send)."""


def describe(name: str, version: str, area: str | None) -> Info:
    """The ``info`` we answer ``describe`` with: a satellite only (HA takes the entry for one)."""
    return Info(satellite=Satellite(
        name=name, attribution=OURS, installed=True, version=version, area=area,
        description="The assistant's own microphone and speaker (wake word and end of speech "
                    "here; English)"))


class _Turn:
    """One handed-off turn: HA's events in, the ``HandedOff`` out (``done`` when it has ended)."""

    def __init__(self, max_audio_bytes: int) -> None:
        self.done = asyncio.Event()
        self.result: HandedOff | None = None
        self._max_audio_bytes = max_audio_bytes
        self._transcript: str | None = None
        self._reply = ""
        self._audio = bytearray()
        self._rate = 0
        self.reply_at: float | None = None
        """Loop time of ``synthesize`` (the answer's text)."""

    def receive(self, event: Event) -> None:
        """One of HA's events while the turn is on; those that say nothing here are dropped."""
        if self.done.is_set():
            return
        kind, data = event.type, event.data or {}
        if kind == "transcript":
            self._transcript = _text(data)
        elif kind == "synthesize":
            self._reply = _text(data) or ""
            self.reply_at = asyncio.get_running_loop().time()
        elif kind == "audio-start":
            rate, width, channels = data.get("rate"), data.get("width"), data.get("channels")
            if not (isinstance(rate, int) and rate in ANSWER_RATES and width == 2 and channels == 1):
                self.end(f"Home Assistant's answer is not 16-bit mono audio (rate={rate!r}, width={width!r}, "
                         f"channels={channels!r})", ErrorCode.WYOMING_BAD_EVENT)
                return
            self._rate, self._audio = rate, bytearray()
        elif kind == "audio-chunk":
            payload = event.payload or b""
            if not self._rate or data.get("rate") != self._rate or len(payload) % 2:
                self.end("Home Assistant's answer audio is out of order or not whole samples",
                         ErrorCode.WYOMING_BAD_EVENT)
            elif len(self._audio) + len(payload) > self._max_audio_bytes:
                self.end("Home Assistant's answer is too long", ErrorCode.WYOMING_TOO_LARGE)
            else:
                self._audio += payload
        elif kind == "audio-stop":
            self._finish(HandedOff(self._transcript, self._reply, bytes(self._audio), self._rate))
        elif kind == "error":
            text = data.get("text") if isinstance(data.get("text"), str) else "?"
            code = data.get("code") if isinstance(data.get("code"), str) else "?"
            self.end(f"Home Assistant's pipeline failed: {str(text)[:200]} [{str(code)[:64]}]",
                     ErrorCode.HA_PIPELINE_FAILED)

    def end(self, problem: str, code: str) -> None:
        """The turn ends without a (whole) answer: what was heard and said so far is kept."""
        self._finish(HandedOff(self._transcript, self._reply, problem=problem, code=str(code)))

    def _finish(self, result: HandedOff) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()


def _text(data: dict[str, Any]) -> str | None:
    text = data.get("text")
    return " ".join(text.split())[:MAX_TEXT_CHARS] if isinstance(text, str) else None


@dataclass
class _Link:
    """HA's connection: its writer, whether it runs us, the turn it has."""

    writer: asyncio.StreamWriter
    peer: object
    running: bool = False
    turn: _Turn | None = None
    heard_at: float = 0.0
    """Loop time of the last event from the peer."""
    announcement: _Turn | None = None
    """An announcement's sound being received (outside a turn)."""


class SatelliteEndpoint:
    """The TCP endpoint HA connects to (one connection: a new one replaces the old) and the turn handoff."""

    def __init__(self, settings: WyomingServerSettings, *, version: str, name: str = "assistant",
                 area: str | None = None, limits: SatelliteLimits = SatelliteLimits(),
                 announce: Callable[[Announce], None] | None = None) -> None:
        """``announce``: where HA's announcements go (the orchestrator's ``Inbox.post``); None:
        they are acknowledged and not played."""
        self.announce = announce
        self._settings = settings
        self._info = describe(name, version, area).event()
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._link: _Link | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refused = 0
        """Connections ended with an ``error`` event (for logs and tests)."""

    @property
    def port(self) -> int:
        """The port listened on (the bound one, when settings say 0)."""
        if self._server is None or not self._server.sockets:
            return self._settings.satellite_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def running(self) -> bool:
        """HA is connected and runs us (``run-satellite``, no pause since): turns go to it."""
        return self._link is not None and self._link.running

    @property
    def active(self) -> bool:
        """``running``: the next turn will most likely be HA's (``TurnHandoff``)."""
        return self.running

    async def start(self) -> None:
        """Listen on ``settings.host:satellite_port``; raises OSError when the address is taken."""
        self._server = await asyncio.start_server(
            self._accept, self._settings.host, self._settings.satellite_port,
            limit=self._limits.wire.header_bytes)
        _LOGGER.info("Wyoming satellite endpoint on tcp://%s:%d", self._settings.host, self.port)

    async def stop(self) -> None:
        """Stop listening and end the connection (a turn in flight ends without an answer)."""
        if self._server is not None:
            self._server.close()
        link = self._link
        if link is not None:
            link.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    # ------------------------------------------------------------------ the handoff

    async def take(self, utterance: Utterance, cancel: threading.Event) -> HandedOff | None:
        """Hand the turn to HA's pipeline (see the module docstring); None: our brain takes it."""
        link = self._link
        limits = self._limits
        quiet = asyncio.get_running_loop().time() - link.heard_at if link is not None else 0.0
        if link is None or not link.running or link.turn is not None or quiet > limits.stale_after_s:
            why = ("not connected" if link is None else "paused" if not link.running
                   else "busy" if link.turn is not None else f"silent for {quiet:.0f} s")
            _LOGGER.info("Home Assistant's satellite is %s: our brain takes the turn", why)
            return None
        turn = _Turn(int(limits.max_answer_s * max(ANSWER_RATES)) * 2)
        link.turn = turn
        try:
            try:
                await self._write(link, RunPipeline(start_stage=PipelineStage.ASR,
                                                    end_stage=PipelineStage.TTS).event())
            except (ConnectionError, OSError, TimeoutError) as err:
                _LOGGER.warning("Home Assistant cannot be reached (%s): our brain takes the turn",
                                err or "timeout")
                return None
            _LOGGER.info("Turn handed to Home Assistant (%.1f s of speech)", len(utterance.pcm) / (RATE * 2))
            await self._send_speech(link, turn, utterance.pcm, cancel)
            return await self._answer(turn, cancel)
        finally:
            link.turn = None

    async def played(self) -> None:
        """Tell HA its answer has been played (its satellite entity goes idle)."""
        link = self._link
        if link is not None:
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await self._write(link, Played().event())

    async def _send_speech(self, link: _Link, turn: _Turn, pcm: bytes, cancel: threading.Event) -> None:
        step = self._limits.chunk_samples * 2
        try:
            for at in range(0, len(pcm), step):
                if cancel.is_set() or turn.done.is_set():
                    break
                chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=pcm[at:at + step])
                await self._write(link, chunk.event())
            await self._write(link, AudioStop().event())
        except (ConnectionError, OSError, TimeoutError) as err:
            turn.end(f"the connection to Home Assistant ended while the turn was sent ({err or 'timeout'})",
                     ErrorCode.HA_SATELLITE_LOST)

    async def _answer(self, turn: _Turn, cancel: threading.Event) -> HandedOff:
        """HA's answer, within the answer timeout; soon after ``cancel`` (a barge-in) without it."""
        limit = self._limits.answer_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not turn.done.is_set():
            left = deadline - loop.time()
            if turn.reply_at is not None:
                left = min(left, turn.reply_at + self._limits.speech_timeout_s - loop.time())
            if cancel.is_set():
                turn.end("the turn was cancelled here", ErrorCode.HA_SATELLITE_LOST)
            elif left <= 0:
                said = "no sound for its answer" if turn.reply_at is not None else "no answer"
                turn.end(f"{said} from Home Assistant in time", ErrorCode.HA_SATELLITE_LOST)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(0.05, left)):  # the cancel flag is a thread's: polled
                        await turn.done.wait()
        result = turn.result
        if result is None:  # set with done; kept for the type
            return HandedOff(problem="the turn ended without a result", code=ErrorCode.HA_SATELLITE_LOST)
        if result.problem is not None:
            _LOGGER.warning("Home Assistant's turn ended without an answer: %s", result.problem)
        else:
            _LOGGER.info("Home Assistant heard %r and answered %r (%.1f s of speech)", result.transcript,
                         result.reply, len(result.audio) / (2 * result.rate) if result.rate else 0.0)
        return result

    # ------------------------------------------------------------------ the connection

    def _announcement(self, link: _Link, event: Event) -> tuple[Event, ...]:
        """An announcement's sound, outside a turn: to the inbox at its end; ``played`` once played."""
        if event.type == "audio-start":
            link.announcement = _Turn(int(self._limits.max_answer_s * max(ANSWER_RATES)) * 2)
        sound = link.announcement
        if sound is None:  # a chunk or a stop without a start: nothing to play
            return (Played().event(),) if event.type == "audio-stop" else ()
        sound.receive(event)
        if not sound.done.is_set():
            return ()
        link.announcement = None
        result = sound.result
        if result is None or result.problem is not None or not result.audio or self.announce is None:
            _LOGGER.info("Home Assistant's announcement not played (%s)",
                         "no speaker for it" if self.announce is None else
                         result.problem if result is not None and result.problem else "no sound")
            return (Played().event(),)
        loop = asyncio.get_running_loop()
        _LOGGER.info("Home Assistant announces %.1f s of sound", len(result.audio) / (2 * result.rate))

        def played() -> None:  # on the orchestrator's loop (the same one in the daemon)
            loop.call_soon_threadsafe(self._played_later, link)

        self.announce(Announce("", sound=result.audio, rate=result.rate, done=played))
        return ()

    def _played_later(self, link: _Link) -> None:
        if self._link is link:
            task = asyncio.ensure_future(self._played(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _played(self, link: _Link) -> None:
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await self._write(link, Played().event())

    async def _write(self, link: _Link, event: Event) -> None:
        async with asyncio.timeout(self._limits.write_timeout_s):
            await async_write_event(event, link.writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        old, link = self._link, _Link(writer, peer, heard_at=asyncio.get_running_loop().time())
        if old is not None:  # HA reconnects after a failure it saw first: the newest connection is HA's
            _LOGGER.info("Wyoming satellite: %s replaces the connection of %s", peer, old.peer)
            old.writer.transport.abort()
        self._link = link
        _LOGGER.info("Wyoming satellite: %s connected", peer)
        try:
            problem = await self._serve(reader, link)
            if problem is not None:
                self.refused += 1
                _LOGGER.warning("Wyoming satellite peer %s refused: %s [%s]", peer, problem.message,
                                problem.code)
                with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                    await self._write(link, Error(text=problem.message, code=problem.code).event())
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Wyoming satellite peer %s went away: %s", peer, err)
        finally:
            if link.turn is not None:
                link.turn.end("the connection to Home Assistant ended during the turn",
                              ErrorCode.HA_SATELLITE_LOST)
            if self._link is link:
                self._link = None
                _LOGGER.info("Wyoming satellite: %s disconnected; our brain takes the turns", peer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, link: _Link) -> WireError | None:
        """Read HA's events until it hangs up (None) or breaks the protocol (why)."""
        limits = self._limits
        while self._link is link:
            try:
                async with asyncio.timeout(limits.idle_timeout_s):
                    event = await read_event(reader, limits.wire)
            except WireError as err:
                return err
            except TimeoutError:
                return WireError(f"no event for {limits.idle_timeout_s:g} s", code=ErrorCode.WYOMING_TIMEOUT)
            if event is None:
                return None
            link.heard_at = asyncio.get_running_loop().time()
            for reply in self._receive(link, event):
                await self._write(link, reply)
        return None

    def _receive(self, link: _Link, event: Event) -> tuple[Event, ...]:
        """One of HA's events: what to answer (a turn in flight takes its own)."""
        kind, data = event.type, event.data or {}
        replies: tuple[Event, ...] = ()
        if kind == "describe":
            replies = (self._info,)
        elif kind == "ping":
            text = data.get("text")
            replies = (Pong(text=text if isinstance(text, str) else None).event(),)
        elif kind in ("run-satellite", "pause-satellite"):
            running = kind == "run-satellite"
            if running != link.running:
                _LOGGER.info("Home Assistant %s", "runs our satellite: wake-word turns go to its pipeline"
                             if running else "paused our satellite: our brain takes the turns")
            link.running = running  # a turn in flight goes on when paused: HA may still answer it
        elif link.turn is not None:
            link.turn.receive(event)
        elif kind in ("audio-start", "audio-chunk", "audio-stop"):
            replies = self._announcement(link, event)
        else:
            _LOGGER.debug("Wyoming satellite: %s from Home Assistant outside a turn, ignored", kind)
        return replies


async def start_satellite_endpoint(settings: WyomingServerSettings, *, area: str | None = None,
                                   announce: Callable[[Announce], None] | None = None) -> SatelliteEndpoint:
    """Build and start the endpoint on the running loop; raises OSError when the port is taken."""
    from assistant import __version__  # noqa: PLC0415 - the package imports its parts, not the reverse

    endpoint = SatelliteEndpoint(settings, version=__version__, area=area, announce=announce)
    await endpoint.start()
    return endpoint
