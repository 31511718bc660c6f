"""What each CLI subcommand does, wired from the parts. Imports are lazy so that a
command only loads what it needs (pocketsphinx, onnxruntime, paho are slow to import).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.errors import AssistantError

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


def process(settings: Settings, files: list[Path], *, as_json: bool, frontend_only: bool) -> int:
    """Run recordings through the pipeline; one line per utterance. Exit 1 if a file failed."""
    from assistant.audio.frontend import utterances_from_file  # noqa: PLC0415

    if not files:
        print("assistant process: no recordings given and no bundled samples found", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        try:
            utterances = utterances_from_file(path, settings.vad)
        except AssistantError as err:
            print(f"assistant process: {err.message}", file=sys.stderr)
            failed += 1
            continue
        for utt in utterances:
            record: dict[str, Any] = {
                "file": str(path),
                "start_s": round(utt.start_s, 3),
                "end_s": round(utt.end_s, 3),
            }
            _emit(record, as_json)
    return 1 if failed else 0


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
    """Speak text through the configured sink."""
    raise AssistantError("`assistant say` is not available yet", code="not_implemented")


def run(settings: Settings, *, config_path: str | None) -> int:
    """Run the daemon."""
    raise AssistantError("`assistant run` is not available yet", code="not_implemented")


def models_pull(settings: Settings, model: str, variant: str, audio_variant: str, dest: Path | None) -> int:
    """Download a Gemma export."""
    raise AssistantError("`assistant models pull` is not available yet", code="not_implemented")


def models_check(settings: Settings, directory: Path, variant: str | None, audio_variant: str | None) -> int:
    """Check a Gemma export folder."""
    raise AssistantError("`assistant models check` is not available yet", code="not_implemented")
