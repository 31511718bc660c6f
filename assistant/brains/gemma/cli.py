"""The functions behind `assistant models pull` and `assistant models check`.

The lead's CLI wires these into argparse (``add_models_commands`` does it for a
``models`` sub-parser); each returns a process exit code and writes to ``out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from assistant.brains.gemma.files import VARIANT_SUFFIX, check_model_dir
from assistant.brains.gemma.pull import REPOS, pull
from assistant.errors import ModelFilesError


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

    def progress(name: str, done: int, total: int) -> None:
        if name:
            out.write(f"[{done + 1}/{total}] {name}\n")
        else:
            out.write(f"done: {total} files\n")
        out.flush()

    try:
        path = pull(model, target, variant=variant, audio_variant=audio_variant, progress=progress)
    except ModelFilesError as exc:
        out.write(f"error: {exc.message}\n")
        return 1
    except (OSError, ValueError) as exc:  # network and hub errors derive from these
        out.write(f"error: download failed: {exc}\n")
        return 1
    out.write(
        f"model files in {path}\nset brain.gemma.model_dir: {path} and brain.gemma.variant: {variant}\n"
    )
    report = check_model_dir(path, variant, audio_variant)
    out.write(report.render() + "\n")
    return 0 if report.ok else 1


def models_check(
    directory: Path, variant: str = "q4", audio_variant: str = "fp32", out: TextIO | None = None
) -> int:
    """Print the verdict on a model directory; 0 when the runtime can drive it."""
    out = out or sys.stdout
    report = check_model_dir(directory, variant, audio_variant)
    out.write(report.render() + "\n")
    return 0 if report.ok else 1


def add_models_commands(models: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pull`` and ``check`` to a ``models`` sub-parser group; each sets ``args.run(args) -> int``."""
    variants = sorted(VARIANT_SUFFIX)
    pull_parser = models.add_parser(
        "pull", help="download a Gemma 4 model (only the files the assistant needs)"
    )
    pull_parser.add_argument("model", choices=sorted(REPOS), help="e2b (smaller, faster) or e4b")
    pull_parser.add_argument("--variant", default="q4", choices=variants, help="decoder/embedding precision")
    pull_parser.add_argument(
        "--audio-variant", default="fp32", choices=variants, help="audio-encoder precision"
    )
    pull_parser.add_argument("--dir", type=Path, default=None, help="destination folder")
    pull_parser.set_defaults(run=lambda a: models_pull(a.model, a.dir, a.variant, a.audio_variant))
    check_parser = models.add_parser(
        "check", help="check that a model folder matches what the runtime expects"
    )
    check_parser.add_argument("directory", type=Path)
    check_parser.add_argument("--variant", default="q4", choices=variants)
    check_parser.add_argument("--audio-variant", default="fp32", choices=variants)
    check_parser.set_defaults(run=lambda a: models_check(a.directory, a.variant, a.audio_variant))
