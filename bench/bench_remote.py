"""Remote brain overhead on loopback: Python cost per streamed token, and end of speech to request.

1. Per token: a loopback server sends one pre-rendered SSE response of N one-token chunks
   (llama.cpp's chunk shape) as fast as the socket takes it. Timed twice: a raw
   http.client read of the whole body (the floor: socket and HTTP framing), and
   ChatClient.complete on the same response (line splitting, JSON per chunk, assembly).
   The difference divided by N is the client's parse cost per token.
2. End of speech to request: RemoteBrain.handle_transcript with the utterance ending
   right before the call, against a server that answers "OK." at once, with a router of
   T tools (declarations built and encoded every turn); the figure is the brain's own
   ``end_of_speech_to_request`` (the request written to the socket).

    .venv/bin/python bench/bench_remote.py [--tokens 2000] [--tools 40] [--turns 50]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.brains.remote.brain import make_remote_brain
from assistant.brains.remote.client import ChatClient
from assistant.config import RemoteSettings
from assistant.tools.base import Tool
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.types import Utterance


def _chunk(text: str, finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "bench",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _server(body: bytes) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/v1"


def per_token(tokens: int, repeats: int) -> None:
    body = b"".join(_chunk(f" w{i}") for i in range(tokens)) + _chunk("", "stop") + b"data: [DONE]\n\n"
    httpd, url = _server(body)
    port = httpd.server_address[1]
    client = ChatClient(url, first_token_timeout_s=10, total_timeout_s=60, max_response_bytes=64 << 20)
    raw_s, parsed_s = [], []
    payload = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(repeats):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("POST", "/v1/chat/completions", json.dumps(payload),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        while response.readline():
            pass  # the same line-by-line reading, without parsing
        conn.close()
        raw_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        completion = client.complete(payload, threading.Event())
        parsed_s.append(time.perf_counter() - started)
        if completion.chunks != tokens + 1:
            raise SystemExit(f"expected {tokens + 1} chunks, got {completion.chunks}")
    httpd.shutdown()
    raw, parsed = statistics.median(raw_s), statistics.median(parsed_s)
    print(f"per streamed token ({tokens} chunks of {len(body) // (tokens + 2)} bytes, median of {repeats}):")
    print(f"  raw line read      {raw / tokens * 1e6:7.1f} us/token")
    print(f"  ChatClient         {parsed / tokens * 1e6:7.1f} us/token")
    print(f"  parse overhead     {(parsed - raw) / tokens * 1e6:7.1f} us/token")


def to_request(n_tools: int, turns: int) -> None:
    body = _chunk("OK.", "stop") + b"data: [DONE]\n\n"
    httpd, url = _server(body)
    registry = ToolRegistry()
    schema = {"type": "object", "additionalProperties": False, "required": ["name"],
              "properties": {"name": {"type": "string", "enum": [f"entity {i}" for i in range(20)]},
                             "brightness": {"type": "integer", "minimum": 0, "maximum": 100}}}
    registry.set_group("bench", [Tool(f"tool_{i}", f"Bench tool {i}.", schema, lambda **_: {})
                                 for i in range(n_tools)])
    router = Router(registry)
    brain = make_remote_brain(RemoteSettings(url=url, history_turns=0))
    figures = []
    for _ in range(turns):
        utterance = Utterance(b"\0\0" * 160, 0.0, 0.01, "bench", ended_at=time.monotonic())
        turn = brain.handle_transcript("what is the weather like", utterance, router, threading.Event())
        figures.append(turn.timings_ms["end_of_speech_to_request"])
    router.close()
    httpd.shutdown()
    figures.sort()
    p95 = figures[min(len(figures) - 1, int(0.95 * len(figures)))]
    print(f"end of speech to request leaving ({n_tools} tools declared, {turns} turns):")
    print(f"  median {statistics.median(figures):.2f} ms, p95 {p95:.2f} ms, max {figures[-1]:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tools", type=int, default=40)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()
    per_token(args.tokens, args.repeats)
    to_request(args.tools, args.turns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
