"""The parts wired together from settings: skills + home tools in one registry, the
router, the brain and the TTS sink. Used by ``assistant process``, ``say`` and ``run``.

Only this module and daemon wiring know every part; the parts know only their
neighbours' small interfaces.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import yaml

from assistant.brains.base import Brain
from assistant.config import Settings
from assistant.errors import AssistantError, BrainError
from assistant.home.service import HomeStack, build_home
from assistant.tools.base import Tool
from assistant.tools.context import AssistantController, InMemoryController, Notifier, SkillContext
from assistant.tools.loader import LoadedSkills, install_skills, load_skills
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.tts.base import TtsSink

_LOGGER = logging.getLogger(__name__)


def demo_entities() -> tuple[Mapping[str, Any], ...]:
    """The bundled demo house (used by ``process`` when neither a broker nor entities are set)."""
    text = resources.files("assistant").joinpath("data/demo-home.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return tuple(data["home"]["entities"])


def with_demo_house(settings: Settings) -> tuple[Settings, bool]:
    """Settings with the demo entities when the user configured no home at all."""
    if settings.mqtt.host is None and not settings.home.entities:
        return replace(settings, home=replace(settings.home, entities=demo_entities())), True
    return settings, False


def make_brain(settings: Settings) -> Brain:
    """The brain named by ``brain.kind``; raises an AssistantError with a clear reason."""
    kind = settings.brain.kind
    if kind == "phrase":
        from assistant.brains.phrase.brain import make_phrase_brain  # noqa: PLC0415 - slow import

        return make_phrase_brain(settings.brain.phrase)
    if kind == "gemma":
        from assistant.brains.gemma.brain import make_gemma_brain  # noqa: PLC0415 - slow import

        return make_gemma_brain(settings.brain.gemma)
    if kind == "hybrid":
        from assistant.brains.gemma.brain import make_gemma_brain  # noqa: PLC0415
        from assistant.brains.hybrid import HybridBrain  # noqa: PLC0415
        from assistant.brains.phrase.brain import make_phrase_brain  # noqa: PLC0415

        return HybridBrain(make_phrase_brain(settings.brain.phrase), make_gemma_brain(settings.brain.gemma))
    raise BrainError(f"unknown brain.kind {kind!r}", code="brain_config")


class _LateNotifier:
    """Announcements from skills (timers) go to whatever speaks, once it exists."""

    def __init__(self) -> None:
        self.announce_to: Callable[[str, str | None], None] | None = None
        self.event_to: Callable[[str, Mapping[str, Any]], None] | None = None

    def announce(self, text: str, site: str | None = None) -> None:
        _LOGGER.info("announcement: %s", text)
        if self.announce_to is not None:
            self.announce_to(text, site)

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        _LOGGER.info("event %s: %s", name, dict(data))
        if self.event_to is not None:
            self.event_to(name, data)


@dataclass
class Parts:
    """Everything that turns an utterance into actions and a reply."""

    settings: Settings
    registry: ToolRegistry
    router: Router
    home: HomeStack
    skills: LoadedSkills
    notifier: _LateNotifier
    controller: AssistantController
    brain: Brain | None = None
    tts: TtsSink | None = None
    _closed: bool = field(default=False, repr=False)

    def start_services(self) -> None:
        """Start skill services (the timer runner) and the MQTT side."""
        for service in self.skills.services:
            service.start()
        self.home.start()

    def wait_for_home(self, timeout_s: float = 10.0, quiet_s: float = 0.6) -> bool:
        """Wait until the broker is connected and the home tools stop changing (retained
        discovery has arrived); True when settled. Without a broker: True at once."""
        if not self.home.client.enabled:
            return True
        deadline = time.monotonic() + timeout_s
        if not self.home.client.wait_connected(timeout_s):
            _LOGGER.warning("MQTT broker not reachable within %.0f s; going on without it", timeout_s)
            return False
        version, since = self.registry.version, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.registry.version != version:
                version, since = self.registry.version, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return True
        return False

    def close(self) -> None:
        """Stop services, persist state, disconnect (availability offline), release devices."""
        if self._closed:
            return
        self._closed = True
        for service in self.skills.services:
            try:
                service.stop()
            except Exception:  # one bad skill must not block shutdown
                _LOGGER.exception("stopping skill service %r failed", service)
        self.home.stop()
        self.router.close()
        if self.tts is not None:
            self.tts.close()


def build_parts(
    settings: Settings,
    *,
    with_brain: bool = True,
    with_tts: bool = True,
    controller: AssistantController | None = None,
    on_listen_pressed: Callable[[], None] | None = None,
    on_say: Callable[[str], None] | None = None,
    on_mute: Callable[[bool], None] | None = None,
    on_volume: Callable[[int], None] | None = None,
) -> Parts:
    """Build (but do not start) the registry, router, home stack, skills, brain and TTS sink."""
    from assistant import __version__  # noqa: PLC0415

    registry = ToolRegistry()
    router = Router(registry, settings.router)
    home = build_home(
        settings,
        version=__version__,
        on_listen_pressed=on_listen_pressed,
        on_say=on_say,
        on_mute=on_mute,
        on_volume=on_volume,
    )
    notifier = _LateNotifier()
    notifier.event_to = home.device.publish_event if home.client.enabled else None
    ctrl = controller or InMemoryController()
    ctx = SkillContext.from_settings(
        settings,
        notifier=notifier,
        publish=home.client.publish_simple if home.client.enabled else SkillContext().publish,
        controller=ctrl,
    )
    skills = load_skills(settings, ctx)
    for problem in [*skills.errors, *install_skills(registry, skills)]:
        _LOGGER.error("skill skipped: %s", problem)
    registry.set_group("home", home.control.tools())

    def home_changed(tools: list[Tool]) -> None:
        for problem in registry.set_group("home", tools):
            _LOGGER.warning("home tool skipped: %s", problem)

    home.control.add_listener(home_changed)
    parts = Parts(settings, registry, router, home, skills, notifier, ctrl)
    if with_brain:
        parts.brain = make_brain(settings)
    if with_tts:
        from assistant.tts import make_tts  # noqa: PLC0415 - pulls in sounddevice

        parts.tts = make_tts(settings, home.client.publish_simple if home.client.enabled else None)
    return parts


def speak_safely(parts: Parts, text: str, cancel: threading.Event | None = None) -> str | None:
    """Speak through the sink; returns an error message instead of raising."""
    if parts.tts is None or not text:
        return None
    try:
        parts.tts.speak(text, cancel or threading.Event())
    except AssistantError as err:
        return f"{err.message} [{err.code}]"
    return None


def as_notifier(parts: Parts) -> Notifier:
    """The notifier skills were given (for the daemon to redirect announcements)."""
    return parts.notifier
