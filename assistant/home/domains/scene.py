"""scene: HA's mqtt/scene (payload_on to command_topic)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, command

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Scene(Domain):
    name = "scene"
    required = ("command_topic",)
    intents = ("HassTurnOn",)

    def readers(self, entity: Entity) -> list[tuple[str, Any]]:
        return []

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent == "HassTurnOn":
            return [command(entity, "command_topic", str(entity.config.get("payload_on", "ON")), "activated")]
        return super().commands(intent, entity, args)


DOMAIN = Scene()
