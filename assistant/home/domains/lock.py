"""lock: HA's mqtt/lock (payload_lock/unlock/open, state_locked/unlocked/..., command_template)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, cmd_template, command, text_state
from assistant.home.templates import render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity


class Lock(Domain):
    name = "lock"
    required = ("command_topic",)
    intents = ("HassTurnOn", "HassTurnOff", "HassToggle")

    def is_on(self, state: str | None) -> bool:
        return state == "locked"

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        cfg = entity.config
        value = render_value(cfg.get("value_template"), text)
        if value is None or value == "":
            return {"state": None} if value is None else {}
        table = {
            cfg.get("state_locked", "LOCKED"): "locked",
            cfg.get("state_unlocked", "UNLOCKED"): "unlocked",
            cfg.get("state_locking", "LOCKING"): "locking",
            cfg.get("state_unlocking", "UNLOCKING"): "unlocking",
            cfg.get("state_jammed", "JAMMED"): "jammed",
            cfg.get("state_open", "OPEN"): "open",
            cfg.get("state_opening", "OPENING"): "opening",
        }
        return {"state": table.get(value, (text_state(value) or "").lower() or None)}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if intent in ("HassTurnOn", "HassTurnOff"):
            on = intent == "HassTurnOn"
            key, default = ("payload_lock", "LOCK") if on else ("payload_unlock", "UNLOCK")
            payload = cmd_template(entity, "command_template", str(entity.config.get(key, default)))
            return [
                command(
                    entity,
                    "command_topic",
                    payload,
                    "locked" if on else "unlocked",
                    state="locked" if on else "unlocked",
                )
            ]
        return super().commands(intent, entity, args)


DOMAIN = Lock()
