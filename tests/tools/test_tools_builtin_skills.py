"""Clock and assistant-control skills, and the hassil syntax of every shipped sentence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tools_helpers import builtin_skill

from assistant.config import Settings, SkillsSettings
from assistant.tools.context import InMemoryController, ManualClock, SkillContext
from assistant.tools.loader import load_skills
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import ResultStatus, ToolCall

BERLIN = dt.timezone(dt.timedelta(hours=1), "CET")


def _router(ctx: SkillContext, skill: str) -> Router:
    registry = ToolRegistry()
    registry.set_group(skill, list(builtin_skill(skill, ctx).values()))
    return Router(registry)


@pytest.mark.parametrize(
    ("moment", "time_reply", "date_reply", "day_reply"),
    [
        (dt.datetime(2026, 11, 28, 15, 5, tzinfo=BERLIN), "It is 3:05 PM.",
         "Today is Saturday, November 28, 2026.", "Today is Saturday."),
        (dt.datetime(2027, 1, 1, 0, 0, tzinfo=BERLIN), "It is 12:00 AM.",
         "Today is Friday, January 1, 2027.", "Today is Friday."),
        (dt.datetime(2027, 3, 2, 12, 30, tzinfo=BERLIN), "It is 12:30 PM.",
         "Today is Tuesday, March 2, 2027.", "Today is Tuesday."),
    ],
)
def test_clock_replies_in_the_local_time_zone(
    tmp_path: Path, moment: dt.datetime, time_reply: str, date_reply: str, day_reply: str
) -> None:
    clock = ManualClock(wall=moment.timestamp(), tz=BERLIN)
    router = _router(SkillContext(state_dir=tmp_path, clock=clock), "clock")
    try:
        assert router.call(ToolCall("get_time"), site="s").speech == time_reply
        assert router.call(ToolCall("get_date"), site="s").speech == date_reply
        assert router.call(ToolCall("get_weekday"), site="s").speech == day_reply
    finally:
        router.close()


def test_assistant_control_drives_the_controller(tmp_path: Path) -> None:
    controller = InMemoryController(volume=50)
    router = _router(SkillContext(state_dir=tmp_path, controller=controller), "assistant_control")
    try:
        assert router.call(ToolCall("volume_up"), site="s").speech == "Volume 60 percent."
        assert router.call(ToolCall("volume_down"), site="s").speech == "Volume 50 percent."
        assert router.call(ToolCall("set_volume", {"level": "95"}), site="s").speech == "Volume 95 percent."
        assert router.call(ToolCall("volume_up"), site="s").speech == "Volume 100 percent."
        assert router.call(ToolCall("set_volume", {"level": 120}), site="s").error_code == "out_of_range"
        assert controller.get_volume() == 100
        assert router.call(ToolCall("mute"), site="s").speech == "Muted."
        assert controller.is_muted()
        assert router.call(ToolCall("unmute"), site="s").speech == "Unmuted."
        assert not controller.is_muted()
        stop = router.call(ToolCall("assistant_stop"), site="kitchen")
        assert (stop.status, stop.speech, controller.stops) == (ResultStatus.OK, "", 1)
    finally:
        router.close()


def test_every_shipped_sentence_is_valid_hassil_with_known_slots(tmp_path: Path) -> None:
    from hassil.parse_expression import parse_sentence

    settings = Settings(state_dir=tmp_path, skills=SkillsSettings(builtin=True))
    loaded = load_skills(settings, SkillContext.from_settings(settings))
    for service in loaded.services:
        service.stop()
    count = 0
    for tool in loaded.tools:
        assert tool.sentences, f"{tool.name} has no sentences"
        for template in tool.sentences:
            sentence = parse_sentence(template)
            slots = _slot_names(sentence)
            assert slots <= set(tool.parameters["properties"]), (tool.name, template)
            count += 1
    assert count > 40


def _slot_names(expression: object) -> set[str]:
    from hassil.expression import ListReference

    found: set[str] = set()
    if isinstance(expression, ListReference):
        found.add(expression.slot_name)
    for child in getattr(expression, "items", None) or []:
        found |= _slot_names(child)
    inner = getattr(expression, "expression", None)
    if inner is not None:
        found |= _slot_names(inner)
    return found
