"""Home Assistant ``value_template`` strings, evaluated in a sandboxed Jinja environment.

Templates come from discovery payloads, so they are untrusted: they run in Jinja's
``SandboxedEnvironment`` with no globals, a short list of filters, no loops, macros,
imports or ``**``, a bound on string/list repetition, and a size limit. Supported:
``value``, ``value_json.x`` / ``value_json['x']``, ``| int``, ``| float``, ``| round``,
``| default``, ``| lower`` / ``upper`` / ``trim`` / ``string`` / ``abs``, comparisons and
inline ``if``/``else`` (also ``{% if %}`` blocks). Anything else - or any failure - gives
``None`` (state unknown), never an exception.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

_LOGGER = logging.getLogger(__name__)

MAX_TEMPLATE_CHARS = 2000
_MAX_REPEAT = 10_000
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
    nodes.Assign,
    nodes.AssignBlock,
    nodes.With,
    nodes.Scope,
    nodes.Pow,
    nodes.ScopedEvalContextModifier,
)


_NO_DEFAULT: Any = object()


def _fail_or(default: Any, value: Any, kind: str) -> Any:
    if default is _NO_DEFAULT:
        # Like HA: without a default, a value that does not convert is a template error.
        raise ValueError(f"cannot convert {str(value)[:40]!r} to {kind}")
    return default


def _to_int(value: Any, default: Any = _NO_DEFAULT, base: int = 10) -> Any:
    """HA's ``int`` filter: a whole number, else ``default`` (an error when none is given)."""
    try:
        if isinstance(value, str):
            return int(value.strip(), base) if base != 10 else int(float(value.strip()))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    except (TypeError, ValueError, OverflowError):
        pass
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
    intercepted_binops = frozenset({"*", "**", "%"})

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
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(count, int)
                    and count * len(seq) > _MAX_REPEAT
                ):
                    raise SecurityError("repetition too large in a value template")
            return operator.mul(left, right)
        return super().call_binop(context, op, left, right)


def _make_env() -> _Env:
    env = _Env(undefined=StrictUndefined, autoescape=False)
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
    }
    for name in list(env.filters):
        if name not in keep:
            del env.filters[name]
    env.filters["int"] = _to_int
    env.filters["float"] = _to_float
    env.tests = {
        k: v for k, v in env.tests.items() if k in {"defined", "undefined", "none", "number", "string"}
    }
    return env


_ENV = _make_env()


@lru_cache(maxsize=512)
def _compile(source: str) -> Callable[..., str] | None:
    """Compiled render function, or None when the template is unsupported."""
    if len(source) > MAX_TEMPLATE_CHARS:
        _LOGGER.warning("value template too long (%d characters); state stays unknown", len(source))
        return None
    try:
        tree = _ENV.parse(source)
        for node in tree.find_all(_FORBIDDEN_NODES):
            _LOGGER.warning("unsupported value template (%s); state stays unknown", type(node).__name__)
            return None
        for node in tree.find_all((nodes.Filter, nodes.Test)):
            table = _ENV.filters if isinstance(node, nodes.Filter) else _ENV.tests
            if node.name not in table:
                _LOGGER.warning(
                    "unsupported filter or test %r in a value template; state stays unknown", node.name
                )
                return None
        template = _ENV.from_string(tree)
    except (TemplateError, RecursionError, MemoryError) as err:
        _LOGGER.warning("bad value template: %s; state stays unknown", err)
        return None
    return template.render


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
        return render(**variables).strip()
    except Exception as err:  # an untrusted template can fail in any way; never let it out
        _LOGGER.debug("value template failed on %.80r: %s", payload, err)
        return None


def template_supported(template: str) -> bool:
    """True when ``template`` compiles under the sandbox's rules."""
    return _compile(template) is not None
