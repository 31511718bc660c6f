"""The Gemma 4 brain: speech straight into the model, native tool calls through the router.

One turn: log-mel features -> audio encoder -> the per-utterance suffix prefilled on
top of the cached system+tools prefix -> greedy decoding to a stop id -> parsed calls
go through the router -> each response block is appended to the live KV cache as
tokens (history is never re-rendered) -> decoding continues for the spoken reply,
for at most ``max_rounds`` tool rounds. A simple success can be answered with the
router's templated reply, skipping the second model pass.

Decoding is constrained by the grammar of the live declarations (constrained.py, on
unless ``constrained=False``): invalid calls are masked, forced runs and the grammar's
verified drafts are fed in one pass with the model's pick, and ``<|tool_call>call:``
rides on the offline prefill as a draft; a valid greedy output is unchanged.

Speculative decoding (``brain.gemma.draft``, greedy only, exact): a draft model sharing the
tokenizer (``draft_model_dir``) or n-gram lookup in the prompt and tool declarations
(``prompt_lookup``) proposes ``lookahead`` tokens per pass, in the call grammar (a refused
token ends the draft; forced runs still jump forward) and in the spoken reply. The yes/no
transcription of a confirmation answer is decoded without a draft.

Branch verification (``brain.gemma.branches``, greedy only, exact): where the call grammar
branches after a pass's forced run, the valid continuations there ride on the same pass as
extra batch rows (GemmaRuntime.verify_rows); the model's pick keeps one. Checked once on the
first prefix (a decoder graph with a fixed batch size turns it off).

``begin_stream`` (the ``Streaming`` capability, stream.py) takes the utterance while it
is spoken: most audio soft tokens are prefilled before the end of speech, and
``finish`` gives the same greedy tokens as ``handle``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.brains.base import Router
from assistant.brains.gemma.constrained import (
    CallGrammar,
    ConstrainedDecoder,
    Opened,
    Vocabulary,
    vocabulary_of,
)
from assistant.brains.gemma.features import AudioFeatures
from assistant.brains.gemma.files import ModelFiles, load_model_files
from assistant.brains.gemma.parser import CALL_CLOSE, ParsedOutput, parse_output
from assistant.brains.gemma.prompt import ASR_INSTRUCTION, DEFAULT_SYSTEM, generation_prompt, system_prefix
from assistant.brains.gemma.runtime import Cancelled, GemmaRuntime, Generation, KVCache, Sampler, Sampling
from assistant.brains.gemma.speculative import Drafter, ModelDrafter, PromptLookup, drafted_generate
from assistant.brains.gemma.stream import AudioPrefill
from assistant.config import GemmaSettings
from assistant.errors import BrainError, ModelFilesError
from assistant.tools.gemma_format import render_response
from assistant.types import BrainTurn, Reply, ResultStatus, ToolCall, ToolResult, Utterance

_LOGGER = logging.getLogger(__name__)

SORRY = "Sorry, I didn't catch that."
FAILED = "Sorry, something went wrong."


@dataclass(frozen=True)
class _Prefix:
    version: int
    tokens: int
    cache: KVCache
    built_ms: float
    decoder: ConstrainedDecoder | None
    """The grammar of this tool set's calls (None: decoding is not constrained)."""
    ids: tuple[int, ...] = ()
    """The prefix's token ids (prompt lookup drafts from them)."""
    draft_cache: KVCache | None = None
    """The draft model's cache of the same prefix (draft: model)."""


