"""valve: HA's mqtt/valve (open/close payloads, or positions when ``reports_position``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import (
    Command,
    Domain,
    PositionRange,
    cmd_template,
    command,
    finite_json,
    int_arg,
    number,
    text_state,
)
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


def position_range(entity: Entity) -> PositionRange:
    """The valve's position_closed..position_open."""
    cfg = entity.config
    return PositionRange(int(cfg.get("position_closed", 0)), int(cfg.get("position_open", 100)))


class Valve(Domain):
    name = "valve"
    device_classes: Mapping[str, str] = MappingProxyType({"water": "Water", "gas": "Gas"})
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassSetPosition")

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        if "reports_position" in cfg and not isinstance(cfg["reports_position"], bool):
            raise ValueError("reports_position must be true or false")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        return {"position": bool(entity.config.get("reports_position")) and "command_topic" in entity.config}

    def usable(self, intent: str, entity: Entity) -> bool:
        if "command_topic" not in entity.config:
            return False
        if intent == "HassSetPosition":
            return bool(entity.config.get("reports_position"))
        return intent in self.intents

    def is_on(self, state: str | None) -> bool:
        return state in ("open", "opening")

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("value_template"), text)
        if value is None or value == "":
            return {}
        data = finite_json(entity, value)
        if isinstance(data, Mapping) and "position" in data:
            value = str(data["position"])
        if cfg.get("reports_position"):
            raw = number(value)
            if raw is not None:
                pct = position_range(entity).to_percent(raw)
                return {"position": pct, "state": "closed" if pct == 0 else "open"}
        table = {
            cfg.get("state_open", "open"): "open",
            cfg.get("state_closed", "closed"): "closed",
            cfg.get("state_opening", "opening"): "opening",
            cfg.get("state_closing", "closing"): "closing",
        }
        return {"state": table.get(value, (text_state(value) or "").lower() or None)}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent == "HassSetPosition":
            if not cfg.get("reports_position"):
                raise ToolError(f"The {entity.spoken} can only be opened or closed.", code="unsupported")
            return self._position(entity, int_arg(args, "position", 0, 100))
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            if cfg.get("reports_position"):
                return self._position(entity, 100 if on else 0)
            key, default = ("payload_open", "OPEN") if on else ("payload_close", "CLOSE")
            payload = cmd_template(entity, "command_template", str(cfg.get(key, default)))
            return [
                command(
                    entity,
                    "command_topic",
                    payload,
                    "opened" if on else "closed",
                    state="open" if on else "closed",
                )
            ]
        return super().commands(intent, entity, args)

    def _position(self, entity: Entity, percentage: int) -> list[Command]:
        raw = position_range(entity).to_device(percentage)
        payload = cmd_template(entity, "command_template", raw, position=percentage)
        verb = (
            "opened" if percentage == 100 else "closed" if percentage == 0 else f"set to {percentage} percent"
        )
        return [
            command(
                entity,
                "command_topic",
                payload,
                verb,
                state="closed" if percentage == 0 else "open",
                position=percentage,
            )
        ]


DOMAIN = Valve()
