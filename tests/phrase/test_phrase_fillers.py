"""The shipped filler ranking matches what the bundled language model says today."""

from __future__ import annotations

from assistant.brains.phrase.decoder import frequent_words, ranked_fillers
from assistant.brains.phrase.pronounce import default_pronouncer


def test_shipped_filler_ranking_matches_the_language_model() -> None:
    # If this fails after a pocketsphinx upgrade: run scripts/make_phrase_fillers.py.
    words = default_pronouncer().words()
    assert ranked_fillers(words) == frequent_words(words)
