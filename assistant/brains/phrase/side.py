"""The phrase decoder's phone-loop pass in a second process, beside the grammar search.

A command is decoded in two pocketsphinx passes over the same audio: the grammar search and the
free phone loop that bounds it (``Decoded.confidence``). pocketsphinx holds the GIL while it
decodes, so two threads run them one after the other (measured: two decoders in two threads took
1.1x the time of one after the other); a second process runs them side by side. The forced
alignments of the twin guard stay in the first process: a pass's score depends on the cepstral
mean its decoder carries over from earlier passes, so passes that are compared are made in one
decoder, in order (forced in two processes, the real "up" heard as "louder" led its twin
"quieter" by 3.1 instead of 0.5, and acted).

The side process is ``python -m assistant.brains.phrase.side`` (not ``multiprocessing``, whose
spawn start re-imports the parent's main script), speaking length-prefixed JSON plus the raw PCM
over its stdin and stdout; it exits at the end of its input, so it never outlives its parent.
It is started in the background when the first decoder is made, once per process (all decoders
share it: it holds no grammar, only the acoustic model; about 45 MB). Until it is up, or when it
fails or takes longer than ``SIDE_TIMEOUT_S``, the pass is done in the first process with the
same settings: the side process changes when an answer comes, never what it is. After
``MAX_RESTARTS`` failures it is not started again. A machine with one core gets none.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import IO, Any, Protocol

from assistant.brains.phrase.decoder import (
    UNAVAILABLE,
    phone_loop,
    phone_loop_decoder,
)

_LOGGER = logging.getLogger(__name__)

SIDE_TIMEOUT_S = 5.0
"""Longest wait for a side pass (a pass takes tens of milliseconds) before doing it here."""
START_TIMEOUT_S = 60.0
"""Longest wait for a new worker to load its model and greet."""
MAX_RESTARTS = 3
"""Failures after which the side process is given up for good (passes are then done here)."""


class Pending:
    """A side pass under way: ``result()`` is its value, or ``UNAVAILABLE`` (do it yourself)."""

    def __init__(self, future: Future[object] | None, owner: SideProcess | None = None,
                 timeout_s: float = SIDE_TIMEOUT_S) -> None:
        self._future = future
        self._owner = owner
        self._timeout_s = timeout_s

    def result(self) -> object:
        """The pass's value, waiting up to ``SIDE_TIMEOUT_S``; ``UNAVAILABLE`` when it failed."""
        if self._future is None:
            return UNAVAILABLE
        try:
            return self._future.result(timeout=self._timeout_s)
        except TimeoutError as err:  # a stuck worker: stop it; this pass is done by the caller
            if self._owner is not None:
                self._owner.failed(err)
            return UNAVAILABLE
        except Exception:  # the worker failed (the side process has seen to it) or refused the pass
            return UNAVAILABLE


NOT_STARTED = Pending(None)


class SidePasses(Protocol):
    """Where ``GrammarDecoder`` sends the passes it can do beside its grammar search."""

    def phone_loop(self, raw: bytes) -> Pending:
        """Start the phone-loop pass over dithered PCM (``decoder.phone_loop``)."""
        ...



class InProcess:
    """No side process: every pass is done by the caller (one core, or tests that want it so)."""

    def phone_loop(self, raw: bytes) -> Pending:
        return NOT_STARTED


