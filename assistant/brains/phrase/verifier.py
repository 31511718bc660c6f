"""A second opinion for what the grammar refuses: Whisper tiny.en, optional and pulled on request.

The phrase brain refuses a turn when its evidence is thin: a low phone-loop confidence, or an
opposite, number or name twin the audio fits about as well as the hypothesis. Those refusals are
most of its misses, and most of them were heard right. With ``brain.phrase.verifier_dir`` set
(a faster-whisper / CTranslate2 model folder: ``assistant models pull whisper-tiny.en``), a
refused turn is transcribed by Whisper, and the transcript picks between the hypothesis and its
twins (``choose``). Whisper never acts alone: it can only pick one of the sentences the grammar
already heard as likely, or propose a sentence of the grammar that the audio then has to fit as
well as the grammar's own results (below), so out-of-domain speech that the grammar refused stays
refused unless Whisper heard nearly the same command.

A pick needs all of:
- the transcript (digits spelled, "%" as "percent", plural "s" dropped on both sides) is
  closer, in words, to one candidate than to every other (no tie);
- it differs from that candidate in at most a third of the candidate's words, less one
  (``allowed_distance``: none for three words or fewer, so "call mom" never becomes "volume up");
- Whisper's own probability for the words that tell the candidates apart (the whole sentence
  when there is a single candidate) is at least ``min_probability`` on every such word.

When nothing the grammar heard makes a call (its filler path won, or no path reached the end),
Whisper's transcript is the proposal instead, if it is a sentence of the grammar, and the grammar
checks it as if it had heard it: the sentence is forced over the audio and must pass the same
phone-loop confidence and length checks as the grammar's own results (``GrammarDecoder.fit``);
then its twins are put to ``choose`` as above. Measured: speech-to-phrase's real "turn off lights
in the office" (filler path won) acts; the British-voiced "what is the outside temperature",
which Whisper hears right, does not, because the grammar's alignment of it does not reach the end
of the audio - two recognizers must agree.

A pick that fails only the probability, between numbers, is asked back instead of acted on.
Measured on the spoken set (bench/bench_phrase.py) before the gate: Whisper tiny.en hears "-teen"
and "-ty" wrong too ("fourteen" as 40 at 0.44, "sixty" as 50 at 0.57, "seventy" as 17 at 0.71),
while the numbers it heard right mostly score 0.75 and up.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import ModelFilesError

MAX_SECONDS = 30.0
"""Whisper's window; longer audio is no command and is not transcribed."""

WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
"""A CTranslate2 Whisper export as faster-whisper loads it."""

WHISPER_REPOS = {"whisper-tiny.en": "Systran/faster-whisper-tiny.en"}
"""What `assistant models pull` fetches for the verifier (MIT, as OpenAI's Whisper; also listed
in models/whisper-tiny.en.yaml): the CTranslate2 conversion faster-whisper itself downloads."""

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


Progress = Callable[[str, int, int], None]
"""Called as (file name, files done, files total) before each file and once at the end."""


class Transcriber(Protocol):
    """Speech -> words, each with the recognizer's probability for it (0..1)."""

    def transcribe(self, pcm: bytes) -> Sequence[tuple[str, float]]:
        """16 kHz mono s16le PCM -> (word as written, probability) in order."""
        ...


@dataclass(frozen=True)
class Pick:
    """The candidate the transcript chose, and whether to ask before acting on it."""

    index: int
    ask: bool
    distance: int
    probability: float


def number_words(n: int) -> str:
    """0..999999 as words, the way the sentence templates spell numbers ("3000" -> "three thousand")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number_words(n % 100)
        return _ONES[n // 100] + " hundred" + rest
    rest = "" if n % 1000 == 0 else " " + number_words(n % 1000)
    return number_words(n // 1000) + " thousand" + rest


def spoken(text: str) -> list[str]:
    """A written word or phrase as the grammar's words: lower case, digits spelled ("15%." ->
    "fifteen percent", "21.5" -> "twenty one point five"), punctuation dropped."""
    text = text.lower()
    text = re.sub(r"(\d+)\s*%", r"\1 percent", text)
    text = re.sub(r"(\d)\.(\d)", r"\1 point \2", text)
    text = re.sub(r"\d{1,6}", lambda m: " " + number_words(int(m.group())) + " ", text)
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text)


def _stem(word: str) -> str:
    """A word without a plural "s" ("minutes" / "minute"): Whisper writes what is usual, the
    grammar what its template says. Both sides are stemmed, so two readings that differ only so
    tie, and a tie picks nothing."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _distance(one: Sequence[str], other: Sequence[str]) -> int:
    """Word edit distance (insertions, deletions and substitutions cost 1)."""
    row = list(range(len(other) + 1))
    for i, word in enumerate(one, 1):
        diagonal, row[0] = row[0], i
        for j, theirs in enumerate(other, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (word != theirs))
    return row[-1]


