"""Runs tests/audio/portaudio_child.py (real PortAudio over ALSA's file plugin) in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = Path(__file__).resolve().parents[1] / "audio" / "portaudio_child.py"


def run_child(args: list[str], env: dict[str, str], timeout: float = 30) -> dict[str, Any]:
    """Run portaudio_child.py with an ALSA environment; return its JSON result."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from child: {proc.stdout[-1000:]} {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    return result
