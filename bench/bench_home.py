#!/usr/bin/env python3
"""Home side timings over a real mosquitto on loopback (started here, stopped at the end).

Prints:
- tool call -> command received by a second MQTT client: median and p95 in ms over N calls
  (HomeControl.run: resolve the name, build the payload, publish; a device's view);
- the same path without a broker (dry run): pure resolve + payload cost per call;
- inventory intake: 200 retained discovery configs -> all entities known, in ms;
- HomeControl.tools() for those 200 entities (the schema rebuild after a change), in ms.

Usage: .venv/bin/python bench/bench_home.py [--calls N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from assistant.config import MqttSettings  # noqa: E402
from assistant.home.client import MqttClient  # noqa: E402
from assistant.home.control import HomeControl  # noqa: E402
from assistant.home.inventory import Inventory  # noqa: E402
from tests.support.mosquitto import Broker  # noqa: E402

ENTITIES = 200
AREAS = ("kitchen", "living room", "bedroom", "hall", "office", "garage", "bathroom", "attic")


def _configs(prefix: str) -> dict[str, str]:
    out = {}
    for i in range(ENTITIES):
        area = AREAS[i % len(AREAS)]
        out[f"{prefix}/light/l{i}/config"] = json.dumps(
            {
                "name": f"Lamp {i}",
                "cmd_t": f"bench/l{i}/set",
                "stat_t": f"bench/l{i}",
                "bri_cmd_t": f"bench/l{i}/b",
                "uniq_id": f"l{i}",
                "dev": {"ids": [f"d{i}"], "name": f"{area.title()} Light {i}", "sa": area},
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Broker(Path(folder)) as broker:
        prefix = "benchha"
        got: dict[str, float] = {}
        ready = threading.Event()
        sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub")
        sub.on_connect = lambda c, *_: c.subscribe("bench/#")
        sub.on_subscribe = lambda *_: ready.set()
        sub.on_message = lambda _c, _u, m: got.setdefault(m.topic + m.payload.decode(), time.perf_counter())
        sub.connect(broker.host, broker.port)
        sub.loop_start()
        ready.wait(5)
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub")
        pub.connect(broker.host, broker.port)
        pub.loop_start()
        for topic, payload in _configs(prefix).items():
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

        client = MqttClient(
            MqttSettings(host=broker.host, port=broker.port, discovery_prefix=prefix), site="bench"
        )
        inventory = Inventory(client, discovery_prefix=prefix)  # default 0.3 s change debounce
        control = HomeControl(inventory, client)
        inventory.start()
        started = time.perf_counter()
        client.start()
        client.wait_connected(5)
        while len(inventory.entities()) < ENTITIES and time.perf_counter() - started < 30:
            time.sleep(0.001)
        intake_ms = (time.perf_counter() - started) * 1000

        t0 = time.perf_counter()
        for _ in range(10):
            control.tools()
        tools_ms = (time.perf_counter() - t0) * 100

        names = inventory.names()
        latencies = []
        for i in range(args.calls):
            name = names[i % len(names)]
            on = (i // len(names)) % 2 == 0
            entity = inventory.match(name).entities[0]
            key = entity.config["command_topic"] + ("ON" if on else "OFF")
            got.pop(key, None)
            begin = time.perf_counter()
            control.run("HassTurnOn" if on else "HassTurnOff", {"name": name})
            while key not in got and time.perf_counter() - begin < 2:
                time.sleep(0.0002)
            latencies.append((got.get(key, begin + 2) - begin) * 1000)

        dry = HomeControl(
            Inventory(
                None,
                manual_entities=[
                    {"component": "light", "name": f"lamp {i}", "cmd_t": f"x/{i}"} for i in range(ENTITIES)
                ],
                debounce_s=0,
            ),
            None,
        )
        t0 = time.perf_counter()
        for i in range(args.calls):
            dry.run("HassTurnOn", {"name": f"lamp {i % ENTITIES}"})
        dry_ms = (time.perf_counter() - t0) * 1000 / args.calls

        client.stop()
        inventory.close()
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()

    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    print(
        f"tool call -> command at a subscriber (loopback mosquitto, {args.calls} calls): "
        f"median {statistics.median(latencies):.2f} ms, p95 {p95:.2f} ms"
    )
    print(f"tool call without a broker (resolve + payload, {ENTITIES} entities): {dry_ms:.3f} ms per call")
    print(f"inventory intake of {ENTITIES} retained discovery configs: {intake_ms:.0f} ms")
    print(f"HomeControl.tools() for {ENTITIES} entities: {tools_ms:.2f} ms")


if __name__ == "__main__":
    main()
