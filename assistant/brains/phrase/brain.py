"""The phrase brain: pocketsphinx grammar recognition -> hassil intent -> tool call -> router.

Nothing to download: the acoustic model, dictionary and generic language model (used
only to rank filler words) ship in the pocketsphinx wheel; the sentence templates ship
in home-assistant-intents. The grammar is generated from the router's tool set and
rebuilt in a background thread when ``router.tools_version`` changes; the previous
grammar keeps serving until the new one is installed.

Rejection is three signals, all needed to act:

1. ``PhraseSettings.rejection_threshold``: inside the same decoding pass the command paths
   compete with a loop of the 40 most frequent English words of three or more phones that
   are not grammar words (a filler path that may start at the beginning or after a
   command's first three words). Each filler word costs ``rejection_threshold`` in
   natural-log units of grammar probability (pocketsphinx then scales it by its language
   weight, 6.5). When the best path uses a filler word, or its words match no intent,
   the turn is rejected. Lower values reject more.
2. ``PhraseSettings.confidence_threshold``: a clean grammar result is rescored against a
   free phone loop on the same audio (``GrammarDecoder.decode(verify=True)``); when the
   grammar path scores more than the threshold below it per speech frame, the turn is
   rejected. Higher values reject more; None turns this pass off.

A rejected turn replies "Sorry, I didn't catch that." and calls nothing. Defaults 60 and
-44, from the synthesized test set (scripts/make_phrase_testset.py, bench/bench_phrase.py):
at 60 the filler path alone lets one of 28 out-of-domain clips through (confidence -47.9)
while the lowest correct command scores -41.1; at 40 the filler path alone was safe but
accepted fewer good commands (87 against 92 of 96, measured with an 80-word filler
loop). The two signals fail on different clips, so requiring both keeps out-of-domain
speech out without the filler path's misses.

3. Plausibility by length (``PhraseBrain._plausible``): a verb-less form that begins with a
   slot ("{name} off", "{minutes} minute timer") needs ``SHORT_FORM_CONFIDENCE``; a result of
   fewer than ``SHORT_PHONES`` phones needs ``SHORT_SLOPE`` more confidence per missing phone;
   a result of ``LONG_PHONES`` phones or more must be said at ``MIN_LONG_RATE`` phones per
   second or faster. On the 114 real recordings (bench/bench_real_recordings.py) these took the
   out-of-domain actions from 8 (7 once "stop" counts as the stop command) to 0 without losing a
   command of either bench. And no quiet between two words longer than
   ``PhraseSettings.max_pause_ms`` (600 ms, the endpointer's own silence_end_ms): the recorded
   single word "next" came out as "what day is <0.77 s> it" and asked for the weekday; the longest
   pause inside a correct command of either bench is 0.43 s (synthesized, "set the <sil> temp ...").

Twins: a result may be one word away from another command in the grammar: a sensitive one
("lock" / "unlock the front door", "close" / "open the garage door") or an opposite one ("on" /
"off", "up" / "down", "fifty" / "fifteen"); minimal pairs like that are what a recognizer
confuses. For a harmless result with such twins (``sensitive_twins``, ``opposite_twins``) the
audio is forced through the hypothesis alone and through its twins alone
(``GrammarDecoder.force``), each alone; the hypothesis's lead is the difference of the two
path scores divided by the frames of the word where they differ. Unless it leads by more than
``PhraseSettings.twin_margin`` (2.0), a sensitive twin becomes the call (the router asks before
it acts, and only an explicit yes runs it) and an opposite twin refuses the turn. Measured: the
real recording "lock the front door", heard right, leads "unlock" by 7.0 (it was asked back as
"unlock" when the lead was averaged over the whole utterance: 1.4 per frame, under the old 2.0);
a synthesized "unlock" heard as "lock" trails its twin (-6.1) and is asked; misheard numbers
("nineteen" for "ninety" 0.1, "fifty" for "fifteen" -1.1) are refused instead of acting. The
price: two correctly heard numbers in noise ("forty", "ninety", -0.5 and -1.5: their twins fit
the audio better) and one "turn off the lamp in the living room" (-0.8) are refused too; the
least lead of a correct command that acted is 4.5 ("eighty" / "eighteen").

Numbers are asked back: a number that leads a like-sounding number by more than ``twin_margin`` but
no more than ``PhraseSettings.number_margin`` (4.4) becomes a call the router asks about first
(``ToolCall.confirm``), run on a yes. On "-teen" / "-ty" commands said by every voice the guard
alone acted on the wrong number 12 times in 336 ("seventy minutes" as a 17-minute timer); asking
back within 4.4 leaves 4 (``PhraseBrain._verdict``).

When the router has a sensitive call waiting for this site, the utterance is decoded
with a small yes / no / PIN-digits grammar and handed to ``answer_confirmation``
(``None`` when rejected).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Any

from hassil import Intents, recognize_best

from assistant.brains.base import Router
from assistant.brains.phrase.decoder import Decoded, Forced, GrammarDecoder, ranked_fillers, trim_silence
from assistant.brains.phrase.graph import GraphBuilder, WordGraph
from assistant.brains.phrase.pronounce import Pronouncer, default_pronouncer
from assistant.brains.phrase.templates import IntentSet, build_intent_set, entity_domains
from assistant.brains.phrase.verifier import Transcriber, WhisperTranscriber, choose, spoken
from assistant.config import PhraseSettings
from assistant.errors import BrainError
from assistant.tools.base import Tool
from assistant.types import BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance

_LOGGER = logging.getLogger(__name__)

NOT_UNDERSTOOD = "Sorry, I didn't catch that."

CONFIRM_PHRASES = (
    "yes", "yes please", "yeah", "yep", "sure", "do it", "confirm", "okay", "ok",
    "no", "no thanks", "cancel", "stop", "don't",
)
"""What the confirmation grammar accepts besides a spoken PIN (three or more digits, "one two three four")."""

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_CONFIRM_SEARCH = "confirm"


@dataclass(frozen=True)
class Grammar:
    """One installed command grammar."""

    key: str
    """The vocabulary it was built for (``vocabulary_key``): what can be said, never entity state."""
    version: int
    """``tools_version`` of the router when it was built (for logs)."""
    search: str
    intents: IntentSet
    sentences: int
    words: int
    build_ms: float
    arcs_from: Mapping[int, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    """The word graph's arcs by source state (for finding a hypothesis's twins)."""
    arcs_by_word: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """The word graph's arcs by word: ``(from, to)``."""
    start: int = 0
    """The word graph's start state."""
    final: int = 1
    """The word graph's final state."""
    sensitive_intents: Intents | None = None
    """The hassil intents whose tool may be sensitive (None when no tool is)."""
    name_phones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Each speakable device name's phones, stress marks dropped (for its name twins)."""
    alike_names: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    """Names found alike so far, by name (``_alike_names``; filled as names are heard)."""


