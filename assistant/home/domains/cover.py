"""cover: HA's mqtt/cover.

Open/close through ``command_topic`` (payload_open/close), a position through
``set_position_topic`` rendered by ``set_position_template`` with HA's variables (``value``
is the device position, ``position`` the percentage, ``entity_id``, ``position_open``,
``position_closed``, ``tilt_min``, ``tilt_max``). Device positions and percentages convert
both ways through one ``PositionRange`` (position_closed..position_open), as HA does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import (
    PAYLOAD_NONE,
    Command,
    Domain,
    PositionRange,
    Reader,
    attr_reader,
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

DEVICE_CLASSES = {
    "awning": "Awning",
    "blind": "Blind",
    "curtain": "Curtain",
    "damper": "Damper",
    "door": "Door",
    "garage": "Garage door",
    "gate": "Gate",
    "shade": "Shade",
    "shutter": "Shutter",
    "window": "Window",
}


def position_range(entity: Entity) -> PositionRange:
    """The cover's position_closed..position_open."""
    cfg = entity.config
    return PositionRange(int(cfg.get("position_closed", 0)), int(cfg.get("position_open", 100)))


class Cover(Domain):
    name = "cover"
    device_classes = DEVICE_CLASSES
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassSetPosition")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        cfg = entity.config
        return {
            "position": "set_position_topic" in cfg,
            "open_close": "command_topic" in cfg,
            "tilt": "tilt_command_topic" in cfg,
        }

    def usable(self, intent: str, entity: Entity) -> bool:
        cfg = entity.config
        if intent == "HassSetPosition":
            return "set_position_topic" in cfg
        if intent in ("HassTurnOn", "HassTurnOff", "HassToggle"):
            return "command_topic" in cfg or "set_position_topic" in cfg
        return False

    def is_on(self, state: str | None) -> bool:
        return state in ("open", "opening")

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        out = super().readers(entity)
        topic = entity.config.get("position_topic")
        if isinstance(topic, str):
            out.append((topic, self.read_position))
        tilt = entity.config.get("tilt_status_topic")
        if isinstance(tilt, str):
            out.append((tilt, attr_reader("tilt_position", "tilt_status_template", _tilt)))
        return out

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("value_template"), text)
        if value is None or value == "":
            return {}
        if value == PAYLOAD_NONE:
            return {"state": None}
        table = {
            cfg.get("state_open", "open"): "open",
            cfg.get("state_closed", "closed"): "closed",
            cfg.get("state_opening", "opening"): "opening",
            cfg.get("state_closing", "closing"): "closing",
            cfg.get("state_stopped", "stopped"): "stopped",
        }
        return {"state": table.get(value, (text_state(value) or "").lower() or None)}

    def read_position(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("position_template"), text)
        if value is None or value == "":
            return {}
        data = finite_json(entity, value)
        if isinstance(data, Mapping):
            value = str(data.get("position")) if "position" in data else None
        raw = number(value)
        if raw is None:
            return {}
        pct = position_range(entity).to_percent(raw)
        out: dict[str, Any] = {"position": pct}
        if "state_topic" not in entity.config:
            out["state"] = "closed" if pct == 0 else "open"
        return out

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            if "command_topic" not in cfg:
                return self.set_position(entity, 100 if on else 0)
            key, default = ("payload_open", "OPEN") if on else ("payload_close", "CLOSE")
            return [
                command(
                    entity,
                    "command_topic",
                    str(cfg.get(key, default)),
                    "opened" if on else "closed",
                    state="open" if on else "closed",
                )
            ]
        if intent == "HassSetPosition":
            return self.set_position(entity, int_arg(args, "position", 0, 100))
        return super().commands(intent, entity, args)

    def set_position(self, entity: Entity, percentage: int) -> list[Command]:
        cfg = entity.config
        rng = position_range(entity)
        raw = rng.to_device(percentage)
        payload = cmd_template(
            entity,
            "set_position_template",
            raw,
            position=percentage,
            position_open=rng.opened,
            position_closed=rng.closed,
            tilt_min=int(cfg.get("tilt_min", 0)),
            tilt_max=int(cfg.get("tilt_max", 100)),
        )
        verb = (
            "opened" if percentage == 100 else "closed" if percentage == 0 else f"set to {percentage} percent"
        )
        return [
            command(
                entity,
                "set_position_topic",
                payload,
                verb,
                state="closed" if percentage == 0 else "open",
                position=percentage,
            )
        ]


def _tilt(entity: Entity, value: str | None) -> int | None:
    raw = number(value)
    if raw is None:
        return None
    cfg = entity.config
    return PositionRange(int(cfg.get("tilt_min", 0)), int(cfg.get("tilt_max", 100))).to_percent(round(raw))


DOMAIN = Cover()
