"""Chat-completion servers on loopback for the remote brain's tests.

``ScriptedServer`` is a stdlib ``http.server`` that answers each POST with the next
step of a script: a well-formed SSE stream (chunks shaped like llama.cpp's, vLLM's and
llama-cpp-python's), or a hostile behaviour (a stall before the first byte, garbage,
a connection dropped mid-stream, an endless trickle of keep-alives, an HTTP error).
It records every request. It is *our* reading of the protocol, so the end-to-end test
also runs llama.cpp's real server (``LlamaServer``); this one covers what a real server
cannot be made to do on purpose.

``LlamaServer`` starts llama-cpp-python's OpenAI-compatible server (from the venv that
scripts/llama_server_env caches) on the tiny random-weight GGUF of scripts/make_tiny_gguf.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

Step = Callable[["_Handler"], None]


@dataclass
class Request:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ScriptedServer:
    """A loopback HTTP(S) server that plays one step of ``steps`` per request (the last repeats)."""

    steps: list[Step]
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    finished: list[float] = field(default_factory=list)
    """``time.monotonic()`` when each request's step was played to its end."""
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The base URL (``.../v1``) the client is given."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def close(self) -> None:
        """Stop serving; stalled handlers wake up and leave."""
        self.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server_owner: ScriptedServer
    protocol_version = "HTTP/1.0"  # a stream ends when the connection closes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        owner = self.server_owner
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        owner.requests.append(Request(self.path, dict(self.headers.items()), json.loads(raw)))
        index = min(len(owner.requests), len(owner.steps)) - 1
        with contextlib.suppress(ConnectionError):  # the client hung up on a refused answer
            owner.steps[index](self)
        owner.finished.append(time.monotonic())

    # -- building blocks of steps

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def event(self, payload: Any) -> None:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.wfile.write(f"data: {data}\n\n".encode())
        self.wfile.flush()


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with ``delta`` in choices[0]."""
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def call_deltas(name: str, arguments: str, *, index: int = 0, pieces: int = 3,
                repeat_name: bool = False) -> list[dict[str, Any]]:
    """OpenAI tool-call deltas: id and name in the first (in all with ``repeat_name``, as
    llama-cpp-python does), the arguments' JSON text split into ``pieces`` parts."""
    size = max(1, -(-len(arguments) // pieces))
    parts = [arguments[i:i + size] for i in range(0, len(arguments), size)] or [""]
    out = []
    for n, part in enumerate(parts):
        call: dict[str, Any] = {"index": index, "function": {"arguments": part}}
        if n == 0 or repeat_name:
            call.update(id=f"call_{index}", type="function")
            call["function"]["name"] = name
        out.append(chunk({"tool_calls": [call]}))
    return out


def text_chunks(text: str) -> list[dict[str, Any]]:
    """A reply streamed a word at a time, then finish_reason stop."""
    words = text.split(" ")
    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": (" " if i else "") + w}) for i, w in enumerate(words)]
    out.append(chunk({}, "stop"))
    return out


def sse(chunks: Sequence[Any], *, done: bool = True, every_s: float = 0.0) -> Step:
    """A well-formed stream of ``chunks`` (dicts, or raw strings sent as they are), one per
    ``every_s`` (a server generating slowly); a client that hangs up ends it."""
    def step(h: _Handler) -> None:
        h.start_stream()
        for c in chunks:
            if every_s and h.server_owner.stop.wait(every_s):
                return
            h.event(c)
        if done:
            h.event("[DONE]")
    return step


def calls_then_finish(*calls: tuple[str, str], repeat_name: bool = False) -> Step:
    """A response with the given (name, arguments JSON) calls, finish_reason tool_calls."""
    chunks: list[Any] = [chunk({"role": "assistant", "content": None})]
    for i, (name, arguments) in enumerate(calls):
        chunks += call_deltas(name, arguments, index=i, repeat_name=repeat_name)
    chunks.append(chunk({}, "tool_calls"))
    return sse(chunks)


def stall(h: _Handler) -> None:
    """Read the request, then say nothing until the server closes."""
    h.server_owner.stop.wait(30)


def garbage(h: _Handler) -> None:
    """A 200 event stream whose data is not JSON."""
    h.start_stream()
    h.event("{\"choices\": [{\"delta\": {\"tool_calls\": [{\"function\": {\"name\": \"light_on\", \"argu")
    h.event("[DONE]")


def drop_after(chunks: Sequence[Any], *, every_s: float = 0.0) -> Step:
    """Send ``chunks`` (one per ``every_s``) and hang up: no finish_reason, no [DONE]."""
    def step(h: _Handler) -> None:
        h.start_stream()
        for c in chunks:
            if every_s and h.server_owner.stop.wait(every_s):
                return
            h.event(c)
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)
    return step


def trickle(h: _Handler) -> None:
    """Keep-alive comments every 0.1 s, never an answer (each read is quick, the total is not)."""
    h.start_stream()
    while not h.server_owner.stop.wait(0.1):
        try:
            h.wfile.write(b": ping\n\n")
            h.wfile.flush()
        except OSError:
            return


def status(code: int, body: str = '{"error": "busy"}') -> Step:
    """An HTTP error answer."""
    def step(h: _Handler) -> None:
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        h.wfile.write(body.encode())
    return step


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def self_signed(dest: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = dest / "cert.pem", dest / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


# --------------------------------------------------------------------------- llama.cpp


def llama_server_venv() -> Path:
    """Where scripts/llama_server_env caches llama-cpp-python[server]."""
    cache = Path(os.environ.get("ASSISTANT_CI_CACHE", Path.home() / ".cache" / "assistant-ci"))
    return cache / "llama-server-0.3.16"


class LlamaServer:
    """llama-cpp-python's server on loopback, chat format chatml-function-calling."""

    def __init__(self, model: Path, log: Path) -> None:
        self.port = closed_port()
        python = llama_server_venv() / "bin" / "python"
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [str(python), "-m", "llama_cpp.server", "--model", str(model),
             "--chat_format", "chatml-function-calling", "--n_ctx", "4096", "--n_threads", "1",
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log = log

    @property
    def url(self) -> str:
        """The base URL of its API."""
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until /v1/models answers; raises with the server's log when it does not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"llama.cpp server did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    def close(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def make_tiny_gguf(dest: Path) -> Path:
    """Run scripts/make_tiny_gguf.py (this interpreter) to write the test model."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_gguf.py"), str(dest)],
                   check=True, capture_output=True)
    return dest

