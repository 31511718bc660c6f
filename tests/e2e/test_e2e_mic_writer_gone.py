"""The microphone's source disappears: the daemon must not spin a core on it.

ALSA's file plugin reading a FIFO whose writer closed does not fail: it hands out its last
two periods again and again, as fast as they are read (the ``null`` slave has no clock).
The daemon's MicrophoneSource used to serve that loop of stale audio at full speed (one
core busy in PortAudio's thread, the reader and the wake-word loop). Now it sees a stream
that runs ahead of the clock on repeated blocks, closes it and reopens with backoff; the
reopen waits (in the plugin's open) until a writer is back, using no CPU, and capture goes
on once it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.live_daemon import DaemonProcess, write_settings
from tests.support.alsa import LiveFeeder, alsa_file_devices

CPU_LIMIT = 0.25
"""Share of one core the daemon may use while its microphone's writer is gone."""


def test_daemon_stays_idle_when_the_fifo_writer_goes_away_and_resumes_when_it_returns(tmp_path: Path) -> None:
    settings = write_settings(tmp_path / "config.yaml", state_dir=tmp_path / "state", broker=None)
    with alsa_file_devices(tmp_path, fifo=True) as alsa:
        feeder = LiveFeeder(alsa.capture_path).start()
        daemon = DaemonProcess(settings, alsa.env, tmp_path / "daemon.log")
        second: LiveFeeder | None = None
        try:
            assert daemon.wait_for_log("Assistant ready", timeout=60), daemon.tail()
            assert feeder.connected.wait(10), daemon.tail()
            time.sleep(1.0)
            feeder.stop()  # the writer closes the FIFO
            time.sleep(1.5)
            cpu0, wall0 = daemon.cpu_seconds(), time.monotonic()
            time.sleep(4.0)
            share = (daemon.cpu_seconds() - cpu0) / (time.monotonic() - wall0)
            log = daemon.log()
            assert share < CPU_LIMIT, (
                f"daemon used {share:.0%} of a core with the microphone's writer gone; log:\n{daemon.tail()}"
            )
            assert "replays stale audio faster than real time" in log, daemon.tail()
            assert daemon.alive(), daemon.tail()
            opened = log.count("capturing from")
            second = LiveFeeder(alsa.capture_path).start()  # the writer is back
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and daemon.log().count("capturing from") <= opened:
                time.sleep(0.1)
            assert daemon.log().count("capturing from") > opened, f"capture never resumed:\n{daemon.tail()}"
            assert second.connected.wait(10), daemon.tail()
        finally:
            if second is not None:
                rc = daemon.stop()
                second.stop()
            else:
                feeder.stop()
                rc = daemon.stop()
    if rc != 0:
        pytest.fail(f"daemon exit status {rc}:\n{daemon.tail()}")
