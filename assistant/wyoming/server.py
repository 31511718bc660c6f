"""A Wyoming server that Home Assistant's wyoming integration can add: our brains for HA.

Serves (``wyoming.server.serve``):

- ``asr``: ``transcribe`` / ``audio-start`` / ``audio-chunk``... / ``audio-stop`` ->
  ``transcript``; the phrase brain's decoder on the current tool grammar; a rejected
  utterance gives an empty transcript (``server_brains.PhraseTranscriber``); or, with
  ``asr: gemma``, Gemma 4's own transcription of whatever was said (``GemmaTranscriber``).
- ``handle``: ``transcript`` -> ``handled`` (the router acted; the spoken answer) or
  ``not-handled`` (nothing placed, nothing done) (``server_brains.RouterConversation``).
- ``tts``: ``synthesize`` -> ``audio-start``, ``audio-chunk``..., ``audio-stop``: the text in
  the daemon's piper voice (its own rate, 16-bit mono). A pipeline that ends in speech (a
  satellite's) needs a speech engine in HA.
- ``describe`` -> ``info`` naming each, with our version; ``ping`` -> ``pong``.

``satellite`` (this assistant's microphone and speaker for HA's pipelines) is served apart,
on ``satellite_port`` (``assistant.wyoming.satellite``): HA's integration treats an ``info``
with a satellite as a satellite only (no stt, no conversation), so it needs an endpoint of
its own.

Untrusted peers: every event is read within ``WireLimits`` (``wire``), every
connection waits at most ``idle_timeout_s`` for its next event (and for the peer to take
an answer), a request's work at most ``work_timeout_s``, at most ``max_connections`` at
once. A peer that breaks the protocol gets an ``error`` event (code and reason) and is
disconnected; nothing it sent is acted on.

Every request is the router's site ``settings.site``: HA's conversation id does not reach
us (wyoming 1.5.4's ``Transcript.event()`` drops the context HA gives it), so all of HA's
pipelines share one site, and a question asked through one is answered by the next turn
of any.

``start_wyoming_server`` is what the daemon calls: ``await start_wyoming_server(...)`` on
its loop, ``await server.stop()`` when the lifetime ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)

from assistant.brains.base import ToolGateway
from assistant.config import WyomingServerSettings
from assistant.errors import ErrorCode
from assistant.tts.base import Synthesizer
from assistant.wyoming.server_brains import (
    GemmaTranscriber,
    Hearing,
    PhraseLike,
    PhraseTranscriber,
    RouterConversation,
    Transcriber,
)
from assistant.wyoming.server_session import Handle, Refuse, Send, Session, Speak, Transcribe
from assistant.wyoming.wire import WireError, WireLimits, read_event

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

OURS = Attribution(name="assistant (offline voice assistant)", url="")
"""Shown by HA beside each program (the project has no public address yet: no link)."""
SPHINX = Attribution(name="CMU Sphinx (pocketsphinx)", url="https://github.com/cmusphinx/pocketsphinx")
HASSIL = Attribution(name="Home Assistant intents (hassil)", url="https://github.com/home-assistant/intents")
PIPER = Attribution(name="Piper (rhasspy)", url="https://github.com/rhasspy/piper")
GEMMA = Attribution(name="Google Gemma 4 (Apache-2.0)", url="https://ai.google.dev/gemma")
SPEECH_CHUNK_SAMPLES = 1024
"""Samples per ``audio-chunk`` of synthesized speech."""


LINGER_S = 0.5
LINGER_BYTES = 4 << 20
"""After a refusal, how long and how much of a peer's remaining input is read and dropped."""


@dataclass(frozen=True)
class ServerLimits:
    """How much any peer may ask of the server."""

    wire: WireLimits = field(default_factory=WireLimits)
    max_connections: int = 8
    idle_timeout_s: float = 30.0
    """Longest wait for a connection's next event."""
    work_timeout_s: float = 20.0
    """Longest a transcription or a handled turn may take before the peer gets an error."""
    max_audio_s: float = 30.0
    """Most audio in one request."""


