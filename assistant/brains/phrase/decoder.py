"""pocketsphinx in grammar (FSG) mode, with a filler-word path for rejection.

One ``pocketsphinx.Decoder`` (acoustic model and dictionary from the wheel, no language
model) is loaded once. Grammars are installed as named FSG searches; decoding takes a
lock, so one decoder serves every thread in turn.

Rejection: every grammar gets a competing "filler" path made of the most frequent
English words that are not grammar words (ranked by the unigram probabilities of the
generic en-us language model that ships in the wheel). The filler path can start at
the beginning of the utterance or after the first few words of a command ("what's the"
+ "weather like"), loops freely, and costs ``penalty`` (natural log, before pocketsphinx's
language weight) per filler word. Speech that fits a command path wins over a
penalised filler sequence; speech that fits no command comes out with filler words
and is rejected. The penalty is the rejection threshold: lower rejects more.

Verification (``decode(..., verify=True)``): a hypothesis that got through the grammar
cleanly is checked against an unconstrained phone recognizer (pocketsphinx's allphone
search, uniform phone probabilities, a second decoder over the same acoustic model that
scores every other frame) run on the same audio. The grammar path can never score much
better than the best free phone sequence, and speech that is not one of the commands
scores much worse under the grammar than under free phones. The difference of the two
path scores per speech frame (``Decoded.confidence``) is a likelihood ratio: around -40
to 0 for a command said as the grammar expects, below about -45 for out-of-domain
speech forced into a command (synthesized test set).

Dither: the audio gets +-1 LSB of seeded noise first (see ``dither``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.brains.phrase.graph import WordGraph

if TYPE_CHECKING:
    from assistant.brains.phrase.side import SidePasses

_LOGGER = logging.getLogger(__name__)

_ALT_PRON = re.compile(r"\(\d+\)$")  # "on(2)": second pronunciation of "on"
FILLER_PREFIX = "filler_"
FILLER_WORDS = 40
"""Filler vocabulary size: more words reject more out-of-domain speech but decode slower
(80 words cost ~25 % more decoding time than 40 and rejected no more of the test set once
the phone-loop check was added)."""
FILLER_PREFIX_WORDS = 3
"""The filler path may also start after the first words of a command, up to this many
("what is the" + "capital of france"); deeper entry points reject little more and slow decoding."""
_RANKED_WORDS = 800
MIN_FILLER_PHONES = 3
"""Shorter words ("a", "or") fit almost any sound and would reject good commands."""
MIN_SAMPLES = 1600
"""Shorter input (0.1 s) is not speech worth decoding."""
"""How many frequent words are ranked (fillers are the top ones not in the grammar)."""

_DITHER_SEED = 20_240_601
_VERIFY_SEARCH = "phones"
_FORCED_SEARCH = "forced"
_VERIFY_DS = 2
CONFIDENCE_UNIT = 1e-4
"""``Decoded.confidence`` is in units of 1e-4 natural log of pocketsphinx's reported path
probability (``Hypothesis.score``) per 10 ms speech frame."""

# Beams wider than pocketsphinx's defaults (1e-48 / 7e-29): synthetic and far-field
# speech otherwise loses the right path mid-sentence and ends with no result at all
# (measured again with dither: the defaults still lose 2 of 92 commands).
# fillprob: noise and breath "words" between words cost less than the default 1e-8, so a
# burst of background noise inside a command is absorbed as noise instead of pushing the
# path into filler words (one more of 92 commands, no out-of-domain action; 1e-3 and 1e-4
# changed nothing).
_DECODER_OPTIONS = {"beam": 1e-60, "wbeam": 1e-40, "pbeam": 1e-60, "fillprob": 1e-2}


@dataclass(frozen=True)
class Decoded:
    """One decoding pass."""

    words: tuple[str, ...]
    """Grammar words of the best path (filler words removed)."""
    fillers: int
    """How many filler words the best path used (0 for a clean command path)."""
    frames: int
    """10 ms frames decoded."""
    confidence: float | None = None
    """Grammar path score minus free phone-loop score, per speech frame (``CONFIDENCE_UNIT``);
    None when not verified."""
    speech_frames: int = 0
    """10 ms frames inside words of the best path (silence and noise words excluded)."""
    longest_pause: int = 0
    """Most 10 ms frames of silence and noise in a row between two words of the best path."""

    @property
    def text(self) -> str:
        """The grammar words joined by spaces."""
        return " ".join(self.words)

    @property
    def rejected(self) -> bool:
        """True when the filler path won or nothing was recognized."""
        return self.fillers > 0 or not self.words


@dataclass(frozen=True)
class Forced:
    """One forced alignment (``GrammarDecoder.force``)."""

    score: float
    """Path score per 10 ms frame (``CONFIDENCE_UNIT``)."""
    words: tuple[str, ...]
    """The sentence that fitted best."""
    total: float
    """Path score over the whole utterance (``CONFIDENCE_UNIT``)."""
    word_frames: tuple[int, ...]
    """Frames aligned to each word."""


def ranked_fillers(entries: Iterable[str]) -> list[str]:
    """Candidate filler words, most frequent first: the shipped ranking when present
    (assistant/data/phrase-fillers.txt, from scripts/make_phrase_fillers.py), else ranked
    now from the language model (slower, and about 15 MB of memory kept for good)."""
    from importlib import resources  # noqa: PLC0415

    try:
        text = resources.files("assistant").joinpath("data/phrase-fillers.txt").read_text(encoding="utf-8")
    except OSError:
        return frequent_words(entries)
    known = set(entries)
    words = [w for w in (line.strip() for line in text.splitlines()) if w and not w.startswith("#")]
    return [w for w in words if w in known][:_RANKED_WORDS]


def frequent_words(entries: Iterable[str], limit: int = _RANKED_WORDS) -> list[str]:
    """The ``limit`` most frequent words among ``entries``, by the bundled LM's unigram scores."""
    import pocketsphinx  # noqa: PLC0415 - native module, loaded only for this brain

    model = pocketsphinx.NGramModel(
        pocketsphinx.Config(), pocketsphinx.LogMath(), pocketsphinx.get_model_path("en-us/en-us.lm.bin")
    )
    floor = -(2**29)  # score of an unknown word
    scored: list[tuple[int, str]] = []
    for word in entries:
        if not re.fullmatch(r"[a-z]+('[a-z]+)?", word):
            continue
        score = int(model.prob([word]))
        if score > floor:
            scored.append((score, word))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [word for _, word in scored[:limit]]


