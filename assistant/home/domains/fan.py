"""fan: HA's mqtt/fan.

On/off through ``command_topic`` (``command_template``), a speed through
``percentage_command_topic``: the percentage goes onto speed_range_min..max and up (HA's
``ceil(percentage_to_ranged_value)``), then through ``percentage_command_template``; the
state comes back through the same ``SpeedRange`` (HA's ``ranged_value_to_percentage``), so a
fan with speed_range_min 5 set to 1 % publishes 5 and reads 5 back as 1 %. Preset modes
through ``preset_mode_command_topic`` / ``_template``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import (
    PAYLOAD_NONE,
    Command,
    Domain,
    Reader,
    SpeedRange,
    choice_arg,
    cmd_template,
    command,
    int_arg,
    number,
    on_off,
    on_off_command,
    text_state,
)
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


def speed_range(entity: Entity) -> SpeedRange:
    """The fan's speed_range_min..max."""
    cfg = entity.config
    return SpeedRange(int(cfg.get("speed_range_min", 1)), int(cfg.get("speed_range_max", 100)))


class Fan(Domain):
    name = "fan"
    required = ("command_topic",)
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle", "HassFanSetSpeed", "HassFanSetPreset")

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        low, high = cfg.get("speed_range_min", 1), cfg.get("speed_range_max", 100)
        if not 1 <= low <= high <= 1_000_000:
            raise ValueError("speed_range_min/max must satisfy 1 <= min <= max")
        if "preset_mode_command_topic" in cfg and not cfg.get("preset_modes"):
            raise ValueError("a fan with preset_mode_command_topic needs preset_modes")

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        cfg = entity.config
        return {
            "speed": "percentage_command_topic" in cfg,
            "presets": list(cfg.get("preset_modes", [])) if "preset_mode_command_topic" in cfg else [],
        }

    def usable(self, intent: str, entity: Entity) -> bool:
        if intent == "HassFanSetSpeed":
            return "percentage_command_topic" in entity.config
        if intent == "HassFanSetPreset":
            return "preset_mode_command_topic" in entity.config
        return intent in self.intents

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        cfg = entity.config
        out = super().readers(entity)
        if isinstance(cfg.get("percentage_state_topic"), str):
            out.append((cfg["percentage_state_topic"], self.read_percentage))
        if isinstance(cfg.get("preset_mode_state_topic"), str):
            out.append((cfg["preset_mode_state_topic"], self.read_preset))
        return out

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("state_value_template") or cfg.get("value_template"), text)
        if value is None or value == "":
            return {}
        return {"state": None if value == PAYLOAD_NONE else on_off(entity, value)}

    def read_percentage(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("percentage_value_template"), text)
        if value is None or value == "":
            return {}
        if value == cfg.get("payload_reset_percentage", PAYLOAD_NONE):
            return {"percentage": None}
        raw = number(value)
        if raw is None:
            return {}
        pct = speed_range(entity).to_percent(raw)
        return {} if pct is None else {"percentage": pct}

    def read_preset(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("preset_mode_value_template"), text)
        if value is None or value == "":
            return {}
        if value == cfg.get("payload_reset_preset_mode", PAYLOAD_NONE):
            return {"preset_mode": None}
        return {"preset_mode": text_state(value)} if value in cfg.get("preset_modes", []) else {}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            return [on_off_command(entity, on, state="on" if on else "off")]
        if intent == "HassFanSetSpeed":
            pct = int_arg(args, "percentage", 0, 100)
            if pct == 0:
                return self.commands("HassTurnOff", entity, args)
            raw = speed_range(entity).to_device(pct)
            payload = cmd_template(entity, "percentage_command_template", raw)
            return [
                command(
                    entity,
                    "percentage_command_topic",
                    payload,
                    f"set to {pct} percent",
                    state="on",
                    percentage=pct,
                )
            ]
        if intent == "HassFanSetPreset":
            preset = choice_arg(entity, args, "preset", list(cfg.get("preset_modes", [])), "preset")
            payload = cmd_template(entity, "preset_mode_command_template", preset)
            return [
                command(
                    entity,
                    "preset_mode_command_topic",
                    payload,
                    f"set to {preset.replace('_', ' ')}",
                    state="on",
                    preset_mode=preset,
                )
            ]
        return super().commands(intent, entity, args)


DOMAIN = Fan()
