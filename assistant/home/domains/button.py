"""button: HA's mqtt/button (payload_press through command_template)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, cmd_template, command

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Button(Domain):
    name = "button"
    required = ("command_topic",)
    device_classes: Mapping[str, str] = MappingProxyType(
        {"identify": "Identify", "restart": "Restart", "update": "Update"}
    )
    intents = ("HassTurnOn", "HassPress")

    def readers(self, entity: Entity) -> list[tuple[str, Any]]:
        return []

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent in ("HassTurnOn", "HassPress"):
            payload = cmd_template(
                entity, "command_template", str(entity.config.get("payload_press", "PRESS"))
            )
            return [command(entity, "command_topic", payload, "pressed")]
        return super().commands(intent, entity, args)


DOMAIN = Button()