class GrammarDecoder:
    """A pocketsphinx decoder with named grammar searches; thread-safe."""

    def __init__(self, ranked_fillers: list[str], phones: Callable[[str], str | None], *,
                 side: SidePasses | None = None) -> None:
        self._decoder = grammar_decoder()
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._searches: set[str] = set()
        self._fillers: list[str] = []
        for word in ranked_fillers:
            pron = phones(word)
            if pron is not None and len(pron.split()) >= MIN_FILLER_PHONES:
                self._fillers.append(word)
        for i, word in enumerate(self._fillers):
            self._decoder.add_word(FILLER_PREFIX + word, phones(word) or "", i == len(self._fillers) - 1)
        self._verifier = phone_loop_decoder()
        if side is None:
            from assistant.brains.phrase.side import shared_side  # noqa: PLC0415 - imports this module

            side = shared_side()
        self._side = side

    def install(self, name: str, graph: WordGraph, phones: Callable[[str], str | None],
                penalty: float | None) -> None:
        """Compile ``graph`` (plus the filler path costing ``penalty`` per word) as search ``name``.

        ``graph`` must be free of epsilon arcs (``WordGraph.remove_epsilons``).
        """
        transitions: list[tuple[int, int, float] | tuple[int, int, float, str]] = []
        start = graph.n_states
        final = graph.n_states + 1
        transitions.append((start, graph.start, 1.0))
        transitions.append((graph.final, final, 1.0))
        for src, dst, word in graph.arcs:
            if word is None:
                transitions.append((src, dst, 1.0))
            else:
                transitions.append((src, dst, 1.0, word))
        if penalty is not None:
            grammar_words = graph.words
            fillers = [w for w in self._fillers if w not in grammar_words][:FILLER_WORDS]
            entry, loop = graph.n_states + 2, graph.n_states + 3
            prob = math.exp(-penalty)
            sources = {start} | graph.states_within(FILLER_PREFIX_WORDS)
            sources.discard(graph.final)
            transitions.extend((src, entry, 1.0) for src in sorted(sources))
            for word in fillers:
                transitions.append((entry, loop, prob, FILLER_PREFIX + word))
                transitions.append((loop, loop, prob, FILLER_PREFIX + word))
            transitions.append((loop, final, 1.0))
        new_words = sorted(w for w in graph.words if w not in self._known)
        with self._lock:
            missing: list[tuple[str, str]] = []
            for word in new_words:
                pron = phones(word)
                if pron is None:
                    continue
                if self._decoder.lookup_word(word) is None:
                    missing.append((word, pron))
                self._known.add(word)
            for i, (word, pron) in enumerate(missing):
                # the decoder's dictionary is rebuilt once, with the last word
                self._decoder.add_word(word, pron, i == len(missing) - 1)
            fsg = self._decoder.create_fsg(name, start, final, transitions)
            self._decoder.add_fsg(name, fsg)
            self._searches.add(name)

    def remove(self, name: str) -> None:
        """Forget a search (an older grammar)."""
        with self._lock:
            if name in self._searches:
                self._searches.discard(name)
                self._decoder.remove_search(name)

    def decode(self, pcm: bytes, search: str, *, verify: bool = False) -> Decoded:
        """Decode 16 kHz mono int16 PCM with the named grammar.

        With ``verify``, a clean (filler-free) result is also scored against the free
        phone loop and gets a ``confidence``; rejected results are not verified.
        """
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)
        if samples.size < MIN_SAMPLES:
            return Decoded(words=(), fillers=0, frames=0)
        raw = dither(samples).tobytes()
        # the phone loop runs in the side process while this one decodes the grammar (both are
        # CPU-bound and hold the GIL); it is waited for only when the result is clean
        bound = self._side.phone_loop(raw) if verify else None
        with self._lock:
            if search not in self._searches:
                raise KeyError(search)
            hyp, segments, frames = _run(self._decoder, search, raw)
        words: list[str] = []
        fillers = 0
        speech_frames = 0
        quiet = longest_pause = 0  # quiet: frames of silence and noise since the last word
        for name, first, last in segments:
            word = _ALT_PRON.sub("", name)
            if word.startswith("("):
                continue  # null transitions
            if word.startswith(("<", "[", "+")):
                quiet += max(last - first + 1, 0)  # silence and noise words
                continue
            if words or fillers:
                longest_pause = max(longest_pause, quiet)
            quiet = 0
            if word.startswith(FILLER_PREFIX):
                fillers += 1
            else:
                words.append(word)
            speech_frames += max(last - first + 1, 0)
        confidence = None
        if verify and words and not fillers and hyp is not None:
            phones = bound.result() if bound is not None else UNAVAILABLE
            if phones is UNAVAILABLE:
                with self._lock:
                    phones = phone_loop(self._verifier, raw)
            if isinstance(phones, float) and phones > 0.0:  # an underflowed bound proves nothing
                ratio = (_log(hyp) - _log(phones)) / max(speech_frames, 1)
                confidence = ratio / CONFIDENCE_UNIT
        return Decoded(words=tuple(words), fillers=fillers, frames=frames, confidence=confidence,
                       speech_frames=speech_frames, longest_pause=longest_pause)

    def force(self, pcm: bytes, sentences: list[tuple[str, ...]]) -> Forced | None:
        """Best of ``sentences`` forced over the whole utterance: its score, words and their frames.

        The sentences form a small grammar of their own (no filler path), so scores from two
        calls on the same audio compare how well it fits each group. None when no path
        reached the end, or a word is unknown to the decoder.
        """
        samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)
        if samples.size < MIN_SAMPLES or not sentences:
            return None
        raw = dither(samples).tobytes()
        with self._lock:
            if any(self._decoder.lookup_word(w) is None for words in sentences for w in words):
                return None
            return force_pass(self._decoder, raw, sentences)  # None for an empty sentence


    def fit(self, pcm: bytes, words: tuple[str, ...]) -> Decoded | None:
        """``words`` forced over the utterance and scored against the free phone loop, as a
        ``Decoded`` with its ``confidence`` (the same measure ``decode(verify=True)`` gives its own
        result); None when the sentence does not fit the audio at all or a word is unknown."""
        forced = self.force(pcm, [words])
        if forced is None:
            return None
        raw = dither(np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16)).tobytes()
        phones = self._side.phone_loop(raw).result()
        if phones is UNAVAILABLE:
            with self._lock:
                phones = phone_loop(self._verifier, raw)
        speech = sum(forced.word_frames)
        confidence = None
        if isinstance(phones, float) and phones > 0.0:
            confidence = (forced.total - _log(phones) / CONFIDENCE_UNIT) / max(speech, 1)
        return Decoded(words=forced.words, fillers=0, frames=0, confidence=confidence, speech_frames=speech)


