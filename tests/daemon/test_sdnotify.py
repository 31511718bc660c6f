"""sd_notify against a real unix datagram socket bound by the test."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from assistant import sdnotify


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(1.0)
        env = {"NOTIFY_SOCKET": str(path)}
        assert sdnotify.ready("up and listening", environ=env)
        assert sdnotify.status("thinking\nhard", environ=env)
        assert sdnotify.watchdog(environ=env)
        assert sdnotify.reloading(environ=env)
        assert sdnotify.stopping(environ=env)
        got = [server.recv(4096).decode() for _ in range(5)]
    assert got[0].split("\n") == ["READY=1", f"MAINPID={os.getpid()}", "STATUS=up and listening"]
    assert got[1] == "STATUS=thinking hard"  # a newline would start a new assignment
    assert got[2:] == ["WATCHDOG=1", "RELOADING=1", "STOPPING=1"]


def test_abstract_socket_name() -> None:
    name = f"assistant-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        server.settimeout(1.0)
        assert sdnotify.watchdog(environ={"NOTIFY_SOCKET": "@" + name})
        assert server.recv(64) == b"WATCHDOG=1"


@pytest.mark.parametrize("value", ["", "relative/path", None])
def test_no_socket_is_a_quiet_no_op(value: str | None) -> None:
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    assert sdnotify.ready(environ=env) is False
    assert sdnotify.watchdog(environ=env) is False


def test_dead_socket_does_not_raise(tmp_path: Path) -> None:
    assert sdnotify.watchdog(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid())}, 0.5),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert sdnotify.watchdog_interval_s(environ=env) == expected
