"""What a satellite sends is untrusted: bounded reads, clear errors, no action, the link survives.

The reader runs on real asyncio TCP streams on loopback. The hostile peers here are small
asyncio servers written for the test: the real wyoming-satellite never sends such bytes,
so it cannot play them (the real satellite is in test_wyoming_hub.py). The brain is the
scripted fake of tests.support (nothing may reach it) and the synthesizer espeak-ng.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from assistant.config import ConfigError, SatelliteSettings, VadSettings, parse_settings
from assistant.tts.espeak import EspeakSynthesizer
from assistant.wyoming.hub import Hub, LinkState
from assistant.wyoming.hub_announce import SatelliteAnnouncer
from assistant.wyoming.wire import SATELLITE_LIMITS, WireError, read_event
from tests.support.pipeline import FakeRouter, ScriptedBrain, tool_reply

MAX_HEADER_BYTES = SATELLITE_LIMITS.header_bytes
MAX_PAYLOAD_BYTES = SATELLITE_LIMITS.payload_bytes

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_from(raw: bytes) -> object:
    """read_event over a real loopback connection whose peer sends ``raw`` and closes."""

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=MAX_HEADER_BYTES + 1)
    try:
        return await read_event(reader, SATELLITE_LIMITS)
    finally:
        writer.close()
        server.close()


def _header(**fields: object) -> bytes:
    return json.dumps({"type": "audio-chunk", **fields}).encode() + b"\n"


@pytest.mark.parametrize(("raw", "message"), [
    (b"{" + b" " * (MAX_HEADER_BYTES + 10), "header longer"),
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "not a JSON object"),
    (_header(payload_length=MAX_PAYLOAD_BYTES + 1), "over the limit"),
    (_header(data_length=-1), "not a byte count"),
    (_header(data_length=10) + b"{}", "ended inside"),
    (_header(data_length=2) + b"[]", "not a JSON object"),
    (json.dumps({"type": 7}).encode() + b"\n", "without a valid 'type'"),
])
def test_malformed_events_are_refused_with_a_clear_reason(raw: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        asyncio.run(_read_from(raw))


def test_a_well_formed_event_merges_data_and_reads_its_payload() -> None:
    data = json.dumps({"rate": 16000, "width": 2, "channels": 1}).encode()
    raw = _header(data_length=len(data), payload_length=4) + data + b"\x01\x00\x02\x00"
    event = asyncio.run(_read_from(raw))
    assert (event.type, event.data["rate"], event.payload) == ("audio-chunk", 16000, b"\x01\x00\x02\x00")
    assert asyncio.run(_read_from(b"")) is None


def test_a_hostile_satellite_costs_a_reconnect_and_never_an_action() -> None:
    brain, router = ScriptedBrain(tool_reply("Done.")), FakeRouter()
    attacks = [
        _header(payload_length=1 << 30),  # "a gigabyte of audio follows"
        json.dumps({"type": "run-pipeline", "data": {"start_stage": "asr"}}).encode() + b"\n"
        + _header(data_length=9) + b'{"rate": ',  # cut off inside the data
        b"\xff\xfe garbage\n",
    ]
    seen: list[str] = []

    async def scenario() -> tuple[int, str | None]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append((await reader.readline()).decode())  # describe, then run-satellite
            await reader.readline()
            writer.write(attacks[min(len(seen), len(attacks)) - 1])
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        satellite = SatelliteSettings(uri=f"tcp://127.0.0.1:{port}", site="attic",
                                      reconnect_initial_s=0.05, reconnect_max_s=0.1)
        hub = Hub([satellite], brain=brain, router=router, synthesizer=EspeakSynthesizer(), vad=VadSettings())
        task = asyncio.ensure_future(hub.run())
        link = hub.links["attic"]
        for _ in range(200):
            await asyncio.sleep(0.02)
            if link.status.connects > len(attacks) and link.status.state is not LinkState.CONNECTING:
                break
        hub.stop()
        await asyncio.wait_for(task, 3.0)
        server.close()
        return link.status.connects, link.status.last_error

    connects, last_error = asyncio.run(scenario())
    assert connects > len(attacks)
    assert last_error is not None and "WireError" in last_error
    assert all('"describe"' in first for first in seen)
    assert brain.utterances == [] and router.calls == []


def test_announcements_go_to_their_satellite_and_wait_for_the_hub() -> None:
    announcer = SatelliteAnnouncer(["kitchen"])
    got: list[tuple[str, str]] = []
    assert not announcer.announce("Timer done.", "hallway")  # not a satellite: the local speaker's
    assert not announcer.announce("Timer done.", None)
    assert announcer.announce("Early timer.", "kitchen")
    announcer.attach(lambda text, site: got.append((text, site)))
    assert announcer.announce("Pasta timer done.", "kitchen")
    assert got == [("Early timer.", "kitchen"), ("Pasta timer done.", "kitchen")]


def test_satellite_settings_are_checked_all_at_once() -> None:
    text = """
site: hubbox
wyoming:
  satellites:
    - {uri: "http://kitchen:10700", site: kitchen}
    - {uri: "tcp://office:10700", site: "office room"}
    - {uri: "tcp://office:10700", site: hubbox, reconnect_initial_s: 5, reconnect_max_s: 1}
"""
    with pytest.raises(ConfigError) as caught:
        parse_settings(text)
    message = str(caught.value)
    for expected in ("[0].uri: must be tcp://host:port", "[1].site: must be a non-empty name",
                     "[2].reconnect_max_s: must be at least"):
        assert expected in message, message
    ok = parse_settings("wyoming:\n  satellites:\n    - {uri: 'tcp://10.0.0.5:10700', site: kitchen}\n")
    assert ok.wyoming.satellites[0].freshness_s == 10.0
    with pytest.raises(ConfigError, match="used twice"):
        parse_settings("wyoming:\n  satellites:\n    - {uri: 'tcp://a:1', site: k}\n"
                       "    - {uri: 'tcp://a:1', site: o}\n")
    with pytest.raises(ConfigError, match="also a satellite's site"):
        parse_settings("site: k\nwyoming:\n  satellites:\n    - {uri: 'tcp://a:1', site: k}\n")