UNAVAILABLE = object()
"""What a side pass returns when the side process could not do it (then it is done here)."""


def grammar_decoder() -> Any:
    """A pocketsphinx decoder for grammar searches and forced alignment (cmudict loaded)."""
    import pocketsphinx  # noqa: PLC0415 - native module, loaded only for this brain

    # bestpath=False: the lattice pass of bestpath returns word strings outside an FSG.
    return pocketsphinx.Decoder(lm=None, bestpath=False, loglevel="ERROR", **_DECODER_OPTIONS)


@contextlib.contextmanager
def _tiny_dictionary() -> Iterator[str]:
    """A one-word dictionary file: stands in for the 3 MB cmudict (about 25 MB of memory) in a
    decoder that needs no words; pocketsphinx reads it at construction."""
    with tempfile.TemporaryDirectory(prefix="assistant-phones-") as folder:
        tiny = Path(folder) / "phones.dict"
        tiny.write_text("a AH\n", encoding="ascii")
        yield str(tiny)


def phone_loop_decoder() -> Any:
    """The verifier: a decoder over the same acoustic model with a free phone loop of uniform
    phone probabilities, scoring every other frame (half the cost; the score stays comparable
    per frame, and it only needs to be a rough upper bound).

    A phone loop needs no words (``_tiny_dictionary``).
    """
    import pocketsphinx  # noqa: PLC0415 - native module, loaded only for this brain

    with _tiny_dictionary() as tiny:
        verifier = pocketsphinx.Decoder(lm=None, dict=tiny, loglevel="ERROR", ds=_VERIFY_DS,
                                        **_DECODER_OPTIONS)
    verifier.add_allphone_file(_VERIFY_SEARCH, None)
    verifier.activate_search(_VERIFY_SEARCH)
    return verifier