class _Turn:
    """Mutable bookkeeping of one utterance (timings, counts, calls)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.calls: list[ToolCall] = []
        self.results: list[ToolResult] = []
        self.prefill_tokens = 0
        self.decode_steps = 0
        self.first_action: float | None = None
        self.counts: dict[str, int] = {}
        self.flags: set[str] = set()

    def add(self, key: str, started: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + (time.monotonic() - started) * 1000.0


class GemmaBrain:
    """Implements ``assistant.brains.base.Brain`` over a GemmaRuntime."""

    name = "gemma"

    def __init__(
        self,
        runtime: GemmaRuntime,
        settings: GemmaSettings,
        *,
        system: str = DEFAULT_SYSTEM,
        prefill_chunk: int = 0,
        constrained: bool = True,
        draft_runtime: GemmaRuntime | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.system = system
        self.prefill_chunk = prefill_chunk
        self.constrained = constrained
        """Mask invalid calls and append forced runs in one pass (constrained.py); exact for valid output."""
        self._vocabulary: Vocabulary | None = None
        self._sampling = Sampling(settings.temperature, settings.top_k, settings.top_p)
        self._prefix: _Prefix | None = None
        self.draft = settings.draft
        """Speculative drafting in use: none, model or prompt_lookup (greedy only)."""
        if self.draft != "none" and settings.temperature > 0.0:
            _LOGGER.info(
                "gemma drafting (%s) is off: temperature %g > 0 (drafting is exact for greedy decoding only)",
                self.draft,
                settings.temperature,
            )
            self.draft = "none"
        if self.draft == "model" and draft_runtime is None:
            raise ModelFilesError("brain.gemma.draft is 'model' but no draft model is loaded")
        self.draft_runtime = draft_runtime if self.draft == "model" else None
        if self.draft != "none":
            _LOGGER.info("gemma drafting: %s, lookahead %d", self.draft, settings.lookahead)
        self.branches = settings.branches if constrained and settings.temperature <= 0.0 else 0
        """Branch rows per tool-call pass in use (0: off; greedy and constrained only)."""
        self._rows_checked = False
        # Re-entrant: handle() holds it and calls warm(), which the daemon may also call on its own.
        self._lock = threading.RLock()

    # -- prefix cache -------------------------------------------------------------------------

    def warm(self, router: Router, cancel: threading.Event | None = None) -> bool:
        """Prefill the system+tools prefix unless it matches ``router.tools_version``; True when rebuilt."""
        with self._lock:
            return self._warm(router, cancel)

    def _warm(self, router: Router, cancel: threading.Event | None) -> bool:
        version = router.tools_version
        if self._prefix is not None and self._prefix.version == version:
            return False
        started = time.monotonic()
        if self._prefix is None:
            self.runtime.features(np.zeros(1600, dtype=np.float32))  # first numpy FFT call is slow
        text = system_prefix(
            router.tools(), system=self.system, thinking=self.settings.thinking, fmt=self.runtime.files.prompt
        )
        ids = self.runtime.encode(text)
        _, cache = self.runtime.prefill(
            self.runtime.empty_cache(), ids, chunk=self.prefill_chunk, cancel=cancel
        )
        if self.constrained and self.branches >= 2 and not self._rows_checked:
            self._rows_checked = True
            problem = self.runtime.rows_problem(cache)
            if problem is not None:
                _LOGGER.warning("gemma branch verification is off: %s", problem)
                self.branches = 0
        decoder = None
        if self.constrained:
            if self._vocabulary is None:
                self._vocabulary = vocabulary_of(self.runtime.tokenizer)
                self._vocabulary.sorted_pieces()  # the merge-boundary index, built now, not mid-turn
            decoder = ConstrainedDecoder(
                CallGrammar(router.tools()), self._vocabulary, self.runtime.tokens.stop
            )
        draft_cache = None
        if self.draft_runtime is not None:
            _, drafted = self.draft_runtime.prefill(
                self.draft_runtime.empty_cache(), ids, chunk=self.prefill_chunk, cancel=cancel
            )
            draft_cache = drafted.frozen()
        self._prefix = _Prefix(
            version,
            len(ids),
            cache.frozen(),
            (time.monotonic() - started) * 1000.0,
            decoder,
            tuple(ids),
            draft_cache,
        )
        _LOGGER.info(
            "gemma prefix prefilled: %d tokens, tools version %d, %.0f ms",
            len(ids),
            version,
            self._prefix.built_ms,
        )
        return True

    @property
    def prefix_cache(self) -> KVCache | None:
        """The cached prefix state (read-only arrays), None before the first turn."""
        return None if self._prefix is None else self._prefix.cache

    # -- one utterance ------------------------------------------------------------------------

    def handle(self, utterance: Utterance, router: Router, cancel: threading.Event) -> BrainTurn:
        """Process one utterance end to end; never raises for bad audio or bad model output."""
        return self._run(utterance, cancel, lambda turn: self._handle(utterance, router, cancel, turn))

    def begin_stream(self, site: str = "default", router: Router | None = None) -> GemmaStream:
        """Start feeding an utterance while it is spoken; see ``GemmaStream``.

        With ``router`` the stream prefills the system+tools prefix for its tools first (when
        stale) and does nothing early while a confirmation waits for ``site``.
        """
        return GemmaStream(self, site, router)

    def _run(
        self, utterance: Utterance, cancel: threading.Event, body: Callable[[_Turn], BrainTurn]
    ) -> BrainTurn:
        with self._lock:
            turn = _Turn()
            started = time.monotonic()
            try:
                result = body(turn)
            except Cancelled:
                _LOGGER.info("gemma turn cancelled")
                result = self._finish(turn, Reply("", site=utterance.site), understood=False)
            except BrainError as exc:
                _LOGGER.warning("gemma turn failed: %s (%s)", exc.message, exc.code)
                result = self._finish(
                    turn, Reply(FAILED, site=utterance.site, is_error=True), understood=False
                )
            except Exception:  # onnxruntime/tokenizers failures: one bad turn must not kill the daemon
                _LOGGER.exception("gemma turn failed unexpectedly")
                result = self._finish(
                    turn, Reply(FAILED, site=utterance.site, is_error=True), understood=False
                )
            turn.add("total", started)
            timings = dict(result.timings_ms)
            timings.update(turn.timings)
            counts = dict(turn.counts)
            counts["prefill_tokens"] = turn.prefill_tokens
            counts["decode_steps"] = turn.decode_steps
            if turn.first_action is not None:
                timings["end_of_speech_to_action"] = max(
                    0.0, (turn.first_action - utterance.ended_at) * 1000.0
                )
            return BrainTurn(
                result.transcript,
                result.tool_calls,
                result.results,
                result.reply,
                timings,
                result.understood,
                counts=counts,
                flags=frozenset(turn.flags),
            )

    def _finish(
        self, turn: _Turn, reply: Reply, *, understood: bool = True, transcript: str | None = None
    ) -> BrainTurn:
        return BrainTurn(transcript, tuple(turn.calls), tuple(turn.results), reply, {}, understood)

    def _features(self, utterance: Utterance, turn: _Turn) -> AudioFeatures:
        started = time.monotonic()
        pcm = np.frombuffer(utterance.pcm[: len(utterance.pcm) // 2 * 2], dtype="<i2")
        features = self.runtime.features(pcm)
        turn.add("features", started)
        turn.counts["audio_tokens"] = features.num_tokens
        return features

    def _audio(self, utterance: Utterance, turn: _Turn) -> Any:
        features = self._features(utterance, turn)
        if features.num_tokens == 0:
            return None
        started = time.monotonic()
        audio = self.runtime.encode_audio(features)
        turn.add("audio_encoder", started)
        return audio

    def _turn_audio(
        self, utterance: Utterance, turn: _Turn, *, streamed: bool
    ) -> tuple[Any, AudioFeatures | None, int]:
        """Soft tokens (None when the stream's per-step encoder makes them), features, token count."""
        if streamed and self.runtime.step_encoder is not None:
            # The per-step encoder carries its state: close() encodes only the last soft tokens.
            features = self._features(utterance, turn)
            return None, features, features.num_tokens
        audio = self._audio(utterance, turn)
        return audio, None, 0 if audio is None else int(audio.shape[0])

    def _audio_ids(self, count: int) -> list[int]:
        tokens = self.runtime.tokens
        return [tokens.audio_open, *([tokens.audio] * count), tokens.audio_close]

    def _handle(
        self,
        utterance: Utterance,
        router: Router,
        cancel: threading.Event,
        turn: _Turn,
        stream: AudioPrefill | None = None,
    ) -> BrainTurn:
        site = utterance.site
        if router.pending_confirmation(site) is not None:
            return self._confirm(utterance, router, cancel, turn)
        started = time.monotonic()
        rebuilt = self.warm(router, cancel)
        if rebuilt:
            turn.add("prefix", started)
        prefix = self._prefix
        if prefix is None:  # pragma: no cover - warm() always sets it
            raise BrainError("no prefix cache")
        turn.counts["prefix_tokens"] = prefix.tokens
        if rebuilt:
            turn.flags.add("prefix_rebuilt")
        streamed = stream is not None and stream.prefix is prefix.cache
        audio, features, count = self._turn_audio(utterance, turn, streamed=streamed)
        if count == 0:
            return self._finish(turn, Reply(SORRY, site=site), understood=False)
        tail = self.runtime.encode(generation_prompt(self.settings.thinking, self.runtime.files.prompt))
        drafter = self._drafter(prefix, self._audio_ids(count) + tail, utterance, cancel)
        started = time.monotonic()
        if stream is not None and streamed:
            # Most of the audio is in the decoder already: only the rest, <audio|> and the tail.
            result = stream.close(utterance.pcm, tail, cancel, audio=audio, features=features)
            if result is None:  # pragma: no cover - audio has tokens, checked above
                return self._finish(turn, Reply(SORRY, site=site), understood=False)
            logits, cache = result.logits, result.cache
            turn.prefill_tokens += result.prefill_tokens
            turn.counts["stream_early_tokens"] = result.early_tokens
            turn.counts["encoder_tokens_after_speech"] = result.encoder_tokens
            turn.counts["stream_steps"] = stream.steps
            turn.flags.add("streamed")
            if result.reprefilled:
                _LOGGER.warning("gemma stream: early audio tokens differ from the final pass; re-prefilled")
                turn.flags.add("stream_reprefilled")
        else:
            if stream is not None:  # the tools changed while the user spoke: the stream's prefix is stale
                turn.flags.add("stream_stale")
            suffix = self._audio_ids(count) + tail
            if prefix.decoder is not None and self._sampling.temperature <= 0.0:
                # "<|tool_call>call:" rides on the prefill as a draft: a call saves one pass.
                opened = prefix.decoder.prefill(
                    self.runtime, prefix.cache, suffix, audio=audio, chunk=self.prefill_chunk, cancel=cancel
                )
                turn.prefill_tokens += len(suffix)
                turn.counts["prefill_draft_tokens"] = len(opened.draft)
                turn.add("prefill", started)
                return self._tool_loop(
                    opened.rows[0],
                    opened.cache,
                    router,
                    site=site,
                    cancel=cancel,
                    turn=turn,
                    opened=opened,
                    drafter=drafter,
                )
            logits, cache = self.runtime.prefill(
                prefix.cache, suffix, audio=audio, chunk=self.prefill_chunk, cancel=cancel
            )
            turn.prefill_tokens += len(suffix)
        turn.add("prefill", started)
        return self._tool_loop(logits, cache, router, site=site, cancel=cancel, turn=turn, drafter=drafter)

    def _drafter(
        self, prefix: _Prefix, suffix: list[int], utterance: Utterance, cancel: threading.Event
    ) -> Drafter | None:
        """This turn's drafter (its prompt: the prefix and ``suffix``), None when drafting is off."""
        if self.draft == "prompt_lookup":
            return PromptLookup([*prefix.ids, *suffix])
        draft, base = self.draft_runtime, prefix.draft_cache
        if draft is None or base is None:
            return None

        def prompt() -> tuple[Any, KVCache]:
            # The draft hears the same audio through its own encoder (on first use only).
            pcm = np.frombuffer(utterance.pcm[: len(utterance.pcm) // 2 * 2], dtype="<i2")
            audio = draft.encode_audio(draft.features(pcm))
            return draft.prefill(base, suffix, audio=audio, chunk=self.prefill_chunk, cancel=cancel)

        return ModelDrafter(draft, prompt, cancel=cancel)

    def _decode(
        self,
        cache: KVCache,
        logits: Any,
        cancel: threading.Event,
        turn: _Turn,
        *,
        tools: bool = True,
        opened: Opened | None = None,
        drafter: Drafter | None = None,
        history: list[int] | None = None,
    ) -> Generation:
        started = time.monotonic()
        decoder = self._prefix.decoder if tools and self._prefix is not None else None
        drafted, accepted = (decoder.drafted, decoder.accepted) if decoder is not None else (0, 0)
        passes = drafter.passes if drafter is not None else 0
        k = self.settings.lookahead
        if decoder is not None:
            bp, br = decoder.branch_passes, decoder.branch_rows
            generation = decoder.generate(
                self.runtime,
                cache,
                logits,
                max_new_tokens=self.settings.max_new_tokens,
                sampler=Sampler(self._sampling),
                cancel=cancel,
                opened=opened,
                drafter=drafter,
                history=history or [],
                lookahead=k,
                branches=self.branches,
                branch_tokens=self.settings.branch_tokens,
            )
            drafted, accepted = decoder.drafted - drafted, decoder.accepted - accepted
            turn.counts["branch_passes"] = turn.counts.get("branch_passes", 0) + decoder.branch_passes - bp
            turn.counts["branch_rows"] = turn.counts.get("branch_rows", 0) + decoder.branch_rows - br
        elif drafter is not None:
            generation, drafted, accepted = drafted_generate(
                self.runtime,
                cache,
                logits,
                drafter=drafter,
                history=history or [],
                lookahead=k,
                max_new_tokens=self.settings.max_new_tokens,
                cancel=cancel,
            )
        else:
            generation = self.runtime.generate(
                cache,
                logits,
                max_new_tokens=self.settings.max_new_tokens,
                sampler=Sampler(self._sampling),
                cancel=cancel,
            )
        if decoder is not None or drafter is not None:
            turn.counts["draft_tokens"] = turn.counts.get("draft_tokens", 0) + drafted
            turn.counts["draft_accepted"] = turn.counts.get("draft_accepted", 0) + accepted
        if drafter is not None:
            turn.counts["draft_passes"] = turn.counts.get("draft_passes", 0) + drafter.passes - passes
        turn.add("decode", started)
        turn.decode_steps += generation.steps
        turn.counts["generated_tokens"] = turn.counts.get("generated_tokens", 0) + len(generation.tokens)
        return generation

    def _tool_loop(
        self,
        logits: Any,
        cache: KVCache,
        router: Router,
        *,
        site: str,
        cancel: threading.Event,
        turn: _Turn,
        opened: Opened | None = None,
        drafter: Drafter | None = None,
    ) -> BrainTurn:
        rounds = 0
        # The turn's ids after its prompt that the cache holds (the drafter's history).
        base = cache.length - (len(opened.draft) if opened is not None else 0)
        history: list[int] = []
        while True:
            generation = self._decode(
                cache, logits, cancel, turn, opened=opened, drafter=drafter, history=history
            )
            opened = None
            text = self.runtime.decode(generation.tokens)
            parsed: ParsedOutput = parse_output(text)
            _LOGGER.debug("gemma round %d output: %r", rounds + 1, text)
            if not parsed.ok:
                _LOGGER.warning("gemma output rejected (%s): no action", parsed.error)
                return self._finish(turn, Reply(SORRY, site=site), understood=False)
            if not parsed.calls:
                reply = parsed.text or (self._speech(turn.results) if turn.results else "")
                if not reply:
                    return self._finish(turn, Reply(SORRY, site=site), understood=bool(turn.results))
                return self._finish(turn, Reply(reply, site=site))
            if rounds >= self.settings.max_rounds:
                _LOGGER.warning(
                    "gemma asked for more than %d tool rounds; ignoring %d calls",
                    self.settings.max_rounds,
                    len(parsed.calls),
                )
                return self._finish(turn, Reply(self._speech(turn.results) or SORRY, site=site))
            rounds += 1
            turn.counts["rounds"] = rounds
            results = self._run_calls(parsed.calls, router, site, cancel, turn)
            waiting = [r for r in results if r.status is ResultStatus.NEEDS_CONFIRMATION]
            if waiting:
                # The router's own question, word for word: the model must not paraphrase a safety prompt.
                return self._finish(turn, Reply(waiting[0].speech, site=site, expects_answer=True))
            if self.settings.templated_reply and all(r.ok and r.speech for r in results):
                return self._finish(turn, Reply(self._speech(results), site=site))
            feed = list(generation.unfed)
            if generation.stop_token != self.runtime.tokens.get(
                "response_open"
            ) and not text.rstrip().endswith(CALL_CLOSE):
                close = self.runtime.tokens.get("call_close")
                feed += [close] if close is not None else []
            feed += self.runtime.encode("".join(render_response(r) for r in results))
            history += [*generation.tokens[: generation.cache.length - base - len(history)], *feed]
            started = time.monotonic()
            logits, cache = self.runtime.prefill(
                generation.cache, feed, chunk=self.prefill_chunk, cancel=cancel
            )
            turn.add("prefill", started)
            turn.prefill_tokens += len(feed)

    def _run_calls(
        self, calls: tuple[ToolCall, ...], router: Router, site: str, cancel: threading.Event, turn: _Turn
    ) -> list[ToolResult]:
        results = []
        started = time.monotonic()
        for call in calls:
            if cancel.is_set():
                raise Cancelled("cancelled before a tool call")
            if turn.first_action is None:
                turn.first_action = time.monotonic()
            result = router.call(call, site=site)
            turn.calls.append(call)
            turn.results.append(result)
            results.append(result)
        turn.add("tools", started)
        return results

    @staticmethod
    def _speech(results: list[ToolResult]) -> str:
        return " ".join(r.speech for r in results if r.speech).strip()

    def _confirm(
        self, utterance: Utterance, router: Router, cancel: threading.Event, turn: _Turn
    ) -> BrainTurn:
        """A sensitive call waits for a yes: transcribe this utterance and let the router decide."""
        site = utterance.site
        transcript = self._transcribe(utterance, cancel, turn)
        turn.first_action = time.monotonic()
        result = router.answer_confirmation(transcript, site=site)
        turn.results.append(result)
        turn.calls.append(result.call)
        reply = Reply(result.speech or ("OK." if result.ok else "Cancelled."), site=site)
        return self._finish(turn, reply, transcript=transcript)

    def _transcribe(self, utterance: Utterance, cancel: threading.Event, turn: _Turn) -> str | None:
        """The words of ``utterance`` (Gemma's ASR prompt, no tools); None for no speech."""
        audio = self._audio(utterance, turn)
        if audio is None:
            return None
        fmt = self.runtime.files.prompt
        ids = [
            *self.runtime.encode(fmt.user_only_open),
            *self._audio_ids(audio.shape[0]),
            *self.runtime.encode(ASR_INSTRUCTION + generation_prompt(False, fmt)),
        ]
        started = time.monotonic()
        logits, cache = self.runtime.prefill(
            self.runtime.empty_cache(), ids, audio=audio, chunk=self.prefill_chunk, cancel=cancel
        )
        turn.add("prefill", started)
        turn.prefill_tokens += len(ids)
        generation = self._decode(cache, logits, cancel, turn, tools=False)
        return self.runtime.decode(generation.tokens, skip_special=True).strip() or None

    def transcribe(self, utterance: Utterance, cancel: threading.Event) -> str | None:
        """Speech to text only (the ASR prompt): the ears of a brain that has none (the remote one).

        None for no speech, a cancel, or a failure (logged); never acts.
        """
        with self._lock:
            try:
                return self._transcribe(utterance, cancel, _Turn())
            except Cancelled:
                return None
            except Exception:  # onnxruntime/tokenizers failures: no words, not a dead daemon
                _LOGGER.exception("gemma transcription failed")
                return None


STREAM_STEP_MS = 240
"""New audio that makes the stream worker encode and prefill again (when it is free), with the
stock encoder graph (each step re-encodes the audio so far)."""

STEPPED_STREAM_STEP_MS = 160
"""The same with the per-step encoder graph (each step encodes only the new tokens): at 240 ms a
4 s utterance left 5 encoder and 14 prefill tokens after the end of speech, at 160 ms 1 and
10 (bench_gemma_loop, oracle; goals <= 4 and <= 12)."""


class GemmaStream:
    """One utterance fed to the brain while it is spoken (implements stream.SpeechStream).

    ``feed`` only appends PCM and wakes a worker thread. Whenever at least ``step_ms`` of
    new audio has arrived and the brain is not busy with another turn, the worker
    encodes the newly final soft tokens (the per-step encoder graph when the model
    directory has one; else the stock graph over the audio so far) and prefills them onto
    the cached prefix. ``finish`` waits for a running step, then does what
    ``handle`` does with the rest (same greedy tokens as the offline turn). ``abort``
    stops the worker and forgets everything; the prefix cache is never written by a
    stream, so an aborted, cancelled or failed stream cannot corrupt it.
    """

    def __init__(
        self, brain: GemmaBrain, site: str, router: Router | None, *, step_ms: int | None = None
    ) -> None:
        if step_ms is None:
            step_ms = STEPPED_STREAM_STEP_MS if brain.runtime.step_encoder is not None else STREAM_STEP_MS
        self._brain = brain
        self.site = site
        self._router = router
        rate = brain.runtime.features.config.sampling_rate
        self._step_samples = max(1, rate * step_ms // 1000)
        self._cond = threading.Condition()
        self._buffer = bytearray()
        self._buffered = 0  # samples in the buffer since the worker last took it
        self._closed = False
        self._stop = threading.Event()
        self._core: AudioPrefill | None = None
        self._thread = threading.Thread(target=self._work, name=f"gemma-stream-{site}", daemon=True)
        self._thread.start()

    # -- the caller's side ----------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """Append 16 kHz mono int16 PCM as it arrives; never blocks on the model."""
        with self._cond:
            if self._closed:
                return
            self._buffer += pcm
            self._buffered += len(pcm) // 2
            if self._buffered >= self._step_samples:
                self._cond.notify()

    def finish(self, utterance: Utterance, router: Router, cancel: threading.Event) -> BrainTurn:
        """The turn for the whole ``utterance`` (its PCM is the truth; what was fed is a head start)."""
        self._shutdown(stop=False)
        core, self._core = self._core, None
        brain = self._brain
        return brain._run(
            utterance, cancel, lambda turn: brain._handle(utterance, router, cancel, turn, stream=core)
        )

    def abort(self) -> None:
        """Throw the partial state away (a running step is cancelled); idempotent."""
        self._shutdown(stop=True)
        if self._core is not None:
            self._core.drop()
            self._core = None

    @property
    def early_tokens(self) -> int:
        """Soft tokens prefilled so far (read after ``finish``/``abort`` or for figures)."""
        core = self._core
        return 0 if core is None else core.early_tokens

    # -- the worker -----------------------------------------------------------------------

    def _shutdown(self, *, stop: bool) -> None:
        with self._cond:
            self._closed = True
            if stop:
                self._stop.set()
            self._cond.notify_all()
        self._thread.join()

    def _locked(self, work: Callable[[], None]) -> bool:
        """Run ``work`` under the brain lock when it is free; False when stopped first."""
        lock = self._brain._lock
        while not self._stop.is_set():
            with self._cond:
                if self._closed:
                    return False
            if lock.acquire(timeout=0.02):
                try:
                    work()
                finally:
                    lock.release()
                return True
        return False

    def _start(self) -> None:
        brain, router = self._brain, self._router
        if router is not None and router.pending_confirmation(self.site) is not None:
            return  # the next turn answers a question: a different prompt, nothing to stream into
        if router is not None:
            brain._warm(router, self._stop)
        prefix = brain._prefix
        if prefix is not None:
            self._core = AudioPrefill(brain.runtime, prefix.cache, chunk=brain.prefill_chunk)

    def _step(self) -> None:
        core = self._core
        if core is None:
            return
        with self._cond:
            core.add(bytes(self._buffer))
            self._buffer.clear()
            self._buffered = 0
        core.step(self._stop)

    def _work(self) -> None:
        try:
            if not self._locked(self._start) or self._core is None:
                return
            while True:
                with self._cond:
                    while not self._closed and self._buffered < self._step_samples:
                        self._cond.wait()
                    if self._closed:
                        return
                if not self._locked(self._step):
                    return
        except Cancelled:
            return
        except Exception:  # a failed step must not kill the daemon: finish falls back to offline
            _LOGGER.exception("gemma stream step failed; the turn will be prefilled offline")
            self._core = None


def make_gemma_brain(settings: GemmaSettings) -> GemmaBrain:
    """Load the model files named by settings; ModelFilesError with a clear message when they are unusable."""
    if settings.model_dir is None:
        raise ModelFilesError(
            "brain.gemma.model_dir is not set: download a model with `assistant models pull e2b` "
            "and set brain.gemma.model_dir to its folder"
        )
    files: ModelFiles = load_model_files(settings.model_dir, settings.variant, settings.audio_variant)
    runtime = GemmaRuntime(files, intra_op_threads=settings.intra_op_threads)
    draft = None
    if settings.draft == "model" and settings.temperature <= 0.0:
        if settings.draft_model_dir is None:
            raise ModelFilesError("brain.gemma.draft is 'model': set brain.gemma.draft_model_dir")
        draft_files = load_model_files(settings.draft_model_dir, settings.variant, settings.audio_variant)
        draft = GemmaRuntime(draft_files, intra_op_threads=settings.intra_op_threads)
        vocab = runtime.tokenizer.get_vocab(with_added_tokens=True)
        if draft.tokenizer.get_vocab(with_added_tokens=True) != vocab:
            raise ModelFilesError(
                f"brain.gemma.draft_model_dir {settings.draft_model_dir}: its tokenizer differs from the "
                f"model's ({settings.model_dir}); a draft must share the tokenizer (E2B for E4B)"
            )
    return GemmaBrain(runtime, settings, draft_runtime=draft)
