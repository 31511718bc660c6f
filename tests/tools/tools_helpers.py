"""Helpers shared by the tools tests (imported by name: tests/tools is on sys.path under pytest)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from assistant.tools.base import Tool
from assistant.tools.context import SkillContext
from assistant.tools.loader import BUILTIN_SKILLS_DIR, load_skill_file


class Recorder:
    """A handler that records every call (thread-safe) and returns a fixed result."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result = result
        self._lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> Any:
        with self._lock:
            self.calls.append(kwargs)
        return self.result


class FakeNotifier:
    """Collects announcements and events (stands in for the TTS sink and MQTT)."""

    def __init__(self) -> None:
        self.announcements: list[tuple[str, str | None]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def announce(self, text: str, site: str | None = None) -> None:
        self.announcements.append((text, site))

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        self.events.append((name, dict(data)))


def make_tool(name: str, handler: Callable[..., Any], properties: dict[str, Any] | None = None,
              required: tuple[str, ...] = (), **kwargs: Any) -> Tool:
    """A Tool with an explicit schema."""
    params: dict[str, Any] = {"type": "object", "properties": properties or {}, "additionalProperties": False}
    if required:
        params["required"] = list(required)
    return Tool(name=name, description=kwargs.pop("description", f"Do {name}."), parameters=params,
                handler=handler, **kwargs)


def builtin_skill(name: str, ctx: SkillContext) -> dict[str, Tool]:
    """The tools of one shipped skill, by name."""
    skill = load_skill_file(BUILTIN_SKILLS_DIR / f"{name}.py", ctx)
    return {t.name: t for t in skill.tools}
