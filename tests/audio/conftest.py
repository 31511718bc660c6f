"""Fixtures of the audio front-end tests: the bundled sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "assistant" / "data" / "samples"


@pytest.fixture
def two_commands() -> tuple[Path, list[dict[str, Any]]]:
    """The bundled two-command recording and its true speech start/end times."""
    meta = json.loads((SAMPLES / "two_commands.json").read_text(encoding="utf-8"))
    return SAMPLES / "two_commands.wav", meta["utterances"]
