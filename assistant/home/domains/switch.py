"""switch: HA's mqtt/switch (payload_on/off, state_on/off, command_template)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, cmd_template, command, on_off
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Switch(Domain):
    name = "switch"
    required = ("command_topic",)
    device_classes: Mapping[str, str] = MappingProxyType({"outlet": "Outlet", "switch": "Switch"})
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle")

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("value_template"), text)
        return {} if value == "" else {"state": on_off(entity, value)}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            payload = str(entity.config.get("payload_on" if on else "payload_off", "ON" if on else "OFF"))
            return [
                command(
                    entity,
                    "command_topic",
                    cmd_template(entity, "command_template", payload),
                    "turned on" if on else "turned off",
                    state="on" if on else "off",
                )
            ]
        return super().commands(intent, entity, args)


DOMAIN = Switch()
