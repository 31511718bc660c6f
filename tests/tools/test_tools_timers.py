"""Timers skill through the real router: start, cancel, remaining, list, expiry, restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tools_helpers import FakeNotifier, builtin_skill

from assistant.config import Settings
from assistant.tools.context import ManualClock, SkillContext
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import ResultStatus, ToolCall


class Timers:
    """A loaded timers skill behind a router, as the daemon would run it."""

    def __init__(self, state_dir: Path, clock: ManualClock) -> None:
        self.notifier = FakeNotifier()
        settings = Settings(state_dir=state_dir)
        self.ctx = SkillContext.from_settings(settings, clock=clock, notifier=self.notifier)
        self.registry = ToolRegistry()
        self.registry.set_group("timers", list(builtin_skill("timers", self.ctx).values()))
        self.router = Router(self.registry, clock=clock.monotonic)
        (self.service,) = self.ctx.services

    def __call__(self, name: str, site: str = "kitchen", **arguments: Any) -> Any:
        return self.router.call(ToolCall(name, arguments), site=site)

    def close(self) -> None:
        self.service.stop()
        self.router.close()


@pytest.fixture
def timers_factory(tmp_path: Path, clock: ManualClock) -> Any:
    made: list[Timers] = []

    def make() -> Timers:
        made.append(Timers(tmp_path / "state", clock))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_start_list_remaining_cancel(timers_factory: Callable[[], Timers], clock: ManualClock) -> None:
    timers = timers_factory()
    started = timers("start_timer", minutes="10", label="pasta")
    assert (started.status, started.speech) == (ResultStatus.OK, "Pasta timer set for 10 minutes.")
    assert timers("start_timer", minutes=1, seconds=30).speech == "Timer set for 1 minute and 30 seconds."
    clock.advance(60)
    assert timers("timer_remaining", label="Pasta").speech == "9 minutes left on the pasta timer."
    assert timers("list_timers").speech == (
        "You have 2 timers: timer with 30 seconds left, and pasta timer with 9 minutes left.")
    ambiguous = timers("cancel_timer")
    assert ambiguous.error_code == "ambiguous"
    assert ambiguous.speech == "You have 2 timers. Which one should I cancel?"
    assert timers("cancel_timer", label="pasta timer").speech == "Pasta timer cancelled."
    assert timers("cancel_timer").speech == "Timer cancelled."
    assert timers("cancel_timer").error_code == "not_found"
    assert timers("list_timers").speech == "You have no timers running."


def test_invalid_durations_are_refused(timers_factory: Callable[[], Timers]) -> None:
    timers = timers_factory()
    assert timers("start_timer").error_code == "no_duration"
    assert timers("start_timer", minutes=-5).error_code == "out_of_range"
    assert timers("start_timer", minutes="ten").error_code == "wrong_type"
    assert timers("start_timer", minutes=5, label="").error_code == "out_of_range"
    assert timers.service.timers() == []


def test_a_finished_timer_is_announced_at_its_site_and_published(
    timers_factory: Callable[[], Timers], clock: ManualClock
) -> None:
    timers = timers_factory()
    timers("start_timer", site="kitchen", seconds=30, label="tea")
    clock.advance(29)
    assert timers.service.tick() == []
    clock.advance(1)
    (fired,) = timers.service.tick()
    assert fired.label == "tea"
    assert timers.notifier.announcements == [("Your tea timer is done.", "kitchen")]
    ((name, event),) = timers.notifier.events
    assert name == "timer_finished"
    summary = (event["label"], event["site"], event["duration_s"], event["missed"])
    assert summary == ("tea", "kitchen", 30, False)
    assert timers.service.timers() == []


def test_timers_survive_a_restart(timers_factory: Callable[[], Timers], clock: ManualClock,
                                  tmp_path: Path) -> None:
    first = timers_factory()
    first("start_timer", minutes=5, label="eggs")
    first("start_timer", minutes=20)
    first.close()
    saved = json.loads((tmp_path / "state" / "timers.json").read_text(encoding="utf-8"))
    assert len(saved["timers"]) == 2
    assert not [p for p in (tmp_path / "state").iterdir() if p.name != "timers.json"]  # no temp files left

    clock.advance(120)
    second = timers_factory()
    assert second("timer_remaining", label="eggs").speech == "3 minutes left on the eggs timer."
    assert len(second.service.timers()) == 2


def test_timers_that_ended_while_down_fire_at_start_or_are_reported_missed(
    timers_factory: Callable[[], Timers], clock: ManualClock
) -> None:
    first = timers_factory()
    first("start_timer", minutes=1, label="short")
    first("start_timer", minutes=30, label="long")
    first("start_timer", minutes=60, label="later")
    first.close()

    clock.advance(30 * 60 + 10)  # down for half an hour: "short" is long overdue, "long" just ended
    second = timers_factory()
    second.service.start()
    second.service.stop()
    assert sorted(second.notifier.announcements) == [
        ("Your long timer is done.", "kitchen"),
        ("Your short timer ended while I was away.", "kitchen"),
    ]
    missed = {e["label"]: e["missed"] for _, e in second.notifier.events}
    assert missed == {"short": True, "long": False}
    assert [t.label for t in second.service.timers()] == ["later"]


@pytest.mark.parametrize("content", ["not json", '{"timers": 5}', '[1, 2]',
                                     '{"timers": [{"id": 1}, {"id": "x", "label": null, "duration_s": 60,'
                                     ' "ends_at": 1800000060.0}]}'])
def test_corrupt_state_never_crashes(tmp_path: Path, clock: ManualClock, content: str,
                                     timers_factory: Callable[[], Timers]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "timers.json").write_text(content, encoding="utf-8")
    timers = timers_factory()
    assert timers("list_timers").ok
    expected = 1 if '"x"' in content else 0
    assert len(timers.service.timers()) == expected


def test_a_failing_notifier_does_not_stop_the_runner(
    timers_factory: Callable[[], Timers], clock: ManualClock
) -> None:
    timers = timers_factory()

    def broken(text: str, site: str | None = None) -> None:
        raise RuntimeError("speaker gone")

    timers.notifier.announce = broken  # type: ignore[method-assign]
    timers("start_timer", seconds=5)
    clock.advance(5)
    assert len(timers.service.tick()) == 1
    assert [name for name, _ in timers.notifier.events] == ["timer_finished"]


def test_the_runner_thread_fires_due_timers(timers_factory: Callable[[], Timers], clock: ManualClock) -> None:
    import time

    timers = timers_factory()
    timers.service.start()
    timers("start_timer", seconds=3, label="toast")
    clock.advance(3)
    # The runner re-reads the clock at least once a second; give it a few polls.
    deadline = time.monotonic() + 5
    while not timers.notifier.announcements and time.monotonic() < deadline:
        time.sleep(0.05)
    timers.service.stop()
    assert timers.notifier.announcements == [("Your toast timer is done.", "kitchen")]
