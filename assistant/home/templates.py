"""Home Assistant ``value_template`` strings, evaluated in a sandboxed Jinja environment.

Templates come from discovery payloads, so they are untrusted: they run in Jinja's
``SandboxedEnvironment`` with no globals, a short list of filters, no loops, macros,
imports or ``**``, a bound on string/list repetition, and a size limit. Supported:
``value``, ``value_json.x`` / ``value_json['x']``, ``| int``, ``| float``, ``| round``,
``| default``, ``| lower`` / ``upper`` / ``trim`` / ``string`` / ``abs`` / ``join``, comparisons,
inline ``if``/``else`` (also ``{% if %}`` blocks) and ``{% set name = ... %}`` (Zigbee2MQTT's
mode tables). ``render_command`` renders HA's ``*_command_template`` strings with ``value``
and the command's variables. Anything else - or any failure - gives
``None`` (state unknown), never an exception.

Memory is bounded in bytes, not in elements: a repetition, ``+``, ``~``, a filter that
turns its argument into text, and every ``{{ }}`` output first measure what they would
build (``MAX_INTERMEDIATE_CHARS``), and the rendered text is at most ``MAX_OUTPUT_BYTES``
of UTF-8. ``{{ [value] * 10000 }}`` on a 60 KB payload is refused before the 600 MB
string exists; the refusal is logged once per template.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

_LOGGER = logging.getLogger(__name__)

MAX_TEMPLATE_CHARS = 2000
MAX_OUTPUT_BYTES = 4096
"""Longest rendered value (UTF-8); a state is at most 255 characters anyway."""
MAX_INTERMEDIATE_CHARS = 131_072
"""Largest string or sequence (total characters of its items) a template may build."""
_MAX_INT_BITS = 4096
_WARNED_MAX = 256
_FORBIDDEN_NODES = (
    nodes.For,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.Import,
    nodes.FromImport,
    nodes.Include,
    nodes.Extends,
    nodes.Block,
    nodes.AssignBlock,
    nodes.With,
    nodes.Scope,
    nodes.Pow,
    nodes.ScopedEvalContextModifier,
)


_NO_DEFAULT: Any = object()


class TemplateTooLarge(SecurityError):
    """A template tried to build a value larger than the bounds of this module."""


def _size(value: Any, limit: int = MAX_INTERMEDIATE_CHARS) -> int:
    """Characters ``value`` would take as text (items of containers counted in full, shared or not).

    Stops counting once ``limit`` is passed, so measuring a huge value costs little.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item) + 4  # quotes and a separator when shown inside a container
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 3  # about the decimal digits
        else:
            total += 24
        if total > limit:
            return total
    return total


def _bounded(value: Any, what: str) -> Any:
    if _size(value) > MAX_INTERMEDIATE_CHARS:
        raise TemplateTooLarge(f"{what} would be larger than {MAX_INTERMEDIATE_CHARS} characters")
    return value


def _fail_or(default: Any, value: Any, kind: str) -> Any:
    if default is _NO_DEFAULT:
        # Like HA: without a default, a value that does not convert is a template error.
        raise ValueError(f"cannot convert {str(value)[:40]!r} to {kind}")
    return default


def _to_int(value: Any, default: Any = _NO_DEFAULT, base: int = 10) -> Any:
    """HA's ``int`` filter: a whole number, else ``default`` (an error when none is given)."""
    result: int | None = None
    try:
        if isinstance(value, str):
            result = int(value.strip(), base) if base != 10 else int(float(value.strip()))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            result = int(value)
    except (TypeError, ValueError, OverflowError):
        pass
    if result is not None and result.bit_length() <= _MAX_INT_BITS:
        return result
    return _fail_or(default, value, "int")


