"""`assistant run`: every part built from settings and handed to the orchestrator.

The orchestrator (assistant.daemon) owns the state machine; this module owns the
wiring: live audio source, segmenter, wake words, brain, router with skills and home
tools, TTS sink, earcons, the assistant's own Home Assistant device (state, transcript,
intent, timings, mute, volume, listen button, say) and SIGHUP reloads (a new settings
file is validated first; a bad one is reported and the running daemon keeps going).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from assistant import sdnotify
from assistant.brains.base import warm_brain
from assistant.config import Settings, load_settings
from assistant.errors import AssistantError, ConfigError
from assistant.lifecycle import SignalRelay, process_relay
from assistant.tools.context import InMemoryController
from assistant.types import Event, EventType

_LOGGER = logging.getLogger(__name__)


class DaemonController(InMemoryController):
    """What the assistant-control skill may change (volume, mute, stop), told to the daemon."""

    def __init__(self, volume: int) -> None:
        super().__init__(volume)
        self.on_volume: list[Callable[[int], None]] = []
        self.on_mute: list[Callable[[bool], None]] = []
        self.on_stop: list[Callable[[], None]] = []

    def stop(self, site: str | None) -> None:
        """Stop what is playing (the reply to "stop" is silence)."""
        super().stop(site)
        for callback in self.on_stop:
            callback()

    def set_volume(self, percent: int) -> None:
        """Set the output volume in percent (0..100)."""
        super().set_volume(percent)
        for callback in self.on_volume:
            callback(self.get_volume())

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute the wake word."""
        super().set_muted(muted)
        for callback in self.on_mute:
            callback(bool(muted))


