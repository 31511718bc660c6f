"""PortAudio devices through sounddevice: listing and selection by index or name substring.

sounddevice is imported lazily: PortAudio reads the ALSA configuration once, when it
is first imported, and a missing libportaudio2 must become a clear AudioError.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from assistant.errors import AudioError

_LOGGER = logging.getLogger(__name__)

Kind = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device, as `assistant devices` lists it."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def __str__(self) -> str:
        return (
            f"{self.index:3d}  {self.name}  (in {self.max_input_channels}, out {self.max_output_channels}, "
            f"{self.default_samplerate:.0f} Hz)"
        )


def import_sounddevice() -> ModuleType:
    """The sounddevice module; AudioError when PortAudio itself is missing."""
    try:
        sounddevice = importlib.import_module("sounddevice")
    except OSError as err:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise AudioError(
            f"PortAudio is not available ({err}); install libportaudio2", code="portaudio_missing"
        ) from err
    return sounddevice


class _StreamRegistry:
    """Counts our open PortAudio streams: re-initializing PortAudio would close them all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.open = 0


_STREAMS = _StreamRegistry()


def stream_opened() -> None:
    """Record that a stream was opened (call stream_closed() when it is closed)."""
    with _STREAMS.lock:
        _STREAMS.open += 1


def stream_closed() -> None:
    """Record that a stream opened with stream_opened() was closed."""
    with _STREAMS.lock:
        _STREAMS.open = max(0, _STREAMS.open - 1)


def portaudio_lock() -> threading.RLock:
    """Held while opening streams and while re-scanning, so the two never interleave."""
    return _STREAMS.lock


def rescan() -> bool:
    """Re-enumerate devices (a USB microphone plugged in after start); False when skipped.

    Skipped while any of our streams is open (speech playing, say): PortAudio can only
    re-scan by terminating, which would close them.
    """
    sd = import_sounddevice()
    # sounddevice has no public re-scan; terminate/initialize is what its docs suggest for it.
    terminate = getattr(sd, "_terminate", None)
    initialize = getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return False
    with _STREAMS.lock:
        if _STREAMS.open:
            _LOGGER.debug("device re-scan skipped: %d stream(s) open", _STREAMS.open)
            return False
        try:
            terminate()
            initialize()
        except Exception as err:  # PortAudioError and friends: keep the old list
            _LOGGER.debug("device re-scan failed: %s", err)
            return False
    return True


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio sees: index, name, input/output channels, default rate."""
    sd = import_sounddevice()
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        devices.append(
            DeviceInfo(
                index=index,
                name=str(dev["name"]),
                max_input_channels=int(dev["max_input_channels"]),
                max_output_channels=int(dev["max_output_channels"]),
                default_samplerate=float(dev["default_samplerate"]),
            )
        )
    return devices


def _channels(dev: DeviceInfo, kind: Kind) -> int:
    return dev.max_input_channels if kind == "input" else dev.max_output_channels


def find_device(spec: str | int | None, kind: Kind = "input") -> int | None:
    """Resolve a device index or case-insensitive name substring to an index (None = default).

    Raises AudioError naming the available devices when nothing matches.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    devices = [d for d in list_devices() if _channels(d, kind) > 0]
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        for dev in devices:
            if dev.index == index:
                return index
        raise AudioError(
            f"no {kind} device with index {index}; {_available(devices, kind)}", code="device_missing"
        )
    wanted = spec.strip().lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    matches = exact or [d for d in devices if wanted in d.name.lower()]
    if not matches:
        raise AudioError(
            f"no {kind} device matches {spec!r}; {_available(devices, kind)}", code="device_missing"
        )
    if len(matches) > 1:
        _LOGGER.info("%d %s devices match %r; using %r", len(matches), kind, spec, matches[0].name)
    return matches[0].index


def _available(devices: list[DeviceInfo], kind: Kind) -> str:
    if not devices:
        return f"PortAudio sees no {kind} devices at all"
    names = ", ".join(f"{d.index}: {d.name}" for d in devices)
    return f"available: {names}"
