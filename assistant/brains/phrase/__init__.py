"""The phrase brain: pocketsphinx grammar recognition + Home Assistant sentence templates (hassil).

The brain is imported on first use (PEP 562): the decoder's side process imports this package
too, and needs neither hassil nor the templates (about 15 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.brains.phrase.brain import NOT_UNDERSTOOD, PhraseBrain, make_phrase_brain

__all__ = ["NOT_UNDERSTOOD", "PhraseBrain", "make_phrase_brain"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from assistant.brains.phrase import brain  # noqa: PLC0415 - lazy on purpose

        return getattr(brain, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
