"""Assistant control skill: stop, volume up / down / set, mute and unmute.

Calls into the injected ``AssistantController`` (the daemon implements it; the
default remembers values in memory).
"""

from __future__ import annotations

from typing import Annotated, Any

from assistant.tools.context import AssistantController, SkillContext, current_site
from assistant.tools.declare import tool
from assistant.tools.schema import Range

VOLUME_STEP = 10


class AssistantControlSkill:
    """The assistant's own controls as tools."""

    def __init__(self, controller: AssistantController) -> None:
        self._controller = controller

    @tool(
        reply="",
        sentences=("stop", "cancel", "never mind", "nevermind", "be quiet", "stop talking",
                   "that's enough"),
    )
    def assistant_stop(self) -> str:
        """Stop talking and cancel what the assistant is doing."""
        self._controller.stop(current_site())
        return ""  # say nothing: the point of stop is silence

    @tool(
        reply="Volume {volume} percent.",
        sentences=("[turn] [the] volume up", "turn it up", "(louder|speak up)", "increase [the] volume"),
    )
    def volume_up(self) -> dict[str, Any]:
        """Make the assistant louder."""
        return self._set(self._controller.get_volume() + VOLUME_STEP)

    @tool(
        reply="Volume {volume} percent.",
        sentences=("[turn] [the] volume down", "turn it down", "(quieter|speak softer)",
                   "(decrease|lower) [the] volume"),
    )
    def volume_down(self) -> dict[str, Any]:
        """Make the assistant quieter."""
        return self._set(self._controller.get_volume() - VOLUME_STEP)

    @tool(
        reply="Volume {volume} percent.",
        sentences=("set [the] volume to {level} [percent]", "volume {level} [percent]",
                   "change [the] volume to {level} [percent]"),
    )
    def set_volume(self, level: Annotated[int, Range(0, 100)]) -> dict[str, Any]:
        """Set the assistant's volume.

        Args:
            level: Volume in percent, 0 to 100.
        """
        return self._set(level)

    @tool(reply="Muted.", sentences=("mute [yourself]", "(turn|switch) [the] sound off", "be silent"))
    def mute(self) -> dict[str, Any]:
        """Mute the assistant's speech output."""
        self._controller.set_muted(True)
        return {"muted": True}

    @tool(reply="Unmuted.", sentences=("unmute [yourself]", "(turn|switch) [the] sound [back] on"))
    def unmute(self) -> dict[str, Any]:
        """Unmute the assistant's speech output."""
        self._controller.set_muted(False)
        return {"muted": False}

    def _set(self, level: int) -> dict[str, Any]:
        level = max(0, min(100, level))
        self._controller.set_volume(level)
        return {"volume": self._controller.get_volume()}


def setup(ctx: SkillContext) -> AssistantControlSkill:
    """Tools of this skill, driving ``ctx.controller``."""
    return AssistantControlSkill(ctx.controller)
