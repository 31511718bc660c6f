#!/usr/bin/env python3
"""Gemma 4 audio front end: feature extraction speed (x real time), ours vs transformers, same run.

Prints, for 2 s / 5 s / 30 s clips: our numpy extractor's speed as a multiple of real
time, the transformers Gemma4AudioFeatureExtractor's (when installed), and the ratio.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.brains.gemma.features import FeatureExtractor


def _best(fn, audio: np.ndarray, repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn(audio)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    rng = np.random.default_rng(0)
    ours = FeatureExtractor()
    try:
        from transformers.models.gemma4.feature_extraction_gemma4 import Gemma4AudioFeatureExtractor

        reference = Gemma4AudioFeatureExtractor()
    except ImportError:
        reference = None
    print("clip_s  ours_ms  ours_xRT  transformers_ms  transformers_xRT  speedup_vs_transformers")
    for seconds in (2.0, 5.0, 30.0):
        audio = (rng.standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
        ours(audio)  # warm-up (FFT plans, page faults)
        t_ours = _best(ours, audio, 15)
        line = f"{seconds:6.1f}  {t_ours * 1e3:7.2f}  {seconds / t_ours:8.0f}"
        if reference is not None:
            ref = reference  # bind for the lambda

            def run_reference(a: np.ndarray, ref=ref) -> object:  # type: ignore[no-untyped-def]
                return ref([a], return_tensors="np")

            run_reference(audio)
            t_ref = _best(run_reference, audio, 15)
            line += f"  {t_ref * 1e3:15.2f}  {seconds / t_ref:16.0f}  {t_ref / t_ours:23.2f}"
        else:
            line += "  (transformers not installed)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
