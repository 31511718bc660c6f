"""The composition root: every part built from settings, each handed its neighbours.

This is the one place that knows every part. It builds, in this order:

1. the orchestrator's ``Inbox`` (assistant.inbox), so that everything that wants
   something of the orchestrator can be given a way to ask before the orchestrator exists;
2. the ``Assistant``: tool registry and router, the home stack (MQTT client, inventory,
   home tools, the assistant's own HA device, whose buttons post into the inbox), the
   skills (whose notifier and controller post into the inbox), the brain and the TTS sink;
3. for ``assistant run``, the ``Daemon``: live audio, segmenter, wake words, earcons and
   the ``Orchestrator``, plus the brain warmer and the mirror of pipeline events onto the
   HA device.

``assistant process`` uses step 2 only, ``say`` only the sink (``open_sink``). Nothing
is bound late: no holder dicts, no notifier whose target is filled in afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from assistant.brains.base import Brain, Closable, warm_brain
from assistant.config import Settings
from assistant.errors import AssistantError, BrainError, ErrorCode
from assistant.home.client import PublishOutcome, PublishStatus
from assistant.home.service import HomeStack, build_home
from assistant.inbox import Announce, Inbox, PushToTalk, SetMuted, SetVolume, Stop
from assistant.tools.base import Tool
from assistant.tools.context import SkillContext
from assistant.tools.loader import LoadedSkills, install_skills, load_skills
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.tts.base import TtsSink
from assistant.types import Event, EventType
from assistant.wyoming.hub_announce import SatelliteAnnouncer

if TYPE_CHECKING:
    from assistant.brains.gemma.brain import GemmaBrain
    from assistant.daemon import Orchestrator
    from assistant.home.device import AssistantDevice
    from assistant.wake.detector import WakeDetector
    from assistant.wyoming.hub import Hub, HubTurn

_LOGGER = logging.getLogger(__name__)

DROPPED_COMMAND_SPEECH = "I couldn't send that: Home Assistant was offline."
"""Said when a home command waited for the broker and was dropped unsent."""

_DROPPED = (PublishStatus.DROPPED_STALE, PublishStatus.DROPPED_FULL)
"""Drops worth telling the user (a drop at shutdown has nobody left to tell)."""


# --------------------------------------------------------------------------- brains


def _phrase_brain(settings: Settings) -> Brain:
    from assistant.brains.phrase.brain import make_phrase_brain  # noqa: PLC0415 - slow import

    return make_phrase_brain(settings.brain.phrase)


def _gemma_brain(settings: Settings) -> Brain:
    from assistant.brains.gemma.brain import make_gemma_brain  # noqa: PLC0415 - slow import

    return make_gemma_brain(settings.brain.gemma)


def _remote_brain(settings: Settings, gemma: Brain | None) -> Brain:
    """The remote brain; Gemma (when there is one) answers when the server cannot, and with
    ``hear: gemma`` also lends it its ears."""
    from assistant.brains.remote.brain import make_remote_brain  # noqa: PLC0415

    hearing = None
    if settings.brain.remote.hear == "gemma":
        from assistant.brains.gemma.brain import GemmaBrain  # noqa: PLC0415 - slow import

        if not isinstance(gemma, GemmaBrain):
            raise BrainError("brain.remote.hear is 'gemma' but no Gemma brain is configured",
                             code=ErrorCode.BRAIN_CONFIG)
        hearing = gemma.transcribe
    return make_remote_brain(settings.brain.remote, fallback=gemma, hearing=hearing)


def _hybrid_brain(settings: Settings) -> Brain:
    """Phrase first, then Gemma; with brain.remote.url set, the server first and Gemma its fallback
    (under ``escalate: unknown`` Gemma first, the server for what it did not know)."""
    from assistant.brains.hybrid import HybridBrain  # noqa: PLC0415

    gemma = _gemma_brain(settings)
    if settings.brain.remote.url is None:
        return HybridBrain(_phrase_brain(settings), gemma)
    return HybridBrain(_phrase_brain(settings), _remote_brain(settings, gemma),
                       escalate=settings.brain.remote.escalate, local=gemma)


def _phrase_and_remote(settings: Settings) -> Brain:
    """The phrase brain hears (and keeps the home commands), the server thinks about the rest;
    with ``hear: gemma``, Gemma hears for the server and answers when it cannot."""
    from assistant.brains.hybrid import HybridBrain  # noqa: PLC0415

    if settings.brain.remote.url is None:
        raise BrainError("brain.kind is 'remote' but brain.remote.url is not set",
                         code=ErrorCode.BRAIN_CONFIG)
    gemma = _gemma_brain(settings) if settings.brain.remote.hear == "gemma" else None
    return HybridBrain(_phrase_brain(settings), _remote_brain(settings, gemma),
                       escalate=settings.brain.remote.escalate, local=gemma)


_BRAINS: dict[str, Callable[[Settings], Brain]] = {
    "phrase": _phrase_brain,
    "gemma": _gemma_brain,
    "hybrid": _hybrid_brain,
    "remote": _phrase_and_remote,
}
"""brain.kind -> the factory of that brain."""


def gemma_of(brain: Brain | None) -> GemmaBrain | None:
    """The Gemma brain the daemon already runs (``brain`` itself, or a part of a hybrid), if any:
    what else would want Gemma's ears (the Wyoming server's ``asr: gemma``) shares it."""
    from assistant.brains.gemma.brain import GemmaBrain  # noqa: PLC0415 - slow import
    from assistant.brains.hybrid import HybridBrain  # noqa: PLC0415

    if isinstance(brain, GemmaBrain):
        return brain
    if isinstance(brain, HybridBrain):
        return next((part for part in brain.parts if isinstance(part, GemmaBrain)), None)
    return None


def make_brain(settings: Settings) -> Brain:
    """The brain named by ``brain.kind``; raises a BrainError with a clear reason."""
    kind = settings.brain.kind
    factory = _BRAINS.get(kind)
    if factory is None:
        raise BrainError(f"unknown brain.kind {kind!r}", code=ErrorCode.BRAIN_CONFIG)
    return factory(settings)


# --------------------------------------------------------------------------- what skills and HA may ask


class InboxNotifier:
    """Skills' announcements go to the orchestrator's inbox (or to the Wyoming satellite whose
    site asked, through ``satellites``); their events to the HA device."""

    def __init__(self, inbox: Inbox | None, device: AssistantDevice | None,
                 satellites: SatelliteAnnouncer | None = None) -> None:
        self._inbox = inbox
        self._device = device
        self._satellites = satellites

    def announce(self, text: str, site: str | None = None) -> None:
        """Speak ``text`` at ``site``: a hub satellite's, else this assistant's own speaker."""
        _LOGGER.info("announcement (site %s): %s", site or "-", text)
        if self._satellites is not None and self._satellites.announce(text, site):
            return
        if self._inbox is not None:
            self._inbox.post(Announce(text))

    def publish_event(self, name: str, data: Mapping[str, Any]) -> None:
        """Publish on ``<base>/<site>/event/<name>`` (logged only without a broker)."""
        _LOGGER.info("event %s: %s", name, dict(data))
        if self._device is not None:
            self._device.publish_event(name, data)


class InboxController:
    """The assistant-control skill's controller (volume, mute, stop), told to the orchestrator.

    It remembers what it was told (``get_volume``, ``is_muted``) and follows what the
    orchestrator reports (CONTROLS_CHANGED events), whoever changed it.
    """

    def __init__(self, inbox: Inbox | None, volume: int) -> None:
        self._inbox = inbox
        self._lock = threading.Lock()
        self._volume = max(0, min(100, volume))
        self._muted = False
        self.stops = 0

    def _post(self, command: Stop | SetMuted | SetVolume) -> None:
        if self._inbox is not None:
            self._inbox.post(command)

    def stop(self, site: str | None) -> None:
        """Stop what the assistant is doing (the reply to "stop" is silence)."""
        with self._lock:
            self.stops += 1
        self._post(Stop())

    def get_volume(self) -> int:
        """Output volume in percent."""
        with self._lock:
            return self._volume

    def set_volume(self, percent: int) -> None:
        """Set the output volume in percent (0..100); Home Assistant is told."""
        with self._lock:
            self._volume = max(0, min(100, int(percent)))
            volume = self._volume
        self._post(SetVolume(volume))

    def volume_from_home(self, percent: int) -> None:
        """HA's volume entity changed it (the device has already echoed it)."""
        with self._lock:
            self._volume = max(0, min(100, int(percent)))
            volume = self._volume
        self._post(SetVolume(volume, from_home=True))

    def is_muted(self) -> bool:
        """Whether the wake word is muted."""
        with self._lock:
            return self._muted

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute the wake word; Home Assistant is told."""
        with self._lock:
            self._muted = bool(muted)
        self._post(SetMuted(bool(muted)))

    def muted_from_home(self, muted: bool) -> None:
        """HA's mute switch changed it (the device has already echoed it)."""
        with self._lock:
            self._muted = bool(muted)
        self._post(SetMuted(bool(muted), from_home=True))

    def on_event(self, event: Event) -> None:
        """Follow the orchestrator's CONTROLS_CHANGED events (an event listener)."""
        if event.type is not EventType.CONTROLS_CHANGED:
            return
        with self._lock:
            if "muted" in event.data:
                self._muted = bool(event.data["muted"])
            if "volume" in event.data:
                self._volume = int(event.data["volume"])


