"""Each satellite's state on disk: written by the running hub, read by ``assistant home``.

A small JSON file under ``state_dir`` (no wyoming import here, so ``assistant home`` stays
light): ``{"satellites": [{site, uri, state, name, area, connects, turns, stale,
last_error, since}, ...]}``, replaced atomically on every change.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assistant.config import Settings

_LOGGER = logging.getLogger(__name__)

STATE_FILE = "satellites.json"
"""The file's name under state_dir."""


def state_path(settings: Settings) -> Path:
    """Where the hub of ``settings`` keeps its satellites' states."""
    return settings.state_dir / STATE_FILE


def write_states(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace the file with ``rows`` (never raises: a full disk costs only the report)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"satellites": [dict(r) for r in rows]}, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        _LOGGER.debug("satellite states not written: %s", err)


def read_states(path: Path) -> list[dict[str, Any]]:
    """The rows the hub wrote (empty when there is no file or it is unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    rows = data.get("satellites") if isinstance(data, dict) else None
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def satellite_report(settings: Settings) -> list[dict[str, Any]]:
    """One row per configured satellite: its last known state, or "not running" without a hub."""
    known = {r.get("site"): r for r in read_states(state_path(settings))}
    rows = []
    for satellite in settings.wyoming.satellites:
        row = known.get(satellite.site)
        if row is None or row.get("uri") != satellite.uri:
            row = {"site": satellite.site, "uri": satellite.uri, "state": "not running"}
        rows.append({**row, "area": satellite.area or row.get("area")})
    return rows
