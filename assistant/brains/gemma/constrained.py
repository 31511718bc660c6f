"""Grammar-constrained, jump-forward decoding of Gemma 4's native function calls.

From the live tool declarations (the tools the prompt declares) this module builds a
grammar of what may follow ``<|tool_call>``::

    call:NAME{key:VALUE,...}<tool_call|>

with the declared tool names, each tool's declared argument names (any order, each at
most once, the required ones present), values by their declared type (``<|"|>``-quoted
strings, enums from the live inventory, integers and numbers in the formats the parser
reads, ``true``/``false``, ``null`` when nullable, arrays, nested objects). Outside a
call the model may reply in free text; only control tokens the parser would refuse
there (``<tool_call|>``, ``<|"|>``, ``<|tool>`` ...) are masked.

Decoding (``ConstrainedDecoder.generate``):

* where the grammar allows several continuations the model chooses: its logits are only
  masked where a token is invalid, so a greedy path that was already valid is unchanged;
* where exactly one continuation is valid (``call:`` after ``<|tool_call>``, the rest of
  a tool name or an entity name once it is unique, ``:<|"|>`` after a string key,
  ``<tool_call|>`` after the last argument ...) the whole forced run is tokenised as the
  model's tokenizer does and appended together with the chosen token in one batched
  decoder pass, instead of one pass per token.

* drafting (greedy only): the grammar's guess where it branches (``}``/``<tool_call|>``
  when the required arguments are there, else the next required key) rides on the same
  pass, and ``<|tool_call>call:...`` rides on the prompt's prefill (``prefill``); drafted
  tokens are kept only as far as the model's own masked greedy pick agrees and cut from
  the cache otherwise, so the tokens are those of one masked decoder run per token.

Forced-run tokenisation: the run is encoded by the model's own tokenizer and cut back to
the last token boundary no merge can cross whatever the model writes next: the run ends
in a special token, or no token of the vocabulary spells a suffix of the run followed by
a continuation the grammar allows (``Vocabulary.crosses``). The rest is left to the
model, masked to the forced text, so the cache holds the tokens the tokenizer writes
(a one-character look-ahead is not enough: ``Hass`` + ``T`` is no token, ``HassTurnOn``
is). A character split over byte tokens is stepped through the grammar whole.

The grammar is character-level (a special token is one symbol) and simulated as a set
of stack states (an NFA: enum values sharing a prefix, a number that may end or go on).
Not covered: undeclared keys (``additionalProperties``) are refused; a call must close
with ``<tool_call|>`` (the ``<turn|>``/end-of-text closings the parser tolerates are
masked); a bare ``call:NAME{`` spelled in plain text is left to the parser.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from assistant.brains.gemma.runtime import Cancelled, Generation, KVCache, Sampler
from assistant.brains.gemma.speculative import Drafter
from assistant.tools.base import Tool
from assistant.tools.gemma_format import QUOTE, format_value, sanitize

CALL_OPEN = "<|tool_call>"
CALL_CLOSE = "<tool_call|>"
ANY = "\x00any"
"""Next-symbol marker: any plain character (inside a free string)."""

# Control tokens the parser refuses in spoken text (outside a call).
_REFUSED_IN_TEXT = ("<tool_call|>", "<|tool>", "<tool|>", "<tool_response|>", QUOTE)

Frame = tuple["_Node", Any]
State = tuple[Frame, ...]
ACCEPT: State = ()


def _done(rest: State) -> list[State]:
    """The states after the node whose parent frames are ``rest`` has completed."""
    if not rest:
        return [ACCEPT]
    node, data = rest[-1]
    states: list[State] = node.child_done(data, rest[:-1])
    return states


class _Node:
    """A grammar element; every state's top frame is one that consumes a symbol."""

    def start(self, rest: State) -> list[State]:
        raise NotImplementedError

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        raise NotImplementedError

    def child_done(self, data: Any, rest: State) -> list[State]:
        raise NotImplementedError

    def symbols(self, data: Any) -> frozenset[str]:
        raise NotImplementedError


class _Lit(_Node):
    def __init__(self, syms: Sequence[str]) -> None:
        self.syms = tuple(syms)

    def start(self, rest: State) -> list[State]:
        return [(*rest, (self, 0))] if self.syms else _done(rest)

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        if self.syms[data] != sym:
            return []
        if data + 1 == len(self.syms):
            return _done(rest)
        return [(*rest, (self, data + 1))]

    def symbols(self, data: Any) -> frozenset[str]:
        return frozenset((self.syms[data],))


class _Seq(_Node):
    def __init__(self, parts: Sequence[_Node]) -> None:
        self.parts = tuple(parts)

    def start(self, rest: State) -> list[State]:
        return self.parts[0].start((*rest, (self, 0))) if self.parts else _done(rest)

    def child_done(self, data: Any, rest: State) -> list[State]:
        index = int(data) + 1
        if index < len(self.parts):
            return self.parts[index].start((*rest, (self, index)))
        return _done(rest)


class _Alt(_Node):
    def __init__(self, options: Sequence[_Node]) -> None:
        self.options = tuple(options)

    def start(self, rest: State) -> list[State]:
        return [s for option in self.options for s in option.start(rest)]


