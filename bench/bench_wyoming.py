#!/usr/bin/env python3
"""The Wyoming hub's cost: end of speech -> action through a satellite, against the local pipeline.

In one run, with one assistant (phrase brain, the demo house on a real mosquitto):

  local      the command's audio fed at real time, in 30 ms frames, to the local pipeline's
             segmenter (the same VAD settings), then brain + router as the orchestrator runs
             them: end of speech (the clip's last speech sample played) -> the MQTT command
             arriving at a watcher client.
  satellite  the same clip spoken by a real wyoming-satellite 1.0.0 process (its mic
             command plays it at real time, after the local wake word), streamed to the hub
             over TCP, endpointed there, the same brain and router: end of speech at the
             satellite -> the same MQTT command at the watcher.
  ratio      median satellite / median local (goal <= 1.2x: the protocol's cost).
  idle       with --satellites connected and silent: this process's CPU (% of one core) and
             threads, per satellite (the hub's side; the satellites' own processes excluded);
             with --streaming more that have no local wake word, so they stream all the time
             and the hub runs its wake word on each.

    .venv/bin/python bench/bench_wyoming.py [--turns 6] [--satellites 3] [--streaming 1] [--idle-s 10]

Needs mosquitto and the satellite venv (scripts/wyoming_satellite_env).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.audio.frontend import Segmenter
from assistant.types import AudioFrame
from tests.support.mosquitto import Broker, mosquitto_available
from tests.support.pipeline import espeak16, silence
from tests.wyoming.hub_rig import HubRig
from tests.wyoming.satellites import satellite_python

FRAME_BYTES = 480 * 2  # 30 ms
COMMANDS = [
    ("Turn on the kitchen light.", "demo/kitchen/light/set"),
    ("Turn off the kitchen light.", "demo/kitchen/light/set"),
    ("Turn on the coffee maker.", "demo/kitchen/coffee/set"),
    ("Turn off the coffee maker.", "demo/kitchen/coffee/set"),
    ("Open the living room blinds.", "demo/living/blinds/set"),
    ("Close the living room blinds.", "demo/living/blinds/set"),
]


def local_turn(rig: HubRig, speech: bytes, topic: str) -> float:
    """End of speech -> action (s) through the local pipeline, audio paced at real time."""
    segmenter = Segmenter(rig.settings.vad, source="bench:local", site=rig.settings.site)
    segmenter.arm()
    clip = silence(0.5) + speech + silence(1.0)
    speech_end_offset = (len(silence(0.5)) + len(speech)) / 32000
    mark = rig.watcher.mark()
    start = time.monotonic()
    brain = rig.assistant.brain
    if brain is None:
        raise RuntimeError("no brain")
    for index, offset in enumerate(range(0, len(clip) - FRAME_BYTES + 1, FRAME_BYTES)):
        due = start + index * 0.03
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        utterances = segmenter.feed(AudioFrame(clip[offset : offset + FRAME_BYTES], index * 0.03))
        if utterances:  # the orchestrator hands the utterance to a worker thread the same way
            work = (utterances[0], rig.assistant.router, threading.Event())
            threading.Thread(target=brain.handle, args=work, daemon=True).start()
            break
    seen = rig.watcher.wait(lambda m: m.topic == topic, since=mark, timeout=15.0)
    if seen is None:
        raise RuntimeError("the local pipeline did not act")
    return seen.at - (start + speech_end_offset)


def satellite_turn(rig: HubRig, site: str, speech: bytes, topic: str) -> float:
    """End of speech at the satellite -> action (s)."""
    sat = rig.satellites[site]
    mark = rig.watcher.mark()
    before = len(rig.turns_of(site))
    sat.say(speech + silence(1.0))
    clip = sat.clips
    seen = rig.watcher.wait(lambda m: m.topic == topic, since=mark, timeout=15.0)
    if seen is None:
        raise RuntimeError(f"the satellite turn did not act: {rig.turns_of(site)[before:]}")
    rig.wait_turns(site, before + 1)
    spoken = sat.spoken_at(clip)
    if spoken is None:
        raise RuntimeError("the satellite's mic did not log the clip")
    began, lead = spoken
    return seen.at - (began + (lead + len(speech)) / 32000)


def cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_share(seconds: float) -> float:
    """This process's CPU over ``seconds`` of idling, as a share of one core."""
    began, wall = cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds() - began) / (time.monotonic() - wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6, help="commands per path")
    parser.add_argument("--satellites", type=int, default=3, help="satellites connected")
    parser.add_argument("--streaming", type=int, default=1, help="satellites streaming all the time")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle measurement (s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not mosquitto_available() or satellite_python() is None:
        print("needs mosquitto and scripts/wyoming_satellite_env", file=sys.stderr)
        return 2
    sites = [f"room{i}" for i in range(args.satellites)]
    streaming = [f"open{i}" for i in range(args.streaming)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = Broker(folder).start()
        rig = HubRig(folder, broker, sites + streaming, streaming=streaming)
        try:
            threads_before = rig.threads_before_hub
            threads_connected = threading.active_count()
            idle_cpu = idle_share(args.idle_s)
            for site in streaming:
                rig.satellites[site].stop()
            rig.wait(lambda: all(rig.hub.links[s].status.state.value == "offline" for s in streaming), 10.0)
            quiet_cpu = idle_share(args.idle_s)
            local, remote = [], []
            for turn in range(args.turns):
                text, topic = COMMANDS[turn % len(COMMANDS)]
                speech = espeak16(text, "en-us", 160)
                local.append(local_turn(rig, speech, topic))
                time.sleep(0.5)
                remote.append(satellite_turn(rig, sites[turn % len(sites)], speech, topic))
                time.sleep(0.5)
        finally:
            rig.close()
            broker.stop()
    ms = [round(1000 * x) for x in local]
    print(f"local     end of speech -> action: median {1000 * statistics.median(local):.0f} ms  {ms}")
    ms = [round(1000 * x) for x in remote]
    print(f"satellite end of speech -> action: median {1000 * statistics.median(remote):.0f} ms  {ms}")
    ratio = statistics.median(remote) / statistics.median(local)
    print(f"ratio satellite / local: {ratio:.2f}x (goal <= 1.2x)")
    per = 100 * quiet_cpu / max(1, args.satellites)
    print(f"idle, {args.satellites} satellites with their own wake word connected: {100 * quiet_cpu:.2f}% "
          f"of one core for the whole process ({per:.2f}% per satellite)")
    if streaming:
        extra = 100 * (idle_cpu - quiet_cpu) / len(streaming)
        print(f"idle, plus {len(streaming)} streaming all the time (the hub's wake word on each): "
              f"{100 * idle_cpu:.2f}% ({extra:.2f}% more per streaming satellite)")
    print(f"Python threads: {threads_before} before the hub (the assistant's MQTT, skills, router), "
          f"{threads_connected} with the hub and {args.satellites + args.streaming} satellites connected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
