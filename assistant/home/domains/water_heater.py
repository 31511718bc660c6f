"""water_heater: HA's mqtt/water_heater (power, target temperature, operation modes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import (
    Command,
    Domain,
    Reader,
    attr_reader,
    cmd_template,
    command,
    number,
    on_off_command,
    temperature_command,
)

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

DEFAULT_MODES = ["off", "eco", "electric", "gas", "heat_pump", "high_demand", "performance"]


class WaterHeater(Domain):
    name = "water_heater"
    intents = ("HassTurnOn", "HassTurnOff", "HassClimateSetTemperature")
    number_keys = ("min_temp", "max_temp", "precision", "initial")

    def usable(self, intent: str, entity: Entity) -> bool:
        cfg = entity.config
        if intent == "HassClimateSetTemperature":
            return "temperature_command_topic" in cfg
        if intent in ("HassTurnOn", "HassTurnOff"):
            return "power_command_topic" in cfg or "mode_command_topic" in cfg
        return False

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        cfg = entity.config
        out: list[tuple[str, Reader]] = []
        for topic_key, attribute, template_key in (
            ("current_temperature_topic", "current_temperature", "current_temperature_template"),
            ("temperature_state_topic", "temperature", "temperature_state_template"),
            ("mode_state_topic", "mode", "mode_state_template"),
        ):
            if isinstance(cfg.get(topic_key), str):
                convert = (lambda _e, v: (v or "").strip() or None) if attribute == "mode" else _float
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
            modes = list(cfg.get("modes", DEFAULT_MODES))
            mode = next((m for m in modes if m != "off"), None) if on else ("off" if "off" in modes else None)
            if mode is None:
                raise ToolError(f"The {entity.spoken} can't do that.", code="unsupported")
            return [
                command(
                    entity,
                    "mode_command_topic",
                    cmd_template(entity, "mode_command_template", mode),
                    verb,
                    mode=mode,
                )
            ]
        if intent == "HassClimateSetTemperature":
            fahrenheit = str(cfg.get("temperature_unit", "C")).upper().startswith("F")
            low = float(cfg.get("min_temp", 110 if fahrenheit else 43.3))
            high = float(cfg.get("max_temp", 140 if fahrenheit else 60))
            return [temperature_command(entity, args, low, high)]
        return super().commands(intent, entity, args)


def _float(_entity: Entity, value: str | None) -> float | None:
    return number(value)


DOMAIN = WaterHeater()
