"""Playback through a sounddevice OutputStream, in short blocks, stoppable by a cancel event.

The TTS sinks and barge-in use ``play``: setting ``cancel`` stops output within
about one block (20 ms) plus the device's buffered latency (the stream is
aborted, so buffered audio is dropped rather than drained).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.audio.devices import (
    find_device,
    import_sounddevice,
    portaudio_lock,
    stream_closed,
    stream_opened,
)
from assistant.errors import AudioError
from assistant.types import SAMPLE_RATE

_LOGGER = logging.getLogger(__name__)

BLOCK_MS = 20
"""Samples written per call: the granularity at which cancel is noticed."""


def find_output_device(spec: str | int | None) -> int | None:
    """Output device index for an index or name substring (None = default device)."""
    return find_device(spec, "output")


def apply_volume(pcm: npt.NDArray[np.int16], volume: float) -> npt.NDArray[np.int16]:
    """Scale int16 samples by ``volume`` (clamped to 0..1); 1.0 returns the input unchanged."""
    volume = min(1.0, max(0.0, float(volume)))
    if volume >= 1.0:
        return pcm
    scaled: npt.NDArray[np.int16] = np.rint(pcm.astype(np.float32) * volume).astype(np.int16)
    return scaled


def play(
    pcm: npt.NDArray[np.int16] | bytes,
    rate: int = SAMPLE_RATE,
    *,
    device: str | int | None = None,
    volume: float = 1.0,
    cancel: threading.Event | None = None,
    block_ms: int = BLOCK_MS,
) -> bool:
    """Play mono int16 PCM; True when it played to the end, False when ``cancel`` stopped it.

    Raises AudioError when the device is missing or fails.
    """
    samples = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, bytes) else np.asarray(pcm, dtype=np.int16)
    if samples.ndim != 1:
        raise AudioError("play() takes mono PCM", code="playback_failed")
    samples = apply_volume(samples, volume)
    if cancel is not None and cancel.is_set():
        return False
    sd = import_sounddevice()
    index = find_output_device(device)
    block = max(1, rate * block_ms // 1000)
    with portaudio_lock():
        try:
            stream: Any = sd.OutputStream(
                device=index, samplerate=rate, channels=1, dtype="int16", blocksize=block, latency="low"
            )
        except (sd.PortAudioError, ValueError) as err:
            raise AudioError(f"cannot open output device {device!r}: {err}", code="playback_failed") from err
        stream_opened()
    completed = True
    try:
        stream.start()
        for offset in range(0, samples.size, block):
            if cancel is not None and cancel.is_set():
                completed = False
                break
            stream.write(samples[offset : offset + block])
    except sd.PortAudioError as err:
        raise AudioError(f"playback failed: {err}", code="playback_failed") from err
    finally:
        with contextlib.suppress(Exception):  # closing a failed stream may fail again
            if completed:
                stream.stop()  # drain what is buffered
            else:
                stream.abort()  # drop what is buffered: stop now
        with contextlib.suppress(Exception):
            stream.close()
        stream_closed()
    if not completed:
        _LOGGER.debug("playback cancelled")
    return completed
