"""Decoding started early (while the endpointer waits out its hangover) is used by handle()
only when the finished utterance holds the same speech; otherwise handle decodes itself."""

from __future__ import annotations

import threading
from pathlib import Path

from assistant.audio.frontend import utterances_from_file
from assistant.brains.phrase.brain import PhraseBrain
from assistant.brains.phrase.testkit import RecordingRouter

SAMPLE = Path(__file__).resolve().parents[2] / "assistant" / "data" / "samples" / "two_commands.wav"


def test_prefetched_decode_is_used_for_the_same_speech(phrase_brain: PhraseBrain) -> None:
    router = RecordingRouter()
    phrase_brain.build(router)
    first, _second = utterances_from_file(SAMPLE)
    phrase_brain.prefetch(first.pcm, router)
    turn = phrase_brain.handle(first, router, threading.Event())
    assert "prefetched" in turn.flags
    assert [c.to_json() for c in turn.tool_calls] == [
        {"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}
    ]


def test_a_stale_guess_is_ignored(phrase_brain: PhraseBrain) -> None:
    router = RecordingRouter()
    phrase_brain.build(router)
    first, second = utterances_from_file(SAMPLE)
    phrase_brain.prefetch(second.pcm, router)  # the guess was about other audio
    turn = phrase_brain.handle(first, router, threading.Event())
    assert "prefetched" not in turn.flags
    assert [c.name for c in turn.tool_calls] == ["HassTurnOn"]
