"""`assistant run`: one daemon lifetime after another, until a stop signal.

Each lifetime builds the daemon from settings (assistant.compose), attaches the
process's signal relay to it, runs the orchestrator beside the systemd watchdog, and
closes everything. SIGHUP reads and validates the settings file while the pipeline keeps
running (assistant.lifecycle.ReloadCheck); only valid, changed settings end the lifetime,
and the next one is built from them. A refused reload rebuilds nothing, and the HA
device never goes offline for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.config import Settings
from assistant.errors import AssistantError, TtsError
from assistant.inbox import PushToTalk, Shutdown
from assistant.lifecycle import ReloadCheck, SignalRelay, Watchdog, process_relay

if TYPE_CHECKING:
    from assistant.compose import Daemon
    from assistant.tts.base import Synthesizer
    from assistant.wyoming.hub import Hub
    from assistant.wyoming.satellite import SatelliteEndpoint
    from assistant.wyoming.server import WyomingServer
    from assistant.wyoming.server_brains import Hearing

_LOGGER = logging.getLogger(__name__)


def run_daemon(settings: Settings, *, config_path: str | None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads. Exit status 0, or 1 when audio failed for good.

    The signal handlers are installed before anything else and stay for the whole life of
    the process (see assistant.lifecycle): a signal during start-up or between two
    pipelines never kills the daemon.
    """
    relay = process_relay()
    try:
        while not relay.stop_requested:
            ended = asyncio.run(_lifetime(settings, relay, config_path))
            if ended.failed:
                return 1
            if ended.reload_with is None:
                return 0
            settings = ended.reload_with
            _LOGGER.info("settings reloaded: rebuilding the pipeline")
        return 0
    finally:
        relay.uninstall()


@dataclass(frozen=True)
class _Ended:
    """How one lifetime ended: failed (audio gone for good), or to be rebuilt with new settings."""

    failed: bool = False
    reload_with: Settings | None = None


async def _lifetime(settings: Settings, relay: SignalRelay, config_path: str | None) -> _Ended:
    """One daemon lifetime with fixed settings."""
    from assistant.compose import build_daemon  # noqa: PLC0415 - loads every part

    daemon = build_daemon(settings)
    orch, inbox = daemon.orchestrator, daemon.inbox

    def shutdown() -> None:
        inbox.post(Shutdown())

    reload = ReloadCheck(settings, config_path, on_accepted=shutdown,
                         status=lambda: f"{orch.status_line()} (reload checked)")
    relay.attach(asyncio.get_running_loop(), {
        signal.SIGTERM: shutdown,
        signal.SIGINT: shutdown,
        signal.SIGHUP: reload.request,
        signal.SIGUSR1: lambda: inbox.post(PushToTalk()),
    })
    watchdog = asyncio.ensure_future(Watchdog(orch.health_problem).run())
    hub_task: asyncio.Future[None] | None = None
    server: WyomingServer | None = None
    satellite: SatelliteEndpoint | None = None
    try:
        daemon.start()
        if daemon.hub is not None:
            hub_task = asyncio.ensure_future(daemon.hub.run())
        if settings.wyoming.server is not None:
            server = await _start_server(settings, daemon)
            satellite = await _start_satellite(settings, daemon)
        _LOGGER.info(
            "assistant running: site=%s brain=%s tts=%s wake=%s mqtt=%s",
            settings.site,
            settings.brain.kind,
            settings.tts.kind,
            ",".join(w.model for w in settings.wake.words) if daemon.wake else "off",
            settings.mqtt.host or "none",
        )
        await orch.run()
    finally:
        relay.detach()
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
        if daemon.hub is not None and hub_task is not None:
            await _stop_hub(daemon.hub, hub_task)
        if satellite is not None:
            orch.handoff = None
            await _stop_server(satellite)
        if server is not None:
            await _stop_server(server)
        daemon.close()
    if orch.failure is not None:
        return _Ended(failed=True)
    if reload.accepted is not None and not relay.stop_requested:
        return _Ended(reload_with=reload.accepted)
    return _Ended()


