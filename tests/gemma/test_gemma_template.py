"""The shipped chat template is the truth: real E2B/E4B and dense templates, and refusals."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from gemma_helpers import DENSE_TEMPLATE, E2B_TEMPLATE, Lights, settings_for

from assistant.brains.gemma.brain import make_gemma_brain
from assistant.brains.gemma.cli import models_check
from assistant.brains.gemma.files import load_model_files
from assistant.brains.gemma.prompt import asr_prompt, generation_prompt, order_tools, system_prefix
from assistant.brains.gemma.template import PROBE_TOOLS, ChatTemplate, read_format
from assistant.errors import ModelFilesError
from assistant.tools.base import Tool

SYSTEM = "You are a voice assistant in a home."


def _openai(tool: Tool) -> dict[str, object]:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


def test_e2b_template_ends_with_a_bare_model_turn_and_the_dense_one_with_the_thought_channel() -> None:
    e2b = read_format(ChatTemplate.load(E2B_TEMPLATE))
    dense = read_format(ChatTemplate.load(DENSE_TEMPLATE))
    assert e2b.user_to_model == "<turn|>\n<|turn>model\n"
    assert e2b.user_to_model_thinking == "<turn|>\n<|turn>model\n"
    assert dense.user_to_model == "<turn|>\n<|turn>model\n<|channel>thought\n<channel|>"
    # Smaller differences, reconciled the same way: read from the template.
    assert (e2b.think, dense.think) == ("<|think|>\n", "<|think|>")
    assert (e2b.tools_separator, dense.tools_separator) == ("\n", "")


@pytest.mark.parametrize("path", [E2B_TEMPLATE, DENSE_TEMPLATE], ids=["litert-e2b-e4b", "llama.cpp-dense"])
@pytest.mark.parametrize("thinking", [False, True])
def test_native_prompt_is_byte_identical_to_the_template(path: Path, thinking: bool) -> None:
    template = ChatTemplate.load(path)
    fmt = read_format(template)
    tools = [Lights().tool(), *PROBE_TOOLS]
    # The brain orders tools by volatility; the template renders them in the given order.
    ordered = template.render(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": [{"type": "audio"}]}],
        tools=[_openai(t) for t in order_tools(tools)],
        enable_thinking=thinking,
    )
    native = system_prefix(tools, system=SYSTEM, thinking=thinking, fmt=fmt) + "<|audio|>"
    native += generation_prompt(thinking, fmt)
    assert native == ordered
    assert ordered.count("<|tool>") == len(tools)
    asr = template.render(
        [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": "Transcribe."}]}]
    )
    assert asr == fmt.user_only_open + "<|audio|>Transcribe." + fmt.user_to_model
    assert asr_prompt(2, fmt).startswith(fmt.user_only_open + "<|audio><|audio|><|audio|><audio|>")


def _broken(tmp_path: Path, general_dir: Path, old: str, new: str) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(general_dir, broken)
    text = E2B_TEMPLATE.read_text(encoding="utf-8")
    assert old in text
    (broken / "chat_template.jinja").write_text(text.replace(old, new, 1), encoding="utf-8")
    return broken


@pytest.mark.parametrize(
    ("old", "new", "what"),
    [
        ("nullable:true", "nullable:True", "tool declarations differ"),
        ("'<|tool_call>call:'", "'<|tool_call>'", "renders a call"),
        ("'<|tool_response>response:'", "'<|tool_response>'", "renders no tool response"),
        ("{{- '<|audio|>' -}}", "{{- '<|audio|><|audio|>' -}}", "audio item"),
    ],
)
def test_a_template_the_native_builder_cannot_match_is_refused_in_one_line(
    general_dir: Path, tmp_path: Path, old: str, new: str, what: str
) -> None:
    broken = _broken(tmp_path, general_dir, old, new)
    with pytest.raises(ModelFilesError, match=what) as caught:
        load_model_files(broken, "fp32", "fp32")
    assert caught.value.code == "chat_template_mismatch"
    assert "\n" not in caught.value.message
    with pytest.raises(ModelFilesError, match=what):
        make_gemma_brain(settings_for(broken))
    out = io.StringIO()
    assert models_check(broken, "fp32", "fp32", out=out) == 1
    problems = [line for line in out.getvalue().splitlines() if "problem:" in line]
    assert len(problems) == 1 and what in problems[0]


def test_templates_run_sandboxed(general_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "evil"
    shutil.copytree(general_dir, broken)
    (broken / "chat_template.jinja").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ModelFilesError) as caught:
        load_model_files(broken, "fp32", "fp32")
    assert caught.value.code == "chat_template_invalid"


def test_check_reports_where_the_layout_came_from(general_dir: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    assert models_check(general_dir, "fp32", "fp32", out=out) == 0
    assert "native builder matches chat_template.jinja" in out.getvalue()
    assert "'<turn|>\\\\n<|turn>model\\\\n'" in out.getvalue()
    bare = tmp_path / "bare"
    shutil.copytree(general_dir, bare)
    (bare / "chat_template.jinja").unlink()
    files = load_model_files(bare, "fp32", "fp32")
    assert files.prompt.source == "native" and "none shipped" in files.prompt_summary
    dense = tmp_path / "dense"
    shutil.copytree(general_dir, dense)
    shutil.copy(DENSE_TEMPLATE, dense / "chat_template.jinja")
    assert load_model_files(dense, "fp32", "fp32").prompt.user_to_model.endswith(
        "<|channel>thought\n<channel|>"
    )
