"""JSON Schema for tool parameters: built from Python signatures, checked, and enforced.

Three jobs, one small schema dialect (a subset of JSON Schema plus OpenAPI's
``nullable``, the dialect that function-calling models are trained on):

- ``schema_from_function`` turns a typed signature and its Google-style docstring
  into a parameters object;
- ``check_schema`` verifies that a hand-written schema (YAML tools, home control)
  stays inside the dialect, so the validator never meets a keyword it would ignore;
- ``validate_arguments`` enforces a schema on untrusted arguments from a brain.

Coercion policy (only what cannot mean two things):

- integer: ``21`` and ``21.0`` -> 21; the text ``"21"`` / ``"-3"`` (ASCII digits) -> int.
  ``"21.5"``, ``21.5``, ``True`` are refused.
- number: ints -> float; the text ``"21.5"`` / ``"21"`` -> float. NaN and infinities
  are refused; so are booleans.
- boolean: ``True`` / ``False``; the text ``"true"`` / ``"false"`` (any case) -> bool.
  ``"yes"``, ``1``, ``0`` are refused (they could be a count or an answer).
- string: text only; numbers are not turned into text.
- enum: an exact member, or the one member equal to the value ignoring case.
- ``None`` only where the property says ``nullable: true``.
"""

from __future__ import annotations

import enum
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from assistant.errors import ToolError

JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")

_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "title",
        "enum",
        "default",
        "nullable",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
    }
)
"""Every keyword the validator enforces or may safely ignore (description, title, default)."""

_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_NUMBER_TEXT = re.compile(r"[+-]?[0-9]{1,18}(\.[0-9]{1,18})?")
_MAX_DEPTH = 8


class SchemaError(ToolError):
    """A schema (or a signature it was built from) is outside the supported dialect."""

    code = "schema_invalid"


class ArgumentError(ToolError):
    """Arguments do not match a tool's schema; ``code`` says how."""

    code = "invalid_arguments"


@dataclass(frozen=True)
class Range:
    """``Annotated[int, Range(0, 100)]``: inclusive bounds of a number (None = open)."""

    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Field:
    """``Annotated[str, Field(...)]``: extra schema facts for one parameter."""

    description: str = ""
    min_length: int | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class FunctionSchema:
    """What a signature says: description, parameters object, and defaults to fill."""

    description: str
    parameters: dict[str, Any]
    fill_none: frozenset[str]
    """Optional parameters without a default: the handler gets None when they are omitted."""


# --------------------------------------------------------------------------- from signatures

def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Summary and per-argument descriptions from a Google-style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            break
        if line.strip().endswith(":") and line.strip()[:-1] in {"Args", "Arguments", "Returns", "Raises"}:
            break
        summary.append(line.strip())
    args: dict[str, str] = {}
    in_args = False
    current: str | None = None
    indent = 0
    for line in lines:
        stripped = line.strip()
        if stripped in {"Args:", "Arguments:", "Parameters:"}:
            in_args, current = True, None
            indent = -1
            continue
        if not in_args:
            continue
        if not stripped:
            current = None
            continue
        line_indent = len(line) - len(line.lstrip())
        if line_indent == 0:  # next section (Returns:, Raises:, ...)
            in_args = False
            continue
        if indent < 0:
            indent = line_indent
        match = re.match(r"(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)", stripped)
        if line_indent == indent and match:
            current = match.group(1).lstrip("*")
            args[current] = match.group(3).strip()
        elif current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(summary), args


