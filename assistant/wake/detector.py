"""Wake-word detection with pymicro-wakeword (microWakeWord TFLite models).

One feature front end (10 ms steps of 40 mel features) feeds every loaded model, so
several words cost little more than one. Built-in models: okay_nabu, hey_jarvis,
hey_mycroft, alexa; a custom microWakeWord model is given by its .json path (the .tflite
named inside sits beside it).

The detector runs on every 30 ms frame for as long as the daemon lives, so each model
step is driven here directly through the TFLite C calls the model object exposes
(quantize, invoke, dequantize, a plain sliding-window mean), which takes about 40 %
less time than the library's generic per-step helper (whose ``statistics.mean`` alone
is a quarter of a step) and gives the same probabilities. A model object without those
attributes uses the helper.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from assistant.config import WakeSettings, WakeWordSettings
from assistant.errors import ConfigError, WakeError
from assistant.types import SAMPLE_RATE, SAMPLE_WIDTH
from assistant.wake.refractory import RefractoryGate, WordRule

_LOGGER = logging.getLogger(__name__)

BUILTIN_WORDS = ("okay_nabu", "hey_jarvis", "hey_mycroft", "alexa")


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


_STEP_ATTRIBUTES = (
    "lib", "interpreter", "input_tensor", "output_tensor", "stride", "sliding_window_size",
    "input_scale", "input_zero_point", "input_dtype", "output_scale", "output_zero_point", "output_dtype",
)


@dataclass
class _Word:
    model: Any  # pymicro_wakeword.MicroWakeWord
    kind: Literal["wake", "stop"]
    direct: bool = False
    """Steps run through the TFLite calls here (see the module doc), not the model's helper."""
    pending: list[np.ndarray] = field(default_factory=list)
    """Feature vectors waiting for a whole stride."""
    window: deque[float] = field(default_factory=deque)
    """The last ``sliding_window_size`` step probabilities."""
    output: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        model = self.model
        self.direct = all(hasattr(model, name) for name in _STEP_ATTRIBUTES)
        if self.direct:
            self.window = deque(maxlen=max(1, int(model.sliding_window_size)))
            self.output = np.zeros(1, dtype=model.output_dtype)
            # Only the usual one-probability output is handled here; anything else takes the helper.
            self.direct = int(model.lib.TfLiteTensorByteSize(model.output_tensor)) == self.output.nbytes

    def step(self, features: np.ndarray) -> float | None:
        """One 10 ms feature vector in; the windowed probability (0.0 until the window fills)."""
        model = self.model
        if not self.direct:
            probability = model.process_streaming_prob(features)
            return None if probability is None else float(probability)
        interpreter = model.interpreter
        if not interpreter:
            return None  # closed
        pending = self.pending
        pending.append(features)
        if len(pending) < model.stride:
            return 0.0
        stacked = np.concatenate(pending, axis=1)
        pending.clear()
        quantized = np.round(stacked / model.input_scale + model.input_zero_point).astype(model.input_dtype)
        lib, output = model.lib, self.output
        lib.TfLiteTensorCopyFromBuffer(model.input_tensor, quantized.ctypes.data, quantized.nbytes)
        lib.TfLiteInterpreterInvoke(interpreter)
        lib.TfLiteTensorCopyToBuffer(model.output_tensor, output.ctypes.data, output.nbytes)
        window = self.window
        window.append((float(output[0]) - model.output_zero_point) * model.output_scale)
        if len(window) < (window.maxlen or 1):
            return 0.0
        return sum(window) / len(window)

    def reset(self) -> None:
        """Forget the stride and window, and the model's streaming state."""
        self.pending.clear()
        self.window.clear()
        self.model.reset()


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
                probability = entry.step(features)
                if probability is None:
                    continue
                if found is None and self.gate.decide(word_id, probability, end):
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
            entry.reset()

    def close(self) -> None:
        """Free the TFLite interpreters."""
        for entry in self._words.values():
            entry.model.close()
        self._words.clear()
