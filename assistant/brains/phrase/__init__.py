"""The phrase brain: pocketsphinx grammar recognition + Home Assistant sentence templates (hassil)."""

from assistant.brains.phrase.brain import NOT_UNDERSTOOD, PhraseBrain, make_phrase_brain

__all__ = ["NOT_UNDERSTOOD", "PhraseBrain", "make_phrase_brain"]
