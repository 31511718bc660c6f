"""Clock skill: the time, the date and the day of the week, in the local time zone."""

from __future__ import annotations

import datetime as dt
from typing import Any

from assistant.tools.context import Clock, SkillContext
from assistant.tools.declare import tool


def spoken_time(moment: dt.datetime) -> str:
    """12-hour clock as people say it: ``3:05 PM``, ``12:00 AM`` for midnight."""
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def spoken_date(moment: dt.datetime) -> str:
    """``Saturday, November 28, 2026``."""
    return f"{moment:%A}, {moment:%B} {moment.day}, {moment.year}"


class ClockSkill:
    """Answers from an injected clock, so tests fix the time."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    @tool(
        reply="It is {time}.",
        sentences=(
            "what time is it [now]",
            "what's the time [now]",
            "what is the time [now]",
            "tell me the time",
            "(what|what's) the time",
        ),
    )
    def get_time(self) -> dict[str, Any]:
        """Tell the current local time."""
        now = self._clock.now()
        return {"time": spoken_time(now), "iso": now.isoformat(timespec="seconds")}

    @tool(
        reply="Today is {date}.",
        sentences=(
            "what's [the] date [today]",
            "what is [the] date [today]",
            "what is today's date",
            "what's today's date",
            "what date is it [today]",
            "tell me the date",
        ),
    )
    def get_date(self) -> dict[str, Any]:
        """Tell today's date."""
        now = self._clock.now()
        return {"date": spoken_date(now), "iso": now.date().isoformat()}

    @tool(
        reply="Today is {weekday}.",
        sentences=(
            "what day is [it] [today]",
            "what day of the week is it [today]",
            "which day is [it] [today]",
        ),
    )
    def get_weekday(self) -> dict[str, Any]:
        """Tell the day of the week."""
        return {"weekday": f"{self._clock.now():%A}"}


def setup(ctx: SkillContext) -> ClockSkill:
    """Tools of this skill, reading ``ctx.clock``."""
    return ClockSkill(ctx.clock)
