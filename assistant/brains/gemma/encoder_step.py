"""Drive the per-step audio encoder graph (``onnx/audio_encoder_step.onnx``) with ONNX Runtime.

The graph is made once from a Hugging Face checkpoint by scripts/convert_audio_encoder.py.
It encodes only the newly final soft tokens of an utterance, carrying the conformer's
per-layer state between calls (reference gemma4-audio-streaming.md section 5, state (b)):

- inputs: ``input_features`` [1, 4 + 4n, mel] and ``input_features_mask`` [1, 4 + 4n]
  (the mel frames ``[4·done - 4, 4·(done + n))`` of the utterance; frames before the
  utterance or past its end are zero with a false mask), ``past_tokens`` [1] int64 (= done),
  ``past_keys`` / ``past_values`` [layers, context, hidden] (the last scaled keys and
  values of each layer's attention), ``past_conv`` [layers, kernel - 1, hidden] (the last
  GLU rows of each layer's depthwise conv);
- outputs: ``audio_features`` [n, text hidden] (after the multimodal embedder, what the
  stock ``audio_encoder`` graph returns for those tokens) and ``present_keys``,
  ``present_values``, ``present_conv``.

The encoder is causal (SSCP without lookahead, causal attention, causal conv), so
stepping gives the whole-clip tokens to fp32 rounding; tests/gemma/test_gemma_encoder_step.py
checks it against the stock graph on the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from assistant.brains.gemma.features import AudioFeatures
from assistant.errors import BrainError, ModelFilesError

STEP_INPUTS = (
    "input_features",
    "input_features_mask",
    "past_tokens",
    "past_keys",
    "past_values",
    "past_conv",
)
STEP_OUTPUTS = ("audio_features", "present_keys", "present_values", "present_conv")
OVERLAP_FRAMES = 4
"""Mel frames before the first new token's group that the two stride-2 convolutions need."""
FRAMES_PER_TOKEN = 4


@dataclass(frozen=True)
class EncoderState:
    """The conformer's carried state after ``done`` soft tokens (immutable: every step makes a new one)."""

    done: int
    keys: npt.NDArray[Any]
    values: npt.NDArray[Any]
    conv: npt.NDArray[Any]


def window_start(done: int, hop: int) -> tuple[int, int]:
    """(first sample, first frame) of a feature window that holds the next step's frames.

    The next step reads frames from ``f = 4·done - 4``. The extractor's frame i covers
    samples ``[hop·(i-1), hop·(i+1))`` (after its ``hop`` zeros of semicausal padding), and
    is valid iff sample ``hop·(i+1)`` exists. Features computed on the PCM from sample
    ``hop·m`` therefore give utterance frames m + 1, m + 2, ... exactly and frame m wrongly
    (half padding): with m = f - 1 that frame is never read.
    """
    frame = FRAMES_PER_TOKEN * done - OVERLAP_FRAMES - 1
    if frame <= 0:
        return 0, 0
    return hop * frame, frame


class StepEncoder:
    """One step graph session; stateless itself (the caller keeps the ``EncoderState``)."""

    def __init__(self, session: Any) -> None:
        inputs = {arg.name: arg for arg in session.get_inputs()}
        outputs = {arg.name for arg in session.get_outputs()}
        missing = [n for n in STEP_INPUTS if n not in inputs] + [n for n in STEP_OUTPUTS if n not in outputs]
        if missing:
            raise ModelFilesError(f"audio_encoder_step graph lacks {', '.join(missing)}")
        self.session = session
        self._shapes: dict[str, tuple[int, ...]] = {}
        for name in ("past_keys", "past_values", "past_conv"):
            shape = inputs[name].shape
            if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
                raise ModelFilesError(f"audio_encoder_step: {name} needs a static 3-D shape, has {shape}")
            self._shapes[name] = tuple(int(d) for d in shape)

    def start(self) -> EncoderState:
        """State before the utterance's first token."""
        zeros = {n: np.zeros(s, dtype=np.float32) for n, s in self._shapes.items()}
        return EncoderState(0, zeros["past_keys"], zeros["past_values"], zeros["past_conv"])

    def step(
        self, state: EncoderState, features: AudioFeatures, upto: int, *, first_frame: int = 0
    ) -> tuple[npt.NDArray[Any], EncoderState]:
        """Soft tokens ``[state.done, upto)`` of the utterance whose frames (from frame 0) are ``features``.

        Frames the clip does not have yet are zero with a false mask, as the offline
        extractor pads them; only tokens that are final (or the utterance's last ones at
        the end of speech) should be asked for. ``first_frame`` is the utterance frame that
        ``features`` starts at (a window: see ``window_start``).
        """
        count = upto - state.done
        if count <= 0:
            raise ValueError(f"nothing to encode: {state.done} tokens done, asked up to {upto}")
        start = FRAMES_PER_TOKEN * state.done - OVERLAP_FRAMES
        end = FRAMES_PER_TOKEN * upto
        frames = features.features[0]
        mask = features.mask[0]
        width = end - start
        chunk = np.zeros((1, width, frames.shape[-1]), dtype=np.float32)
        valid = np.zeros((1, width), dtype=bool)
        lo, hi = max(start, first_frame), min(end, first_frame + frames.shape[0])
        if hi > lo:
            chunk[0, lo - start : hi - start] = frames[lo - first_frame : hi - first_frame]
            valid[0, lo - start : hi - start] = mask[lo - first_frame : hi - first_frame]
        out, keys, values, conv = self.session.run(
            list(STEP_OUTPUTS),
            {
                "input_features": chunk,
                "input_features_mask": valid,
                "past_tokens": np.array([state.done], dtype=np.int64),
                "past_keys": state.keys,
                "past_values": state.values,
                "past_conv": state.conv,
            },
        )
        if out.shape[0] != count:
            raise BrainError(
                f"audio_encoder_step returned {out.shape[0]} soft tokens, expected {count}",
                code="audio_token_mismatch",
            )
        result: npt.NDArray[Any] = out
        return result, EncoderState(upto, keys, values, conv)
