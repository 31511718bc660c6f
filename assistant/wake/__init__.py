"""Wake-word detection: microWakeWord models with a pure per-word refractory gate."""

from assistant.errors import WakeError
from assistant.wake.detector import BUILTIN_WORDS, Detection, WakeDetector
from assistant.wake.refractory import RefractoryGate, WordRule

__all__ = ["BUILTIN_WORDS", "Detection", "RefractoryGate", "WakeDetector", "WakeError", "WordRule"]
