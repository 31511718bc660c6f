"""Skill discovery: shipped skills load; broken skill files are reported and skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from assistant.config import Settings, SkillsSettings
from assistant.tools.context import SkillContext
from assistant.tools.loader import BUILTIN_SKILLS_DIR, install_skills, load_skills, skill_files
from assistant.tools.registry import ToolRegistry

GOOD_PY = '''
from typing import Annotated
from assistant.tools.declare import tool
from assistant.tools.schema import Range

@tool(reply="Echo {n}.")
def echo(n: Annotated[int, Range(0, 9)]) -> dict:
    """Echo a digit."""
    return {}
'''

GOOD_YAML = "tools: [{name: ping, description: Send a ping., topic: home/ping}]\n"

BROKEN = {
    "syntax.py": "def broken(:\n",
    "raises.py": "raise RuntimeError('no luck at import')\n",
    "exits.py": "import sys\nsys.exit(2)\n",
    "setup_fails.py": "def setup(ctx):\n    raise ValueError('bad setup')\n",
    "no_tools.py": "X = 1\n",
    "bad_schema.py": ("from assistant.tools.declare import tool\n"
                      "@tool\ndef f(x: dict) -> None:\n    '''F.'''\n"),
    "dup.py": ("from assistant.tools.declare import tool\n"
               "@tool\ndef echo(n: int) -> None:\n    '''Another echo.'''\n"),
    "bad.yaml": "tools: [{name: a, description: d, topic: 'a/+/b'}]\n",
    "notyaml.yml": "tools: [\n",
}


def _settings(tmp_path: Path, *paths: Path, builtin: bool = False) -> Settings:
    return Settings(state_dir=tmp_path / "state", skills=SkillsSettings(paths=paths, builtin=builtin))


def test_shipped_skills_load_without_errors(tmp_path: Path, skill_context: SkillContext) -> None:
    loaded = load_skills(_settings(tmp_path, builtin=True), skill_context)
    assert loaded.errors == ()
    names = {t.name for t in loaded.tools}
    assert {"get_time", "get_date", "get_weekday", "start_timer", "cancel_timer", "timer_remaining",
            "list_timers", "set_volume", "volume_up", "volume_down", "mute", "unmute",
            "assistant_stop"} <= names
    assert len(loaded.services) == 1  # the timer runner
    registry = ToolRegistry()
    assert install_skills(registry, loaded) == []
    assert {t.name for t in registry.tools()} == names


def test_builtin_skills_dir_is_the_repository_skills_folder() -> None:
    assert Path(__file__).resolve().parents[2] / "skills" == BUILTIN_SKILLS_DIR


def test_broken_skills_are_reported_and_skipped(
    tmp_path: Path, skill_context: SkillContext, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "skills"
    folder.mkdir()
    (folder / "a_good.py").write_text(GOOD_PY, encoding="utf-8")
    (folder / "a_good.yaml").write_text(GOOD_YAML, encoding="utf-8")
    (folder / "_private.py").write_text("raise RuntimeError", encoding="utf-8")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    for name, text in BROKEN.items():
        (folder / name).write_text(text, encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="assistant.tools.loader"):
        loaded = load_skills(_settings(tmp_path, folder), skill_context)
    assert sorted(t.name for t in loaded.tools) == ["echo", "ping"]
    assert sorted(e.path.name for e in loaded.errors) == sorted(BROKEN)
    for error in loaded.errors:
        assert str(error.path) in caplog.text
    messages = {e.path.name: e.message for e in loaded.errors}
    assert "SyntaxError" in messages["syntax.py"]
    assert "no luck at import" in messages["raises.py"]
    assert "already defined" in messages["dup.py"]
    assert "wildcards" in messages["bad.yaml"]


def test_single_file_paths_and_missing_paths(tmp_path: Path, skill_context: SkillContext) -> None:
    file = tmp_path / "echo.py"
    file.write_text(GOOD_PY, encoding="utf-8")
    settings = _settings(tmp_path, file, tmp_path / "does-not-exist")
    assert skill_files(settings) == [file]
    assert [t.name for t in load_skills(settings, skill_context).tools] == ["echo"]


def test_services_of_a_failing_skill_are_dropped(tmp_path: Path, skill_context: SkillContext) -> None:
    file = tmp_path / "half.py"
    file.write_text("class S:\n    def start(self): pass\n    def stop(self): pass\n"
                    "def setup(ctx):\n    ctx.add_service(S())\n    raise RuntimeError('late')\n",
                    encoding="utf-8")
    loaded = load_skills(_settings(tmp_path, file), skill_context)
    assert loaded.services == ()
    assert len(loaded.errors) == 1
