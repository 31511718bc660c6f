"""A fixed demo inventory and a recording router, for the phrase brain's tests, bench and test set.

The home tools follow the home-tool contract (HA intent names; optional ``name``,
``area``, ``domain`` enums; the intent's value parameter), the skill tools carry
hassil-style templates in ``Tool.sentences``. Handlers do nothing; the router records
what it was asked. Nothing here talks to MQTT.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistant.tools.base import Tool
from assistant.types import ResultStatus, ToolCall, ToolResult


@dataclass(frozen=True)
class DemoEntity:
    """One entity of the demo home."""

    name: str
    domain: str
    area: str
    device_class: str = ""
    aliases: tuple[str, ...] = ()
    """Other names it answers to (the home tools list them as HomeControl does: a device's name,
    the entity's own name, an alias from settings)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The name and the aliases."""
        return (self.name, *self.aliases)


DEMO_ENTITIES: tuple[DemoEntity, ...] = (
    DemoEntity("kitchen light", "light", "kitchen", aliases=("big light",)),
    DemoEntity("living room lamp", "light", "living room", aliases=("lamp",)),
    DemoEntity("bedroom light", "light", "bedroom"),
    DemoEntity("coffee maker", "switch", "kitchen"),
    DemoEntity("office fan", "fan", "office"),
    DemoEntity("bedroom fan", "fan", "bedroom"),
    DemoEntity("garage door", "cover", "garage", "garage"),
    DemoEntity("living room blinds", "cover", "living room", "blind", aliases=("blinds",)),
    DemoEntity("front door", "lock", "hallway"),
    DemoEntity("thermostat", "climate", "living room", aliases=("living room thermostat",)),
    DemoEntity("outside temperature", "sensor", "garden"),
    DemoEntity("bedroom humidity", "sensor", "bedroom"),
)
"""Twelve entities over seven areas and seven domains; four answer to a second name too."""


def synthetic_entities(count: int) -> tuple[DemoEntity, ...]:
    """``count`` plausible entities (for grammar-size benches): rooms x device kinds."""
    rooms = ["kitchen", "living room", "bedroom", "office", "hallway", "garage", "bathroom", "dining room",
             "basement", "attic", "porch", "guest room", "nursery", "study", "laundry room", "garden",
             "patio", "pantry", "library", "den", "upstairs hallway", "master bedroom", "kids room",
             "media room", "gym"]
    kinds = [("light", "light", ""), ("lamp", "light", ""), ("ceiling light", "light", ""),
             ("fan", "fan", ""), ("blinds", "cover", "blind"), ("heater", "switch", ""),
             ("speaker", "switch", ""), ("temperature", "sensor", ""), ("humidity", "sensor", "")]
    # beyond rooms x kinds (225): the same with a qualifier, as big homes name things
    qualifiers = ["", "left", "right", "north", "south", "east", "west", "upper", "lower", "corner",
                  "window", "desk", "floor"]
    out: list[DemoEntity] = []
    for qualifier, room, (kind, domain, device_class) in itertools.product(qualifiers, rooms, kinds):
        if len(out) == count:
            break
        name = f"{qualifier} {room} {kind}".strip()
        out.append(DemoEntity(name, domain, room, device_class))
    return tuple(out)


def _noop(**_: Any) -> dict[str, Any]:
    return {}


def _name_prop(entities: Sequence[DemoEntity], domains: set[str] | None = None) -> dict[str, Any]:
    chosen = [e for e in entities if domains is None or e.domain in domains]
    # each name's domain is left for the brain to infer, except for the aliases (as HomeControl
    # declares them): "lamp" or "big light" alone say little
    hints = {alias: e.domain for e in chosen for alias in e.aliases}
    prop: dict[str, Any] = {"type": "string", "description": "Name of the device, as spoken.",
                            "enum": sorted({n for e in chosen for n in e.names})}
    if hints:
        prop["x-entity-domains"] = hints
    return prop


def home_tools(entities: Sequence[DemoEntity] = DEMO_ENTITIES) -> list[Tool]:
    """Home tools over ``entities``, following the home-tool contract."""
    areas = {"type": "string", "enum": sorted({e.area for e in entities})}
    domains = {"type": "string", "enum": sorted({e.domain for e in entities})}
    by_name = {n: e for e in entities for n in e.names}

    def schema(extra: Mapping[str, Any] | None = None,
               name_domains: set[str] | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {"name": _name_prop(entities, name_domains), "area": areas, "domain": domains}
        props.update(extra or {})
        return {"type": "object", "properties": props, "required": [], "additionalProperties": False}

    def opens_entry(args: Mapping[str, Any]) -> bool:
        entity = by_name.get(str(args.get("name", "")))
        return entity is not None and entity.device_class in ("garage", "door", "gate")

    def unlocks(args: Mapping[str, Any]) -> bool:
        entity = by_name.get(str(args.get("name", "")))
        return entity is not None and entity.domain == "lock"

    def position_opens(args: Mapping[str, Any]) -> bool:
        return opens_entry(args) and int(args.get("position", 0) or 0) > 0

    pct = {"type": "integer", "minimum": 0, "maximum": 100}
    switching = {"light", "switch", "fan", "cover", "lock", "climate"}
    return [
        Tool("HassTurnOn", "Turn on / open / lock a device", schema(None, switching), _noop,
             reply="Turned on {name}.", sensitive=opens_entry, confirm="open the {name}"),
        Tool("HassTurnOff", "Turn off / close / unlock a device", schema(None, switching), _noop,
             reply="Turned off {name}.", sensitive=unlocks, confirm="unlock the {name}"),
        Tool("HassToggle", "Toggle a device", schema(None, switching - {"climate"}), _noop,
             reply="Toggled {name}."),
        Tool("HassLightSet", "Set light brightness or colour temperature",
             schema({"brightness": pct, "color_temp": {"type": "integer", "minimum": 2000, "maximum": 6500}},
                    {"light"}), _noop, reply="Done."),
        Tool("HassSetPosition", "Set a cover's position", schema({"position": pct}, {"cover"}), _noop,
             reply="Done.", sensitive=position_opens, confirm="open the {name}"),
        Tool("HassClimateSetTemperature", "Set a target temperature",
             schema({"temperature": {"type": "number", "minimum": 10, "maximum": 30}}, {"climate"}), _noop,
             reply="Set to {temperature} degrees."),
        Tool("HassFanSetSpeed", "Set a fan's speed", schema({"percentage": pct}, {"fan"}), _noop,
             reply="Done."),
        Tool("HassGetState", "Ask for a device's state", schema(), _noop, reply="It is on."),
        Tool("HassClimateGetTemperature", "Ask for a temperature", schema(None, {"climate", "sensor"}), _noop,
             reply="It is 21 degrees."),
    ]


def skill_tools() -> list[Tool]:
    """Stand-ins for the built-in skills (timers, clock, assistant control): same tool names and
    parameters as skills/, fewer templates; the brain's unit tests do not depend on skills/."""
    empty: dict[str, Any] = {"type": "object", "properties": {}, "required": [],
                             "additionalProperties": False}

    def params(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
        return {"type": "object", "properties": props, "required": required, "additionalProperties": False}

    return [
        Tool("start_timer", "Start a timer",
             params({"minutes": {"type": "integer", "minimum": 1, "maximum": 120},
                     "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, ["minutes"]),
             _noop, reply="Timer started.",
             sentences=("(set|start) a timer for {minutes} minute[s]", "{minutes} minute timer",
                        "timer for {minutes} minute[s]")),
        Tool("cancel_timer", "Cancel the timer", empty, _noop, reply="Timer cancelled.",
             sentences=("(cancel|stop) [the|my] timer",)),
        Tool("timer_remaining", "Time left on the timer", empty, _noop, reply="Five minutes left.",
             sentences=("how much time is left [on the timer]", "how long is left on [the|my] timer")),
        Tool("get_time", "The current time", empty, _noop, reply="It is noon.",
             sentences=("what time is it", "what's the time")),
        Tool("get_date", "Today's date", empty, _noop, reply="It is the first.",
             sentences=("what's the date [today]", "what is today's date")),
        Tool("get_weekday", "The day of the week", empty, _noop, reply="It is Monday.",
             sentences=("what day is it [today]",)),
        Tool("volume_up", "Louder", empty, _noop, reply="", sentences=("volume up", "(louder|turn it up)")),
        Tool("volume_down", "Quieter", empty, _noop, reply="",
             sentences=("volume down", "(quieter|turn it down)")),
        Tool("set_volume", "Set the volume",
             params({"level": {"type": "integer", "minimum": 0, "maximum": 100}}, ["level"]), _noop,
             reply="", sentences=("set [the] volume to {level} [percent]",)),
        Tool("mute", "Mute", empty, _noop, reply="", sentences=("mute", "be quiet")),
        Tool("assistant_stop", "Stop speaking", empty, _noop, reply="", sentences=("stop", "never mind")),
    ]


def demo_tools(entities: Sequence[DemoEntity] = DEMO_ENTITIES) -> list[Tool]:
    """Home tools plus skill tools, sorted by name (as the router lists them)."""
    return sorted([*home_tools(entities), *skill_tools()], key=lambda t: t.name)


_YES = frozenset({"yes", "yeah", "yep", "sure", "do it", "confirm", "yes please", "okay", "ok"})


class RecordingRouter:
    """Implements the brain-facing Router protocol and records every call; runs nothing."""

    def __init__(self, tools: Sequence[Tool] | None = None) -> None:
        self._tools = list(tools if tools is not None else demo_tools())
        self._version = 1
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[ToolCall, str]] = {}
        self.calls: list[ToolCall] = []
        """Every call handed to ``call``."""
        self.executed: list[ToolCall] = []
        """Calls that would have acted (not parked, not refused)."""
        self.answers: list[str | None] = []
        """Transcripts handed to ``answer_confirmation``."""

    def reset(self) -> None:
        """Forget recorded calls and any parked confirmation (the tool set stays)."""
        with self._lock:
            self._pending.clear()
            self.calls.clear()
            self.executed.clear()
            self.answers.clear()

    def set_tools(self, tools: Sequence[Tool]) -> None:
        """Replace the tool set (bumps ``tools_version``)."""
        with self._lock:
            self._tools = list(tools)
            self._version += 1

    @property
    def tools_version(self) -> int:
        """Increases whenever the tool set changes."""
        return self._version

    def tools(self) -> Sequence[Tool]:
        """The current tool set, sorted by name."""
        with self._lock:
            return sorted(self._tools, key=lambda t: t.name)

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Record the call; sensitive ones (and those the brain is unsure of) are parked with a question."""
        with self._lock:
            self.calls.append(call)
            tool = next((t for t in self._tools if t.name == call.name), None)
            if tool is None:
                return ToolResult(call, ResultStatus.ERROR, error_code="unknown_tool", speech="Sorry.")
            if call.confirm or tool.is_sensitive(call.arguments):
                action = _render(tool.confirm, call.arguments) if tool.confirm else tool.name
                question = "Do you want me to " + action + "?"
                self._pending[site] = (call, question)
                return ToolResult(call, ResultStatus.NEEDS_CONFIRMATION, speech=question)
            self.executed.append(call)
            return ToolResult(call, ResultStatus.OK, speech=_render(tool.reply, call.arguments))

    def pending_confirmation(self, site: str) -> str | None:
        """The parked question for ``site``, if any."""
        with self._lock:
            parked = self._pending.get(site)
            return parked[1] if parked else None

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Run the parked call on an explicit yes; cancel it otherwise."""
        with self._lock:
            self.answers.append(transcript)
            parked = self._pending.pop(site, None)
            if parked is None:
                return ToolResult(ToolCall("confirmation"), ResultStatus.ERROR, error_code="nothing_pending")
            call = parked[0]
            if transcript is not None and transcript.strip().lower() in _YES:
                self.executed.append(call)
                return ToolResult(call, ResultStatus.OK, speech="Done.")
            return ToolResult(call, ResultStatus.CANCELLED, speech="Okay, I won't.")


def _render(template: str, arguments: Mapping[str, Any]) -> str:
    try:
        return template.format(**arguments)
    except (KeyError, IndexError, ValueError):
        return "Done."
