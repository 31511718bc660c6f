"""Pronunciations for grammar words from the cmudict that ships in the pocketsphinx wheel.

Words missing from the dictionary get a pronunciation spelled from known dictionary
pieces (``roomba`` -> ``room`` + ``ba``) when the whole word can be covered by them;
otherwise the word has no pronunciation and the grammar drops the sentences that
need it. There is no letter-to-sound model: nothing to download, nothing to guess.
"""

from __future__ import annotations

import bisect
import io
import logging
import re
import threading
from array import array
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

_VARIANT = re.compile(r"\(\d+\)$")
_MIN_PIECE = 2
"""Shortest dictionary piece used to spell an unknown word (single letters are too loose)."""


def cmudict_path() -> Path:
    """The cmudict file bundled with pocketsphinx."""
    import pocketsphinx  # noqa: PLC0415 - native module, imported only when needed

    return Path(pocketsphinx.get_model_path("en-us/cmudict-en-us.dict"))


class CompactLexicon(Mapping[str, str]):
    """A read-only word -> phones mapping in a few flat objects.

    A plain dict of cmudict's 126k words costs about 43 MB of Python objects; sorted
    words plus one text blob of phones with an offset array cost a fraction of that,
    which matters on a Pi where the whole daemon should stay under 150 MB.
    """

    def __init__(self, words: list[str], blob: str, offsets: array[int]) -> None:
        self._words = words
        self._blob = blob
        self._offsets = offsets

    @classmethod
    def from_sorted(cls, entries: Iterable[tuple[str, str]]) -> CompactLexicon | None:
        """Build from (word, phones) pairs in strictly increasing word order, streaming
        (no dict of every word is built); None when the order does not hold."""
        words: list[str] = []
        offsets = array("I", [0])
        blob = io.StringIO()
        for word, phones in entries:
            if words and word <= words[-1]:
                return None
            words.append(word)
            blob.write(phones)
            offsets.append(blob.tell())
        return cls(words, blob.getvalue(), offsets)

    def __getitem__(self, word: str) -> str:
        index = bisect.bisect_left(self._words, word)
        if index == len(self._words) or self._words[index] != word:
            raise KeyError(word)
        return self._blob[self._offsets[index] : self._offsets[index + 1]]

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        index = bisect.bisect_left(self._words, word)
        return index < len(self._words) and self._words[index] == word

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __len__(self) -> int:
        return len(self._words)


class Pronouncer:
    """Word -> ARPABET phones, backed by cmudict plus spelled pieces for unknown words."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = entries
        self._spelled: dict[str, str | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> Pronouncer:
        """Read a cmudict-format file (first pronunciation of each word is kept)."""
        with path.open(encoding="utf-8", errors="replace") as file:
            lexicon = CompactLexicon.from_sorted(_parse(file))
        if lexicon is None:  # not sorted like cmudict: merge through a dict
            merged: dict[str, str] = {}
            with path.open(encoding="utf-8", errors="replace") as file:
                for word, phones in _parse(file):
                    merged.setdefault(word, phones)
            lexicon = CompactLexicon.from_sorted(sorted(merged.items()))
        return cls(lexicon or {})

    def words(self) -> list[str]:
        """Every dictionary word."""
        return list(self._entries)

    def known(self, word: str) -> bool:
        """Whether the word is in the dictionary itself."""
        return word in self._entries

    def phones(self, word: str, *, spell: bool = True) -> str | None:
        """Phones for ``word`` (lower case), or None when it cannot be pronounced.

        ``spell`` allows the dictionary-piece fallback; it is meant for names people
        gave their devices, not for template words (a template word missing from the
        dictionary is usually a glued fragment such as ``thousandk``).
        """
        found = self._entries.get(word)
        if found is not None or not spell:
            return found
        with self._lock:
            if word not in self._spelled:
                self._spelled[word] = self._spell(word)
                if self._spelled[word] is None:
                    _LOGGER.info("No pronunciation for %r: sentences using it are left out", word)
                else:
                    _LOGGER.info("Spelled %r as %s", word, self._spelled[word])
            return self._spelled[word]

    def _spell(self, word: str) -> str | None:
        """Cover ``word`` with the fewest dictionary pieces (dynamic programming)."""
        letters = word
        if not re.fullmatch(r"[a-z']{2,40}", letters):
            return None
        n = len(letters)
        best: list[tuple[int, list[str]] | None] = [None] * (n + 1)
        best[0] = (0, [])
        for end in range(1, n + 1):
            for start in range(max(0, end - 12), end - _MIN_PIECE + 1):
                prev = best[start]
                piece = self._entries.get(letters[start:end])
                if prev is None or piece is None:
                    continue
                candidate = (prev[0] + 1, [*prev[1], piece])
                current = best[end]
                if current is None or candidate[0] < current[0]:
                    best[end] = candidate
        done = best[n]
        return " ".join(done[1]) if done is not None else None


def _parse(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    for line in lines:
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or _VARIANT.search(parts[0]):
            continue
        yield parts[0].lower(), parts[1].strip()


@cache
def default_pronouncer() -> Pronouncer:
    """The bundled cmudict, read once per process (about 0.3 s)."""
    return Pronouncer.from_file(cmudict_path())
