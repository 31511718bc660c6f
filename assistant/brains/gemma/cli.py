"""The functions behind `assistant models pull` and `assistant models check`.

assistant/cli.py parses the arguments (its choices are checked against REPOS and
VARIANT_SUFFIX by a test); each function returns a process exit code and writes to ``out``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from assistant.brains.gemma.files import check_model_dir
from assistant.brains.gemma.pull import pull
from assistant.errors import ModelFilesError


def _progress(out: TextIO) -> Callable[[str, int, int], None]:
    """A pull's progress lines: "[i/n] file", then "done: n files"."""
    def progress(name: str, done: int, total: int) -> None:
        out.write(f"[{done + 1}/{total}] {name}\n" if name else f"done: {total} files\n")
        out.flush()

    return progress


def _pull_error(exc: Exception) -> str:
    """The line a failed pull prints: our own message, or the network / hub error."""
    if isinstance(exc, ModelFilesError):
        return f"error: {exc.message}\n"
    return f"error: download failed: {exc}\n"  # network and hub errors derive from OSError / ValueError


def default_model_dir(model: str) -> Path:
    """Where `models pull` puts a model without --dir: $XDG_DATA_HOME/assistant/models/gemma-4-<model>."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "assistant" / "models" / f"gemma-4-{model}"


def models_pull(
    model: str,
    dest: Path | None = None,
    variant: str = "q4",
    audio_variant: str = "fp32",
    out: TextIO | None = None,
) -> int:
    """Download a model's needed files; 0 on success, 1 with a message otherwise."""
    out = out or sys.stdout
    target = dest or default_model_dir(model)

    try:
        path = pull(model, target, variant=variant, audio_variant=audio_variant, progress=_progress(out))
    except (ModelFilesError, OSError, ValueError) as exc:
        out.write(_pull_error(exc))
        return 1
    out.write(
        f"model files in {path}\nset brain.gemma.model_dir: {path} and brain.gemma.variant: {variant}\n"
    )
    report = check_model_dir(path, variant, audio_variant)
    out.write(report.render() + "\n")
    return 0 if report.ok else 1


def verifier_pull(model: str, dest: Path | None = None, out: TextIO | None = None) -> int:
    """Download the phrase verifier's Whisper model and load it once; 0 on success."""
    from assistant.brains.phrase.verifier import WhisperTranscriber, pull_whisper  # noqa: PLC0415

    out = out or sys.stdout
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    target = dest or base / "assistant" / "models" / model

    try:
        path = pull_whisper(model, target, _progress(out))
        WhisperTranscriber(path)
    except (ModelFilesError, OSError, ValueError) as exc:
        out.write(_pull_error(exc))
        return 1
    out.write(f"model files in {path}: it loads\nset brain.phrase.verifier_dir: {path}\n")
    return 0


def models_check(
    directory: Path, variant: str = "q4", audio_variant: str = "fp32", out: TextIO | None = None
) -> int:
    """Print the verdict on a model directory; 0 when the runtime can drive it."""
    out = out or sys.stdout
    report = check_model_dir(directory, variant, audio_variant)
    out.write(report.render() + "\n")
    return 0 if report.ok else 1
