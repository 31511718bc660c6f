"""The chat template that ships in the model directory is the truth for the prompt layout.

The brain builds its prompt natively (prompt.py) so that the system+tools prefix can be
KV-cached and the per-utterance suffix, the tool calls and the tool responses can be
appended as tokens. This module renders the checkpoint's ``chat_template.jinja`` in a
sandbox and makes the native builder agree with it:

* the layout strings (what opens the system turn, what separates the system text from
  the declarations, what closes the user turn and opens the model's, with and without
  thinking) are *read from the template* by rendering probe conversations with marker
  text; the E2B/E4B templates end with a bare ``<|turn>model\\n`` while the dense models'
  template adds an empty thought channel, and this is how the difference is reconciled;
* what the native builder renders itself (declarations incl. nullable, enums, arrays and
  nested objects; the audio block; a call; a response) is *compared* with the template's
  rendering of the same probes, byte for byte. A difference there cannot be reconciled:
  loading refuses with ``ModelFilesError`` code ``chat_template_mismatch``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import ModelFilesError
from assistant.tools.base import Tool
from assistant.tools.gemma_format import render_call, render_declaration, render_response
from assistant.types import ResultStatus, ToolCall, ToolResult

_MAX_TEMPLATE = 256_000
_SYSTEM = "SYSTEM_MARK"
_USER = "USER_MARK"
_AUDIO = "<|audio|>"


@dataclass(frozen=True)
class PromptFormat:
    """The layout strings around what the native builder renders."""

    system_open: str = "<bos><|turn>system\n"
    """Everything before the system text."""
    think: str = "<|think|>\n"
    """Inserted before the system text when thinking is on."""
    tools_separator: str = ""
    """Between the system text and the first declaration."""
    system_to_user: str = "<turn|>\n<|turn>user\n"
    """After the last declaration, up to the user's content."""
    user_to_model: str = "<turn|>\n<|turn>model\n"
    """After the user's content: the generation prompt, thinking off (E2B/E4B: bare)."""
    user_to_model_thinking: str = "<turn|>\n<|turn>model\n"
    """The same with thinking on."""
    user_only_open: str = "<bos><|turn>user\n"
    """A prompt without a system turn (the confirmation transcript) starts with this."""
    source: str = "native"
    """``native`` or the template file the strings were read from."""


NATIVE = PromptFormat()


def _environment() -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415  (only when a template exists)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)

    def raise_exception(message: str) -> None:
        raise ModelFilesError(f"chat template refused the probe: {message}", code="chat_template_invalid")

    def tojson(value: Any, indent: int | None = None, **_: Any) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = tojson
    return env


