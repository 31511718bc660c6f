"""Schema generation from signatures, and the schema checker."""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Optional

import pytest

from assistant.tools.declare import make_tool, tool
from assistant.tools.schema import (
    Field,
    Range,
    SchemaError,
    check_schema,
    parse_docstring,
    schema_from_function,
)


class Mode(enum.Enum):
    HEAT = "heat"
    COOL = "cool"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


def _props(fn: object) -> dict[str, object]:
    return schema_from_function(fn).parameters["properties"]  # type: ignore[arg-type,no-any-return]


def test_scalars_map_to_json_types() -> None:
    def f(a: int, b: float, c: str, d: bool) -> None:
        """F."""

    assert _props(f) == {"a": {"type": "integer"}, "b": {"type": "number"}, "c": {"type": "string"},
                         "d": {"type": "boolean"}}


def test_enum_and_int_enum() -> None:
    def f(mode: Mode, level: Level) -> None:
        """F."""

    assert _props(f) == {"mode": {"type": "string", "enum": ["heat", "cool"]},
                         "level": {"type": "integer", "enum": [1, 3]}}


def test_literal_strings_and_ints() -> None:
    def f(color: Literal["red", "green"], n: Literal[1, 2]) -> None:
        """F."""

    assert _props(f) == {"color": {"type": "string", "enum": ["red", "green"]},
                         "n": {"type": "integer", "enum": [1, 2]}}


def test_mixed_literal_is_refused() -> None:
    def f(x: Literal["a", 1]) -> None:
        """F."""

    with pytest.raises(SchemaError):
        schema_from_function(f)


def test_optional_forms_are_nullable_and_not_required() -> None:
    def f(a: int | None = None, b: Optional[str] = None, c: str | None = "x") -> None:  # noqa: UP045 - the old spelling is what is tested
        """F."""

    schema = schema_from_function(f).parameters
    assert schema["properties"]["a"] == {"type": "integer", "nullable": True}
    assert schema["properties"]["b"] == {"type": "string", "nullable": True}
    assert schema["properties"]["c"] == {"type": "string", "nullable": True, "default": "x"}
    assert "required" not in schema


def test_optional_without_default_is_filled_with_none() -> None:
    seen: list[object] = []

    def f(label: str | None) -> None:
        """F."""
        seen.append(label)

    t = make_tool(f)
    assert "required" not in t.parameters
    t.handler()
    assert seen == [None]


def test_list_of_items_and_tuple_ellipsis() -> None:
    def f(names: list[str], levels: list[Annotated[int, Range(0, 9)]], t: tuple[float, ...]) -> None:
        """F."""

    assert _props(f) == {
        "names": {"type": "array", "items": {"type": "string"}},
        "levels": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}},
        "t": {"type": "array", "items": {"type": "number"}},
    }


def test_annotated_range_and_field() -> None:
    def f(level: Annotated[int, Range(0, 100)], temp: Annotated[float, Range(maximum=30.5)],
          name: Annotated[str, Field(description="Who", max_length=10)]) -> None:
        """F."""

    assert _props(f) == {
        "level": {"type": "integer", "minimum": 0, "maximum": 100},
        "temp": {"type": "number", "maximum": 30.5},
        "name": {"type": "string", "description": "Who", "maxLength": 10},
    }


def test_range_on_text_is_refused() -> None:
    def f(name: Annotated[str, Range(0, 1)]) -> None:
        """F."""

    with pytest.raises(SchemaError):
        schema_from_function(f)


def test_defaults_are_not_required_and_recorded() -> None:
    def f(a: int, b: int = 3, mode: Mode = Mode.COOL) -> None:
        """F."""

    schema = schema_from_function(f).parameters
    assert schema["required"] == ["a"]
    assert schema["properties"]["b"]["default"] == 3
    assert schema["properties"]["mode"]["default"] == "cool"
    assert schema["additionalProperties"] is False


def test_docstring_supplies_descriptions() -> None:
    def start_timer(minutes: int, label: str | None = None) -> None:
        """Start a countdown timer.

        Runs in the background.

        Args:
            minutes: Length of the timer
                in minutes.
            label (str): Optional name.

        Returns:
            Nothing.
        """

    described = schema_from_function(start_timer)
    assert described.description == "Start a countdown timer."
    assert described.parameters["properties"]["minutes"]["description"] == "Length of the timer in minutes."
    assert described.parameters["properties"]["label"]["description"] == "Optional name."


def test_parse_docstring_without_args() -> None:
    summary = ("Just a summary spanning two lines.", {})
    assert parse_docstring("Just a summary\nspanning two lines.") == summary
    assert parse_docstring(None) == ("", {})


@pytest.mark.parametrize("annotation", [dict, set, "int | str", object, bytes])
def test_unsupported_annotations_are_refused(annotation: object) -> None:
    def f(x):  # type: ignore[no-untyped-def]
        """F."""

    f.__annotations__ = {"x": annotation}
    with pytest.raises(SchemaError):
        schema_from_function(f)


def test_missing_hint_and_varargs_are_refused() -> None:
    def f(x, y: int) -> None:  # type: ignore[no-untyped-def]
        """F."""

    def g(*args: int) -> None:
        """G."""

    with pytest.raises(SchemaError):
        schema_from_function(f)
    with pytest.raises(SchemaError):
        schema_from_function(g)


def test_bound_method_skips_self_and_decorator_keeps_function_usable() -> None:
    class Skill:
        @tool(reply="Set to {level}.", sentences=("set to {level}",))
        def set_level(self, level: Annotated[int, Range(1, 5)]) -> dict[str, int]:
            """Set the level."""
            return {"level": level}

    skill = Skill()
    assert skill.set_level(2) == {"level": 2}
    built = make_tool(skill.set_level)
    assert built.name == "set_level"
    assert list(built.parameters["properties"]) == ["level"]
    assert built.reply == "Set to {level}."
    assert built.sentences == ("set to {level}",)
    assert built.handler(level=3) == {"level": 3}


def test_tool_without_description_is_refused() -> None:
    def nodoc(a: int) -> None:
        pass

    with pytest.raises(SchemaError):
        make_tool(nodoc)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string"},
        {"type": "object", "properties": {"a": {"type": "integer", "pattern": "x"}}},
        {"type": "object", "properties": {"a": {"type": "float"}}},
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}},
        {"type": "object", "properties": {"a": {"type": "string", "enum": ["x", 1]}}},
        {"type": "object", "properties": {"a": {"type": "array"}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"type": "object", "properties": {"bad name": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "string", "minimum": 1}}},
    ],
)
def test_check_schema_refuses_what_the_validator_would_not_enforce(schema: dict[str, object]) -> None:
    with pytest.raises(SchemaError):
        check_schema(schema)


def test_check_schema_accepts_generated_schemas() -> None:
    def f(a: Annotated[int, Range(0, 5)], b: list[Mode], c: str | None = None) -> None:
        """F."""

    check_schema(schema_from_function(f).parameters)
