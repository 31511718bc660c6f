"""Gemma 4's native function-calling text: tool declarations and tool-response blocks.

The shapes follow the chat template that ships with the Gemma 4 checkpoints
(reference: shared/reference/gemma4.md section 4): strings wrapped in ``<|"|>``,
keys sorted, JSON-Schema types upper-cased, declarations as
``<|tool>declaration:NAME{...}<tool|>`` and results as
``<|tool_response>response:NAME{...}<tool_response|>``.

Text that reaches the prompt from outside (descriptions, entity names, result data)
is stripped of anything shaped like a model control token, so a device called
``<|tool_call>call:...`` cannot inject a call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.tools.base import Tool
from assistant.types import ResultStatus, ToolResult

QUOTE = '<|"|>'
"""Gemma 4's string delimiter token."""

# Control tokens look like <|name>, <name|> or <|name|>; none may survive in data.
_CONTROL_RE = re.compile(r"<\|[^<>\s]{0,40}>|<[^<>\s|]{1,40}\|>")


def sanitize(text: str) -> str:
    """Remove model control sequences (``<|...>``, ``<...|>``) from outside text."""
    previous = None
    # Repeat: removing one sequence may join the halves of another.
    while previous != text:
        previous = text
        text = _CONTROL_RE.sub("", text)
    return text


def format_value(value: Any, *, escape_keys: bool = True) -> str:
    """Serialise a JSON-like value the way the Gemma 4 template's ``format_argument`` does.

    Strings -> ``<|"|>text<|"|>``; booleans -> ``true``/``false``; numbers bare;
    mappings -> ``{key:value,...}`` with sorted keys (keys wrapped in ``<|"|>`` when
    ``escape_keys``); sequences -> ``[a,b]``; None -> ``null`` (the template would
    print Python's ``None``).
    """
    if isinstance(value, str):
        return QUOTE + sanitize(value) + QUOTE
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        return repr(value)
    if isinstance(value, Mapping):
        parts = []
        for key in sorted(value, key=str):
            name = sanitize(str(key))
            rendered_key = QUOTE + name + QUOTE if escape_keys else name
            parts.append(f"{rendered_key}:{format_value(value[key], escape_keys=escape_keys)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, Sequence | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return "[" + ",".join(format_value(item, escape_keys=escape_keys) for item in items) + "]"
    return format_value(str(value), escape_keys=escape_keys)


def _schema_type(schema: Mapping[str, Any]) -> tuple[str, bool]:
    """The upper-case type of a property schema and whether it may be null.

    JSON-Schema forms the template does not know (``["integer", "null"]``,
    ``anyOf`` with a null branch) are folded into one type plus ``nullable``.
    """
    nullable = bool(schema.get("nullable", False))
    raw = schema.get("type")
    if isinstance(raw, list):
        kinds = [str(kind) for kind in raw if kind != "null"]
        nullable = nullable or "null" in raw
        raw = kinds[0] if kinds else "string"
    if raw is None:
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list):
                branch_types: list[Any] = [b.get("type") for b in branches if isinstance(b, Mapping)]
                nullable = nullable or "null" in branch_types
                real = [str(k) for k in branch_types if k not in (None, "null")]
                if real:
                    raw = real[0]
                    break
    if raw is None:
        raw = "string"
    return str(raw).upper(), nullable


