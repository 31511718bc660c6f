"""The phrase brain on REAL human recordings (tests/data/recordings/): the set is whole, and speech
that asked for nothing acts no more often than it does today.

The clips, their sources and licences are described in tests/data/recordings/README.md; the
per-category figures (and what each acting clip was heard as) come from
bench/bench_real_recordings.py, whose run() this test shares.
"""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path
from types import ModuleType

import pytest

from assistant.brains.phrase import PhraseBrain
from assistant.brains.phrase.testkit import demo_tools
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = ROOT / "tests" / "data" / "recordings"

OUT_OF_DOMAIN_ACTIONS_TODAY = 0
"""FLOOR, not a goal: out-of-domain clips (every category but home_command and yes_no; "stop" is
read as the assistant's stop command, see bench_real_recordings.RECLASSIFIED) on which the phrase
brain acts. 8 when this set was added; lower it whenever the brain gets better, never raise it."""

ALLOWED_LICENCES = {"Apache-2.0", "MIT", "CC-BY-4.0", "CC0-1.0", "public-domain"}
CATEGORIES = {"wake_only", "other_assistant", "single_word", "out_of_domain", "yes_no", "home_command"}


def _bench() -> ModuleType:
    return load_script("bench/bench_real_recordings.py")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((RECORDINGS / "manifest.json").read_text())


def test_manifest_is_complete_and_consistent(manifest: dict) -> None:
    clips = manifest["clips"]
    assert len(clips) >= 60
    assert set(manifest["categories"]) == CATEGORIES
    assert set(manifest["allowed_licences"]) <= ALLOWED_LICENCES
    ids = [c["id"] for c in clips]
    assert len(ids) == len(set(ids)), "duplicate ids"
    listed = {c["file"] for c in clips}
    on_disk = {p.name for p in RECORDINGS.glob("*.wav")}
    assert listed == on_disk, f"unlisted {on_disk - listed}, missing {listed - on_disk}"
    tools = {t.name: t for t in demo_tools(_bench().bench_entities(manifest))}
    size = 0
    for clip in clips:
        where = clip["id"]
        assert clip["category"] in CATEGORIES, where
        assert clip["licence"] in ALLOWED_LICENCES, where
        assert clip["transcript"].strip() and clip["label_source"].strip() and clip["speakers"].strip(), where
        source = clip["source"]
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repo"]), where
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), where
        assert source["path"] and source["commit"] in source["url"], where
        assert source["repo"] in {s["repo"] for s in manifest["sources"].values()}, where
        path = RECORDINGS / clip["file"]
        size += path.stat().st_size
        with wave.open(str(path), "rb") as wav:
            assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2), where
            duration = wav.getnframes() / 16000
        assert 0.3 < duration <= 8.0, where
        assert abs(duration - clip["duration_s"]) < 0.01, where
        if clip["category"] == "home_command":
            assert "expected" in clip, where
            expected = clip["expected"]
            if expected is not None:
                tool = tools[expected["name"]]
                props = tool.parameters.get("properties", {})
                for key, value in expected["arguments"].items():
                    assert key in props, (where, key)
                    if "enum" in props[key]:
                        assert value in props[key]["enum"], (where, key, value)
        else:
            assert "expected" not in clip, where
    for key, source in manifest["sources"].items():
        assert source["licence"] in ALLOWED_LICENCES, key
        assert source["licence_evidence"].strip() and source["speakers"].strip(), key
    assert size < 8.5e6, f"{size / 1e6:.1f} MB"


def test_out_of_domain_actions_stay_at_or_below_todays_floor(phrase_brain: PhraseBrain,
                                                             manifest: dict) -> None:
    bench = _bench()
    categories = tuple(sorted(CATEGORIES - set(bench.IN_DOMAIN)))
    outcomes = bench.run(phrase_brain, manifest, RECORDINGS, categories=categories)
    acted = bench.out_of_domain_actions(outcomes)
    print(f"\nout-of-domain real recordings that acted: {len(acted)}/{len(outcomes)} "
          f"(floor today {OUT_OF_DOMAIN_ACTIONS_TODAY}, goal 0)")
    for o in acted:
        print(f"  {o.clip['id']} said {o.clip['transcript']!r} heard {o.transcript!r} -> {o.calls}")
    assert len(outcomes) == sum(bench.effective(c)["category"] in categories for c in manifest["clips"])
    assert len(acted) <= OUT_OF_DOMAIN_ACTIONS_TODAY, [o.clip["id"] for o in acted]


def test_a_real_lock_command_heard_right_locks(phrase_brain: PhraseBrain, manifest: dict) -> None:
    """The recorded "lock the front door" is heard as said; the unlock twin must not take it over
    (it did when the twin guard averaged the one-word difference over the whole utterance)."""
    bench = _bench()
    [clip] = [c for c in manifest["clips"] if c["id"] == "stp-lock_the_front_door"]
    outcomes = bench.run(phrase_brain, {**manifest, "clips": [clip]}, RECORDINGS)
    assert outcomes[0].transcript == "lock the front door"
    assert outcomes[0].calls == [{"name": "HassTurnOn", "arguments": {"name": "front door"}}]


def test_a_real_next_strung_into_what_day_is_it_over_a_long_pause_is_refused(phrase_brain: PhraseBrain,
                                                                            manifest: dict) -> None:
    """The recorded single word "next" (a request for no device here) came out of the grammar as
    "what day is <0.77 s of quiet> it" and asked for the weekday: a pause longer than the
    endpointer's 600 ms cannot sit inside one command, so the turn is refused."""
    bench = _bench()
    [clip] = [c for c in manifest["clips"] if c["id"] == "stp-next"]
    outcomes = bench.run(phrase_brain, {**manifest, "clips": [clip]}, RECORDINGS)
    assert outcomes[0].calls == [] and not outcomes[0].understood


def test_a_real_request_for_a_device_we_lack_does_not_act_on_a_like_named_one(
        phrase_brain: PhraseBrain, manifest: dict) -> None:
    """The recorded "activate mood lighting" (no such light in the bench home) came out of the
    grammar as "toggle bedroom light" and toggled it; "toggle big light" fits the audio better, so
    the name twin guard refuses the turn. The recorded "turn on standing light" (heard "activate
    the standing light") still acts: its name leads the names like it."""
    bench = _bench()
    ids = ("stp-activate_mood_lighting", "stp-turn_on_standing_light")
    clips = [c for c in manifest["clips"] if c["id"] in ids]
    outcomes = {o.clip["id"]: o for o in bench.run(phrase_brain, {**manifest, "clips": clips}, RECORDINGS)}
    assert outcomes["stp-activate_mood_lighting"].calls == []
    assert outcomes["stp-turn_on_standing_light"].calls == [
        {"name": "HassTurnOn", "arguments": {"name": "standing light"}}]
