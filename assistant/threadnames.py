"""OS-level thread names: the Python name of a thread, visible to top -H, ps -L and /proc.

Python 3.11 leaves every thread named after the process ("python"), so a thread count that moves
cannot be told apart from outside: a leak looks like a worker pool growing to its bound. The
daemon's worker pools name their threads with this as their initializer ("assistant_1",
"tool_0"), and bench/bench_soak.py reads the names back.
"""

from __future__ import annotations

import ctypes
import sys
import threading

_PR_SET_NAME = 15
_MAX_NAME = 15
"""Linux keeps 15 bytes of a thread's name."""


def name_native_thread() -> None:
    """Give the calling thread's OS name its Python name (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    name = threading.current_thread().name.encode("ascii", "replace")[:_MAX_NAME]
    try:
        ctypes.CDLL(None).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl here: the name is cosmetic
        return
