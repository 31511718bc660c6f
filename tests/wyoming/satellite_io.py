"""The microphone and wake-word programs of the real wyoming-satellite processes in these tests.

Run by wyoming-satellite itself (``--mic-command`` / ``--wake-command``), with the
satellite venv's Python and the standard library only:

- ``mic <say_dir>``: raw 16 kHz mono int16 on stdout in real time (64 ms blocks of
  low room noise). A ``*.raw`` file dropped into ``say_dir`` (renamed in atomically) is
  "spoken": a 0.1 s wake marker, 0.5 s of room noise, the file's audio, then noise again.
- ``wake``: reads the audio the satellite forwards while it waits for its wake word and
  prints ``okay_nabu`` on a line each time the marker passes (wyoming-satellite's
  wake-command protocol: audio on stdin, one detected name per stdout line).

The marker stands in for a wake word model so that the satellite wakes exactly when the
test speaks; everything after the wake is the real satellite's streaming.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import time
from pathlib import Path

RATE = 16_000
BLOCK = 1024  # samples: wyoming-satellite's own mic chunk
PATTERN = struct.pack("<2h", 20000, -20000) * 64  # 512 bytes
MARKER = PATTERN * 7  # 0.112 s; holds whole copies of PATTERN at any alignment
GAP_BLOCKS = 8  # 0.51 s of room noise between the marker and the words: the wake detection's
# round trip (satellite -> wake program -> satellite) must end before the words start, also
# on a loaded machine


def _noise(samples: int, rng: random.Random) -> bytes:
    return struct.pack(f"<{samples}h", *(int(rng.gauss(0, 30)) for _ in range(samples)))


def mic(say_dir: Path) -> None:
    rng = random.Random(1)  # noqa: S311 - seeded room noise, not secrets
    noise = [_noise(BLOCK, rng) for _ in range(16)]
    out = sys.stdout.buffer
    pending = b""
    start = time.monotonic()
    sent = 0
    while True:
        if not pending:
            for path in sorted(say_dir.glob("*.raw")):
                clip = path.read_bytes()
                path.unlink()
                pending = MARKER + b"".join(noise[:GAP_BLOCKS]) + clip
                with (say_dir / "spoken.log").open("a") as log:  # for the bench: when it began
                    log.write(f"{path.stem} {time.monotonic():.6f} {len(MARKER) + GAP_BLOCKS * BLOCK * 2}\n")
                break
        if pending:
            block, pending = pending[: BLOCK * 2], pending[BLOCK * 2 :]
            block += noise[sent % 16][len(block) :]
        else:
            block = noise[sent % 16]
        out.write(block)
        out.flush()
        sent += 1
        delay = start + sent * BLOCK / RATE - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def wake() -> None:
    stream = sys.stdin.buffer
    tail = b""
    quiet_until = 0
    seen = 0
    while True:
        data = os.read(stream.fileno(), 8192)
        if not data:
            return
        tail = (tail + data)[-(len(PATTERN) * 4):]
        seen += len(data)
        if seen >= quiet_until and PATTERN in tail:
            sys.stdout.write("okay_nabu\n")
            sys.stdout.flush()
            quiet_until = seen + len(MARKER) * 2
            tail = b""


if __name__ == "__main__":
    if sys.argv[1] == "mic":
        mic(Path(sys.argv[2]))
    else:
        wake()
