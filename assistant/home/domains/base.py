"""What every Home Assistant domain module shares: the command, the state readers, the
conversions used in both directions, and the ``Domain`` base class.

A domain module (``light.py``, ``cover.py``, ...) is Home Assistant's ``mqtt/<domain>.py``
for this assistant: the schema of its discovery config (``validate``), how state messages
are read (``readers``), how each intent is encoded into MQTT publishes (``commands``), the
optimistic state after a command, and what it can do (``capabilities``). Every value that
is converted (percent <-> device range, brightness, kelvin <-> mireds) goes through one
helper here that has both directions, as HA's util/percentage.py and util/color.py do, so
what is sent and what is read back cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.templates import render_command, render_value
from assistant.text import clean_state

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

_LOGGER = logging.getLogger("assistant.home.inventory")

Reader = Callable[["Entity", str], dict[str, Any]]
"""(entity, payload text) -> state updates (``state`` and attributes)."""

PAYLOAD_NONE = "None"
"""Home Assistant's payload for "unknown" in state topics."""


@dataclass(frozen=True)
class Command:
    """One MQTT publish for one entity."""

    entity: Entity
    topic: str
    payload: str
    verb: str
    """Past-tense verb for the reply ("turned on", "opened")."""
    qos: int = 0
    retain: bool = False
    optimistic: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """State to record after sending when the entity reports no state of its own (HA's
    optimistic mode): ``state`` and attributes."""


# --------------------------------------------------------------------------- ranges


def states_in_range(low: float, high: float) -> float:
    """How many states ``low..high`` holds (HA's util/scaling.py)."""
    return high - low + 1


def percentage_to_ranged(low: float, high: float, percentage: float) -> float:
    """1..100 percent onto ``low..high`` (HA's percentage_to_ranged_value)."""
    return percentage * states_in_range(low, high) / 100 + (low - 1)


