"""Gemma 4's native prompt for a spoken command.

::

    <bos><|turn>system\\n[<|think|>\\n]SYSTEM<|tool>declaration:...<tool|>...<turn|>\\n<|turn>user\\n
    ^------------------------- prefix: prefilled once per tool set --------------------------^
    <|audio><|audio|>*N<audio|><turn|>\\n<|turn>model\\n
    ^------------------------------ suffix: per utterance -----------------------------------^

The prefix ends right before the first per-utterance token, so its KV cache can be
reused verbatim. Declarations that change most (home tools with entity enums) go
last, so a change there invalidates as little as possible in a future partial
reuse. The layout strings come from a ``PromptFormat`` (template.py): read from the
``chat_template.jinja`` that ships with the checkpoint when there is one. The E2B/E4B
templates end the prompt with a bare ``<|turn>model\\n`` (thinking on or off); the
empty thought channel after it belongs to the dense models' template.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.brains.gemma.template import NATIVE, PromptFormat
from assistant.tools.base import Tool
from assistant.tools.gemma_format import render_declarations, sanitize

DEFAULT_SYSTEM = (
    "You are a voice assistant in a home. The user's spoken request is given as audio. "
    "Call a tool when the request asks for an action or for information a tool provides; "
    "otherwise answer in one short spoken sentence. Never call a tool the user did not ask for."
)

ASR_INSTRUCTION = (
    "Transcribe the following speech segment in English into English text.\n\n"
    "Only output the transcription, with no newlines."
)


def _volatility(tool: Tool) -> tuple[int, str]:
    """Sort key: stable tools first, home tools and tools with enums (entity lists) last."""
    properties = tool.parameters.get("properties") if tool.parameters else None
    has_enum = isinstance(properties, dict) and any(
        isinstance(p, dict) and "enum" in p for p in properties.values()
    )
    changes = tool.source == "home" or tool.source.startswith("home") or has_enum
    return (1 if changes else 0, tool.name)


def order_tools(tools: Sequence[Tool]) -> list[Tool]:
    """Tools in prompt order: what changes most goes last."""
    return sorted(tools, key=_volatility)


def system_prefix(
    tools: Sequence[Tool], *, system: str = DEFAULT_SYSTEM, thinking: bool = False, fmt: PromptFormat = NATIVE
) -> str:
    """The cached prefix: BOS, the system turn with declarations, and the user-turn opener."""
    text = sanitize(system).strip()
    declarations = render_declarations(order_tools(tools))
    separator = fmt.tools_separator if text and declarations else ""
    return (
        fmt.system_open
        + (fmt.think if thinking else "")
        + text
        + separator
        + declarations
        + fmt.system_to_user
    )


def generation_prompt(thinking: bool, fmt: PromptFormat = NATIVE) -> str:
    """Close the user turn and open the model turn, as the format (the shipped template) does."""
    return fmt.user_to_model_thinking if thinking else fmt.user_to_model


def audio_placeholder(count: int) -> str:
    """``<|audio>`` + ``<|audio|>`` x count + ``<audio|>``."""
    return "<|audio>" + "<|audio|>" * count + "<audio|>"


def asr_prompt(count: int, fmt: PromptFormat = NATIVE) -> str:
    """A whole tool-less prompt asking for a transcript (used for confirmation answers)."""
    return fmt.user_only_open + audio_placeholder(count) + ASR_INSTRUCTION + generation_prompt(False, fmt)
