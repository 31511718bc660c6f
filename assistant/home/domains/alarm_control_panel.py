"""alarm_control_panel: HA's mqtt/alarm_control_panel.

HassTurnOn arms away, HassTurnOff disarms, through ``command_template`` (default
``{{ action }}``, variables ``action`` and ``code``). A panel whose config carries a ``code``
(a fixed code, REMOTE_CODE or REMOTE_CODE_TEXT) needs the user's code: it comes from the
secret ``home.alarm_code`` (HomeControl passes it as the ``code`` argument). As in HA, a fixed
code in the config is checked locally and never sent unless the template asks for it;
``code_arm_required`` / ``code_disarm_required`` (default true) say when it is needed. Without
the setting such a panel is refused with that reason rather than sent a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from assistant.errors import ToolError
from assistant.home.domains.base import Command, Domain, command, text_state
from assistant.home.templates import render_command, render_value

if TYPE_CHECKING:
    from assistant.home.discovery import Entity

ARM_DEFAULTS = {
    "payload_arm_away": "ARM_AWAY",
    "payload_arm_home": "ARM_HOME",
    "payload_arm_night": "ARM_NIGHT",
    "payload_arm_vacation": "ARM_VACATION",
    "payload_arm_custom_bypass": "ARM_CUSTOM_BYPASS",
}


class AlarmControlPanel(Domain):
    name = "alarm_control_panel"
    required = ("command_topic", "state_topic")
    intents = ("HassTurnOn", "HassTurnOff")

    def read_state(self, entity: Entity, text: str) -> dict[str, Any]:
        value = render_value(entity.config.get("value_template"), text)
        return {} if value == "" else {"state": text_state(value)}

    def commands(
        self, intent: str, entity: Entity, args: Mapping[str, Any], state: Mapping[str, Any] | None = None
    ) -> list[Command]:
        cfg = entity.config
        if intent not in ("HassTurnOn", "HassTurnOff"):
            return super().commands(intent, entity, args)
        on = intent == "HassTurnOn"
        given = args.get("code")
        code = given if isinstance(given, str) and given else None
        expected = cfg.get("code")
        required = bool(cfg.get("code_arm_required" if on else "code_disarm_required", True))
        if expected is not None and required:
            if code is None:
                raise ToolError(f"The {entity.spoken} needs a code I don't have.", code="unsupported")
            if expected not in ("REMOTE_CODE", "REMOTE_CODE_TEXT") and str(expected) != code:
                raise ToolError(f"The code for the {entity.spoken} is not the one it expects.",
                                code="not_allowed")
        key, default = ("payload_arm_away", "ARM_AWAY") if on else ("payload_disarm", "DISARM")
        action = str(cfg.get(key, default))
        payload = action
        template = cfg.get("command_template")
        if isinstance(template, str):
            rendered = render_command(
                template, action, {"action": action, "code": code, "entity_id": entity.entity_id}
            )
            if rendered is None:
                raise ToolError(f"The {entity.spoken} needs a code I can't send.", code="unsupported")
            payload = rendered
        return [command(entity, "command_topic", payload, "armed" if on else "disarmed")]


DOMAIN = AlarmControlPanel()