def ranged_to_percentage(low: float, high: float, value: float) -> int:
    """``low..high`` back onto 1..100 (HA's ranged_value_to_percentage, integer division)."""
    return int((value - (low - 1)) * 100 // states_in_range(low, high))


@dataclass(frozen=True)
class SpeedRange:
    """A fan's speed_range_min..max: both directions of the percent conversion."""

    low: int
    high: int

    def to_device(self, percentage: int) -> int:
        """What HA publishes for a percentage (ceil of the ranged value)."""
        return math.ceil(percentage_to_ranged(self.low, self.high, percentage))

    def to_percent(self, raw: float) -> int | None:
        """What HA reads back from a device speed (None when out of range)."""
        percentage = ranged_to_percentage(self.low, self.high, raw)
        return percentage if 0 <= percentage <= 100 else None


@dataclass(frozen=True)
class PositionRange:
    """A cover's position_closed..position_open (or tilt_min..tilt_max)."""

    closed: int
    opened: int

    def to_device(self, percentage: int) -> int:
        """The device position for a percentage (HA rounds the ranged value)."""
        return round(percentage_to_ranged(self.closed + 1, self.opened, percentage))

    def to_percent(self, raw: float) -> int:
        """The percentage of a device position, 0..100."""
        if self.opened == self.closed:
            return 0
        return min(100, max(0, ranged_to_percentage(self.closed + 1, self.opened, raw)))


@dataclass(frozen=True)
class BrightnessScale:
    """A light's brightness_scale: percent <-> HA's 0..255 <-> the device's 0..scale."""

    scale: int = 255

    @staticmethod
    def percent_to_ha(percentage: int) -> int:
        """brightness_pct -> HA brightness (HA's light service: round(pct * 255 / 100))."""
        return round(percentage * 255 / 100)

    def to_device(self, percentage: int) -> int:
        """The device brightness for a percentage (never rounded down to 0)."""
        ha = self.percent_to_ha(percentage)
        return max(1, min(self.scale, round(ha / 255 * self.scale)))

    def to_percent(self, raw: float) -> int:
        """The percentage of a device brightness, 0..100 (through HA's 0..255 as HA reads it)."""
        ha = min(255, round(raw / self.scale * 255))
        return max(0, min(100, round(ha * 100 / 255)))


def kelvin_to_mired(kelvin: float) -> int:
    """HA's color_temperature_kelvin_to_mired (floor)."""
    return math.floor(1_000_000 / kelvin)


def mired_to_kelvin(mired: float) -> int:
    """HA's color_temperature_mired_to_kelvin (floor)."""
    return math.floor(1_000_000 / mired)


# --------------------------------------------------------------------------- helpers


def number(value: str | None) -> float | None:
    """A finite float from text, else None."""
    if value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def text_state(value: str | None) -> str | None:
    """A state as clean text, None when empty or unknown."""
    if value is None or value == PAYLOAD_NONE:
        return None
    return clean_state(value) or None


def on_off(entity: Entity, value: str | None) -> str | None:
    """``on`` / ``off`` from a state payload (state_on/off, else payload_on/off)."""
    if value is None:
        return None
    cfg = entity.config
    on = cfg.get("state_on", cfg.get("payload_on", "ON"))
    off = cfg.get("state_off", cfg.get("payload_off", "OFF"))
    if value == on:
        return "on"
    if value == off:
        return "off"
    if value.lower() in ("on", "off"):
        return value.lower()
    return None


def attr_reader(
    attribute: str, template_key: str | None, convert: Callable[[Entity, str | None], Any]
) -> Reader:
    """A reader that renders ``template_key`` and converts the result into one attribute."""

    def read(entity: Entity, text: str) -> dict[str, Any]:
        template = entity.config.get(template_key) if template_key else None
        value = render_value(template, text)
        if value is None or value == "":
            return {}
        return {attribute: convert(entity, value)}

    return read


def cmd_template(entity: Entity, key: str, value: Any, **variables: Any) -> str:
    """Render ``entity.config[key]`` (a *_command_template) with HA's variables, or the value
    itself as text when there is no template. A template that fails refuses the command."""
    template = entity.config.get(key)
    if not isinstance(template, str):
        return payload_text(value)
    rendered = render_command(
        template, value, {"entity_id": entity.entity_id, "name": entity.name, **variables}
    )
    if rendered is None:
        raise ToolError(f"The {entity.spoken} has a command template I can't use.", code="unsupported")
    return rendered


def finite_json(entity: Entity, text: str) -> Any:
    """JSON where a number that does not fit (1e400, a 5000-digit integer) is None, not inf or
    an error (logged once per message); None when the text is not JSON."""
    overflowed = False

    def big_float(raw: str) -> float | None:
        nonlocal overflowed
        value = float(raw)
        if math.isfinite(value):
            return value
        overflowed = True
        return None

    def big_int(raw: str) -> int | None:
        nonlocal overflowed
        if len(raw) <= 20:
            return int(raw)
        overflowed = True
        return None

    def constant(_raw: str) -> None:  # NaN, Infinity, -Infinity
        nonlocal overflowed
        overflowed = True

    try:
        data = json.loads(text, parse_float=big_float, parse_int=big_int, parse_constant=constant)
    except (ValueError, RecursionError):
        return None
    if overflowed:
        _LOGGER.warning("state for %s: a number too large to use is ignored; the rest is kept", entity.key)
    return data


def payload_text(value: Any) -> str:
    """How HA turns a value into a payload: str(), so 21.0 stays "21.0"."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


class Domain:
    """One Home Assistant MQTT platform. Subclasses override what they support."""

    name = ""
    required: tuple[str, ...] = ()
    """Config keys without which HA refuses the entity."""
    device_classes: Mapping[str, str] = {}
    """Valid device classes -> HA's English name of each (used when the config has no name)."""
    any_device_class = False
    """True when HA accepts any device class text for this domain."""
    intents: tuple[str, ...] = ()
    """The intents this domain acts on (HassGetState is added for every domain)."""
    number_keys: tuple[str, ...] = ()
    """Config keys HA coerces to float (``"7"`` is 7.0)."""

    def validate(self, cfg: dict[str, Any]) -> None:
        """Raise ValueError where HA's schema refuses the config; coerce what HA coerces."""
        for key in self.required:
            if key not in cfg:
                raise ValueError(f"a {self.name} needs {key}")
        for key in self.number_keys:
            if key in cfg:
                cfg[key] = coerce_float(cfg[key], key)
        dc = cfg.get("device_class")
        if (
            dc is not None
            and not self.any_device_class
            and (not isinstance(dc, str) or dc.lower() not in self.device_classes)
        ):
            raise ValueError(f"device_class {str(dc)[:40]!r} is not a {self.name} device class")

    def class_name(self, device_class: str | None) -> str | None:
        """HA's name of an entity that has a device class and no name of its own."""
        return self.device_classes.get(device_class or "") or None

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        """(topic, reader) pairs that keep the entity's state current."""
        topic = entity.config.get("state_topic")
        return [(topic, self.read_state)] if isinstance(topic, str) else []

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        """The main state topic: value_template, then the domain's reading."""
        cfg = entity.config
        value = render_value(cfg.get("state_value_template") or cfg.get("value_template"), text)
        return {"state": text_state(value)}

    def usable(self, intent: str, entity: Entity) -> bool:
        """True when ``intent`` can do something on ``entity``."""
        return intent in self.intents

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        """The publishes of one intent on one entity (``state``: what is tracked now, state and
        attributes); ToolError when it can't be done."""
        raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        """What the entity can do, as ``assistant home`` shows it (and the conformance test
        compares with HA's): e.g. {"dim": True, "color_temp": False}."""
        return {}

    def is_on(self, state: str | None) -> bool:
        """For HassToggle: whether the tracked state counts as on."""
        return state == "on"


def coerce_float(value: Any, key: str) -> float | int:
    """vol.Coerce(float): numbers and numeric text; anything else refuses the config."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value
    if isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            pass
        else:
            if math.isfinite(result):
                return int(result) if result.is_integer() and "." not in value else result
    raise ValueError(f"{key} must be a number, got {value!r}")


def command(entity: Entity, topic_key: str, payload: str, verb: str, **optimistic: Any) -> Command:
    """A Command to ``entity.config[topic_key]`` with the entity's qos/retain; the optimistic
    state applies when the entity has no state topic."""
    cfg = entity.config
    topic = cfg.get(topic_key)
    if not isinstance(topic, str):
        raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")
    retain = cfg.get("retain") if isinstance(cfg.get("retain"), bool) else False
    return Command(entity, topic, payload, verb, int(cfg.get("qos", 0)), bool(retain), optimistic)


def int_arg(args: Mapping[str, Any], label: str, low: int, high: int) -> int:
    """A whole-number argument within bounds, else ToolError."""
    if label not in args or args[label] is None:
        raise ToolError(f"Which {label}?", code="missing_value")
    return int_value(args[label], label, low, high)


def int_value(value: Any, label: str, low: int, high: int) -> int:
    """``value`` as a whole number within bounds, else ToolError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ToolError(f"{label} must be a number", code="wrong_type")
    result = round(value)
    if not low <= result <= high:
        raise ToolError(f"{label} must be between {low} and {high}", code="out_of_range")
    return int(result)


def fmt_number(value: float) -> str:
    """21.0 -> "21", 21.5 -> "21.5" (for speech)."""
    if math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}".rstrip("0").rstrip(".")