def describe(serve: frozenset[str], version: str, *, asr: str = "phrase") -> Info:
    """The ``info`` we answer ``describe`` with: one program per service served, language en;
    ``asr``: whose ears (``WyomingServerSettings.asr``)."""
    ears = AsrProgram(
        name="assistant-phrase",
        description="Speech to text on the assistant's phrase grammar (the commands its tools accept); "
                    "rejects rather than guesses",
        attribution=OURS, installed=True, version=version,
        models=[AsrModel(name="phrase-grammar-en",
                         description="pocketsphinx en-us, grammar of the current tools",
                         attribution=SPHINX, installed=True, version=version, languages=["en"])],
    ) if asr == "phrase" else AsrProgram(
        name="assistant-gemma",
        description="Speech to text by Gemma 4's own audio encoder with Google's ASR prompt (free text)",
        attribution=OURS, installed=True, version=version,
        models=[AsrModel(name="gemma-4-asr-en", description="Gemma 4 E2B/E4B (onnx-community export)",
                         attribution=GEMMA, installed=True, version=version, languages=["en"])],
    )
    asr_programs = [ears] if "asr" in serve else []
    handle = [HandleProgram(
        name="assistant-router",
        description="The assistant's tool router: validates, confirms sensitive actions, acts, answers",
        attribution=OURS, installed=True, version=version,
        models=[HandleModel(name="phrase-intents-en", description="Home Assistant sentence templates over "
                            "the current tools", attribution=HASSIL, installed=True, version=version,
                            languages=["en"])],
    )] if "handle" in serve else []
    tts = [TtsProgram(
        name="assistant-voice", description="The assistant's own piper voice", attribution=OURS,
        installed=True, version=version,
        voices=[TtsVoice(name="assistant-en", description="The voice the assistant speaks with",
                         attribution=PIPER, installed=True, version=version, languages=["en"])],
    )] if "tts" in serve else []
    return Info(asr=asr_programs, handle=handle, tts=tts)


