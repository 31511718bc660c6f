"""The Wyoming server's cost over the brain it serves: asr and handle, through the wire and direct.

Loopback, one process: the demo house (no broker: commands are shown, not sent), the phrase
brain warmed on its tools, our server on a free port, the real ``wyoming`` client. For each
command (piper's joe voice), asr is timed from the client writing ``audio-stop`` to the
``transcript`` arriving, against ``PhraseTranscriber.transcribe`` on the same audio called
directly; handle from writing ``transcript`` to ``handled`` arriving, against
``RouterConversation.handle`` called directly. Prints medians (ms) and the ratios (the
protocol's cost; handle's direct turn is ~2 ms, so its ratio is the absolute cost of a
connection and a thread hop), and the describe round trip.

    .venv/bin/python bench/bench_wyoming_server.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from wyoming.asr import Transcribe, Transcript  # noqa: E402
from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: E402
from wyoming.client import AsyncTcpClient  # noqa: E402
from wyoming.info import Describe  # noqa: E402

from assistant.brains.phrase import PhraseBrain  # noqa: E402
from assistant.compose import build_assistant, demo_entities  # noqa: E402
from assistant.config import HomeSettings, PhraseSettings, Settings, WyomingServerSettings  # noqa: E402
from assistant.wyoming.server import start_wyoming_server  # noqa: E402
from assistant.wyoming.server_brains import PhraseTranscriber, RouterConversation  # noqa: E402
from tests.support.mosquitto import free_port  # noqa: E402
from tests.support.pipeline import piper16  # noqa: E402
from tests.support.wyoming_server import LoopThread  # noqa: E402

COMMANDS = ("turn on the kitchen light", "turn off the bedroom light", "set a timer for five minutes",
            "what time is it", "open the living room blinds")


async def _wire_asr(port: int, pcm: bytes) -> tuple[float, str]:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), 2048):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i:i + 2048])
            await client.write_event(chunk.event())
        started = time.perf_counter()
        await client.write_event(AudioStop().event())
        event = await client.read_event()
        elapsed = (time.perf_counter() - started) * 1000
    if event is None or not Transcript.is_type(event.type):
        raise SystemExit(f"asr answered {event}")
    return elapsed, Transcript.from_event(event).text


async def _wire_handle(port: int, text: str) -> float:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Transcript(text=text).event())
        event = await client.read_event()
        elapsed = (time.perf_counter() - started) * 1000
    if event is None or event.type not in ("handled", "not-handled"):
        raise SystemExit(f"handle answered {event}")
    return elapsed


async def _describe(port: int) -> float:
    started = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        await client.read_event()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(site="kitchen", state_dir=Path(tmp), home=HomeSettings(entities=demo_entities()))
        assistant = build_assistant(settings, with_brain=False, with_tts=False)
        assistant.start()
        phrase = PhraseBrain(PhraseSettings())
        phrase.build(assistant.router)
        loop = LoopThread()
        server_settings = WyomingServerSettings(port=free_port(), site="bench")
        server = loop.run(start_wyoming_server(server_settings, phrase=phrase, router=assistant.router))
        direct_asr = PhraseTranscriber(phrase, assistant.router, site="bench")
        direct_handle = RouterConversation(phrase, assistant.router, site="bench")
        quiet = np.zeros(8000, dtype=np.int16).tobytes()
        clips = {text: quiet + piper16(text) + quiet for text in COMMANDS}
        asr_wire, asr_direct, handle_wire, handle_direct, heard = [], [], [], [], 0
        for _ in range(args.rounds):
            for text, pcm in clips.items():
                started = time.perf_counter()
                direct_asr.transcribe(pcm, threading.Event())
                asr_direct.append((time.perf_counter() - started) * 1000)
                elapsed, got = asyncio.run(_wire_asr(server.port, pcm))
                asr_wire.append(elapsed)
                heard += got == text
                started = time.perf_counter()
                direct_handle.handle(text)
                handle_direct.append((time.perf_counter() - started) * 1000)
                handle_wire.append(asyncio.run(_wire_handle(server.port, text)))
        describes = [asyncio.run(_describe(server.port)) for _ in range(20)]
        loop.run(server.stop())
        loop.close()
        assistant.close()

    def line(name: str, wire: list[float], direct: list[float]) -> None:
        w, d = statistics.median(wire), statistics.median(direct)
        print(f"{name:7s} wire {w:7.1f} ms   direct {d:7.1f} ms   ratio {w / d:4.2f}x   "
              f"(+{w - d:.1f} ms, median of {len(wire)})")

    print(f"asr heard {heard} of {len(asr_wire)} commands exactly")
    line("asr", asr_wire, asr_direct)
    line("handle", handle_wire, handle_direct)
    print(f"describe round trip (connect, describe, info, close): {statistics.median(describes):.2f} ms")


if __name__ == "__main__":
    main()
