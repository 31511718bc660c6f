"""Fixtures for every test."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_cli_log_handler_left() -> Iterator[None]:
    """A test that runs the CLI in this process (``assistant.cli.main``) gives the root logger a
    handler on the sys.stderr of that moment, which pytest closes when the test ends; a background
    thread of a later test that logged (the wake detector) then printed "--- Logging error ---"
    (ValueError: I/O operation on closed file). Remove that handler and put the level back
    (pytest's own capture handlers are subclasses, added and removed by pytest itself)."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)
