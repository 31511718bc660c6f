"""number: HA's mqtt/number (min/max/step, command_template; device classes HA knows)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import Command, Domain, cmd_template, command, fmt_number, number
from assistant.home.domains.sensor import DEVICE_CLASSES as _SENSOR_CLASSES
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

DEVICE_CLASSES = {
    k: v for k, v in _SENSOR_CLASSES.items() if k not in ("date", "enum", "timestamp", "energy_distance")
}
"""HA 2025.4's NumberDeviceClass: the sensor classes that are numbers (temperature_delta is not one)."""


class Number(Domain):
    name = "number"
    required = ("command_topic",)
    device_classes = DEVICE_CLASSES
    intents = ("HassSetValue",)
    number_keys = ("min", "max", "step")

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        if float(cfg.get("min", 1)) > float(cfg.get("max", 100)):
            raise ValueError("number min must not be above max")
        if "step" in cfg and float(cfg["step"]) <= 0:
            raise ValueError("number step must be above 0")

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("value_template"), text)
        if value is None or value == "":
            return {}
        raw = number(value)
        return {"state": None if raw is None else fmt_number(raw)}

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        cfg = entity.config
        return {
            "min": float(cfg.get("min", 1)),
            "max": float(cfg.get("max", 100)),
            "step": float(cfg.get("step", 1)),
        }

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent != "HassSetValue":
            return super().commands(intent, entity, args)
        value = args.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ToolError("Which value?", code="missing_value")
        cfg = entity.config
        low, high = float(cfg.get("min", 1)), float(cfg.get("max", 100))
        if not low <= float(value) <= high:
            raise ToolError(
                f"The {entity.spoken} can be set from {fmt_number(low)} to {fmt_number(high)}.",
                code="out_of_range",
            )
        step = float(cfg.get("step", 1))
        # HA sends an int when the step is whole and the value is, else the float
        sent: int | float = int(value) if step.is_integer() and float(value).is_integer() else float(value)
        payload = cmd_template(entity, "command_template", sent)
        return [
            command(
                entity,
                "command_topic",
                payload,
                f"set to {fmt_number(float(value))}",
                state=fmt_number(float(value)),
            )
        ]


DOMAIN = Number()
