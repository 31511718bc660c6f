"""Parse Gemma 4's native function calls out of generated text.

The model writes ``<|tool_call>call:NAME{key:<|"|>text<|"|>,n:42}<tool_call|>``:
bare keys, ``<|"|>``-delimited strings, nested objects and arrays, numbers,
``true``/``false``/``null``; several calls are simply concatenated. Tolerated
quirks (reference section 4.5): a call closed by ``<turn|>`` or by the end of the
text (a stop on ``<eos>``/``<|tool_response>``), and a bare ``call:NAME{...}`` at
the very start of the output. Model output is untrusted: anything malformed
yields no calls at all plus an error message, never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assistant.types import ToolCall

CALL_OPEN = "<|tool_call>"
CALL_CLOSE = "<tool_call|>"
QUOTE = '<|"|>'
_TERMINATORS = ("<tool_call|>", "<turn|>", "<eos>", "<|tool_response>")
_NAME_RE = re.compile(r"[A-Za-z_][\w\-.]{0,127}")
_KEY_RE = re.compile(r"[A-Za-z_$][\w\-.$]{0,127}")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d{0,30})(?:\.\d{1,30})?(?:[eE][+-]?\d{1,3})?")
_MAX_DEPTH = 16
_MAX_TEXT = 64_000
_CONTROL_RE = re.compile(r"<\|[^<>\s]{0,40}>|<[^<>\s|]{1,40}\|>")


class _Malformed(ValueError):
    """Raised inside the parser; turned into an error flag at the boundary."""


@dataclass(frozen=True)
class ParsedOutput:
    """What one round of generation said."""

    calls: tuple[ToolCall, ...]
    """The calls, in order; empty when there were none or the output was malformed."""
    text: str
    """Everything outside the calls with control tokens and thoughts removed (the spoken part)."""
    error: str | None = None
    """Why the output was rejected; None when it parsed."""

    @property
    def ok(self) -> bool:
        """True when nothing was malformed."""
        return self.error is None


class _Reader:
    """Recursive-descent reader over one call's argument text."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, token: str) -> None:
        if not self.text.startswith(token, self.pos):
            raise _Malformed(f"expected {token!r} at {self.pos}")
        self.pos += len(token)

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _Malformed("nesting too deep")
        self.skip_ws()
        text, pos = self.text, self.pos
        if text.startswith(QUOTE, pos):
            end = text.find(QUOTE, pos + len(QUOTE))
            if end < 0:
                raise _Malformed("unterminated string")
            self.pos = end + len(QUOTE)
            return text[pos + len(QUOTE) : end]
        if text.startswith("{", pos):
            return self.mapping(depth + 1)
        if text.startswith("[", pos):
            return self.array(depth + 1)
        for word, result in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos) and not _continues_word(text, pos + len(word)):
                self.pos += len(word)
                return result
        match = _NUMBER_RE.match(text, pos)
        if match and not _continues_word(text, match.end()):
            self.pos = match.end()
            literal = match.group(0)
            if any(c in literal for c in ".eE"):
                return float(literal)
            return int(literal)
        raise _Malformed(f"unexpected value at {pos}")

    def key(self) -> str:
        self.skip_ws()
        if self.text.startswith(QUOTE, self.pos):
            end = self.text.find(QUOTE, self.pos + len(QUOTE))
            if end < 0:
                raise _Malformed("unterminated key")
            name = self.text[self.pos + len(QUOTE) : end]
            self.pos = end + len(QUOTE)
        else:
            match = _KEY_RE.match(self.text, self.pos)
            if not match:
                raise _Malformed(f"bad key at {self.pos}")
            name = match.group(0)
            self.pos = match.end()
        if not name or _CONTROL_RE.search(name):
            raise _Malformed("bad key")
        return name

    def mapping(self, depth: int) -> dict[str, Any]:
        self.expect("{")
        result: dict[str, Any] = {}
        self.skip_ws()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return result
        while True:
            name = self.key()
            self.skip_ws()
            self.expect(":")
            if name in result:
                raise _Malformed(f"duplicate key {name!r}")
            result[name] = self.value(depth)
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            self.expect("}")
            return result

    def array(self, depth: int) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        self.skip_ws()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return items
        while True:
            items.append(self.value(depth))
            self.skip_ws()
            if self.text.startswith(",", self.pos):
                self.pos += 1
                continue
            self.expect("]")
            return items


def _continues_word(text: str, pos: int) -> bool:
    return pos < len(text) and (text[pos].isalnum() or text[pos] in "_.")


def _parse_call(text: str, pos: int) -> tuple[ToolCall, int]:
    """Parse ``call:NAME{...}`` at ``pos``; return the call and the position after its terminator."""
    reader = _Reader(text, pos)
    reader.skip_ws()
    reader.expect("call:")
    match = _NAME_RE.match(text, reader.pos)
    if not match:
        raise _Malformed("bad tool name")
    name = match.group(0)
    reader.pos = match.end()
    arguments = reader.mapping(1)
    reader.skip_ws()
    for terminator in _TERMINATORS:
        if text.startswith(terminator, reader.pos):
            # <tool_call|> belongs to the call; the others (quirks) end the output anyway.
            end = reader.pos + len(terminator) if terminator == CALL_CLOSE else reader.pos
            return ToolCall(name=name, arguments=arguments), end
    if reader.pos >= len(text):
        return ToolCall(name=name, arguments=arguments), reader.pos
    raise _Malformed(f"call {name!r} not closed")


def strip_thoughts(text: str) -> str:
    """Remove ``<|channel>...<channel|>`` reasoning (an unclosed channel runs to the end)."""
    while True:
        start = text.find("<|channel>")
        if start < 0:
            return text
        end = text.find("<channel|>", start)
        text = text[:start] if end < 0 else text[:start] + text[end + len("<channel|>") :]


def strip_control(text: str) -> str:
    """Spoken text: drop thought channels and every control token."""
    text = strip_thoughts(text).replace(QUOTE, '"')
    return " ".join(_CONTROL_RE.sub(" ", text).split())


def parse_output(text: str) -> ParsedOutput:
    """Split generated text (decoded with special tokens kept) into calls and spoken text."""
    try:
        if not isinstance(text, str):
            return ParsedOutput((), "", "output is not text")
        if len(text) > _MAX_TEXT:
            return ParsedOutput((), "", "output too long")
        # A call written inside the reasoning channel is a thought, not a request.
        text = strip_thoughts(text)
        calls: list[ToolCall] = []
        spoken: list[str] = []
        pos = 0
        stripped = text.lstrip()
        if stripped.startswith("call:"):
            # Fallback form without the special token, accepted only at the very start.
            call, pos = _parse_call(text, len(text) - len(stripped))
            calls.append(call)
        while True:
            start = text.find(CALL_OPEN, pos)
            if start < 0:
                spoken.append(text[pos:])
                break
            spoken.append(text[pos:start])
            call, pos = _parse_call(text, start + len(CALL_OPEN))
            calls.append(call)
        return ParsedOutput(tuple(calls), strip_control("".join(spoken)))
    except _Malformed as exc:
        return ParsedOutput((), "", f"malformed tool call: {exc}")
    except (RecursionError, ValueError, OverflowError) as exc:
        return ParsedOutput((), "", f"malformed tool call: {exc}")
