"""``assistant home``: what the assistant learned from the broker, and what it refused, and why.

Connects with the settings' MQTT client (``build_home``), subscribes to discovery, waits for
the retained configs and states (until nothing new arrives for ``quiet_s``, at most
``wait_s``; progress on stderr), prints every entity (spoken name, area, domain, what it
can do, state, the tools that reach it) and every refused payload with its topic and the
reason, then disconnects. The assistant's own HA device is not announced. Without
``mqtt.host`` it reports the entities declared in ``home.entities``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from assistant.config import Settings
from assistant.home.control import TOOL_DOMAINS, HomeControl
from assistant.home.domains import REGISTRY
from assistant.home.inventory import Inventory
from assistant.home.service import build_home
from assistant.wyoming.hub_state import satellite_report


@dataclass
class HomeReport:
    """Everything ``assistant home`` prints."""

    broker: str | None
    connected: bool
    entities: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    waited_s: float = 0.0
    satellites: list[dict[str, Any]] = field(default_factory=list)
    """wyoming.satellites with the state the running hub last wrote (assistant.wyoming.hub_state)."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "broker": self.broker,
            "connected": self.connected,
            "waited_s": round(self.waited_s, 1),
            "entities": self.entities,
            "refused": self.refused,
            "satellites": self.satellites,
        }


def describe(inventory: Inventory, control: HomeControl) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(entities, refusals) of an inventory, as ``assistant home`` shows them."""
    entities = []
    for entity in inventory.entities():
        st = inventory.state(entity)
        module = REGISTRY.get(entity.domain)
        tools = [
            t
            for t, domains in TOOL_DOMAINS.items()
            if entity.domain in domains and control._usable(t, entity)
        ]
        entities.append(
            {
                "name": entity.spoken,
                "display_name": entity.name,
                "area": entity.area,
                "domain": entity.domain,
                "device_class": entity.device_class,
                "capabilities": module.capabilities(entity) if module else {},
                "state": st.state,
                "attributes": dict(st.attributes),
                "tools": tools,
                "key": entity.key,
                "source": entity.source,
            }
        )
    refused = [{"topic": topic, "reason": reason} for topic, reason in sorted(inventory.refusals.items())]
    return entities, refused


def collect(
    settings: Settings,
    *,
    wait_s: float = 10.0,
    quiet_s: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> HomeReport:
    """Connect, wait for the retained configs and states (bounded), and describe the home."""
    say = progress or (lambda _text: None)
    stack = build_home(settings, inventory_debounce_s=0.0)
    client, inventory = stack.client, stack.inventory
    mqtt = settings.mqtt
    if not client.enabled:
        entities, refused = describe(inventory, stack.control)
        return HomeReport(None, False, entities, refused)
    broker = f"{mqtt.host}:{mqtt.port}"
    start = time.monotonic()
    deadline = start + wait_s
    inventory.start()  # discovery only: the assistant's own device is not announced by a report
    client.start()
    try:
        say(f"connecting to {broker} ...")
        connected = client.wait_connected(max(0.1, deadline - time.monotonic()))
        if not connected:
            say(f"no connection to {broker} within {wait_s:.0f} s")
        else:
            say(f"connected; reading retained discovery configs under {mqtt.discovery_prefix}/ ...")
            seen = (-1, -1)
            last_change = time.monotonic()
            last_shown = 0.0
            while time.monotonic() < deadline:
                now_seen = (inventory.configs_seen, inventory.states_seen)
                now = time.monotonic()
                if now_seen != seen:
                    seen, last_change = now_seen, now
                elif now - last_change >= quiet_s:
                    break
                if now - last_shown >= 1.0:
                    say(
                        f"  {inventory.configs_seen} configs, {len(inventory.entities())} entities, "
                        f"{len(inventory.refusals)} refused"
                    )
                    last_shown = now
                time.sleep(0.05)
        entities, refused = describe(inventory, stack.control)
        return HomeReport(broker, connected, entities, refused, time.monotonic() - start)
    finally:
        inventory.close()
        client.stop(2.0)


def _fmt_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "/".join(str(v) for v in value) if value else "-"
    return str(value)


def render_text(report: HomeReport) -> str:
    """The human-readable report."""
    lines = []
    if report.broker is None:
        lines.append("No MQTT broker configured (mqtt.host): the entities from home.entities:")
    elif not report.connected:
        lines.append(f"Could not connect to {report.broker}.")
    else:
        lines.append(
            f"From {report.broker} ({report.waited_s:.1f} s): {len(report.entities)} entities, "
            f"{len(report.refused)} refused."
        )
    for e in report.entities:
        caps = ", ".join(
            f"{k} {_fmt_value(v)}" for k, v in e["capabilities"].items() if v not in (False, [], None)
        )
        state = e["state"] if e["state"] is not None else "unknown"
        extra = ", ".join(f"{k} {v}" for k, v in e["attributes"].items() if v is not None)
        lines.append(
            f"  {e['name']!r} ({e['domain']}{', ' + e['device_class'] if e['device_class'] else ''})"
            f" area {e['area'] or '-'}: {state}{' (' + extra + ')' if extra else ''}"
            f"{'; can: ' + caps if caps else ''}; tools: {', '.join(e['tools']) or '-'}"
        )
    if report.refused:
        lines.append("Refused:")
        lines.extend(f"  {r['topic']}: {r['reason']}" for r in report.refused)
    if report.satellites:
        lines.append("Wyoming satellites:")
        lines.extend(
            f"  {s.get('site')} ({s.get('uri')}, area {s.get('area') or '-'}): {s.get('state')}"
            f"{'; ' + str(s['turns']) + ' turns' if s.get('turns') else ''}"
            f"{'; last error: ' + str(s['last_error']) if s.get('last_error') else ''}"
            for s in report.satellites
        )
    return "\n".join(lines)


def main(
    settings: Settings,
    *,
    as_json: bool = False,
    wait_s: float = 10.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``assistant home``: 0 when the report was made (connected, or no broker configured)."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    report = collect(settings, wait_s=wait_s, progress=lambda text: print(text, file=stderr, flush=True))
    report.satellites = satellite_report(settings)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True), file=stdout)
    else:
        print(render_text(report), file=stdout)
    return 0 if report.connected or report.broker is None else 1