@dataclass(frozen=True)
class _Heard:
    """An early decode and the decision taken on it (``PhraseBrain.prefetch``)."""

    decoded: Decoded
    match: Match | None
    timings: dict[str, float]


@dataclass(frozen=True)
class Match:
    """A transcript matched to a tool call."""

    call: ToolCall
    intent: str
    slot_first: bool = False
    """The matched template begins with a slot and no verb ("{name} off", "{minutes} minute timer"):
    a short form that out-of-domain speech fits easily, so it needs more evidence."""


OPPOSITES: frozenset[frozenset[str]] = frozenset(frozenset(pair) for pair in (
    ("on", "off"), ("open", "close"), ("opened", "closed"), ("lock", "unlock"), ("locked", "unlocked"),
    ("up", "down"), ("more", "less"), ("louder", "quieter"), ("raise", "lower"), ("increase", "decrease"),
    ("higher", "lower"), ("brighter", "dimmer"), ("warmer", "cooler"), ("start", "stop"), ("arm", "disarm"),
    ("activate", "deactivate"), ("enable", "disable"),
))
"""Word pairs whose swap turns a command into its opposite; one-word twins through them (and through
number words) are checked against the audio before acting (``PhraseBrain._guard``)."""

SHORT_FORM_CONFIDENCE = -25.0
"""Least phone-loop confidence for a command said in a verb-less form that begins with a slot
("{name} off", "{minutes} minute timer"): single words and names fit those easily. Real clips that
acted through them: "hey mycroft" (-33.7), "americano" (-38.6), "grasshopper" (-36.3), "porcupine"
(-32.4); no command of the spoken test set uses such a form."""

SHORT_PHONES = 12
SHORT_SLOPE = 0.9
"""A result of fewer than SHORT_PHONES phones needs SHORT_SLOPE more confidence per phone missing
(4 phones, "stop": 7.2 above ``confidence_threshold``): a short path fits any short sound. Real clips
that acted through short results: "terminator" -> "turn it up" (7 phones, -42.8), "up" -> "louder";
the lowest short commands of the spoken set: "stop" -35.6 (4 phones), "volume up" -35.6 (8)."""

LONG_PHONES = 20
MIN_LONG_RATE = 8.5
"""A result of LONG_PHONES phones or more must be said at MIN_LONG_RATE phones per second of its
words or faster: long commands are said fluently (spoken set >= 9.5, real commands >= 10.2 phones/s),
while long unrelated talk forced into a command spreads its words thin (a real 4.9 s passage heard as
"turn up the temp in living room to ten degree": 7.1 phones/s)."""

NUMBER_LIKENESS = 0.5
"""Least share of phones in common (difflib ratio) for two number words to be checked as twins;
at 0.5 a number word has 3.8 twins on average, each forced once when it is heard."""

NAME_LIKENESS = 0.5
"""Least share of phones in common (difflib ratio) for two device names to be checked as twins
("bedroom light" / "big light" 0.53, / "bed light" 0.8; "kitchen light" 0.35 is not)."""
NAME_TWINS = 3
"""Most name twins forced for one command, the most alike first: each costs a forced pass (20-40 ms
here), and in a home of 1000 devices a name has a hundred alike ones. The bench homes have at most
3 per command; "bedroom light" has 3 there (bed light, bedroom fan, big light)."""

NUMBER_WORDS = frozenset({
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand",
    "half", "point", "oh",
})


