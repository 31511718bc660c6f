"""Real wyoming-satellite 1.0.0 processes on loopback for the hub tests and the bench.

Each ``RealSatellite`` is ``python -m wyoming_satellite`` from the cached venv that
scripts/wyoming_satellite_env makes, listening on its own port, with the microphone and
wake word of ``satellite_io.py`` (a real-time PCM stream; ``say`` speaks a clip) and its
speaker as ``--snd-command``: every reply the hub sends is one raw file in ``replies/``
(22 050 Hz mono int16, as wyoming-satellite writes it). ``--synthesize-command`` and
``--transcript-command`` log the texts the hub sent, ``--detection-command`` the wake
words the hub detected for a satellite without a local wake word.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IO_SCRIPT = Path(__file__).with_name("satellite_io.py")
SND_RATE = 22050


def satellite_python() -> Path | None:
    """The cached satellite venv's python (scripts/wyoming_satellite_env), or None."""
    cache = Path(os.environ.get("ASSISTANT_CI_CACHE", Path.home() / ".cache" / "assistant-ci"))
    python = cache / "wyoming-satellite-1.0.0" / "bin" / "python"
    return python if python.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealSatellite:
    """One wyoming-satellite process; ``stop`` + ``start`` again is a satellite that dropped."""

    def __init__(self, folder: Path, site: str, *, port: int | None = None, local_wake: bool = True) -> None:
        self.folder = folder / site
        self.site = site
        self.local_wake = local_wake
        """False: no wake command, so the satellite streams all the time (the hub wakes it)."""
        self.port = port or free_port()
        self.say_dir = self.folder / "say"
        self.replies = self.folder / "replies"
        self.texts = self.folder / "texts.log"
        self.log = self.folder / "satellite.log"
        for path in (self.say_dir, self.replies):
            path.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._clips = 0

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        python = satellite_python()
        if python is None:
            raise RuntimeError("no wyoming-satellite venv: run scripts/wyoming_satellite_env")
        io = f"{shlex.quote(str(python))} {shlex.quote(str(IO_SCRIPT))}"
        replies = shlex.quote(str(self.replies))
        texts = shlex.quote(str(self.texts))
        return [
            str(python), "-m", "wyoming_satellite",
            "--uri", f"tcp://127.0.0.1:{self.port}",
            "--name", f"{self.site} satellite", "--area", self.site, "--no-zeroconf",
            "--mic-command", f"{io} mic {shlex.quote(str(self.say_dir))}",
            *(["--wake-command", f"{io} wake", "--wake-word-name", "okay_nabu"] if self.local_wake else []),
            "--snd-command", f"sh -c 'cat > {replies}/reply-$(date +%s%N).raw'",
            "--snd-command-rate", str(SND_RATE),
            "--synthesize-command", f"sh -c '{{ printf \"synthesize:\"; cat; echo; }} >> {texts}'",
            "--transcript-command", f"sh -c '{{ printf \"transcript:\"; cat; echo; }} >> {texts}'",
            "--detection-command", f"sh -c '{{ printf \"detection:\"; cat; echo; }} >> {texts}'",
        ]

    def start(self, timeout: float = 10.0) -> RealSatellite:
        log = self.log.open("ab")
        self._proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"wyoming-satellite exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"wyoming-satellite did not listen on {self.port}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGKILL the satellite and its mic/wake/snd children (a satellite that lost power)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def say(self, pcm: bytes) -> None:
        """Speak ``pcm`` (16 kHz mono int16) after the wake marker, at the next 64 ms block."""
        self._clips += 1
        tmp = self.say_dir / f"{self._clips:04d}.part"
        tmp.write_bytes(pcm)
        tmp.rename(self.say_dir / f"{self._clips:04d}.raw")

    def spoken_at(self, clip: int) -> tuple[float, int] | None:
        """(monotonic time the mic began clip number ``clip``, bytes before the clip's own audio)."""
        log = self.say_dir / "spoken.log"
        if not log.exists():
            return None
        for line in log.read_text(encoding="utf-8").splitlines():
            stem, at, lead = line.split()
            if int(stem) == clip:
                return float(at), int(lead)
        return None

    @property
    def clips(self) -> int:
        """Clips handed to ``say`` so far (the last one's number)."""
        return self._clips

    def reply_files(self) -> list[Path]:
        return sorted(self.replies.glob("reply-*.raw"))

    def said(self) -> list[str]:
        """Lines the satellite logged: ``synthesize:<text>``, ``transcript:<text>``, ``detection:<name>``."""
        if not self.texts.exists():
            return []
        return [line for line in self.texts.read_text(encoding="utf-8").splitlines() if line]