def phone_loop(verifier: Any, raw: bytes) -> float | None:
    """Path score of the free phone loop over dithered PCM (the caller owns ``verifier``)."""
    verifier.start_utt()
    try:
        verifier.process_raw(raw, False, True)
    finally:
        verifier.end_utt()
    hyp = verifier.hyp()
    return None if hyp is None else float(hyp.score)


def force_pass(decoder: Any, raw: bytes, sentences: list[tuple[str, ...]]) -> Forced | None:
    """One forced alignment of dithered PCM to the best of ``sentences`` (the caller owns
    ``decoder``, which knows every word): see ``GrammarDecoder.force``."""
    start, final = 0, 1
    transitions: list[tuple[int, int, float] | tuple[int, int, float, str]] = []
    # a prefix tree: sentences that share their first words share those states, so they are
    # searched as one path there (parallel copies would crowd each other out of the beam:
    # measured, 27 number twins forced as copies scored their best 0.8 nats below itself alone)
    children: dict[tuple[int, str], int] = {}
    ends: set[tuple[int, str]] = set()
    for words in sentences:
        if not words:
            return None
        state = start
        for word in words[:-1]:
            state = children.setdefault((state, word), len(children) + 2)
        ends.add((state, words[-1]))
    for (state, word), nxt in children.items():
        transitions.append((state, nxt, 1.0, word))
    for state, word in sorted(ends):
        transitions.append((state, final, 1.0, word))
    decoder.add_fsg(_FORCED_SEARCH, decoder.create_fsg(_FORCED_SEARCH, start, final, transitions))
    try:
        hyp, segments, frames = _run(decoder, _FORCED_SEARCH, raw)
    finally:
        decoder.remove_search(_FORCED_SEARCH)
    spoken = [(_ALT_PRON.sub("", w), last - first + 1) for w, first, last in segments
              if not w.startswith(("<", "[", "+", "("))]
    said = tuple(w for w, _ in spoken)
    if hyp is None or said not in sentences:
        return None  # the best path stopped short of a sentence end
    total = _log(hyp) / CONFIDENCE_UNIT
    return Forced(score=total / max(frames, 1), words=said, total=total,
                  word_frames=tuple(max(n, 1) for _, n in spoken))


