"""Kept for tests/e2e/test_e2e_evening.py, which imports speech from here: see tests.support.pipeline."""

from tests.support.pipeline import espeak16, piper16

__all__ = ["espeak16", "piper16"]
