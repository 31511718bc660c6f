"""climate: HA's mqtt/climate.

Temperatures through ``temperature_command_topic`` (``temperature_command_template``, value
the float HA's service passes: 21 is "21.0"); HVAC modes through ``mode_command_topic``
(``mode_command_template``: Zigbee2MQTT's ``{"operating_mode": ...}`` tables); power through
``power_command_topic``; presets, fan and swing modes through their topics. Turning on and
off follows HA's ClimateEntity: the power topic when there is one, else the mode (with two
modes one of which is off: the other; else heat_cool, heat, cool). ``min_temp`` /
``max_temp`` / ``temp_step`` may be numeric text (Zigbee2MQTT sends "7"): HA coerces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import (
    PAYLOAD_NONE,
    Command,
    Domain,
    Reader,
    attr_reader,
    choice_arg,
    cmd_template,
    command,
    number,
    on_off_command,
    temperature_command,
)

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

DEFAULT_MODES = ["auto", "off", "cool", "heat", "dry", "fan_only"]
_SETTINGS = {
    # intent -> (argument, config list, default list, command topic, template, state attribute, what)
    "HassClimateSetMode": (
        "mode",
        "modes",
        DEFAULT_MODES,
        "mode_command_topic",
        "mode_command_template",
        "mode",
        "mode",
    ),
    "HassClimateSetPreset": (
        "preset",
        "preset_modes",
        [],
        "preset_mode_command_topic",
        "preset_mode_command_template",
        "preset_mode",
        "preset",
    ),
    "HassClimateSetFanMode": (
        "fan_mode",
        "fan_modes",
        ["auto", "low", "medium", "high"],
        "fan_mode_command_topic",
        "fan_mode_command_template",
        "fan_mode",
        "fan mode",
    ),
}


def modes(entity: Entity) -> list[str]:
    """The HVAC modes of the thermostat (HA's default list when the config has none)."""
    value = entity.config.get("modes")
    return list(value) if isinstance(value, list) else list(DEFAULT_MODES)


def temperature_bounds(entity: Entity) -> tuple[float, float]:
    """min_temp..max_temp (HA's defaults: 7..35 °C, 45..95 °F)."""
    cfg = entity.config
    fahrenheit = str(cfg.get("temperature_unit", "C")).upper().startswith("F")
    return float(cfg.get("min_temp", 45 if fahrenheit else 7)), float(
        cfg.get("max_temp", 95 if fahrenheit else 35)
    )


class Climate(Domain):
    name = "climate"
    intents = (
        "HassTurnOn",
        "HassTurnOff",
        "HassClimateSetTemperature",
        "HassClimateGetTemperature",
        *_SETTINGS,
    )
    number_keys = (
        "min_temp",
        "max_temp",
        "temp_step",
        "precision",
        "initial",
        "min_humidity",
        "max_humidity",
    )

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        if "preset_modes" in cfg and "none" in cfg["preset_modes"]:
            raise ValueError("preset_modes must not contain 'none'")
        low, high = cfg.get("min_temp"), cfg.get("max_temp")
        if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
            raise ValueError("min_temp must not be above max_temp")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        cfg = entity.config
        return {
            "target_temperature": "temperature_command_topic" in cfg,
            "modes": modes(entity) if "mode_command_topic" in cfg else [],
            "presets": list(cfg.get("preset_modes", [])) if "preset_mode_command_topic" in cfg else [],
            "fan_modes": list(cfg.get("fan_modes", _SETTINGS["HassClimateSetFanMode"][2]))
            if "fan_mode_command_topic" in cfg
            else [],
        }

    def usable(self, intent: str, entity: Entity) -> bool:
        cfg = entity.config
        if intent == "HassClimateSetTemperature":
            return "temperature_command_topic" in cfg
        if intent in ("HassTurnOn", "HassTurnOff"):
            return "power_command_topic" in cfg or "mode_command_topic" in cfg
        if intent in _SETTINGS:
            return _SETTINGS[intent][3] in cfg
        return intent in self.intents

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        cfg = entity.config
        out: list[tuple[str, Reader]] = []
        for topic_key, attribute, template_key, convert in (
            ("current_temperature_topic", "current_temperature", "current_temperature_template", _float),
            ("temperature_state_topic", "temperature", "temperature_state_template", _float),
            ("temperature_low_state_topic", "target_temp_low", "temperature_low_state_template", _float),
            ("temperature_high_state_topic", "target_temp_high", "temperature_high_state_template", _float),
            ("current_humidity_topic", "current_humidity", "current_humidity_template", _float),
            ("mode_state_topic", "mode", "mode_state_template", _mode),
            ("action_topic", "action", "action_template", _text),
            ("preset_mode_state_topic", "preset_mode", "preset_mode_value_template", _text),
            ("fan_mode_state_topic", "fan_mode", "fan_mode_state_template", _text),
        ):
            if isinstance(cfg.get(topic_key), str):
                out.append((cfg[topic_key], attr_reader(attribute, template_key, convert)))
        return out

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            verb = "turned on" if on else "turned off"
            if "power_command_topic" in cfg:
                return [on_off_command(entity, on, "power_command_topic", "power_command_template")]
            return [self._mode(entity, self._on_mode(entity) if on else self._off_mode(entity), verb)]
        if intent == "HassClimateSetTemperature":
            return [temperature_command(entity, args, *temperature_bounds(entity))]
        if intent in _SETTINGS:
            arg, list_key, default, topic_key, template_key, attribute, what = _SETTINGS[intent]
            options = list(cfg.get(list_key, default)) if list_key != "modes" else modes(entity)
            choice = choice_arg(entity, args, arg, options, what)
            payload = cmd_template(entity, template_key, choice)
            return [
                command(
                    entity, topic_key, payload, f"set to {choice.replace('_', ' ')}", **{attribute: choice}
                )
            ]
        return super().commands(intent, entity, args)

    def _on_mode(self, entity: Entity) -> str:
        available = modes(entity)
        if len(available) == 2 and "off" in available:
            return next(m for m in available if m != "off")
        for mode in ("heat_cool", "heat", "cool"):
            if mode in available:
                return mode
        raise ToolError(f"The {entity.spoken} can't be turned on.", code="unsupported")

    def _off_mode(self, entity: Entity) -> str:
        if "off" in modes(entity):
            return "off"
        raise ToolError(f"The {entity.spoken} can't be turned off.", code="unsupported")

    def _mode(self, entity: Entity, mode: str, verb: str) -> Command:
        payload = cmd_template(entity, "mode_command_template", mode)
        return command(entity, "mode_command_topic", payload, verb, mode=mode)


def _float(_entity: Entity, value: str | None) -> float | None:
    return number(value)


def _text(_entity: Entity, value: str | None) -> str | None:
    if value is None or value == PAYLOAD_NONE or not value.strip():
        return None
    return value.strip().lower()


def _mode(entity: Entity, value: str | None) -> str | None:
    text = _text(entity, value)
    return text if text in modes(entity) else None


DOMAIN = Climate()