class WyomingServer:
    """The TCP server; one ``Session`` per connection; brain work in worker threads."""

    def __init__(self, settings: WyomingServerSettings, *, transcriber: Transcriber | None,
                 conversation: RouterConversation | None, version: str,
                 synthesizer: Synthesizer | None = None, limits: ServerLimits = ServerLimits()) -> None:
        self._settings = settings
        self._transcriber = transcriber
        self._conversation = conversation
        self._synthesizer = synthesizer
        self.serve = frozenset(name for name, part in (
            ("asr", transcriber), ("handle", conversation), ("tts", synthesizer)) if part is not None)
        self._info = describe(self.serve, version, asr=settings.asr).event()
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._work = asyncio.Semaphore(1)  # one decode at a time: the daemon's own turns share the cores
        self.refused = 0
        """Connections ended with an ``error`` event (for logs and tests)."""

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        return len(self._connections)

    @property
    def port(self) -> int:
        """The port listened on (the bound one, when settings say 0)."""
        if self._server is None or not self._server.sockets:
            return self._settings.port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen on ``settings.host:port``; raises OSError when the address is taken."""
        self._server = await asyncio.start_server(
            self._accept, self._settings.host, self._settings.port, limit=self._limits.wire.header_bytes)
        _LOGGER.info("Wyoming server on tcp://%s:%d serving %s", self._settings.host, self.port,
                     ", ".join(sorted(self.serve)) or "nothing")

    async def stop(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
        # Cancel each connection and cut its socket. asyncio.wait_for (Python 3.11) loses a
        # cancel that lands as the awaited operation completes (seen: stop() hung on a
        # connection that had just written its answer); reads and writes use asyncio.timeout
        # instead, and the cut ends a connection whatever it awaits.
        for task, writer in list(self._connections.items()):
            task.cancel()
            writer.transport.abort()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:  # start_server always runs the callback in a task
            writer.close()
            return
        self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        try:
            if len(self._connections) > self._limits.max_connections:
                refusal: Refuse | None = Refuse(ErrorCode.WYOMING_BUSY, "too many connections")
            else:
                refusal = await self._serve_connection(reader, writer)
            if refusal is not None:
                await self._refuse(reader, writer, refusal, peer)
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Wyoming peer %s went away: %s", peer, err)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> Refuse | None:
        """Serve requests until the peer hangs up (None) or breaks the protocol (why)."""
        limits = self._limits
        session = Session(info=self._info, serve=self.serve, max_audio_s=limits.max_audio_s)
        while True:
            try:
                async with asyncio.timeout(limits.idle_timeout_s):
                    event = await read_event(reader, limits.wire)
            except WireError as err:
                return Refuse(err.code, err.message)
            except TimeoutError:
                return Refuse(ErrorCode.WYOMING_TIMEOUT, f"no event for {limits.idle_timeout_s:g} s")
            if event is None:
                return None
            step = session.receive(event)
            if isinstance(step, Refuse):
                return step
            if isinstance(step, Send):
                replies: tuple[Event, ...] = step.events
            else:
                answer = await self._answer(step)
                if isinstance(answer, Refuse):
                    return answer
                replies = answer
            for reply in replies:
                try:
                    async with asyncio.timeout(limits.idle_timeout_s):
                        await async_write_event(reply, writer)
                except TimeoutError:  # a peer that never reads would hold its connection forever
                    _LOGGER.warning("Wyoming peer %s takes no answers; disconnected",
                                    writer.get_extra_info("peername"))
                    writer.transport.abort()  # its unsent answers are dropped, not flushed
                    return None

    async def _answer(self, step: Transcribe | Handle | Speak) -> tuple[Event, ...] | Refuse:
        """A request's answer (events to send), or why not."""
        if isinstance(step, Speak):
            return await self._speak(step)
        answer = await (self._transcribe(step) if isinstance(step, Transcribe) else self._handle(step))
        return answer if isinstance(answer, Refuse) else (answer,)

    async def _transcribe(self, step: Transcribe) -> Event | Refuse:
        transcriber = self._transcriber
        if transcriber is None:  # Session refuses audio unless asr is served
            return Refuse(ErrorCode.WYOMING_NOT_SERVED, "speech to text (asr) is not served here")
        cancel = threading.Event()
        text = await self._in_worker(lambda: transcriber.transcribe(step.pcm, cancel), cancel)
        if isinstance(text, Refuse):
            return text
        _LOGGER.info("Wyoming asr: %.1f s of audio -> %r", len(step.pcm) / 32_000, text)
        return Transcript(text=text).event()

    async def _handle(self, step: Handle) -> Event | Refuse:
        conversation = self._conversation
        if conversation is None:  # Session refuses transcripts unless handle is served
            return Refuse(ErrorCode.WYOMING_NOT_SERVED, "intent handling (handle) is not served here")
        answer = await self._in_worker(lambda: conversation.handle(step.text), threading.Event())
        if isinstance(answer, Refuse):
            return answer
        _LOGGER.info("Wyoming handle: %r -> %s %r", step.text, "handled" if answer.handled else "not handled",
                     answer.text)
        if answer.handled:
            return Handled(text=answer.text, context=step.context).event()
        return NotHandled(text=answer.text, context=step.context).event()

    async def _speak(self, step: Speak) -> tuple[Event, ...] | Refuse:
        synthesizer = self._synthesizer
        if synthesizer is None:  # Session refuses synthesize unless tts is served
            return Refuse(ErrorCode.WYOMING_NOT_SERVED, "text to speech (tts) is not served here")
        spoken = await self._in_worker(lambda: synthesizer.synthesize(step.text), threading.Event())
        if isinstance(spoken, Refuse):
            return spoken
        samples, rate = spoken
        pcm = samples.astype("<i2").tobytes()
        _LOGGER.info("Wyoming tts: %r -> %.1f s of speech", step.text, len(pcm) / (2 * rate))
        step_bytes = SPEECH_CHUNK_SAMPLES * 2
        chunks = tuple(AudioChunk(rate=rate, width=2, channels=1, audio=pcm[at:at + step_bytes]).event()
                       for at in range(0, len(pcm), step_bytes))
        return (AudioStart(rate=rate, width=2, channels=1).event(), *chunks, AudioStop().event())

    async def _in_worker(self, work: Callable[[], _T], cancel: threading.Event) -> _T | Refuse:
        """``work()`` in a thread, one at a time, within the work timeout; why not, when it failed."""
        limit = self._limits.work_timeout_s
        try:
            async with asyncio.timeout(limit):
                async with self._work:
                    return await asyncio.to_thread(work)
        except TimeoutError:
            cancel.set()  # the thread checks it between steps and ends soon
            return Refuse(ErrorCode.WYOMING_TIMEOUT, f"no answer within {limit:g} s")
        except Exception as err:  # a failing brain or router must not end the server
            _LOGGER.exception("Wyoming request failed")
            return Refuse(ErrorCode.BRAIN_FAILED, f"{type(err).__name__}: {err}")

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, refusal: Refuse,
                      peer: object) -> None:
        """Tell the peer why, then read (and drop) what it still sends for a moment, within limits.

        Closing a socket with unread input makes the kernel reset the connection, and a
        peer still writing (a long audio stream) would lose the error event; lingering
        ``LINGER_S`` or ``LINGER_BYTES`` lets it arrive first.
        """
        self.refused += 1
        _LOGGER.warning("Wyoming peer %s refused: %s [%s]", peer, refusal.text, refusal.code)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(LINGER_S):
                await async_write_event(Error(text=refusal.text, code=str(refusal.code)).event(), writer)
            if writer.can_write_eof():
                writer.write_eof()
            dropped = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LINGER_S):
                    while dropped < LINGER_BYTES and (chunk := await reader.read(64 << 10)):
                        dropped += len(chunk)


