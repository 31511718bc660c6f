"""A small stdlib sd_notify: tell systemd we are ready, alive, reloading or stopping.

systemd passes ``NOTIFY_SOCKET`` to Type=notify services: a path to a unix datagram
socket, or an abstract name starting with ``@``. Without it every call is a no-op, so
the daemon runs the same way from a terminal. ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``)
say whether and how often the watchdog wants ``WATCHDOG=1``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


def _address(environ: Mapping[str, str]) -> str | None:
    """The notify socket address from the environment, or None when not under systemd."""
    path = environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return None
    # "@name" is a Linux abstract socket: the kernel name starts with a NUL byte.
    return "\0" + path[1:] if path[0] == "@" else path


def notify(state: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification (``READY=1``, ``STATUS=...``, several lines joined by newlines).

    Returns True when a message was sent, False when there is no socket or sending failed;
    never raises, because a missing service manager must not stop the assistant.
    """
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the event loop: a full receive queue drops this message instead.
            sock.setblocking(False)
            sock.connect(address)
            sock.send(state.encode("utf-8"))
    except OSError as err:
        _LOGGER.debug("sd_notify %r failed: %s", state.split("\n", 1)[0], err)
        return False
    return True


def ready(status: str | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """``READY=1`` (plus ``MAINPID`` and an optional status line)."""
    lines = ["READY=1", f"MAINPID={os.getpid()}"]
    if status:
        lines.append(f"STATUS={_one_line(status)}")
    return notify("\n".join(lines), environ=environ)


def status(text: str, *, environ: Mapping[str, str] | None = None) -> bool:
    """``STATUS=text``: the line ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}", environ=environ)


def watchdog(*, environ: Mapping[str, str] | None = None) -> bool:
    """``WATCHDOG=1``: one keep-alive ping."""
    return notify("WATCHDOG=1", environ=environ)


def stopping(status: str | None = None, *, environ: Mapping[str, str] | None = None) -> bool:
    """``STOPPING=1`` at the start of a graceful stop."""
    lines = ["STOPPING=1"]
    if status:
        lines.append(f"STATUS={_one_line(status)}")
    return notify("\n".join(lines), environ=environ)


def reloading(*, environ: Mapping[str, str] | None = None) -> bool:
    """``RELOADING=1`` at the start of a reload; send ``ready()`` when done."""
    return notify("RELOADING=1", environ=environ)


def watchdog_interval_s(*, environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between the watchdog deadlines systemd enforces, or None when it is off.

    Honours ``WATCHDOG_PID``: a watchdog meant for another process (our parent) is not ours.
    Ping at half this interval or more often.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        microseconds = int(raw)
    except ValueError:
        return None
    return microseconds / 1_000_000 if microseconds > 0 else None


def _one_line(text: str) -> str:
    """Status text must stay one line: a newline would start a new assignment."""
    return " ".join(text.split())
