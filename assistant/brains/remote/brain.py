"""The remote brain: the device hears, a bigger model on a home server thinks.

One turn gets a transcript (the phrase brain's, handed over by the hybrid brain, or
its own ears' when it has them: Gemma E2B/E4B's speech recognition) and
runs at most ``max_rounds`` requests against an OpenAI-compatible server (client.py):
the system prompt, the recent exchanges, the transcript, and the router's current tools
as JSON-schema function declarations. The tool calls the server returns go through the
same router as every other brain's (validation, confirmation of sensitive calls; the
server never acts), their results go back as ``tool`` messages, and the final text is
the spoken reply. A reply in Gemma 4's native call syntax inside ``content`` (a server
without a tool parser) is parsed by the Gemma brain's parser.

Failures never act twice and never act on a broken answer:

* a response is used only once it finished (client.py); a broken, hostile, oversized or
  truncated one is refused whole;
* a round that failed quickly before any answer arrived (connection refused or reset,
  an HTTP 5xx) is tried once more, unless a call was already made this turn; a timeout
  is not retried (it would double the wait), nor is a round whose answer had begun;
* before anything was done or said, a failure falls back to the local brain (``local``: the call
  the phrase brain would have made, or the fallback brain, or "didn't catch that"),
  with a short spoken note; after a call was made (or a sentence spoken), the turn ends
  with what was done and said, and a short note.

Speaking ahead (``SpeaksAhead``): while a round's reply text streams in, each finished
sentence goes to the daemon's ``say`` at once, so a long answer starts to be heard while
the rest is generated. Only text the server sent before any sign of a tool call is
released (no tool-call delta yet in that response, no ``<``, ``{`` or ``call:`` in the
text: Gemma's call syntax and control tokens); the rest waits for the end of the round,
and the daemon speaks it from the reply. What was said ahead always starts the reply
(the contract of ``SpeaksAhead``), except for a confirmation question, which is the
whole reply.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.brains.base import Brain, Closable, Say, ToolGateway, warm_brain
from assistant.brains.gemma.parser import parse_output, strip_control
from assistant.brains.remote.client import ChatClient, Completion, RemoteError
from assistant.config import RemoteSettings
from assistant.errors import ErrorCode
from assistant.tools.base import Tool
from assistant.types import BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance

_LOGGER = logging.getLogger(__name__)

Hearing = Callable[[Utterance, threading.Event], "str | None"]
"""Speech to text for the server: ``(utterance, cancel) -> words or None`` (GemmaBrain.transcribe)."""

DEFAULT_SYSTEM = (
    "You are a voice assistant in a home. The user's words were transcribed from speech and "
    "may contain recognition errors. Call a tool when the request asks for an action or for "
    "information a tool provides; otherwise answer briefly, in plain sentences that sound "
    "natural when spoken (no lists, no markdown). Never call a tool the user did not ask for."
)
NOT_UNDERSTOOD = "Sorry, I didn't catch that."
UNAVAILABLE_NOTE = "The home server isn't answering."
"""Said before the local brain's answer when the server failed before anything was done."""
STOPPED_NOTE = "The home server stopped answering."
"""Said after what was done when the server failed after a tool call."""


def declarations(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The tools as OpenAI-style function declarations (what ToolRegistry.json_schema gives)."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": json.loads(json.dumps(t.parameters, default=str)),
            },
        }
        for t in tools
    ]


_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_MAYBE_CALL = re.compile(r"[<{]|call:")
"""Text that might be call syntax or a control token: never spoken ahead."""


class _Ahead:
    """A turn's finished sentences handed to ``say`` while the reply text streams in."""

    def __init__(self, say: Say | None, cancel: threading.Event) -> None:
        self._say = say
        self._cancel = cancel
        self.before: list[str] = []
        """Said in rounds that went on to call tools (a "let me look" before the call)."""
        self.now: list[str] = []
        """Said in the round under way."""
        self._text = ""
        self._held = False

    @property
    def said(self) -> list[str]:
        return self.before + self.now

    def text(self, piece: str) -> None:
        """One piece of the round's reply text (client.py calls it while no call has shown up)."""
        if self._say is None or self._held:
            return
        self._text += piece
        if _MAYBE_CALL.search(self._text):
            self._held = True
            return
        ends = list(_SENTENCE_END.finditer(self._text))
        if not ends:
            return
        cut = ends[-1].end()
        finished, self._text = self._text[:cut], self._text[cut:]
        sentence = " ".join(finished.split())
        if sentence and not self._cancel.is_set():
            self.now.append(sentence)
            self._say(sentence)

    def next_round(self) -> None:
        """The round called tools: what it said stays said; the next round starts afresh."""
        self.before += self.now
        self.now, self._text, self._held = [], "", False

    def reply_text(self, text: str) -> str:
        """The round's final ``text`` with what earlier rounds said before it."""
        return " ".join([*self.before, text]) if self.before else text