class ChatTemplate:
    """A compiled ``chat_template.jinja`` (sandboxed: a template is data from the download)."""

    def __init__(self, source: str, where: str = "chat_template.jinja") -> None:
        from jinja2 import TemplateError  # noqa: PLC0415

        self.where = where
        if len(source) > _MAX_TEMPLATE:
            raise ModelFilesError(
                f"{where}: larger than {_MAX_TEMPLATE} characters", code="chat_template_invalid"
            )
        try:
            self._template = _environment().from_string(source)
        except TemplateError as exc:
            raise ModelFilesError(
                f"{where}: not a Jinja template ({exc})", code="chat_template_invalid"
            ) from exc

    @classmethod
    def load(cls, path: Path) -> ChatTemplate:
        """Read and compile a template file."""
        try:
            return cls(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFilesError(f"{path}: unreadable ({exc})", code="chat_template_invalid") from exc

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        enable_thinking: bool = False,
    ) -> str:
        """Render like transformers' ``apply_chat_template`` (bos_token ``<bos>``)."""
        from jinja2 import TemplateError  # noqa: PLC0415

        try:
            return str(
                self._template.render(
                    messages=list(messages),
                    tools=list(tools) if tools else None,
                    add_generation_prompt=add_generation_prompt,
                    enable_thinking=enable_thinking,
                    bos_token="<bos>",  # noqa: S106  (a token string, not a secret)
                    eos_token="<eos>",  # noqa: S106
                )
            )
        except (TemplateError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise ModelFilesError(
                f"{self.where}: cannot render ({exc})", code="chat_template_invalid"
            ) from exc


# -- probes ----------------------------------------------------------------------------------


def _probe(name: str, description: str, parameters: dict[str, Any]) -> Tool:
    return Tool(name=name, description=description, parameters=parameters, handler=lambda **_: None)


# Shapes the assistant's tools use, in the JSON-Schema subset both sides express the same way.
PROBE_TOOLS: tuple[Tool, ...] = (
    _probe(
        "get_weather",
        "Get current weather",
        {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    ),
    _probe(
        "HassLightSet",
        "Sets the brightness or color of a light",
        {
            "type": "object",
            "properties": {
                "name": {
                    "type": "string",
                    "description": "Name of a device or entity",
                    "enum": ["kitchen light", "bedroom lamp"],
                },
                "brightness": {"type": "integer", "description": "Percent"},
                "color": {"type": "string", "description": "Color name", "nullable": True},
                "areas": {
                    "type": "array",
                    "description": "Areas",
                    "items": {"type": "string", "enum": ["kitchen", "bedroom"]},
                },
                "transition": {
                    "type": "object",
                    "description": "How to change",
                    "properties": {"seconds": {"type": "number", "description": "Duration"}},
                    "required": ["seconds"],
                },
            },
            "required": ["name"],
        },
    ),
    _probe("stop", "Stop talking", {"type": "object", "properties": {}}),
)
PROBE_CALL = ToolCall("HassLightSet", {"brightness": 40, "name": "bedroom lamp", "on": True, "areas": ["x"]})
PROBE_RESULT = ToolResult(PROBE_CALL, ResultStatus.OK, {"state": "on", "brightness": 40})


def _openai_tool(tool: Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def _between(text: str, start: str, end: str, where: str, what: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        raise ModelFilesError(
            f"{where}: cannot find the {what} in the rendered probe", code="chat_template_mismatch"
        )
    return text[i + len(start) : j]


def _first_difference(template: str, native: str) -> str:
    at = next((i for i, (a, b) in enumerate(zip(template, native, strict=False)) if a != b), None)
    if at is None:
        at = min(len(template), len(native))
    lo, hi = max(0, at - 20), at + 30
    return f"at char {at}: template {template[lo:hi]!r} vs native {native[lo:hi]!r}"


def read_format(template: ChatTemplate) -> PromptFormat:
    """The layout strings, read from the template; raises on a template the brain cannot drive."""
    where = template.where
    tools = [_openai_tool(t) for t in PROBE_TOOLS]
    user = {"role": "user", "content": [{"type": "audio"}]}
    system = {"role": "system", "content": _SYSTEM}
    plain = template.render([system, user], tools=tools)
    thinking = template.render([system, user], tools=tools, enable_thinking=True)
    lone = template.render(
        [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": _USER}]}]
    )
    for text in (plain, thinking):
        if text.count(_AUDIO) != 1 or _SYSTEM not in text:
            raise ModelFilesError(
                f"{where}: the probe's audio item or system text does not render as expected",
                code="chat_template_mismatch",
            )
    head = plain[: plain.index(_SYSTEM)]
    think_head = thinking[: thinking.index(_SYSTEM)]
    if not think_head.startswith(head):
        raise ModelFilesError(
            f"{where}: thinking changes the system-turn opener", code="chat_template_mismatch"
        )
    native_decls = "".join(render_declaration(t) for t in PROBE_TOOLS)
    after_system = plain[plain.index(_SYSTEM) + len(_SYSTEM) :]
    first = after_system.find("<|tool>")
    if first < 0:
        raise ModelFilesError(f"{where}: renders no tool declarations", code="chat_template_mismatch")
    last = after_system.rfind("<tool|>") + len("<tool|>")
    decls = after_system[first:last]
    if decls != native_decls:
        raise ModelFilesError(
            f"{where}: tool declarations differ from the native format "
            + _first_difference(decls, native_decls),
            code="chat_template_mismatch",
        )
    fmt = PromptFormat(
        system_open=head,
        think=think_head[len(head) :],
        tools_separator=after_system[:first],
        system_to_user=after_system[last : after_system.index(_AUDIO)],
        user_to_model=plain[plain.index(_AUDIO) + len(_AUDIO) :],
        user_to_model_thinking=thinking[thinking.index(_AUDIO) + len(_AUDIO) :],
        user_only_open=lone[: lone.index(_AUDIO)],
        source=where,
    )
    if lone[lone.index(_AUDIO) + len(_AUDIO) :] != _USER + fmt.user_to_model:
        raise ModelFilesError(
            f"{where}: a user turn with audio and text does not close like one with audio only",
            code="chat_template_mismatch",
        )
    _check_call_and_response(template)
    return fmt


def _check_call_and_response(template: ChatTemplate) -> None:
    """The call and response blocks the brain appends as tokens must be what the template writes."""
    where = template.where
    call = {
        "type": "function",
        "function": {"name": PROBE_CALL.name, "arguments": dict(PROBE_CALL.arguments)},
    }
    response = {"name": PROBE_CALL.name, "response": dict(PROBE_RESULT.data)}
    user = {"role": "user", "content": "hi"}
    # The templates take the result in one of two shapes: Google's native ``tool_responses``
    # on the calling message, or a following ``tool`` message (LiteRT-LM, newer HF syncs).
    shapes: tuple[list[dict[str, Any]], ...] = (
        [user, {"role": "assistant", "tool_calls": [call], "tool_responses": [response]}],
        [user, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "content": [response]}],
    )
    native_call = render_call(PROBE_CALL.name, PROBE_CALL.arguments)
    native_response = render_response(PROBE_RESULT)
    rendered_responses: list[str] = []
    for messages in shapes:
        text = template.render(messages, add_generation_prompt=False)
        if native_call not in text:
            found = text[text.find("<|tool_call>") :][:120] if "<|tool_call>" in text else "no call"
            raise ModelFilesError(
                f"{where}: renders a call as {found!r}, the brain expects {native_call!r}",
                code="chat_template_mismatch",
            )
        if "<|tool_response>response:" in text:
            block = "<|tool_response>" + _between(
                text, "<|tool_response>", "<tool_response|>", where, "response"
            )
            rendered_responses.append(block + "<tool_response|>")
    if not rendered_responses:
        raise ModelFilesError(f"{where}: renders no tool response", code="chat_template_mismatch")
    if native_response not in rendered_responses:
        raise ModelFilesError(
            f"{where}: renders a tool response as {rendered_responses[0]!r}, "
            f"the brain appends {native_response!r}",
            code="chat_template_mismatch",
        )


def load_format(root: Path) -> tuple[PromptFormat, str]:
    """The prompt format for a model directory and a one-line summary of how it was decided."""
    path = root / "chat_template.jinja"
    if not path.is_file():
        return NATIVE, "chat template: none shipped; native Gemma 4 E2B/E4B layout"
    fmt = read_format(ChatTemplate.load(path))
    prompt = fmt.user_to_model.replace("\n", "\\n")
    return fmt, f"chat template: native builder matches {path.name} (generation prompt {prompt!r})"