def choice_arg(entity: Entity, args: Mapping[str, Any], label: str, options: list[str], what: str) -> str:
    """A text argument that must be one of ``options`` (compared case-insensitively, spaces as _)."""
    value = args.get(label)
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"Which {what}?", code="missing_value")
    wanted = value.strip().lower().replace(" ", "_")
    for option in options:
        if option.lower().replace(" ", "_") == wanted:
            return option
    said = ", ".join(o.replace("_", " ") for o in options[:8])
    raise ToolError(f"The {entity.spoken} can be set to {said}.", code="out_of_range")


def on_off_command(
    entity: Entity, on: bool, topic_key: str = "command_topic", template_key: str = "command_template",
    **optimistic: Any,
) -> Command:
    """HassTurnOn / HassTurnOff as HA's MQTT entities send it: ``payload_on`` / ``payload_off``
    (default ON / OFF) through the entity's command template."""
    payload = str(entity.config.get("payload_on" if on else "payload_off", "ON" if on else "OFF"))
    return command(entity, topic_key, cmd_template(entity, template_key, payload),
                   "turned on" if on else "turned off", **optimistic)


def temperature_command(entity: Entity, args: Mapping[str, Any], low: float, high: float) -> Command:
    """HassClimateSetTemperature within ``low``..``high``, through ``temperature_command_template``."""
    value = args.get("temperature")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ToolError("Which temperature?", code="missing_value")
    if not low <= float(value) <= high:
        raise ToolError(
            f"The {entity.spoken} can be set from {fmt_number(low)} to {fmt_number(high)} degrees.",
            code="out_of_range",
        )
    payload = cmd_template(entity, "temperature_command_template", float(value))
    return command(entity, "temperature_command_topic", payload, f"set to {fmt_number(float(value))} degrees",
                   temperature=float(value))
