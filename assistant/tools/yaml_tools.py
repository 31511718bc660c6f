"""Tools declared in YAML: publish a payload to an MQTT topic, no code.

::

    tools:
      - name: garage_light
        description: Switch the garage light on or off.
        topic: home/garage/light/set          # fixed; + and # are refused
        payload: '{"state": "{state}"}'       # text; {param} fields filled from arguments
        # or a mapping, sent as JSON, where a value that is exactly "{param}" keeps its type:
        # payload: {state: "{state}", brightness: "{level}"}
        retain: false
        reply: Garage light {state}.
        sensitive: false
        confirm: Do you want me to switch the garage light {state}?
        sentences: ["turn (on|off) [the] garage light"]
        parameters:
          state: {type: string, enum: ["ON", "OFF"], description: On or off}
          level: {type: integer, minimum: 0, maximum: 100, required: false}

A parameter is required unless it says ``required: false`` or has a ``default``.
Topics never contain fields: nothing a model says can choose where a message goes.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from assistant.tools.base import Tool
from assistant.tools.context import Publish
from assistant.tools.schema import SchemaError, check_schema

_TOOL_KEYS = frozenset(
    {"name", "description", "topic", "payload", "retain", "reply", "sensitive", "confirm", "sentences",
     "parameters", "timeout_s"}
)
_FORMATTER = string.Formatter()
_MAX_FILE_BYTES = 1_000_000


class YamlToolError(SchemaError):
    """A YAML tool file is invalid."""

    code = "yaml_tool_invalid"


def check_topic(topic: Any, *, where: str = "topic") -> str:
    """``topic`` if it is a publishable MQTT topic name (no wildcards, no fields); else raise."""
    if not isinstance(topic, str) or not topic:
        raise YamlToolError(f"{where}: must be non-empty text")
    if "+" in topic or "#" in topic:
        raise YamlToolError(f"{where}: wildcards + and # are not allowed in a publish topic: {topic!r}")
    if "\x00" in topic or len(topic.encode("utf-8")) > 65535:
        raise YamlToolError(f"{where}: not a valid MQTT topic")
    if "{" in topic or "}" in topic:
        raise YamlToolError(f"{where}: topics cannot contain {{fields}}")
    return topic


class HasPublish(Protocol):
    """Anything holding the publish hook (a SkillContext); read at call time."""

    @property
    def publish(self) -> Publish:
        """The hook that sends one MQTT message."""
        ...


def load_yaml_tools(path: Path, services: HasPublish) -> list[Tool]:
    """Tools declared in the YAML file at ``path``; raises YamlToolError with the path on any problem."""
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise YamlToolError(f"{path}: file larger than {_MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise YamlToolError(f"{path}: cannot read: {err}") from None
    return parse_yaml_tools(text, services, source=str(path))


def parse_yaml_tools(text: str, services: HasPublish, *, source: str = "<yaml>") -> list[Tool]:
    """Tools declared in YAML ``text``; raises YamlToolError naming ``source``."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise YamlToolError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(doc, Mapping) or set(doc) != {"tools"} or not isinstance(doc["tools"], list):
        raise YamlToolError(f"{source}: must be a mapping with one key, tools: a list of tools")
    tools: list[Tool] = []
    for index, entry in enumerate(doc["tools"]):
        where = f"{source}: tools[{index}]"
        if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
            where = f"{source}: tool {entry['name']!r}"
        tools.append(_tool(entry, services, where, source))
    return tools


