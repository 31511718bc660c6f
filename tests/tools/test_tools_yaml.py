"""Tools declared in YAML publish to MQTT through the injected hook; bad files are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.tools.yaml_tools import YamlToolError, load_yaml_tools, parse_yaml_tools
from assistant.types import ResultStatus, ToolCall

GOOD = """
tools:
  - name: garage_light
    description: Switch the garage light on or off.
    topic: home/garage/light/set
    payload: "{state}"
    reply: Garage light {state}.
    sentences: ["turn (on|off) [the] garage light"]
    parameters:
      state: {type: string, enum: ["ON", "OFF"], description: On or off}
  - name: fan_speed
    description: Set the attic fan speed.
    topic: home/attic/fan/set
    retain: true
    payload: {speed: "{speed}", source: "voice {speed}%"}
    parameters:
      speed: {type: integer, minimum: 0, maximum: 100}
      boost: {type: boolean, required: false}
  - name: open_gate
    description: Open the gate.
    topic: home/gate/set
    payload: OPEN
    sensitive: true
    confirm: Do you want me to open the gate?
"""


class Services:
    """Stands in for the SkillContext: records what would go to the broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bool]] = []

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.sent.append((topic, payload, retain))


def test_yaml_tools_publish_rendered_payloads(registry: ToolRegistry, router: Router) -> None:
    services = Services()
    tools = parse_yaml_tools(GOOD, services, source="good.yaml")
    assert registry.set_group("yaml", tools) == []
    light = router.call(ToolCall("garage_light", {"state": "on"}), site="s")
    assert (light.status, light.speech) == (ResultStatus.OK, "Garage light ON.")
    fan = router.call(ToolCall("fan_speed", {"speed": "40"}), site="s")
    assert fan.ok
    assert services.sent[0] == ("home/garage/light/set", "ON", False)
    topic, payload, retain = services.sent[1]
    assert (topic, retain) == ("home/attic/fan/set", True)
    assert json.loads(payload) == {"speed": 40, "source": "voice 40%"}


def test_yaml_schema_marks_required_and_optional() -> None:
    tools = {t.name: t for t in parse_yaml_tools(GOOD, Services())}
    fan = tools["fan_speed"].parameters
    assert fan["required"] == ["speed"]
    assert fan["additionalProperties"] is False
    assert fan["properties"]["boost"] == {"type": "boolean"}
    assert tools["garage_light"].sentences == ("turn (on|off) [the] garage light",)


def test_yaml_validation_still_applies(registry: ToolRegistry, router: Router) -> None:
    services = Services()
    registry.set_group("yaml", parse_yaml_tools(GOOD, services))
    assert router.call(ToolCall("fan_speed", {"speed": 101}), site="s").error_code == "out_of_range"
    assert router.call(ToolCall("garage_light", {"state": "dim"}), site="s").error_code == "not_allowed"
    assert services.sent == []


def test_sensitive_yaml_tool_waits_for_yes(registry: ToolRegistry, router: Router) -> None:
    services = Services()
    registry.set_group("yaml", parse_yaml_tools(GOOD, services))
    asked = router.call(ToolCall("open_gate"), site="s")
    assert asked.status is ResultStatus.NEEDS_CONFIRMATION
    assert asked.speech == "Do you want me to open the gate?"
    assert services.sent == []
    assert router.answer_confirmation("yes", site="s").ok
    assert services.sent == [("home/gate/set", "OPEN", False)]


def test_publish_failure_is_an_error_result(registry: ToolRegistry, router: Router) -> None:
    class Down:
        def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
            from assistant.errors import HomeError

            raise HomeError("not connected", code="mqtt_offline")

    registry.set_group("yaml", parse_yaml_tools(GOOD, Down()))
    result = router.call(ToolCall("open_gate"), site="s")
    router.answer_confirmation("yes", site="s")
    result = router.call(ToolCall("garage_light", {"state": "ON"}), site="s")
    assert (result.status, result.error_code) == (ResultStatus.ERROR, "mqtt_offline")


BAD = {
    "wildcard_plus": "tools: [{name: a, description: d, topic: home/+/set}]",
    "wildcard_hash": "tools: [{name: a, description: d, topic: 'home/#'}]",
    "field_in_topic": "tools: [{name: a, description: d, topic: 'home/{x}/set',"
                      " parameters: {x: {type: string}}}]",
    "not_yaml": "tools: [name: a, description: d\n  - ]",
    "no_tools_key": "name: a",
    "unknown_key": "tools: [{name: a, description: d, topic: t, qos: 2}]",
    "no_description": "tools: [{name: a, topic: t}]",
    "bad_param_type": "tools: [{name: a, description: d, topic: t, parameters: {x: {type: float}}}]",
    "undeclared_field": "tools: [{name: a, description: d, topic: t, payload: '{y}'}]",
    "attribute_field": "tools: [{name: a, description: d, topic: t, payload: '{x.__class__}',"
                       " parameters: {x: {type: string}}}]",
    "bad_retain": "tools: [{name: a, description: d, topic: t, retain: sometimes}]",
    "date_payload": "tools: [{name: a, description: d, topic: t, payload: {when: 2024-01-01}}]",
    "empty": "",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_yaml_is_refused_with_a_clear_error(name: str) -> None:
    with pytest.raises(YamlToolError) as err:
        parse_yaml_tools(BAD[name], Services(), source="bad.yaml")
    assert "bad.yaml" in str(err.value)


def test_load_from_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "lights.yaml"
    path.write_text("tools: [{name: a, description: d, topic: 'x/#'}]", encoding="utf-8")
    with pytest.raises(YamlToolError, match=r"lights\.yaml"):
        load_yaml_tools(path, Services())
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(YamlToolError, match=r"lights\.yaml"):
        load_yaml_tools(path, Services())


def test_shipped_example_parses() -> None:
    from assistant.tools.loader import BUILTIN_SKILLS_DIR

    tools = load_yaml_tools(BUILTIN_SKILLS_DIR / "examples" / "garage_light.yaml", Services())
    assert [t.name for t in tools] == ["garage_light", "open_garage_door"]
    assert tools[1].is_sensitive({})
