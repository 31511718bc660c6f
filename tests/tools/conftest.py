"""Fixtures for the tool router, registry and skills tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tools_helpers import FakeNotifier

from assistant.config import RouterSettings, Settings
from assistant.tools.context import ManualClock, SkillContext
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry()


@pytest.fixture
def router_factory(registry: ToolRegistry, clock: ManualClock) -> Iterator[Callable[..., Router]]:
    made: list[Router] = []

    def factory(**settings: Any) -> Router:
        router = Router(registry, RouterSettings(**settings), clock=clock.monotonic)
        made.append(router)
        return router

    yield factory
    for router in made:
        router.close()


@pytest.fixture
def router(router_factory: Callable[..., Router]) -> Router:
    return router_factory()


@pytest.fixture
def skill_context(tmp_path: Path, clock: ManualClock, notifier: FakeNotifier) -> SkillContext:
    settings = Settings(state_dir=tmp_path / "state")
    return SkillContext.from_settings(settings, clock=clock, notifier=notifier)