def _tool(entry: Any, services: HasPublish, where: str, source: str) -> Tool:
    if not isinstance(entry, Mapping):
        raise YamlToolError(f"{where}: must be a mapping")
    unknown = sorted(set(map(str, entry)) - _TOOL_KEYS)
    if unknown:
        raise YamlToolError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("name", "description", "topic"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise YamlToolError(f"{where}: {key} is required text")
    topic = check_topic(entry["topic"], where=f"{where}: topic")
    parameters = _parameters(entry.get("parameters") or {}, where)
    props = parameters["properties"]
    payload = entry.get("payload", "")
    _check_payload(payload, props, where)
    retain = entry.get("retain", False)
    sensitive = entry.get("sensitive", False)
    if not isinstance(retain, bool) or not isinstance(sensitive, bool):
        raise YamlToolError(f"{where}: retain and sensitive must be true or false")
    sentences = entry.get("sentences", [])
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise YamlToolError(f"{where}: sentences must be a list of text")
    reply, confirm = entry.get("reply", ""), entry.get("confirm", "")
    if not isinstance(reply, str) or not isinstance(confirm, str):
        raise YamlToolError(f"{where}: reply and confirm must be text")
    timeout_s = entry.get("timeout_s", 5.0)
    if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not 0 < timeout_s <= 60:
        raise YamlToolError(f"{where}: timeout_s must be a number in (0, 60]")
    defaults = {n: p["default"] for n, p in props.items() if "default" in p}

    def handler(**arguments: Any) -> dict[str, Any]:
        values = {**defaults, **arguments}
        services.publish(topic, _render_payload(payload, values), retain=retain)
        return {"topic": topic}

    return Tool(
        name=entry["name"],
        description=entry["description"].strip(),
        parameters=parameters,
        handler=handler,
        reply=reply,
        sensitive=sensitive,
        confirm=confirm,
        sentences=tuple(sentences),
        timeout_s=float(timeout_s),
        source=source,
    )


def _parameters(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise YamlToolError(f"{where}: parameters must be a mapping of name to schema")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, raw in spec.items():
        if not isinstance(raw, Mapping):
            raise YamlToolError(f"{where}: parameter {name!r} must be a mapping")
        prop = {k: v for k, v in raw.items() if k != "required"}
        is_required = raw.get("required", "default" not in raw)
        if not isinstance(is_required, bool):
            raise YamlToolError(f"{where}: parameter {name!r}: required must be true or false")
        if is_required:
            required.append(str(name))
        properties[str(name)] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    try:
        check_schema(schema, where=f"{where}: parameters")
    except SchemaError as err:
        raise YamlToolError(err.message) from None
    return schema


def _fields(text: str) -> list[str]:
    try:
        return [f for _, f, _, _ in _FORMATTER.parse(text) if f is not None]
    except ValueError as err:
        raise YamlToolError(f"bad {{field}} syntax in {text!r}: {err}") from None


def _check_payload(payload: Any, props: Mapping[str, Any], where: str) -> None:
    texts: list[str] = []
    if isinstance(payload, str):
        texts.append(payload)
    elif isinstance(payload, Mapping):
        try:
            json.dumps(payload)
        except (TypeError, ValueError):  # YAML dates and other non-JSON scalars
            raise YamlToolError(f"{where}: payload mapping is not JSON data") from None
        stack: list[Any] = [payload]
        while stack:
            node = stack.pop()
            if isinstance(node, Mapping):
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
            elif isinstance(node, str):
                texts.append(node)
    elif not isinstance(payload, (int, float, bool)):
        raise YamlToolError(f"{where}: payload must be text, a number or a mapping")
    for text in texts:
        for field in _fields(text):
            if not re.fullmatch(r"[A-Za-z_]\w*", field) or field not in props:
                raise YamlToolError(f"{where}: payload field {{{field}}} is not a declared parameter")


def _fill(text: str, values: Mapping[str, Any]) -> str:
    out: list[str] = []
    for literal, field, _, _ in _FORMATTER.parse(text):
        out.append(literal)
        if field is not None:
            value = values.get(field)
            out.append("" if value is None else ("true" if value is True else "false" if value is False
                                                  else str(value)))
    return "".join(out)


def _render_payload(payload: Any, values: Mapping[str, Any]) -> str:
    """The payload text with fields filled; mappings become JSON (a lone "{p}" keeps p's type)."""
    if isinstance(payload, str):
        return _fill(payload, values)
    if isinstance(payload, Mapping):
        return json.dumps(_fill_tree(payload, values), separators=(",", ":"), ensure_ascii=False)
    return json.dumps(payload)


def _fill_tree(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, Mapping):
        return {k: _fill_tree(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill_tree(v, values) for v in node]
    if isinstance(node, str):
        whole = re.fullmatch(r"\{([A-Za-z_]\w*)\}", node)
        if whole:
            return values.get(whole.group(1))
        return _fill(node, values)
    return node
