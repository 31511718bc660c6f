"""Our Wyoming server on loopback, driven by the real ``wyoming`` client library.

The parts are the real ones: the phrase brain (pocketsphinx, hassil), the router, the
demo house's entities with a real mosquitto (the router's commands are MQTT publishes a
watcher sees), speech synthesized by piper's joe voice. The server runs on its own event
loop in a thread, as it does beside the daemon; each test talks to it as HA does, one
connection per request (and several requests on one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong

from assistant import __version__
from assistant.config import WyomingServerSettings
from assistant.wyoming.server import ServerLimits, WyomingServer
from tests.e2e.live_daemon import Watcher
from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.pipeline import piper16
from tests.support.wyoming_server import LoopThread, Served, served

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")

KITCHEN = "demo/kitchen/light/set"
FRONT_DOOR = "demo/hallway/lock/set"
CHUNK = 2048  # bytes per audio-chunk: 64 ms, what wyoming-satellite sends


@dataclass
class Running:
    served: Served
    watcher: Watcher

    @property
    def port(self) -> int:
        return self.served.port

    @property
    def server(self) -> WyomingServer:
        return self.served.server

    def demo_commands(self, since: int) -> list[tuple[str, bytes]]:
        return [(m.topic, m.payload) for m in self.watcher.since(since) if m.topic.startswith("demo/")]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("wyoming-server")
    with Broker(tmp) as broker, served(tmp, broker) as parts:
        watcher = Watcher(broker, topics=("demo/#",), client_id="wyoming-server-test")
        try:
            yield Running(parts, watcher)
        finally:
            watcher.close()


def speech(text: str) -> bytes:
    quiet = np.zeros(8000, dtype=np.int16).tobytes()  # 0.5 s either side, as HA's VAD leaves it
    return quiet + piper16(text) + quiet


async def _transcribe(client: AsyncTcpClient, pcm: bytes) -> Event | None:
    await client.write_event(Transcribe(language="en").event())
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    for i in range(0, len(pcm), CHUNK):
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + CHUNK]).event())
    await client.write_event(AudioStop().event())
    return await asyncio.wait_for(client.read_event(), 20)


def transcribe(port: int, *clips: bytes) -> list[str]:
    """Each clip through asr, all on one connection (as a client that keeps it open would)."""

    async def go() -> list[str]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            texts = []
            for pcm in clips:
                event = await _transcribe(client, pcm)
                assert event is not None and Transcript.is_type(event.type), event
                texts.append(Transcript.from_event(event).text)
            return texts

    return asyncio.run(go())


def handle(port: int, text: str) -> Event:
    """One transcript through handle on a connection of its own (what HA's conversation agent does)."""

    async def go() -> Event:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Transcript(text=text).event())
            event = await asyncio.wait_for(client.read_event(), 20)
            assert event is not None
            return event

    return asyncio.run(go())


def raw(port: int, data: bytes) -> list[Event]:
    """Send raw bytes, then read events until the server closes the connection."""
    return asyncio.run(raw_async(port, data))


# --------------------------------------------------------------------------- describe


def describe_info(port: int) -> Info:
    """``describe`` -> the ``info`` answered (checked: a ping on the same connection still pongs)."""

    async def go() -> tuple[Event | None, Event | None]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            info = await client.read_event()
            await client.write_event(Ping(text="hi").event())
            return info, await client.read_event()

    event, pong = asyncio.run(go())
    assert event is not None and Info.is_type(event.type)
    assert pong is not None and Pong.is_type(pong.type) and Pong.from_event(pong).text == "hi"
    return Info.from_event(event)


def test_describe_names_our_asr_and_handle_programs_in_english(running: Running) -> None:
    info = describe_info(running.port)
    assert [p.name for p in info.asr] == ["assistant-phrase"]
    assert [p.name for p in info.handle] == ["assistant-router"]
    for program in (*info.asr, *info.handle):
        assert program.installed and program.version == __version__ and program.attribution.name
        assert [m.languages for m in program.models] == [["en"]] and program.models[0].installed
    assert info.satellite is None and info.tts == [] and info.wake == []


