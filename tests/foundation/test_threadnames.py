"""Worker threads carry their Python names at the OS level, where the soak bench reads them."""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from pathlib import Path

import pytest

from assistant.threadnames import name_native_thread


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_a_pool_worker_is_named_in_proc_as_in_python() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tool", initializer=name_native_thread)
    with pool:
        native = pool.submit(threading.get_native_id).result()
        comm = Path(f"/proc/{os.getpid()}/task/{native}/comm").read_text(encoding="ascii").strip()
    assert comm == "tool_0"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_a_long_name_is_cut_to_what_linux_keeps() -> None:
    seen: list[str] = []

    def work() -> None:
        name_native_thread()
        native = threading.get_native_id()
        seen.append(Path(f"/proc/{os.getpid()}/task/{native}/comm").read_text(encoding="ascii").strip())

    thread = threading.Thread(target=work, name="a-very-long-thread-name-indeed")
    thread.start()
    thread.join()
    assert seen == ["a-very-long-thr"]
