"""Wyoming events on a TCP stream, read with bounds: a satellite is untrusted input.

The wire format (wyoming's event.py): one JSON header line ``{"type", "data"?,
"data_length"?, "payload_length"?, "version"}``, then ``data_length`` bytes of JSON
merged into ``data``, then ``payload_length`` bytes of payload (audio). wyoming's own
reader trusts the lengths; this one refuses a header, data or payload larger than the
limits, so a broken or hostile peer costs bounded memory and gets a clear error.
Writing uses the package's ``async_write_event``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event, async_write_event

MAX_HEADER_BYTES = 64 * 1024
"""A header line longer than this is refused."""
MAX_DATA_BYTES = 256 * 1024
"""Event data (JSON) larger than this is refused."""
MAX_PAYLOAD_BYTES = 1 << 20
"""An audio payload larger than this (about 30 s of 16 kHz audio) is refused."""


class WireError(ValueError):
    """The peer sent something that is not a well-formed, bounded Wyoming event."""


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WireError(f"{key} must be a non-negative integer, got {value!r}")
    if value > limit:
        raise WireError(f"{key} {value} exceeds the limit of {limit} bytes")
    return value


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"{what} is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise WireError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event; None at a clean end of stream; WireError for anything malformed.

    ``reader`` must have been opened with ``limit`` >= MAX_HEADER_BYTES (``open_connection``).
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial:
            return None
        raise WireError("stream ended inside an event header") from None
    except asyncio.LimitOverrunError:
        raise WireError(f"event header longer than {MAX_HEADER_BYTES} bytes") from None
    if len(line) > MAX_HEADER_BYTES:
        raise WireError(f"event header longer than {MAX_HEADER_BYTES} bytes")
    header = _json_object(line, "event header")
    kind = header.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise WireError(f"event type must be a short string, got {kind!r}")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise WireError("event data must be a JSON object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            data = {**data, **_json_object(await reader.readexactly(data_length), "event data")}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise WireError(f"stream ended inside a {kind} event") from None
    return Event(type=kind, data=data, payload=payload)


async def write_event(event: Event, writer: asyncio.StreamWriter) -> None:
    """Send one event (header, data, payload) and drain."""
    await async_write_event(event, writer)
