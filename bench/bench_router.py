"""Router overhead per call: validate + dispatch (thread pool, timeout) + render the reply.

Runs a trivial handler N times bare and N times through Router.call in the same
process, side by side, and prints microseconds per call and the difference. Goal:
overhead < 200 us (0.2 ms) per call. Also times the call with INFO logging on (one
formatted line per call into a null stream) and the Gemma response rendering.

    .venv/bin/python bench/bench_router.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time
from typing import Annotated, Any

from assistant.tools import gemma_format
from assistant.tools.declare import make_tool, tool
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router
from assistant.tools.schema import Range
from assistant.types import ToolCall


@tool(reply="Set the {room} light to {level} percent.")
def set_light(room: str, level: Annotated[int, Range(0, 100)], on: bool = True) -> dict[str, Any]:
    """Set a light.

    Args:
        room: Room name.
        level: Brightness in percent.
        on: Switch on or off.
    """
    return {"state": "on" if on else "off"}


def _per_call_us(fn: Any, calls: int, repeats: int) -> float:
    """Median over ``repeats`` runs of the mean microseconds per call."""
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    registry = ToolRegistry()
    registry.set_group("bench", [make_tool(set_light)])
    router = Router(registry)
    call = ToolCall("set_light", {"room": "kitchen", "level": "40"})
    bare_args = {"room": "kitchen", "level": 40}
    logger = logging.getLogger("assistant.tools.router")

    def bare() -> None:
        set_light(**bare_args)

    def routed() -> None:
        result = router.call(call, site="bench")
        if not result.ok:
            raise SystemExit(f"bench call failed: {result}")

    result = router.call(call, site="bench")

    def gemma() -> None:
        gemma_format.render_response(result)

    for fn in (bare, routed):  # warm-up
        _per_call_us(fn, 500, 1)

    logger.setLevel(logging.WARNING)
    bare_us = _per_call_us(bare, args.calls, args.repeats)
    routed_us = _per_call_us(routed, args.calls, args.repeats)

    sink = logging.StreamHandler(io.StringIO())
    logger.addHandler(sink)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logged_us = _per_call_us(routed, args.calls // 4, args.repeats)
    logger.removeHandler(sink)
    logger.setLevel(logging.WARNING)

    gemma_us = _per_call_us(gemma, args.calls, args.repeats)
    router.close()

    overhead = routed_us - bare_us
    print(f"calls per run: {args.calls}, runs: {args.repeats} (median)")
    print(f"bare handler:                     {bare_us:8.2f} us/call")
    print(f"router.call (log level WARNING):  {routed_us:8.2f} us/call  overhead {overhead:8.2f} us "
          f"= {overhead / 1000:.3f} ms (goal < 0.2 ms): {'PASS' if overhead < 200 else 'FAIL'}")
    print(f"router.call (INFO line per call): {logged_us:8.2f} us/call  "
          f"overhead {logged_us - bare_us:8.2f} us")
    print(f"render_response (Gemma block):    {gemma_us:8.2f} us/call")


if __name__ == "__main__":
    main()
