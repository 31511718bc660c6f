"""Wake-word detection with pymicro-wakeword (microWakeWord TFLite models).

One feature front end (10 ms steps of 40 mel features) feeds every loaded model, so
several words cost little more than one. Built-in models: okay_nabu, hey_jarvis,
hey_mycroft, alexa; a custom microWakeWord model is given by its .json path (the .tflite
named inside sits beside it).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.config import WakeSettings, WakeWordSettings
from assistant.errors import AssistantError, ConfigError
from assistant.types import SAMPLE_RATE, SAMPLE_WIDTH
from assistant.wake.refractory import RefractoryGate, WordRule

_LOGGER = logging.getLogger(__name__)

BUILTIN_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")


class WakeError(AssistantError):
    """The wake-word engine or a model could not be loaded."""

    code = "wake_unavailable"


@dataclass(frozen=True, slots=True)
class Detection:
    """One wake (or stop) word heard."""

    word: str
    """Model id, e.g. ``okay_nabu``."""
    phrase: str
    """The spoken phrase the model was trained on, e.g. ``Okay Nabu``."""
    probability: float
    timestamp: float
    """Stream time (seconds) at the end of the audio that triggered it."""
    kind: Literal["wake", "stop"] = "wake"


@dataclass
class _Word:
    model: Any  # pymicro_wakeword.MicroWakeWord
    kind: Literal["wake", "stop"]


def _load_model(spec: str) -> Any:
    """A MicroWakeWord from a built-in name or a .json config path."""
    from pymicro_wakeword import MicroWakeWord, Model  # noqa: PLC0415 - native library, loaded on use

    try:
        if spec.endswith(".json") or "/" in spec:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise ConfigError([f"wake word model {spec!r}: file not found"])
            return MicroWakeWord.from_config(path)
        try:
            builtin = Model(spec)
        except ValueError:
            raise ConfigError(
                [f"wake word {spec!r} is not built in ({', '.join(BUILTIN_WORDS)}) nor a .json path"]
            ) from None
        return MicroWakeWord.from_builtin(builtin)
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as err:
        raise WakeError(f"cannot load wake word model {spec!r}: {err}") from err


class WakeDetector:
    """Several wake words (and stop words) at once over 16 kHz int16 frames."""

    def __init__(
        self,
        words: Sequence[WakeWordSettings] = (WakeWordSettings(),),
        stop_words: Sequence[str] = (),
    ) -> None:
        if importlib.util.find_spec("pymicro_wakeword") is None:
            raise WakeError("pymicro-wakeword is not installed")
        from pymicro_wakeword import MicroWakeWordFeatures  # noqa: PLC0415

        self._features: Any = MicroWakeWordFeatures()
        self._words: dict[str, _Word] = {}
        rules: dict[str, WordRule] = {}
        entries: list[tuple[str, float | None, float, Literal["wake", "stop"]]] = [
            (w.model, w.threshold, w.refractory_s, "wake") for w in words
        ]
        entries += [(s, None, 2.0, "stop") for s in stop_words]
        for spec, threshold, refractory_s, kind in entries:
            model = _load_model(spec)
            word_id = str(model.id)
            if word_id in self._words:
                continue  # the same model listed twice (e.g. as wake and stop word): wake wins
            cutoff = float(model.probability_cutoff) if threshold is None else threshold
            if not 0.0 < cutoff < 1.0:
                raise ConfigError([f"wake word {spec!r}: threshold must be between 0 and 1, got {cutoff}"])
            self._words[word_id] = _Word(model, kind)
            rules[word_id] = WordRule(cutoff, refractory_s)
            _LOGGER.info("Wake word %s (%s): %s, threshold %.2f", word_id, model.wake_word, kind, cutoff)
        self.gate = RefractoryGate(rules)

    @classmethod
    def from_settings(cls, settings: WakeSettings) -> WakeDetector:
        """The words and stop words of ``wake.*``."""
        return cls(settings.words, settings.stop_words)

    @property
    def words(self) -> dict[str, str]:
        """Loaded word ids and their kind (``wake`` / ``stop``)."""
        return {word_id: entry.kind for word_id, entry in self._words.items()}

    def process(self, pcm: bytes, timestamp: float) -> Detection | None:
        """Feed one frame (16 kHz mono int16) starting at stream time ``timestamp``.

        Returns the first detection in this frame, or None.
        """
        end = timestamp + len(pcm) / (SAMPLE_RATE * SAMPLE_WIDTH)
        found: Detection | None = None
        for features in self._features.process_streaming(pcm):
            for word_id, entry in self._words.items():
                probability = entry.model.process_streaming_prob(features)
                if probability is None:
                    continue
                if found is None and self.gate.decide(word_id, float(probability), end):
                    phrase = str(entry.model.wake_word)
                    found = Detection(word_id, phrase, float(probability), end, entry.kind)
        return found

    def suppress(self, timestamp: float) -> None:
        """Start every word's refractory period at ``timestamp`` (no detection)."""
        self.gate.suppress(timestamp)

    def reset(self) -> None:
        """Drop buffered audio and model state (after a gap in the audio, e.g. our own speech)."""
        self._features.reset()
        for entry in self._words.values():
            entry.model.reset()

    def close(self) -> None:
        """Free the TFLite interpreters."""
        for entry in self._words.values():
            entry.model.close()
        self._words.clear()
