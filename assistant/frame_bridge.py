"""An async frame source over a blocking one: the hop from the capture thread to the loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from assistant.capabilities import ProducesBatches, SupportsBatching
from assistant.errors import AssistantError, ErrorCode
from assistant.types import AudioFrame

_LOGGER = logging.getLogger(__name__)


class ThreadedFrameSource:
    """An async FrameSource over a blocking iterable of frames (the audio front end's sources).

    A thread iterates the blocking source and hands frames to the loop through a bounded
    queue; when the loop falls behind, the oldest frames are dropped and counted
    (``overflows``), never blocking the capture side. ``stop`` (e.g. ``AudioSource.stop``)
    is called on close so the thread ends. A source that ``ProducesBatches`` is read in the
    bursts it produces, one loop wake-up per burst; ``set_batch_ms`` is passed on to a
    source that ``SupportsBatching``.
    """

    def __init__(self, frames: Iterable[AudioFrame], *, stop: Callable[[], None] | None = None,
                 max_frames: int = 100) -> None:
        self.frames = frames
        self._stop = stop
        self.max_frames = max_frames
        self.overflows = 0
        """Frames dropped because the loop fell behind."""
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def set_batch_ms(self, ms: int) -> None:
        """Pass the source's batching on (see ``AudioSource.set_batch_ms``); a no-op for plain iterables."""
        if isinstance(self.frames, SupportsBatching):
            self.frames.set_batch_ms(ms)

    def __aiter__(self) -> AsyncIterator[AudioFrame]:
        return self._iterate()

    def _batches(self) -> Iterator[list[AudioFrame]]:
        if isinstance(self.frames, ProducesBatches):
            yield from self.frames.frame_batches()
        else:
            for frame in self.frames:
                yield [frame]

    async def _iterate(self) -> AsyncIterator[AudioFrame]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioFrame | BaseException | None] = asyncio.Queue(self.max_frames)

        def push(item: AudioFrame | BaseException | None) -> None:
            if queue.full():
                queue.get_nowait()  # drop the oldest: fresh audio matters more
                self.overflows += 1
                if self.overflows % 100 == 1:
                    _LOGGER.warning("Audio loop behind: %d frames dropped", self.overflows)
            queue.put_nowait(item)

        def push_batch(batch: list[AudioFrame]) -> None:
            for frame in batch:
                push(frame)

        def pump() -> None:
            item: BaseException | None = None
            try:
                for batch in self._batches():
                    if self._closed.is_set():
                        return
                    # One wake-up of the loop per burst, not per frame.
                    loop.call_soon_threadsafe(push_batch, batch)
            except Exception as err:  # reported on the loop side
                item = err
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(push, item)

        self._thread = threading.Thread(target=pump, name="audio-source", daemon=True)
        self._thread.start()
        try:
            while True:
                got = await queue.get()
                if got is None:
                    return
                if isinstance(got, BaseException):
                    raise AssistantError(f"audio source failed: {got}",
                                         code=ErrorCode.AUDIO_SOURCE_FAILED) from got
                yield got
        finally:
            self.close()

    def close(self) -> None:
        """Stop the blocking source and let the thread end."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._stop is not None:
            with contextlib.suppress(Exception):
                self._stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.5)