# --------------------------------------------------------------------------- the assistant without audio


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


@dataclass
class Assistant:
    """Everything that turns an utterance into actions and a reply (no audio, no orchestrator)."""

    settings: Settings
    registry: ToolRegistry
    router: Router
    home: HomeStack
    skills: LoadedSkills
    controller: InboxController
    brain: Brain | None = None
    tts: TtsSink | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def device(self) -> AssistantDevice | None:
        """The assistant's own HA device, when there is a broker to publish it on."""
        return self.home.device if self.home.client.enabled else None

    def start(self) -> None:
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

    def speak(self, text: str, cancel: threading.Event | None = None) -> str | None:
        """Speak through the sink; returns an error message instead of raising."""
        if self.tts is None or not text:
            return None
        try:
            self.tts.speak(text, cancel or threading.Event())
        except AssistantError as err:
            return f"{err.message} [{err.code}]"
        return None

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
        if isinstance(self.brain, Closable):
            self.brain.close()


def build_assistant(
    settings: Settings,
    *,
    inbox: Inbox | None = None,
    with_brain: bool = True,
    with_tts: bool = True,
    satellites: SatelliteAnnouncer | None = None,
) -> Assistant:
    """Build (but do not start) registry, router, home stack, skills, brain and TTS sink.

    With an ``inbox`` (the daemon), HA's listen button, say entity, mute switch and volume,
    the skills' announcements and controls, and dropped home commands all post into it.
    ``satellites`` takes the announcements for Wyoming satellite sites (timers set there).
    """
    from assistant import __version__  # noqa: PLC0415

    registry = ToolRegistry()
    router = Router(registry, settings.router)
    controller = InboxController(inbox, round(settings.audio.volume * 100))
    home = build_home(
        settings,
        version=__version__,
        on_listen_pressed=(lambda: inbox.post(PushToTalk())) if inbox is not None else None,
        on_say=(lambda text: inbox.post(Announce(text))) if inbox is not None else None,
        on_mute=controller.muted_from_home,
        on_volume=controller.volume_from_home,
    )
    enabled = home.client.enabled
    if inbox is not None and enabled:
        home.client.add_outcome_listener(lambda outcome: _tell_dropped(inbox, outcome))
    ctx = SkillContext.from_settings(
        settings,
        notifier=InboxNotifier(inbox, home.device if enabled else None, satellites),
        publish=home.client.publish_simple if enabled else SkillContext().publish,
        controller=controller,
    )
    skills = load_skills(settings, ctx)
    for problem in [*skills.errors, *install_skills(registry, skills)]:
        _LOGGER.error("skill skipped: %s", problem)
    registry.set_group("home", home.control.tools())

    def home_changed(tools: list[Tool]) -> None:
        for problem in registry.set_group("home", tools):
            _LOGGER.warning("home tool skipped: %s", problem)

    home.control.add_listener(home_changed)
    assistant = Assistant(settings, registry, router, home, skills, controller)
    if with_brain:
        assistant.brain = make_brain(settings)
    if with_tts:
        from assistant.tts import make_tts  # noqa: PLC0415 - pulls in sounddevice

        assistant.tts = make_tts(settings, home.client.publish_simple if enabled else None)
    return assistant


