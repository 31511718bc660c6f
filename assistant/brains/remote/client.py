"""A streaming client of an OpenAI-compatible ``/v1/chat/completions`` (llama.cpp, vLLM, SGLang).

Standard library only (http.client, ssl): one POST per round with ``"stream": true``,
the Server-Sent Events read line by line, each ``data:`` chunk's ``choices[0].delta``
assembled into the reply text and the tool calls. Nothing is acted on here: the caller
gets a ``Completion`` only when the stream ended properly (``[DONE]`` or a
``finish_reason``), so a server that drops mid-stream yields an error and no calls.

Tool-call format variations handled: OpenAI's deltas (``index``, ``id`` and ``name`` in
the first delta of a call, ``arguments`` as a JSON string split over any number of
deltas: llama.cpp ``--jinja``, vLLM, SGLang); the same with ``id`` and ``name`` repeated
in every delta (llama-cpp-python's server); arguments given as an object instead of a
string; and a non-streamed ``application/json`` answer (``choices[0].message``).

The one exception to "nothing before the end": ``on_text`` sees each piece of reply text
as it arrives, while the response has shown no tool call yet, so a caller can speak
finished sentences of a long answer early (text only: nothing acts on it).

The server's answer is untrusted: bounded in bytes (total, per line, per text), in the
number of calls, and in time (connect, first chunk, between chunks, total); anything
malformed raises ``RemoteError`` (code ``remote_protocol``), an unreachable or slow server
``RemoteError`` (code ``remote_unavailable``). TLS uses ``ssl.create_default_context``
(certificate and host name checked) with an optional CA file.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import BrainError, ErrorCode

_LOGGER = logging.getLogger(__name__)

MAX_LINE = 256 * 1024
"""Longest SSE line accepted (one chunk of JSON)."""
MAX_TEXT = 32_000
"""Characters of reply text (or of one call's arguments) accepted from one response."""
_WATCH_S = 0.05
"""How often the watchdog looks at the cancel flag and the total deadline."""


class RemoteError(BrainError):
    """The server could not be used for this round; nothing it said is acted on.

    ``retry`` is True only for a quick failure before any answer arrived (connection refused
    or reset, an HTTP 5xx): worth one more try. A timeout is not (a second try would double
    the wait), and neither is anything after the answer began.
    """

    code = ErrorCode.REMOTE_UNAVAILABLE.value

    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.REMOTE_UNAVAILABLE,
                 retry: bool = False) -> None:
        super().__init__(message, code=code)
        self.retry = retry


def _broken(message: str) -> RemoteError:
    return RemoteError(message, code=ErrorCode.REMOTE_PROTOCOL)


@dataclass(frozen=True)
class ChatCall:
    """One tool call as the server wrote it (arguments parsed, not yet validated)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    raw_arguments: str
    """The arguments' JSON text, sent back verbatim in the assistant message."""


@dataclass(frozen=True)
class Completion:
    """One finished response."""

    content: str
    calls: tuple[ChatCall, ...]
    finish_reason: str | None
    sent_at: float
    """``time.monotonic()`` when the request was written to the socket."""
    first_chunk_at: float
    """``time.monotonic()`` when the first chunk arrived."""
    chunks: int


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0
    whole: Mapping[str, Any] | None = None


