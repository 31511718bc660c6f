"""lawn_mower: HA's mqtt/lawn_mower (start mowing, dock, pause through their topics/templates)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, Reader, attr_reader, cmd_template, command

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

_ACTIONS = {
    "HassLawnMowerStartMowing": ("start_mowing", "started mowing with"),
    "HassLawnMowerDock": ("dock", "docked"),
}


class LawnMower(Domain):
    name = "lawn_mower"
    intents = tuple(_ACTIONS)

    def usable(self, intent: str, entity: Entity) -> bool:
        action = _ACTIONS.get(intent)
        return action is not None and f"{action[0]}_command_topic" in entity.config

    def readers(self, entity: Entity) -> list[tuple[str, Reader]]:
        topic = entity.config.get("activity_state_topic")
        if not isinstance(topic, str):
            return []
        return [
            (topic, attr_reader("state", "activity_value_template", lambda _e, v: (v or "").strip() or None))
        ]

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent not in _ACTIONS:
            return super().commands(intent, entity, args)
        action, verb = _ACTIONS[intent]
        payload = cmd_template(entity, f"{action}_command_template", action)
        return [
            command(
                entity,
                f"{action}_command_topic",
                payload,
                verb,
                state="mowing" if action == "start_mowing" else "docked",
            )
        ]


DOMAIN = LawnMower()
