"""Skill discovery: the shipped skills/ folder and ``skills.paths``, one file per skill.

A skill is either

- a ``.py`` file: imported from its path; its tools are the ``@tool``-marked
  module functions plus whatever ``setup(ctx: SkillContext)`` returns (Tools,
  marked functions or bound methods, or objects whose marked methods are tools);
  ``setup`` may hand long-lived helpers to the daemon with ``ctx.add_service``;
- a ``.yaml`` / ``.yml`` file of MQTT-publishing tools (see yaml_tools).

Files whose names start with ``_`` or ``.`` are ignored. A broken file (syntax
error, exception at import or in setup, bad YAML, invalid schema, duplicate tool
name) is logged with its path, listed in ``LoadedSkills.errors`` and skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import assistant
from assistant.config import Settings
from assistant.tools.base import Tool
from assistant.tools.context import Service, SkillContext
from assistant.tools.declare import collect_tools, make_tool, tool_options
from assistant.tools.registry import ToolRegistry
from assistant.tools.yaml_tools import load_yaml_tools

_LOGGER = logging.getLogger(__name__)

BUILTIN_SKILLS_DIR = Path(assistant.__file__).resolve().parent.parent / "skills"
"""The shipped skills (the package is installed editable, so this is the repository's skills/)."""

_SUFFIXES = (".py", ".yaml", ".yml")


@dataclass(frozen=True)
class SkillLoadError:
    """One skill file that could not be loaded."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class LoadedSkill:
    """The tools of one skill file."""

    path: Path
    tools: tuple[Tool, ...]

    @property
    def group(self) -> str:
        """Registry group name of this skill."""
        return f"skill:{self.path}"


@dataclass(frozen=True)
class LoadedSkills:
    """What discovery found: skills, services for the daemon to run, and errors."""

    skills: tuple[LoadedSkill, ...] = ()
    services: tuple[Service, ...] = ()
    errors: tuple[SkillLoadError, ...] = ()

    @property
    def tools(self) -> tuple[Tool, ...]:
        """Every tool of every skill."""
        return tuple(t for s in self.skills for t in s.tools)


def skill_files(settings: Settings) -> list[Path]:
    """Skill files to load, in order: shipped ones first, then each of ``skills.paths``."""
    roots: list[Path] = []
    if settings.skills.builtin:
        roots.append(BUILTIN_SKILLS_DIR)
    roots.extend(settings.skills.paths)
    files: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = sorted(p for p in root.iterdir() if p.is_file())
        else:
            _LOGGER.warning("skill path %s does not exist", root)
            continue
        for path in candidates:
            resolved = path.resolve()
            if path.suffix in _SUFFIXES and not path.name.startswith(("_", ".")) and resolved not in seen:
                seen.add(resolved)
                files.append(path)
    return files


def load_skill_file(path: Path, ctx: SkillContext) -> LoadedSkill:
    """Load one skill file; raises on any problem (the caller reports it)."""
    if path.suffix in (".yaml", ".yml"):
        return LoadedSkill(path, tuple(load_yaml_tools(path, ctx)))
    module = _import(path)
    tools = list(collect_tools(module, source=str(path)))
    setup = getattr(module, "setup", None)
    if setup is not None:
        if not callable(setup):
            raise TypeError("setup is not a function")
        produced = setup(ctx)
        if produced is not None:
            tools.extend(_as_tools(produced, str(path)))
    if not tools:
        raise ValueError("defines no tools (no @tool functions and setup() returned none)")
    return LoadedSkill(path, tuple(tools))


def load_skills(settings: Settings, ctx: SkillContext, files: Sequence[Path] | None = None) -> LoadedSkills:
    """Load every skill file; broken ones are logged, listed in ``errors`` and skipped."""
    skills: list[LoadedSkill] = []
    errors: list[SkillLoadError] = []
    names: dict[str, Path] = {}
    for path in skill_files(settings) if files is None else files:
        before = len(ctx.services)
        try:
            skill = load_skill_file(path, ctx)
            clash = [t.name for t in skill.tools if t.name in names]
            dupes = {t.name for t in skill.tools if [u.name for u in skill.tools].count(t.name) > 1}
            if clash or dupes:
                first = clash[0] if clash else sorted(dupes)[0]
                other = names.get(first, path)
                raise ValueError(f"tool name {first!r} is already defined by {other}")
        except (Exception, SystemExit) as err:
            del ctx.services[before:]  # a half-loaded skill's services never start
            message = f"{type(err).__name__}: {err}"
            _LOGGER.error("skill %s skipped: %s", path, message)
            errors.append(SkillLoadError(path, message))
            continue
        for item in skill.tools:
            names[item.name] = path
        skills.append(skill)
    return LoadedSkills(tuple(skills), tuple(ctx.services), tuple(errors))


def install_skills(registry: ToolRegistry, loaded: LoadedSkills) -> list[SkillLoadError]:
    """Put each loaded skill into ``registry`` as its own group; returns tools it refused."""
    problems: list[SkillLoadError] = []
    for skill in loaded.skills:
        for problem in registry.set_group(skill.group, skill.tools):
            problems.append(SkillLoadError(skill.path, problem))
    return problems


def _import(path: Path) -> Any:
    # A unique, stable module name per file, so two skills called clock.py do not collide.
    digest = hashlib.sha1(str(path.resolve()).encode(), usedforsecurity=False).hexdigest()[:10]
    name = f"assistant_skill_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing resolve names through sys.modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _as_tools(produced: Any, source: str) -> list[Tool]:
    items: Iterable[Any] = [produced] if not isinstance(produced, (list, tuple)) else produced
    tools: list[Tool] = []
    for item in items:
        if isinstance(item, Tool):
            tools.append(item)
        elif callable(item) and tool_options(item) is not None:
            tools.append(make_tool(item, source=source))
        elif not inspect.isroutine(item) and not isinstance(item, (str, bytes, int, float)):
            found = collect_tools(item, source=source)
            if not found:
                raise TypeError(f"setup() returned {type(item).__name__} with no @tool methods")
            tools.extend(found)
        else:
            raise TypeError(f"setup() returned {type(item).__name__}, not a Tool")
    return tools
