"""Audio sources behind one small interface: iterate fixed-size 16 kHz mono int16 AudioFrames.

- WavFileSource: any PCM WAV, converted on read.
- MicrophoneSource: a PortAudio input through sounddevice; the callback never blocks
  (a bounded queue, overflow counted and logged) and a missing, failing or vanished
  device is reopened with exponential backoff until the stop event is set. While
  latency does not matter (the daemon idles on the wake word) its reader can be told
  to wake once per few blocks instead of once per block (``set_batch_ms``).
- CommandSource: raw s16le PCM from a command's stdout (arecord-style, no shell).
- StdinSource: raw s16le PCM from standard input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator, Iterator
from types import TracebackType
from typing import IO, Any, BinaryIO

import numpy as np

from assistant.audio.devices import (
    DeviceInfo,
    find_device,
    import_sounddevice,
    list_devices,
    portaudio_lock,
    rescan,
    stream_closed,
    stream_opened,
)
from assistant.audio.pcm import Framer, PcmConverter, frame_samples
from assistant.audio.wav import DEFAULT_MAX_SECONDS, read_wav
from assistant.backoff import Backoff
from assistant.config import AudioSettings, Settings
from assistant.errors import AudioError
from assistant.types import AudioFrame

_LOGGER = logging.getLogger(__name__)

__all__ = [
    "AudioSource",
    "Backoff",
    "CommandSource",
    "DeviceInfo",
    "MicrophoneSource",
    "StdinSource",
    "WavFileSource",
    "list_devices",
    "make_source",
]

_POLL_S = 0.1
"""How often blocking waits look at the stop event."""

_AHEAD_LIMIT_S = 2.0
"""Audio a capture stream may deliver beyond the wall time since it opened (a device's buffer)."""

_STALE_REPEATS = 25
"""Blocks in a row that repeat one of the 4 before them, bit for bit: the device replays its
buffer. Together with running ahead of the clock this is a source that is gone (ALSA's file
plugin after its FIFO writer closed replays its last two periods as fast as it is read);
real digital silence comes at real time, and an unpaced file is new audio until its end."""


def _backoff(initial_s: float, max_s: float) -> Backoff:
    """Retry delays for a device or command; a tiny ``retry_max_s`` caps the first one too."""
    initial = max(0.001, min(initial_s, max_s))
    return Backoff(initial, max(initial, max_s))


class AudioSource(ABC):
    """An iterable of fixed-size AudioFrames (16 kHz mono int16), used as a context manager.

    ``stop()`` (from any thread) ends iteration promptly; ``close()`` releases the
    device, process or file.
    """

    name: str = "audio"

    def __init__(self, frame_ms: int = 30, stop_event: threading.Event | None = None) -> None:
        if frame_ms <= 0:
            raise AudioError(f"frame length must be positive, not {frame_ms} ms", code="source_invalid")
        self.frame_ms = frame_ms
        self.frame_samples = frame_samples(frame_ms)
        self.stop_event = stop_event if stop_event is not None else threading.Event()

    @abstractmethod
    def frames(self) -> Iterator[AudioFrame]:
        """Yield frames until the stream ends or ``stop()`` is called."""

    def frame_batches(self) -> Iterator[list[AudioFrame]]:
        """The same frames in the bursts they become available (one list per wake-up of the reader)."""
        for frame in self.frames():
            yield [frame]

    def set_batch_ms(self, ms: int) -> None:
        """Let up to ``ms`` of audio gather before the reader hands it on; 0 = every block at once.

        Fewer thread wake-ups while latency does not matter (idle on the wake word); only
        live capture (MicrophoneSource) batches, other sources ignore it. Any thread.
        """
        return  # files and pipes deliver as they read; nothing to batch

    def __iter__(self) -> Iterator[AudioFrame]:
        return self.frames()

    def stop(self) -> None:
        """Ask the iteration to end (thread-safe)."""
        self.stop_event.set()

    def close(self) -> None:
        """Stop and release resources."""
        self.stop()

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- WAV file


class WavFileSource(AudioSource):
    """Frames from a WAV file (read whole, converted to 16 kHz mono; the last frame zero-padded)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        frame_ms: int = 30,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        stop_event: threading.Event | None = None,
    ) -> None:
        super().__init__(frame_ms, stop_event)
        self.path = os.fspath(path)
        self.name = self.path
        self.max_seconds = max_seconds
        self._pcm: np.ndarray | None = None

    def __enter__(self) -> WavFileSource:
        self.open()
        return self

    def open(self) -> None:
        """Read and convert the file now (AudioError for a bad one)."""
        if self._pcm is None:
            self._pcm = read_wav(self.path, max_seconds=self.max_seconds)

    @property
    def duration_s(self) -> float:
        """Length of the converted audio in seconds."""
        self.open()
        return 0.0 if self._pcm is None else self._pcm.size / 16000

    def frames(self) -> Iterator[AudioFrame]:
        """Yield the file's frames."""
        self.open()
        pcm = self._pcm
        if pcm is None:
            return
        framer = Framer(self.frame_samples)
        n = self.frame_samples
        for offset in range(0, pcm.size, n * 100):
            if self.stop_event.is_set():
                return
            yield from framer.push(pcm[offset : offset + n * 100])
        yield from framer.flush()


# --------------------------------------------------------------------------- microphone


class MicrophoneSource(AudioSource):
    """A PortAudio input device, reopened with backoff when it is missing, fails or vanishes.

    Iteration never raises for device trouble: it logs and retries (delays doubling
    up to ``settings.retry_max_s``) until the stop event is set. A stream that stays
    silent for ``stall_timeout_s`` (no callbacks: the device vanished without an
    error) is treated as lost too.
    """

    def __init__(
        self,
        settings: AudioSettings | None = None,
        *,
        frame_ms: int = 30,
        stop_event: threading.Event | None = None,
        stall_timeout_s: float | None = 5.0,
        initial_retry_s: float = 0.5,
    ) -> None:
        super().__init__(frame_ms, stop_event)
        self.settings = settings if settings is not None else AudioSettings()
        self.name = f"mic:{self.settings.device if self.settings.device is not None else 'default'}"
        self.stall_timeout_s = stall_timeout_s
        self.initial_retry_s = initial_retry_s
        self.overflows = 0
        """Blocks dropped because the queue was full (the consumer fell behind)."""
        self.status_flags = 0
        """Callbacks where PortAudio reported a status (its own overflow or underflow)."""
        self.opens = 0
        """Successful stream opens (more than one means the device was reopened)."""
        self.runaways = 0
        """Streams closed because they delivered audio faster than real time (no clock: source gone)."""
        self._received = 0  # blocks the callback saw on the current stream, dropped ones included
        # The capture queue: the callback appends, the reader pops (deque ops are atomic);
        # ``_ready`` wakes the reader once ``_batch_blocks`` blocks are waiting.
        self._blocks: deque[bytes] = deque()
        self._max_blocks = max(1, self.settings.queue_blocks)
        self._ready = threading.Event()
        self._block_s = max(1, self.settings.block_ms) / 1000
        self._batch_blocks = 1
        self._stream: Any = None
        self._channels = 1
        self._lock = threading.Lock()

    def set_batch_ms(self, ms: int) -> None:
        """Wake the reader once per ``ms`` of audio (at least one block; 0 = every block)."""
        blocks = max(1, min(self._max_blocks, round(max(0, ms) / 1000 / self._block_s)))
        self._batch_blocks = blocks
        if len(self._blocks) >= blocks:
            self._ready.set()  # lower latency now: hand on what is already waiting

    def stop(self) -> None:
        """Ask the iteration to end (thread-safe); a waiting reader wakes at once."""
        super().stop()
        self._ready.set()

    # The callback runs on PortAudio's thread: copy, enqueue without waiting, count trouble;
    # the reader is woken only when a whole batch is waiting (each wake-up costs more than the copy).
    # A raw stream hands a plain buffer: no numpy array is built per block on this thread.
    def _callback(self, indata: Any, _frames: int, _time: Any, status: Any) -> None:
        if status:
            self.status_flags += 1
        self._received += 1
        blocks = self._blocks
        if len(blocks) >= self._max_blocks:
            self.overflows += 1
            return
        blocks.append(bytes(indata))
        if len(blocks) >= self._batch_blocks:
            self._ready.set()

    def _open(self) -> tuple[Any, int]:
        sd = import_sounddevice()
        device = find_device(self.settings.device, "input")
        rates = [self.settings.sample_rate]
        try:
            info = sd.query_devices(device, "input")
        except (sd.PortAudioError, ValueError) as err:  # no default input device at all
            raise AudioError(f"no input device available: {err}", code="device_missing") from err
        default_rate = int(info["default_samplerate"])
        if default_rate not in rates:
            rates.append(default_rate)
        channels = max(1, min(self.settings.channels, int(info["max_input_channels"]) or 1))
        last_error: Exception | None = None
        for rate in rates:
            blocksize = rate * self.settings.block_ms // 1000
            with portaudio_lock():
                try:
                    stream = sd.RawInputStream(
                        device=device,
                        samplerate=rate,
                        channels=channels,
                        dtype="int16",
                        blocksize=blocksize,
                        callback=self._callback,
                    )
                except (sd.PortAudioError, ValueError) as err:
                    last_error = err
                    continue
                stream_opened()
            try:
                stream.start()
            except sd.PortAudioError as err:
                last_error = err
                with contextlib.suppress(Exception):
                    stream.close()
                stream_closed()
                continue
            if rate != self.settings.sample_rate:
                _LOGGER.info(
                    "input device does not take %d Hz; opened at %d Hz and resampling",
                    self.settings.sample_rate,
                    rate,
                )
            self._channels = channels
            return stream, rate
        raise AudioError(f"cannot open input device {info['name']!r}: {last_error}", code="device_failed")

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):  # a vanished device may fail to stop; it is gone anyway
                stream.abort()
            with contextlib.suppress(Exception):
                stream.close()
            stream_closed()
        # Blocks of the old stream must not be served as the start of the next one.
        self._blocks.clear()
        self._received = 0

    def close(self) -> None:
        """Stop iteration and close the stream."""
        super().close()
        self._close_stream()

    def frames(self) -> Iterator[AudioFrame]:
        """Yield frames until stopped; device trouble is logged and retried, never raised."""
        batches = self.frame_batches()
        try:
            for batch in batches:
                yield from batch
        finally:
            batches.close()  # the consumer stopped early: close the stream now, not at garbage collection

    def frame_batches(self) -> Generator[list[AudioFrame], None, None]:
        """Frames in bursts (see ``set_batch_ms``) until stopped; device trouble is retried, never raised."""
        backoff = _backoff(self.initial_retry_s, self.settings.retry_max_s)
        next_start = 0.0
        failures = 0
        while not self.stop_event.is_set():
            try:
                if failures:
                    rescan()
                stream, rate = self._open()
            except AudioError as err:
                failures += 1
                delay = backoff.next()
                _LOGGER.warning(
                    "microphone unavailable: %s; retrying in %.2f s (attempt %d)",
                    err.message,
                    delay,
                    failures,
                )
                if self.stop_event.wait(delay):
                    break
                continue
            with self._lock:
                self._stream = stream
            self.opens += 1
            if failures:
                _LOGGER.info("microphone open again after %d failed attempt(s)", failures)
            failures = 0
            _LOGGER.info("capturing from %s at %d Hz", self.name, rate)
            converter = PcmConverter(rate, self._channels, self.frame_samples)
            converter.framer = Framer(self.frame_samples, start_s=next_start)
            runaways = self.runaways
            try:
                yield from self._read(stream, converter)
            finally:
                self._close_stream()
            if converter.framer.time_s - next_start > 1.0 and self.runaways == runaways:
                # It worked for a while: the next trouble starts with short waits. Not after a
                # runaway stream, whose audio was no sign of a working device: those back off.
                backoff.reset()
            next_start = converter.framer.time_s
            if self.stop_event.is_set():
                break
            failures += 1
            delay = backoff.next()
            _LOGGER.warning("microphone stream lost; reopening in %.2f s", delay)
            if self.stop_event.wait(delay):
                break

    def _read(self, stream: Any, converter: PcmConverter) -> Iterator[list[AudioFrame]]:
        last_data = opened = time.monotonic()
        reported_overflows = self.overflows
        recent: deque[bytes] = deque(maxlen=4)
        repeats = 0
        blocks, ready = self._blocks, self._ready
        while not self.stop_event.is_set():
            batch = self._batch_blocks
            if len(blocks) < batch:
                # Event-driven, no polling: the timeout only notices a stream that went quiet.
                ready.wait(max(_POLL_S, 2 * batch * self._block_s))
            ready.clear()  # before popping: a batch completed from now on sets it again
            count = len(blocks)
            if not count:
                if self.stop_event.is_set():
                    return
                if not stream.active:
                    _LOGGER.warning("microphone stream stopped (device error or unplugged)")
                    return
                if self.stall_timeout_s is not None and time.monotonic() - last_data > self.stall_timeout_s:
                    _LOGGER.warning("no audio from the microphone for %.1f s", self.stall_timeout_s)
                    return
                continue
            last_data = time.monotonic()
            if self.overflows != reported_overflows:
                _LOGGER.warning(
                    "capture queue full: %d block(s) dropped so far (consumer too slow)", self.overflows
                )
                reported_overflows = self.overflows
            frames: list[AudioFrame] = []
            for _ in range(count):
                block = blocks.popleft()
                repeats = repeats + 1 if block in recent else 0
                recent.append(block)
                frames.extend(converter.push(np.frombuffer(block, dtype=np.int16)))
            if frames:
                yield frames  # what the device delivered, up to the stale run, is served as usual
            ahead_s = self._received * self._block_s - (time.monotonic() - opened)
            if repeats >= _STALE_REPEATS and ahead_s > _AHEAD_LIMIT_S:
                # Stale periods faster than real time would spin this thread and PortAudio's at
                # full speed, feeding the pipeline a loop of old audio: close, back off, reopen.
                self.runaways += 1
                _LOGGER.warning(
                    "microphone replays stale audio faster than real time (%.1f s ahead after %.1f s): "
                    "its source is gone; closing it",
                    ahead_s,
                    time.monotonic() - opened,
                )
                return