class PhraseBrain:
    """Speech -> pocketsphinx grammar -> hassil -> ToolCall -> router. ``handle`` is thread-safe."""

    name = "phrase"

    def __init__(self, settings: PhraseSettings, *, pronouncer: Pronouncer | None = None,
                 decoder: GrammarDecoder | None = None, verifier: Transcriber | None = None) -> None:
        self._settings = settings
        self._verifier = verifier
        self._pronouncer = pronouncer or default_pronouncer()
        if decoder is None:
            ranked = ranked_fillers(self._pronouncer.words())
            decoder = GrammarDecoder(ranked, self._pronouncer.phones)
        self._decoder = decoder
        self._grammar: Grammar | None = None
        self._build_lock = threading.Lock()
        self._match_lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._prefetched: tuple[Grammar, bytes, Future[_Heard]] | None = None
        self._prefetch_lock = threading.Lock()
        # Searches in use by a decode (pinned) and superseded searches waiting to be removed:
        # a turn keeps the grammar it started with; a new one serves the next turn.
        self._pins: dict[str, int] = {}
        self._superseded: set[str] = set()
        self._pin_lock = threading.Lock()
        self._key_cache: tuple[Sequence[Tool], str] | None = None
        self._key_lock = threading.Lock()
        self._ids = count(1)
        self._install_confirmation()

    # ------------------------------------------------------------------ grammar

    @property
    def grammar(self) -> Grammar | None:
        """The grammar currently serving (None before the first build)."""
        return self._grammar

    def _phones_for_grammar(self, names: frozenset[str]) -> Any:
        def phones(word: str) -> str | None:
            return self._pronouncer.phones(word, spell=word in names)
        return phones

    def vocabulary_key(self, router: Router) -> tuple[str, Sequence[Tool]]:
        """What can be said with the router's tools, as a digest, and the tools it was taken from.

        The grammar depends on tool names, parameter schemas (entity names, areas, enums,
        ranges), sentence templates and which names are sensitive, never on entity state;
        two routers (or one wrapped per turn) with the same tools give the same key, and a
        re-announced identical inventory keeps the grammar. Computed once per tool set.
        """
        tools = router.tools()
        with self._key_lock:
            cached = self._key_cache
            if cached is not None and cached[0] is tools:
                return cached[1], tools
        key = vocabulary_key(tools)
        with self._key_lock:
            self._key_cache = (tools, key)
        return key, tools

    def warm(self, router: Router) -> None:
        """Prepare the grammar for the router's current tools (``Warmable``; blocking)."""
        self.build(router)

    def build(self, router: Router) -> Grammar:
        """Build and install the grammar for the router's current tools (blocking).

        Returns the installed grammar at once when the vocabulary has not changed.
        """
        with self._build_lock:
            version = router.tools_version
            key, tool_seq = self.vocabulary_key(router)
            current = self._grammar
            if current is not None and current.key == key:
                return current
            started = time.monotonic()
            tools = list(tool_seq)
            intents = build_intent_set(tools, self._settings.language)
            builder = GraphBuilder(intents.intents, intents.slot_lists, self._settings.language)
            builder.add_intents()
            graph = builder.build()
            name_words = frozenset(
                w for value in (*intents.name_domains, *_area_names(intents)) for w in value.split()
            )
            phones = self._phones_for_grammar(name_words)
            graph.prune(lambda word: phones(word) is not None)
            graph.remove_epsilons()
            graph.merge_equivalent()
            search = f"commands{next(self._ids)}"
            self._decoder.install(search, graph, phones, self._settings.rejection_threshold)
            self._warm_up(intents)
            arcs_from: dict[int, list[tuple[int, str]]] = {}
            arcs_by_word: dict[str, list[tuple[int, int]]] = {}
            for src, dst, word in graph.arcs:
                if word is not None:
                    arcs_from.setdefault(src, []).append((dst, word))
                    arcs_by_word.setdefault(word, []).append((src, dst))
            risky = {t.name for t in tools if t.sensitive is not False} & set(intents.intents.intents)
            grammar = Grammar(
                key=key, version=version, search=search, intents=intents,
                sentences=builder.sentences,
                words=len(graph.words), build_ms=(time.monotonic() - started) * 1000.0,
                arcs_from={k: tuple(v) for k, v in arcs_from.items()},
                arcs_by_word={k: tuple(v) for k, v in arcs_by_word.items()},
                start=graph.start, final=graph.final,
                sensitive_intents=replace(intents.intents, intents={
                    name: intent for name, intent in intents.intents.intents.items() if name in risky
                }) if risky else None,
                name_phones={n: p for n in intents.name_domains if (p := self._name_phones(n))},
            )
            self._grammar = grammar
            if current is not None:
                self._retire(current.search)
            _LOGGER.info(
                "Phrase grammar v%d: %d tools, %d templates, %d words, %d arcs, built in %.0f ms",
                version, len(tools), builder.sentences, grammar.words, len(graph.arcs), grammar.build_ms,
            )
            return grammar

    def rebuild_in_background(self, router: Router) -> threading.Thread | None:
        """Start a background rebuild unless one is running; returns its thread."""
        with self._match_lock:
            if self._builder is not None and self._builder.is_alive():
                return None
            thread = threading.Thread(target=self._rebuild, args=(router,), name="phrase-grammar",
                                      daemon=True)
            self._builder = thread
        thread.start()
        return thread

    def _rebuild(self, router: Router) -> None:
        try:
            self.build(router)
        except Exception:  # a broken tool set must not kill the worker; the old grammar keeps serving
            _LOGGER.exception("Phrase grammar rebuild failed; keeping the previous grammar")

    def _current_grammar(self, router: Router) -> Grammar:
        """The grammar to decode with now; a changed vocabulary is rebuilt in the background.

        Only the very first turn waits for a build; later changes keep the installed grammar
        serving until the new one is ready (``build`` swaps it in between turns).
        """
        grammar = self._grammar
        if grammar is None:
            return self.build(router)
        key, _tools = self.vocabulary_key(router)
        if key != grammar.key:
            self.rebuild_in_background(router)
        return grammar

    def _pin(self, router: Router) -> Grammar:
        """The current grammar, held for one decode: it stays installed until ``_unpin``."""
        while True:
            grammar = self._current_grammar(router)
            with self._pin_lock:
                if grammar.search not in self._superseded:
                    self._pins[grammar.search] = self._pins.get(grammar.search, 0) + 1
                    return grammar
            # swapped out between reading and pinning: take the newer one

    def _unpin(self, grammar: Grammar) -> None:
        with self._pin_lock:
            left = self._pins.get(grammar.search, 0) - 1
            if left > 0:
                self._pins[grammar.search] = left
                return
            self._pins.pop(grammar.search, None)
            remove = grammar.search in self._superseded
            if remove:
                self._superseded.discard(grammar.search)
        if remove:
            self._decoder.remove(grammar.search)

    def _retire(self, search: str) -> None:
        """A newer grammar is installed: drop ``search`` once no decode holds it."""
        with self._pin_lock:
            if self._pins.get(search, 0) > 0:
                self._superseded.add(search)
                return
        self._decoder.remove(search)

    @property
    def installed_searches(self) -> int:
        """Command grammars held by the decoder (the serving one plus those still in use)."""
        with self._pin_lock:
            return 1 + len(self._superseded) if self._grammar is not None else 0

    def _warm_up(self, intents: IntentSet) -> None:
        """hassil builds its number tries lazily: pay that here, not on the first command."""
        with self._match_lock:
            for text in ("set a timer for five minutes", "set the brightness to fifty percent"):
                recognize_best(text, intents.intents, slot_lists=dict(intents.slot_lists),
                               language=self._settings.language, best_slot_name="name")

    def _install_confirmation(self) -> None:
        graph = WordGraph()
        builder_phrases = list(CONFIRM_PHRASES)
        for phrase in builder_phrases:
            state = graph.start
            words = phrase.split()
            for i, word in enumerate(words):
                nxt = graph.final if i == len(words) - 1 else graph.new_state()
                graph.arcs.append((state, nxt, word))
                state = nxt
        # a PIN is three or more digits: single digits match noise too easily
        first, second, loop = graph.new_state(), graph.new_state(), graph.new_state()
        for digit in DIGITS:
            graph.arcs.append((graph.start, first, digit))
            graph.arcs.append((first, second, digit))
            graph.arcs.append((second, loop, digit))
            graph.arcs.append((second, graph.final, digit))
            graph.arcs.append((loop, loop, digit))
            graph.arcs.append((loop, graph.final, digit))
        self._decoder.install(_CONFIRM_SEARCH, graph, self._pronouncer.phones,
                              self._settings.rejection_threshold)

    # ------------------------------------------------------------------ matching

    def match(self, text: str, grammar: Grammar) -> Match | None:
        """Map a transcript to a tool call with hassil (None when no intent matches).

        A plural ("the bedroom lights") keeps hassil's reading, the area's whole group,
        even where one device is called "bedroom light": in a room with several lights
        that is what the speaker means.
        """
        return self._recognize(text, grammar)

    def _recognize(self, text: str, grammar: Grammar, only: Intents | None = None) -> Match | None:
        intents = grammar.intents
        with self._match_lock:
            result = recognize_best(text, only or intents.intents, slot_lists=dict(intents.slot_lists),
                                    language=self._settings.language, best_slot_name="name")
        if result is None or result.intent.name not in intents.tools:
            return None
        slots: dict[str, Any] = {name: entity.value for name, entity in result.entities.items()}
        arguments = intents.arguments(result.intent.name, slots)
        template = result.intent_sentence.text if result.intent_sentence is not None else ""
        return Match(call=ToolCall(result.intent.name, arguments), intent=result.intent.name,
                     slot_first=_slot_first(template or ""))

    def twins(self, words: tuple[str, ...], grammar: Grammar) -> list[tuple[str, ...]]:
        """Grammar sentences that differ from ``words`` in exactly one word (same length)."""
        accept = _suffix_states(words, grammar)
        found: set[tuple[str, ...]] = set()
        here = {grammar.start}
        for i, word in enumerate(words):
            for state in here:
                for dst, other in grammar.arcs_from.get(state, ()):
                    if other != word and dst in accept[i + 1]:
                        found.add((*words[:i], other, *words[i + 1:]))
            here = _after(here, word, grammar)
        return sorted(found)

    def span_twins(self, words: tuple[str, ...], grammar: Grammar) -> list[tuple[str, ...]]:
        """Grammar sentences where a number of two words or more ("forty three") is one number
        word that begins as its first does ("fourteen", "forty", "four"): a recognizer that splits
        "-teen" into "-ty" and a unit, or drops the unit, changes the value, and ``twins`` (one word
        for one word) cannot see it. Measured: "set the volume to fourteen percent" heard as "forty
        three percent" acted on 43."""
        n = len(words)
        accept = _suffix_states(words, grammar)
        found: set[tuple[str, ...]] = set()
        here = {grammar.start}
        for i, word in enumerate(words):
            end = i
            while end < n and words[end] in NUMBER_WORDS:
                end += 1
            if word in NUMBER_WORDS and end - i >= 2 and (i == 0 or words[i - 1] not in NUMBER_WORDS):
                for state in here:
                    for dst, other in grammar.arcs_from.get(state, ()):
                        if other in NUMBER_WORDS and dst in accept[end] and self._same_onset(word, other):
                            found.add((*words[:i], other, *words[end:]))
            here = _after(here, word, grammar)
        return sorted(found)

    def sensitive_twins(self, words: tuple[str, ...], match: Match,
                        grammar: Grammar) -> list[tuple[tuple[str, ...], Match]]:
        """One-word twins of a harmless hypothesis whose own call would need confirmation.

        "lock the front door" has the twin "unlock the front door"; a recognizer that
        confuses the two must not act on the harmless reading without checking the other.
        """
        only = grammar.sensitive_intents
        tools = grammar.intents.tools
        tool = tools.get(match.call.name)
        if only is None or tool is None or _sensitive(tool, match.call.arguments):
            return []
        out: list[tuple[tuple[str, ...], Match]] = []
        for twin in self.twins(words, grammar):
            text = " ".join(twin)
            # the sensitive intents alone first (cheap), then the full set: the twin's real reading
            if self._recognize(text, grammar, only) is None:
                continue
            found = self._recognize(text, grammar)
            twin_tool = tools.get(found.call.name) if found is not None else None
            if found is not None and twin_tool is not None and _sensitive(twin_tool, found.call.arguments):
                out.append((twin, found))
        return out

    def opposite_twins(self, words: tuple[str, ...], match: Match,
                       grammar: Grammar) -> list[tuple[tuple[str, ...], Match | None]]:
        """One-word twins through an opposite ("on" / "off", "lock" / "unlock", ``OPPOSITES``) or a
        number word ("fifty" / "fifteen") that make another call: the confusions that act wrongly.

        Opposite twins are read by hassil (a twin with the same call, "is the door locked" /
        "unlocked", is no danger); number twins change the value by construction (their match
        is None: not read) and are kept when they begin with the same two phones ("fifty" /
        "fifteen", "forty" / "fourteen", "nineteen" / "ninety"), the confusions measured.
        """
        out: list[tuple[tuple[str, ...], Match | None]] = [(t, None) for t in self.span_twins(words, grammar)]
        for twin in self.twins(words, grammar):
            i = next(k for k, (a, b) in enumerate(zip(words, twin, strict=True)) if a != b)
            if words[i] in NUMBER_WORDS and twin[i] in NUMBER_WORDS:
                if self._sounds_alike(words[i], twin[i]):
                    out.append((twin, None))
            elif frozenset((words[i], twin[i])) in OPPOSITES:
                found = self._recognize(" ".join(twin), grammar)
                if found is not None and found.call != match.call:
                    out.append((twin, found))
        return out

    def name_twins(self, words: tuple[str, ...], match: Match,
                   grammar: Grammar) -> list[tuple[tuple[str, ...], Match | None]]:
        """Grammar sentences with another device's name where the hypothesis has one ("toggle big
        light" for "toggle bedroom light"), when the two names share ``NAME_LIKENESS`` of their
        phones: the confusions that act on the wrong device. Measured on a real recording:
        "activate mood lighting" decoded as "toggle bedroom light" (phone-loop confidence -30.8,
        well inside the commands' range) and toggled the light; forced alone, "toggle big light"
        fits that audio better (lead -3.2), while every command of the spoken and real sets that
        was heard right leads its alike names by 3.5 or more."""
        name = match.call.arguments.get("name")
        if not isinstance(name, str) or name not in grammar.name_phones:
            return []
        said = tuple(name.split())
        at = next((i for i in range(len(words) - len(said) + 1) if words[i:i + len(said)] == said), None)
        if at is None:
            return []
        out: list[tuple[tuple[str, ...], Match | None]] = []
        for other in _alike_names(name, grammar):
            if len(out) == NAME_TWINS:
                break
            twin = (*words[:at], *other.split(), *words[at + len(said):])
            if grammar.start not in _suffix_states(twin, grammar)[0]:
                continue  # not a sentence of the grammar: the search could not have confused them
            found = self._recognize(" ".join(twin), grammar)
            if found is not None and found.call != match.call:
                out.append((twin, found))
        return out

    def _name_phones(self, name: str) -> tuple[str, ...]:
        """A name's phones, stress marks dropped; empty when a word of it has no pronunciation."""
        words = [self._bare_phones(w) for w in name.split()]
        return tuple(p for w in words for p in w) if words and all(words) else ()

    def _bare_phones(self, word: str) -> list[str]:
        """The word's phones, stress marks dropped (empty when it has no pronunciation)."""
        return [p.rstrip("012") for p in (self._pronouncer.phones(word) or "").split()]

    def _same_onset(self, one: str, other: str) -> bool:
        """The same first two phones, stress aside ("forty" / "fourteen" / "four": F AO)."""
        a, b = self._bare_phones(one), self._bare_phones(other)
        return bool(a) and a[:2] == b[:2]

    def _sounds_alike(self, one: str, other: str) -> bool:
        """Number words a recognizer confuses: the same first two phones ("fifty" / "fifteen"),
        or half their phones or more in common, stress aside ("sixty" / "fifty": IH, T IY)."""
        a, b = self._bare_phones(one), self._bare_phones(other)
        if not a or not b:
            return False
        return a[:2] == b[:2] or difflib.SequenceMatcher(None, a, b).ratio() >= NUMBER_LIKENESS

    def _guard(self, pcm: bytes, decoded: Decoded, match: Match, grammar: Grammar,
               timings: dict[str, float]) -> Match | None:
        """``match``, its sensitive twin, or None (refused) by how well the audio fits each.

        The twins checked are the one-word twins whose call would need confirmation, those
        through an opposite or a number word, and those with an alike name of another device.
        Each is forced over the audio with the hypothesis; the lead of the hypothesis is the
        difference of the two path scores over the whole utterance divided by the frames of the
        words where they differ (the evidence is there; a per-frame average over the utterance
        dilutes it by the command's length). When the closest twin (the least lead) comes within
        ``twin_margin`` of the hypothesis (or above it), the audio does not tell them apart: a
        sensitive twin becomes the call (the router asks before it acts), any other twin refuses
        the turn. A harmless hypothesis that the audio clearly fits acts as heard.

        Tried and dropped (measured on the spoken set): forcing each twin over only the words where
        it differs and one word either side made the passes 2.2x faster and acted wrongly 7 times
        instead of 0, because the twin is then held to the hypothesis's word boundaries.
        """
        t0 = time.monotonic()
        tools = grammar.intents.tools
        tool = tools.get(match.call.name)
        if tool is None or _sensitive(tool, match.call.arguments):
            return match  # asked anyway
        candidates: dict[tuple[str, ...], Match | None] = dict(
            self.opposite_twins(decoded.words, match, grammar))
        candidates.update(self.sensitive_twins(decoded.words, match, grammar))
        candidates.update(self.name_twins(decoded.words, match, grammar))
        if not candidates:
            return match
        own = self._decoder.force(pcm, [decoded.words])
        # each twin alone, as the hypothesis: a path forced beside siblings scores lower than by
        # itself (measured: "fifteen" alone led "fifty" by 48, forced beside it trailed by 98)
        forced = [f for f in (self._decoder.force(pcm, [twin]) for twin in candidates) if f is not None]
        timings["twins"] = (time.monotonic() - t0) * 1000.0
        if not forced:
            return match  # no twin fits the audio at all
        if own is None:
            other, lead = max(forced, key=lambda f: f.total), None
        else:
            # the closest twin is the one the hypothesis leads least per frame where they differ
            # (twins of other lengths, names or spans, differ over other frames)
            def per_frame(f: Forced) -> float:
                return (own.total - f.total) / _differing_frames(decoded.words, f.words, own.word_frames)

            other = min(forced, key=per_frame)
            lead = per_frame(other)
        _LOGGER.info("Twin %r of %r: lead %s per frame of the word", " ".join(other.words), decoded.text,
                     "n/a" if lead is None else f"{lead:.1f}")
        return self._verdict(match, candidates[other.words], lead, tools)

    def _verdict(self, match: Match, twin: Match | None, lead: float | None,
                 tools: Mapping[str, Tool]) -> Match | None:
        """What the hypothesis's lead over its best twin (``twin``: its reading, None for a number
        twin) allows: act, ask back (a number within ``number_margin``), take the sensitive twin
        (the router asks), or refuse.

        Asking back: on 336 spoken "-teen" / "-ty" commands (every such word in three frames, piper
        and five espeak voices, a third at 15 dB; scripts/make_phrase_testset.py makes 224 of them as
        the numbers group) the guard at ``twin_margin`` alone acted on the wrong number 12 times
        ("seventy minutes" as 17, "eighteen" as 80), with leads of 2.0 to 14.1; 8 of the 12 led by
        4.4 or less. 4.4 is the largest margin that asks back none of the acceptance set's numbers
        (the least lead of a correct one there is 4.5); 5.0 would leave 2 wrong of 336 instead of 4
        and ask back 3 correct acceptance commands."""
        if lead is not None and lead > self._settings.twin_margin:
            if twin is None and lead <= self._settings.number_margin:
                return replace(match, call=replace(match.call, confirm=True))
            return match
        twin_tool = tools.get(twin.call.name) if twin is not None else None
        if twin is not None and twin_tool is not None and _sensitive(twin_tool, twin.call.arguments):
            return twin  # the router asks before it acts on a sensitive call
        return None  # an opposite reading fits as well: do nothing rather than guess

    # ------------------------------------------------------------------ turns

    def prefetch(self, pcm: bytes, router: Router) -> None:
        """Start decoding audio that is probably a finished command, in a worker thread.

        The daemon calls this while the endpointer still waits out its hangover;
        ``handle`` then uses the result when the finished utterance trims to the same
        speech, with the grammar the guess was decoded with (held until then), and
        decodes as usual otherwise. Returns at once.
        """
        if self._grammar is None:
            return  # the first build is due: handle() waits for it
        grammar = self._pin(router)
        trimmed = trim_silence(pcm)
        future: Future[_Heard] = Future()
        with self._prefetch_lock:
            previous, self._prefetched = self._prefetched, (grammar, trimmed, future)
        if previous is not None:
            self._release_guess(previous)

        def work() -> None:
            try:
                decoded = self._decoder.decode(trimmed, grammar.search, verify=self._verify)
                # the whole decision, twins included: the guard's forced alignments cost as much
                # as the decode itself, and the daemon waits for neither while the endpointer waits
                timings: dict[str, float] = {}
                match = self._decide(trimmed, decoded, grammar, timings)
                future.set_result(_Heard(decoded, match, timings))
            except BaseException as err:  # handed to handle(), which then decodes itself
                future.set_exception(err)

        threading.Thread(target=work, name="phrase-prefetch", daemon=True).start()

    def _release_guess(self, entry: tuple[Grammar, bytes, Future[_Heard]]) -> None:
        """Unpin a guess's grammar once its decode is over (it may still be running)."""
        grammar, _pcm, future = entry
        future.add_done_callback(lambda _f: self._unpin(grammar))

    def _take_prefetched(self, pcm: bytes, timings: dict[str, float]) -> tuple[Grammar, _Heard] | None:
        """The early decode of the same speech and its grammar (still pinned), else None."""
        with self._prefetch_lock:
            entry, self._prefetched = self._prefetched, None
        if entry is None:
            return None
        grammar, guessed, future = entry
        if guessed != pcm:
            self._release_guess(entry)
            return None
        try:
            heard = future.result(timeout=10.0)
        except Exception:  # a failed guess only means decoding now
            self._unpin(grammar)
            return None
        timings.update(heard.timings)
        return grammar, heard

    def handle(self, utterance: Utterance, router: Router, cancel: threading.Event) -> BrainTurn:
        """Process one utterance end to end."""
        started = time.monotonic()
        timings: dict[str, float] = {}
        site = utterance.site
        if cancel.is_set():
            return _rejected(None, site, timings)
        question = router.pending_confirmation(site)
        pcm = trim_silence(utterance.pcm)
        if question is not None:
            with self._prefetch_lock:
                guessed, self._prefetched = self._prefetched, None
            if guessed is not None:  # decoded with the command grammar: not what an answer needs
                self._release_guess(guessed)
            return self._confirm(pcm, utterance, router, cancel, timings)
        t0 = time.monotonic()
        guess = self._take_prefetched(pcm, timings)
        if guess is not None:
            grammar, heard = guess
            decoded, decided = heard.decoded, (heard.match,)
        else:
            decided = None
            try:
                grammar = self._pin(router)
            except Exception as err:
                raise BrainError(f"phrase grammar could not be built: {err}") from err
            try:
                decoded = self._decoder.decode(pcm, grammar.search, verify=self._verify)
            except BaseException:
                self._unpin(grammar)
                raise
        try:
            turn = self._act(utterance, decoded, grammar, pcm=pcm, router=router, cancel=cancel,
                             timings=timings, started=started, t0=t0, decided=decided)
        finally:
            self._unpin(grammar)
        return dataclasses.replace(turn, flags=turn.flags | {"prefetched"}) if guess is not None else turn

    def _decide(self, pcm: bytes, decoded: Decoded, grammar: Grammar,
                timings: dict[str, float]) -> Match | None:
        """The call to make of a decoded utterance, or None: rejection, plausibility, twins."""
        match = None if self._rejects(decoded) else self.match(decoded.text, grammar)
        if match is not None and not self._plausible(decoded, match):
            match = None
        if match is not None:
            match = self._guard(pcm, decoded, match, grammar, timings)
        if match is None and self._verifier is not None:
            match = self._second_opinion(pcm, decoded, grammar, timings)
        return match

    def _second_opinion(self, pcm: bytes, decoded: Decoded, grammar: Grammar,
                        timings: dict[str, float]) -> Match | None:
        """A refused turn, put to the verifier: Whisper's transcript may pick the heard sentence or
        one of its twins (``verifier.choose``); the pick acts, is asked back (a number Whisper is
        unsure of), or nothing happens. Only turns whose grammar words make a call get here."""
        assert self._verifier is not None  # noqa: S101 - checked by the caller
        t0 = time.monotonic()
        hypothesis = self.match(decoded.text, grammar) if decoded.words else None
        heard: Sequence[tuple[str, float]] | None = None
        if hypothesis is None:
            # nothing the grammar heard makes a call: Whisper may propose a sentence, which the
            # grammar's own acoustic check must then pass as if it had heard it
            heard = self._verifier.transcribe(pcm)
            proposed = tuple(word for text, _p in heard for word in spoken(text))
            hypothesis, why = self._proposal(pcm, proposed, grammar)
            if hypothesis is None:
                timings["verifier"] = (time.monotonic() - t0) * 1000.0
                _LOGGER.info("Verifier heard %r: %s", " ".join(proposed), why)
                return None
            words = proposed
        else:
            words = decoded.words
        candidates: dict[tuple[str, ...], Match] = {words: hypothesis}
        twins = [*self.opposite_twins(words, hypothesis, grammar),
                 *self.sensitive_twins(words, hypothesis, grammar),
                 *self.name_twins(words, hypothesis, grammar)]
        for twin, found in twins:
            reading = found or self.match(" ".join(twin), grammar)
            if reading is not None:
                candidates.setdefault(twin, reading)
        sentences = list(candidates)
        if heard is None:
            heard = self._verifier.transcribe(pcm)
        pick = choose(sentences, heard, min_probability=self._settings.verifier_min_probability,
                      numbers=NUMBER_WORDS)
        timings["verifier"] = (time.monotonic() - t0) * 1000.0
        said = " ".join(word for word, _p in heard)
        if pick is None:
            _LOGGER.info("Verifier heard %r: no pick among %d readings of %r", said, len(sentences),
                         " ".join(words))
            return None
        match = candidates[sentences[pick.index]]
        _LOGGER.info("Verifier heard %r: picks %r (%d words off, probability %.2f%s)", said,
                     " ".join(sentences[pick.index]), pick.distance, pick.probability,
                     ", asked back" if pick.ask else "")
        return replace(match, call=replace(match.call, confirm=True)) if pick.ask else match

    def _proposal(self, pcm: bytes, words: tuple[str, ...], grammar: Grammar) -> tuple[Match | None, str]:
        """Whisper's sentence as a call, when it is a sentence of the grammar that the audio fits
        as well as the grammar's own results must (``GrammarDecoder.fit``: the phone-loop
        confidence and the plausibility checks by length, on the forced alignment); else None
        and why."""
        if not words or grammar.start not in _suffix_states(words, grammar)[0]:
            return None, "not a sentence of the grammar"
        match = self.match(" ".join(words), grammar)
        if match is None:
            return None, "no call"
        fitted = self._decoder.fit(pcm, words)
        if fitted is None:
            return None, "the grammar's alignment of it does not reach the end of the audio"
        if not self._confident(fitted, self._settings.confidence_threshold):
            return None, f"the audio fits it too loosely (confidence {fitted.confidence})"
        if not self._plausible(fitted, match):
            return None, "implausible for its length"
        return match, ""

    def _act(self, utterance: Utterance, decoded: Decoded, grammar: Grammar, *, pcm: bytes, router: Router,
             cancel: threading.Event, timings: dict[str, float], started: float, t0: float,
             decided: tuple[Match | None] | None = None) -> BrainTurn:
        """Match a decoded utterance (its grammar pinned) and call the router; ``decided``: the
        early decode's decision, when it was made on the same speech."""
        site = utterance.site
        t1 = time.monotonic()
        timings["decode"] = (t1 - t0) * 1000.0
        match = decided[0] if decided is not None else self._decide(pcm, decoded, grammar, timings)
        t2 = time.monotonic()
        timings["match"] = (t2 - t1) * 1000.0
        transcript = _transcript(decoded)
        if match is None or cancel.is_set():
            _LOGGER.info("Rejected %r (%d filler words, confidence %s)", decoded.text, decoded.fillers,
                         "n/a" if decoded.confidence is None else f"{decoded.confidence:.1f}")
            timings["total"] = (time.monotonic() - started) * 1000.0
            return _rejected(transcript, site, timings)
        result = router.call(match.call, site=site)
        t3 = time.monotonic()
        timings["router"] = (t3 - t2) * 1000.0
        timings["end_of_speech_to_action"] = (t3 - utterance.ended_at) * 1000.0
        timings["total"] = (t3 - started) * 1000.0
        return BrainTurn(
            transcript=transcript, tool_calls=(match.call,), results=(result,),
            reply=_reply(result, site), timings_ms=timings, understood=True,
        )

    def _confirm(self, pcm: bytes, utterance: Utterance, router: Router, cancel: threading.Event,
                 timings: dict[str, float]) -> BrainTurn:
        """Decode a yes / no / PIN answer and resolve the waiting call with it."""
        t0 = time.monotonic()
        decoded = self._decoder.decode(pcm, _CONFIRM_SEARCH, verify=self._verify)
        t1 = time.monotonic()
        timings["decode"] = (t1 - t0) * 1000.0
        timings["match"] = 0.0
        answer = None if self._rejects(decoded) or cancel.is_set() else decoded.text
        result = router.answer_confirmation(answer, site=utterance.site)
        t2 = time.monotonic()
        timings["router"] = (t2 - t1) * 1000.0
        timings["end_of_speech_to_action"] = (t2 - utterance.ended_at) * 1000.0
        reply = _reply(result, utterance.site)
        if answer is None and not reply.text:
            reply = Reply(NOT_UNDERSTOOD, utterance.site, is_error=True)
        return BrainTurn(
            transcript=answer, tool_calls=(), results=(result,), reply=reply,
            timings_ms=timings, understood=answer is not None,
        )

    @property
    def _verify(self) -> bool:
        return self._settings.confidence_threshold is not None

    def _rejects(self, decoded: Decoded) -> bool:
        """Filler path won, nothing heard, or the phone-loop check failed."""
        if decoded.rejected:
            return True
        return not self._confident(decoded, self._settings.confidence_threshold)

    def _plausible(self, decoded: Decoded, match: Match) -> bool:
        """Evidence that grows with how easily out-of-domain speech fits the result: verb-less
        short forms and short results need more confidence, long results a fluent speech rate,
        and no pause between words longer than ``max_pause_ms``."""
        if match.slot_first and not self._confident(decoded, SHORT_FORM_CONFIDENCE):
            return False
        phones = sum(len((self._pronouncer.phones(w) or "").split()) for w in decoded.words)
        base = self._settings.confidence_threshold
        if (base is not None and phones < SHORT_PHONES
                and not self._confident(decoded, base + SHORT_SLOPE * (SHORT_PHONES - phones))):
            return False
        rate = phones * 100.0 / max(decoded.speech_frames, 1)
        if phones >= LONG_PHONES and decoded.speech_frames and rate < MIN_LONG_RATE:
            return False
        return decoded.longest_pause * 10 <= self._settings.max_pause_ms

    def _confident(self, decoded: Decoded, threshold: float | None) -> bool:
        """The phone-loop confidence reaches ``threshold`` (always, when the check is off)."""
        if self._settings.confidence_threshold is None or threshold is None:
            return True
        return decoded.confidence is not None and decoded.confidence >= threshold

    def transcribe(self, pcm: bytes, router: Router) -> Decoded:
        """Decode PCM with the command grammar only (no matching, no router call)."""
        grammar = self._pin(router)
        try:
            return self._decoder.decode(trim_silence(pcm), grammar.search)
        finally:
            self._unpin(grammar)