class _Assembler:
    """Folds chunks (``choices[0].delta``, or ``.message`` when not streamed) into a Completion."""

    def __init__(self, max_calls: int, on_text: Callable[[str], None] | None = None) -> None:
        self.max_calls = max_calls
        self.on_text = on_text
        self.content: list[str] = []
        self.content_size = 0
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.chunks = 0

    def add(self, chunk: Any, key: str = "delta") -> None:
        if not isinstance(chunk, dict):
            raise _broken("a chunk is not a JSON object")
        if "error" in chunk:
            raise _broken(f"the server reported an error: {_short(chunk['error'])}")
        self.chunks += 1
        choices = chunk.get("choices")
        if choices is None or choices == []:
            return  # usage-only and keep-alive chunks
        if not isinstance(choices, list) or not isinstance(choices[0], dict):
            raise _broken("choices is not a list of objects")
        choice = choices[0]
        delta = choice.get(key) or {}
        if not isinstance(delta, dict):
            raise _broken(f"{key} is not an object")
        text = delta.get("content")
        if text is not None:
            if not isinstance(text, str):
                raise _broken("content is not text")
            self.content_size += len(text)
            if self.content_size > MAX_TEXT:
                raise _broken("reply text too long")
            self.content.append(text)
        calls = delta.get("tool_calls")
        if text and self.on_text is not None and not calls and not self.calls:
            self.on_text(text)
        if calls is not None:
            if not isinstance(calls, list):
                raise _broken("tool_calls is not a list")
            for position, call in enumerate(calls):
                self._add_call(position, call)
        reason = choice.get("finish_reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise _broken("finish_reason is not text")
            self.finish_reason = reason

    def _add_call(self, position: int, call: Any) -> None:
        if not isinstance(call, dict):
            raise _broken("a tool call is not an object")
        index = call.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < self.max_calls:
            raise _broken(f"tool call index {_short(index)} outside 0..{self.max_calls - 1} (too many?)")
        if index not in self.calls and len(self.calls) >= self.max_calls:
            raise _broken("too many tool calls")
        part = self.calls.setdefault(index, _PartialCall())
        call_id = call.get("id")
        if call_id is not None:
            if not isinstance(call_id, str) or len(call_id) > 256:
                raise _broken("a tool call id is not short text")
            part.id = part.id or call_id
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise _broken("a tool call's function is not an object")
        name = function.get("name")
        if name is not None and name != "":
            if not isinstance(name, str) or len(name) > 128:
                raise _broken("a tool name is not short text")
            if part.name and name != part.name:
                raise _broken(f"tool call {index} changed its name from {part.name!r} to {name!r}")
            part.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            part.whole = arguments
        elif isinstance(arguments, str):
            part.size += len(arguments)
            if part.size > MAX_TEXT:
                raise _broken("tool call arguments too long")
            part.arguments.append(arguments)
        elif arguments is not None:
            raise _broken("tool call arguments are neither text nor an object")

    def finish(self, sent_at: float, first_chunk_at: float) -> Completion:
        calls = []
        for index in sorted(self.calls):
            part = self.calls[index]
            if not part.name:
                raise _broken(f"tool call {index} has no name")
            raw = "".join(part.arguments)
            if part.whole is not None:
                arguments: Any = part.whole
                raw = json.dumps(part.whole)
            else:
                try:
                    arguments = json.loads(raw) if raw.strip() else {}
                except (ValueError, RecursionError) as exc:
                    raise _broken(f"arguments of {part.name!r} are not JSON: {exc}") from None
            if not isinstance(arguments, dict):
                raise _broken(f"arguments of {part.name!r} are not a JSON object")
            calls.append(ChatCall(part.id or f"call_{index}", part.name, arguments, raw))
        return Completion(
            "".join(self.content), tuple(calls), self.finish_reason, sent_at, first_chunk_at, self.chunks
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class ChatClient:
    """POSTs chat completions to one server and reads the streamed answers."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        ca_file: Path | None = None,
        connect_timeout_s: float = 2.0,
        first_token_timeout_s: float = 8.0,
        total_timeout_s: float = 30.0,
        max_response_bytes: int = 1 << 20,
        max_tool_calls: int = 4,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.connect_timeout_s = connect_timeout_s
        self.first_token_timeout_s = first_token_timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_response_bytes = max_response_bytes
        self.max_tool_calls = max_tool_calls

    @property
    def endpoint(self) -> str:
        """Where requests go (for logs)."""
        return f"{'https' if self._https else 'http'}://{self._host}:{self._port}{self._path}"

    def complete(self, payload: Mapping[str, Any], cancel: threading.Event,
                 on_text: Callable[[str], None] | None = None) -> Completion:
        """Send one request (``stream`` forced on) and return the finished response.

        ``on_text`` gets each piece of reply text while no tool call has shown up in the
        response (in this thread, as it arrives). Raises RemoteError for every failure,
        and soon after ``cancel`` is set.
        """
        body = json.dumps({**payload, "stream": True}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            "Content-Length": str(len(body)),
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        deadline = time.monotonic() + self.total_timeout_s
        conn: http.client.HTTPConnection
        if self._context is not None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.connect_timeout_s, context=self._context
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout_s)
        done = threading.Event()
        try:
            try:
                conn.connect()
            except ssl.SSLError as exc:
                raise RemoteError(f"TLS with {self._host}:{self._port} failed: {exc}") from None
            except OSError as exc:
                raise RemoteError(f"cannot connect to {self._host}:{self._port}: {exc}",
                                  retry=not isinstance(exc, TimeoutError)) from None
            sock = conn.sock
            if not isinstance(sock, socket.socket):
                raise RemoteError("no socket after connect")
            sock.settimeout(min(self.first_token_timeout_s, max(0.01, deadline - time.monotonic())))
            threading.Thread(
                target=_watch, args=(sock, cancel, done, deadline), name="remote-watchdog", daemon=True
            ).start()
            try:
                conn.request("POST", self._path, body, headers)
                sent_at = time.monotonic()
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._stopped(cancel, deadline, f"no response from {self._host}:{self._port}: {exc}",
                                    retry=not isinstance(exc, TimeoutError)) from None
            return self._read(response, sock, cancel, deadline, sent_at, on_text=on_text)
        finally:
            done.set()
            conn.close()

    def _stopped(self, cancel: threading.Event, deadline: float, message: str, *,
                 retry: bool = False) -> RemoteError:
        if cancel.is_set():
            return RemoteError("cancelled")
        if time.monotonic() >= deadline:
            return RemoteError(f"no complete answer within {self.total_timeout_s:g} s")
        return RemoteError(message, retry=retry)

    def _read(self, response: http.client.HTTPResponse, sock: socket.socket, cancel: threading.Event,
              deadline: float, sent_at: float, *, on_text: Callable[[str], None] | None) -> Completion:
        status = response.status
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if status != 200:
            detail = _safe_text(response.read(2048) if status < 600 else b"")
            code = ErrorCode.REMOTE_UNAVAILABLE if status >= 500 else ErrorCode.REMOTE_PROTOCOL
            raise RemoteError(f"HTTP {status} from the server: {detail}", code=code, retry=status >= 500)
        assembler = _Assembler(self.max_tool_calls)
        if kind == "application/json":  # a server (or proxy) that ignored "stream": true
            raw = response.read(self.max_response_bytes + 1)
            if len(raw) > self.max_response_bytes:
                raise _broken("response too large")
            first = time.monotonic()
            try:
                assembler.add(json.loads(raw), key="message")
            except (ValueError, RecursionError) as exc:
                raise _broken(f"response is not JSON: {exc}") from None
            return assembler.finish(sent_at, first)
        if kind != "text/event-stream":
            raise _broken(f"unexpected Content-Type {kind!r}")
        assembler.on_text = on_text  # a whole JSON answer is no stream: its text waits for the end
        return self._events(response, sock, cancel=cancel, deadline=deadline, sent_at=sent_at,
                            assembler=assembler)

    def _events(self, response: http.client.HTTPResponse, sock: socket.socket, *, cancel: threading.Event,
                deadline: float, sent_at: float, assembler: _Assembler) -> Completion:
        total = 0
        data: list[bytes] = []
        first_chunk_at = 0.0
        while True:
            try:
                line = response.readline(MAX_LINE + 1)
            except (OSError, http.client.HTTPException) as exc:
                raise self._stopped(cancel, deadline, f"the stream broke: {exc}") from None
            if not line and assembler.finish_reason is not None and not data:
                return assembler.finish(sent_at, first_chunk_at)  # no [DONE], but the answer was complete
            if not line:
                raise self._stopped(cancel, deadline, "the stream ended before the answer was complete")
            total += len(line)
            if total > self.max_response_bytes:
                raise _broken("response too large")
            if len(line) > MAX_LINE:
                raise _broken("an event line is too long")
            line = line.rstrip(b"\r\n")
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
                continue
            if line or not data:
                continue  # comments (": ping"), other fields, blank lines between events
            payload, data = b"\n".join(data), []
            if not first_chunk_at:
                first_chunk_at = time.monotonic()
                sock.settimeout(self.first_token_timeout_s)
            if payload.strip() == b"[DONE]":
                return assembler.finish(sent_at, first_chunk_at)
            try:
                chunk = json.loads(payload)
            except (ValueError, RecursionError):
                raise _broken(f"an event is not JSON: {_safe_text(payload[:80])}") from None
            assembler.add(chunk)
            if assembler.finish_reason is not None:
                return assembler.finish(sent_at, first_chunk_at)  # what follows is only usage and [DONE]
            if time.monotonic() >= deadline:
                raise RemoteError(f"no complete answer within {self.total_timeout_s:g} s")


def _watch(sock: socket.socket, cancel: threading.Event, done: threading.Event, deadline: float) -> None:
    """Shut the socket down when the turn is cancelled or the total deadline passes (unblocks a read)."""
    while not done.wait(_WATCH_S):
        if cancel.is_set() or time.monotonic() >= deadline:
            with contextlib.suppress(OSError):  # already closed by the reader
                sock.shutdown(socket.SHUT_RDWR)
            return


def _safe_text(raw: bytes) -> str:
    """Printable, short form of untrusted bytes for a log line."""
    text = raw.decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    return text[:200]
