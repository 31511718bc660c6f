"""Router execution: timeouts, handler failures, spoken replies, logging, rendering."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import threading
from typing import Any

import pytest
from tools_helpers import Recorder, make_tool

from assistant.errors import ToolError
from assistant.tools.context import current_site
from assistant.tools.registry import ToolRegistry
from assistant.tools.router import Router, render_template
from assistant.types import ResultStatus, ToolCall

LEVEL = {"level": {"type": "integer"}}


def test_handler_timeout_returns_timeout_error(registry: ToolRegistry, router: Router) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow() -> None:
        entered.set()
        release.wait(5)

    registry.set_group("t", [make_tool("slow", slow, timeout_s=0.05)])
    try:
        result = router.call(ToolCall("slow"), site="s")
    finally:
        release.set()
    assert entered.is_set()
    assert (result.status, result.error_code) == (ResultStatus.ERROR, "timeout")
    assert result.speech == "Sorry, that took too long."


def test_router_default_timeout_applies_to_tools_left_at_the_default(
    registry: ToolRegistry, router_factory: Any
) -> None:
    release = threading.Event()
    registry.set_group("t", [make_tool("slow", lambda: release.wait(5))])
    router = router_factory(call_timeout_s=0.05)
    try:
        assert router.call(ToolCall("slow"), site="s").error_code == "timeout"
    finally:
        release.set()


def test_handler_exception_becomes_handler_failed(registry: ToolRegistry, router: Router) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    registry.set_group("t", [make_tool("broken", broken)])
    result = router.call(ToolCall("broken"), site="s")
    assert (result.status, result.error_code) == (ResultStatus.ERROR, "handler_failed")
    assert result.speech == "Sorry, something went wrong."


def test_tool_error_keeps_its_code_and_message(registry: ToolRegistry, router: Router) -> None:
    def missing() -> None:
        raise ToolError("There is no pasta timer.", code="not_found")

    registry.set_group("t", [make_tool("missing", missing)])
    result = router.call(ToolCall("missing"), site="s")
    assert (result.status, result.error_code, result.speech) == (
        ResultStatus.ERROR, "not_found", "There is no pasta timer.")


def test_system_exit_in_a_handler_does_not_escape(registry: ToolRegistry, router: Router) -> None:
    def exits() -> None:
        raise SystemExit(3)

    registry.set_group("t", [make_tool("exits", exits)])
    assert router.call(ToolCall("exits"), site="s").error_code == "handler_failed"


def test_reply_template_uses_arguments_and_result_data(registry: ToolRegistry, router: Router) -> None:
    rec = Recorder({"room": "kitchen"})
    reply = "Set the {room} light to {level} percent."
    registry.set_group("t", [make_tool("light", rec, LEVEL, reply=reply)])
    result = router.call(ToolCall("light", {"level": "40"}), site="s")
    assert result.ok
    assert result.speech == "Set the kitchen light to 40 percent."
    assert result.data == {"room": "kitchen"}


@pytest.mark.parametrize("template", ["Set {missing}.", "Set {level.__class__}.", "Set {level[0]}.",
                                      "Set {level!r}.", "Unbalanced {level", "Spec {level:q}"])
def test_unfillable_template_falls_back_to_done(
    registry: ToolRegistry, router: Router, template: str
) -> None:
    registry.set_group("t", [make_tool("light", Recorder(), LEVEL, reply=template)])
    result = router.call(ToolCall("light", {"level": 1}), site="s")
    assert (result.status, result.speech) == (ResultStatus.OK, "Done.")


def test_empty_template_says_done_and_string_result_is_the_reply(
    registry: ToolRegistry, router: Router
) -> None:
    registry.set_group("t", [make_tool("plain", Recorder()), make_tool("talk", Recorder("It is sunny."))])
    assert router.call(ToolCall("plain"), site="s").speech == "Done."
    talk = router.call(ToolCall("talk"), site="s")
    assert talk.speech == "It is sunny."
    assert talk.data == {"value": "It is sunny."}


def test_dataclass_and_odd_results_are_made_json_able(registry: ToolRegistry, router: Router) -> None:
    @dataclasses.dataclass
    class Out:
        temp: float
        ok: bool

    registry.set_group("t", [make_tool("dc", Recorder(Out(21.5, True)), reply="{temp} degrees"),
                             make_tool("num", Recorder(7))])
    dc = router.call(ToolCall("dc"), site="s")
    assert (dc.data, dc.speech) == ({"temp": 21.5, "ok": True}, "21.5 degrees")
    assert router.call(ToolCall("num"), site="s").data == {"value": 7}


def test_render_template_speaks_whole_floats_as_integers() -> None:
    assert render_template("{t} degrees, {b}", {"t": 21.0, "b": True}) == "21 degrees, on"
    assert render_template("{t:.1f}", {"t": 2}) == "2.0"


def test_handler_sees_the_calling_site(registry: ToolRegistry, router: Router) -> None:
    sites: list[str | None] = []
    registry.set_group("t", [make_tool("where", lambda: sites.append(current_site()))])
    router.call(ToolCall("where"), site="kitchen")
    router.call(ToolCall("where"), site="hall")
    assert sites == ["kitchen", "hall"]
    assert current_site() is None


def test_every_call_is_one_log_line_with_secrets_masked(
    registry: ToolRegistry, router: Router, caplog: pytest.LogCaptureFixture
) -> None:
    props = {"code": {"type": "string"}, "door": {"type": "string"}}
    registry.set_group("t", [make_tool("open", Recorder(), props, secret_args=frozenset({"code"}))])
    with caplog.at_level(logging.INFO, logger="assistant.tools.router"):
        router.call(ToolCall("open", {"code": "4321", "door": "front"}), site="s")
        router.call(ToolCall("open", {"code": "4321", "door": 5}), site="s")
        router.call(ToolCall("nothing", {}), site="s")
    records = [r for r in caplog.records if r.name == "assistant.tools.router"]
    assert len(records) == 3
    assert all("4321" not in r.getMessage() for r in records)
    first = records[0].tool_call  # type: ignore[attr-defined]
    assert first["tool"] == "open"
    assert first["outcome"] == "ok"
    assert first["arguments"] == {"code": "***", "door": "front"}
    assert isinstance(first["duration_ms"], float)
    assert records[1].tool_call["code"] == "wrong_type"  # type: ignore[attr-defined]
    assert records[2].tool_call["outcome"] == "error"  # type: ignore[attr-defined]


def test_router_exposes_the_registry_tools_and_version(registry: ToolRegistry, router: Router) -> None:
    before = router.tools_version
    registry.set_group("t", [make_tool("b", Recorder()), make_tool("a", Recorder())])
    assert [t.name for t in router.tools()] == ["a", "b"]
    assert router.tools_version > before


HAVE_GEMMA = importlib.util.find_spec("assistant.tools.gemma_format") is not None


@pytest.mark.skipif(not HAVE_GEMMA, reason="assistant.tools.gemma_format not there yet")
def test_gemma_renderings_delegate_to_gemma_format(registry: ToolRegistry, router: Router) -> None:
    from assistant.tools import gemma_format

    registry.set_group("t", [make_tool("get_weather", Recorder({"sky": "sunny", "temp_c": 21}),
                                       {"city": {"type": "string", "description": "City name"}}, ("city",),
                                       description="Get current weather")])
    text = registry.render_gemma()
    assert text == gemma_format.render_declarations(registry.tools())
    assert text.startswith("<|tool>declaration:get_weather{")
    assert registry.render_gemma() is text  # cached until the tool set changes
    result = router.call(ToolCall("get_weather", {"city": "Paris"}), site="s")
    assert "response:get_weather{sky:<|\"|>sunny<|\"|>,temp_c:21}" in gemma_format.render_response(result)