def vocabulary_key(tools: Sequence[Tool]) -> str:
    """Digest of everything the command grammar is made of (see ``PhraseBrain.vocabulary_key``)."""
    digest = hashlib.sha256()
    for tool in tools:
        part = [tool.name, tool.parameters, list(tool.sentences), tool.sensitive is not False]
        digest.update(json.dumps(part, sort_keys=True, default=repr).encode())
        digest.update(b"\0")
    # which names the tools' own sensitivity rules flag (locks, doors) shapes the grammar too
    digest.update(json.dumps(sorted(entity_domains(tools).items())).encode())
    return digest.hexdigest()


def _sensitive(tool: Tool, arguments: Mapping[str, Any]) -> bool:
    """The tool's own sensitivity rule; a rule that fails counts as sensitive (ask, never act)."""
    try:
        return tool.is_sensitive(arguments)
    except Exception:  # a broken rule must not decide that a call is harmless
        _LOGGER.warning("Sensitivity rule of %s failed on %r", tool.name, dict(arguments), exc_info=True)
        return True


def _alike_names(name: str, grammar: Grammar) -> tuple[str, ...]:
    """The grammar's other names sharing ``NAME_LIKENESS`` of the phones of ``name``, the most alike
    first; worked out once per name and grammar (a pass over every name: 8 ms in a 1000-device home)."""
    known = grammar.alike_names.get(name)
    if known is not None:
        return known
    likeness = difflib.SequenceMatcher(None, b=grammar.name_phones[name])  # keeps what it learnt of b
    alike: list[tuple[float, str]] = []
    for other, theirs in grammar.name_phones.items():
        likeness.set_seq1(theirs)
        if other != name and likeness.quick_ratio() >= NAME_LIKENESS:
            ratio = likeness.ratio()
            if ratio >= NAME_LIKENESS:
                alike.append((-ratio, other))
    found = tuple(other for _, other in sorted(alike))
    grammar.alike_names[name] = found  # one dict item set: safe from several turns at once
    return found


