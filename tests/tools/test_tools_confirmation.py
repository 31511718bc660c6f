"""Sensitive calls: only an explicit yes (or the PIN) in the next turn, same site, in time, runs them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tools_helpers import Recorder, make_tool

from assistant.config import Secret
from assistant.tools.context import ManualClock
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import ResultStatus, ToolCall

DOOR = {"door": {"type": "string", "enum": ["front door", "back door"]}}
UNLOCK = ToolCall("unlock", {"door": "front door"})


@pytest.fixture
def lock(registry: ToolRegistry) -> Recorder:
    rec = Recorder()
    registry.set_group("home", [make_tool("unlock", rec, DOOR, ("door",), sensitive=True,
                                          confirm="Do you want me to unlock the {door}?",
                                          reply="Unlocked the {door}.")])
    return rec


def _ask(router: Router) -> None:
    result = router.call(UNLOCK, site="hall")
    assert result.status is ResultStatus.NEEDS_CONFIRMATION
    assert result.speech == "Do you want me to unlock the front door?"
    assert router.pending_confirmation("hall") == "Do you want me to unlock the front door?"


@pytest.mark.parametrize("answer", ["yes", "Yes.", "yes please", "YES, PLEASE!", "do it", "confirm",
                                    "go ahead"])
def test_explicit_yes_runs_it(router: Router, lock: Recorder, answer: str) -> None:
    _ask(router)
    assert lock.calls == []
    result = router.answer_confirmation(answer, site="hall")
    assert result.status is ResultStatus.OK
    assert result.speech == "Unlocked the front door."
    assert lock.calls == [{"door": "front door"}]
    assert router.pending_confirmation("hall") is None


@pytest.mark.parametrize("answer", ["no", "nope", "yes no", "yes unlock the back door", "yesterday",
                                    "turn on the light", "", "   ", "maybe", "oui", "yes yes"])
def test_anything_but_an_explicit_yes_cancels(router: Router, lock: Recorder, answer: str) -> None:
    _ask(router)
    result = router.answer_confirmation(answer, site="hall")
    assert result.status is ResultStatus.CANCELLED
    assert lock.calls == []
    assert router.pending_confirmation("hall") is None
    assert router.answer_confirmation("yes", site="hall").status is ResultStatus.CANCELLED
    assert lock.calls == []


def test_silence_cancels(router: Router, lock: Recorder) -> None:
    _ask(router)
    result = router.answer_confirmation(None, site="hall")
    assert (result.status, result.error_code) == (ResultStatus.CANCELLED, "no_answer")
    assert lock.calls == []


def test_yes_after_the_window_cancels(router: Router, lock: Recorder, clock: ManualClock) -> None:
    _ask(router)
    clock.advance(10.5)
    result = router.answer_confirmation("yes", site="hall")
    assert (result.status, result.error_code) == (ResultStatus.CANCELLED, "confirmation_timeout")
    assert lock.calls == []


def test_yes_just_inside_the_window_runs(router: Router, lock: Recorder, clock: ManualClock) -> None:
    _ask(router)
    clock.advance(9.9)
    assert router.answer_confirmation("yes", site="hall").ok
    assert len(lock.calls) == 1


def test_pending_question_expires(router: Router, lock: Recorder, clock: ManualClock) -> None:
    _ask(router)
    clock.advance(11)
    assert router.pending_confirmation("hall") is None


def test_yes_from_another_site_does_nothing(router: Router, lock: Recorder) -> None:
    _ask(router)
    other = router.answer_confirmation("yes", site="garden")
    assert (other.status, other.error_code) == (ResultStatus.CANCELLED, "nothing_pending")
    assert lock.calls == []
    assert router.pending_confirmation("garden") is None


def test_a_new_call_from_the_site_cancels_the_pending_one(
    registry: ToolRegistry, router: Router, lock: Recorder
) -> None:
    light = Recorder()
    registry.set_group("light", [make_tool("light_on", light)])
    _ask(router)
    assert router.call(ToolCall("light_on"), site="hall").ok
    assert router.pending_confirmation("hall") is None
    assert router.answer_confirmation("yes", site="hall").status is ResultStatus.CANCELLED
    assert lock.calls == []
    assert len(light.calls) == 1


def test_a_call_from_another_site_leaves_the_pending_one(
    registry: ToolRegistry, router: Router, lock: Recorder
) -> None:
    registry.set_group("light", [make_tool("light_on", Recorder())])
    _ask(router)
    router.call(ToolCall("light_on"), site="kitchen")
    assert router.answer_confirmation("yes", site="hall").ok


def test_sensitivity_rule_per_call(registry: ToolRegistry, router: Router) -> None:
    rec = Recorder()
    props = {"position": {"type": "integer", "minimum": 0, "maximum": 100}}
    registry.set_group("cover", [make_tool("garage", rec, props, ("position",),
                                           sensitive=lambda args: args["position"] > 0,
                                           description="Move the garage door.")])
    assert router.call(ToolCall("garage", {"position": "0"}), site="s").ok
    asked = router.call(ToolCall("garage", {"position": 100}), site="s")
    assert asked.status is ResultStatus.NEEDS_CONFIRMATION
    assert asked.speech == "Do you want me to move the garage door: 100?"
    assert rec.calls == [{"position": 0}]


def test_a_broken_sensitivity_rule_asks_rather_than_runs(registry: ToolRegistry, router: Router) -> None:
    def rule(_args: Any) -> bool:
        raise ValueError("oops")

    rec = Recorder()
    registry.set_group("x", [make_tool("risky", rec, sensitive=rule)])
    assert router.call(ToolCall("risky"), site="s").status is ResultStatus.NEEDS_CONFIRMATION
    assert rec.calls == []


def test_tool_replaced_while_waiting_is_not_run(
    registry: ToolRegistry, router: Router, lock: Recorder
) -> None:
    _ask(router)
    registry.set_group("home", [make_tool("unlock", Recorder(), DOOR, ("door",), sensitive=True)])
    result = router.answer_confirmation("yes", site="hall")
    assert (result.status, result.error_code) == (ResultStatus.CANCELLED, "tool_changed")
    assert lock.calls == []


@pytest.fixture
def pin_router(router_factory: Callable[..., Router]) -> Router:
    return router_factory(confirmation_pin=Secret("4321"))


@pytest.mark.parametrize("answer", ["4321", "four three two one", "4 3 2 1", "Four, three, two, one."])
def test_spoken_pin_runs_it(pin_router: Router, lock: Recorder, answer: str) -> None:
    asked = pin_router.call(UNLOCK, site="hall")
    assert asked.speech == "Do you want me to unlock the front door? Say the PIN to confirm."
    assert pin_router.answer_confirmation(answer, site="hall").ok
    assert len(lock.calls) == 1


@pytest.mark.parametrize("answer", ["yes", "1234", "four three two", "43210", "the pin is 4321", None])
def test_wrong_pin_or_plain_yes_cancels(pin_router: Router, lock: Recorder, answer: str | None) -> None:
    pin_router.call(UNLOCK, site="hall")
    assert pin_router.answer_confirmation(answer, site="hall").status is ResultStatus.CANCELLED
    assert lock.calls == []


def test_answer_with_nothing_pending(router: Router) -> None:
    result = router.answer_confirmation("yes", site="hall")
    assert (result.status, result.error_code) == (ResultStatus.CANCELLED, "nothing_pending")


def test_generic_question_from_the_description(registry: ToolRegistry, router: Router) -> None:
    registry.set_group("a", [make_tool("disarm", Recorder(), sensitive=True,
                                       description="Disarm the alarm. Needs care.")])
    assert router.call(ToolCall("disarm"), site="s").speech == "Do you want me to disarm the alarm?"


def test_a_per_call_question_names_the_one_action(registry: ToolRegistry, router: Router) -> None:
    """A tool that unlocks one thing and disarms another asks about the one this call does."""
    props = {"name": {"type": "string", "enum": ["front door", "house alarm", "odd one"]}}
    verbs = {"front door": "unlock", "house alarm": "disarm"}

    def ask(args: Any) -> str | None:
        if args["name"] == "odd one":
            raise RuntimeError("broken question")
        return f"Do you want me to {verbs[args['name']]} the {args['name']}?"

    registry.set_group("home", [make_tool("off", Recorder(), props, ("name",), sensitive=True, ask=ask,
                                          confirm="Do you want me to turn off the {name}?")])
    door = router.call(ToolCall("off", {"name": "front door"}), site="s")
    assert door.speech == "Do you want me to unlock the front door?"
    alarm = router.call(ToolCall("off", {"name": "house alarm"}), site="s")
    assert alarm.speech == "Do you want me to disarm the house alarm?"
    # a failing question falls back to the template, and still asks
    odd = router.call(ToolCall("off", {"name": "odd one"}), site="s")
    assert odd.status is ResultStatus.NEEDS_CONFIRMATION
    assert odd.speech == "Do you want me to turn off the odd one?"
