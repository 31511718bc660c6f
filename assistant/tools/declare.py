"""Declaring tools from typed Python functions.

::

    @tool(reply="Timer set for {minutes} minutes.", sentences=("set [a] timer for {minutes} minute[s]",))
    def start_timer(minutes: Annotated[int, Range(1, 1440)], label: str | None = None) -> dict[str, Any]:
        '''Start a countdown timer.

        Args:
            minutes: Length of the timer in minutes.
            label: Optional name, e.g. pasta.
        '''

``@tool`` only marks the function (it stays callable as before); ``make_tool`` or
``collect_tools`` turn marked functions, or bound methods of an object, into
``Tool`` objects whose schema comes from ``schema.schema_from_function``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from assistant.tools.base import SensitivityRule, Tool
from assistant.tools.schema import SchemaError, schema_from_function

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__assistant_tool__"


@dataclass(frozen=True)
class ToolOptions:
    """What ``@tool`` records on a function until it becomes a Tool."""

    name: str | None = None
    description: str | None = None
    reply: str = ""
    sensitive: bool | SensitivityRule = False
    confirm: str = ""
    sentences: tuple[str, ...] = ()
    timeout_s: float = 5.0
    secret_args: frozenset[str] = field(default_factory=frozenset)


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    reply: str = "",
    sensitive: bool | SensitivityRule = False,
    confirm: str = "",
    sentences: Iterable[str] = (),
    timeout_s: float = 5.0,
    secret_args: Iterable[str] = (),
) -> Callable[[F], F]: ...


def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    reply: str = "",
    sensitive: bool | SensitivityRule = False,
    confirm: str = "",
    sentences: Iterable[str] = (),
    timeout_s: float = 5.0,
    secret_args: Iterable[str] = (),
) -> F | Callable[[F], F]:
    """Mark a function (or method) as a tool; usable bare (``@tool``) or with options."""
    options = ToolOptions(
        name=name,
        description=description,
        reply=reply,
        sensitive=sensitive,
        confirm=confirm,
        sentences=tuple(sentences),
        timeout_s=timeout_s,
        secret_args=frozenset(secret_args),
    )

    def mark(func: F) -> F:
        setattr(func, _MARK, options)
        return func

    if fn is not None:
        return mark(fn)
    return mark


def tool_options(obj: Any) -> ToolOptions | None:
    """The options ``@tool`` recorded on ``obj`` (function or bound method), if any."""
    options = getattr(obj, _MARK, None)
    return options if isinstance(options, ToolOptions) else None


def make_tool(fn: Callable[..., Any], *, source: str = "", **overrides: Any) -> Tool:
    """Build a Tool from a typed function or bound method; raises SchemaError."""
    options = tool_options(fn) or ToolOptions()
    if overrides:
        opts = {**options.__dict__, **overrides}
        opts["sentences"] = tuple(opts["sentences"])
        opts["secret_args"] = frozenset(opts["secret_args"])
        options = ToolOptions(**opts)
    described = schema_from_function(fn)
    name: str = options.name or str(getattr(fn, "__name__", ""))
    description = options.description or described.description
    if not description:
        raise SchemaError(f"tool {name!r} needs a description (docstring summary)")
    handler: Callable[..., Any] = fn
    if described.fill_none:
        handler = _fill_none(fn, described.fill_none)
    return Tool(
        name=name,
        description=description,
        parameters=described.parameters,
        handler=handler,
        reply=options.reply,
        sensitive=options.sensitive,
        confirm=options.confirm,
        sentences=options.sentences,
        timeout_s=options.timeout_s,
        secret_args=options.secret_args,
        source=source or _source_of(fn),
    )


def collect_tools(obj: Any, *, source: str = "") -> list[Tool]:
    """Tools from every ``@tool``-marked attribute of a module or an object (bound methods)."""
    module_name = obj.__name__ if inspect.ismodule(obj) else None
    found: list[Tool] = []
    for attr in sorted(dir(obj)):
        if attr.startswith("__"):
            continue
        try:
            value = getattr(obj, attr)
        except Exception:  # noqa: S112 - a property that fails is simply not a tool
            continue
        if tool_options(value) is None:
            continue
        # A module collects only its own functions, not tools it imported from elsewhere.
        if module_name is not None and getattr(value, "__module__", None) != module_name:
            continue
        found.append(make_tool(value, source=source))
    return found


def _fill_none(fn: Callable[..., Any], names: frozenset[str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def handler(**kwargs: Any) -> Any:
        for name in names:
            kwargs.setdefault(name, None)
        return fn(**kwargs)

    return handler


def _source_of(fn: Callable[..., Any]) -> str:
    try:
        return inspect.getsourcefile(fn) or ""
    except TypeError:
        return ""