# --------------------------------------------------------------------------- asr


def test_asr_transcribes_commands_of_the_current_grammar_and_acts_on_nothing(running: Running) -> None:
    mark = running.watcher.mark()
    texts = transcribe(running.port, speech("Turn on the kitchen light."),
                       speech("Turn off the bedroom light."), speech("Unlock the front door."))
    assert texts == ["turn on the kitchen light", "turn off the bedroom light", "unlock the front door"]
    time.sleep(0.3)
    assert running.demo_commands(mark) == []  # asr only listens: the router acted on none of them


def test_asr_gives_an_empty_transcript_for_speech_it_would_not_act_on(running: Running) -> None:
    # "terminator" decodes as "turn it up" and "americano" as "two minute timer", both then
    # rejected by the brain's confidence checks: a transcript of them would be a guess
    texts = transcribe(running.port, speech("My grandmother grew tomatoes in the garden every summer."),
                       speech("terminator"), speech("americano"),
                       np.zeros(16000, dtype=np.int16).tobytes(), speech("Turn on the kitchen light."))
    assert texts == ["", "", "", "", "turn on the kitchen light"]  # refused, silence, then the next one works


# --------------------------------------------------------------------------- handle


def test_handle_acts_through_the_router_and_answers(running: Running) -> None:
    watcher = running.watcher
    mark = watcher.mark()
    on = handle(running.port, "Turn on the kitchen light.")
    assert Handled.is_type(on.type), on
    assert watcher.wait(lambda m: m.topic == KITCHEN and m.payload == b"ON", since=mark, timeout=10)
    off = handle(running.port, "turn off the kitchen light")
    assert Handled.is_type(off.type), off
    assert watcher.wait(lambda m: m.topic == KITCHEN and m.payload == b"OFF", since=mark, timeout=10)
    assert Handled.from_event(on).text and Handled.from_event(off).text  # a spoken answer each time


def test_handle_refuses_what_it_cannot_place_and_calls_nothing(running: Running) -> None:
    mark = running.watcher.mark()
    for text in ("what is the meaning of life", "", "turn on the", "x" * 900):
        event = handle(running.port, text)
        assert NotHandled.is_type(event.type), (text, event)
        assert NotHandled.from_event(event).text == "Sorry, I didn't catch that."
    time.sleep(0.3)
    assert running.demo_commands(mark) == []


def test_handle_asks_before_a_sensitive_action_and_a_yes_runs_it(running: Running) -> None:
    watcher = running.watcher
    mark = watcher.mark()
    asked = handle(running.port, "unlock the front door")
    assert Handled.is_type(asked.type) and "front door" in (Handled.from_event(asked).text or "").lower()
    time.sleep(0.3)
    assert running.demo_commands(mark) == []  # asked, not done
    declined = handle(running.port, "no")
    assert Handled.is_type(declined.type)
    assert handle(running.port, "unlock the front door").type == "handled"
    done = handle(running.port, "yes")
    assert Handled.is_type(done.type), done
    assert watcher.wait(lambda m: m.topic == FRONT_DOOR, since=mark, timeout=10)
    assert [t for t, _ in running.demo_commands(mark)] == [FRONT_DOOR]  # once: after the yes only


# --------------------------------------------------------------------------- bad input


