"""Home Assistant as the oracle: what the assistant learns and sends, next to what HA did.

The corpus (tests/data/ha-conformance/, a copy of shared/reference/ha-conformance/ with its
sources recorded, or ``$HA_CONFORMANCE_DIR``) holds 493 real discovery payloads (Zigbee2MQTT's own extension
output, ESPHome, Tasmota, Home Assistant's MQTT tests) and what Home Assistant Core 2025.4.4
made of each: accepted or refused, name, area, capabilities (each one HA reports is
compared); and for 347 service calls the
exact topic and payload it published. ``measure()`` feeds every payload to a real
``Inventory`` (all retained at once, as HA sees them) and asks ``HomeControl`` for the
commands of each intent, then compares. Used by bench/bench_conformance.py (prints the
ratios and every difference) and by the tests.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.home.control import HomeControl
from assistant.home.discovery import Entity, parse_discovery_topic
from assistant.home.domains import REGISTRY
from assistant.home.inventory import Inventory

_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data" / "ha-conformance"
CORPUS_FILES = ("zigbee2mqtt.json", "esphome.json", "tasmota.json", "ha_core_tests.json")
REFERENCE = "home-assistant-reference.json"


def corpus_dir() -> Path | None:
    """Where the corpus is, or None when this checkout has no copy beside it."""
    folder = Path(os.environ.get("HA_CONFORMANCE_DIR", _DEFAULT_DIR))
    return folder if (folder / REFERENCE).is_file() else None


@dataclass(frozen=True)
class Payload:
    """One discovery message of the corpus."""

    file: str
    index: int
    topic: str
    payload: Mapping[str, Any]


@dataclass
class Report:
    """Both ratios and every difference."""

    payloads: int = 0
    payloads_equal: int = 0
    payload_diffs: list[str] = field(default_factory=list)
    commands: int = 0
    commands_equal: int = 0
    command_diffs: list[str] = field(default_factory=list)

    @property
    def learned_ratio(self) -> float:
        """Share of payloads learned as Home Assistant learned them."""
        return self.payloads_equal / self.payloads if self.payloads else 0.0

    @property
    def command_ratio(self) -> float:
        """Share of service calls that publish what Home Assistant published."""
        return self.commands_equal / self.commands if self.commands else 0.0


def load_payloads(folder: Path) -> list[Payload]:
    """Every discovery payload of the corpus, in file order."""
    out: list[Payload] = []
    for name in CORPUS_FILES:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
        for index, item in enumerate(data["payloads"]):
            out.append(Payload(name, index, item["topic"], item["payload"]))
    return out


def load_reference(folder: Path) -> dict[str, Any]:
    """Home Assistant's own reading of the corpus."""
    data: dict[str, Any] = json.loads((folder / REFERENCE).read_text(encoding="utf-8"))
    return data


def learn(payloads: list[Payload]) -> tuple[Inventory, HomeControl]:
    """A real inventory (no broker) that took every payload, and the home control over it."""
    inventory = Inventory(None, debounce_s=0.0)
    for item in payloads:
        inventory.handle_config(item.topic, json.dumps(item.payload).encode())
    return inventory, HomeControl(inventory)


def _entity_for(inventory: Inventory, topic: str) -> Entity | None:
    parsed = parse_discovery_topic("homeassistant", topic)
    return None if parsed is None else inventory.get(parsed.key)


def _norm(text: Any) -> str:
    return " ".join(str(text or "").lower().replace("_", " ").split())


