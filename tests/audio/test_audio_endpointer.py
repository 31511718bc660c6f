"""The pure endpointer, driven by plain booleans: no audio anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.audio.endpointer import Endpointer, EndpointEvent, EndpointEventType, EndpointState
from assistant.config import VadSettings

FRAME = 0.03
Kind = EndpointEventType


def run(ep: Endpointer, pattern: str, frame: float = FRAME) -> list[EndpointEvent]:
    """Feed a pattern like '...###...' ('#' voiced, '.' silent); return all events."""
    events: list[EndpointEvent] = []
    for ch in pattern:
        events.extend(ep.process(frame, ch == "#"))
    return events


def make(**kwargs: float) -> Endpointer:
    defaults = {
        "speech_start_s": 0.09,
        "silence_end_s": 0.3,
        "min_utterance_s": 0.15,
        "max_utterance_s": 30.0,
    }
    defaults.update(kwargs)
    return Endpointer(**defaults)


def test_speech_starts_only_after_enough_voiced_frames() -> None:
    ep = make()
    assert run(ep, "..##") == []
    assert ep.state is EndpointState.SILENCE
    events = run(ep, "#")
    assert [e.type for e in events] == [Kind.SPEECH_START]
    assert events[0].time_s == pytest.approx(0.06)  # the first voiced frame of the run
    assert ep.state is EndpointState.SPEECH


def test_a_broken_voiced_run_does_not_start_speech() -> None:
    assert run(make(), "##.##.##.") == []


def test_speech_ends_after_enough_silence_at_the_first_silent_frame() -> None:
    ep = make()
    events = run(ep, "..########" + "." * 9)
    assert [e.type for e in events] == [Kind.SPEECH_START]
    events = run(ep, ".")  # 10 silent frames = 0.3 s
    assert [e.type for e in events] == [Kind.SPEECH_END]
    assert events[0].time_s == pytest.approx(0.30)  # where speech stopped, not the endpoint
    assert events[0].start_s == pytest.approx(0.06)
    assert ep.state is EndpointState.SILENCE


def test_short_pauses_inside_speech_do_not_end_it() -> None:
    events = run(make(), "#####" + "...." + "#####" + "...." + "####" + "." * 10)
    assert [e.type for e in events] == [Kind.SPEECH_START, Kind.SPEECH_END]
    assert events[1].time_s == pytest.approx(22 * FRAME)


def test_bursts_shorter_than_the_minimum_are_discarded() -> None:
    events = run(make(min_utterance_s=0.25), "....####" + "." * 10)  # 0.12 s of voice
    assert [e.type for e in events] == [Kind.SPEECH_START, Kind.DISCARDED]


def test_an_utterance_of_exactly_the_minimum_is_kept() -> None:
    events = run(make(min_utterance_s=0.15), "#####" + "." * 10)  # 5 frames = 0.15 s
    assert events[-1].type is Kind.SPEECH_END


def test_long_speech_is_cut_at_the_maximum_and_the_rest_starts_again() -> None:
    ep = make(max_utterance_s=30.0)
    events = run(ep, "#" * 1100)  # 33 s of continuous voice
    kinds = [e.type for e in events]
    assert kinds[:2] == [Kind.SPEECH_START, Kind.MAX_LENGTH]
    cut = events[1]
    assert cut.time_s - (cut.start_s or 0) == pytest.approx(30.0)
    assert kinds[2] is Kind.SPEECH_START  # the speech goes on as a new utterance
    assert events[2].time_s == pytest.approx(30.0)


def test_timeout_only_when_armed() -> None:
    ep = make(no_speech_timeout_s=1.0)
    assert run(ep, "." * 100) == []  # 3 s of silence, not armed: files never time out
    ep.arm()
    events = run(ep, "." * 40)
    assert [e.type for e in events] == [Kind.TIMEOUT]
    assert events[0].time_s == pytest.approx(3.0 + 34 * FRAME)  # first step reaching 1.0 s
    assert not ep.armed


def test_timeout_override_and_speech_disarms() -> None:
    ep = make(no_speech_timeout_s=8.0)
    ep.arm(0.3)
    assert [e.type for e in run(ep, "." * 10)] == [Kind.TIMEOUT]
    ep.arm(0.3)
    events = run(ep, "####" + "." * 30)
    assert Kind.TIMEOUT not in [e.type for e in events]


def test_voice_that_never_becomes_speech_still_times_out() -> None:
    ep = make(no_speech_timeout_s=0.3)
    ep.arm()
    assert [e.type for e in run(ep, "#.#.#.#.#.#.")] == [Kind.TIMEOUT]


def test_finish_closes_an_utterance_in_progress() -> None:
    ep = make()
    run(ep, "..######..")
    events = ep.finish()
    assert [e.type for e in events] == [Kind.SPEECH_END]
    assert events[0].time_s == pytest.approx(0.24)  # where silence began
    assert ep.finish() == []


def test_reset_forgets_speech_and_moves_the_clock() -> None:
    ep = make()
    run(ep, "#####")
    ep.reset(time_s=10.0)
    assert ep.state is EndpointState.SILENCE
    events = run(ep, "###")
    assert events[0].time_s == pytest.approx(10.0)


def test_from_settings_uses_milliseconds_from_vad_settings() -> None:
    ep = Endpointer.from_settings(VadSettings(speech_start_ms=60, silence_end_ms=90, min_utterance_ms=0))
    events = run(ep, "##" + "...")
    assert [e.type for e in events] == [Kind.SPEECH_START, Kind.SPEECH_END]


def test_variable_step_durations_count_time_not_frames() -> None:
    ep = make(speech_start_s=0.1)
    assert ep.process(0.05, True) == []
    assert [e.type for e in ep.process(0.05, True)] == [Kind.SPEECH_START]


def test_bad_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Endpointer(silence_end_s=0)
    with pytest.raises(ValueError, match="negative"):
        make().process(-0.01, True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=400))
def test_events_are_well_formed_for_any_input(pattern: list[bool]) -> None:
    ep = make(max_utterance_s=1.0)
    events: list[EndpointEvent] = []
    for voiced in pattern:
        events.extend(ep.process(FRAME, voiced))
    events.extend(ep.finish())
    open_start: float | None = None
    for event in events:
        if event.type is Kind.SPEECH_START:
            assert open_start is None
            open_start = event.time_s
        else:
            assert open_start is not None
            assert event.start_s == pytest.approx(open_start)
            assert event.time_s >= open_start
            # cut at the first frame boundary at or after the maximum (1.0 s is no multiple of 30 ms)
            assert event.time_s - open_start <= 1.0 + FRAME + 1e-6
            open_start = None
    assert open_start is None
