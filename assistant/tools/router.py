"""The one place that decides what runs: validation, confirmation, timeout, logging.

Every brain hands its ToolCalls to ``Router.call``. A call runs only after its
arguments passed the tool's schema; a sensitive call runs only after an explicit
yes (or the configured PIN) from the same site within the confirmation window.
Nothing raised by a brain's input or a handler escapes: every outcome is a
ToolResult, and every executed or refused call is one log line on
``assistant.tools.router``:

    tool=set_volume site=kitchen outcome=ok code=- duration_ms=0.21 arguments={"level": 40}

Handlers run in a small thread pool with a per-call timeout. A handler that
overruns is reported as ``timeout`` but cannot be killed: it may still finish
(and act) later, so handlers that talk to the outside world should carry their
own, shorter timeouts.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import dataclasses
import datetime as dt
import enum
import hmac
import json
import logging
import math
import re
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from assistant.config import RouterSettings
from assistant.errors import AssistantError, ToolError
from assistant.threadnames import name_native_thread
from assistant.tools.base import Tool
from assistant.tools.context import set_current_site
from assistant.tools.registry import ToolRegistry
from assistant.tools.schema import ArgumentError, validate_arguments
from assistant.types import ResultStatus, ToolCall, ToolResult

_LOGGER = logging.getLogger(__name__)

_T = TypeVar("_T")

_TOOL_DEFAULT_TIMEOUT_S = Tool.__dataclass_fields__["timeout_s"].default
"""A Tool left at this default uses ``router.call_timeout_s`` instead."""

YES_ANSWERS = frozenset(
    {
        "yes",
        "yes please",
        "yes do it",
        "yes go ahead",
        "yes confirm",
        "yeah",
        "yep",
        "do it",
        "please do",
        "go ahead",
        "confirm",
        "confirmed",
        "affirmative",
    }
)
"""The complete list of answers that confirm (after lower-casing and dropping punctuation)."""

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}

APOLOGIES = {
    "unknown_tool": "Sorry, I can't do that.",
    "out_of_range": "Sorry, that value is out of range.",
    "timeout": "Sorry, that took too long.",
    "handler_failed": "Sorry, something went wrong.",
}
_DEFAULT_APOLOGY = "Sorry, I couldn't do that with those details."
_VALIDATION_CODES = frozenset(
    {"invalid_arguments", "missing_argument", "unexpected_argument", "wrong_type", "out_of_range",
     "not_allowed", "schema_invalid"}
)
DONE = "Done."
"""Spoken when a tool has no reply template or its template cannot be filled."""

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class _Pending:
    tool: Tool
    arguments: dict[str, Any]
    call: ToolCall
    site: str
    deadline: float
    question: str


class Router:
    """Validates, confirms, executes and logs tool calls; implements brains.base.Router."""

    def __init__(
        self,
        registry: ToolRegistry,
        settings: RouterSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_workers: int = 4,
    ) -> None:
        self._registry = registry
        self._settings = settings or RouterSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tool",
                                                           initializer=name_native_thread)
        self._busy = 0
        self._max_workers = max_workers

    # ---------------------------------------------------------------- protocol

    @property
    def registry(self) -> ToolRegistry:
        """The registry this router reads."""
        return self._registry

    def tools(self) -> Sequence[Tool]:
        """The current tool set, sorted by name."""
        return self._registry.tools()

    @property
    def tools_version(self) -> int:
        """Increases whenever the tool set changes."""
        return self._registry.version

    def call(self, call: ToolCall, *, site: str) -> ToolResult:
        """Validate and (maybe) execute one call; never raises for bad input."""
        try:
            return self._call(call, site)
        except Exception as err:  # last line of defence: a router bug must not crash the brain
            _LOGGER.exception("router failed on %r", call)
            safe = call if isinstance(call, ToolCall) else ToolCall(name=str(getattr(call, "name", ""))[:64])
            return ToolResult(call=safe, status=ResultStatus.ERROR, data={"error": str(err)[:200]},
                              error_code="internal_error", speech=APOLOGIES["handler_failed"])

    def _call(self, call: ToolCall, site: str) -> ToolResult:
        started = time.perf_counter()
        with self._lock:
            superseded = self._pending.pop(site, None)
        if superseded is not None:
            self._log(superseded.call, superseded.tool, superseded.arguments, site,
                      status=ResultStatus.CANCELLED, code="superseded", duration_ms=0.0)
        name = call.name if isinstance(call.name, str) else None
        found = self._registry.get(name) if name is not None else None
        if found is None:
            return self._refuse(call, None, site, "unknown_tool",
                                f"unknown tool {str(call.name)[:64]!r}", started=started)
        tool = found
        try:
            arguments = validate_arguments(tool.parameters, call.arguments)
        except ArgumentError as err:
            return self._refuse(call, tool, site, err.code, err.message, started=started)
        except Exception as err:  # a schema the checker let through but the validator chokes on
            _LOGGER.exception("validator failed on %s", tool.name)
            return self._refuse(call, tool, site, "invalid_arguments", str(err), started=started)
        # the rules resolve their targets as the handler will: in the area of the call's site
        if call.confirm or _at_site(site, self._is_sensitive, tool, arguments):
            question = _at_site(site, self._question, tool, arguments)
            with self._lock:
                self._pending[site] = _Pending(tool, arguments, call, site,
                                               self._clock() + self._settings.confirmation_window_s,
                                               question)
            result = ToolResult(call=call, status=ResultStatus.NEEDS_CONFIRMATION,
                                data={"question": question}, speech=question)
            self._log(call, tool, arguments, site, status=result.status, code=None, duration_ms=_ms(started))
            return result
        return self._execute(tool, arguments, call, site, started)

    def pending_confirmation(self, site: str) -> str | None:
        """The question asked, when a sensitive call from ``site`` waits for a yes."""
        with self._lock:
            pending = self._pending.get(site)
            if pending is None:
                return None
            if self._clock() <= pending.deadline:
                return pending.question
            del self._pending[site]
        self._log(pending.call, pending.tool, pending.arguments, site, status=ResultStatus.CANCELLED,
                  code="confirmation_timeout", duration_ms=0.0)
        return None

    def answer_confirmation(self, transcript: str | None, *, site: str) -> ToolResult:
        """Resolve the waiting call of ``site`` with the next turn's words.

        Runs it only on an explicit yes (one of YES_ANSWERS), or on the spoken PIN
        when ``router.confirmation_pin`` is set, within the window; anything else
        cancels it.
        """
        started = time.perf_counter()
        now = self._clock()
        with self._lock:
            pending = self._pending.pop(site, None)
        if pending is None:
            return ToolResult(call=ToolCall(name="", arguments={}), status=ResultStatus.CANCELLED,
                              error_code="nothing_pending", speech="")
        if now > pending.deadline:
            return self._cancel(pending, "confirmation_timeout", "That request timed out, so I did nothing.")
        if not isinstance(transcript, str) or not transcript.strip():
            return self._cancel(pending, "no_answer", "Okay, I did nothing.")
        if not self._confirms(transcript):
            return self._cancel(pending, "declined", "Okay, I won't.")
        if self._registry.get(pending.tool.name) is not pending.tool:
            # The tool set changed while we waited; what was confirmed may no longer exist.
            return self._cancel(pending, "tool_changed", "Sorry, that is no longer possible.")
        return self._execute(pending.tool, pending.arguments, pending.call, site, started)

    def close(self) -> None:
        """Stop the worker pool (running handlers are not waited for)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- internals

    def _is_sensitive(self, tool: Tool, arguments: Mapping[str, Any]) -> bool:
        try:
            return tool.is_sensitive(arguments)
        except Exception:
            # A broken rule must not turn a sensitive action into an unconfirmed one.
            _LOGGER.exception("sensitivity rule of %s failed; asking for confirmation", tool.name)
            return True

    def _question(self, tool: Tool, arguments: Mapping[str, Any]) -> str:
        question = None
        if tool.ask is not None:
            try:
                question = tool.ask(arguments)
            except Exception:  # a broken question must not stop the confirmation itself
                _LOGGER.exception("confirmation question of %s failed", tool.name)
        if not question and tool.confirm:
            question = render_template(tool.confirm, arguments)
        if not question:
            action = tool.description.strip().rstrip(".").split(". ")[0]
            action = action[:1].lower() + action[1:]
            values = [_speakable(v) for v in arguments.values() if isinstance(v, (str, int, float))]
            detail = f": {', '.join(values[:3])}" if values else ""
            question = f"Do you want me to {action}{detail}?"
        if self._settings.confirmation_pin is not None and "pin" not in question.lower():
            question = f"{question} Say the PIN to confirm."
        return question

    def _confirms(self, transcript: str) -> bool:
        words = _words(transcript)
        pin = self._settings.confirmation_pin
        if pin is not None:
            spoken = _digits(words)
            expected = "".join(c for c in pin.reveal() if c.isdigit())
            return bool(spoken) and bool(expected) and hmac.compare_digest(spoken, expected)
        return " ".join(words) in YES_ANSWERS

    def _cancel(self, pending: _Pending, code: str, speech: str) -> ToolResult:
        self._log(pending.call, pending.tool, pending.arguments, pending.site,
                  status=ResultStatus.CANCELLED, code=code, duration_ms=0.0)
        return ToolResult(call=pending.call, status=ResultStatus.CANCELLED, error_code=code, speech=speech)

    def _refuse(self, call: ToolCall, tool: Tool | None, site: str, code: str, message: str, *,
                started: float) -> ToolResult:
        speech = APOLOGIES.get(code, _DEFAULT_APOLOGY)
        duration = _ms(started)
        result = ToolResult(call=call, status=ResultStatus.ERROR, data={"error": message},
                            error_code=code, speech=speech, duration_ms=duration)
        self._log(call, tool, call.arguments, site, status=result.status, code=code, duration_ms=duration,
                  message=message)
        return result

    def _execute(self, tool: Tool, arguments: dict[str, Any], call: ToolCall, site: str,
                 started: float) -> ToolResult:
        timeout = tool.timeout_s
        if timeout == _TOOL_DEFAULT_TIMEOUT_S:
            timeout = self._settings.call_timeout_s
        with self._lock:
            self._busy += 1
            saturated = self._busy > self._max_workers
        if saturated:
            _LOGGER.warning("all %d tool workers busy (stuck handlers?); %s waits", self._max_workers,
                            tool.name)
        try:
            future = self._pool.submit(contextvars.Context().run, _run, tool.handler, arguments, site)
        except RuntimeError:  # pool shut down
            with self._lock:
                self._busy -= 1
            return self._refuse(call, tool, site, "handler_failed", "router closed", started=started)
        future.add_done_callback(self._done)
        try:
            value = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return self._refuse(call, tool, site, "timeout", f"no answer within {timeout:g} s",
                                started=started)
        except ToolError as err:
            duration = _ms(started)
            speech = err.message if err.message and err.message != err.code else _DEFAULT_APOLOGY
            result = ToolResult(call=call, status=ResultStatus.ERROR, data={"error": err.message},
                                error_code=err.code, speech=speech, duration_ms=duration)
            self._log(call, tool, arguments, site, status=result.status, code=err.code, duration_ms=duration,
                      message=err.message)
            return result
        except AssistantError as err:
            return self._refuse(call, tool, site, err.code, err.message, started=started)
        except BaseException as err:  # one bad skill must never take the daemon down
            _LOGGER.error("handler of %s raised %s", tool.name, err, exc_info=err)
            return self._refuse(call, tool, site, "handler_failed", f"{type(err).__name__}: {err}"[:200],
                                started=started)
        data, reply = _normalize(value)
        if reply is None and tool.reply:
            reply = render_template(tool.reply, {**arguments, **data})
        duration = _ms(started)
        result = ToolResult(call=call, status=ResultStatus.OK, data=data,
                            speech=DONE if reply is None else reply,
                            duration_ms=duration)
        self._log(call, tool, arguments, site, status=result.status, code=None, duration_ms=duration)
        return result

    def _done(self, _future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._busy -= 1

    def _log(self, call: ToolCall, tool: Tool | None, arguments: Any, site: str, *, status: ResultStatus,
             code: str | None, duration_ms: float, message: str = "") -> None:
        level = logging.WARNING if status is ResultStatus.ERROR else logging.INFO
        if not _LOGGER.isEnabledFor(level):
            return
        masked = mask_arguments(arguments, tool.secret_args if tool else frozenset())
        name = tool.name if tool else str(call.name)[:64]
        record = {"tool": name, "site": site, "outcome": str(status), "code": code,
                  "duration_ms": round(duration_ms, 3), "arguments": masked}
        args_text = json.dumps(masked, default=repr, ensure_ascii=False)
        if len(args_text) > 300:
            args_text = args_text[:297] + "..."
        _LOGGER.log(level, "tool=%s site=%s outcome=%s code=%s duration_ms=%.2f arguments=%s%s",
                    name, site, status, code or "-", duration_ms, args_text,
                    f" error={message[:200]!r}" if message else "",
                    extra={"tool_call": record})


# --------------------------------------------------------------------------- helpers

def _run(handler: Callable[..., Any], arguments: dict[str, Any], site: str) -> Any:
    set_current_site(site)
    return handler(**arguments)


def _at_site(site: str, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` with ``current_site()`` reading ``site`` (the caller's context untouched)."""
    def run() -> _T:
        set_current_site(site)
        return function(*args)

    return contextvars.Context().run(run)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _words(transcript: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", transcript.lower()).split()


def _digits(words: list[str]) -> str:
    out: list[str] = []
    for word in words:
        if word.isascii() and word.isdigit():
            out.append(word)
        elif word in _DIGIT_WORDS:
            out.append(_DIGIT_WORDS[word])
        else:
            return ""  # anything but digits is not a PIN
    return "".join(out)


def mask_arguments(arguments: Any, secret: frozenset[str]) -> Any:
    """A copy of ``arguments`` with the values of ``secret`` names replaced by ``***``."""
    if not isinstance(arguments, Mapping):
        return repr(arguments)[:100]
    return {str(k)[:64]: ("***" if k in secret else v) for k, v in arguments.items()}


def render_template(template: str, fields: Mapping[str, Any]) -> str | None:
    """``template`` filled from ``fields``, or None when a field is missing or malformed.

    Only plain ``{name}`` and ``{name:spec}`` fields are allowed (no attribute or
    index access). Whole floats read as integers ("21" not "21.0").
    """
    try:
        parts: list[str] = []
        for literal, field_name, spec, conversion in _FORMATTER.parse(template):
            parts.append(literal)
            if field_name is None:
                continue
            if not field_name.isidentifier() or field_name not in fields or conversion or "{" in (spec or ""):
                return None
            value = fields[field_name]
            parts.append(format(value, spec) if spec else _speakable(value))
        return "".join(parts)
    except (ValueError, TypeError):
        return None


def _speakable(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_speakable(v) for v in value)
    return str(value)


def _normalize(value: Any) -> tuple[dict[str, Any], str | None]:
    """Handler return value -> (JSON-able data, speech override)."""
    if value is None:
        return {}, None
    if isinstance(value, str):
        return {"value": value}, value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}, None
    return {"value": jsonable(value)}, None


def jsonable(value: Any, _depth: int = 0) -> Any:
    """``value`` as plain JSON data (enums by value, dates ISO, unknown objects as text)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth > 8:
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, _depth + 1)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, _depth + 1) for v in value]
    return str(value)
