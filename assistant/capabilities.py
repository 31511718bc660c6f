"""Optional capabilities a part declares by implementing a small runtime-checkable protocol.

The daemon asks ``isinstance(part, SupportsBatching)`` instead of probing with ``getattr``:
the contract is written down, type-checked, and a part that lacks it is visibly a part
that lacks it. Brain capabilities (warm, prefetch) live in assistant.brains.base.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from assistant.types import AudioFrame

if TYPE_CHECKING:
    import threading

    from assistant.tts.base import SpeakResult


@runtime_checkable
class Closable(Protocol):
    """A part that holds threads, models or devices until told to let go."""

    def close(self) -> None:
        """Release what is held; idempotent."""
        ...


@runtime_checkable
class AsyncClosable(Protocol):
    """A part whose release is a coroutine (an async frame source)."""

    def aclose(self) -> Awaitable[None]:
        """Release what is held; idempotent."""
        ...


@runtime_checkable
class SupportsBatching(Protocol):
    """A frame source that can hand audio on in bursts (cheap while only the wake word listens)."""

    def set_batch_ms(self, ms: int) -> None:
        """Deliver frames in bursts of about ``ms`` milliseconds; 0: every frame at once."""
        ...


@runtime_checkable
class SupportsVolume(Protocol):
    """A sink whose loudness can change while it runs (the speaker)."""

    def set_volume(self, percent: int) -> None:
        """Play at ``percent`` (0..100) of full scale from the next clip on."""
        ...


@runtime_checkable
class PlaysPcm(Protocol):
    """A sink that can play sound made elsewhere (the speaker: Home Assistant's spoken answer)."""

    def play_pcm(self, pcm: bytes, rate: int, cancel: threading.Event) -> SpeakResult:
        """Play int16 mono ``pcm`` at ``rate``; returns when done or within ~50 ms of ``cancel``."""
        ...


@runtime_checkable
class ProducesBatches(Protocol):
    """A blocking source that yields lists of frames, one list per capture burst."""

    def frame_batches(self) -> Iterator[list[AudioFrame]]:
        """Bursts of frames until the source ends."""
        ...
