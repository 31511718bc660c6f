"""Parse Gemma 4's native function calls out of generated text.

The model writes ``<|tool_call>call:NAME{key:<|"|>text<|"|>,n:42}<tool_call|>``:
bare keys, ``<|"|>``-delimited strings, nested objects and arrays, numbers,
``true``/``false``/``null``; several calls are simply concatenated.

Every other form a real Gemma 4 has been seen to emit (tests/data/gemma/outputs.json
lists them with their public sources) is parsed too:

* a call closed by ``<turn|>`` or by the end of the text (a stop on ``<eos>`` or
  ``<|tool_response>``) instead of ``<tool_call|>``;
* a bare ``call:NAME{...}`` without the special token: at the start, after prose, or
  glued to a stray ``<channel|>``;
* the ``<call>NAME{...}`` fragment (split special tokens after multimodal input) and a
  stray colon, ``<|tool_call>:call:NAME{...}``;
* a string value without its opening ``<|"|>`` (``query:weather in Tokyo<|"|>``) and an
  unquoted scalar (``location:Tokyo``), read up to the next ``,``/``}``/``]``.

Model output is untrusted: anything else that looks like call syntax (a broken call,
a hallucinated ``response:``, a stray ``<|"|>``) yields no calls at all plus an error,
never an exception, and never reaches the spoken text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from assistant.types import ToolCall

CALL_OPEN = "<|tool_call>"
CALL_CLOSE = "<tool_call|>"
FRAGMENT_OPEN = "<call>"
FRAGMENT_CLOSE = "</call>"
QUOTE = '<|"|>'
_TERMINATORS = ("<tool_call|>", "<turn|>", "<eos>", "<|tool_response>")
_NAME_RE = re.compile(r"[A-Za-z_][\w\-.]{0,127}")
_KEY_RE = re.compile(r"[A-Za-z_$][\w\-.$ ]{0,127}")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d{0,30})(?:\.\d{0,30})?(?:[eE][+-]?\d{1,3})?")
_MAX_DEPTH = 16
_MAX_TEXT = 64_000
_CONTROL_RE = re.compile(r"<\|[^<>\s]{0,40}>|<[^<>\s|]{1,40}\|>|<(?:eos|bos|pad)>")
# Where a call starts: the special token, the fragment, or a bare ``call:NAME{`` that is
# not the tail of a longer word (``recall:x{`` is prose).
_BARE = r"(?<![\w.\-:])call:(?=\s*[A-Za-z_][\w\-.]*\s*\{)"
_START_RE = re.compile(r"<\|tool_call>|<call>|" + _BARE)
# Call syntax that must never be spoken: what is left of it after the calls were cut out
# means the output was broken, and the whole turn is refused. Unlike _BARE (where a call
# starts) this has no word-boundary guard: ``recall:x{`` is not parsed as a call, but it is
# not speech either (hypothesis found ``_call:_{`` spoken).
_CALL_SYNTAX_RE = re.compile(
    r"<\|tool_call>|<tool_call\|>|<\|tool>|<tool\|>|<tool_response\|>|</?call>|<\|\"\|>"
    r"|(?:call|response|declaration)\s*:\s*[A-Za-z_][\w\-.]*\s*\{"
)
_BARE_STOP = ",}]"
_NOT_BARE = ("{", "[", ":", QUOTE, "<|", "|>")


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
        missing_open = self._missing_open_quote()
        if missing_open is not None:
            return missing_open
        return self._bare_scalar()

    def _missing_open_quote(self) -> str | None:
        """``key:text<|"|>``: a string whose opening delimiter the model left out."""
        text, pos = self.text, self.pos
        close = text.find(QUOTE, pos)
        if close < 0:
            return None
        body = text[pos:close]
        after = text[close + len(QUOTE) : close + len(QUOTE) + 1]
        if (
            not body.strip()
            or any(c in body for c in "{}[]:")
            or "<|" in body
            or "|>" in body
            or body.rstrip().endswith(",")
            or (after and after not in _BARE_STOP and not after.isspace())
        ):
            return None
        self.pos = close + len(QUOTE)
        return body

    def _bare_scalar(self) -> Any:
        """An unquoted value up to the next ``,``, ``}`` or ``]``: a number, a literal or text."""
        text, pos = self.text, self.pos
        end = pos
        while end < len(text) and text[end] not in _BARE_STOP:
            end += 1
        raw = text[pos:end]
        literal = raw.strip()
        if not literal or any(marker in raw for marker in _NOT_BARE) or _CONTROL_RE.search(raw):
            raise _Malformed(f"unexpected value at {pos}")
        self.pos = end
        for word, result in (("true", True), ("false", False), ("null", None)):
            if literal == word:
                return result
        match = _NUMBER_RE.fullmatch(literal)
        if match:
            if any(c in literal for c in ".eE"):
                return float(literal)
            return int(literal)
        return literal

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
            name = match.group(0).rstrip()
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