def _json_or_text(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def _same_value(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        return ours.keys() == theirs.keys() and all(_same_value(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_same_value(a, b) for a, b in zip(ours, theirs, strict=True))
    numbers = (int, float)
    if isinstance(ours, numbers) and isinstance(theirs, numbers) and not isinstance(ours, bool):
        return math.isclose(float(ours), float(theirs), abs_tol=1.0)  # rounding of scaled values
    return bool(ours == theirs)


def same_publishes(ours: list[tuple[str, str]], theirs: list[tuple[str, str]]) -> bool:
    """Same topics and payloads in the same order (JSON equal, numbers within rounding)."""
    if len(ours) != len(theirs):
        return False
    return all(t1 == t2 and _same_value(_json_or_text(p1), _json_or_text(p2))
               for (t1, p1), (t2, p2) in zip(ours, theirs, strict=True))


def _compare_entity(entry: Mapping[str, Any], entity: Entity | None) -> str | None:
    """None when the assistant learned the payload as HA did, else what differs."""
    accepted = bool(entry["ha_accepts"])
    if entity is None:
        return "refused, HA accepted" if accepted else None
    if not accepted:
        return f"accepted as {entity.name!r}, HA refused"
    if entry.get("ha_friendly_name") is None:
        return None  # disabled by default in HA (diagnostics, link quality): no name to compare
    problems = []
    if _norm(entity.name) != _norm(entry.get("ha_friendly_name")):
        problems.append(f"name {entity.name!r}, HA {entry.get('ha_friendly_name')!r}")
    if _norm(entity.area) != _norm(entry.get("ha_area")):
        problems.append(f"area {entity.area!r}, HA {entry.get('ha_area')!r}")
    ours = REGISTRY[entity.domain].capabilities(entity)
    for key, theirs in (entry.get("ha_capabilities") or {}).items():
        if ours.get(key) != theirs:  # every capability HA reports must be the same here
            problems.append(f"capability {key} {ours.get(key)!r}, HA {theirs!r}")
    return "; ".join(problems) or None


def _commands_for(control: HomeControl, entity: Entity, intent: str,
                  arguments: Mapping[str, Any]) -> list[tuple[str, str]]:
    commands = control._commands(intent, entity, dict(arguments))  # the encoding under test
    return [(c.topic, c.payload) for c in commands]


def measure(folder: Path) -> Report:
    """Learn the whole corpus and encode every recorded service call; compare with HA."""
    payloads = load_payloads(folder)
    reference = load_reference(folder)
    inventory, control = learn(payloads)
    supported = {e.domain for e in inventory.entities()} | _supported_domains()
    report = Report()
    for entry in reference["entities"]:
        if entry["component"] not in supported:
            continue  # a domain the assistant does not act on at all: counted by the bench apart
        report.payloads += 1
        problem = _compare_entity(entry, _entity_for(inventory, entry["topic"]))
        if problem is None:
            report.payloads_equal += 1
        else:
            report.payload_diffs.append(f"{entry['file']}#{entry['index']} {entry['topic']}: {problem}")
    for call in reference["commands"]:
        if call.get("ha_outcome") != "ok":
            continue  # HA itself failed the call (HTTP 500): nothing to compare with
        report.commands += 1
        theirs = [(str(t), str(p)) for t, p in call["ha_published"]]
        entity = _entity_for(inventory, call["topic"])
        label = f"{call['file']} {call['entity']} {call['intent']} {json.dumps(call['arguments'])}"
        if entity is None:
            report.command_diffs.append(f"{label}: entity not learned; HA sent {theirs}")
            continue
        try:
            ours = _commands_for(control, entity, call["intent"], call["arguments"])
        except Exception as err:  # a refusal is a difference, not a crash of the suite
            report.command_diffs.append(f"{label}: refused ({type(err).__name__}: {err}); HA sent {theirs}")
            continue
        if same_publishes(ours, theirs):
            report.commands_equal += 1
        else:
            report.command_diffs.append(f"{label}: sent {ours}; HA sent {theirs}")
    return report


def _supported_domains() -> set[str]:
    from assistant.home.discovery import SUPPORTED_DOMAINS

    return set(SUPPORTED_DOMAINS)


def unsupported_payloads(folder: Path) -> Iterator[tuple[str, str]]:
    """(component, topic) of payloads HA accepted in domains the assistant does not handle."""
    supported = _supported_domains()
    for entry in load_reference(folder)["entities"]:
        if entry["ha_accepts"] and entry["component"] not in supported:
            yield entry["component"], entry["topic"]