def _tell_dropped(inbox: Inbox, outcome: PublishOutcome) -> None:
    """A queued home command was dropped unsent: say so (the home side logs and publishes it)."""
    if outcome.command and outcome.status in _DROPPED:
        inbox.post(Announce(DROPPED_COMMAND_SPEECH))


@contextlib.contextmanager
def open_sink(settings: Settings) -> Iterator[TtsSink]:
    """The TTS sink alone (``assistant say``), with an MQTT connection when its kind needs one."""
    from assistant.home.client import MqttClient  # noqa: PLC0415 - paho only when needed
    from assistant.tts import make_tts  # noqa: PLC0415 - pulls in sounddevice
    from assistant.tts.kinds import SINKS, TtsKind  # noqa: PLC0415

    client = None
    if SINKS[TtsKind(settings.tts.kind)].needs_mqtt:
        client = MqttClient(settings.mqtt, site=settings.site)
        client.start()
        if not client.wait_connected(5.0):
            client.stop()
            raise AssistantError(f"cannot reach the MQTT broker at {settings.mqtt.host}",
                                 code=ErrorCode.MQTT_OFFLINE)
    sink = make_tts(settings, client.publish_simple if client is not None else None)
    try:
        yield sink
    finally:
        sink.close()
        if client is not None:
            client.stop()


