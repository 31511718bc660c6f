"""The Wyoming server's pure parts: the per-connection protocol, the bounded event reader, its settings.

Plain values in, steps out: no sockets (the reader reads a StreamReader fed by hand);
events are built with the real ``wyoming`` classes, as a peer's library would build them.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Describe

from assistant.config import ConfigError, parse_settings
from assistant.wyoming.server import describe
from assistant.wyoming.server_session import Handle, Refuse, Send, Session, Speak
from assistant.wyoming.server_session import Transcribe as TranscribeStep
from assistant.wyoming.wire import WireError, WireLimits, read_event

INFO = describe(frozenset({"asr", "handle"}), "0.0-test").event()


def _session(serve: tuple[str, ...] = ("asr", "handle"), max_audio_s: float = 1.0) -> Session:
    return Session(info=INFO, serve=frozenset(serve), max_audio_s=max_audio_s)


def _chunk(pcm: bytes, rate: int = 16000) -> Event:
    return AudioChunk(rate=rate, width=2, channels=1, audio=pcm).event()


START = AudioStart(rate=16000, width=2, channels=1).event()


def test_a_stream_of_audio_becomes_one_transcribe_step_and_the_session_is_ready_again() -> None:
    session = _session()
    steps = [session.receive(e) for e in (Transcribe(language="en-US").event(), START, _chunk(b"\1\0" * 100),
                                          _chunk(b"\2\0" * 50), AudioStop().event())]
    assert steps[:4] == [Send(), Send(), Send(), Send()]
    assert steps[4] == TranscribeStep(b"\1\0" * 100 + b"\2\0" * 50, "en-US")
    again = [session.receive(e) for e in (START, _chunk(b"\3\0"), AudioStop().event())]
    assert again[-1] == TranscribeStep(b"\3\0", None)  # the language belonged to the last request


def test_a_transcript_becomes_a_handle_step_with_its_context() -> None:
    event = Event("transcript", {"text": "turn on the kitchen light", "context": {"conversation_id": "c1"}})
    assert _session().receive(event) == Handle("turn on the kitchen light", {"conversation_id": "c1"})
    assert _session().receive(Transcript(text="hi").event()) == Handle("hi", None)


def test_describe_and_ping_are_answered_at_once() -> None:
    session = _session()
    assert session.receive(Describe().event()) == Send((INFO,))
    pong = session.receive(Event("ping", {"text": "x"}))
    assert isinstance(pong, Send) and pong.events[0].type == "pong" and pong.events[0].data == {"text": "x"}


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([_chunk(b"\0\0")], "wyoming_out_of_order"),
        ([AudioStop().event()], "wyoming_out_of_order"),
        ([START, START], "wyoming_out_of_order"),
        ([START, Transcribe().event()], "wyoming_out_of_order"),
        ([START, Transcript(text="turn on the kitchen light").event()], "wyoming_out_of_order"),
        ([START, _chunk(b"\0\0", rate=22050)], "wyoming_bad_event"),
        ([START, _chunk(b"\0")], "wyoming_bad_event"),  # half a sample
        ([Event("audio-start", {"rate": True, "width": 2, "channels": 1})], "wyoming_bad_event"),
        ([START, _chunk(b"\0\0" * 16000), _chunk(b"\0\0")], "wyoming_too_large"),  # over 1 s
        ([Transcribe(language="fr").event()], "wyoming_not_served"),
        ([Event("transcript", {"text": ["a"]})], "wyoming_bad_event"),
        ([Event("transcript", {"text": "a" * 1001})], "wyoming_too_large"),
        ([Event("synthesize", {"text": "hello"})], "wyoming_not_served"),  # tts not served here
    ],
)
def test_what_breaks_the_protocol_is_refused_with_a_code(events: list[Event], code: str) -> None:
    session = _session()
    steps = [session.receive(e) for e in events]
    assert all(s == Send() for s in steps[:-1]), steps
    assert isinstance(steps[-1], Refuse) and steps[-1].code == code and steps[-1].text


def test_a_service_not_served_is_refused() -> None:
    assert _session(serve=("handle",)).receive(START) == Refuse(
        "wyoming_not_served", "audio-start: speech to text (asr) is not served here")
    refused = _session(serve=("asr",)).receive(Transcript(text="hello").event())
    assert isinstance(refused, Refuse) and refused.code == "wyoming_not_served"


def test_synthesize_becomes_a_speak_step_when_tts_is_served() -> None:
    session = _session(serve=("asr", "tts"))
    spoken = session.receive(Event("synthesize", {"text": " Turned  on\nthe light. "}))
    assert spoken == Speak("Turned on the light.")
    for data, code in (({"text": 5}, "wyoming_bad_event"), ({"text": "a" * 2001}, "wyoming_too_large")):
        refused = _session(serve=("tts",)).receive(Event("synthesize", data))
        assert isinstance(refused, Refuse) and refused.code == code, refused
    inside = _session(serve=("asr", "tts"))
    inside.receive(START)
    assert inside.receive(Event("synthesize", {"text": "hi"})) == Refuse(
        "wyoming_out_of_order", "synthesize inside an audio stream")
    info = describe(frozenset({"tts"}), "1.2.3")
    assert [v.languages for p in info.tts for v in p.voices] == [["en"]] and info.asr == []


def test_describe_lists_only_what_is_served() -> None:
    info = describe(frozenset({"handle"}), "1.2.3")
    assert info.asr == [] and [p.name for p in info.handle] == ["assistant-router"]
    assert info.handle[0].version == "1.2.3" and info.handle[0].models[0].languages == ["en"]


# --------------------------------------------------------------------------- the reader


LIMITS = WireLimits()


def _read(data: bytes, limits: WireLimits = LIMITS) -> Event | None:
    async def go() -> Event | None:
        reader = asyncio.StreamReader(limit=limits.header_bytes)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_event(reader, limits)

    return asyncio.run(go())


def test_the_reader_merges_the_data_block_and_reads_the_payload() -> None:
    data = json.dumps({"rate": 16000, "width": 2, "channels": 1}).encode()
    header = {"type": "audio-chunk", "version": "1.5.4", "data_length": len(data), "payload_length": 4}
    event = _read(json.dumps(header).encode() + b"\n" + data + b"\1\2\3\4")
    assert event is not None and event.type == "audio-chunk"
    assert event.data == {"rate": 16000, "width": 2, "channels": 1} and event.payload == b"\1\2\3\4"
    assert _read(b"") is None  # a clean end between events


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b'{"type": "describe"', "wyoming_bad_event", "ended inside an event header"),
        (b'{"type": "x", "payload_length": 9}\n1234', "wyoming_bad_event", "4 of 9 bytes"),
        (b'{"type": "x", "payload_length": 70000}\n', "wyoming_too_large", "over the limit"),
        (b'{"type": "x", "data_length": -1}\n', "wyoming_bad_event", "not a byte count"),
        (b'{"type": "x", "data_length": "5"}\n', "wyoming_bad_event", "not a byte count"),
        (b'{"type": "x", "data": [1]}\n', "wyoming_bad_event", "'data' is not an object"),
        (b'{"type": ""}\n', "wyoming_bad_event", "valid 'type'"),
        (b'{"type": "' + b"t" * 65 + b'"}\n', "wyoming_bad_event", "valid 'type'"),
        (b'{"data": {}}\n', "wyoming_bad_event", "valid 'type'"),
        (b"\xff\xfe\n", "wyoming_bad_event", "not JSON"),
        (b"x" * 9000 + b"\n", "wyoming_too_large", "longer than 8192 bytes"),
    ],
)
def test_the_reader_refuses_what_is_not_an_event_within_limits(data: bytes, code: str, words: str) -> None:
    with pytest.raises(WireError) as caught:
        _read(data)
    assert caught.value.code == code and words in caught.value.message, caught.value.message


# --------------------------------------------------------------------------- settings


def test_the_server_settings_parse_and_a_bad_site_is_reported_with_its_line() -> None:
    settings = parse_settings("wyoming:\n  server:\n    host: 0.0.0.0\n    port: 10800\n    serve: [asr]\n")
    server = settings.wyoming.server
    assert server is not None and server.serve == ("asr",) and server.site == "home-assistant"
    with pytest.raises(ConfigError) as caught:
        parse_settings("wyoming:\n  server:\n    port: 0\n    serve: [wake]\n")
    assert "<string>:3: wyoming.server.port" in str(caught.value) and "serve.[0]" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_settings("wyoming:\n  server:\n    site: living room\n")
    assert "wyoming.server.site" in str(caught.value), caught.value