def _suffix_states(words: tuple[str, ...], grammar: Grammar) -> list[set[int]]:
    """For each i, the word-graph states from which ``words[i:]`` reaches the final state."""
    accept: list[set[int]] = [set() for _ in range(len(words) + 1)]
    accept[len(words)] = {grammar.final}
    for i in range(len(words) - 1, -1, -1):
        accept[i] = {src for src, dst in grammar.arcs_by_word.get(words[i], ()) if dst in accept[i + 1]}
    return accept


def _after(states: set[int], word: str, grammar: Grammar) -> set[int]:
    """The states one ``word`` leads to from ``states``."""
    return {dst for state in states for dst, w in grammar.arcs_from.get(state, ()) if w == word}


def _differing_frames(words: tuple[str, ...], twin: tuple[str, ...], frames: tuple[int, ...]) -> int:
    """Frames of ``words`` where ``twin`` differs from it: the one word swapped, or the words of a
    span ("forty three" against "fourteen"); at least 1."""
    shorter = min(len(words), len(twin))
    start = next((i for i, (a, b) in enumerate(zip(words, twin, strict=False)) if a != b), shorter)
    tail = 0
    while tail < shorter - start and words[-1 - tail] == twin[-1 - tail]:
        tail += 1
    return max(sum(frames[start:len(words) - tail]), 1)


