"""Home-control tools named after Home Assistant's intents, over the inventory and MQTT.

Schema contract (shared with the brains): every tool has optional string parameters
``name`` (enum of spoken entity names), ``area`` (enum of spoken areas) and ``domain``
(enum of domains present), plus its own value: HassLightSet.brightness (0..100) and
.color_temp (kelvin), HassSetPosition.position (0..100),
HassClimateSetTemperature.temperature, HassFanSetSpeed.percentage (0..100).

Handlers resolve name/area/domain against the inventory, build the exact command topic
and payload per domain (and light schema), publish through ``MqttClient`` and return
``{"speech": ..., "entities": [...], "published": [...]}`` (the reply template is
``{speech}``). Sensitive commands are flagged for the router's confirmation and never
queued. Discovery is untrusted, so sensitivity does not rest on the domain and device class
alone: unlocking, disarming, opening a garage/door/gate cover; any command whose topic is
the command topic of a lock, an alarm panel or such a cover (unless it is that entity's own
harmless payload: LOCK, ARM_*, CLOSE); any payload that says UNLOCK, DISARM or (outside
covers) OPEN; words in the name (door, gate, garage, lock, alarm, ...); ``home.sensitive_extra``.
When unsure, it asks. The question names the one action asked: "Do you want me to unlock
the front door?".
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from assistant.config import Secret
from assistant.errors import HomeError, ToolError
from assistant.home.client import MqttClient, PublishOutcome, PublishStatus
from assistant.home.discovery import Entity
from assistant.home.domains import REGISTRY
from assistant.home.domains.base import Command, fmt_number
from assistant.home.inventory import Inventory, Match, normalize, singular
from assistant.tools.base import Tool
from assistant.tools.context import current_site

_LOGGER = logging.getLogger(__name__)

_TOOL_ORDER = (
    "HassTurnOn",
    "HassTurnOff",
    "HassToggle",
    "HassLightSet",
    "HassSetPosition",
    "HassClimateSetTemperature",
    "HassFanSetSpeed",
    "HassGetState",
    "HassClimateGetTemperature",
    "HassClimateSetMode",
    "HassClimateSetPreset",
    "HassClimateSetFanMode",
    "HassFanSetPreset",
    "HassHumidifierSetpoint",
    "HassHumidifierMode",
    "HassSetValue",
    "HassSelectOption",
    "HassPress",
    "HassVacuumStart",
    "HassVacuumReturnToBase",
    "HassLawnMowerStartMowing",
    "HassLawnMowerDock",
)
_NO_STATE = frozenset({"scene", "button"})


def _tool_domains() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for tool in _TOOL_ORDER:
        if tool == "HassGetState":
            out[tool] = tuple(d for d in REGISTRY if d not in _NO_STATE)
        elif tool == "HassClimateGetTemperature":
            out[tool] = ("climate", "sensor")
        else:
            out[tool] = tuple(d for d, module in REGISTRY.items() if tool in module.intents)
    return out


TOOL_DOMAINS: Mapping[str, tuple[str, ...]] = _tool_domains()
"""Which domains each tool acts on."""

_DESCRIPTIONS = {
    "HassTurnOn": "Turn on a device: lights, switches, fans; also opens covers, locks locks, activates "
    "scenes and presses buttons. Give a name, or an area and/or a domain.",
    "HassTurnOff": "Turn off a device: lights, switches, fans; also closes covers and unlocks locks. "
    "Give a name, or an area and/or a domain.",
    "HassToggle": "Toggle a device between on and off (or open and closed).",
    "HassLightSet": "Set the brightness (percent) and/or color temperature (kelvin) of lights.",
    "HassSetPosition": "Set the position of a cover, blind or shade in percent (0 closed, 100 open).",
    "HassClimateSetTemperature": "Set the target temperature of a thermostat.",
    "HassFanSetSpeed": "Set the speed of a fan in percent.",
    "HassGetState": "Answer a question about the state of a device or sensor.",
    "HassClimateGetTemperature": "Tell the current temperature (of a thermostat or temperature sensor).",
    "HassClimateSetMode": "Set the HVAC mode of a thermostat (heat, cool, auto, off, ...).",
    "HassClimateSetPreset": "Set the preset of a thermostat (eco, comfort, away, ...).",
    "HassClimateSetFanMode": "Set the fan mode of a thermostat or air conditioner.",
    "HassFanSetPreset": "Set the preset mode of a fan.",
    "HassHumidifierSetpoint": "Set the target humidity of a humidifier in percent.",
    "HassHumidifierMode": "Set the mode of a humidifier.",
    "HassSetValue": "Set a number setting of a device to a value.",
    "HassSelectOption": "Choose one of the options of a device setting.",
    "HassPress": "Press a button.",
    "HassVacuumStart": "Start a vacuum cleaner.",
    "HassVacuumReturnToBase": "Send a vacuum cleaner back to its dock.",
    "HassLawnMowerStartMowing": "Start a lawn mower mowing.",
    "HassLawnMowerDock": "Send a lawn mower back to its dock.",
}

_SENSITIVE_COVER_CLASSES = frozenset({"garage", "door", "gate"})
_ENTRY_WORDS = frozenset(
    {"door", "gate", "garage", "entry", "entrance", "barrier", "shed", "porch", "hatch", "portal"}
)
"""Name words of things that let people in: opening or turning them on needs a yes."""
_LOCK_WORDS = frozenset({"lock", "deadbolt", "latch", "bolt", "padlock", "doorlock", "keypad", "safe"})
"""Name words of locking things: any change (either way is a guess for a switch) needs a yes."""
_ALARM_WORDS = frozenset({"alarm", "security", "burglar", "intruder"})
"""Name words of alarm things: turning them off needs a yes."""
_NAME_RULE_DOMAINS = frozenset({"switch", "button", "scene", "cover", "number", "select"})
"""Domains whose names are read for those words (a "garage light" or "hall fan" stays plain)."""
_PAYLOAD_WORDS = {"UNLOCK": "unlock", "UNLATCH": "unlock", "DISARM": "disarm", "OPEN": "open"}
"""Command payload words that need a yes whatever the domain claims (OPEN: outside covers)."""
_ARM_DEFAULTS = {
    "payload_arm_away": "ARM_AWAY",
    "payload_arm_home": "ARM_HOME",
    "payload_arm_night": "ARM_NIGHT",
    "payload_arm_vacation": "ARM_VACATION",
    "payload_arm_custom_bypass": "ARM_CUSTOM_BYPASS",
}
_IMPERATIVE = {
    "turned on": "turn on",
    "turned off": "turn off",
    "opened": "open",
    "closed": "close",
    "locked": "lock",
    "unlocked": "unlock",
    "armed": "arm",
    "disarmed": "disarm",
    "activated": "activate",
    "pressed": "press",
}
_STATIC_QUESTION = {
    "HassTurnOn": "Do you want me to turn on the {name}?",
    "HassTurnOff": "Do you want me to turn off the {name}?",
    "HassToggle": "Do you want me to toggle the {name}?",
    "HassSetPosition": "Do you want me to move the {name}?",
}
_CAN_SWEEP = frozenset({"light", "switch"})
"""Domains where a call matching several entities acts on all of them."""

ChangeCallback = Callable[[list[Tool]], None]

_CHOICES = {
    # tool -> (argument, config key of the options, default options, description)
    "HassClimateSetMode": ("mode", "modes", ["auto", "off", "cool", "heat", "dry", "fan_only"], "HVAC mode."),
    "HassClimateSetPreset": ("preset", "preset_modes", [], "Preset."),
    "HassClimateSetFanMode": ("fan_mode", "fan_modes", ["auto", "low", "medium", "high"], "Fan mode."),
    "HassFanSetPreset": ("preset", "preset_modes", [], "Preset mode."),
    "HassHumidifierMode": ("mode", "modes", [], "Mode."),
    "HassSelectOption": ("option", "options", [], "The option to choose."),
}


def _choice_params(tool_name: str, usable: Sequence[Entity]) -> tuple[dict[str, Any], list[str]]:
    """The value parameter of a tool whose value is one of the entities' options."""
    if tool_name == "HassSetValue":
        return {"value": {"type": "number", "description": "The value to set."}}, ["value"]
    if tool_name == "HassHumidifierSetpoint":
        return {"humidity": {"type": "integer", "minimum": 0, "maximum": 100,
                             "description": "Target humidity in percent."}}, ["humidity"]
    if tool_name not in _CHOICES:
        return {}, []
    arg, key, default, description = _CHOICES[tool_name]
    options = sorted({str(o) for e in usable for o in e.config.get(key, default)})
    schema: dict[str, Any] = {"type": "string", "description": description}
    if options:
        schema["enum"] = options
    return {arg: schema}, [arg]


