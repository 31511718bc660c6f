"""One Wyoming connection's protocol, as a pure state machine: events in, steps out.

``Session.receive`` takes each event a peer sent (already bounded by ``wire``) and
returns what to do: send events back (``Send``), transcribe the audio collected between
``audio-start`` and ``audio-stop`` (``Transcribe``), let the router handle a ``transcript``
(``Handle``), or refuse and disconnect (``Refuse``, with an error code and a message for
the peer). No I/O and no clock: the server (``assistant.wyoming.server``) does those.

The order a peer must keep, per request: ``describe`` -> ``info``; ``transcribe``
(optional), ``audio-start``, ``audio-chunk``..., ``audio-stop`` -> ``transcript``;
``transcript`` -> ``handled`` / ``not-handled``; ``synthesize`` -> ``audio-start``,
``audio-chunk``..., ``audio-stop`` (``Speak``); ``ping`` -> ``pong``. Anything else, a
service that is not served, audio in another format than 16 kHz 16-bit mono, or more
audio than ``max_audio_s`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wyoming.event import Event
from wyoming.ping import Pong

from assistant.errors import ErrorCode

RATE = 16_000
WIDTH = 2
CHANNELS = 1
MAX_TEXT_CHARS = 1000
"""Longest transcript a peer may hand to ``handle`` (a spoken command is a sentence)."""
MAX_SPEECH_CHARS = 2000
"""Longest text a peer may have spoken (``synthesize``): an answer is a sentence or two."""


@dataclass(frozen=True)
class Send:
    """Send these events and read on."""

    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Transcribe:
    """Transcribe 16 kHz mono int16 ``pcm``; answer with a ``transcript`` (empty when rejected)."""

    pcm: bytes
    language: str | None


@dataclass(frozen=True)
class Handle:
    """Let the router act on ``text``; answer with ``handled`` or ``not-handled`` (``context`` echoed)."""

    text: str
    context: dict[str, Any] | None


@dataclass(frozen=True)
class Speak:
    """Synthesize ``text``; answer with its audio (``audio-start``, ``audio-chunk``..., ``audio-stop``)."""

    text: str


@dataclass(frozen=True)
class Refuse:
    """Send an ``error`` event with ``code`` and ``text``, then disconnect; nothing is acted on."""

    code: str
    text: str


Step = Send | Transcribe | Handle | Speak | Refuse


class Session:
    """The protocol state of one connection (see the module docstring for the order kept)."""

    def __init__(self, *, info: Event, serve: frozenset[str], max_audio_s: float = 30.0,
                 languages: tuple[str, ...] = ("en",)) -> None:
        self._info = info
        self._serve = serve
        self._max_audio_bytes = int(max_audio_s * RATE) * WIDTH
        self._languages = languages
        self._language: str | None = None
        self._audio: bytearray | None = None

    def receive(self, event: Event) -> Step:
        """What to do about ``event`` (see ``Step``)."""
        kind = event.type
        data = event.data or {}
        if kind == "describe":
            return Send((self._info,))
        if kind == "ping":
            text = data.get("text")
            return Send((Pong(text=text if isinstance(text, str) else None).event(),))
        if kind in ("transcribe", "audio-start", "audio-chunk", "audio-stop"):
            return self._audio_event(kind, data, event.payload)
        if kind == "transcript":
            return self._transcript(data)
        if kind == "synthesize":
            return self._synthesize(data)
        return Refuse(ErrorCode.WYOMING_BAD_EVENT, f"unexpected event {kind!r}")

    def _audio_event(self, kind: str, data: dict[str, Any], payload: bytes | None) -> Step:
        if "asr" not in self._serve:
            return Refuse(ErrorCode.WYOMING_NOT_SERVED, f"{kind}: speech to text (asr) is not served here")
        if kind == "transcribe":
            if self._audio is not None:
                return Refuse(ErrorCode.WYOMING_OUT_OF_ORDER, "transcribe inside an audio stream")
            language = data.get("language")
            if language is not None and (not isinstance(language, str)
                                         or language.split("-")[0].split("_")[0] not in self._languages):
                served = ", ".join(self._languages)
                return Refuse(ErrorCode.WYOMING_NOT_SERVED,
                              f"transcribe: language {language!r} is not served ({served})")
            self._language = language
            return Send()
        if kind == "audio-start":
            if self._audio is not None:
                return Refuse(ErrorCode.WYOMING_OUT_OF_ORDER, "audio-start inside an audio stream")
            if (problem := _format_problem(kind, data)) is not None:
                return problem
            self._audio = bytearray()
            return Send()
        if self._audio is None:
            return Refuse(ErrorCode.WYOMING_OUT_OF_ORDER, f"{kind} before audio-start")
        if kind == "audio-chunk":
            if (problem := _format_problem(kind, data)) is not None:
                return problem
            chunk = payload or b""
            if len(chunk) % WIDTH:
                return Refuse(ErrorCode.WYOMING_BAD_EVENT, "audio-chunk: not whole 16-bit samples")
            if len(self._audio) + len(chunk) > self._max_audio_bytes:
                return Refuse(ErrorCode.WYOMING_TOO_LARGE,
                              f"audio-chunk: more than {self._max_audio_bytes // (RATE * WIDTH)} s of audio")
            self._audio += chunk
            return Send()
        pcm, self._audio = bytes(self._audio), None
        language, self._language = self._language, None
        return Transcribe(pcm, language)

    def _transcript(self, data: dict[str, Any]) -> Step:
        text = self._text_of(data, "transcript", "handle", "intent handling", MAX_TEXT_CHARS)
        if isinstance(text, Refuse):
            return text
        context = data.get("context")
        return Handle(text, context if isinstance(context, dict) else None)

    def _synthesize(self, data: dict[str, Any]) -> Step:
        text = self._text_of(data, "synthesize", "tts", "text to speech", MAX_SPEECH_CHARS)
        if isinstance(text, Refuse):
            return text
        return Speak(" ".join(text.split()))

    def _text_of(self, data: dict[str, Any], event: str, service: str, what: str, limit: int) -> str | Refuse:
        """The ``text`` of a transcript or synthesize event, or why it is refused."""
        if service not in self._serve:
            return Refuse(ErrorCode.WYOMING_NOT_SERVED, f"{event}: {what} ({service}) is not served here")
        if self._audio is not None:
            return Refuse(ErrorCode.WYOMING_OUT_OF_ORDER, f"{event} inside an audio stream")
        text = data.get("text")
        if not isinstance(text, str):
            return Refuse(ErrorCode.WYOMING_BAD_EVENT, f"{event}: 'text' is not text")
        if len(text) > limit:
            return Refuse(ErrorCode.WYOMING_TOO_LARGE, f"{event}: text longer than {limit} characters")
        return text


def _format_problem(kind: str, data: dict[str, Any]) -> Refuse | None:
    """None when the event's audio format is ours (16 kHz, 16-bit, mono), else why not."""
    got = (data.get("rate"), data.get("width"), data.get("channels"))
    if got == (RATE, WIDTH, CHANNELS) and not any(isinstance(v, bool) for v in got):
        return None
    return Refuse(ErrorCode.WYOMING_BAD_EVENT,
                  f"{kind}: audio must be {RATE} Hz, {WIDTH * 8}-bit, mono; got rate={got[0]!r}, "
                  f"width={got[1]!r}, channels={got[2]!r}")