def _slot_first(template: str) -> bool:
    """Whether a template begins with a slot once leading optional words are dropped ("[the] {name} on")."""
    text = template.strip()
    while text.startswith("["):
        depth = 0
        for i, char in enumerate(text):
            depth += (char == "[") - (char == "]")
            if depth == 0:
                text = text[i + 1:].lstrip()
                break
        else:
            return False
    return text.startswith("{")


def _area_names(intents: IntentSet) -> list[str]:
    from hassil import TextSlotList  # noqa: PLC0415 - only the type check needs it

    areas = intents.slot_lists.get("area")
    if not isinstance(areas, TextSlotList):
        return []
    return [str(v.value_out) for v in areas.values]


def _transcript(decoded: Decoded) -> str | None:
    return None if decoded.rejected else decoded.text


def _reply(result: ToolResult, site: str) -> Reply:
    is_error = result.status is ResultStatus.ERROR
    text = result.speech or ("Sorry, that didn't work." if is_error else "")
    return Reply(text, site, is_error=is_error,
                 expects_answer=result.status is ResultStatus.NEEDS_CONFIRMATION)


def _rejected(transcript: str | None, site: str, timings: Mapping[str, float]) -> BrainTurn:
    return BrainTurn(
        transcript=transcript, tool_calls=(), results=(), reply=Reply(NOT_UNDERSTOOD, site, is_error=True),
        timings_ms=dict(timings), understood=False,
    )


def make_phrase_brain(settings: PhraseSettings) -> PhraseBrain:
    """The phrase brain with its decoder loaded (about 0.3 s), and its verifier when
    ``verifier_dir`` is set (ModelFilesError when that folder or faster-whisper is missing);
    grammars build on first use."""
    verifier = WhisperTranscriber(settings.verifier_dir) if settings.verifier_dir is not None else None
    return PhraseBrain(settings, verifier=verifier)