@dataclass
class _Turn:
    """Mutable bookkeeping of one utterance."""

    started: float = field(default_factory=time.monotonic)
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    first_sent: float | None = None
    first_action: float | None = None

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


class RemoteBrain:
    """Implements ``Brain`` (and ``handle_transcript``) over a ChatClient."""

    name = "remote"

    def __init__(
        self,
        client: ChatClient,
        settings: RemoteSettings,
        *,
        fallback: Brain | None = None,
        hearing: Hearing | None = None,
        system: str = DEFAULT_SYSTEM,
        tool_choice: Sequence[str | Mapping[str, Any]] = ("auto",),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self.fallback = fallback
        """The local brain that answers when the server cannot (None: "didn't catch that")."""
        self.hearing = hearing
        """This brain's own ears (Gemma's ASR); preferred over a transcript handed over."""
        self.system = system
        self.tool_choice = tuple(tool_choice) or ("auto",)
        """``tool_choice`` of each round (the last entry for the rounds after; the last round
        allowed is always "none"). A named function forces a grammar-constrained call on
        servers that support it (llama-cpp-python's chatml-function-calling streams only a
        forced call or "none")."""
        self._clock = clock
        self._history: dict[str, deque[tuple[float, str, str]]] = {}
        self._lock = threading.Lock()

    # -- capabilities: forwarded to the fallback brain, the only part that holds anything --

    def warm(self, router: ToolGateway) -> None:
        """Warm the fallback brain (Gemma's prefix), so a fallback turn does not pay for it."""
        warm_brain(self.fallback, router)

    def close(self) -> None:
        """Close the fallback brain when it holds anything."""
        if isinstance(self.fallback, Closable):
            self.fallback.close()

    # -- Brain ----------------------------------------------------------------------------

    def handle(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event) -> BrainTurn:
        """Hear the utterance (own ears) and answer it; without ears or words the fallback answers."""
        return self.handle_speaking(utterance, router, cancel, None)

    def handle_speaking(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event,
                        say: Say | None) -> BrainTurn:
        """``handle``, with the reply's finished sentences handed to ``say`` as they stream in."""
        if self.hearing is not None and router.pending_confirmation(utterance.site) is None:
            started = time.monotonic()
            heard = self.hearing(utterance, cancel)
            if heard and not cancel.is_set():
                return self.handle_transcript(heard, utterance, router, cancel, heard_ms=_ms_since(started),
                                              say=say)
        return self._local(utterance, router, cancel, None, _Turn(), note="")

    def handle_transcript(
        self,
        transcript: str,
        utterance: Utterance,
        router: ToolGateway,
        cancel: threading.Event,
        local: Callable[[], BrainTurn] | None = None,
        *,
        heard_ms: float | None = None,
        say: Say | None = None,
    ) -> BrainTurn:
        """Answer ``transcript`` with the server's model; ``local`` answers when the server cannot.

        With ears of its own (``hearing``) the brain listens again and prefers its words.
        ``say`` gets the reply's finished sentences while they stream in (module notes).
        """
        turn = _Turn()
        site = utterance.site
        if router.pending_confirmation(site) is not None:
            # a language model never gets to say "yes" for the user
            return self._local(utterance, router, cancel, local, turn, note="")
        if heard_ms is None and self.hearing is not None:
            started = time.monotonic()
            transcript = self.hearing(utterance, cancel) or transcript
            heard_ms = _ms_since(started)
        if heard_ms is not None:
            turn.timings["hear"] = heard_ms
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.system}]
        messages += self._recent(site)
        messages.append({"role": "user", "content": transcript})
        tools = declarations(router.tools())
        ahead = _Ahead(say, cancel)
        try:
            reply = self._converse(messages, tools, utterance, router, cancel=cancel, turn=turn, ahead=ahead)
        except RemoteError as exc:
            if cancel.is_set():
                return self._finish(turn, utterance, transcript, Reply("", site), understood=False)
            _LOGGER.warning("remote brain: %s (%s)", exc.message, exc.code)
            turn.flags.add("remote_failed")
            if not turn.results and not ahead.said:
                return self._local(utterance, router, cancel, local, turn, note=UNAVAILABLE_NOTE)
            # what was said ahead stays the start of the reply; then what was done, then the note
            said = " ".join(ahead.said) if ahead.now else ahead.reply_text(_speech(turn.results))
            reply = Reply(f"{said} {STOPPED_NOTE}".strip(), site, is_error=True)
            return self._finish(turn, utterance, transcript, reply)
        self._remember(site, transcript, reply.text)
        return self._finish(turn, utterance, transcript, reply)

    # -- the conversation -----------------------------------------------------------------

    def _converse(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], utterance: Utterance,
                  router: ToolGateway, *, cancel: threading.Event, turn: _Turn, ahead: _Ahead) -> Reply:
        site = utterance.site
        for round_no in range(self.settings.max_rounds):
            payload: dict[str, Any] = {
                "model": self.settings.model,
                "messages": messages,
                "max_tokens": self.settings.max_tokens,
            }
            if self.settings.temperature is not None:
                payload["temperature"] = self.settings.temperature
            last = round_no == self.settings.max_rounds - 1
            if tools:
                payload["tools"] = tools
                choice = self.tool_choice[min(round_no, len(self.tool_choice) - 1)]
                payload["tool_choice"] = "none" if last else choice
            completion = self._request(payload, utterance, cancel, turn, ahead)
            calls, text = _calls_and_text(completion)
            if not calls or last:
                if calls:
                    _LOGGER.warning("remote brain: calls after the last round ignored: %s",
                                    [c.name for _id, c, _raw in calls])
                text = text or _speech(turn.results) or ("OK." if turn.results else "")
                if not text and not ahead.said:
                    raise RemoteError("the server said nothing", code=ErrorCode.REMOTE_PROTOCOL)
                return Reply(ahead.reply_text(text), site, expects_answer=_asks(turn.results))
            ahead.next_round()
            messages.append({
                "role": "assistant",
                "content": text,  # a string even when empty: llama-cpp-python refuses null
                "tool_calls": [
                    {"id": call_id, "type": "function",
                     "function": {"name": call.name, "arguments": raw}}
                    for call_id, call, raw in calls
                ],
            })
            for call_id, call, _raw in calls:
                if cancel.is_set():
                    raise RemoteError("cancelled")
                if turn.first_action is None:
                    turn.first_action = time.monotonic()
                result = router.call(call, site=site)
                turn.calls.append(call)
                turn.results.append(result)
                messages.append({"role": "tool", "tool_call_id": call_id,
                                 "content": json.dumps(result.to_json(), default=str)})
                if result.status is ResultStatus.NEEDS_CONFIRMATION:
                    # the question is the reply; the model must not talk over it
                    return Reply(result.speech, site, expects_answer=True)
        raise RemoteError("no reply within max_rounds", code=ErrorCode.REMOTE_PROTOCOL)

    def _request(self, payload: Mapping[str, Any], utterance: Utterance, cancel: threading.Event,
                 turn: _Turn, ahead: _Ahead) -> Completion:
        """One round; tried once more after a quick failure before any answer (and before any call)."""
        started = time.monotonic()
        try:
            try:
                completion = self.client.complete(payload, cancel, ahead.text)
            except RemoteError as exc:
                if not exc.retry or cancel.is_set() or turn.calls or ahead.said:
                    raise
                _LOGGER.info("remote brain: %s; trying once more", exc.message)
                turn.count("remote_retries")
                completion = self.client.complete(payload, cancel, ahead.text)
        finally:
            turn.timings["remote"] = turn.timings.get("remote", 0.0) + (time.monotonic() - started) * 1000
        turn.count("rounds")
        turn.count("remote_chunks", completion.chunks)
        if turn.first_sent is None:
            turn.first_sent = completion.sent_at
            waited = completion.sent_at - utterance.ended_at
            turn.timings["end_of_speech_to_request"] = max(0.0, waited * 1000)
            turn.timings["first_chunk"] = (completion.first_chunk_at - completion.sent_at) * 1000
        return completion

    # -- fallback and history -------------------------------------------------------------

    def _local(self, utterance: Utterance, router: ToolGateway, cancel: threading.Event,
               local: Callable[[], BrainTurn] | None, turn: _Turn, *, note: str) -> BrainTurn:
        site = utterance.site
        if local is not None:
            answer = local()
        elif self.fallback is not None:
            answer = self.fallback.handle(utterance, router, cancel)
        else:
            answer = BrainTurn(None, (), (), Reply(NOT_UNDERSTOOD, site, is_error=True), understood=False)
        if note:
            turn.flags.add("remote_fallback")
        text = f"{note} {answer.reply.text}".strip() if note else answer.reply.text
        timings = dict(answer.timings_ms)
        timings.update(turn.timings)
        counts = dict(answer.counts)
        counts.update(turn.counts)
        return BrainTurn(
            transcript=answer.transcript, tool_calls=answer.tool_calls, results=answer.results,
            reply=Reply(text, site, is_error=answer.reply.is_error or bool(note),
                        expects_answer=answer.reply.expects_answer),
            timings_ms=timings, understood=answer.understood, counts=counts,
            flags=answer.flags | frozenset(turn.flags),
        )

    def _recent(self, site: str) -> list[dict[str, Any]]:
        if self.settings.history_turns == 0:
            return []
        now = self._clock()
        with self._lock:
            past = self._history.get(site, ())
            kept = [(u, a) for t, u, a in past if now - t <= self.settings.history_s]
        messages: list[dict[str, Any]] = []
        for user, assistant in kept:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        return messages

    def _remember(self, site: str, transcript: str, reply: str) -> None:
        if self.settings.history_turns == 0:
            return
        with self._lock:
            past = self._history.setdefault(site, deque(maxlen=self.settings.history_turns))
            past.append((self._clock(), transcript, reply))

    def _finish(self, turn: _Turn, utterance: Utterance, transcript: str, reply: Reply, *,
                understood: bool = True) -> BrainTurn:
        now = time.monotonic()
        turn.timings["total"] = (now - turn.started) * 1000
        if turn.first_action is not None:
            waited = turn.first_action - utterance.ended_at
            turn.timings["end_of_speech_to_action"] = max(0.0, waited * 1000)
        return BrainTurn(
            transcript=transcript, tool_calls=tuple(turn.calls), results=tuple(turn.results), reply=reply,
            timings_ms=dict(turn.timings), understood=understood, counts=dict(turn.counts),
            flags=frozenset(turn.flags),
        )