class _Text(_Node):
    """Zero or more plain characters (no special token): the body of a free string."""

    def start(self, rest: State) -> list[State]:
        return [(*rest, (self, None)), *_done(rest)]

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        return self.start(rest) if len(sym) == 1 else []

    def symbols(self, data: Any) -> frozenset[str]:
        return frozenset((ANY,))


_DIGITS = frozenset("0123456789")
_NONZERO = frozenset("123456789")


class _Number(_Node):
    """``-?(0|[1-9][0-9]*)`` and, unless integer, an optional ``.[0-9]+`` (what the parser reads)."""

    # phases: 0 start, 1 after '-', 2 after a leading 0, 3 in integer digits, 4 after '.', 5 in fraction
    _ACCEPTING = frozenset((2, 3, 5))

    def __init__(self, integer: bool) -> None:
        self.integer = integer

    def start(self, rest: State) -> list[State]:
        return [(*rest, (self, 0))]

    def _next(self, phase: int, sym: str) -> int | None:
        if phase == 0 and sym == "-":
            return 1
        if phase in (0, 1):
            return 2 if sym == "0" else 3 if sym in _NONZERO else None
        if phase == 3 and sym in _DIGITS:
            return 3
        if phase in (2, 3) and sym == "." and not self.integer:
            return 4
        if phase in (4, 5) and sym in _DIGITS:
            return 5
        return None

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        phase = self._next(data, sym)
        if phase is None:
            return []
        states: list[State] = []
        if phase != 2 or not self.integer:  # an integer's leading 0 ends it
            states.append((*rest, (self, phase)))
        if phase in self._ACCEPTING:
            states.extend(_done(rest))
        return states

    def symbols(self, data: Any) -> frozenset[str]:
        if data == 0:
            return _DIGITS | {"-"}
        if data == 1 or data in (4, 5):
            return _DIGITS
        if data == 2:
            return frozenset(".")
        return _DIGITS | (frozenset() if self.integer else {"."})


class _Array(_Node):
    def __init__(self, item: _Node) -> None:
        self.item = item

    def start(self, rest: State) -> list[State]:
        return [(*rest, (self, "["))]

    def _items(self, rest: State, *, allow_close: bool) -> list[State]:
        states = self.item.start((*rest, (self, "item")))
        if allow_close:
            states.append((*rest, (self, "]")))
        return states

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        if data != sym:
            return []
        if sym == "[":
            return self._items(rest, allow_close=True)
        if sym == ",":
            return self._items(rest, allow_close=False)
        return _done(rest)

    def child_done(self, data: Any, rest: State) -> list[State]:
        return [(*rest, (self, ",")), (*rest, (self, "]"))]

    def symbols(self, data: Any) -> frozenset[str]:
        return frozenset((data,))


class _Object(_Node):
    """``{key:value,...}``: declared keys in any order, each once, the required ones present."""

    def __init__(self, properties: Mapping[str, _Node], required: Iterable[str]) -> None:
        self.keys = {name: _Seq([_Lit([*name, ":"]), value]) for name, value in properties.items()}
        self.names = {id(seq): name for name, seq in self.keys.items()}
        self.required = frozenset(required) & frozenset(self.keys)

    def start(self, rest: State) -> list[State]:
        return [(*rest, (self, (frozenset(), "{")))]

    def _keys(self, used: frozenset[str], rest: State) -> list[State]:
        return [
            s
            for name, node in self.keys.items()
            if name not in used
            for s in node.start((*rest, (self, (used | {name}, "value"))))
        ]

    def _after(self, used: frozenset[str], rest: State) -> list[State]:
        states: list[State] = []
        if self.required <= used:
            states.append((*rest, (self, (used, "}"))))
        if len(used) < len(self.keys):
            states.append((*rest, (self, (used, ","))))
        return states

    def advance(self, data: Any, sym: str, rest: State) -> list[State]:
        used, phase = data
        if sym != phase:
            return []
        if sym == "{":
            states = self._keys(used, rest)
            if self.required <= used:
                states.append((*rest, (self, (used, "}"))))
            return states
        if sym == ",":
            return self._keys(used, rest)
        return _done(rest)

    def child_done(self, data: Any, rest: State) -> list[State]:
        return self._after(data[0], rest)

    def symbols(self, data: Any) -> frozenset[str]:
        return frozenset((data[1],))


def _quoted(body: _Node) -> _Node:
    return _Seq([_Lit([QUOTE]), body, _Lit([QUOTE])])


def _rendered(value: Any) -> _Lit:
    """A literal value exactly as the template's format_argument writes it."""
    return _Lit(symbols_of(format_value(value)))


def _value_node(schema: Mapping[str, Any], depth: int = 0) -> _Node:
    """The grammar of one declared value."""
    if depth > 8:
        raise ValueError("schema nested too deep")
    kinds = schema.get("type")
    kind_list = [str(k) for k in kinds] if isinstance(kinds, list) else [str(kinds or "string")]
    nullable = bool(schema.get("nullable")) or "null" in kind_list
    kind = next((k for k in kind_list if k != "null"), "string").lower()
    options: list[_Node]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        options = [_rendered(item) for item in enum]
    elif kind == "string":
        options = [_quoted(_Text())]
    elif kind in ("integer", "number"):
        options = [_Number(integer=kind == "integer")]
    elif kind == "boolean":
        options = [_rendered(True), _rendered(False)]
    elif kind == "array":
        items = schema.get("items")
        options = [_Array(_value_node(items if isinstance(items, Mapping) else {}, depth + 1))]
    elif kind == "object":
        options = [_object_node(schema, depth + 1)]
    else:
        options = [_quoted(_Text())]
    if nullable:
        options.append(_rendered(None))
    return options[0] if len(options) == 1 else _Alt(options)