async def _start_server(settings: Settings, daemon: Daemon) -> WyomingServer | None:
    """The Wyoming server for Home Assistant (``wyoming.server``) over the daemon's router, with a
    phrase brain of its own (a request must not take the daemon's early decode). A server that
    cannot listen is logged and left out: the assistant's own microphone keeps working."""
    from assistant.brains.phrase.brain import make_phrase_brain  # noqa: PLC0415 - slow import
    from assistant.wyoming.server import start_wyoming_server  # noqa: PLC0415

    wanted = settings.wyoming.server
    if wanted is None or not set(wanted.serve) - {"satellite"}:
        return None
    phrase = await asyncio.to_thread(make_phrase_brain, settings.brain.phrase)
    synthesizer = await asyncio.to_thread(_voice, settings, daemon) if "tts" in wanted.serve else None
    hearing = None
    if "asr" in wanted.serve and wanted.asr == "gemma":
        hearing = await asyncio.to_thread(_gemma_ears, settings, daemon)
    try:
        server = await start_wyoming_server(wanted, phrase=phrase, router=daemon.assistant.router,
                                            synthesizer=synthesizer, hearing=hearing)
    except OSError as err:
        _LOGGER.error("Wyoming server: cannot listen on %s:%d (%s); running without it",
                      wanted.host, wanted.port, err.strerror or err)
        return None
    _LOGGER.info("Wyoming server listening on %s:%d (%s)", wanted.host, server.port, ", ".join(wanted.serve))
    return server


def _gemma_ears(settings: Settings, daemon: Daemon) -> Hearing | None:
    """Gemma's transcription for the server's ``asr: gemma``: the daemon's own Gemma brain when it
    runs one (one model in memory), else one loaded for the server; None (logged) when it cannot load."""
    from assistant.brains.gemma.brain import make_gemma_brain  # noqa: PLC0415 - slow import
    from assistant.compose import gemma_of  # noqa: PLC0415 - loads every part

    gemma = gemma_of(daemon.assistant.brain)
    if gemma is None:
        try:
            gemma = make_gemma_brain(settings.brain.gemma)
        except AssistantError as err:
            _LOGGER.error("Wyoming server: Gemma for asr could not be loaded (%s)", err)
            return None
        except Exception:  # onnxruntime's own load failures: the rest of the server still serves
            _LOGGER.exception("Wyoming server: Gemma for asr could not be loaded")
            return None
    return gemma.transcribe


def _voice(settings: Settings, daemon: Daemon) -> Synthesizer | None:
    """The piper voice the server's tts speaks with: the daemon's own when it speaks with piper."""
    from assistant.tts.piper import PiperSynthesizer  # noqa: PLC0415 - optional extra
    from assistant.tts.sinks import SpeakerSink  # noqa: PLC0415

    sink = daemon.assistant.tts
    if isinstance(sink, SpeakerSink) and isinstance(sink.synthesizer, PiperSynthesizer):
        return sink.synthesizer
    try:
        return PiperSynthesizer(settings.tts.voice if settings.tts.kind == "piper" else None)
    except TtsError as err:
        _LOGGER.error("Wyoming server: no piper voice for tts (%s)", err)
        return None


async def _start_satellite(settings: Settings, daemon: Daemon) -> SatelliteEndpoint | None:
    """The satellite endpoint (``serve: [satellite]``), made the orchestrator's turn handoff.
    One that cannot listen is logged and left out: our brain takes every turn."""
    from assistant.wyoming.satellite import start_satellite_endpoint  # noqa: PLC0415

    wanted = settings.wyoming.server
    if wanted is None or "satellite" not in wanted.serve:
        return None
    try:
        area = None if settings.site == "default" else settings.site
        endpoint = await start_satellite_endpoint(wanted, area=area, announce=daemon.inbox.post)
    except OSError as err:
        _LOGGER.error("Wyoming satellite: cannot listen on %s:%d (%s); our brain takes every turn",
                      wanted.host, wanted.satellite_port, err.strerror or err)
        return None
    daemon.orchestrator.handoff = endpoint
    return endpoint


async def _stop_server(server: WyomingServer | SatelliteEndpoint) -> None:
    """Stop the Wyoming server (or satellite endpoint) before the router it calls closes (bounded: 2 s)."""
    try:
        await asyncio.wait_for(server.stop(), 2.0)
    except Exception:  # a server failure must not block the rest of the shutdown
        _LOGGER.exception("the Wyoming server did not stop cleanly")


async def _stop_hub(hub: Hub, task: asyncio.Future[None]) -> None:
    """Stop the Wyoming hub before the router it calls closes (bounded: 2 s)."""
    hub.stop()
    try:
        await asyncio.wait_for(task, 2.0)
    except (TimeoutError, asyncio.CancelledError):
        _LOGGER.warning("the Wyoming hub did not stop within 2 s")
    except Exception:  # a hub failure must not block the rest of the shutdown
        _LOGGER.exception("the Wyoming hub failed")