def _to_float(value: Any, default: Any = _NO_DEFAULT) -> Any:
    """HA's ``float`` filter: a finite number, else ``default`` (an error when none is given)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            result = float(value)
        except (ValueError, OverflowError):
            pass
        else:
            if math.isfinite(result):
                return result
    return _fail_or(default, value, "float")


# Methods a template may call on values: none of them can build a large result from a small input.
_SAFE_METHODS = frozenset(
    {
        "split",
        "rsplit",
        "strip",
        "lstrip",
        "rstrip",
        "lower",
        "upper",
        "title",
        "capitalize",
        "startswith",
        "endswith",
        "isdigit",
        "isnumeric",
        "get",
        "keys",
        "values",
        "items",
        "count",
        "find",
    }
)


class _Env(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if owner is None or not isinstance(owner, (str, dict, list)) or name not in _SAFE_METHODS:
            raise SecurityError(f"calling {name or type(__obj).__name__!s} is not allowed in value templates")
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            raise SecurityError("power is not allowed in value templates")
        if op == "%":
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
                raise SecurityError("% formatting is not allowed in value templates")
            return operator.mod(left, right)
        if op == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    # Bytes, not elements: [value] * 10000 is one element of 60 KB, 10000 times.
                    per_copy = _size(seq, MAX_INTERMEDIATE_CHARS // max(1, count))
                    if count > 0 and per_copy * count > MAX_INTERMEDIATE_CHARS:
                        raise TemplateTooLarge(
                            f"a repetition would build over {per_copy * count} characters"
                            f" (limit {MAX_INTERMEDIATE_CHARS})"
                        )
            if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise TemplateTooLarge(f"a product would exceed {_MAX_INT_BITS} bits")
            return operator.mul(left, right)
        if op == "+":
            seqs = (str, list, tuple)
            if (
                isinstance(left, seqs)
                and isinstance(right, seqs)
                and _size(left) + _size(right) > MAX_INTERMEDIATE_CHARS
            ):
                raise TemplateTooLarge(f"a + would build over {MAX_INTERMEDIATE_CHARS} characters")
            return operator.add(left, right)
        return super().call_binop(context, op, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _concat(items: list[Any]) -> str:
    """``a ~ b ~ c`` with its size measured before any text is made."""
    if sum(_size(i) for i in items) > MAX_INTERMEDIATE_CHARS:
        raise TemplateTooLarge(f"a ~ would build over {MAX_INTERMEDIATE_CHARS} characters")
    return "".join(str(i) for i in items)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output is measured before it is turned into text."""
    size = len(value) if isinstance(value, str) else _size(value, MAX_OUTPUT_BYTES)
    if size > MAX_OUTPUT_BYTES:
        raise TemplateTooLarge(f"output larger than {MAX_OUTPUT_BYTES} bytes")
    return value


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that measures its input before turning it into text."""

    skip = 1 if hasattr(func, "jinja_pass_arg") else 0  # context/environment comes first

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            _bounded(args[skip], f"the input of | {name}")
        return func(*args, **kwargs)

    if skip:
        guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


class _BoundConcat(NodeTransformer):
    """Rewrites ``a ~ b`` into the size-checked ``[a, b] | _concat`` before compiling."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        items = [self.visit(n) for n in node.nodes]
        return nodes.Filter(
            nodes.List(items, lineno=node.lineno), "_concat", [], [], None, None, lineno=node.lineno
        )


_TEXT_FILTERS = frozenset({"string", "lower", "upper", "trim", "title", "capitalize", "join"})
"""Kept filters that turn their input into text (a list's text can be far larger than the list)."""


def _make_env() -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
    env.globals.clear()
    keep = {
        "default",
        "d",
        "round",
        "lower",
        "upper",
        "trim",
        "string",
        "abs",
        "title",
        "capitalize",
        "length",
        "first",
        "last",
        "min",
        "max",
        "bool",
        "join",
    }
    for name in list(env.filters):
        if name not in keep:
            del env.filters[name]
        elif name in _TEXT_FILTERS:
            env.filters[name] = _guard_filter(name, env.filters[name])
    env.filters["int"] = _to_int
    env.filters["float"] = _to_float
    env.filters["_concat"] = _concat
    env.tests = {
        k: v for k, v in env.tests.items() if k in {"defined", "undefined", "none", "number", "string"}
    }
    return env


