"""Shared test helpers for the Gemma tests: scripted texts, a tiny home, settings, the generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.brains.gemma.runtime import Generation
from assistant.config import GemmaSettings
from assistant.tools.base import Tool
from tests.support.scripts import load_script

if TYPE_CHECKING:
    from assistant.brains.gemma.brain import GemmaBrain
    from assistant.brains.gemma.runtime import GemmaRuntime

ROOT = Path(__file__).resolve().parents[2]

# The E2B/E4B generation prompt (Google's template): a bare model-turn opener.
CONTEXT = "<|turn>model\n"
TEMPLATES = ROOT / "tests" / "data" / "gemma" / "templates"
E2B_TEMPLATE = TEMPLATES / "litert-lm_chat_template_e2b_e4b.jinja"
DENSE_TEMPLATE = TEMPLATES / "llama.cpp_gemma4.jinja"
CALL = '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light<|"|>}<tool_call|><|tool_response>'
RESPONSE = '<|tool_response>response:HassTurnOn{state:<|"|>on<|"|>}<tool_response|>'
REPLY = "The kitchen light is on now.<turn|>"
MALFORMED = '<|tool_call>call:HassTurnOn{name:<|"|>kitchen light}<tool_call|><|tool_response>'


def load_generator() -> ModuleType:
    """scripts/make_tiny_gemma.py as a module."""
    return load_script("scripts/make_tiny_gemma.py")


class Lights:
    """A tiny home: HassTurnOn over two lights; records what actually ran."""

    def __init__(self) -> None:
        self.ran: list[dict[str, Any]] = []

    def turn_on(self, name: str) -> dict[str, Any]:
        self.ran.append({"name": name})
        return {"state": "on"}

    def tool(self) -> Tool:
        return Tool(
            name="HassTurnOn",
            description="Turns on a device or entity",
            parameters={
                "type": "object",
                "properties": {
                    "name": {
                        "type": "string",
                        "description": "Name of a device or entity",
                        "enum": ["kitchen light", "bedroom lamp"],
                    }
                },
                "required": ["name"],
                "additionalProperties": False,
            },
            handler=self.turn_on,
            reply="Turned on the {name}.",
            source="home",
        )


def settings_for(path: Path, **overrides: Any) -> GemmaSettings:
    """GemmaSettings pointing at a tiny model (fp32 decoder unless overridden)."""
    values: dict[str, Any] = {"model_dir": path, "variant": "fp32", "audio_variant": "fp32"}
    values.update(overrides)
    return GemmaSettings(**values)


class ScriptedChoices:
    """A stand-in decoder whose greedy pick after n generated tokens is ``target[n]``.

    Implements what ConstrainedDecoder needs (encode, prefill, verify, verify_rows) without ONNX: the
    "cache" is the list of fed tokens, so the tokens a generation leaves in it can be
    compared with the tokenizer's own encoding of the whole output. ``noise`` adds seeded
    runner-up logits, so the mask has something to refuse.
    """

    def __init__(
        self, tokenizer: Any, target: list[int], *, noise: float = 0.0, seed: int = 0, prompt: int = 0
    ) -> None:
        import numpy as np

        self._np = np
        self.tokenizer = tokenizer
        self.target = target
        self.vocab = int(tokenizer.get_vocab_size())
        self.fed: list[int] = []
        self.passes: list[int] = []
        """Positions fed per pass (all rows of a branch pass)."""
        self.rows: list[int] = []
        """Rows of each branch pass."""
        self._noise = noise
        self._rng = np.random.default_rng(seed)
        self.prompt = prompt
        """Ids before the generated ones (fed by ``prefill``); positions count from there."""

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def row(self, position: int) -> Any:
        logits = self._rng.standard_normal(self.vocab).astype("float32") * self._noise
        if 0 <= position < len(self.target):
            logits[self.target[position]] = 50.0
        return logits

    def verify(self, cache: Any, ids: Any, *, cancel: Any = None) -> tuple[Any, Any]:
        from assistant.brains.gemma.runtime import KVCache

        self.fed = self.fed[: cache.length] + list(ids)
        self.passes.append(len(ids))
        first = cache.length + 1 - self.prompt
        rows = self._np.stack([self.row(first + i) for i in range(len(ids))])
        return rows, KVCache((), (), len(self.fed))

    batched = True
    """Branch rows share a pass (ConstrainedDecoder's ``branches``), as GemmaRuntime.verify_rows."""

    def verify_rows(self, cache: Any, rows: Any, *, cancel: Any = None) -> tuple[Any, Any]:
        """Every row after the same ``cache``; ``passes`` records the positions of the whole batch."""
        from assistant.brains.gemma.runtime import KVCache

        width = max(len(row) for row in rows)
        first = cache.length + 1 - self.prompt
        logits = self._np.stack([self._np.stack([self.row(first + i) for i in range(width)]) for _ in rows])
        self.passes.append(len(rows) * width)
        self.rows.append(len(rows))
        fed = self.fed[: cache.length]

        def row_cache(index: int, length: int) -> Any:
            if not cache.length <= length <= cache.length + len(rows[index]):
                raise ValueError(f"row {index} cannot hold {length} tokens")
            self.fed = fed + list(rows[index][: length - cache.length])
            return KVCache((), (), length)

        return logits, row_cache

    def prefill(self, cache: Any, ids: Any, *, rows: int = 0, **_: Any) -> tuple[Any, Any]:
        logits, cache = self.verify(cache, ids)
        return (logits[-rows:] if rows else logits[-1]), cache

    def generated(self) -> list[int]:
        """What the cache holds after the prompt."""
        return self.fed[self.prompt :]


def recording(brain: GemmaBrain) -> list[tuple[int, ...]]:
    """Record every generation's tokens (the brain's replies on random weights are not text)."""
    seen: list[tuple[int, ...]] = []
    original: Callable[..., Generation] = brain._decode

    def decode(*args: Any, **kwargs: Any) -> Generation:
        generation = original(*args, **kwargs)
        seen.append(generation.tokens)
        return generation

    brain._decode = decode  # type: ignore[method-assign]
    return seen


def greedy(runtime: GemmaRuntime, logits: Any, cache: Any, steps: int) -> list[int]:
    """Greedy tokens from ``logits`` on, one prefill per token (the runtime's own loop, spelled out)."""
    tokens = []
    for step in range(steps):
        token = int(np.argmax(logits))
        tokens.append(token)
        if step + 1 < steps:
            logits, cache = runtime.prefill(cache, [token])
    return tokens