async def start_wyoming_server(settings: WyomingServerSettings, *, phrase: PhraseLike,
                               router: ToolGateway, synthesizer: Synthesizer | None = None,
                               hearing: Hearing | None = None) -> WyomingServer:
    """Build and start the server for ``settings`` on the running loop, over ``phrase`` and ``router``.

    ``phrase`` is the phrase brain (the daemon's own, when ``brain.kind`` is phrase, or one
    built for the server); ``router`` the daemon's router; ``synthesizer`` the voice of
    ``tts`` (None: tts is left out, logged when asked for); ``hearing`` the Gemma brain's
    transcription for ``asr: gemma`` (None: asr is left out, logged). Its grammar is built in a
    worker thread at once. Raises OSError when the address is taken. Stop it with
    ``await server.stop()``. The ``satellite`` of ``serve`` is not this server's
    (``assistant.wyoming.satellite``).
    """
    from assistant import __version__  # noqa: PLC0415 - the package imports its parts, not the reverse

    site, serve = settings.site, settings.serve
    if "tts" in serve and synthesizer is None:
        _LOGGER.warning("wyoming.server.serve: 'tts' needs a piper voice (tts.voice or the piper extra); "
                        "serving the rest")
    transcriber: Transcriber | None = None
    if "asr" in serve and settings.asr == "gemma":
        if hearing is None:
            _LOGGER.error("wyoming.server.asr is 'gemma' but no Gemma brain could be loaded; "
                          "serving the rest")
        else:
            transcriber = GemmaTranscriber(hearing, site=site)
    elif "asr" in serve:
        transcriber = PhraseTranscriber(phrase, router, site=site)
    server = WyomingServer(
        settings,
        transcriber=transcriber,
        conversation=RouterConversation(phrase, router, site=site) if "handle" in serve else None,
        synthesizer=synthesizer if "tts" in serve else None,
        version=__version__,
    )
    await server.start()
    # the grammar for the current tools, built now rather than on HA's first request (~0.7 s)
    warm = asyncio.get_running_loop().run_in_executor(None, phrase.build, router)
    warm.add_done_callback(_warm_failed)
    return server


def _warm_failed(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and (err := future.exception()) is not None:
        _LOGGER.error("Wyoming server: preparing the phrase grammar failed (%s); the first request retries",
                      err)
