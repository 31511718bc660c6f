"""Shared test helpers for the Gemma tests: scripted texts, a tiny home, settings, the generator."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from assistant.config import GemmaSettings
from assistant.tools.base import Tool

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
    if "make_tiny_gemma" in sys.modules:
        return sys.modules["make_tiny_gemma"]
    spec = importlib.util.spec_from_file_location("make_tiny_gemma", ROOT / "scripts" / "make_tiny_gemma.py")
    if spec is None or spec.loader is None:
        raise ImportError("scripts/make_tiny_gemma.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_tiny_gemma"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


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