def schema_for_annotation(annotation: Any, *, where: str = "") -> tuple[dict[str, Any], bool]:
    """JSON Schema for one type hint, and whether it admits None."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        schema, nullable = schema_for_annotation(args[0], where=where)
        for marker in args[1:]:
            if isinstance(marker, Range):
                if schema.get("type") not in ("integer", "number"):
                    raise SchemaError(f"{where}: Range applies to int or float only")
                if marker.minimum is not None:
                    schema["minimum"] = marker.minimum
                if marker.maximum is not None:
                    schema["maximum"] = marker.maximum
            elif isinstance(marker, Field):
                if marker.description:
                    schema["description"] = marker.description
                if marker.min_length is not None or marker.max_length is not None:
                    if schema.get("type") != "string":
                        raise SchemaError(f"{where}: min_length/max_length apply to str only")
                    if marker.min_length is not None:
                        schema["minLength"] = marker.min_length
                    if marker.max_length is not None:
                        schema["maxLength"] = marker.max_length
        return schema, nullable
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) != 1:
            raise SchemaError(f"{where}: unions other than X | None are not supported: {annotation!r}")
        schema, _ = schema_for_annotation(non_none[0], where=where)
        return schema, type(None) in args
    if origin is Literal:
        return _enum_schema(list(args), where), False
    if origin in (list, tuple, typing.Sequence) or annotation is list:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise SchemaError(f"{where}: only tuple[X, ...] is supported")
        if not args:
            raise SchemaError(f"{where}: list needs an item type, e.g. list[str]")
        items, _ = schema_for_annotation(args[0], where=f"{where}[]")
        return {"type": "array", "items": items}, False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_schema([m.value for m in annotation], where), False
    if annotation is bool:
        return {"type": "boolean"}, False
    if annotation is int:
        return {"type": "integer"}, False
    if annotation is float:
        return {"type": "number"}, False
    if annotation is str:
        return {"type": "string"}, False
    raise SchemaError(f"{where}: unsupported parameter type {annotation!r}")


def _enum_schema(values: list[Any], where: str) -> dict[str, Any]:
    if not values:
        raise SchemaError(f"{where}: empty enum")
    if all(isinstance(v, str) for v in values):
        kind = "string"
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        kind = "integer"
    else:
        raise SchemaError(f"{where}: enum values must be all text or all whole numbers")
    return {"type": kind, "enum": list(values)}


def schema_from_function(fn: Callable[..., Any]) -> FunctionSchema:
    """Parameters schema of a (bound) function from its type hints and docstring."""
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as err:  # a forward reference that does not resolve, ...
        raise SchemaError(f"{name}: cannot read type hints: {err}") from err
    summary, arg_docs = parse_docstring(inspect.getdoc(fn))
    properties: dict[str, Any] = {}
    required: list[str] = []
    fill_none: set[str] = set()
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise SchemaError(f"{name}: *args / **kwargs cannot be described by a schema")
        if param.kind is param.POSITIONAL_ONLY:
            raise SchemaError(f"{name}: positional-only parameter {param.name!r}")
        if param.name not in hints:
            raise SchemaError(f"{name}: parameter {param.name!r} has no type hint")
        schema, nullable = schema_for_annotation(hints[param.name], where=f"{name}({param.name})")
        description = arg_docs.get(param.name)
        if description and "description" not in schema:
            schema = {"description": description, **schema}
        if nullable:
            schema["nullable"] = True
        if param.default is inspect.Parameter.empty:
            if nullable:
                fill_none.add(param.name)
            else:
                required.append(param.name)
        elif param.default is not None:
            default = param.default.value if isinstance(param.default, enum.Enum) else param.default
            if isinstance(default, (str, int, float, bool)):
                schema["default"] = default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    return FunctionSchema(summary, parameters, frozenset(fill_none))


# --------------------------------------------------------------------------- checking

def check_schema(schema: Any, *, where: str = "parameters", _depth: int = 0) -> None:
    """Raise SchemaError unless ``schema`` is a parameters object in the supported dialect."""
    if _depth == 0 and (not isinstance(schema, Mapping) or schema.get("type") != "object"):
        raise SchemaError(f"{where}: must be a JSON Schema object with type 'object'")
    _check_node(schema, where, _depth)


def _check_node(node: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{where}: nested too deep")
    if not isinstance(node, Mapping):
        raise SchemaError(f"{where}: must be a mapping")
    # "x-..." keys are annotations for brains (e.g. x-entity-domains), not validation rules
    unknown = sorted(k for k in set(map(str, node)) - _KEYWORDS if not k.startswith("x-"))
    if unknown:
        raise SchemaError(f"{where}: unsupported keyword(s) {', '.join(unknown)}")
    kind = node.get("type")
    if kind not in JSON_TYPES:
        raise SchemaError(f"{where}: type must be one of {', '.join(JSON_TYPES)}, got {kind!r}")
    if "description" in node and not isinstance(node["description"], str):
        raise SchemaError(f"{where}: description must be text")
    if "nullable" in node and not isinstance(node["nullable"], bool):
        raise SchemaError(f"{where}: nullable must be true or false")
    for key in ("minimum", "maximum"):
        if key in node:
            if kind not in ("integer", "number"):
                raise SchemaError(f"{where}: {key} applies to numbers only")
            if not _is_number(node[key]):
                raise SchemaError(f"{where}: {key} must be a number")
    if "minimum" in node and "maximum" in node and node["minimum"] > node["maximum"]:
        raise SchemaError(f"{where}: minimum is above maximum")
    for key, applies in (("minLength", "string"), ("maxLength", "string"), ("minItems", "array"),
                         ("maxItems", "array")):
        if key in node:
            if kind != applies:
                raise SchemaError(f"{where}: {key} applies to {applies} only")
            value = node[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SchemaError(f"{where}: {key} must be a whole number >= 0")
    if "enum" in node:
        values = node["enum"]
        if not isinstance(values, (list, tuple)) or not values:
            raise SchemaError(f"{where}: enum must be a non-empty list")
        for value in values:
            if not _has_type(kind, value):
                raise SchemaError(f"{where}: enum value {value!r} is not of type {kind}")
    if kind == "array":
        if "items" not in node:
            raise SchemaError(f"{where}: array needs items")
        _check_node(node["items"], f"{where}[]", depth + 1)
    elif "items" in node:
        raise SchemaError(f"{where}: items applies to arrays only")
    if kind == "object":
        props = node.get("properties", {})
        if not isinstance(props, Mapping):
            raise SchemaError(f"{where}: properties must be a mapping")
        for name, sub in props.items():
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise SchemaError(f"{where}: bad property name {name!r} (letters, digits, _)")
            _check_node(sub, f"{where}.{name}", depth + 1)
        required = node.get("required", [])
        if not isinstance(required, (list, tuple)) or any(r not in props for r in required):
            raise SchemaError(f"{where}: required must list declared properties")
        if node.get("additionalProperties", False) is not False:
            raise SchemaError(f"{where}: additionalProperties must be false")
    elif "properties" in node or "required" in node:
        raise SchemaError(f"{where}: properties/required apply to objects only")


def _has_type(kind: Any, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- validating

def validate_arguments(schema: Mapping[str, Any], arguments: Any) -> dict[str, Any]:
    """Checked (and conservatively coerced) copy of ``arguments``; raises ArgumentError.

    ``schema`` must have passed ``check_schema``. Never mutates ``arguments``.
    """
    if not isinstance(arguments, Mapping):
        raise ArgumentError("arguments must be an object", code="invalid_arguments")
    result = _validate(schema, arguments, "", 0)
    assert isinstance(result, dict)  # noqa: S101 - an object schema always yields a dict
    return result


def _validate(schema: Mapping[str, Any], value: Any, where: str, depth: int) -> Any:
    label = where or "arguments"
    if value is None:
        if schema.get("nullable") is True:
            return None
        raise ArgumentError(f"{label}: must not be null", code="wrong_type")
    kind = schema.get("type")
    if depth > _MAX_DEPTH:
        raise ArgumentError(f"{label}: nested too deep", code="wrong_type")
    if kind == "object":
        return _validate_object(schema, value, where, depth)
    if kind == "array":
        if not isinstance(value, (list, tuple)):
            raise ArgumentError(f"{label}: must be a list", code="wrong_type")
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            raise ArgumentError(f"{label}: wrong number of items", code="out_of_range")
        items = schema["items"]
        return [_validate(items, v, f"{label}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind == "integer":
        out: Any = _to_int(value, label)
    elif kind == "number":
        out = _to_float(value, label)
    elif kind == "boolean":
        out = _to_bool(value, label)
    elif kind == "string":
        if not isinstance(value, str):
            raise ArgumentError(f"{label}: must be text", code="wrong_type")
        out = value
        if len(out) < schema.get("minLength", 0) or len(out) > schema.get("maxLength", len(out)):
            raise ArgumentError(f"{label}: text length out of range", code="out_of_range")
    else:
        raise ArgumentError(f"{label}: schema has unsupported type {kind!r}", code="schema_invalid")
    allowed = schema.get("enum")
    if allowed is not None:
        out = _enum_member(allowed, out, label)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and out < low) or (high is not None and out > high):
            raise ArgumentError(f"{label}: {out} is outside {low}..{high}", code="out_of_range")
    return out


def _validate_object(schema: Mapping[str, Any], value: Any, where: str, depth: int) -> dict[str, Any]:
    label = where or "arguments"
    if not isinstance(value, Mapping):
        raise ArgumentError(f"{label}: must be an object", code="wrong_type")
    props: Mapping[str, Any] = schema.get("properties", {})
    extra = [k for k in value if k not in props]
    if extra:
        names = ", ".join(sorted(repr(k)[:40] for k in extra)[:5])
        raise ArgumentError(f"{label}: unexpected argument(s) {names}", code="unexpected_argument")
    missing = [k for k in schema.get("required", ()) if k not in value]
    if missing:
        raise ArgumentError(f"{label}: missing argument(s) {', '.join(missing)}", code="missing_argument")
    prefix = f"{where}." if where else ""
    return {k: _validate(props[k], v, f"{prefix}{k}", depth + 1) for k, v in value.items()}


def _to_int(value: Any, label: str) -> int:
    if isinstance(value, bool):
        raise ArgumentError(f"{label}: must be a whole number", code="wrong_type")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise ArgumentError(f"{label}: must be a whole number", code="wrong_type")


def _to_float(value: Any, label: str) -> float:
    if isinstance(value, bool):
        raise ArgumentError(f"{label}: must be a number", code="wrong_type")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise ArgumentError(f"{label}: must be a finite number", code="wrong_type")
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value.strip()):
        return float(value.strip())
    raise ArgumentError(f"{label}: must be a number", code="wrong_type")


def _to_bool(value: Any, label: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArgumentError(f"{label}: must be true or false", code="wrong_type")


def _enum_member(allowed: Any, value: Any, label: str) -> Any:
    for member in allowed:
        if member == value and isinstance(member, bool) == isinstance(value, bool):
            return member
    if isinstance(value, str):
        folded = value.casefold()
        matches = [m for m in allowed if isinstance(m, str) and m.casefold() == folded]
        if len(matches) == 1:
            return matches[0]
    shown = ", ".join(str(m) for m in list(allowed)[:8])
    raise ArgumentError(f"{label}: {str(value)[:40]!r} is not one of {shown}", code="not_allowed")