def _name_words(entity: Entity) -> set[str]:
    words = set(entity.spoken.split())
    return words | {singular(w) for w in words}


def _entry_cover(entity: Entity) -> bool:
    """A cover that lets people in: garage/door/gate class, or such a word in its name."""
    if entity.device_class in _SENSITIVE_COVER_CLASSES:
        return True
    return bool(_name_words(entity) & (_ENTRY_WORDS | _LOCK_WORDS))


_fmt_number = fmt_number


_READ_TOOLS = frozenset({"HassGetState", "HassClimateGetTemperature"})
"""Tools that only read: they answer for every entity meant."""


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _the(entity: Entity) -> str:
    return f"the {entity.spoken}"


class HomeControl:
    """Builds the home tools from the inventory and executes them over MQTT."""

    def __init__(
        self,
        inventory: Inventory,
        client: MqttClient | None = None,
        *,
        sensitive_extra: Iterable[str] = (),
        aliases: Mapping[str, str] | None = None,
        area: str | None = None,
        alarm_code: Secret | None = None,
        site_areas: Mapping[str, str | None] | None = None,
    ) -> None:
        """``aliases``: spoken alias -> entity id ("light.kitchen_lamp") or spoken name (``home.aliases``);
        ``area``: the area this assistant stands in (``home.area``), for commands that name none;
        ``site_areas``: site -> area of the other sites whose calls the router runs (each wyoming
        satellite's ``area``, None when it has none): a call from one of them acts in its area,
        a call from any other site (this box's own) in ``area``."""
        self.inventory = inventory
        self.client = client
        self._alarm_code = alarm_code
        self.sensitive_extra = frozenset(s.lower() for s in sensitive_extra)
        self.aliases = {
            normalize(k): v.strip() for k, v in (aliases or {}).items() if normalize(k) and v.strip()
        }
        self.area = normalize(area) or None
        self.site_areas = {site: normalize(a) or None for site, a in (site_areas or {}).items()}
        self._listeners: list[ChangeCallback] = []
        self.dry_run: list[tuple[str, str]] = []
        """(topic, payload) of commands that had no broker to go to (mqtt.host unset)."""
        self.outcomes: list[PublishOutcome] = []
        """Late outcomes of queued commands (sent after reconnect, or dropped as stale)."""
        inventory.add_listener(self._inventory_changed)

    # ------------------------------------------------------------------ tools

    def add_listener(self, callback: ChangeCallback) -> None:
        """Call ``callback(tools)`` whenever the tool set changes (inventory changed)."""
        self._listeners.append(callback)

    def _inventory_changed(self) -> None:
        tools = self.tools()
        for callback in list(self._listeners):
            try:
                callback(tools)
            except Exception:
                _LOGGER.exception("home tools change callback failed")

    def tools(self) -> list[Tool]:
        """The home tools for the current inventory (a tool with nothing to act on is left out)."""
        entities = self.inventory.entities()
        tools: list[Tool] = []
        value_params: dict[str, tuple[dict[str, Any], list[str]]] = {
            "HassLightSet": (
                {
                    "brightness": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "Brightness in percent.",
                    },
                    "color_temp": {
                        "type": "integer",
                        "minimum": 1000,
                        "maximum": 12000,
                        "description": "Color temperature in kelvin.",
                    },
                },
                [],
            ),
            "HassSetPosition": (
                {
                    "position": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "Position in percent (0 closed, 100 open).",
                    }
                },
                ["position"],
            ),
            "HassClimateSetTemperature": (
                {"temperature": {"type": "number", "description": "Target temperature in degrees."}},
                ["temperature"],
            ),
            "HassFanSetSpeed": (
                {
                    "percentage": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 100,
                        "description": "Fan speed in percent.",
                    }
                },
                ["percentage"],
            ),
        }
        for tool_name, domains in TOOL_DOMAINS.items():
            usable = [e for e in entities if e.domain in domains and self._usable(tool_name, e)]
            if not usable:
                continue
            props: dict[str, Any] = {}
            areas = sorted({e.area for e in usable if e.area})
            present = sorted({e.domain for e in usable})
            domain_of: dict[str, str] = {}
            for entity in sorted(usable, key=lambda e: e.key):
                for said in (*entity.names, *self._settings_aliases(entity)):
                    domain_of.setdefault(said, entity.domain)
            names = sorted(domain_of)
            # the brains read each name's domain from here instead of guessing it from words
            props["name"] = {"type": "string", "description": "Name of the device, as spoken.", "enum": names,
                             "x-entity-domains": domain_of}
            if areas:
                props["area"] = {"type": "string", "description": "Area (room).", "enum": areas}
                here = self._flagged_area(areas)
                if here is not None:
                    # the brains may leave the area out: the handler acts in the area of the call's site
                    props["area"]["x-satellite-area"] = here
            props["domain"] = {"type": "string", "description": "Kind of device.", "enum": present}
            extra, required = value_params.get(tool_name) or _choice_params(tool_name, usable)
            props.update(extra)
            parameters = {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }
            tools.append(
                Tool(
                    name=tool_name,
                    description=_DESCRIPTIONS[tool_name],
                    parameters=parameters,
                    handler=self._handler(tool_name),
                    reply="{speech}",
                    sensitive=self._rule(tool_name),
                    confirm=_STATIC_QUESTION.get(tool_name, "Do you want me to change the {name}?"),
                    ask=self._ask(tool_name),
                    source="home",
                )
            )
        return tools

    @staticmethod
    def _usable(tool_name: str, entity: Entity) -> bool:
        if tool_name == "HassGetState":
            return True
        if tool_name == "HassClimateGetTemperature":
            return entity.domain == "climate" or entity.device_class == "temperature"
        module = REGISTRY.get(entity.domain)
        return module is not None and module.usable(tool_name, entity)

    def _sensitive_verb(
        self, tool_name: str, entity: Entity, args: Mapping[str, Any] | None = None
    ) -> str | None:
        """Why ``tool_name`` on ``entity`` (with ``args``) needs confirmation ("unlock", "open",
        "disarm", ...), else None."""
        if tool_name in ("HassGetState", "HassClimateGetTemperature"):
            return None
        domain = entity.domain
        opening = tool_name in ("HassTurnOn", "HassToggle", "HassSetPosition")
        disarming = tool_name in ("HassTurnOff", "HassToggle")
        if domain == "lock" and disarming:
            return "unlock"
        if domain == "cover" and _entry_cover(entity) and opening:
            return "open"
        if domain == "alarm_control_panel" and disarming:
            return "disarm"
        if domain in _NAME_RULE_DOMAINS:
            words = _name_words(entity)
            if words & _LOCK_WORDS and domain != "cover":
                return "unlock"
            if words & _ENTRY_WORDS and opening:
                return "open"
            if words & _ALARM_WORDS and disarming:
                return "disarm"
        verb = self._sensitive_command(tool_name, entity, args or {})
        if verb is not None:
            return verb
        ids = {entity.entity_id, entity.spoken, (entity.unique_id or "").lower(), entity.key.lower()}
        if self.sensitive_extra & ids:
            return {"HassTurnOff": "turn off", "HassToggle": "toggle"}.get(tool_name, "operate")
        return None

    def _sensitive_command(self, tool_name: str, entity: Entity, args: Mapping[str, Any]) -> str | None:
        """Sensitivity read from what would actually be published: the topic and the payload."""
        try:
            commands = self._commands(tool_name, entity, args)
        except ToolError:
            return None  # nothing would be sent (or a value is missing): the call is refused anyway
        guarded: dict[str, tuple[frozenset[str], str]] | None = None
        for command in commands:
            words = set(re.findall(r"[A-Z]+", command.payload.upper()))
            for word, verb in _PAYLOAD_WORDS.items():
                if word in words and not (word == "OPEN" and entity.domain == "cover"):
                    return verb
            if guarded is None:
                guarded = self._guarded_topics()
            rule = guarded.get(command.topic)
            if rule is not None and command.payload not in rule[0]:
                return rule[1]
        return None

    def _guarded_topics(self) -> dict[str, tuple[frozenset[str], str]]:
        """Command topics of locks, alarm panels and entry covers: (their harmless payloads, verb)."""
        out: dict[str, tuple[frozenset[str], str]] = {}

        def guard(topic: Any, safe: set[str], verb: str) -> None:
            if not isinstance(topic, str):
                return
            known = out.get(topic)
            out[topic] = (frozenset(safe) & known[0] if known else frozenset(safe), verb)

        for entity in self.inventory.entities():
            cfg = entity.config
            if entity.domain == "lock":
                guard(cfg.get("command_topic"), {str(cfg.get("payload_lock", "LOCK"))}, "unlock")
            elif entity.domain == "alarm_control_panel":
                arm = {str(cfg.get(k, v)) for k, v in _ARM_DEFAULTS.items()}
                guard(cfg.get("command_topic"), arm, "disarm")
            elif entity.domain == "cover" and _entry_cover(entity):
                close = {str(cfg.get("payload_close", "CLOSE")), str(cfg.get("payload_stop", "STOP"))}
                guard(cfg.get("command_topic"), close, "open")
                guard(cfg.get("set_position_topic"), {str(cfg.get("position_closed", 0))}, "open")
        return out

    def _rule(self, tool_name: str) -> Callable[[Mapping[str, Any]], bool]:
        def rule(arguments: Mapping[str, Any]) -> bool:
            try:
                targets = self._resolve(tool_name, arguments)
            except ToolError:
                return False  # nothing to act on: the handler refuses anyway
            return bool(self._sensitive_targets(tool_name, targets, arguments))

        return rule

    def _sensitive_targets(
        self, tool_name: str, targets: list[Entity], arguments: Mapping[str, Any]
    ) -> list[Entity]:
        out = []
        for entity in targets:
            verb = self._sensitive_verb(tool_name, entity, arguments)
            if verb is None:
                continue
            if (
                tool_name == "HassSetPosition"
                and arguments.get("position") == 0
                and verb == "open"
                and self._sensitive_command(tool_name, entity, arguments) is None
            ):
                continue  # closing a door needs no yes, unless the closed position's payload is suspect
            out.append(entity)
        return out

    def _ask(self, tool_name: str) -> Callable[[Mapping[str, Any]], str | None]:
        """The confirmation question of one call: the action that will be done, on what."""

        def ask(arguments: Mapping[str, Any]) -> str | None:
            try:
                targets = self._resolve(tool_name, arguments)
            except ToolError:
                return None
            asked = self._sensitive_targets(tool_name, targets, arguments) or targets
            actions: list[str] = []
            for entity in asked[:4]:
                action = self._action_phrase(tool_name, entity, arguments)
                if action not in actions:
                    actions.append(action)
            if len(asked) > 4:
                actions.append(f"{len(asked) - 4} more")
            return f"Do you want me to {_join(actions)}?" if actions else None

        return ask

    def _action_phrase(self, tool_name: str, entity: Entity, arguments: Mapping[str, Any]) -> str:
        """ "unlock the front door", "open the garage door to 40 percent", from the real command."""
        try:
            commands = self._commands(tool_name, entity, arguments)
        except ToolError:
            commands = []
        verb = commands[-1].verb if commands else ""
        if verb.startswith("set to "):
            what = verb[len("set to ") :]
            if tool_name == "HassSetPosition" and entity.domain == "cover":
                return f"open {_the(entity)} to {what}"
            return f"set {_the(entity)} to {what}"
        imperative = _IMPERATIVE.get(verb)
        if imperative is None:
            imperative = {"HassTurnOff": "turn off", "HassToggle": "toggle"}.get(tool_name, "turn on")
        return f"{imperative} {_the(entity)}"

    def _handler(self, tool_name: str) -> Callable[..., Any]:
        def handler(**arguments: Any) -> Any:
            return self.run(tool_name, arguments)

        handler.__name__ = tool_name
        return handler

    # ------------------------------------------------------------------ resolution

    def _settings_aliases(self, entity: Entity) -> list[str]:
        """The ``home.aliases`` that name ``entity`` (by entity id or by one of its names)."""
        return [alias for alias, target in self.aliases.items()
                if target == entity.entity_id or normalize(target) in entity.names]

    def area_of(self, site: str | None) -> str | None:
        """The area a call from ``site`` acts in when it names none (its satellite's, else ``area``)."""
        if site is not None and site in self.site_areas:
            return self.site_areas[site]
        return self.area

    def _flagged_area(self, areas: Sequence[str]) -> str | None:
        """The area the tools' schema names as the assistant's own (``x-satellite-area``): this
        box's when the home has it, else the first satellite area it has; None without any."""
        if self.area in areas:
            return self.area
        return next((a for a in sorted(a for a in self.site_areas.values() if a) if a in areas), None)

    def _resolve(self, tool_name: str, arguments: Mapping[str, Any]) -> list[Entity]:
        here = self.area_of(current_site())
        name, area, domain = (arguments.get(k) for k in ("name", "area", "domain"))
        for label, value in (("name", name), ("area", area), ("domain", domain)):
            if value is not None and not isinstance(value, str):
                raise ToolError(f"{label} must be text", code="wrong_type")
        domains = TOOL_DOMAINS[tool_name]
        if name and normalize(name) in self.aliases:
            named = [e for e in self.inventory.entities()
                     if e.domain in domains and normalize(name) in self._settings_aliases(e)]
            match = Match(tuple(named), None, None, by_name=True)
        elif not (name or area or domain):
            match = self._unnamed(tool_name, here)
        else:
            match = self.inventory.match(name, area, domain, domains=domains)
            if not name and not area and here and not match.area:
                # "turn off the lights": the lights of the area this assistant stands in, when it has any
                local = Match(tuple(e for e in match.entities if e.area == here), here, match.domain)
                match = local if local.entities else match
        hits = [e for e in match.entities if self._usable(tool_name, e)]
        if not hits:
            raise ToolError(self._not_found(name, area, domain), code="no_match")
        if len(hits) > 1 and not (name or area or match.area) and here is None \
                and (self.area or any(self.site_areas.values())) and tool_name not in _READ_TOOLS:
            # another site's area lets the phrase grammar leave the area out: from a site without
            # one, "turn on the lights" asks where rather than sweeping the whole home
            raise ToolError("Which area do you mean?", code="no_target")
        if len(hits) > 1 and match.by_name and not area and here:
            here_hits = [e for e in hits if e.area == here]
            hits = here_hits if len(here_hits) == 1 else hits  # the one of that name in this room
        if len(hits) == 1 or tool_name in _READ_TOOLS:
            return hits
        sweep = tool_name in ("HassTurnOn", "HassTurnOff", "HassToggle", "HassLightSet")
        if (
            sweep
            and all(e.domain in _CAN_SWEEP for e in hits)
            and (match.area or not match.by_name)
            and not any(self._sensitive_verb(tool_name, e, arguments) for e in hits)
        ):
            return hits
        listing = _join(
            [_the(e) + (f" in the {e.area}" if e.area and not match.area else "") for e in hits[:5]]
        )
        raise ToolError(f"Which one do you mean: {listing}?", code="ambiguous")

    def _unnamed(self, tool_name: str, area: str | None) -> Match:
        """What a call with no name, area or domain means ("set the temperature to 21"): the one
        entity it fits in ``area`` (where the call's site stands), else the one entity in the home
        it fits; otherwise the question which one (a call without a target never sweeps)."""
        fits = [e for e in self.inventory.entities() if e.domain in TOOL_DOMAINS[tool_name]
                and self._usable(tool_name, e)]
        here = [e for e in fits if area and e.area == area]
        if len(here) == 1:
            return Match(tuple(here), area, None)
        if len(fits) == 1:
            return Match(tuple(fits), None, None)
        raise ToolError("Which device do you mean?", code="no_target")

    @staticmethod
    def _not_found(name: Any, area: Any, domain: Any) -> str:
        what = f"the {name}" if name else (f"any {domain}" if domain else "anything")
        where = f" in the {area}" if area else ""
        return f"I couldn't find {what}{where}."

    # ------------------------------------------------------------------ execution

    def run(self, tool_name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Execute one home tool call (validated arguments); raises ToolError with a code."""
        if tool_name not in TOOL_DOMAINS:
            raise ToolError(f"unknown home tool {tool_name}", code="unknown_tool")
        targets = self._resolve(tool_name, arguments)
        if tool_name == "HassGetState":
            return self._answer_state(targets)
        if tool_name == "HassClimateGetTemperature":
            return self._answer_temperature(targets)
        commands: list[Command] = []
        for entity in targets:
            commands.extend(self._commands(tool_name, entity, arguments))
        sensitive = any(self._sensitive_verb(tool_name, e, arguments) for e in targets)
        return self._publish(commands, sensitive=sensitive)

    def _commands(self, tool_name: str, entity: Entity, args: Mapping[str, Any]) -> list[Command]:
        """The publishes of one call on one entity: the entity's domain module encodes them."""
        module = REGISTRY.get(entity.domain)
        if module is None:
            raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")
        current = self.inventory.state(entity)
        if tool_name == "HassToggle":
            tool_name = "HassTurnOff" if module.is_on(current.state) else "HassTurnOn"
        if tool_name not in module.intents:
            raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")
        state = {"state": current.state, **current.attributes}
        if entity.domain == "alarm_control_panel" and self._alarm_code is not None:
            args = {**args, "code": self._alarm_code.reveal()}  # never a tool argument: never logged
        return module.commands(tool_name, entity, args, state)

    def _publish(self, commands: list[Command], *, sensitive: bool) -> dict[str, Any]:
        published: list[dict[str, Any]] = []
        queued = False
        client = self.client
        for command in commands:
            if client is None or not client.enabled:
                self.dry_run.append((command.topic, command.payload))
                _LOGGER.info("no MQTT broker: would publish %s to %s", command.payload, command.topic)
                published.append({"topic": command.topic, "payload": command.payload, "status": "dry_run"})
                continue
            try:
                outcome = client.publish_command(
                    command.topic,
                    command.payload,
                    qos=command.qos,
                    retain=command.retain,
                    sensitive=sensitive,
                    on_outcome=self._late_outcome,
                )
            except HomeError as err:
                raise ToolError(
                    "I can't reach the home hub right now, so I did nothing.",
                    code=err.code,
                ) from err
            queued = queued or outcome.status is PublishStatus.QUEUED
            published.append(
                {"topic": command.topic, "payload": command.payload, "status": str(outcome.status)}
            )
            self._optimistic(command)
        freshness = client.settings.freshness_s if client is not None else 0.0
        speech = self._speech(
            commands, queued=queued, dry_run=client is None or not client.enabled, freshness_s=freshness
        )
        entities = sorted({c.entity.spoken for c in commands})
        return {"speech": speech, "entities": entities, "published": published, "queued": queued}

    def _late_outcome(self, outcome: PublishOutcome) -> None:
        self.outcomes.append(outcome)
        del self.outcomes[:-100]
        if outcome.status is PublishStatus.SENT:
            _LOGGER.info("a queued home command to %s was sent %.1f s late", outcome.topic, outcome.age_s)
            return
        reasons = {
            PublishStatus.DROPPED_STALE: "it was too old when the connection came back",
            PublishStatus.DROPPED_FULL: "the offline queue was full",
            PublishStatus.DROPPED_STOPPED: "the assistant stopped before the connection came back",
        }
        reason = reasons.get(outcome.status, str(outcome.status))
        _LOGGER.warning(
            "a queued home command to %s was dropped, never sent: %s (%.1f s old)",
            outcome.topic,
            reason,
            outcome.age_s,
        )
        client = self.client
        if client is None or not client.connected:
            return
        # Told to HA (and anyone listening) as an event, like the device's other events.
        event = {
            "event": "command_dropped",
            "site": client.site,
            "data": {"topic": outcome.topic, "reason": str(outcome.status), "age_s": round(outcome.age_s, 1)},
        }
        try:
            client.publish(
                f"{client.settings.base_topic}/{client.site}/event/command_dropped", json.dumps(event), qos=1
            )
        except HomeError as err:
            _LOGGER.debug("could not publish the command_dropped event: %s", err)

    def _optimistic(self, command: Command) -> None:
        """HA's optimistic mode: what a command implies is recorded for what no topic reports."""
        if not command.optimistic:
            return
        cfg = command.entity.config
        reported = {"state": "state_topic", "brightness": "brightness_state_topic",
                    "color_temp_kelvin": "color_temp_state_topic", "position": "position_topic",
                    "percentage": "percentage_state_topic", "preset_mode": "preset_mode_state_topic",
                    "mode": "mode_state_topic", "temperature": "temperature_state_topic",
                    "humidity": "target_humidity_state_topic", "fan_mode": "fan_mode_state_topic"}
        if cfg.get("schema") == "json":
            reported.update({"brightness": "state_topic", "color_temp_kelvin": "state_topic"})
        update = {k: v for k, v in command.optimistic.items()
                  if cfg.get("optimistic") is True or reported.get(k, "state_topic") not in cfg}
        if not update:
            return
        current = self.inventory.state(command.entity)
        state = update.pop("state", current.state)
        self.inventory.set_state(command.entity.key, state, **update)

    @staticmethod
    def _speech(commands: list[Command], *, queued: bool, dry_run: bool, freshness_s: float = 0.0) -> str:
        by_verb: dict[str, list[str]] = {}
        for command in commands:
            names = by_verb.setdefault(command.verb, [])
            if _the(command.entity) not in names:
                names.append(_the(command.entity))
        clauses = []
        for verb, names in by_verb.items():
            shown = names if len(names) <= 4 else [*names[:3], f"{len(names) - 3} more"]
            if verb.startswith("set to"):
                clauses.append(f"set {_join(shown)} to {verb[len('set to ') :]}")
            else:
                clauses.append(f"{verb} {_join(shown)}")
        text = _join(clauses)
        if dry_run:
            return f"I would have {text}, but no home connection is configured."
        if queued:
            # Honest: a command older than the freshness window is dropped, never fired late.
            return (
                f"The home hub is offline right now. I'll send that if the connection is back within "
                f"{_fmt_number(freshness_s)} seconds; otherwise I'll drop it."
            )
        return text[:1].upper() + text[1:] + "."

    # ------------------------------------------------------------------ questions

    def _answer_state(self, targets: list[Entity]) -> dict[str, Any]:
        sentences = [self._describe(e) for e in targets[:5]]
        return {
            "speech": " ".join(sentences),
            "entities": [e.spoken for e in targets[:5]],
            "states": {e.spoken: self.inventory.state(e).state for e in targets[:5]},
        }

    def _describe(self, entity: Entity) -> str:
        st = self.inventory.state(entity)
        value = st.state
        attrs = st.attributes
        the = _the(entity).capitalize()
        domain = entity.domain
        if domain == "climate":
            parts = []
            if isinstance(attrs.get("temperature"), float):
                parts.append(f"{the} is set to {_fmt_number(attrs['temperature'])} degrees")
            if isinstance(attrs.get("current_temperature"), float):
                parts.append(
                    f"it is {_fmt_number(attrs['current_temperature'])} degrees"
                    + (f" in the {entity.area}" if entity.area else "")
                )
            if attrs.get("mode"):
                parts.append(f"the mode is {attrs['mode']}")
            if not parts:
                return f"I don't know the state of {_the(entity)} yet."
            text = ", and ".join(parts)
            return text[:1].upper() + text[1:] + "."
        if value is None:
            return f"I don't know the state of {_the(entity)} yet."
        if domain == "sensor":
            unit = entity.config.get("unit_of_measurement")
            number = _number_text(value)
            if entity.device_class == "temperature" and number is not None:
                return (
                    f"It is {number} degrees in the {entity.area}."
                    if entity.area
                    else f"{the} is {number} degrees."
                )
            if entity.device_class == "humidity" and number is not None:
                return (
                    f"The humidity in the {entity.area} is {number} percent."
                    if entity.area
                    else f"{the} is {number} percent."
                )
            unit_text = f" {_unit_words(unit)}" if isinstance(unit, str) and unit else ""
            return f"{the} is {number if number is not None else value}{unit_text}."
        if domain == "binary_sensor":
            words = {
                "door": ("open", "closed"),
                "window": ("open", "closed"),
                "opening": ("open", "closed"),
                "garage_door": ("open", "closed"),
                "motion": ("detecting motion", "clear"),
                "occupancy": ("occupied", "clear"),
                "presence": ("home", "away"),
                "moisture": ("wet", "dry"),
                "smoke": ("detecting smoke", "clear"),
            }
            on_word, off_word = words.get(entity.device_class or "", ("on", "off"))
            return f"{the} is {on_word if value == 'on' else off_word if value == 'off' else value}."
        extra = ""
        if domain == "light" and value == "on" and isinstance(attrs.get("brightness"), int):
            extra = f" at {attrs['brightness']} percent"
        if domain == "cover" and isinstance(attrs.get("position"), int) and value not in ("closed",):
            extra = f" at {attrs['position']} percent"
        if domain == "fan" and value == "on" and isinstance(attrs.get("percentage"), int):
            extra = f" at {attrs['percentage']} percent"
        return f"{the} is {value.replace('_', ' ')}{extra}."

    def _answer_temperature(self, targets: list[Entity]) -> dict[str, Any]:
        for entity in targets:
            st = self.inventory.state(entity)
            if entity.domain == "climate":
                current = st.attributes.get("current_temperature")
                if isinstance(current, float):
                    return self._temperature_speech(entity, current)
            elif entity.device_class == "temperature" and st.state is not None:
                number = _number_text(st.state)
                if number is not None:
                    return self._temperature_speech(entity, float(st.state))
        names = _join([_the(e) for e in targets[:3]])
        return {
            "speech": f"I don't know the temperature of {names} yet.",
            "entities": [e.spoken for e in targets],
        }

    @staticmethod
    def _temperature_speech(entity: Entity, value: float) -> dict[str, Any]:
        where = f"in the {entity.area}" if entity.area else f"at {_the(entity)}"
        return {
            "speech": f"It is {_fmt_number(value)} degrees {where}.",
            "entities": [entity.spoken],
            "temperature": value,
        }


def _number_text(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return _fmt_number(number) if math.isfinite(number) else None


def _unit_words(unit: str) -> str:
    return {
        "°C": "degrees",
        "°F": "degrees",
        "%": "percent",
        "W": "watts",
        "kWh": "kilowatt hours",
        "V": "volts",
        "A": "amps",
        "lx": "lux",
        "ppm": "parts per million",
    }.get(unit, unit)


def _int_value(value: Any, label: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ToolError(f"{label} must be a number", code="wrong_type")
    number = round(value)
    if not low <= number <= high:
        raise ToolError(f"{label} must be between {low} and {high}", code="out_of_range")
    return int(number)


def _int_arg(args: Mapping[str, Any], label: str, low: int, high: int) -> int:
    if label not in args:
        raise ToolError(f"Which {label}?", code="missing_value")
    return _int_value(args[label], label, low, high)