def _effective(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema itself, or its single non-null ``anyOf``/``oneOf`` branch merged with it."""
    if "type" in schema:
        return schema
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            real = [b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
            if len(real) == 1:
                merged = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                merged.update({k: v for k, v in real[0].items() if k not in merged})
                return merged
    return schema


def _required_list(required: Any) -> str:
    names = [str(name) for name in required] if isinstance(required, list | tuple) else []
    return "[" + ",".join(QUOTE + sanitize(name) + QUOTE for name in names) + "]"


def _format_items(items: Mapping[str, Any]) -> str:
    """The ``items:{...}`` body of an array property (keys sorted, as the template does)."""
    parts = []
    for key in sorted(items):
        value = items[key]
        if value is None:
            continue
        if key == "properties":
            body = (
                _format_properties(value, items.get("required") or []) if isinstance(value, Mapping) else ""
            )
            parts.append("properties:{" + body + "}")
        elif key == "required":
            parts.append("required:" + _required_list(value))
        elif key == "type":
            if isinstance(value, str):
                parts.append("type:" + format_value(value.upper()))
            else:
                parts.append("type:" + format_value([str(v).upper() for v in value]))
        else:
            parts.append(f"{sanitize(str(key))}:{format_value(value)}")
    return "items:{" + ",".join(parts) + "}"


def _format_property(schema: Mapping[str, Any]) -> str:
    """One property's ``{description:...,type:...}`` body."""
    schema = _effective(schema)
    kind, nullable = _schema_type(schema)
    parts = []
    description = schema.get("description")
    if description:
        parts.append("description:" + format_value(str(description)))
    if kind == "STRING":
        enum = schema.get("enum")
        if enum:
            parts.append("enum:" + format_value(list(enum)))
    elif kind == "ARRAY":
        items = schema.get("items")
        if isinstance(items, Mapping) and items:
            parts.append(_format_items(items))
    if nullable:
        parts.append("nullable:true")
    if kind == "OBJECT":
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            parts.append("properties:{" + _format_properties(properties, schema.get("required") or []) + "}")
        if schema.get("required"):
            parts.append("required:" + _required_list(schema["required"]))
    parts.append("type:" + format_value(kind))
    return "{" + ",".join(parts) + "}"


def _format_properties(properties: Mapping[str, Any], required: Any) -> str:
    """``name:{...},name:{...}`` with names sorted (``required`` is rendered by the caller)."""
    del required  # the template passes it along but renders it one level up
    return ",".join(
        f"{sanitize(str(name))}:{_format_property(schema if isinstance(schema, Mapping) else {})}"
        for name, schema in sorted(properties.items())
    )


def render_declaration(tool: Tool) -> str:
    """One tool as ``<|tool>declaration:NAME{description:...,parameters:{...}}<tool|>``."""
    params = tool.parameters or {}
    body = "declaration:" + sanitize(tool.name) + "{description:" + format_value(tool.description)
    if params:
        body += ",parameters:{"
        properties = params.get("properties")
        if properties:
            body += "properties:{" + _format_properties(properties, params.get("required")) + "},"
        if params.get("required"):
            body += "required:" + _required_list(params["required"]) + ","
        body += "type:" + format_value(str(params.get("type", "object")).upper()) + "}"
    body += "}"
    return "<|tool>" + body + "<tool|>"


def render_declarations(tools: Sequence[Tool]) -> str:
    """All declarations, concatenated in the given order (no separators, as the template)."""
    return "".join(render_declaration(tool) for tool in tools)


def response_payload(result: ToolResult) -> dict[str, Any]:
    """What the model is told about a result, as a mapping."""
    if result.status is ResultStatus.OK:
        payload = dict(result.data)
        if not payload:
            payload = {"status": "ok"}
        return payload
    if result.status is ResultStatus.ERROR:
        payload = {"status": "error", "error": result.error_code or "error"}
        if result.speech:
            payload["message"] = result.speech
        return payload
    if result.status is ResultStatus.NEEDS_CONFIRMATION:
        return {"status": "needs_confirmation", "question": result.speech}
    return {"status": str(result.status)}


def render_response(result: ToolResult) -> str:
    """The ``<|tool_response>response:NAME{...}<tool_response|>`` block for one result."""
    payload = response_payload(result)
    inner = ",".join(
        f"{sanitize(str(key))}:{format_value(payload[key], escape_keys=False)}" for key in sorted(payload)
    )
    return "<|tool_response>response:" + sanitize(result.call.name) + "{" + inner + "}<tool_response|>"


def render_call(name: str, arguments: Mapping[str, Any]) -> str:
    """A call as the model writes it: ``<|tool_call>call:NAME{k:v}<tool_call|>``."""
    inner = ",".join(
        f"{sanitize(str(key))}:{format_value(arguments[key], escape_keys=False)}" for key in sorted(arguments)
    )
    return "<|tool_call>call:" + sanitize(name) + "{" + inner + "}<tool_call|>"