# --------------------------------------------------------------------------- raw PCM


def _read_fd(fd: int, size: int, stop: threading.Event) -> bytes | None:
    """Read up to ``size`` bytes, waking every poll interval to check ``stop``; None = stopped."""
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], _POLL_S)
        if ready:
            return os.read(fd, size)
    return None


class _RawPcmSource(AudioSource):
    """Shared reading of raw interleaved s16le PCM from a file descriptor."""

    def __init__(
        self, rate: int, channels: int, *, frame_ms: int = 30, stop_event: threading.Event | None = None
    ) -> None:
        super().__init__(frame_ms, stop_event)
        if not 1000 <= rate <= 768_000 or not 1 <= channels <= 64:
            raise AudioError(f"bad raw PCM format: {rate} Hz, {channels} channel(s)", code="source_invalid")
        self.rate = rate
        self.channels = channels
        # ~block-sized reads keep latency low without a syscall per sample.
        self._read_size = max(2 * channels, rate * channels * 2 * frame_ms // 1000)

    def _pump(self, fd: int, converter: PcmConverter) -> Iterator[AudioFrame]:
        """Yield frames from ``fd`` until EOF or stop."""
        while True:
            data = _read_fd(fd, self._read_size, self.stop_event)
            if not data:
                return
            yield from converter.push_bytes(data)


class CommandSource(_RawPcmSource):
    """Raw PCM from a command's stdout, e.g. ``arecord -q -t raw -f S16_LE -r 16000 -c 1``.

    The command line is split with shlex and run without a shell. When it cannot start
    or exits, it is restarted with backoff (``restart=True``, live capture); with
    ``restart=False`` a clean exit ends the stream and a failure raises AudioError.
    """

    def __init__(
        self,
        settings: AudioSettings,
        *,
        frame_ms: int = 30,
        stop_event: threading.Event | None = None,
        restart: bool = True,
        initial_retry_s: float = 0.5,
    ) -> None:
        super().__init__(
            settings.command_rate, settings.command_channels, frame_ms=frame_ms, stop_event=stop_event
        )
        if not settings.command:
            raise AudioError("audio.source is command but audio.command is empty", code="source_invalid")
        try:
            self.argv = shlex.split(settings.command)
        except ValueError as err:
            raise AudioError(f"audio.command cannot be parsed: {err}", code="source_invalid") from None
        if not self.argv:
            raise AudioError("audio.command is empty", code="source_invalid")
        self.name = f"command:{self.argv[0]}"
        self.settings = settings
        self.restart = restart
        self.initial_retry_s = initial_retry_s
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(  # noqa: S603 - argv from the user's own settings, no shell
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError:
            raise AudioError(f"audio command not found: {self.argv[0]}", code="command_failed") from None
        except OSError as err:
            raise AudioError(
                f"cannot run audio command {self.argv[0]}: {err}", code="command_failed"
            ) from None

    def _stop_proc(self) -> int | None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return proc.returncode

    def close(self) -> None:
        """Stop iteration and end the command."""
        super().close()
        self._stop_proc()

    def frames(self) -> Iterator[AudioFrame]:
        """Yield frames from the command; restart or raise on failure (see the class doc)."""
        backoff = _backoff(self.initial_retry_s, self.settings.retry_max_s)
        next_start = 0.0
        while not self.stop_event.is_set():
            try:
                proc = self._start()
            except AudioError as err:
                if not self.restart:
                    raise
                delay = backoff.next()
                _LOGGER.warning("%s; retrying in %.2f s", err.message, delay)
                if self.stop_event.wait(delay):
                    break
                continue
            with self._lock:
                self._proc = proc
            self.starts += 1
            stderr_tail: deque[str] = deque(maxlen=10)
            reader = threading.Thread(target=_collect_lines, args=(proc.stderr, stderr_tail), daemon=True)
            reader.start()
            converter = PcmConverter(self.rate, self.channels, self.frame_samples)
            converter.framer = Framer(self.frame_samples, start_s=next_start)
            got_audio = False
            stdout = proc.stdout
            if stdout is None:  # cannot happen with stdout=PIPE; keeps the type checker honest
                raise AudioError("audio command has no output pipe", code="command_failed")
            try:
                for frame in self._pump(stdout.fileno(), converter):
                    got_audio = True
                    yield frame
            except GeneratorExit:  # the consumer stopped iterating: end the command too
                self._stop_proc()
                raise
            if self.stop_event.is_set():
                self._stop_proc()
                break
            yield from converter.flush()
            next_start = converter.framer.time_s
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:  # closed stdout but kept running
                code = None
            reader.join(timeout=1)  # let it read the last lines of stderr before the pipe closes
            self._stop_proc()
            detail = "; ".join(stderr_tail)
            if code == 0 and not self.restart:
                return
            message = (
                f"audio command {self.argv[0]} "
                + (f"exited with status {code}" if code is not None else "closed its output")
                + (f": {detail}" if detail else "")
            )
            if not self.restart:
                raise AudioError(message, code="command_failed")
            if got_audio:
                backoff.reset()
            delay = backoff.next()
            _LOGGER.warning("%s; restarting in %.2f s", message, delay)
            if self.stop_event.wait(delay):
                break


def _collect_lines(pipe: IO[bytes] | None, tail: deque[str]) -> None:
    if pipe is None:
        return
    with contextlib.suppress(ValueError, OSError):  # pipe closed under us at shutdown
        for line in pipe:
            text = line.decode("utf-8", "replace").strip()
            if text:
                tail.append(text)


class StdinSource(_RawPcmSource):
    """Raw s16le PCM from standard input (or any binary stream with a file descriptor) until EOF."""

    name = "stdin"

    def __init__(
        self,
        settings: AudioSettings | None = None,
        *,
        stream: BinaryIO | None = None,
        frame_ms: int = 30,
        stop_event: threading.Event | None = None,
    ) -> None:
        settings = settings if settings is not None else AudioSettings()
        super().__init__(
            settings.command_rate, settings.command_channels, frame_ms=frame_ms, stop_event=stop_event
        )
        self._stream = stream if stream is not None else sys.stdin.buffer

    def frames(self) -> Iterator[AudioFrame]:
        """Yield frames until EOF or stop."""
        converter = PcmConverter(self.rate, self.channels, self.frame_samples)
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None
        if fd is not None:
            yield from self._pump(fd, converter)
        else:
            while not self.stop_event.is_set():
                data = self._stream.read(self._read_size)
                if not data:
                    break
                yield from converter.push_bytes(data)
        if not self.stop_event.is_set():
            yield from converter.flush()


def make_source(settings: Settings, *, stop_event: threading.Event | None = None) -> AudioSource:
    """The live source the settings ask for (audio.source), framed at vad.frame_ms."""
    audio, frame_ms = settings.audio, settings.vad.frame_ms
    if audio.source == "command":
        return CommandSource(audio, frame_ms=frame_ms, stop_event=stop_event)
    if audio.source == "stdin":
        return StdinSource(audio, frame_ms=frame_ms, stop_event=stop_event)
    return MicrophoneSource(audio, frame_ms=frame_ms, stop_event=stop_event)
