"""The segmenter's early look at an utterance agrees with the finished one after trimming.

The daemon lets the brain start decoding once an utterance has been quiet for a moment,
before the endpointer closes it; that work is only reusable when both hold the same
speech on the same 10 ms grid.
"""

from __future__ import annotations

from pathlib import Path

from assistant.audio.frontend import Segmenter
from assistant.audio.sources import WavFileSource
from assistant.brains.phrase.decoder import trim_silence
from assistant.config import VadSettings
from assistant.daemon import PREFETCH_SILENCE_S

SAMPLE = Path(__file__).resolve().parents[2] / "assistant" / "data" / "samples" / "two_commands.wav"


def test_pending_audio_trims_to_the_finished_utterance() -> None:
    segmenter = Segmenter(VadSettings())
    pending: list[bytes] = []
    finished = []
    waiting = True
    with WavFileSource(SAMPLE) as source:
        for frame in source:
            done = segmenter.feed(frame)
            finished.extend(done)
            if done:
                waiting = True
            early = segmenter.pending_pcm(PREFETCH_SILENCE_S)
            if early is not None and waiting:
                pending.append(early)
                waiting = False
    finished.extend(segmenter.flush())
    assert len(finished) == 2
    assert len(pending) == 2, "each utterance offers its audio before it is closed"
    for early, utterance in zip(pending, finished, strict=True):
        assert trim_silence(early) == trim_silence(utterance.pcm)


def test_no_pending_audio_while_voiced_or_in_silence() -> None:
    segmenter = Segmenter(VadSettings())
    assert segmenter.pending_pcm(0.0) is None
    with WavFileSource(SAMPLE) as source:
        frames = list(source)
    for frame in frames[:30]:  # 0.9 s: into the first command, still speaking
        segmenter.feed(frame)
    assert segmenter.in_speech
    assert segmenter.pending_pcm(PREFETCH_SILENCE_S) is None
