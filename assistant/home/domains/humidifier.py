"""humidifier: HA's mqtt/humidifier (power, target humidity, modes)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import (
    Command,
    Domain,
    Reader,
    attr_reader,
    choice_arg,
    cmd_template,
    command,
    int_arg,
    number,
    on_off,
    on_off_command,
)
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Humidifier(Domain):
    name = "humidifier"
    required = ("command_topic", "target_humidity_command_topic")
    device_classes: Mapping[str, str] = MappingProxyType(
        {"humidifier": "Humidifier", "dehumidifier": "Dehumidifier"}
    )
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassHumidifierSetpoint", "HassHumidifierMode")
    number_keys = ("min_humidity", "max_humidity")

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        if "mode_command_topic" in cfg and not cfg.get("modes"):
            raise ValueError("a humidifier with mode_command_topic needs modes")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        cfg = entity.config
        return {"humidity": True, "modes": list(cfg.get("modes", [])) if "mode_command_topic" in cfg else []}

    def usable(self, intent: str, entity: Entity) -> bool:
        if intent == "HassHumidifierMode":
            return "mode_command_topic" in entity.config
        return intent in self.intents

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("state_value_template"), text)
        return {} if value == "" else {"state": on_off(entity, value)}

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        cfg = entity.config
        out = super().readers(entity)
        for topic_key, attribute, template_key in (
            ("target_humidity_state_topic", "humidity", "target_humidity_state_template"),
            ("current_humidity_topic", "current_humidity", "current_humidity_template"),
            ("mode_state_topic", "mode", "mode_state_template"),
        ):
            if isinstance(cfg.get(topic_key), str):
                convert = _text if attribute == "mode" else _float
                out.append((cfg[topic_key], attr_reader(attribute, template_key, convert)))
        return out

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            return [on_off_command(entity, on, state="on" if on else "off")]
        if intent == "HassHumidifierSetpoint":
            humidity = int_arg(args, "humidity", 0, 100)
            low, high = float(cfg.get("min_humidity", 0)), float(cfg.get("max_humidity", 100))
            if not low <= humidity <= high:
                raise ToolError(
                    f"The {entity.spoken} can be set from {low:g} to {high:g} percent.", code="out_of_range"
                )
            payload = cmd_template(entity, "target_humidity_command_template", humidity)
            return [
                command(
                    entity,
                    "target_humidity_command_topic",
                    payload,
                    f"set to {humidity} percent",
                    humidity=humidity,
                )
            ]
        if intent == "HassHumidifierMode":
            mode = choice_arg(entity, args, "mode", list(cfg.get("modes", [])), "mode")
            payload = cmd_template(entity, "mode_command_template", mode)
            return [
                command(entity, "mode_command_topic", payload, f"set to {mode.replace('_', ' ')}", mode=mode)
            ]
        return super().commands(intent, entity, args)


def _float(_entity: Entity, value: str | None) -> float | None:
    return number(value)


def _text(_entity: Entity, value: str | None) -> str | None:
    return value.strip() or None if value is not None and value != "None" else None


DOMAIN = Humidifier()