# --------------------------------------------------------------------------- the daemon


class HomeMirror:
    """Pipeline events onto the assistant's HA device: state, transcript, intent, timings, controls.

    (Home Assistant knowledge: its place is assistant/home/device.py, as ``on_event``.)
    """

    def __init__(self, device: AssistantDevice) -> None:
        self.device = device

    def satellite_turn(self, turn: HubTurn) -> None:
        """A satellite's turn on the same sensors: the last transcript, and the last intent with
        the satellite's site in its attributes (``site``; Hermes' ``siteId``). The assist state
        and the timings stay this box's own: a satellite listening is not this box listening,
        and its timings lack the stages the box's report has."""
        device = self.device
        try:
            if turn.transcript is not None:
                device.set_transcript(turn.transcript)
            for result in turn.results:
                if result.call.name:  # not the empty call of "nothing was waiting"
                    device.publish_intent(str(result.call.name), result.call.arguments or {},
                                          transcript=turn.transcript, outcome=str(result.status),
                                          site=turn.site)
        except Exception:  # observers must never break a satellite's link
            _LOGGER.exception("publishing the turn of satellite %s failed", turn.site)

    def __call__(self, event: Event) -> None:
        """Publish what ``event`` changed; never raises into the pipeline."""
        device = self.device
        try:
            state = event.data.get("state")
            if isinstance(state, str):
                device.set_state(state)
            if event.type is EventType.TRANSCRIPT:
                device.set_transcript(str(event.data.get("text", "")))
            elif event.type is EventType.TOOL_CALL and "name" in event.data:
                device.publish_intent(str(event.data["name"]), event.data.get("arguments") or {})
            elif event.type is EventType.RUN_END:
                device.publish_timings(dict(event.data))
            elif event.type is EventType.CONTROLS_CHANGED and not event.data.get("from_home"):
                if "muted" in event.data:
                    device.set_muted(bool(event.data["muted"]))
                if "volume" in event.data:
                    device.set_volume(int(event.data["volume"]))
        except Exception:  # observers must never break the pipeline
            _LOGGER.exception("publishing event %s failed", event.type)


class BrainWarmer:
    """Prepares the brain for the current tools in a thread, again whenever they change.

    Grammar or prompt prefix are built off the audio loop, so no utterance waits for
    them; bursts of discovery changes coalesce into one warm-up.
    """

    def __init__(self, assistant: Assistant) -> None:
        self._assistant = assistant
        self._wanted = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._work, name="brain-warm", daemon=True)

    def start(self) -> None:
        """Warm once now and on every tool change."""
        self._assistant.registry.add_listener(lambda _version: self._wanted.set())
        self._wanted.set()
        self._thread.start()

    def stop(self) -> None:
        """Let the thread end (it never blocks shutdown: a daemon thread)."""
        self._stopped.set()
        self._wanted.set()

    def _work(self) -> None:
        while not self._stopped.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stopped.is_set():
                return
            try:
                self._assistant.wait_for_home()
                if self._assistant.brain is not None:
                    warm_brain(self._assistant.brain, self._assistant.router)
            except Exception:  # a failed warm-up only costs the first utterance some time
                _LOGGER.exception("preparing the brain failed")


