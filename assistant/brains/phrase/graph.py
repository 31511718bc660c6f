"""Expand hassil sentence templates over their slot lists into a word graph for pocketsphinx.

The templates are walked once into a graph of text pieces and word boundaries
(``hour[s]`` is the piece ``hour`` then an optional piece ``s``, then a boundary),
and that graph is then read back as whole words between boundaries. Slot lists
(entity names, areas, spelled-out numbers as hassil spells them) are inserted as
prefix trees, so shared first words are decoded once. Words without a pronunciation
cut their branch; branches that can no longer reach the end are pruned.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hassil import (
    Alternative,
    Expression,
    Group,
    IntentData,
    Intents,
    ListReference,
    Permutation,
    RangeSlotList,
    RuleReference,
    Sequence,
    SlotList,
    TextChunk,
    TextSlotList,
    WildcardSlotList,
)
from hassil.numbers import get_rbnf_engine

_LOGGER = logging.getLogger(__name__)

_SPACE = " "


@dataclass
class WordGraph:
    """A directed acyclic graph of words: arcs ``(from, to, word or None for epsilon)``."""

    start: int = 0
    final: int = 1
    n_states: int = 2
    arcs: list[tuple[int, int, str | None]] = field(default_factory=list)

    def new_state(self) -> int:
        """Add a state and return its index."""
        self.n_states += 1
        return self.n_states - 1

    @property
    def words(self) -> set[str]:
        """The distinct words on the arcs."""
        return {w for _, _, w in self.arcs if w is not None}

    def states_within(self, words: int) -> set[int]:
        """States reachable from the start through at most ``words`` arcs."""
        forward: dict[int, list[int]] = defaultdict(list)
        for src, dst, _ in self.arcs:
            forward[src].append(dst)
        frontier = {self.start}
        seen = set(frontier)
        for _ in range(words):
            frontier = {nxt for state in frontier for nxt in forward.get(state, ())} - seen
            seen |= frontier
        return seen

    def prune(self, keep: Callable[[str], bool]) -> None:
        """Drop arcs whose word fails ``keep``, then states off every start-to-final path."""
        arcs = [a for a in self.arcs if a[2] is None or keep(a[2])]
        forward: dict[int, list[int]] = defaultdict(list)
        backward: dict[int, list[int]] = defaultdict(list)
        for src, dst, _ in arcs:
            forward[src].append(dst)
            backward[dst].append(src)
        reach = _closure(self.start, forward)
        coreach = _closure(self.final, backward)
        live = reach & coreach
        self.arcs = [a for a in arcs if a[0] in live and a[1] in live]

    def remove_epsilons(self) -> None:
        """Replace epsilon arcs by direct word arcs.

        pocketsphinx's FSG search follows one null transition per step, so a chain of
        them (nested optional words) would cut sentences short.
        """
        eps: dict[int, list[int]] = defaultdict(list)
        words: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for src, dst, word in self.arcs:
            if word is None:
                eps[src].append(dst)
            else:
                words[src].append((dst, word))
        closures: dict[int, set[int]] = {}

        def closure(state: int) -> set[int]:
            found = closures.get(state)
            if found is None:
                found = _closure(state, eps)
                closures[state] = found
            return found

        arcs: set[tuple[int, int, str | None]] = set()
        sources = {self.start} | {dst for _, dst, w in self.arcs if w is not None}
        for src in sources:
            for mid in closure(src):
                for dst, word in words.get(mid, ()):
                    arcs.add((src, dst, word))
                    if self.final in closure(dst) and dst != self.final:
                        arcs.add((src, self.final, word))
        self.arcs = sorted(arcs, key=lambda a: (a[0], a[1], a[2] or ""))
        self.prune(lambda _: True)


    def merge_equivalent(self) -> None:
        """Merge states from which the same word sequences reach the final state.

        Every template that takes a slot gets its own copy of the slot's prefix tree
        ("turn on the {name}", "turn off the {name}", "is the {name} on"...), so a large
        home repeats every entity name a dozen times. States with the same outgoing words
        into the same (merged) states accept the same endings; merging them (coarsest
        forward bisimulation, by partition refinement) keeps the language, and so every
        transcript, while the grammar pocketsphinx compiles and searches shrinks several
        fold. The start state becomes 0 and the final state 1 again.
        """
        out: dict[int, list[tuple[str | None, int]]] = defaultdict(list)
        states = {self.start, self.final}
        for src, dst, word in self.arcs:
            out[src].append((word, dst))
            states.add(src)
            states.add(dst)
        classes = {state: int(state == self.final) for state in states}
        count = len(set(classes.values()))
        while True:
            ids: dict[tuple[int, frozenset[tuple[str | None, int]]], int] = {}
            refined = {}
            for state in sorted(states):
                signature = (classes[state], frozenset((w, classes[d]) for w, d in out.get(state, ())))
                refined[state] = ids.setdefault(signature, len(ids))
            classes = refined
            if len(ids) == count:
                break
            count = len(ids)
        # renumber: start 0, final 1, the rest in order of first appearance
        order = {classes[self.start]: 0, classes[self.final]: 1}
        for state in sorted(states):
            order.setdefault(classes[state], len(order))
        arcs = {(order[classes[src]], order[classes[dst]], word) for src, dst, word in self.arcs}
        self.start, self.final, self.n_states = 0, 1, len(order)
        self.arcs = sorted(arcs, key=lambda a: (a[0], a[1], a[2] or ""))


def _closure(origin: int, edges: Mapping[int, list[int]]) -> set[int]:
    seen = {origin}
    stack = [origin]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


class _PieceGraph:
    """Arcs labelled with text pieces, boundaries (``" "``) or None (epsilon)."""

    def __init__(self) -> None:
        self.arcs: dict[int, list[tuple[int, str | None]]] = defaultdict(list)
        self.n_states = 1

    def new_state(self) -> int:
        self.n_states += 1
        return self.n_states - 1

    def add(self, src: int, dst: int, label: str | None) -> None:
        self.arcs[src].append((dst, label))

    def step(self, src: int, label: str | None) -> int:
        dst = self.new_state()
        self.add(src, dst, label)
        return dst


def number_words(value: float, language: str = "en") -> set[str]:
    """Every way hassil spells ``value`` (hyphens as spaces), lower case."""
    engine = get_rbnf_engine(language)
    result = engine.format_number(value)
    return {" ".join(text.replace("-", " ").split()).lower() for text in result.text_by_ruleset.values()}


class GraphBuilder:
    """Walk hassil intents into one word graph (start -> any sentence -> final)."""

    def __init__(self, intents: Intents, slot_lists: Mapping[str, SlotList], language: str = "en") -> None:
        self._intents = intents
        self._lists = slot_lists
        self._language = language
        self._pieces = _PieceGraph()
        self._final = self._pieces.new_state()
        self._numbers: dict[float, set[str]] = {}
        self.sentences = 0

    def add_intents(self, names: Iterable[str] | None = None) -> None:
        """Add every sentence of the named intents (all when None)."""
        wanted = set(names) if names is not None else None
        for name, intent in self._intents.intents.items():
            if wanted is not None and name not in wanted:
                continue
            for data in intent.data:
                for sentence in data.sentences:
                    self.add_expression(sentence.expression, data)

    def add_expression(self, expression: Expression, data: IntentData | None = None) -> None:
        """Add one sentence template."""
        start = self._pieces.step(0, _SPACE)
        end = self._walk(expression, start, data)
        if end is not None:
            self._pieces.add(end, self._final, _SPACE)
            self.sentences += 1

    # ------------------------------------------------------------------ templates -> pieces

    def _walk(self, expr: Expression, state: int, data: IntentData | None) -> int | None:
        if isinstance(expr, TextChunk):
            return self._text(expr.original_text, state)
        if isinstance(expr, Group):
            return self._group(expr, state, data)
        if isinstance(expr, ListReference):
            return self._list(expr, state, data)
        if isinstance(expr, RuleReference):
            rule = None
            if data is not None:
                rule = data.expansion_rules.get(expr.rule_name)
            if rule is None:
                rule = self._intents.expansion_rules.get(expr.rule_name)
            if rule is None:
                _LOGGER.warning("Missing expansion rule <%s>", expr.rule_name)
                return None
            return self._walk(rule.expression, state, data)
        return state

    def _text(self, text: str, state: int) -> int:
        piece = ""
        for char in text.lower():
            if char.isspace():
                if piece:
                    state = self._pieces.step(state, piece)
                    piece = ""
                state = self._pieces.step(state, _SPACE)
            else:
                piece += char
        if piece:
            state = self._pieces.step(state, piece)
        return state

    def _group(self, grp: Group, state: int, data: IntentData | None) -> int | None:
        if isinstance(grp, Permutation):
            options = [
                Sequence(items=list(itertools.chain.from_iterable((TextChunk(" "), item) for item in perm)))
                for perm in itertools.permutations(grp.items)
            ]
            return self._group(Alternative(items=list(options)), state, data)
        if isinstance(grp, Alternative):
            end = self._pieces.new_state()
            alive = False
            for item in grp.items:
                item_end = self._walk(item, state, data)
                if item_end is None:
                    continue
                self._pieces.add(item_end, end, None)
                alive = True
            if grp.is_optional:
                self._pieces.add(state, end, None)
                alive = True
            return end if alive else None
        if isinstance(grp, Sequence):
            current: int | None = state
            for item in grp.items:
                if current is None:
                    return None
                current = self._walk(item, current, data)
            return current
        return None

    def _list(self, ref: ListReference, state: int, data: IntentData | None) -> int | None:
        slot_list: SlotList | None = self._lists.get(ref.list_name)
        if slot_list is None and data is not None:
            slot_list = data.slot_lists.get(ref.list_name)
        if slot_list is None:
            slot_list = self._intents.slot_lists.get(ref.list_name)
        if slot_list is None or isinstance(slot_list, WildcardSlotList):
            return None
        if isinstance(slot_list, RangeSlotList):
            phrases: set[str] = set()
            for number in slot_list.get_numbers():
                if number not in self._numbers:
                    self._numbers[number] = number_words(number, self._language)
                phrases |= self._numbers[number]
            return self._trie(state, phrases)
        if isinstance(slot_list, TextSlotList):
            required = _required_values(data, ref.slot_name)
            plain: list[str] = []
            complex_values: list[Expression] = []
            for value in slot_list.values:
                if required is not None and not _context_ok(value.context, required):
                    continue
                expr = value.text_in
                if isinstance(expr, TextChunk):
                    plain.append(expr.original_text)
                else:
                    complex_values.append(expr)
            end = self._pieces.new_state()
            alive = False
            if plain:
                trie_end = self._trie(state, plain)
                if trie_end is not None:
                    self._pieces.add(trie_end, end, None)
                    alive = True
            for expr in complex_values:
                value_end = self._walk(expr, state, data)
                if value_end is not None:
                    self._pieces.add(value_end, end, None)
                    alive = True
            return end if alive else None
        return None

    def _trie(self, state: int, phrases: Iterable[str]) -> int | None:
        """Insert phrases as a prefix tree of whole words; returns the shared end state."""
        end = self._pieces.new_state()
        children: dict[tuple[int, str], int] = {}
        alive = False
        for phrase in phrases:
            words = phrase.lower().split()
            if not words:
                continue
            current = state
            for i, word in enumerate(words):
                label_seq = [word] if i == 0 else [_SPACE, word]
                for label in label_seq:
                    key = (current, label)
                    nxt = children.get(key)
                    if nxt is None:
                        nxt = self._pieces.step(current, label)
                        children[key] = nxt
                    current = nxt
            self._pieces.add(current, end, None)
            alive = True
        return end if alive else None

    # ------------------------------------------------------------------ pieces -> words

    def build(self) -> WordGraph:
        """Read the piece graph back as whole words between boundaries."""
        graph = WordGraph()
        mapping: dict[int, int] = {0: graph.start}
        pending = [0]
        done: set[int] = set()
        arcs: set[tuple[int, int, str | None]] = set()

        def word_state(piece_state: int) -> int:
            if piece_state == self._final:
                return graph.final
            if piece_state not in mapping:
                mapping[piece_state] = graph.new_state()
                pending.append(piece_state)
            return mapping[piece_state]

        while pending:
            boundary = pending.pop()
            if boundary in done:
                continue
            done.add(boundary)
            src = mapping[boundary]
            stack: list[tuple[int, str]] = [(boundary, "")]
            seen: set[tuple[int, str]] = set()
            while stack:
                state, word = stack.pop()
                if (state, word) in seen:
                    continue
                seen.add((state, word))
                for dst, label in self._pieces.arcs.get(state, ()):
                    if label is None:
                        stack.append((dst, word))
                    elif label == _SPACE:
                        arcs.add((src, word_state(dst), word or None))
                    else:
                        stack.append((dst, word + label))
        graph.arcs = sorted(arcs, key=lambda a: (a[0], a[1], a[2] or ""))
        return graph


def _required_values(data: IntentData | None, slot_name: str) -> dict[str, Any] | None:
    """Context a list value must carry for this template (the domain filter for names)."""
    if data is None or slot_name != "name" or not data.requires_context:
        return None
    domains = data.requires_context.get("domain")
    if domains is None:
        return None
    return {"domain": [domains] if isinstance(domains, str) else list(domains)}


def _context_ok(context: Mapping[str, Any] | None, required: Mapping[str, Any]) -> bool:
    if not context:
        return False
    return all(context.get(key) in allowed for key, allowed in required.items())
