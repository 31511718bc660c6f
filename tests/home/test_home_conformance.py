"""Home Assistant Core 2025.4.4 as the oracle over 493 real discovery payloads and 347 service calls.

Data-driven over ../shared/reference/ha-conformance/ (see tests/support/ha_conformance.py).
The goal is 99 % on both ratios (the conformance issue); with one module per domain
(assistant/home/domains/) both are 100 %, and the floors below hold that so nothing slips back.
"""

from __future__ import annotations

import pytest

from tests.support.ha_conformance import corpus_dir, measure, same_publishes

FLOOR_LEARNED = 1.0
"""Payloads learned as HA learned them (name, area, every capability HA reports): 461/461."""
FLOOR_COMMANDS = 1.0
"""Commands equal to what HA published: 344/344."""

pytestmark = pytest.mark.skipif(corpus_dir() is None, reason="the ha-conformance corpus is missing")


def test_the_corpus_is_learned_and_commanded_at_least_as_well_as_before(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = corpus_dir()
    assert folder is not None
    report = measure(folder)
    with capsys.disabled():
        print(f"\nHA conformance: learned {report.payloads_equal}/{report.payloads}, "
              f"commands {report.commands_equal}/{report.commands}")
    assert report.payloads > 400 and report.commands > 300, "the corpus was not read"
    assert report.learned_ratio >= FLOOR_LEARNED, "\n".join(report.payload_diffs)
    assert report.command_ratio >= FLOOR_COMMANDS, "\n".join(report.command_diffs)


def test_publishes_compare_json_by_value_and_numbers_within_rounding() -> None:
    assert same_publishes([("t", '{"state": "ON", "brightness": 127}')],
                          [("t", '{"state":"ON","brightness":128}')])
    assert not same_publishes([("t", '{"state": "ON"}')], [("t", '{"state":"OFF"}')])
    assert not same_publishes([("t", "40")], [("t", '{ "position": 40 }')])
    assert not same_publishes([("a", "ON")], [("b", "ON")])
    assert not same_publishes([], [("t", "ON")])
