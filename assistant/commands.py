"""What each CLI subcommand does (assistant.cli parses, this runs), with parts from
assistant.compose. Imports are lazy so that a command only loads what it needs
(pocketsphinx, onnxruntime, paho are slow to import).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.config import Settings
from assistant.errors import AssistantError, ErrorCode
from assistant.paths import shown_name

if TYPE_CHECKING:
    from assistant.compose import Assistant
    from assistant.types import Utterance

_LOGGER = logging.getLogger(__name__)


def _emit(record: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(record, ensure_ascii=False), flush=True)
        return
    parts = [f"{record['file']}", f"{record['start_s']:7.2f}s - {record['end_s']:7.2f}s"]
    if "transcript" in record:
        parts.append(f"heard: {record['transcript']!r}")
    if record.get("tool_calls"):
        calls = ", ".join(f"{c['name']}({json.dumps(c['arguments'])})" for c in record["tool_calls"])
        parts.append(f"calls: {calls}")
    if "reply" in record:
        parts.append(f"reply: {record['reply']!r}")
    print("  ".join(parts), flush=True)


def process(
    settings: Settings,
    files: list[Path],
    *,
    as_json: bool,
    frontend_only: bool,
    tts_kind: str | None = None,
) -> int:
    """Run recordings through the pipeline; one line per utterance.

    Exit 0 when everything ran (whatever was understood), 1 when a file could not be
    read or a part failed to start.
    """
    from assistant.audio.frontend import utterances_from_file  # noqa: PLC0415

    if not files:
        print("assistant process: no recordings given and no bundled samples found", file=sys.stderr)
        return 1
    parts: Assistant | None = None
    if not frontend_only:
        settings, parts = _ready_assistant(settings, tts_kind)
    failed = 0
    tts_broken = False
    try:
        for path in files:
            try:
                utterances = utterances_from_file(path, settings.vad)
            except AssistantError as err:
                print(f"assistant process: {shown_name(err.message)}", file=sys.stderr)
                failed += 1
                continue
            for utt in utterances:
                record: dict[str, Any] = {
                    "file": shown_name(path),
                    "start_s": round(utt.start_s, 3),
                    "end_s": round(utt.end_s, 3),
                }
                if parts is not None:
                    record.update(_think(parts, replace(utt, site=settings.site)))
                    if not tts_broken and record["reply"]:
                        started = time.monotonic()
                        problem = parts.speak(record["reply"])
                        if problem:
                            tts_broken = True
                            print(f"assistant process: speech output disabled: {problem}", file=sys.stderr)
                        else:
                            record["timings_ms"]["tts"] = round((time.monotonic() - started) * 1000, 1)
                _emit(record, as_json)
    finally:
        if parts is not None:
            parts.close()
    return 1 if failed else 0


def _ready_assistant(settings: Settings, tts_kind: str | None) -> tuple[Settings, Assistant]:
    """The assistant for `process`, started, with the home settled and the brain warm."""
    from assistant.brains.base import warm_brain  # noqa: PLC0415
    from assistant.compose import build_assistant, with_demo_house  # noqa: PLC0415

    settings, demo = with_demo_house(settings)
    if demo:
        print(
            "assistant process: no MQTT broker and no home.entities configured: using the demo "
            "house; home commands are shown, not sent",
            file=sys.stderr,
        )
    if tts_kind is not None:
        settings = replace(settings, tts=replace(settings.tts, kind=tts_kind))  # type: ignore[arg-type]
    parts = build_assistant(settings)
    parts.start()
    parts.wait_for_home()
    if parts.brain is not None:
        warm_brain(parts.brain, parts.router)
    return settings, parts


def _think(parts: Assistant, utt: Utterance) -> dict[str, Any]:
    """One utterance through brain and router, as the JSON fields of `process`."""
    import threading  # noqa: PLC0415

    from assistant.brains.base import turn_figures  # noqa: PLC0415

    if parts.brain is None:
        raise AssistantError("no brain was built", code=ErrorCode.INTERNAL_ERROR)
    turn = parts.brain.handle(utt, parts.router, threading.Event())
    timings, counts, flags = turn_figures(turn)
    return {
        "transcript": turn.transcript,
        "understood": turn.understood,
        "tool_calls": [c.to_json() for c in turn.tool_calls],
        "results": [r.to_json() for r in turn.results],
        "reply": turn.reply.text,
        "timings_ms": {k: round(v, 1) for k, v in timings.items()},
        "counts": counts,
        "flags": sorted(flags),
    }


def devices() -> int:
    """List audio devices."""
    from assistant.audio.sources import list_devices  # noqa: PLC0415

    found = list_devices()
    if not found:
        print("no audio devices found (is the microphone plugged in? see `arecord -l`)")
        return 0
    for dev in found:
        print(dev)
    return 0


def say(settings: Settings, text: str) -> int:
    """Speak text through the configured sink (tts.kind)."""
    import threading  # noqa: PLC0415

    from assistant.compose import open_sink  # noqa: PLC0415

    with open_sink(settings) as sink:
        result = sink.speak(text, threading.Event())
    if result.path:
        print(result.path)
    return 0


def run(settings: Settings, *, config_path: str | None) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    from assistant.supervisor import run_daemon  # noqa: PLC0415 - loads every part

    return run_daemon(settings, config_path=config_path)


def models_pull(settings: Settings, model: str, variant: str, audio_variant: str, dest: Path | None) -> int:
    """Download a Gemma export or the verifier's Whisper model (the only command that downloads anything)."""
    from assistant.brains.gemma import cli as gemma_cli  # noqa: PLC0415
    from assistant.brains.phrase.verifier import WHISPER_REPOS  # noqa: PLC0415

    if model in WHISPER_REPOS:
        return gemma_cli.verifier_pull(model, dest)

    return gemma_cli.models_pull(model, dest, variant, audio_variant)


def models_check(settings: Settings, directory: Path, variant: str | None, audio_variant: str | None) -> int:
    """Check a Gemma export folder against what the runtime expects."""
    from assistant.brains.gemma import cli as gemma_cli  # noqa: PLC0415

    gemma = settings.brain.gemma
    return gemma_cli.models_check(directory, variant or gemma.variant, audio_variant or gemma.audio_variant)
