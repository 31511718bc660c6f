"""The native tool-call parser: cases, quirks, malformed output, and a fuzz that it never raises."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.brains.gemma.parser import parse_output
from assistant.tools.gemma_format import render_call

Q = '<|"|>'


def test_single_call_with_string_argument() -> None:
    out = parse_output(f"<|tool_call>call:HassTurnOn{{name:{Q}kitchen light{Q}}}<tool_call|><|tool_response>")
    assert out.ok
    assert [(c.name, dict(c.arguments)) for c in out.calls] == [("HassTurnOn", {"name": "kitchen light"})]
    assert out.text == ""


def test_nested_objects_arrays_numbers_booleans_null() -> None:
    text = (
        f"<|tool_call>call:set{{a:{{b:[1,-2.5,1e3,true,false,null,{Q}x, y{Q}]}},"
        f"n:42,s:{Q}{{not:json}}{Q}}}<tool_call|>"
    )
    out = parse_output(text)
    assert out.ok
    assert dict(out.calls[0].arguments) == {
        "a": {"b": [1, -2.5, 1000.0, True, False, None, "x, y"]},
        "n": 42,
        "s": "{not:json}",
    }


def test_several_calls_and_spoken_text() -> None:
    text = "Sure.<|tool_call>call:a{x:1}<tool_call|><|tool_call>call:b{}<tool_call|><|tool_response>"
    out = parse_output(text)
    assert [c.name for c in out.calls] == ["a", "b"]
    assert out.text == "Sure."


def test_quirk_call_closed_by_turn_end() -> None:
    out = parse_output(f"<|tool_call>call:HassTurnOff{{area:{Q}kitchen{Q}}}<turn|>")
    assert out.ok and out.calls[0].name == "HassTurnOff"


def test_quirk_eos_instead_of_tool_response() -> None:
    out = parse_output("<|tool_call>call:stop{}<tool_call|><eos>")
    assert out.ok and out.calls[0].name == "stop"


def test_quirk_bare_call_at_start() -> None:
    out = parse_output(f"call:HassTurnOn{{name:{Q}fan{Q}}}")
    assert out.ok and dict(out.calls[0].arguments) == {"name": "fan"}


def test_plain_reply_without_calls_strips_thoughts_and_controls() -> None:
    out = parse_output("<|channel>thought\nhmm<channel|>It is 21 degrees.<turn|>")
    assert out.ok and out.calls == () and out.text == "It is 21 degrees."


def test_calls_inside_the_thought_channel_are_ignored() -> None:
    text = (
        "<|channel>thought\n<|tool_call>call:unlock{}<tool_call|> no<channel|>"
        "<|tool_call>call:b{}<tool_call|>"
    )
    assert [c.name for c in parse_output(text).calls] == ["b"]
    assert parse_output("<|channel>thought\nmaybe <|tool_call>call:unlock{}<tool_call|>").calls == ()


def test_round_trip_with_renderer() -> None:
    args = {"brightness": 40, "name": "bedroom lamp", "on": True, "rgb": [255, 0, 10]}
    out = parse_output(render_call("HassLightSet", args))
    assert dict(out.calls[0].arguments) == args


def test_malformed_outputs_give_no_calls_and_an_error() -> None:
    bad = [
        f"<|tool_call>call:HassTurnOn{{name:{Q}kitchen light}}<tool_call|>",  # unterminated string
        "<|tool_call>call:HassTurnOn{name:kitchen:light}<tool_call|>",  # bare value with a colon
        "<|tool_call>call:HassTurnOn{name:}<tool_call|>",  # no value
        'Sure.<|tool_response>response:HassTurnOn{state:<|"|>on<|"|>}<tool_response|>',  # invented response
        'The lamp is <|"|>on',  # a stray string delimiter
        "<call>HassTurnOn{name:",  # a broken fragment
        "<|tool_call>HassTurnOn{}<tool_call|>",  # no call: after the token
        "<|tool_call>call:{x:1}<tool_call|>",  # no name
        "<|tool_call>call:a{x:1,x:2}<tool_call|>",  # duplicate key
        "<|tool_call>call:a{x:1} trailing <tool_call|>",  # junk before the close
        "<|tool_call>call:a{x:[1,2}<tool_call|>",
        # the second call is broken: no action at all, not even the first
        "<|tool_call>call:a{x:1}<tool_call|><|tool_call>call:b{oops",
        "<|tool_call>call:a" + "{x:" * 100 + "1" + "}" * 100 + "<tool_call|>",  # too deep
    ]
    for text in bad:
        out = parse_output(text)
        assert out.calls == (), text
        assert out.error, text


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*'{}[]:,"<|>_ abc1.-etrufalsn', Q, "<|tool_call>", "call:", "<tool_call|>", "<turn|>"]
        ),
        max_size=60,
    )
)
def test_fuzz_never_raises(pieces: list[str]) -> None:
    out = parse_output("".join(pieces))
    assert out.ok or out.calls == ()
    # Whatever is spoken holds no call syntax: no call-shaped text, no call tokens.
    assert not re.search(r"call:\s*[A-Za-z_][\w.-]*\s*\{|tool_call|<\|\"\|>", out.text), out.text


def test_every_non_canonical_form_parses() -> None:
    forms = {
        "prose then bare call": f"OK.\ncall:HassTurnOn{{name:{Q}fan{Q}}}",
        "stray channel close": f"<channel|>call:HassTurnOn{{name:{Q}fan{Q}}}",
        "fragment": f"<call>HassTurnOn{{name:{Q}fan{Q}}}</call>",
        "stray colon": f"<|tool_call>:call:HassTurnOn{{name:{Q}fan{Q}}}<tool_call|>",
        "unquoted value": "<|tool_call>call:HassTurnOn{name:fan}<tool_call|>",
        "missing opening quote": f"<|tool_call>call:HassTurnOn{{name:fan{Q}}}<tool_call|>",
    }
    for label, text in forms.items():
        out = parse_output(text)
        assert out.ok, (label, out.error)
        assert [(c.name, dict(c.arguments)) for c in out.calls] == [("HassTurnOn", {"name": "fan"})], label
        assert "call" not in out.text, label


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_unicode_never_raises(text: str) -> None:
    parse_output(text)
    parse_output("<|tool_call>call:x{" + text)
