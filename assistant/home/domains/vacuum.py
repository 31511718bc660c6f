"""vacuum: HA's mqtt/vacuum (state schema: payload_start / payload_return_to_base on
command_topic, when ``supported_features`` has start / return_home)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.home.domains.base import Command, Domain, command, finite_json

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

DEFAULT_FEATURES = ["start", "stop", "return_home", "status", "clean_spot"]
_ACTIONS = {
    "HassVacuumStart": ("start", "payload_start", "start", "started", "cleaning"),
    "HassVacuumReturnToBase": (
        "return_home",
        "payload_return_to_base",
        "return_to_base",
        "sent home",
        "returning",
    ),
}


class Vacuum(Domain):
    name = "vacuum"
    intents = tuple(_ACTIONS)

    def validate(self, cfg: dict[str, Any]) -> None:
        super().validate(cfg)
        if cfg.get("schema", "state") != "state":
            raise ValueError("vacuum schema must be state (the legacy schema was removed from HA)")
        features = cfg.get("supported_features", DEFAULT_FEATURES)
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError("supported_features must be a list of feature names")

    def usable(self, intent: str, entity: Entity) -> bool:
        action = _ACTIONS.get(intent)
        features = entity.config.get("supported_features", DEFAULT_FEATURES)
        return action is not None and "command_topic" in entity.config and action[0] in features

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        data = finite_json(entity, text)
        if isinstance(data, Mapping) and isinstance(data.get("state"), str):
            return {"state": data["state"].strip().lower() or None}
        return {}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        if not self.usable(intent, entity):
            return super().commands(intent, entity, args)
        _, key, default, verb, after = _ACTIONS[intent]
        return [command(entity, "command_topic", str(entity.config.get(key, default)), verb, state=after)]


DOMAIN = Vacuum()
