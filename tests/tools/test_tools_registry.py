"""The registry: groups, version, listeners, renderings."""

from __future__ import annotations

import threading
import time

import pytest
from tools_helpers import Recorder, make_tool

from assistant.tools.registry import ToolRegistry


def test_set_group_replaces_the_whole_group_and_bumps_version(registry: ToolRegistry) -> None:
    v0 = registry.version
    registry.set_group("home", [make_tool("HassTurnOn", Recorder()), make_tool("HassTurnOff", Recorder())])
    registry.set_group("skill:x", [make_tool("get_time", Recorder())])
    assert [t.name for t in registry.tools()] == ["HassTurnOff", "HassTurnOn", "get_time"]
    registry.set_group("home", [make_tool("HassToggle", Recorder())])
    assert [t.name for t in registry.tools()] == ["HassToggle", "get_time"]
    assert registry.version == v0 + 3
    registry.remove_group("home")
    assert [t.name for t in registry.tools()] == ["get_time"]
    assert registry.get("HassToggle") is None
    assert registry.group_of("get_time") == "skill:x"


def test_bad_and_conflicting_tools_are_skipped_with_problems(registry: ToolRegistry) -> None:
    registry.set_group("a", [make_tool("same", Recorder())])
    bad_schema = make_tool("bad", Recorder())
    bad_schema = type(bad_schema)(**{**bad_schema.__dict__, "parameters": {"type": "string"}})
    problems = registry.set_group("b", [make_tool("same", Recorder()), make_tool("bad name!", Recorder()),
                                        bad_schema, make_tool("fine", Recorder()),
                                        make_tool("fine", Recorder())])
    assert len(problems) == 4
    assert [t.name for t in registry.tools()] == ["fine", "same"]
    assert registry.groups() == {"a": ("same",), "b": ("fine",)}


def test_listeners_hear_every_change_and_can_unsubscribe(registry: ToolRegistry) -> None:
    heard: list[int] = []

    def broken(_version: int) -> None:
        raise RuntimeError("listener bug")

    registry.add_listener(broken)
    unsubscribe = registry.add_listener(heard.append)
    registry.add(make_tool("a", Recorder()))
    registry.add(make_tool("b", Recorder()))
    unsubscribe()
    registry.remove_group("default")
    assert heard == [1, 2]
    assert registry.version == 3


def test_concurrent_group_updates_stay_consistent(
    registry: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes from several threads are applied one at a time and none is lost.

    The rebuild is slowed down (it sleeps, releasing the GIL) so that without the registry's
    lock two writers would be inside it at once and the version count would come out short.
    """
    rounds = 40
    inside = [0]
    most = [0]
    rebuild = registry._rebuild

    def slow_rebuild() -> int:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        version = registry._version
        time.sleep(0.0005)
        registry._version = version  # a lost update would show as a short count
        try:
            return rebuild()
        finally:
            inside[0] -= 1

    monkeypatch.setattr(registry, "_rebuild", slow_rebuild)

    def writer(group: str) -> None:
        for i in range(rounds):
            registry.set_group(group, [make_tool(f"{group}_{i % 3}", Recorder())])

    threads = [threading.Thread(target=writer, args=(g,)) for g in ("g1", "g2", "g3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1, "two changes were applied at the same time"
    assert registry.version == 3 * rounds
    assert len(registry.tools()) == 3


def test_json_schema_and_sentences(registry: ToolRegistry) -> None:
    props = {"minutes": {"type": "integer", "minimum": 1}}
    registry.set_group("t", [make_tool("start_timer", Recorder(), props, ("minutes",),
                                       sentences=("set [a] timer for {minutes} minute[s]",)),
                             make_tool("plain", Recorder())])
    listing = registry.json_schema()
    assert listing[1] == {"type": "function", "function": {
        "name": "start_timer", "description": "Do start_timer.",
        "parameters": {"type": "object", "properties": props, "required": ["minutes"],
                       "additionalProperties": False}}}
    assert registry.sentences() == {"start_timer": ("set [a] timer for {minutes} minute[s]",)}