def _header(event_type: str, **fields: Any) -> bytes:
    return json.dumps({"type": event_type, **fields}).encode() + b"\n"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"this is not json\n", "wyoming_bad_event"),
        (b"[1, 2, 3]\n", "wyoming_bad_event"),
        (_header("audio-chunk", payload_length=10**12), "wyoming_too_large"),
        (_header("transcript", data_length=10**9), "wyoming_too_large"),
        (b"{" + b" " * 100_000, "wyoming_too_large"),  # a header line that never ends
        (_header("audio-chunk", data={"rate": 16000, "width": 2, "channels": 1}, payload_length=4)
         + b"\0\0\0\0", "wyoming_out_of_order"),
        (_header("audio-stop"), "wyoming_out_of_order"),
        (_header("audio-start", data={"rate": 44100, "width": 2, "channels": 2}), "wyoming_bad_event"),
        (_header("run-pipeline", data={"start_stage": "asr"}), "wyoming_bad_event"),
        (_header("transcript", data={"text": 42}), "wyoming_bad_event"),
        (_header("transcript", data_length=5) + b"{bad}", "wyoming_bad_event"),
        (_header("transcribe", data={"language": "de"}), "wyoming_not_served"),
    ],
    ids=["garbage", "not-an-object", "huge-payload", "huge-data", "endless-header", "chunk-first",
         "stop-first", "wrong-format", "unknown-event", "text-not-text", "data-not-json", "language"],
)
def test_bad_input_gets_a_clear_error_and_the_connection_is_closed(running: Running, data: bytes,
                                                                   code: str) -> None:
    refused = running.server.refused
    events = raw(running.port, data)
    assert [e.type for e in events] == ["error"], events
    error = Error.from_event(events[0])
    assert error.code == code and error.text, error
    assert running.server.refused == refused + 1


def test_a_command_inside_a_broken_stream_is_not_acted_on(running: Running) -> None:
    mark = running.watcher.mark()
    start = AudioStart(rate=16000, width=2, channels=1).event()
    data = (_header("audio-start", data=start.data)
            + _header("transcript", data={"text": "turn on the kitchen light"}))
    events = raw(running.port, data)
    assert [Error.from_event(e).code for e in events] == ["wyoming_out_of_order"]
    # audio then garbage before audio-stop: the audio is dropped, nothing transcribed or done
    pcm = speech("Turn on the kitchen light.")[:CHUNK * 4]
    chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm).event()
    data = (_header("audio-start", data=start.data)
            + _header("audio-chunk", data=chunk.data, payload_length=len(pcm)) + pcm + b"\x00garbage\n")
    assert [e.type for e in raw(running.port, data)] == ["error"]
    time.sleep(0.3)
    assert running.demo_commands(mark) == []
    assert handle(running.port, "what is the meaning of life").type == "not-handled"  # still serving


def test_too_much_audio_is_refused_and_the_peer_still_reads_why(running: Running) -> None:
    async def go() -> Event | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        await async_write_event(AudioStart(rate=16000, width=2, channels=1).event(), writer)
        chunk = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(60_000)).event()
        for _ in range(20):  # 37.5 s of audio against the 30 s limit, written without waiting
            await async_write_event(chunk, writer)
        event = await asyncio.wait_for(async_read_event(reader), 10)
        writer.close()
        return event

    event = asyncio.run(go())
    assert event is not None and Error.from_event(event).code == "wyoming_too_large"


def test_a_silent_peer_is_disconnected_and_the_port_serves_again() -> None:
    loop = LoopThread()
    try:
        quick = WyomingServer(WyomingServerSettings(port=0), transcriber=None, conversation=None,
                              version=__version__, limits=ServerLimits(idle_timeout_s=0.3, max_connections=1))
        loop.run(quick.start())
        started = time.monotonic()
        events = raw(quick.port, b"")
        assert time.monotonic() - started < 5
        assert [Error.from_event(e).code for e in events] == ["wyoming_timeout"]
        # nothing served: describe still answers, audio is refused as not served
        events = raw(quick.port, _header("describe") + _header("audio-stop"))
        assert [e.type for e in events] == ["info", "error"]
        assert Error.from_event(events[1]).code == "wyoming_not_served"
        loop.run(quick.stop())
    finally:
        loop.close()