def _parse_call(text: str, pos: int, *, strict_end: bool) -> tuple[ToolCall, int]:
    """Parse ``NAME{...}`` at ``pos``; return the call and the position after it.

    ``strict_end`` (calls opened by ``<|tool_call>``): only a terminator, the end of the
    text or the next call may follow the arguments. Bare and fragment calls end at their
    closing brace.
    """
    reader = _Reader(text, pos)
    match = _NAME_RE.match(text, reader.pos)
    if not match:
        raise _Malformed("bad tool name")
    name = match.group(0)
    reader.pos = match.end()
    reader.skip_ws()
    arguments = reader.mapping(1)
    call = ToolCall(name=name, arguments=arguments)
    after = reader.pos
    reader.skip_ws()
    if text.startswith(CALL_CLOSE, reader.pos):
        return call, reader.pos + len(CALL_CLOSE)
    if text.startswith(FRAGMENT_CLOSE, reader.pos):
        return call, reader.pos + len(FRAGMENT_CLOSE)
    if not strict_end:
        return call, after
    if (
        reader.pos >= len(text)
        or any(text.startswith(t, reader.pos) for t in _TERMINATORS)
        or _START_RE.match(text, reader.pos)
    ):
        # <turn|>/<eos>/<|tool_response> (quirks) end the output anyway: leave them to the text.
        return call, after
    raise _Malformed(f"call {name!r} not closed")


def _call_body(text: str, start: re.Match[str]) -> tuple[int, bool]:
    """Where ``NAME{`` begins after a call start, and whether the call must be closed strictly."""
    token = start.group(0)
    pos = start.end()
    if token == CALL_OPEN:
        reader = _Reader(text, pos)
        if text.startswith(":", reader.pos):  # <|tool_call>:call: (a stray colon)
            reader.pos += 1
        reader.skip_ws()
        reader.expect("call:")
        reader.skip_ws()
        return reader.pos, True
    if token == FRAGMENT_OPEN:
        if text.startswith("call:", pos):
            pos += len("call:")
        return pos, False
    reader = _Reader(text, pos)
    reader.skip_ws()
    return reader.pos, False


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
        while True:
            start = _START_RE.search(text, pos)
            if start is None:
                spoken.append(text[pos:])
                break
            spoken.append(text[pos : start.start()])
            body, strict_end = _call_body(text, start)
            call, pos = _parse_call(text, body, strict_end=strict_end)
            calls.append(call)
        rest = "".join(spoken)
        leftover = _CALL_SYNTAX_RE.search(rest)
        if leftover:
            return ParsedOutput((), "", f"call syntax outside a call: {leftover.group(0)!r}")
        return ParsedOutput(tuple(calls), strip_control(rest))
    except (_Malformed, RecursionError, ValueError, OverflowError) as exc:
        return ParsedOutput((), "", f"malformed tool call: {exc}")