class SideProcess:
    """One worker process for side passes, answering in order; thread-safe."""

    def __init__(self, command: list[str] | None = None, *, timeout_s: float = SIDE_TIMEOUT_S,
                 start_timeout_s: float = START_TIMEOUT_S) -> None:
        self._command = command or [sys.executable, "-m", "assistant.brains.phrase.side"]
        self._timeout_s = timeout_s
        self._start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._waiting: deque[Future[object]] = deque()
        self._failures = 0
        self._starting = False
        self._closed = False

    def start(self) -> None:
        """Start the worker in a background thread (returns at once; no-op when up or starting)."""
        with self._lock:
            if self._proc is not None or self._starting or self._closed or self._failures >= MAX_RESTARTS:
                return
            self._starting = True
        threading.Thread(target=self._start, name="phrase-side-start", daemon=True).start()

    def _start(self) -> None:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
        except OSError as err:
            with self._lock:
                self._starting = False
            self.failed(err)
            return
        assert proc.stdout is not None  # noqa: S101 - PIPE was asked for
        try:
            answer = _read_answer(proc.stdout, deadline=time.monotonic() + self._start_timeout_s, proc=proc)
            if answer != {"ok": True, "value": "ready"}:
                raise RuntimeError(f"unexpected greeting {answer!r}")
        except Exception as err:
            proc.kill()
            proc.wait()
            with self._lock:
                self._starting = False
            self.failed(err)
            return
        with self._lock:
            self._starting = False
            if self._closed:
                proc.kill()
                proc.wait()
                return
            self._proc = proc
        threading.Thread(target=self._read, args=(proc,), name="phrase-side-reader", daemon=True).start()
        _LOGGER.info("Phrase side process %d up in %.0f ms", proc.pid, (time.monotonic() - started) * 1000.0)

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        """Hand each answer to the oldest waiting pass, until the worker goes away."""
        assert proc.stdout is not None  # noqa: S101 - PIPE was asked for
        while True:
            try:
                answer = _read_answer(proc.stdout)
            except Exception as err:
                with self._lock:
                    current = self._proc is proc
                if current:
                    self.failed(err)
                return
            with self._lock:
                future = self._waiting.popleft() if self._waiting and self._proc is proc else None
            if future is None:
                return
            if answer.get("ok") is True:
                future.set_result(answer.get("value"))
            else:
                future.set_exception(RuntimeError(f"side pass failed: {answer.get('error')!r}"))

    @property
    def ready(self) -> bool:
        """Whether passes go to the worker now."""
        with self._lock:
            return self._proc is not None

    @property
    def pid(self) -> int | None:
        """The worker's process id (None when it is not up)."""
        with self._lock:
            return None if self._proc is None else self._proc.pid

    def wait_ready(self, timeout: float) -> bool:
        """Start the worker if needed and wait up to ``timeout`` seconds for it (tests, benches)."""
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._proc is not None:
                    return True
                if not self._starting:
                    return False  # failed, closed or given up
            time.sleep(0.02)
        return self.ready

    def phone_loop(self, raw: bytes) -> Pending:
        return self._submit({"op": "phones"}, raw)


    def _submit(self, header: dict[str, Any], raw: bytes) -> Pending:
        head = json.dumps(header).encode()
        frame = struct.pack(">II", len(head), len(raw)) + head + raw
        with self._lock:
            proc = self._proc
            if proc is not None:
                future: Future[object] = Future()
                self._waiting.append(future)
                try:
                    assert proc.stdin is not None  # noqa: S101 - PIPE was asked for
                    proc.stdin.write(frame)
                    proc.stdin.flush()
                except (OSError, ValueError) as err:
                    broken: BaseException | None = err
                else:
                    return Pending(future, self, self._timeout_s)
            else:
                broken = None
        if broken is not None:
            self.failed(broken)
        else:
            self.start()
        return NOT_STARTED

    def failed(self, err: BaseException) -> None:
        """A pass failed or timed out: stop the worker, let every waiting pass be done by its
        caller, and start a new worker (up to ``MAX_RESTARTS`` failures)."""
        with self._lock:
            proc, self._proc = self._proc, None
            waiting = list(self._waiting)
            self._waiting.clear()
            if proc is None and self._starting:
                return  # a start under way will report its own failure
            self._failures += 1
            failures = self._failures
            closed = self._closed
        # said before the waiting passes go on: their callers may be gone right after
        if not closed and failures >= MAX_RESTARTS:
            _LOGGER.warning("Phrase side process failed %d times (%s); decoding in one process from now on",
                            failures, err)
        elif not closed:
            _LOGGER.warning("Phrase side process failed (%s); starting it again", err)
        for future in waiting:
            future.set_exception(RuntimeError("side process stopped"))
        if proc is not None:
            _stop(proc)
        if not closed and failures < MAX_RESTARTS:
            self.start()

    def close(self) -> None:
        """Stop the worker; passes are done by their callers from now on."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
            waiting = list(self._waiting)
            self._waiting.clear()
        for future in waiting:
            future.set_exception(RuntimeError("side process closed"))
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close the worker's input (it exits at end of input), kill it if it lingers."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=1.0)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError("side process closed its output")
        data += chunk
    return data


_MAX_ANSWER = 1 << 20


def _read_answer(stream: IO[bytes], *, deadline: float | None = None,
                 proc: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """One answer: a 4-byte length and that much JSON. With ``deadline``, the worker is killed
    when it has not answered by then (its greeting)."""
    timer = None
    if deadline is not None and proc is not None:
        timer = threading.Timer(max(deadline - time.monotonic(), 0.0), proc.kill)
        timer.daemon = True
        timer.start()
    try:
        (size,) = struct.unpack(">I", _read_exact(stream, 4))
        if size > _MAX_ANSWER:
            raise ValueError(f"side answer of {size} bytes")
        answer = json.loads(_read_exact(stream, size))
    finally:
        if timer is not None:
            timer.cancel()
    if not isinstance(answer, dict):
        raise ValueError("side answer is not an object")
    return answer


_SHARED: SidePasses | None = None
_SHARED_LOCK = threading.Lock()


def shared_side() -> SidePasses:
    """The process's one side process (started now, in the background), or ``InProcess`` on a
    machine with one core."""
    global _SHARED  # noqa: PLW0603 - one worker per process, shared by every decoder
    with _SHARED_LOCK:
        if _SHARED is None:
            if (os.cpu_count() or 1) < 2:
                _SHARED = InProcess()
            else:
                side = SideProcess()
                side.start()
                _SHARED = side
        return _SHARED


# ---------------------------------------------------------------------- in the worker process

_MAX_REQUEST = 64 << 20
"""Largest request a worker reads (PCM of half an hour; commands are seconds)."""


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: answer each request in order until the input ends."""
    verifier = phone_loop_decoder()
    _write(answers, {"ok": True, "value": "ready"})
    while True:
        try:
            head_size, raw_size = struct.unpack(">II", _read_exact(requests, 8))
        except EOFError:
            return
        if head_size + raw_size > _MAX_REQUEST:
            _write(answers, {"ok": False, "error": "request too large"})
            return
        header = json.loads(_read_exact(requests, head_size))
        raw = _read_exact(requests, raw_size)
        try:
            if header["op"] == "phones":
                value: object = phone_loop(verifier, raw)
            else:
                raise ValueError(f"unknown op {header['op']!r}")
        except Exception as err:  # answered, so the parent does the pass itself
            _write(answers, {"ok": False, "error": f"{type(err).__name__}: {err}"})
            continue
        _write(answers, {"ok": True, "value": value})


def _write(stream: IO[bytes], answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def main() -> int:
    """``python -m assistant.brains.phrase.side``: the worker, on its stdin and stdout."""
    # Ctrl-C and systemd's stop are for the parent: our end is the end of our input, when it exits
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything native code prints goes to stderr, never into the answers
    try:
        serve(sys.stdin.buffer, answers)
    except BrokenPipeError:  # the parent went away before reading its answer: nothing left to do
        os._exit(0)  # without flushing the answer it left behind (that would raise once more)
    return 0


if __name__ == "__main__":
    sys.exit(main())
