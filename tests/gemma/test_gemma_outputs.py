"""Every real Gemma 4 output form in tests/data/gemma/outputs.json parses (or is refused) as recorded.

The outputs come verbatim from public parser tests (vLLM, SGLang, LiteRT-LM); each case
names its repository, path, commit and test. ``expect`` is the parse this assistant wants:
the calls and the spoken text, or ``refused`` (no call runs, nothing is spoken).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assistant.brains.gemma.parser import parse_output

DATA = Path(__file__).resolve().parents[1] / "data" / "gemma" / "outputs.json"
CASES: list[dict[str, Any]] = json.loads(DATA.read_text(encoding="utf-8"))["cases"]
# Anything shaped like call syntax in the spoken text would be read aloud by the TTS.
CALL_SYNTAX = re.compile(r"call:|<call>|tool_call|tool_response|<\|\"\|>|response:\w")


def _meets(case: dict[str, Any]) -> bool:
    out = parse_output(case["output"])
    expect = case["expect"]
    if expect.get("refused"):
        return not out.ok and out.calls == () and out.text == ""
    calls = [{"name": c.name, "arguments": dict(c.arguments)} for c in out.calls]
    if not out.ok or calls != expect["calls"]:
        return False
    return "text" not in expect or out.text == expect["text"]


def test_every_case_names_its_public_source() -> None:
    assert len(CASES) >= 50
    ids = [case["id"] for case in CASES]
    assert len(set(ids)) == len(ids)
    for case in CASES:
        source = case["source"]
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repo"]), case["id"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), case["id"]
        assert source["path"] and source["test"], case["id"]
        assert case["agrees_with_upstream"] or case.get("note"), f"{case['id']}: say why it differs"


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_real_output_parses_as_recorded(case: dict[str, Any]) -> None:
    out = parse_output(case["output"])
    assert _meets(case), (case["output"], out)
    assert not CALL_SYNTAX.search(out.text), out.text


def test_ratio() -> None:
    met = sum(_meets(case) for case in CASES)
    same = sum(bool(case["agrees_with_upstream"]) for case in CASES)
    print(
        f"\ngemma outputs: {met}/{len(CASES)} parse as recorded; "
        f"{same}/{len(CASES)} recorded as the upstream tests expect, "
        f"{len(CASES) - same} deliberately refused where upstream is lenient"
    )
    assert met == len(CASES)
