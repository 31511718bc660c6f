"""The live tool set, gathered from several sources and rendered for each consumer.

Tools arrive in named groups (one per skill file, ``home`` for the Home Assistant
inventory, ...); a group is replaced as a whole with ``set_group``. Every change
bumps ``version`` and notifies listeners (the phrase brain rebuilds its grammar,
the Gemma brain re-prefills its tool prefix). Reads are lock-free snapshots.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from assistant.tools.base import Tool
from assistant.tools.schema import SchemaError, check_schema

_LOGGER = logging.getLogger(__name__)

TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
"""Allowed tool names: what Gemma's call syntax (``call:NAME{``) and MQTT topics can carry."""

_SLOT = re.compile(r"\{([^{}:]+)(?::[^{}]*)?\}")

Listener = Callable[[int], None]
"""Called with the new version after every change, outside the registry's lock."""


class ToolRegistry:
    """Thread-safe set of tools in replaceable groups, with a change counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, Tool]] = {}
        self._version = 0
        self._listeners: list[Listener] = []
        # Snapshots rebuilt on change, so the router's per-call lookup takes no lock.
        self._by_name: Mapping[str, Tool] = {}
        self._sorted: tuple[Tool, ...] = ()
        self._gemma_cache: tuple[int, str] | None = None

    # ---------------------------------------------------------------- changes

    def set_group(self, group: str, tools: Sequence[Tool]) -> list[str]:
        """Replace every tool of ``group`` with ``tools``.

        Tools with a bad name or schema, or a name already used by another group (or
        twice in ``tools``), are skipped; the problems are logged and returned.
        """
        problems: list[str] = []
        accepted: dict[str, Tool] = {}
        with self._lock:
            taken = {n for g, ts in self._groups.items() if g != group for n in ts}
            for item in tools:
                problem = _problem(item)
                if problem is None and (item.name in taken or item.name in accepted):
                    problem = f"tool name {item.name!r} is already in use"
                if problem is not None:
                    where = getattr(item, "source", "") or group
                    problems.append(f"{where}: {problem}")
                    continue
                accepted[item.name] = item
            if accepted:
                self._groups[group] = accepted
            else:
                self._groups.pop(group, None)
            version = self._rebuild()
        for problem in problems:
            _LOGGER.error("tool skipped: %s", problem)
        self._notify(version)
        return problems

    def add(self, tool: Tool, *, group: str = "default") -> list[str]:
        """Add (or replace, by name) one tool in ``group``; returns problems like set_group."""
        with self._lock:
            current = [t for t in self._groups.get(group, {}).values() if t.name != tool.name]
        return self.set_group(group, [*current, tool])

    def remove_group(self, group: str) -> None:
        """Drop every tool of ``group``."""
        with self._lock:
            if group not in self._groups:
                return
            del self._groups[group]
            version = self._rebuild()
        self._notify(version)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(version)`` after every change; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _rebuild(self) -> int:
        by_name = {n: t for ts in self._groups.values() for n, t in ts.items()}
        self._by_name = by_name
        self._sorted = tuple(by_name[n] for n in sorted(by_name))
        self._version += 1
        return self._version

    def _notify(self, version: int) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(version)
            except Exception:
                _LOGGER.exception("tool-set listener %r failed", listener)

    # ---------------------------------------------------------------- reads

    @property
    def version(self) -> int:
        """Increases on every change."""
        return self._version

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._by_name.get(name)

    def tools(self) -> tuple[Tool, ...]:
        """All tools, sorted by name."""
        return self._sorted

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Group name -> sorted tool names (for diagnostics)."""
        with self._lock:
            return {g: tuple(sorted(ts)) for g, ts in sorted(self._groups.items())}

    def group_of(self, name: str) -> str | None:
        """Which group holds the tool ``name``."""
        with self._lock:
            for group, tools in self._groups.items():
                if name in tools:
                    return group
        return None

    # ---------------------------------------------------------------- renderings

    def json_schema(self) -> list[dict[str, Any]]:
        """The tool set in the OpenAI-style function list that chat templates take."""
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": _plain(t.parameters),
                },
            }
            for t in self.tools()
        ]

    def render_gemma(self) -> str:
        """Gemma 4 declaration blocks for every tool (cached per version).

        Delegates to ``assistant.tools.gemma_format.render_declarations``; raises
        ImportError while that module does not exist.
        """
        cached = self._gemma_cache
        version = self._version
        if cached is not None and cached[0] == version:
            return cached[1]
        from assistant.tools import gemma_format  # noqa: PLC0415 - owned elsewhere, optional until it lands

        text: str = gemma_format.render_declarations(self.tools())
        self._gemma_cache = (version, text)
        return text

    def sentences(self) -> dict[str, tuple[str, ...]]:
        """Tool name -> its hassil sentence templates (tools without any are left out)."""
        return {t.name: t.sentences for t in self.tools() if t.sentences}


def _problem(item: Any) -> str | None:
    """Why ``item`` cannot be registered, or None."""
    if not isinstance(item, Tool):
        return f"not a Tool: {type(item).__name__}"
    if not isinstance(item.name, str) or not TOOL_NAME.fullmatch(item.name):
        return f"bad tool name {item.name!r} (letters, digits, _ . -; at most 64)"
    if not isinstance(item.description, str) or not item.description.strip():
        return f"tool {item.name!r} has no description"
    if not callable(item.handler):
        return f"tool {item.name!r} has no callable handler"
    try:
        check_schema(item.parameters, where=f"{item.name}.parameters")
    except SchemaError as err:
        return err.message
    props = item.parameters.get("properties", {})
    for sentence in item.sentences:
        for slot in _SLOT.findall(sentence):
            if slot.strip() not in props:
                # Not fatal: the phrase brain may define lists of its own (entity names).
                _LOGGER.warning("tool %s: sentence slot {%s} is not a parameter", item.name, slot)
    return None


def _plain(value: Any) -> Any:
    """A deep copy made of dicts and lists only (mappingproxy / tuples in, JSON out)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