def test_a_spoken_yes_is_heard_by_asr_while_handle_waits_for_it(running: Running) -> None:
    """HA's next turn after our question: asr decodes the answer grammar, handle then acts on it."""
    watcher, mark = running.watcher, running.watcher.mark()
    assert handle(running.port, "unlock the front door").type == "handled"
    # the command grammar has no "yes": only the answer grammar, used while a question waits, hears it
    assert transcribe(running.port, speech("Yes.")) == ["yes"]
    time.sleep(0.3)
    assert running.demo_commands(mark) == []  # hearing the yes is not acting on it
    assert handle(running.port, "yes").type == "handled"
    assert watcher.wait(lambda m: m.topic == FRONT_DOOR, since=mark, timeout=10)
    assert transcribe(running.port, speech("Yes.")) == [""]  # nothing waits any more: no guess


def test_one_connection_too_many_is_told_the_server_is_busy(running: Running) -> None:
    loop = LoopThread()
    try:
        small = WyomingServer(WyomingServerSettings(port=0), transcriber=None, conversation=None,
                              version=__version__, limits=ServerLimits(max_connections=1))
        loop.run(small.start())

        async def go() -> list[Event]:
            async with AsyncTcpClient("127.0.0.1", small.port) as first:
                await first.write_event(Describe().event())
                assert (await first.read_event()) is not None  # the first is being served
                return await raw_async(small.port, b"")

        events = asyncio.run(go())
        assert [Error.from_event(e).code for e in events] == ["wyoming_busy"]
        loop.run(small.stop())
    finally:
        loop.close()


async def raw_async(port: int, data: bytes) -> list[Event]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    events = []
    while (event := await asyncio.wait_for(async_read_event(reader), 10)) is not None:
        events.append(event)
    writer.close()
    return events


def test_a_peer_that_never_reads_its_answers_is_disconnected() -> None:
    loop = LoopThread()
    try:
        quick = WyomingServer(WyomingServerSettings(port=0), transcriber=None, conversation=None,
                              version=__version__, limits=ServerLimits(idle_timeout_s=0.5))
        loop.run(quick.start())

        async def flood() -> bool:
            _reader, writer = await asyncio.open_connection("127.0.0.1", quick.port)
            # 40 000 describes, never reading: far more info than the socket buffers hold
            with contextlib.suppress(ConnectionError, TimeoutError):
                for _ in range(40):
                    writer.write(_header("describe") * 1000)
                    await asyncio.wait_for(writer.drain(), 2)
            deadline = time.monotonic() + 5  # the connection stays open from this side
            # the server runs on another loop: polling its count is all there is
            while quick.open_connections and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            dropped = quick.open_connections == 0
            writer.close()
            return dropped

        assert asyncio.run(flood())
        loop.run(quick.stop())
    finally:
        loop.close()


def test_stop_ends_open_connections_and_a_new_server_binds_the_same_port_at_once() -> None:
    """A settings reload: the lifetime's server stops, the next one starts on the same port."""
    loop = LoopThread()
    try:
        settings = WyomingServerSettings(port=0)
        first = WyomingServer(settings, transcriber=None, conversation=None, version=__version__)
        loop.run(first.start())
        port = first.port

        async def held_then_stopped() -> Event | None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await async_write_event(Describe().event(), writer)
            assert await async_read_event(reader) is not None
            asyncio.run_coroutine_threadsafe(first.stop(), loop.loop).result(5)
            ended = await asyncio.wait_for(async_read_event(reader), 5)  # the server hung up
            writer.close()
            return ended

        assert asyncio.run(held_then_stopped()) is None
        second = WyomingServer(WyomingServerSettings(port=port), transcriber=None, conversation=None,
                               version="2")
        loop.run(second.start())
        events = raw(port, _header("describe") + b"oops\n")
        assert [e.type for e in events] == ["info", "error"]
        assert Info.from_event(events[0]).asr == []
        loop.run(second.stop())
    finally:
        loop.close()
