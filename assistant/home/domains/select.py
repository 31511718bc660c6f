"""select: HA's mqtt/select (one of ``options`` through command_template)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, choice_arg, cmd_template, command, text_state
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Select(Domain):
    name = "select"
    required = ("command_topic", "options")
    intents = ("HassSelectOption",)

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("value_template"), text)
        if value is None or value == "":
            return {}
        return {"state": text_state(value) if value in entity.config.get("options", []) else None}

    def capabilities(self, entity: Entity) -> dict[str, Any]:
        return {"options": list(entity.config.get("options", []))}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent != "HassSelectOption":
            return super().commands(intent, entity, args)
        option = choice_arg(entity, args, "option", list(entity.config.get("options", [])), "option")
        payload = cmd_template(entity, "command_template", option)
        return [command(entity, "command_topic", payload, f"set to {option.replace('_', ' ')}", state=option)]


DOMAIN = Select()