@dataclass
class Daemon:
    """``assistant run``'s parts: the assistant, the orchestrator and what runs beside it."""

    assistant: Assistant
    orchestrator: Orchestrator
    inbox: Inbox
    warmer: BrainWarmer
    wake: WakeDetector | None
    hub: Hub | None = None
    """The Wyoming hub when satellites are configured (run on the daemon's loop by the supervisor)."""

    def start(self) -> None:
        """Start services, MQTT and the brain warm-up (the orchestrator runs with ``run``)."""
        self.assistant.start()
        self.warmer.start()

    def close(self) -> None:
        """After the orchestrator stopped: warm-up, services, MQTT (availability offline), wake words."""
        self.warmer.stop()
        self.assistant.close()
        if self.wake is not None:
            self.wake.close()


def build_daemon(settings: Settings) -> Daemon:
    """Every part of ``assistant run`` for ``settings``, wired; nothing started yet."""
    from assistant.audio.frontend import Segmenter  # noqa: PLC0415 - heavy imports, run only
    from assistant.audio.sources import make_source  # noqa: PLC0415
    from assistant.daemon import Orchestrator  # noqa: PLC0415
    from assistant.frame_bridge import ThreadedFrameSource  # noqa: PLC0415
    from assistant.lifecycle import SystemdStatus  # noqa: PLC0415
    from assistant.tts import make_earcons  # noqa: PLC0415
    from assistant.wake.detector import WakeDetector  # noqa: PLC0415

    inbox = Inbox()
    satellites = settings.wyoming.satellites
    announcer = SatelliteAnnouncer(s.site for s in satellites) if satellites else None
    assistant = build_assistant(settings, inbox=inbox, satellites=announcer)
    if assistant.brain is None or assistant.tts is None:  # built unless told not to
        raise AssistantError("brain or TTS sink missing", code=ErrorCode.INTERNAL_ERROR)
    wake = WakeDetector.from_settings(settings.wake) if settings.wake.enabled else None
    source = make_source(settings)
    device = assistant.device
    orchestrator = Orchestrator(
        settings,
        source=ThreadedFrameSource(source, stop=source.stop),
        segmenter=Segmenter(settings.vad, source=f"live:{settings.audio.source}", site=settings.site),
        brain=assistant.brain,
        router=assistant.router,
        tts=assistant.tts,
        wake=wake,
        earcons=make_earcons(settings, assistant.tts),
        listeners=[assistant.controller.on_event, *([HomeMirror(device)] if device is not None else [])],
        inbox=inbox,
        status=SystemdStatus(),
    )
    return Daemon(assistant, orchestrator, inbox, BrainWarmer(assistant), wake,
                  build_hub(settings, assistant, announcer) if announcer is not None else None)


def build_hub(settings: Settings, assistant: Assistant, announcer: SatelliteAnnouncer | None) -> Hub:
    """The Wyoming hub for ``wyoming.satellites``: the assistant's brain and router, replies
    rendered by the synthesizer ``tts.kind``/``tts.voice`` name (espeak-ng unless piper), and
    ``wake.words`` for satellites that stream all the time."""
    from assistant.tts import make_synthesizer  # noqa: PLC0415 - TTS only when satellites are set
    from assistant.wyoming.hub import Hub  # noqa: PLC0415
    from assistant.wyoming.hub_state import state_path  # noqa: PLC0415

    if assistant.brain is None:
        raise AssistantError("the hub needs a brain", code=ErrorCode.INTERNAL_ERROR)
    wake = settings.wake

    def wake_words() -> WakeDetector:
        from assistant.wake.detector import WakeDetector  # noqa: PLC0415 - TFLite only when needed

        return WakeDetector.from_settings(wake)

    device = assistant.device
    return Hub(settings.wyoming.satellites, brain=assistant.brain, router=assistant.router,
               synthesizer=make_synthesizer(settings), vad=settings.vad, announcer=announcer,
               on_turn=HomeMirror(device).satellite_turn if device is not None else None,
               state_file=state_path(settings), wake_factory=wake_words if wake.enabled else None)
