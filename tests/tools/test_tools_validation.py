"""Router validation: refusals with codes, conservative coercion, and a fuzz test."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tools_helpers import Recorder, make_tool

from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.tools.schema import ArgumentError, validate_arguments
from assistant.types import ResultStatus, ToolCall

PROPS: dict[str, Any] = {
    "level": {"type": "integer", "minimum": 0, "maximum": 100},
    "temp": {"type": "number", "minimum": 5, "maximum": 30},
    "on": {"type": "boolean"},
    "mode": {"type": "string", "enum": ["heat", "cool", "auto"]},
    "name": {"type": "string", "maxLength": 20},
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    "note": {"type": "string", "nullable": True},
}
SCHEMA: dict[str, Any] = {"type": "object", "properties": PROPS, "required": ["level"],
                          "additionalProperties": False}


@pytest.fixture
def recorder(registry: ToolRegistry) -> Recorder:
    rec = Recorder({"ok": True})
    assert registry.set_group("test", [make_tool("thing", rec, PROPS, ("level",))]) == []
    return rec


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({}, "missing_argument"),
        ({"level": 5, "colour": "red"}, "unexpected_argument"),
        ({"level": "five"}, "wrong_type"),
        ({"level": 5.5}, "wrong_type"),
        ({"level": "21.5"}, "wrong_type"),
        ({"level": True}, "wrong_type"),
        ({"level": None}, "wrong_type"),
        ({"level": 101}, "out_of_range"),
        ({"level": -1}, "out_of_range"),
        ({"level": 5, "temp": 31}, "out_of_range"),
        ({"level": 5, "temp": float("nan")}, "wrong_type"),
        ({"level": 5, "temp": "warm"}, "wrong_type"),
        ({"level": 5, "on": "yes"}, "wrong_type"),
        ({"level": 5, "on": 1}, "wrong_type"),
        ({"level": 5, "mode": "dry"}, "not_allowed"),
        ({"level": 5, "name": 42}, "wrong_type"),
        ({"level": 5, "name": "x" * 21}, "out_of_range"),
        ({"level": 5, "tags": "a"}, "wrong_type"),
        ({"level": 5, "tags": ["a", 1]}, "wrong_type"),
        ({"level": 5, "tags": ["a", "b", "c", "d"]}, "out_of_range"),
    ],
)
def test_invalid_arguments_are_refused_with_a_code_and_nothing_runs(
    router: Router, recorder: Recorder, arguments: dict[str, Any], code: str
) -> None:
    result = router.call(ToolCall("thing", arguments), site="s")
    assert (result.status, result.error_code) == (ResultStatus.ERROR, code)
    assert result.speech.startswith("Sorry")
    assert recorder.calls == []


def test_unknown_tool(router: Router, recorder: Recorder) -> None:
    result = router.call(ToolCall("unlock_everything", {}), site="s")
    assert (result.status, result.error_code) == (ResultStatus.ERROR, "unknown_tool")
    assert recorder.calls == []


def test_arguments_that_are_not_an_object(router: Router, recorder: Recorder) -> None:
    result = router.call(ToolCall("thing", ["level", 5]), site="s")  # type: ignore[arg-type]
    assert result.error_code == "invalid_arguments"
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"level": "21"}, {"level": 21}),
        ({"level": " 21 "}, {"level": 21}),
        ({"level": 21.0}, {"level": 21}),
        ({"level": 5, "temp": "21.5"}, {"level": 5, "temp": 21.5}),
        ({"level": 5, "temp": 21}, {"level": 5, "temp": 21.0}),
        ({"level": 5, "on": "true"}, {"level": 5, "on": True}),
        ({"level": 5, "on": "False"}, {"level": 5, "on": False}),
        ({"level": 5, "mode": "HEAT"}, {"level": 5, "mode": "heat"}),
        ({"level": 5, "note": None}, {"level": 5, "note": None}),
    ],
)
def test_unambiguous_values_are_coerced(
    router: Router, recorder: Recorder, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    result = router.call(ToolCall("thing", arguments), site="s")
    assert result.status is ResultStatus.OK
    assert recorder.calls == [expected]
    assert type(recorder.calls[0]["level"]) is int
    if "temp" in expected:
        assert type(recorder.calls[0]["temp"]) is float


def test_validation_does_not_mutate_the_callers_arguments() -> None:
    arguments = {"level": "7", "tags": ["a"]}
    out = validate_arguments(SCHEMA, arguments)
    assert arguments == {"level": "7", "tags": ["a"]}
    assert out == {"level": 7, "tags": ["a"]}
    out["tags"].append("b")
    assert arguments["tags"] == ["a"]


def test_ambiguous_enum_case_is_refused() -> None:
    schema = {"type": "object", "properties": {"m": {"type": "string", "enum": ["On", "ON"]}}}
    with pytest.raises(ArgumentError) as err:
        validate_arguments(schema, {"m": "on"})
    assert err.value.code == "not_allowed"
    assert validate_arguments(schema, {"m": "ON"}) == {"m": "ON"}


# --------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12,
)
names = st.sampled_from(["thing", "Thing", "", "thing ", "other"]) | st.text(max_size=12)
arg_keys = st.sampled_from(sorted(PROPS)) | st.text(max_size=8)
arguments = st.dictionaries(arg_keys, json_values, max_size=6) | json_values


def _is_valid(args: Any) -> bool:
    try:
        validate_arguments(SCHEMA, args)
    except ArgumentError:
        return False
    return True


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=names, args=arguments)
def test_fuzzed_calls_never_raise_and_never_run_invalid_input(
    router: Router, recorder: Recorder, name: str, args: Any
) -> None:
    before = len(recorder.calls)
    result = router.call(ToolCall(name, args), site="fuzz")
    ran = len(recorder.calls) - before
    should_run = name == "thing" and _is_valid(args)
    assert ran == (1 if should_run else 0)
    assert result.status is (ResultStatus.OK if should_run else ResultStatus.ERROR)
    if ran:
        passed = recorder.calls[-1]
        # What reached the handler satisfies the schema exactly, with no coercion left to do.
        assert validate_arguments(SCHEMA, passed) == passed
        assert set(passed) <= set(PROPS)
        assert 0 <= passed["level"] <= 100


@settings(max_examples=200, deadline=None, derandomize=True)
@given(args=st.dictionaries(st.sampled_from(sorted(PROPS)), json_values, max_size=7))
def test_fuzzed_validator_raises_only_argument_errors(args: dict[str, Any]) -> None:
    try:
        validate_arguments(SCHEMA, args)
    except ArgumentError as err:
        assert err.code in {"missing_argument", "unexpected_argument", "wrong_type", "out_of_range",
                            "not_allowed", "invalid_arguments"}


def test_malformed_call_objects_do_not_raise(router: Router, recorder: Recorder) -> None:
    assert router.call(None, site="s").error_code == "internal_error"  # type: ignore[arg-type]
    assert router.call(ToolCall(5, {}), site="s").error_code == "unknown_tool"  # type: ignore[arg-type]
    assert router.call(ToolCall("thing", {1: 2, "level": 1}), site="s").error_code == "unexpected_argument"
    assert recorder.calls == []