def _run(decoder: Any, search: str, raw: bytes) -> tuple[float | None, list[tuple[str, int, int]], int]:
    """One pass of a search over the whole utterance: path score, segments, frames."""
    decoder.activate_search(search)
    decoder.start_utt()
    try:
        decoder.process_raw(raw, False, True)
    finally:
        decoder.end_utt()  # a failed utterance must not wedge the decoder
    hyp = decoder.hyp()
    frames = int(decoder.n_frames())
    if hyp is None:
        return None, [], frames
    segments = [(seg.word, int(seg.start_frame), int(seg.end_frame)) for seg in decoder.seg() or ()]
    return float(hyp.score), segments, frames


def _log(probability: float) -> float:
    """Natural log of a path probability as pocketsphinx reports it (0 underflows to a floor)."""
    return math.log(probability) if probability > 0.0 else -1e3


def dither(samples: np.ndarray) -> np.ndarray:
    """Add +-1 LSB of seeded noise to int16 samples.

    Synthesized and digitally padded audio holds runs of exact zeros, whose log energy
    drives the MFCCs (and the cepstral mean) far outside anything the acoustic model saw:
    correct grammar paths then fall out of the beam. Real microphones never give exact
    zeros; this gives the decoder the same. Seeded per call, so decoding stays reproducible.
    """
    noise = np.random.default_rng(_DITHER_SEED).integers(-1, 2, size=samples.size, dtype=np.int16)
    out: np.ndarray = np.clip(samples.astype(np.int32) + noise, -32768, 32767).astype(np.int16)
    return out


def trim_silence(pcm: bytes, *, rate: int = 16_000, margin_s: float = 0.15) -> bytes:
    """Cut leading and trailing quiet (pre-roll, endpointer silence) before decoding.

    A frame is quiet when its energy is 35 dB below the loudest 10 ms frame (and below
    -50 dBFS at most); ``margin_s`` of audio is kept on both sides. Decoding time is
    proportional to length, and the endpointer hands over ~0.6 s of trailing silence.
    0.15 s decodes as accurately as 0.25 s on the test set and about 8 % faster.
    """
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype=np.int16).astype(np.float32)
    hop = rate // 100
    n = samples.size // hop
    if n < 3:
        return pcm
    frames = samples[: n * hop].reshape(n, hop)
    energy = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-3) - 90.3  # dBFS for int16
    threshold = max(float(energy.max()) - 35.0, -50.0)
    loud = np.flatnonzero(energy > threshold)
    if loud.size == 0:
        return pcm
    pad = int(margin_s * 100)
    first = max(int(loud[0]) - pad, 0)
    last = min(int(loud[-1]) + pad + 1, n)
    return samples[first * hop : last * hop].astype(np.int16).tobytes()