def allowed_distance(words: int) -> int:
    """How many words a transcript may differ by from a candidate of ``words`` words."""
    return max(0, (words - 1) // 3)


def choose(candidates: Sequence[tuple[str, ...]], heard: Sequence[tuple[str, float]], *,
           min_probability: float, numbers: frozenset[str] = frozenset()) -> Pick | None:
    """The candidate sentence the transcript ``heard`` supports, or None (see the module doc).

    ``numbers``: the number words; a pick whose telling words are all numbers and whose
    probability is short of ``min_probability`` is returned with ``ask`` instead of None."""
    said = [(_stem(word), probability) for text, probability in heard for word in spoken(text)]
    stemmed = [tuple(_stem(word) for word in c) for c in candidates]
    closest = _closest([word for word, _p in said], stemmed)
    if closest is None:
        return None
    index, best = closest
    chosen = stemmed[index]
    others = [set(c) for i, c in enumerate(stemmed) if i != index]
    telling = set(chosen) - others[0].intersection(*others[1:]) if others else set(chosen)
    scores = [p for word, p in said if word in telling]
    if not telling or not scores:
        return None  # the words that decide were not heard
    probability = min(scores)
    if probability >= min_probability:
        return Pick(index, ask=False, distance=best, probability=probability)
    if telling <= numbers:
        return Pick(index, ask=True, distance=best, probability=probability)
    return None


def _closest(words: Sequence[str], candidates: Sequence[tuple[str, ...]]) -> tuple[int, int] | None:
    """(index, distance) of the one candidate nearest ``words`` within ``allowed_distance``;
    None on a tie (the transcript does not tell them apart) or when Whisper heard something else."""
    if not words or not candidates:
        return None
    ranked = sorted((_distance(words, list(c)), i) for i, c in enumerate(candidates))
    best, index = ranked[0]
    if len(ranked) > 1 and ranked[1][0] == best:
        return None
    if best > allowed_distance(len(candidates[index])):
        return None
    return index, best


class WhisperTranscriber:
    """faster-whisper over a CTranslate2 Whisper folder (int8 on the CPU, greedy, English).

    One transcription at a time (a lock: the daemon's early decode and a turn can overlap)."""

    def __init__(self, model_dir: Path, *, threads: int | None = None) -> None:
        folder = Path(model_dir).expanduser()
        missing = [name for name in WHISPER_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelFilesError(
                f"brain.phrase.verifier_dir {folder}: not a faster-whisper model folder (missing "
                f"{', '.join(missing)}); download one with `assistant models pull whisper-tiny.en`")
        try:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - optional: the verify extra
        except ImportError as err:
            raise ModelFilesError(
                "brain.phrase.verifier_dir is set but faster-whisper is not installed: "
                "pip install 'assistant[verify]'") from err
        cpus = threads or min(4, os.cpu_count() or 1)
        try:
            self._model: Any = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=cpus)
        except (RuntimeError, ValueError, OSError) as err:
            raise ModelFilesError(
                f"brain.phrase.verifier_dir {folder}: the model does not load: {err}") from err
        self._lock = threading.Lock()

    def transcribe(self, pcm: bytes) -> list[tuple[str, float]]:
        """Words with probabilities; empty for silence, odd-length or over-long audio."""
        import numpy as np  # noqa: PLC0415 - numpy is a core dependency; kept local like the model

        if not pcm or len(pcm) % 2 or len(pcm) > MAX_SECONDS * 32000:
            return []
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        with self._lock:
            segments, _info = self._model.transcribe(
                audio, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False,
                word_timestamps=True, without_timestamps=False)  # no sampled fallback: reproducible
            return [(word.word.strip(), float(word.probability))
                    for segment in segments for word in (segment.words or ())]


def select_whisper_files(available: Iterable[str]) -> list[str]:
    """The four files faster-whisper loads; ModelFilesError when the repository lacks one."""
    names = set(available)
    missing = [name for name in WHISPER_FILES if name not in names]
    if missing:
        raise ModelFilesError("the repository lacks " + ", ".join(missing))
    return list(WHISPER_FILES)


def pull_whisper(model: str, dest: Path | str, progress: Progress | None = None, *,
                 revision: str | None = None) -> Path:
    """Download a verifier model (``WHISPER_REPOS``) into ``dest``, resumable and checked."""
    from assistant.brains.gemma.pull import fetch  # noqa: PLC0415 - the hub code; huggingface_hub inside

    if model not in WHISPER_REPOS:
        raise ModelFilesError(f"unknown verifier model {model!r}; one of {', '.join(WHISPER_REPOS)}")
    repo = WHISPER_REPOS[model]
    path, commit = fetch(repo, dest, select_whisper_files, progress, revision=revision)
    (path / ".assistant-model").write_text(f"repo: {repo}\nrevision: {commit}\n", encoding="utf-8")
    return path