def run_daemon(settings: Settings, *, config_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Exit status 0, or 1 when audio failed for good.

    The signal handlers are installed before anything else and stay for the whole life of
    the process (see assistant.lifecycle): a signal during start-up or between two
    pipelines never kills the daemon. SIGHUP reads and validates the settings file while
    the pipeline keeps running; only valid, changed settings rebuild it.
    """
    relay = process_relay()
    try:
        while not relay.stop_requested:
            result = asyncio.run(_run_once(settings, relay, config_path))
            if result.outcome == "failed":
                return 1
            if result.outcome == "stop" or result.settings is None:
                return 0
            settings = result.settings
            _LOGGER.info("settings reloaded: rebuilding the pipeline")
        return 0
    finally:
        relay.uninstall()


@dataclass(frozen=True)
class _Ended:
    """How one pipeline ended: "stop", "reload" (with the new settings) or "failed"."""

    outcome: str
    settings: Settings | None = None


class _Reloader:
    """SIGHUP: read and validate the settings off the loop; stop the pipeline only for valid, new ones."""

    def __init__(self, settings: Settings, config_path: str | None, stop: Callable[[], None],
                 status: Callable[[], str]) -> None:
        self.settings = settings
        self.config_path = config_path
        self._stop = stop
        self._status = status
        self.accepted: Settings | None = None
        self._busy = False
        self._again = False
        self._task: asyncio.Future[None] | None = None

    def request(self) -> None:
        """On the loop: start a check, or ask for one more after the running one (coalesced)."""
        if self.accepted is not None:
            return  # already reloading
        if self._busy:
            self._again = True
            return
        self._busy = True
        self._task = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        try:
            while True:
                self._again = False
                sdnotify.reloading()
                _LOGGER.info("Reloading: checking the settings")
                try:
                    new = await asyncio.to_thread(load_settings, self.config_path)
                except ConfigError as err:
                    # Refused: the running pipeline stays as it is, and the log says exactly why.
                    for problem in err.problems:
                        _LOGGER.error("reload refused: %s", problem)
                    new = None
                except Exception as err:  # reading the file failed in an unexpected way
                    _LOGGER.error("reload refused: %s", err)
                    new = None
                if new is not None and new != self.settings:
                    self.accepted = new
                    self._stop()
                    return
                if new is not None:
                    _LOGGER.info("Reload: the settings are unchanged; nothing to do")
                sdnotify.ready(self._status())
                if not self._again:
                    return
        finally:
            self._busy = False


async def _run_once(settings: Settings, relay: SignalRelay, config_path: str | None) -> _Ended:
    """One daemon lifetime with fixed settings."""
    from assistant.audio.frontend import Segmenter  # noqa: PLC0415 - heavy imports, run only
    from assistant.audio.sources import make_source  # noqa: PLC0415
    from assistant.daemon import Orchestrator, ThreadedFrameSource  # noqa: PLC0415
    from assistant.pipeline import build_parts  # noqa: PLC0415
    from assistant.tts import make_earcons  # noqa: PLC0415
    from assistant.wake.detector import WakeDetector  # noqa: PLC0415

    controller = DaemonController(round(settings.audio.volume * 100))
    holder: dict[str, Orchestrator] = {}

    def push_to_talk() -> None:
        if "orch" in holder:
            holder["orch"].push_to_talk()

    def say(text: str) -> None:
        if "orch" in holder:
            holder["orch"].announce(text)

    parts = build_parts(
        settings,
        controller=controller,
        on_listen_pressed=push_to_talk,
        on_say=say,
        on_mute=controller.set_muted,
        on_volume=controller.set_volume,
    )
    if parts.brain is None or parts.tts is None:  # build_parts makes both unless told not to
        raise AssistantError("brain or TTS sink missing", code="internal_error")
    wake = WakeDetector.from_settings(settings.wake) if settings.wake.enabled else None
    stop_event = threading.Event()
    warm_wanted = threading.Event()
    source = make_source(settings, stop_event=stop_event)
    frames = ThreadedFrameSource(source, stop=source.stop)
    segmenter = Segmenter(settings.vad, source=f"live:{settings.audio.source}", site=settings.site)
    device = parts.home.device if parts.home.client.enabled else None

    def on_event(event: Event) -> None:
        if device is None:
            return
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
        except Exception:  # observers must never break the pipeline
            _LOGGER.exception("publishing event %s failed", event.type)

    orch = Orchestrator(
        settings,
        source=frames,
        segmenter=segmenter,
        brain=parts.brain,
        router=parts.router,
        tts=parts.tts,
        wake=wake,
        earcons=make_earcons(settings, parts.tts),
        listeners=[on_event],
        shutdown_hooks=[stop_event.set, warm_wanted.set, parts.close],
    )
    holder["orch"] = orch
    reloader = _Reloader(settings, config_path, orch.stop, lambda: f"{orch.state}: reload checked")
    relay.attach(asyncio.get_running_loop(), {
        signal.SIGTERM: orch.stop,
        signal.SIGINT: orch.stop,
        signal.SIGHUP: reloader.request,
        signal.SIGUSR1: orch.push_to_talk,
    })
    controller.on_mute.append(orch.set_muted)
    if device is not None:
        controller.on_mute.append(device.set_muted)
        controller.on_volume.append(device.set_volume)
    parts.notifier.announce_to = lambda text, _site: orch.announce(text)
    parts.start_services()
    brain = parts.brain

    def prepare_brain() -> None:
        # Grammar / prompt prefix for the current tools, off the audio loop; again whenever
        # the home inventory or the skills change, so no utterance waits for it.
        try:
            parts.wait_for_home()
            warm_brain(brain, parts.router)
        except Exception:  # a failed warm-up only costs the first utterance some time
            _LOGGER.exception("preparing the brain failed")

    def warm_worker() -> None:
        while not stop_event.is_set():
            warm_wanted.wait()
            warm_wanted.clear()
            if not stop_event.is_set():
                prepare_brain()

    def on_tools_changed(_version: int) -> None:
        warm_wanted.set()  # one worker coalesces bursts of discovery changes

    threading.Thread(target=warm_worker, name="brain-warm", daemon=True).start()

    parts.registry.add_listener(on_tools_changed)
    on_tools_changed(parts.registry.version)
    _LOGGER.info(
        "assistant running: site=%s brain=%s tts=%s wake=%s mqtt=%s",
        settings.site,
        settings.brain.kind,
        settings.tts.kind,
        ",".join(w.model for w in settings.wake.words) if wake else "off",
        settings.mqtt.host or "none",
    )
    try:
        await orch.run()
    finally:
        relay.detach()
        parts.close()
        if wake is not None:
            wake.close()
    if orch.failure is not None:
        return _Ended("failed")
    if reloader.accepted is not None and not relay.stop_requested:
        return _Ended("reload", reloader.accepted)
    return _Ended("stop")
