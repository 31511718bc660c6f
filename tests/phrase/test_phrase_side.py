"""The phone-loop pass in a second process: same scores, survives its worker, never outlives us.

Real processes throughout: ``python -m assistant.brains.phrase.side`` with the pocketsphinx model,
and stand-in workers (small Python scripts) only for the failures a real one does not show on
demand: one that stops answering, one that answers garbage.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from assistant.brains.phrase.decoder import (
    UNAVAILABLE,
    GrammarDecoder,
    dither,
    phone_loop,
    phone_loop_decoder,
    trim_silence,
)
from assistant.brains.phrase.graph import WordGraph
from assistant.brains.phrase.pronounce import default_pronouncer
from assistant.brains.phrase.side import InProcess, SideProcess

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "recordings"
CLIPS = ("arm-sc-up.wav", "arm-sc-down.wav", "arm-sc-go.wav", "arm-libri-another_door.wav")


def _raw(name: str) -> bytes:
    with wave.open(str(RECORDINGS / name), "rb") as wav:
        pcm = trim_silence(wav.readframes(wav.getnframes()))
    return dither(np.frombuffer(pcm, dtype=np.int16)).tobytes()


def _pcm(name: str) -> bytes:
    with wave.open(str(RECORDINGS / name), "rb") as wav:
        return trim_silence(wav.readframes(wav.getnframes()))


@pytest.fixture
def side() -> SideProcess:
    worker = SideProcess()
    assert worker.wait_ready(30.0)
    yield worker
    worker.close()


def test_the_side_process_scores_the_phone_loop_exactly_as_this_process_does(side: SideProcess) -> None:
    here = phone_loop_decoder()
    for name in CLIPS:  # the same passes in the same order on both sides: the same scores
        raw = _raw(name)
        theirs = side.phone_loop(raw).result()
        assert theirs is not UNAVAILABLE
        assert theirs == phone_loop(here, raw)


def _up_down_decoder(side: SideProcess | InProcess) -> GrammarDecoder:
    pronouncer = default_pronouncer()
    decoder = GrammarDecoder([], pronouncer.phones, side=side)
    graph = WordGraph()
    for word in ("up", "down", "go"):
        graph.arcs.append((graph.start, graph.final, word))
    decoder.install("words", graph, pronouncer.phones, None)
    return decoder


def test_a_killed_worker_costs_no_confidence_and_is_replaced(side: SideProcess) -> None:
    with_side = _up_down_decoder(side)
    alone = _up_down_decoder(InProcess())
    pcm = _pcm("arm-sc-up.wav")
    first = with_side.decode(pcm, "words", verify=True)
    assert first == alone.decode(pcm, "words", verify=True)
    assert first.confidence is not None
    old = side.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    time.sleep(0.2)
    # the pass fails over to this process: the turn still gets its confidence
    again = with_side.decode(pcm, "words", verify=True)
    assert again.confidence is not None
    assert again.words == first.words
    assert side.wait_ready(30.0)
    assert side.pid not in (None, old)


_SILENT = textwrap.dedent("""
    import json, struct, sys, time
    body = json.dumps({"ok": True, "value": "ready"}).encode()
    sys.stdout.buffer.write(struct.pack(">I", len(body)) + body); sys.stdout.buffer.flush()
    time.sleep(60)
""")
_GARBAGE = textwrap.dedent("""
    import json, struct, sys
    body = json.dumps({"ok": True, "value": "ready"}).encode()
    sys.stdout.buffer.write(struct.pack(">I", len(body)) + body); sys.stdout.buffer.flush()
    sys.stdin.buffer.read(8)
    sys.stdout.buffer.write(struct.pack(">I", 1 << 30)); sys.stdout.buffer.flush()
    sys.stdin.buffer.read()
""")


def test_a_worker_that_stops_answering_is_given_up_after_its_timeout_and_the_pass_done_here() -> None:
    worker = SideProcess([sys.executable, "-c", _SILENT], timeout_s=0.5)
    try:
        assert worker.wait_ready(10.0)
        pid = worker.pid
        started = time.monotonic()
        assert worker.phone_loop(b"\0\0" * 1600).result() is UNAVAILABLE
        assert time.monotonic() - started < 3.0
        assert worker.pid != pid  # the stuck one was stopped (a new one may be starting)
        assert pid is not None
        deadline = time.monotonic() + 5.0
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        worker.close()


def test_a_worker_answering_garbage_is_dropped_and_its_pass_done_here() -> None:
    worker = SideProcess([sys.executable, "-c", _GARBAGE], timeout_s=5.0)
    try:
        assert worker.wait_ready(10.0)
        pid = worker.pid
        assert worker.phone_loop(b"\0\0" * 1600).result() is UNAVAILABLE  # a 1 GiB answer is refused
        assert worker.pid != pid
    finally:
        worker.close()


def test_a_worker_that_never_greets_is_not_waited_for() -> None:
    worker = SideProcess([sys.executable, "-c", "import time; time.sleep(60)"], start_timeout_s=0.5)
    try:
        started = time.monotonic()
        assert not worker.wait_ready(10.0)
        assert time.monotonic() - started < 5.0
        assert worker.phone_loop(b"\0\0" * 1600).result() is UNAVAILABLE
    finally:
        worker.close()


def test_the_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import sys, time
        from assistant.brains.phrase.side import SideProcess
        side = SideProcess()
        assert side.wait_ready(30.0)
        print(side.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for its parent)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status