_ENV = _make_env()


@lru_cache(maxsize=512)
def _compile(source: str) -> Callable[..., Iterator[str]] | None:
    """Compiled render function, or None when the template is unsupported."""
    if len(source) > MAX_TEMPLATE_CHARS:
        _LOGGER.warning("value template too long (%d characters); state stays unknown", len(source))
        return None
    try:
        tree = _ENV.parse(source)
        for node in tree.find_all(_FORBIDDEN_NODES):
            _LOGGER.warning("unsupported value template (%s); state stays unknown", type(node).__name__)
            return None
        for node in tree.find_all(nodes.Assign):
            if not isinstance(node.target, nodes.Name):  # {% set x = ... %} only, no ns.attr
                _LOGGER.warning("unsupported value template (set of %s)", type(node.target).__name__)
                return None
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            table = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
            if node.name not in table:
                _LOGGER.warning(
                    "unsupported filter or test %r in a value template; state stays unknown", node.name
                )
                return None
        bounded = _BoundConcat().visit(tree)
        if not isinstance(bounded, nodes.Template):
            return None
        template = _ENV.from_string(bounded)
    except (TemplateError, RecursionError, MemoryError) as err:
        _LOGGER.warning("bad value template: %s; state stays unknown", err)
        return None
    return template.generate


_warned: dict[str, None] = {}


def _warn_too_large(template: str, err: Exception) -> None:
    """One warning per template (then debug), so a chatty device cannot flood the log."""
    if template in _warned:
        _LOGGER.debug("value template %.60r refused again: %s", template, err)
        return
    if len(_warned) >= _WARNED_MAX:
        _warned.pop(next(iter(_warned)))
    _warned[template] = None
    _LOGGER.warning("value template %.60r refused the value: %s; state stays unknown", template, err)


def render_value(template: str | None, payload: str) -> str | None:
    """Apply a value template to a payload text; None when it fails (unknown state).

    Without a template the payload itself is the value.
    """
    if template is None:
        return payload
    render = _compile(template)
    if render is None:
        return None
    variables: dict[str, Any] = {"value": payload}
    # Without JSON, value_json stays undefined: a template that uses it fails cleanly.
    with contextlib.suppress(ValueError, RecursionError):
        variables["value_json"] = json.loads(payload)
    try:
        text = _render_bounded(render, variables)
    except TemplateTooLarge as err:
        _warn_too_large(template, err)
        return None
    except Exception as err:  # an untrusted template can fail in any way; never let it out
        _LOGGER.debug("value template failed on %.80r: %s", payload, err)
        return None
    return text.strip()


def _render_bounded(render: Any, variables: Mapping[str, Any]) -> str:
    """The rendered text, refused (TemplateTooLarge) as soon as it passes MAX_OUTPUT_BYTES."""
    parts: list[str] = []
    size = 0
    for chunk in render(**variables):
        size += len(chunk.encode("utf-8", "surrogatepass"))
        if size > MAX_OUTPUT_BYTES:
            raise TemplateTooLarge(f"output larger than {MAX_OUTPUT_BYTES} bytes")
        parts.append(chunk)
    return "".join(parts)


def render_command(template: str, value: Any, variables: Mapping[str, Any] | None = None) -> str | None:
    """Render a ``*_command_template`` the way HA's MqttCommandTemplate does: ``value`` plus
    the variables of that command (``position``, ``entity_id``, ...); the text, stripped.

    None when the template is unsupported or fails (the command is then refused).
    """
    render = _compile(template)
    if render is None:
        return None
    context: dict[str, Any] = {**(variables or {}), "value": value}
    try:
        text = _render_bounded(render, context)
    except TemplateTooLarge as err:
        _warn_too_large(template, err)
        return None
    except Exception as err:  # untrusted: any failure refuses the command, never escapes
        _LOGGER.warning("command template %.60r failed on %.40r: %s", template, value, err)
        return None
    return text.strip()


def template_supported(template: str) -> bool:
    """True when ``template`` compiles under the sandbox's rules."""
    return _compile(template) is not None
