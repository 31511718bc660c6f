"""The shape of a tool, shared by the registry, the router, skills and home control.

A tool is a name, a description, a JSON-Schema ``parameters`` object, a handler,
a spoken-reply template and flags. Only the router calls handlers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[..., Any]
"""Called by the router with validated keyword arguments.

Returns a JSON-able mapping (merged into the reply template's fields), a dataclass,
a string (used as the spoken reply) or None; raises ``assistant.errors.ToolError``
to fail with a code.
"""

SensitivityRule = Callable[[Mapping[str, Any]], bool]
"""Decides per call (validated arguments) whether it needs confirmation."""

QuestionRule = Callable[[Mapping[str, Any]], "str | None"]
"""The confirmation question of one call (validated arguments); None falls back to ``confirm``."""


@dataclass(frozen=True)
class Tool:
    """One callable capability that a brain may ask for."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    """JSON Schema of type object: properties, required, additionalProperties false."""
    handler: Handler
    reply: str = ""
    """Spoken-reply template, ``str.format`` fields from arguments and result data."""
    sensitive: bool | SensitivityRule = False
    """True, or a rule over the call's arguments: such calls need a spoken confirmation."""
    confirm: str = ""
    """Confirmation question template (``Do you want me to {action}?`` style)."""
    ask: QuestionRule | None = None
    """Per-call question, when one template cannot name the action (a tool that unlocks one
    entity and opens another asks "unlock the front door?", not "unlock or open ...?")."""
    sentences: tuple[str, ...] = ()
    """hassil-style sentence templates / examples for the phrase brain."""
    timeout_s: float = 5.0
    secret_args: frozenset[str] = field(default_factory=frozenset)
    """Argument names masked in logs."""
    source: str = ""
    """Where the tool was declared (skill file path, ``home``, ...), for messages."""

    def is_sensitive(self, arguments: Mapping[str, Any]) -> bool:
        """Whether this call (with validated arguments) needs confirmation."""
        if callable(self.sensitive):
            return bool(self.sensitive(arguments))
        return bool(self.sensitive)