def _object_node(schema: Mapping[str, Any], depth: int = 0) -> _Object:
    properties = schema.get("properties")
    props = properties if isinstance(properties, Mapping) else {}
    required = schema.get("required")
    nodes = {
        sanitize(str(name)): _value_node(value if isinstance(value, Mapping) else {}, depth)
        for name, value in props.items()
    }
    return _Object(nodes, [sanitize(str(r)) for r in required] if isinstance(required, list) else [])


def symbols_of(text: str, specials: Sequence[str] = (QUOTE, CALL_OPEN, CALL_CLOSE)) -> list[str]:
    """Text as grammar symbols: each special-token string is one symbol, the rest characters."""
    out: list[str] = []
    i = 0
    while i < len(text):
        for special in specials:
            if text.startswith(special, i):
                out.append(special)
                i += len(special)
                break
        else:
            out.append(text[i])
            i += 1
    return out


def _spelling_keys(states: frozenset[State]) -> Iterator[tuple[str, str, _Object, int, frozenset[str]]]:
    """States spelling an object's key: its name, the next symbol, the object, how far into the
    key, and the keys written before it. (Part 1 of a key's sequence is its value: not a key.)"""
    for state in states:
        if len(state) < 3:
            continue
        (top, index), (seq, part), (obj, data) = state[-1], state[-2], state[-3]
        if not isinstance(obj, _Object) or not isinstance(top, _Lit) or data[1] != "value" or part:
            continue
        name = obj.names.get(id(seq))
        if name is not None:
            yield name, top.syms[index], obj, index, data[0] - {name}


class CallGrammar:
    """What may follow ``<|tool_call>`` for a set of tools (their declarations as the prompt shows)."""

    def __init__(self, tools: Sequence[Tool]) -> None:
        options = []
        for tool in tools:
            schema = tool.parameters if isinstance(tool.parameters, Mapping) else {}
            options.append(_Seq([_Lit(list(sanitize(tool.name))), _object_node(schema)]))
        self.names = tuple(sanitize(t.name) for t in tools)
        self._root = _Seq([_Lit(list("call:")), _Alt(options), _Lit([CALL_CLOSE])])

    def start(self) -> frozenset[State]:
        """The states right after ``<|tool_call>``."""
        return frozenset(self._root.start(()))

    @staticmethod
    def step(states: frozenset[State], sym: str) -> frozenset[State]:
        """The states after one more symbol (empty: invalid)."""
        out: set[State] = set()
        for state in states:
            if state:
                node, data = state[-1]
                out.update(node.advance(data, sym, state[:-1]))
        return frozenset(out)

    @staticmethod
    def next_symbols(states: frozenset[State]) -> frozenset[str]:
        """Every symbol some state accepts next (``ANY``: any plain character)."""
        out: set[str] = set()
        for state in states:
            if state:
                node, data = state[-1]
                out.update(node.symbols(data))
        return frozenset(out)

    @classmethod
    def draft_symbol(cls, states: frozenset[State]) -> str | None:
        """A guess where the grammar branches: close what is open, else the next required key.

        Only a guess (the target verifies it): ``<tool_call|>``, ``}`` or ``]`` when
        allowed, else the alphabetically first required key not yet written, else ``,``.
        """
        nxt = cls.next_symbols(states)
        if ANY in nxt or ACCEPT in states:
            return None
        if len(nxt) == 1:
            return next(iter(nxt))
        for sym in (CALL_CLOSE, "}", "]"):
            if sym in nxt:
                return sym
        keys = [
            (name, sym) for name, sym, obj, _index, _written in _spelling_keys(states) if name in obj.required
        ]
        if keys:
            return min(keys)[1]
        return "," if "," in nxt else None

    @staticmethod
    def keys_ahead(states: frozenset[State]) -> dict[str, str]:
        """Where a key may start: its first symbol -> the key, for the keys after the last one written.

        Gemma's chat template writes a call's arguments sorted by key (``dictsort``), so the model's
        own calls most likely come that way: after ``{`` any key, after ``brightness:30,`` the keys
        after ``brightness``. Only an order for branch rows (every valid key stays allowed).
        """
        ahead: dict[str, str] = {}
        for name, sym, _obj, index, written in _spelling_keys(states):
            if index == 0 and (not written or name > max(written)):
                ahead[sym] = min(ahead.get(sym, name), name)
        return ahead

    def accepts(self, text: str) -> bool:
        """True when ``text`` (after ``<|tool_call>``) is one whole valid call."""
        states = self.start()
        for sym in symbols_of(text):
            states = self.step(states, sym)
            if not states:
                return False
        return ACCEPT in states


