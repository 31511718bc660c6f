"""File names and file kinds in messages: one place for every reader of untrusted paths.

Settings files, secrets, WAV inputs: each is stat-ed before it is opened and refused with a
message that says what the path is instead ("is a FIFO (named pipe), not a regular file"), and
every name printed goes through ``shown_name`` so bytes that are not UTF-8 cannot crash output.
"""

from __future__ import annotations

import os
import stat


def shown_name(path: str | os.PathLike[str]) -> str:
    """A file name safe to print under any locale: bytes that are not UTF-8 appear as \\xNN.

    Names from the command line arrive with such bytes as lone surrogates (PEP 383),
    which a strict UTF-8 stdout refuses to encode.
    """
    name = os.fsdecode(path)
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates that did not come from undecodable bytes
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def file_kind(mode: int) -> str:
    """What a ``st_mode`` that is not a regular file is, for a message ("a FIFO (named pipe)")."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
