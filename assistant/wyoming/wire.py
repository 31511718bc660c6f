"""Wyoming events read off the wire with every size checked before it is read.

A Wyoming event is one JSON header line (``type``, optional ``data``, ``data_length``,
``payload_length``, ``version``), then ``data_length`` bytes of JSON object merged into
``data``, then ``payload_length`` bytes of payload (audio). The wyoming package's own
reader trusts the lengths (a header announcing 4 GiB makes it try to read 4 GiB); this one
refuses a header line, a data block or a payload over its limit before reading it, and
says why with a ``WireError``. Writing uses the package's writer (``write_event``). The
server (HA's requests: short clips in small chunks) and the hub (satellites' streams) read
with their own ``WireLimits``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from wyoming.event import Event, async_write_event

from assistant.errors import ErrorCode


@dataclass(frozen=True)
class WireLimits:
    """The largest parts of one event a peer may send."""

    header_bytes: int = 8 << 10
    """One JSON header line, newline included."""
    data_bytes: int = 16 << 10
    """The JSON data block after the header (``data_length``)."""
    payload_bytes: int = 64 << 10
    """One payload (``payload_length``): 2 s of 16 kHz 16-bit mono audio."""
    type_chars: int = 64
    """An event type name."""


SATELLITE_LIMITS = WireLimits(header_bytes=64 << 10, data_bytes=256 << 10, payload_bytes=1 << 20)
"""What the hub reads from a wyoming-satellite: its chunks can be larger (up to about 30 s)."""


class WireError(ValueError):
    """A peer sent something that is not a Wyoming event within the limits; the message says what."""

    def __init__(self, message: str, *, code: str = ErrorCode.WYOMING_BAD_EVENT) -> None:
        super().__init__(message)
        self.message = message
        self.code = str(code)


async def read_event(reader: asyncio.StreamReader, limits: WireLimits) -> Event | None:
    """The next event, or None at a clean end of stream (between events).

    ``reader`` must have been made with ``limit >= limits.header_bytes`` (asyncio's line
    limit); a longer header line raises ``WireError`` without being buffered whole.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as err:
        if not err.partial.strip():
            return None
        raise WireError("the stream ended inside an event header") from err
    except asyncio.LimitOverrunError as err:
        raise WireError(f"event header longer than {limits.header_bytes} bytes",
                        code=ErrorCode.WYOMING_TOO_LARGE) from err
    if len(line) > limits.header_bytes:
        raise WireError(f"event header longer than {limits.header_bytes} bytes",
                        code=ErrorCode.WYOMING_TOO_LARGE)
    header = _json_object(line, "event header")
    event_type = header.get("type")
    if not isinstance(event_type, str) or not event_type or len(event_type) > limits.type_chars:
        raise WireError("event header without a valid 'type'")
    data = header.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WireError(f"{event_type}: 'data' is not an object")
    data_length = _length(header, "data_length", limits.data_bytes, event_type)
    payload_length = _length(header, "payload_length", limits.payload_bytes, event_type)
    if data_length:
        block = await _exactly(reader, data_length, event_type, "data")
        data = {**data, **_json_object(block, f"{event_type} data")}
    payload = await _exactly(reader, payload_length, event_type, "payload") if payload_length else None
    return Event(type=event_type, data=data, payload=payload)


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise WireError(f"{what} is not JSON") from err
    if not isinstance(value, dict):
        raise WireError(f"{what} is not a JSON object")
    return value


def _length(header: dict[str, Any], key: str, limit: int, event_type: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{event_type}: '{key}' is not a byte count")
    if value > limit:
        raise WireError(f"{event_type}: {key} {value} is over the limit of {limit} bytes",
                        code=ErrorCode.WYOMING_TOO_LARGE)
    return value


async def _exactly(reader: asyncio.StreamReader, count: int, event_type: str, what: str) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError as err:
        raise WireError(f"{event_type}: the stream ended inside its {what} "
                        f"({len(err.partial)} of {count} bytes)") from err


async def write_event(event: Event, writer: asyncio.StreamWriter) -> None:
    """Send one event (header, data, payload) with the package's writer, and drain."""
    await async_write_event(event, writer)