class Model(Protocol):
    """What the decoder needs from GemmaRuntime (a fake in unit tests)."""

    def prefill(
        self,
        cache: KVCache,
        ids: Sequence[int],
        *,
        audio: npt.NDArray[Any] | None = None,
        chunk: int = 0,
        cancel: threading.Event | None = None,
        rows: int = 0,
    ) -> tuple[npt.NDArray[Any], KVCache]: ...

    def verify(
        self, cache: KVCache, ids: Sequence[int], *, cancel: threading.Event | None = None
    ) -> tuple[npt.NDArray[Any], KVCache]: ...

    def encode(self, text: str) -> list[int]: ...


@runtime_checkable
class RowModel(Model, Protocol):
    """A Model that can feed several continuations in one pass (GemmaRuntime.verify_rows)."""

    batched: bool

    def verify_rows(
        self, cache: KVCache, rows: Sequence[Sequence[int]], *, cancel: threading.Event | None = None
    ) -> tuple[npt.NDArray[Any], Callable[[int, int], KVCache]]: ...


@dataclass(frozen=True)
class Vocabulary:
    """Each token id's grammar symbols (computed lazily), the special ids and the sorted plain pieces."""

    piece: Callable[[int], str]
    """Text of one id, special tokens kept."""
    specials: Mapping[int, str]
    """Special token id -> its string."""
    all_pieces: Callable[[], list[str]] = list
    """The text of every id (for the merge-boundary check)."""
    text: Callable[[list[int]], str] | None = None
    """Text of several ids together (a character split over byte tokens decodes whole)."""
    raw: Callable[[int], bytes] | None = None
    """The UTF-8 bytes of one id (a byte token: its byte)."""
    _sorted: list[list[str]] = field(default_factory=list, compare=False, repr=False)
    _longest: list[int] = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def symbols(self, token: int, cache: dict[int, tuple[str, ...]]) -> tuple[str, ...]:
        found = cache.get(token)
        if found is None:
            special = self.specials.get(token)
            found = (special,) if special is not None else tuple(self.piece(token))
            cache[token] = found
        return found

    def sorted_pieces(self) -> list[str]:
        """Every plain token's text, sorted (built once, on first use)."""
        with self._lock:
            if not self._sorted:
                texts = self.all_pieces()
                plain = {t for i, t in enumerate(texts) if i not in self.specials and t and "\ufffd" not in t}
                self._sorted.append(sorted(plain))
                self._longest.append(max((len(t) for t in plain), default=0))
            return self._sorted[0]

    def crosses(self, left: str, viable: Callable[[str], bool], first: frozenset[str] | None = None) -> bool:
        """True when some token's text is a suffix of ``left`` followed by a viable continuation.

        If none is, no merge of the tokenizer can cross the end of ``left``: the tokens of
        ``left`` are the same whatever follows (merges only ever grow tokens). ``first``: the
        characters that may come next (None: any), to look only where a crossing could be.
        """
        pieces = self.sorted_pieces()
        for start in range(max(0, len(left) - self._longest[0]), len(left)):
            suffix = left[start:]
            heads = [suffix] if first is None else [suffix + c for c in sorted(first)]
            for head in heads:
                at = bisect.bisect_left(pieces, head)
                while at < len(pieces) and pieces[at].startswith(head):
                    if len(pieces[at]) > len(suffix) and viable(pieces[at][len(suffix) :]):
                        return True
                    at += 1
        return False


def vocabulary_of(tokenizer: Any) -> Vocabulary:
    """The Vocabulary of a ``tokenizers.Tokenizer``."""
    specials = {int(i): str(t.content) for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}

    def piece(token: int) -> str:
        return str(tokenizer.decode([token], skip_special_tokens=False))

    def all_pieces() -> list[str]:
        ids = [[i] for i in range(int(tokenizer.get_vocab_size()))]
        return [str(t) for t in tokenizer.decode_batch(ids, skip_special_tokens=False)]

    def text(ids: list[int]) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=False))

    def raw(token: int) -> bytes:
        whole = piece(token)
        if "\ufffd" not in whole:
            return whole.encode("utf-8")
        name = str(tokenizer.id_to_token(token))
        match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", name)  # SentencePiece byte fallback
        if match:
            return bytes([int(match.group(1), 16)])
        if all(c in _BYTE_LEVEL for c in name):  # GPT-2 style byte-level alphabet
            return bytes(_BYTE_LEVEL[c] for c in name)
        return whole.encode("utf-8")

    return Vocabulary(piece, specials, all_pieces, text, raw)


def _byte_level() -> dict[str, int]:
    """The byte-level BPE alphabet: printable stand-in character -> byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {chr(b): b for b in keep}
    extra = 0
    for b in range(256):
        if b not in keep:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_LEVEL = _byte_level()


def _utf8_split(data: bytes) -> tuple[str, bytes] | None:
    """Decode the whole characters of ``data``; the trailing incomplete bytes; None when invalid."""
    try:
        return data.decode("utf-8"), b""
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8"), data[exc.start :]
        return None


@dataclass(frozen=True)
class Opened:
    """A prompt prefilled with the opening draft after it (ConstrainedDecoder.prefill)."""

    rows: npt.NDArray[Any]
    """Logits after the prompt's last id and after each drafted id."""
    cache: KVCache
    """The cache with the prompt and the whole draft."""
    draft: tuple[int, ...]