def _calls_and_text(completion: Completion) -> tuple[list[tuple[str, ToolCall, str]], str]:
    """(id, call, raw arguments) of each call, and the spoken text; Gemma-native calls as a fallback."""
    if completion.calls:
        calls = [(c.id, ToolCall(c.name, dict(c.arguments)), c.raw_arguments) for c in completion.calls]
        return calls, strip_control(completion.content)
    parsed = parse_output(completion.content)
    if not parsed.ok:
        raise RemoteError(f"the reply is not usable: {parsed.error}", code=ErrorCode.REMOTE_PROTOCOL)
    return [
        (f"call_{i}", call, json.dumps(dict(call.arguments))) for i, call in enumerate(parsed.calls)
    ], parsed.text


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _speech(results: Sequence[ToolResult]) -> str:
    return " ".join(r.speech for r in results if r.speech).strip()


def _asks(results: Sequence[ToolResult]) -> bool:
    return any(r.status is ResultStatus.NEEDS_CONFIRMATION for r in results)


def make_remote_brain(settings: RemoteSettings, *, fallback: Brain | None = None,
                      hearing: Hearing | None = None) -> RemoteBrain:
    """The remote brain for ``brain.remote`` (which must have a url)."""
    if settings.url is None:
        raise ValueError("brain.remote.url is not set")
    client = ChatClient(
        settings.url,
        api_key=settings.api_key.reveal() if settings.api_key is not None else None,
        ca_file=settings.ca_file,
        connect_timeout_s=settings.connect_timeout_s,
        first_token_timeout_s=settings.first_token_timeout_s,
        total_timeout_s=settings.total_timeout_s,
        max_response_bytes=settings.max_response_bytes,
        max_tool_calls=settings.max_tool_calls,
    )
    return RemoteBrain(client, settings, fallback=fallback, hearing=hearing)