@dataclass
class Cursor:
    """Where decoding is in the round's grammar: free text (None), or inside a call (NFA states)."""

    states: frozenset[State] | None = None
    pending: bytes = b""
    """The first bytes of a character split over byte tokens (inside a call)."""


class ConstrainedDecoder:
    """Masked, jump-forward decoding of one round for one grammar (thread-safe per call)."""

    def __init__(
        self, grammar: CallGrammar, vocabulary: Vocabulary, stops: Iterable[int], *, max_forced: int = 256
    ) -> None:
        self.grammar = grammar
        self.vocabulary = vocabulary
        self.stops = frozenset(stops)
        self.max_forced = max_forced
        by_text = {text: tid for tid, text in vocabulary.specials.items()}
        self.call_open = by_text.get(CALL_OPEN)
        self._refused = frozenset(by_text[t] for t in _REFUSED_IN_TEXT if t in by_text)
        self._symbols: dict[int, tuple[str, ...]] = {}
        self.drafted = 0
        """Draft tokens fed so far (figures)."""
        self.accepted = 0
        """Of those, the ones the model's own pick agreed with."""
        self.branch_passes = 0
        """Passes that fed branch rows (generate's ``branches``)."""
        self.branch_rows = 0
        """Rows fed in those passes."""
        self.branch_hits = 0
        """Of those passes, the ones where the model's pick was the first token of a row."""
        self._lock = threading.Lock()

    def in_call(self) -> Cursor:
        """The cursor right after ``<|tool_call>`` (a prompt that already opened a call)."""
        return Cursor(self.grammar.start())

    def after(self, cursor: Cursor, token: int) -> Cursor | None:
        """The cursor after ``token``; None when the grammar refuses it."""
        return self._after(cursor, token)

    # -- the mask ------------------------------------------------------------------------

    def _after(self, cursor: Cursor, token: int) -> Cursor | None:  # noqa: PLR0911
        """The cursor after ``token``; None when the grammar refuses it."""
        with self._lock:
            syms = self.vocabulary.symbols(token, self._symbols)
        if cursor.states is None:
            if token == self.call_open:
                return Cursor(self.grammar.start())
            if token in self._refused:
                return None
            return cursor
        if token in self.stops or not syms:
            return None
        states = cursor.states
        pending = b""
        if (cursor.pending or "\ufffd" in syms) and self.vocabulary.raw is not None:
            # A character split over byte tokens: step the grammar by whole characters only.
            split = _utf8_split(cursor.pending + self.vocabulary.raw(token))
            if split is None:
                return None
            text, pending = split
            syms = tuple(text)
        for sym in syms:
            states = self.grammar.step(states, sym)
            if not states:
                return None
        if pending:
            nxt = self.grammar.next_symbols(states)
            if ANY not in nxt and not any(c.encode("utf-8").startswith(pending) for c in nxt if len(c) == 1):
                return None
            return Cursor(states, pending)
        if ACCEPT in states:
            return Cursor(None) if states == {ACCEPT} else None
        return Cursor(states)

    @staticmethod
    def _candidates(logits: npt.NDArray[Any], want: int) -> Iterator[npt.NDArray[Any]]:
        """Token ids best first: the top few (cheap on a 262k vocabulary), then all of them."""
        few = min(logits.shape[0], max(64, 4 * want))
        if few < logits.shape[0]:
            top = np.argpartition(-logits, few - 1)[:few]
            yield top[np.argsort(-logits[top], kind="stable")]
        yield np.argsort(-logits, kind="stable")

    def choose(self, logits: npt.NDArray[Any], cursor: Cursor, sampler: Sampler) -> tuple[int, Cursor]:
        """The sampler's pick among the valid tokens only (greedy: the best valid one)."""
        best = int(np.argmax(logits))
        after = self._after(cursor, best)
        if after is not None and sampler.sampling.temperature <= 0.0:
            return best, after
        want = 1 if sampler.sampling.temperature <= 0.0 else max(1, sampler.sampling.top_k)
        valid: dict[int, Cursor] = {}
        for order in self._candidates(logits, want):
            for raw in order:
                candidate = int(raw)
                if candidate in valid:
                    continue
                found = self._after(cursor, candidate)
                if found is not None:
                    valid[candidate] = found
                    if len(valid) >= want:
                        break
            if len(valid) >= want:
                break
        if not valid:
            # No whole token fits (a character of an enum value split over byte tokens): leave the
            # rest to the model unconstrained; the parser still checks what it writes.
            return best, Cursor(None)
        if sampler.sampling.temperature <= 0.0:
            token = next(iter(valid))
            return token, valid[token]
        masked = np.full_like(logits, -np.inf)
        ids = np.fromiter(valid, dtype=np.int64)
        masked[ids] = logits[ids]
        token = sampler(masked)
        return token, valid[token]

    # -- jump-forward ---------------------------------------------------------------------

    def forced(self, cursor: Cursor, encode: Callable[[str], list[int]]) -> tuple[list[int], Cursor]:
        """The forced run after ``cursor`` as the tokenizer writes it (maybe none), and the cursor after."""
        if cursor.states is None or cursor.pending:
            return [], cursor
        states = cursor.states
        syms: list[str] = []
        while len(syms) < self.max_forced:
            nxt = self.grammar.next_symbols(states)
            if len(nxt) != 1 or ANY in nxt or ACCEPT in states:
                break
            sym = next(iter(nxt))
            syms.append(sym)
            states = self.grammar.step(states, sym)
        if not syms:
            return [], cursor
        return self._stable_prefix(cursor, syms, encode)

    def _spelled(self, ids: list[int]) -> list[str]:
        """The symbols ids spell together."""
        if self.vocabulary.text is not None:
            return symbols_of(self.vocabulary.text(ids))
        kept: list[str] = []
        with self._lock:
            for token in ids:
                kept.extend(self.vocabulary.symbols(token, self._symbols))
        return kept

    def _walk(self, states: frozenset[State], syms: Iterable[str]) -> frozenset[State]:
        for sym in syms:
            states = self.grammar.step(states, sym)
            if not states:
                break
        return states

    def _stable_prefix(
        self, cursor: Cursor, syms: list[str], encode: Callable[[str], list[int]]
    ) -> tuple[list[int], Cursor]:
        """The tokenizer's encoding of ``syms`` (valid from ``cursor``), cut back to a boundary
        no merge can cross whatever the model writes next; and the cursor after it."""
        ids = encode("".join(syms))
        start = cursor.states or frozenset()
        for keep in range(len(ids), 0, -1):
            kept = self._spelled(ids[:keep])
            if kept != syms[: len(kept)]:
                continue
            states = self._walk(start, kept)
            if not states:
                continue
            tail = len(kept)
            while tail > 0 and len(kept[tail - 1]) == 1:
                tail -= 1
            left = "".join(kept[tail:])
            if ACCEPT in states or not left:
                return ids[:keep], Cursor(None if states == {ACCEPT} else states)

            def viable(rest: str, states: frozenset[State] = states) -> bool:
                return bool(self._walk(states, rest)) if rest else False

            nxt = self.grammar.next_symbols(states)
            first = None if ANY in nxt else frozenset(c for c in nxt if len(c) == 1)
            if not self.vocabulary.crosses(left, viable, first):
                return ids[:keep], Cursor(states)
        return [], cursor

    # -- drafting -------------------------------------------------------------------------

    def draft(self, cursor: Cursor, encode: Callable[[str], list[int]], limit: int) -> list[int]:
        """Tokens the grammar guesses after ``cursor`` (CallGrammar.draft_symbol), to be verified."""
        if cursor.states is None or cursor.pending or limit <= 0:
            return []
        syms = self._guessed(cursor.states)
        if not syms:
            return []
        # A draft needs no stable boundary (the model verifies every token): the tokenizer's own
        # encoding, kept as far as it spells the drafted symbols. So forced text the jump could
        # not take (``Hass`` when ``HassTurnOn`` is one token) is drafted, not left to a pass.
        ids = encode("".join(syms))
        start = cursor.states
        for keep in range(len(ids), 0, -1):
            kept = self._spelled(ids[:keep])
            if kept == syms[: len(kept)] and self._walk(start, kept):
                return ids[: min(keep, limit)]
        return []

    def _guessed(self, states: frozenset[State], syms: Sequence[str] = ()) -> list[str]:
        """``syms`` and the grammar's draft symbols after them (CallGrammar.draft_symbol)."""
        out = list(syms)
        while len(out) < self.max_forced and ACCEPT not in states:
            sym = self.grammar.draft_symbol(states)
            if sym is None:
                break
            out.append(sym)
            states = self.grammar.step(states, sym)
        return out

    def branches(
        self, cursor: Cursor, encode: Callable[[str], list[int]], rows: int, limit: int
    ) -> list[list[int]]:
        """The valid continuations where the grammar branches next, at most ``rows`` of ``limit`` tokens.

        One per symbol the grammar allows after ``cursor``: the first token of that symbol and
        the grammar's draft after it as the tokenizer writes them, then the forced run after
        that token and the grammar's draft after the run; every token checked against the
        grammar (so no row is ever invalid). The grammar's own guess comes first. None where
        the grammar does not branch or cannot be enumerated (free text, a string's body, a
        split character).
        """
        if cursor.states is None or cursor.pending or rows < 2 or limit <= 0:
            return []
        states = cursor.states
        nxt = self.grammar.next_symbols(states)
        if ANY in nxt or ACCEPT in states or len(nxt) < 2:
            return []
        guess = self.grammar.draft_symbol(states)
        ahead = self.grammar.keys_ahead(states)
        out: list[list[int]] = []
        firsts: set[int] = set()
        for sym in sorted(nxt, key=lambda s: (s not in ahead, s != guess, ahead.get(s, ""), s)):
            # The first token as the tokenizer writes this continuation (the model's likely pick),
            # then what token-by-token decoding feeds after that pick: its forced run, then the
            # grammar's draft (as _accept keeps them).
            head = self._allowed(
                cursor, encode("".join(self._guessed(self.grammar.step(states, sym), [sym])))
            )
            if not head or head[0] in firsts:
                continue
            after = self._after(cursor, head[0])
            if after is None:  # pragma: no cover - _allowed checked it
                continue
            run, after = self.forced(after, encode)
            firsts.add(head[0])
            out.append([head[0], *run, *self.draft(after, encode, limit - 1 - len(run))][:limit])
            if len(out) >= rows:
                break
        return out if len(out) >= 2 else []

    def _guess_first(self, cursor: Cursor) -> bool:
        """The grammar has a guess at ``cursor`` (branches puts its row first)."""
        return cursor.states is not None and self.grammar.draft_symbol(cursor.states) is not None

    def _allowed(self, cursor: Cursor, proposed: Sequence[int]) -> list[int]:
        """The proposal up to the first token the grammar refuses or a stop (picked unfed anyway)."""
        kept: list[int] = []
        for token in proposed:
            if token in self.stops:
                break
            after = self._after(cursor, token)
            if after is None:
                break
            kept.append(token)
            cursor = after
        return kept

    def opening(self, encode: Callable[[str], list[int]], limit: int = 64) -> list[int]:
        """The draft that rides on the prompt's prefill: ``<|tool_call>``, its forced run and the
        grammar's draft after that (the forced text whose tokens the jump could not fix)."""
        if self.call_open is None:
            return []
        run, cursor = self.forced(self.in_call(), encode)
        return [self.call_open, *run, *self.draft(cursor, encode, limit)]

    def prefill(
        self,
        model: Model,
        cache: KVCache,
        ids: Sequence[int],
        *,
        audio: npt.NDArray[Any] | None = None,
        chunk: int = 0,
        cancel: threading.Event | None = None,
    ) -> Opened:
        """Prefill the prompt with the opening draft after it, verified in the same (last) run."""
        draft = self.opening(model.encode)
        rows, cache = model.prefill(
            cache, [*ids, *draft], audio=audio, chunk=chunk, cancel=cancel, rows=len(draft) + 1
        )
        return Opened(rows, cache, tuple(draft))

    def _accept(
        self,
        rows: npt.NDArray[Any],
        guess: Sequence[int],
        cursor: Cursor,
        sampler: Sampler,
        tokens: list[int],
        *,
        encode: Callable[[str], list[int]],
    ) -> tuple[int, npt.NDArray[Any], Cursor, list[int]]:
        """Keep the drafted tokens token-by-token masked decoding would write; rows[i] follows guess[i-1].

        As that decoding does: the model's masked pick must agree with a drafted token, and after
        each pick the forced run (the jump-forward tokens) is taken whatever the model's logits
        say, so drafted tokens there must be those of the forced run. A forced run the draft
        stops in is returned as ``pending`` (not in ``tokens``, not fed: the next pass feeds it
        before the model picks again). Returns the tokens kept, the logits after the last of
        them (meaningless when pending), the cursor (after the pending run too) and pending.
        """
        kept = 0
        logits = rows[0]
        pending: list[int] = []
        while kept < len(guess):
            pick, after = self.choose(logits, cursor, sampler)
            if pick != guess[kept]:
                break
            kept += 1
            tokens.append(pick)
            cursor = after
            run, after_run = self.forced(cursor, encode)
            same = 0
            while same < len(run) and kept + same < len(guess) and guess[kept + same] == run[same]:
                same += 1
            tokens.extend(run[:same])
            kept += same
            if same < len(run):
                pending, cursor = run[same:], after_run
                break
            cursor = after_run
            logits = rows[kept]
        self.drafted += len(guess)
        self.accepted += kept
        return kept, logits, cursor, pending

    def _guess(
        self,
        cursor: Cursor,
        encode: Callable[[str], list[int]],
        drafter: Drafter | None,
        *,
        context: list[int],
        lookahead: int,
        room: int,
    ) -> list[int]:
        """The draft of one pass: the grammar's guess, the drafter's proposal cut where the grammar
        refuses a token (``context``: the ids before it), first whichever comes first."""
        grammar_first = drafter is None or not drafter.over_grammar
        guess = self.draft(cursor, encode, room) if grammar_first else []
        if drafter is not None and not guess:
            limit = min(lookahead, room)
            guess = self._allowed(cursor, drafter.propose(context, limit)[:limit])
        if not grammar_first and not guess:
            guess = self.draft(cursor, encode, room)
        return guess

    def _branch_pass(
        self,
        model: RowModel,
        cache: KVCache,
        shared: list[int],
        *,
        cursor: Cursor,
        sampler: Sampler,
        tokens: list[int],
        cancel: threading.Event | None,
        budget: tuple[int, int, int],
    ) -> tuple[KVCache, npt.NDArray[Any], Cursor, list[int]] | None:
        """One pass over ``shared`` + each branch row; keeps the row the model picks, as far as it agrees.

        ``budget``: the most rows, the most positions over all rows (each row is ``shared`` +
        at most the same number of candidate tokens), the tokens left in the round. None
        (nothing fed) where the grammar does not branch after ``shared``, the budget leaves
        fewer than two rows, or it would cut the grammar's guess short (row 0; the single
        chain of the guess feeds it whole instead). The pick after the shared part is read
        from row 0 (every row computes the same there), so which row is kept does not depend
        on which rows were fed; without a row starting with it only the shared part is kept,
        and the next pass feeds the pick.
        """
        most_rows, positions, left = budget
        fit = positions // (len(shared) + 1)  # rows of one candidate token each
        if fit < 2:
            return None
        rows = self.branches(cursor, model.encode, min(most_rows, fit), left)
        count = min(len(rows), fit)
        width = positions // max(1, count) - len(shared)
        if count < 2 or (self._guess_first(cursor) and width < len(rows[0])):
            return None  # too few rows fit, or the grammar's guess fits whole only in a single chain
        rows = [row[:width] for row in rows[:count]]
        logits, row_cache = model.verify_rows(cache, [[*shared, *row] for row in rows], cancel=cancel)
        at = len(shared) - 1
        pick, _ = self.choose(logits[0, at], cursor, sampler)
        chosen = next((i for i, row in enumerate(rows) if row[0] == pick), 0)
        row = rows[chosen]
        seq = np.concatenate([logits[0, at : at + 1], logits[chosen, at + 1 : at + 1 + len(row)]])
        kept, after, cursor, pending = self._accept(seq, row, cursor, sampler, tokens, encode=model.encode)
        self.branch_passes += 1
        self.branch_rows += len(rows)
        self.branch_hits += kept > 0
        return row_cache(chosen, cache.length + len(shared) + kept), after, cursor, pending

    # -- one round -----------------------------------------------------------------------

    def generate(
        self,
        model: Model,
        cache: KVCache,
        logits: npt.NDArray[Any],
        *,
        max_new_tokens: int,
        sampler: Sampler,
        cancel: threading.Event | None = None,
        draft: bool = True,
        cursor: Cursor | None = None,
        opened: Opened | None = None,
        drafter: Drafter | None = None,
        history: Sequence[int] = (),
        lookahead: int = 4,
        branches: int = 0,
        branch_tokens: int = 16,
    ) -> Generation:
        """Decode to a stop id or the budget; ``steps`` counts sequential decoder passes.

        Each pass feeds the model's pick, the forced run after it and (greedy only) a draft:
        the ``drafter``'s ``lookahead`` tokens (speculative.Drafter; ``history``: the turn's ids
        before this round) cut where the grammar refuses one, and the grammar's own guess
        (first, unless ``drafter.over_grammar``; the other only where the first has none).
        Drafted tokens are kept as far as the model's own masked greedy pick agrees, so the
        tokens are those of token-by-token masked decoding.

        Branch rows (greedy, ``branches`` >= 2, a model with a dynamic batch: RowModel): where
        the grammar branches right after the forced run, the pass feeds one batch row per valid
        continuation there (``branches``: the most rows, ``branch_tokens``: the most positions
        over all rows), each the pick + forced run + that continuation; the model's pick after
        the shared part (row 0's logits) selects the row, whose tokens are then kept as far as
        the model agrees, with that row's cache cut to them (_branch_pass).
        """
        tokens: list[int] = []
        cursor = cursor or Cursor(None)
        steps = 0
        drafting = draft and sampler.sampling.temperature <= 0.0
        pending: list[int] = []  # a forced run a kept draft stopped in: the next pass feeds it, no pick
        if opened is not None:
            # The prefill already fed the opening draft: keep what the model agrees with.
            cache = opened.cache
            opening = opened.draft if drafting else ()
            kept, logits, cursor, pending = self._accept(
                opened.rows[: len(opening) + 1], opening, cursor, sampler, tokens, encode=model.encode
            )
            cache = cache.truncated(cache.length - (len(opened.draft) - kept))
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled during decoding")
            pending = pending[: max(0, max_new_tokens - len(tokens))]
            if pending:
                shared, pending = pending, []
                tokens.extend(shared)
            else:
                token, cursor = self.choose(logits, cursor, sampler)
                tokens.append(token)
                if token in self.stops:
                    return Generation(tuple(tokens), token, cache, (), steps)
                if len(tokens) >= max_new_tokens:
                    return Generation(tuple(tokens), None, cache, (token,), steps)
                run, cursor = self.forced(cursor, model.encode)
                run = run[: max(0, max_new_tokens - len(tokens))]
                tokens.extend(run)
                shared = [token, *run]
            branched = (
                self._branch_pass(
                    model,
                    cache,
                    shared,
                    cursor=cursor,
                    sampler=sampler,
                    tokens=tokens,
                    cancel=cancel,
                    budget=(branches, branch_tokens, max_new_tokens - len(tokens)),
                )
                if drafting and branches >= 2 and isinstance(model, RowModel) and model.batched
                else None
            )
            if branched is not None:
                cache, logits, cursor, pending = branched
                steps += 1
                if len(tokens) >= max_new_tokens:
                    return Generation(tuple(tokens), None, cache, (), steps)
                continue
            guess = (
                self._guess(
                    cursor,
                    model.encode,
                    drafter,
                    context=[*history, *tokens],
                    lookahead=lookahead,
                    room=max_new_tokens - len(tokens),
                )
                if drafting
                else []
            )
            rows, cache = model.verify(cache, [*shared, *guess], cancel=cancel)
            steps += 1
            kept, logits, cursor, pending = self._accept(
                rows[len(shared) - 1 :], guess, cursor, sampler, tokens, encode=model.encode
            )
            if kept < len(guess):
                cache = cache.truncated(cache.length - (len(guess) - kept))
            if len(tokens) >= max_new_tokens:
                return Generation(tuple(tokens), None, cache, (), steps)
