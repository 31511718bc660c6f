#!/usr/bin/env python3
# ruff: noqa: E501 - provenance tables: one source or clip per entry, quotes kept whole
"""How tests/data/recordings/ was assembled: real human recordings from public repositories.

Every clip below names the public repository, the commit and the path it was taken from,
its licence, what is said and how that label is known. This script reproduces the set from
local git copies of those repositories; it is NOT needed at test time (the converted WAVs
and manifest.json are committed).

    scripts/collect_recordings.py --sources DIR [--out tests/data/recordings]

DIR holds one git copy per repository, found as DIR/<owner>+<name>/repo (a bare mirror) or
DIR/<owner>/<name> (a clone), e.g. ``git clone --mirror https://github.com/rhasspy/wyoming-openwakeword
DIR/rhasspy+wyoming-openwakeword/repo``. Blobs are read with ``git show <commit>:<path>``, so the
clone needs the listed commits.

Conversion (sox, no dither, so reruns are byte-identical): 16 kHz, mono (channels averaged), 16-bit PCM WAV; a clip cut from a
longer recording keeps the listed [start, end] window (seconds; word times from the source's own
test assertion order, aligned with pocketsphinx, padded by ~0.3 s); otherwise leading and
trailing quiet is trimmed (frames 35 dB under the loudest 10 ms frame, 0.25 s margin kept);
nothing is longer than 8 s.

Only recordings that are people speaking are taken. Considered and left out: rhasspy/rhasspy-test
wav/en (24 kHz, uniform combinatorial set: likely synthesized), voice2json
etc/test/turn_on_living_room_lamp.wav (24 kHz, near-digital silence floor), speech-to-phrase
tests/wav/*/generated (TTS by its own commit message), wyoming-faster-whisper
living_room_light_* (Home Assistant Cloud TTS by its commit message).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000
MAX_S = 8.0
ALLOWED_LICENCES = ("Apache-2.0", "MIT", "CC-BY-4.0", "CC0-1.0", "public-domain")
CATEGORIES = ("wake_only", "other_assistant", "single_word", "out_of_domain", "yes_no", "home_command")


@dataclass(frozen=True)
class Source:
    """One public repository at one commit."""

    repo: str
    commit: str
    licence: str
    """Licence the files are distributed under (SPDX id, or public-domain)."""
    licence_evidence: str
    speakers: str
    """Who speaks, and why we take it to be a person, not a synthesizer."""


SOURCES: dict[str, Source] = {
    "oww": Source("rhasspy/wyoming-openwakeword", "419701f64aa936ff62a820dfeac757f1afda01d1", "Apache-2.0",
                  "LICENSE (Apache-2.0)",
                  "one adult speaker (the project's author, presumably); 16 kHz microphone recordings with a "
                  "room-noise floor of -48..-61 dBFS"),
    "wfw": Source("rhasspy/wyoming-faster-whisper", "5b5854f36a0f228a289a6a30da7e594f74e35968", "MIT",
                  "LICENSE.md (MIT)",
                  "one adult speaker; 44.1 kHz stereo microphone recording (noise floor -56 dBFS); added in "
                  "'Add tests' (2024), unlike the TTS living_room_light_* files added later"),
    "v2j": Source("synesthesiam/voice2json", "03996c94113a615182adbbb1c83834124833579a", "MIT",
                  "LICENSE (MIT, Michael Hansen)",
                  "one adult speaker; 44.1/48 kHz stereo microphone recordings with room noise"),
    "v2j_old": Source("synesthesiam/voice2json", "57333a07a6c8c7156073af13373d528276bdd332", "MIT",
                      "LICENSE (MIT, Michael Hansen)",
                      "one adult speaker; 16 kHz microphone recording (noise floor -50 dBFS); etc/test/porcupine.wav "
                      "is empty at later commits, so the packaging copy of this commit is used"),
    "stp": Source("OHF-Voice/speech-to-phrase", "edfce6e7f2a6c680c58f8a85420b86259d52abae", "Apache-2.0",
                  "LICENSE.md (Apache-2.0)",
                  "one adult speaker; the hand-recorded tests/wav/en/*.wav of the initial commit (irregular "
                  "lengths, noise floor -32..-65 dBFS), not the TTS files under tests/wav/en/generated/"),
    "porcupine": Source("Picovoice/porcupine", "b42ec9f849c05bb2aa99e6cbd1c85c9b66e103bb", "Apache-2.0",
                        "LICENSE (Apache-2.0)",
                        "one adult speaker reading Porcupine's keywords, one after another"),
    "porcupine_old": Source("Picovoice/porcupine", "ded74c97b70123606a32ea4e1bb0f49cf59f0dc8", "Apache-2.0",
                            "LICENSE (Apache-2.0)", "one adult speaker (resources/audio_samples/porcupine.wav, "
                            "removed in 9f36b191 'Keep Porcupine python only')"),
    "wwb": Source("Picovoice/wake-word-benchmark", "84919190fb1891bf0936dcb577d9268e467f876f", "Apache-2.0",
                  "LICENSE (Apache-2.0); README: 'more than 300 recordings of six keywords ... from more than 50 "
                  "distinct speakers ... The recordings are crowd-sourced. The recordings are stored within the "
                  "repository'", "crowd-sourced speakers, one per file"),
    "rhino": Source("Picovoice/rhino", "b65a53b8c449cc93d66ab5a122133cc94bdb6635", "Apache-2.0",
                    "LICENSE (Apache-2.0)", "one adult speaker"),
    "picovoice": Source("Picovoice/picovoice", "62b320343ac913ab0fe8ea1d4bf2124de0cc50e9", "Apache-2.0",
                        "LICENSE (Apache-2.0)", "one adult speaker"),
    "arm": Source("alifsemi/alif_ml-embedded-evaluation-kit", "b1b93fc01d915da47a4f6ea8475c193aef56e871",
                  "CC-BY-4.0",
                  "resources/{kws,kws_asr,asr}/samples/files.md: 'under Creative Commons License (Creative Commons "
                  "Attribution 4.0 International Public License)', from Speech Commands v0.02 and LibriSpeech "
                  "and resources/LICENSE_CC_4.0.txt (the fork's own License.txt covers Alif's software, not these "
                  "third-party samples; a fork of Arm's ml-embedded-evaluation-kit)",
                  "Speech Commands and LibriSpeech volunteers"),
    "tflm": Source("tensorflow/tflite-micro", "90b983c2b3f1480642e040bbd2ddb37b998f3424", "Apache-2.0",
                   "LICENSE (Apache-2.0); the micro_speech test data are one-second Speech-Commands-style clips "
                   "(source not stated in the repository; if from Speech Commands, CC-BY-4.0 by Google)",
                   "one speaker per clip"),
    "whispercpp": Source("ggerganov/whisper.cpp", "f0d2bfbfb77e01df6160f64d249bd43e75e11660", "public-domain",
                         "samples/jfk.wav: President Kennedy's 1961 inaugural address, a work of the US federal "
                         "government (public domain); repository MIT", "John F. Kennedy"),
    "vosk": Source("alphacep/vosk-api", "9adbd76c77338b48399caa622d7cba15037d83c0", "Apache-2.0",
                   "COPYING (Apache-2.0)", "one adult speaker reading digit strings"),
}


@dataclass(frozen=True)
class Clip:
    """One clip of the set."""

    id: str
    source: str
    path: str
    category: str
    transcript: str
    label_source: str
    segment: tuple[float, float] | None = None
    expected: dict[str, Any] | None = None
    """home_command only: the exact tool call the bench home should receive (None: the home has no such
    device or tool, so the right outcome is no call)."""
    transcript_exact: bool = True
    upstream: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


# Porcupine's multiple_keywords.wav: the order is binding/python/test_porcupine.py's assertion at v1.2
# (commit 4d11c45f, [15, 0, 1, ..., 18] over the keyword list below); times are pocketsphinx's
# alignment of that keyword sequence (the first two short sounds before 'porcupine' and the one
# after 'vancouver' are not in the assertion and are left out).
_PORCUPINE_WORDS: tuple[tuple[str, float, float], ...] = (
    ("porcupine", 5.72, 6.52), ("alexa", 7.69, 8.19), ("americano", 9.54, 10.25), ("avocado", 11.57, 12.27),
    ("blueberry", 13.77, 14.31), ("bumblebee", 15.30, 15.91), ("caterpillar", 17.05, 17.74),
    ("christina", 18.67, 19.26), ("dragonfly", 20.30, 21.03), ("flamingo", 22.34, 23.07),
    ("francesca", 24.29, 25.05), ("grapefruit", 26.24, 27.07), ("grasshopper", 27.94, 28.71),
    ("iguana", 29.89, 30.56), ("picovoice", 31.61, 32.46), ("pineapple", 33.40, 34.06),
    ("porcupine", 35.44, 36.17), ("raspberry", 37.41, 38.12), ("terminator", 39.19, 40.00),
    ("vancouver", 40.84, 41.62),
)
_PICOVOICE_WAKE = {"porcupine", "picovoice", "bumblebee", "terminator", "grasshopper", "americano",
                   "blueberry", "grapefruit"}
"""Porcupine's built-in wake words (the rest are its older demo keywords)."""


def _porcupine_clips() -> list[Clip]:
    clips = []
    seen: dict[str, int] = {}
    for word, start, end in _PORCUPINE_WORDS:
        seen[word] = seen.get(word, 0) + 1
        category = "wake_only" if word == "alexa" else (
            "other_assistant" if word in ("porcupine", "picovoice", "bumblebee", "terminator") else "single_word")
        clips.append(Clip(
            f"porcupine-{word}{'-2' if seen[word] > 1 else ''}", "porcupine",
            "resources/audio_samples/multiple_keywords.wav", category, word,
            "order asserted by Porcupine's test_process_multiple (v1.2), times by forced alignment",
            segment=(round(start - 0.3, 2), round(end + 0.3, 2)),
            note="a Porcupine built-in wake word" if word in _PICOVOICE_WAKE else ""))
    return clips


_WWB = {
    "alexa": ("wake_only", ["0.flac", "97.flac", "194.flac", "291.flac"]),
    "jarvis": ("wake_only", ["00a97647-55b9-4f62-be20-8e4b0ee510b0.wav", "016f5c2e-907b-4711-8a3b-49b73a0655c2.wav",
                             "5354c897-8b87-41a3-a947-033dee6431bd.wav", "bcf332d9-34c7-4594-9abf-ac06e8c93d0f.wav"]),
    "computer": ("other_assistant", ["0b62c269-a68f-4480-9e39-941cf6b7b085.wav",
                                     "8d1dcda7-2c06-49f8-8dfd-29dea30cef0f.wav",
                                     "414b5dbf-5b9b-42cf-9fe3-414c3989761b.wav",
                                     "afb1eb58-e709-4cca-90e7-3160d7802d06.wav"]),
    "smart mirror": ("other_assistant", ["0a74dd57-3b71-426f-8f80-3e32aeecdf93.wav",
                                         "26a58ec0-1e56-4287-b406-a3b68fe2925c.wav",
                                         "57097a7d-f00b-4128-961e-5483add91a1e.wav",
                                         "cf077332-bdbc-448f-b7cc-92a4bee62c7c.wav"]),
    "snowboy": ("other_assistant", ["0a455704-286a-4851-82e2-b4f486ba8f21.wav",
                                    "9cb350b2-cc3d-44f3-8ab9-30bbf450979a.wav",
                                    "00927c6f-0043-43d2-8b39-6174019c584f.wav",
                                    "b4b1150d-5743-4d29-8c1f-4290be25d89b.wav"]),
    "view glass": ("other_assistant", ["0a9121c4-8a1a-4833-9e09-4aa258fcfd65.wav",
                                       "8ddf0ff0-23ce-491f-8000-b6556e4c6f47.wav",
                                       "0448b86e-eee1-4975-a064-ebfece3112d0.wav",
                                       "b9de73e3-82bc-4c4e-b227-382d40644fa5.wav"]),
}
"""Four crowd-sourced recordings per keyword: every 97th file in version-sorted name order."""


def _wwb_clips() -> list[Clip]:
    clips = []
    for word, (category, files) in _WWB.items():
        for n, name in enumerate(files, 1):
            clips.append(Clip(f"wwb-{word.replace(' ', '_')}-{n}", "wwb", f"audio/{word}/{name}", category, word,
                              "folder name (audio/<keyword>/) of the benchmark's keyword recordings"))
    return clips


# speech-to-phrase tests/wav/en (hand recorded): file name = transcript (its tests assert the
# transcription equals the file name); expected call in the bench home (None: no such tool/device).
_STP: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("activate Mood Lighting", None),
    ("add apples to my Shopping List", None),
    ("cancel all timers", _call("cancel_timer")),
    ("cancel timer", _call("cancel_timer")),
    ("is the Front Door locked", _call("HassGetState", name="front door")),
    ("is the Garage Door open", _call("HassGetState", name="garage door")),
    ("lock the Front Door", _call("HassTurnOn", name="front door")),
    ("nevermind", _call("assistant_stop")),
    ("next", None),
    ("pause timer", None),
    ("pause", None),
    ("resume timer", None),
    ("resume", None),
    ("run Party Time", None),
    ("set Bed Light brightness to 50 percent", _call("HassLightSet", name="bed light", brightness=50)),
    ("set Kitchen lights to green", None),
    ("set a timer for 3 hours and 10 minutes", None),
    ("set a timer for 30 seconds", None),
    ("set a timer for 5 minutes", _call("start_timer", minutes=5)),
    ("skip on TV", None),
    ("timer status", _call("timer_remaining")),
    ("turn off all of the lights in the Office", _call("HassTurnOff", area="office", domain="light")),
    ("turn off lights in the Office", _call("HassTurnOff", area="office", domain="light")),
    ("turn on Standing Light", _call("HassTurnOn", name="standing light")),
    ("what is the Outdoor Humidity", _call("HassGetState", name="outdoor humidity")),
    ("what time is it", _call("get_time")),
    ("what's the date", _call("get_date")),
    ("what's the temperature of the EcoBee", _call("HassClimateGetTemperature", name="ecobee")),
    ("what's the temperature", _call("HassClimateGetTemperature")),
    ("what's the weather like in New York", None),
    ("what's the weather", None),
)
_STP_OOV = {
    "oov_1": "huh to the old",
    "oov_2": "(a long passage; pocketsphinx hears: if that but family came to reboot to the)",
    "oov_3": "i'm panicking",
    "oov_4": "author of the danger trail philip steels etc",
}
"""Transcripts here are pocketsphinx guesses (not exact); the label is the file name (oov_ = out of
vocabulary, 'should produce an empty text response', tests/README.md)."""

BENCH_EXTRA_ENTITIES: tuple[dict[str, str], ...] = (
    {"name": "bed light", "domain": "light", "area": "bedroom"},
    {"name": "standing light", "domain": "light", "area": "office"},
    {"name": "ecobee", "domain": "climate", "area": "office"},
    {"name": "outdoor humidity", "domain": "sensor", "area": "garden"},
)
"""Added to testkit's demo home so the recorded commands' devices exist (written to the manifest)."""


def _stp_clips() -> list[Clip]:
    clips = []
    for text, expected in _STP:
        slug = text.lower().replace("'", "").replace(" ", "_")
        clips.append(Clip(f"stp-{slug}", "stp", f"tests/wav/en/{text}.wav", "home_command", text.lower(),
                          "file name (speech-to-phrase's tests assert the transcript equals it)", expected=expected,
                          note="" if expected else "the bench home has no tool or device for this: the right "
                                                   "outcome is no call"))
    for name, text in _STP_OOV.items():
        clips.append(Clip(f"stp-{name}", "stp", f"tests/wav/en/{name}.wav", "out_of_domain", text,
                          "file name oov_* = out of vocabulary (tests/README.md)", transcript_exact=False,
                          segment=(0.0, 5.0) if name == "oov_2" else None,
                          note="first 5 s of a 10.6 s passage" if name == "oov_2" else ""))
    return clips


_SC = "Speech Commands v0.02"
CLIPS: list[Clip] = [
    # wake words alone, by one speaker (wyoming-openwakeword's test WAVs; label = file name = model name)
    *[Clip(f"oww-{name}", "oww", f"tests/{name}.wav", category, text,
           "file name = wake word model the test expects to fire")
      for name, category, text in (
          ("hey_jarvis", "wake_only", "hey jarvis"), ("hey_mycroft", "wake_only", "hey mycroft"),
          ("okay_nabu", "wake_only", "okay nabu"), ("hey_rhasspy", "wake_only", "hey rhasspy"),
          ("alexa", "wake_only", "alexa"), ("computer", "other_assistant", "computer"),
          ("snowboy", "other_assistant", "snowboy"))],
    Clip("v2j-hey_mycroft", "v2j", "etc/test/hey_mycroft.wav", "wake_only", "hey mycroft",
         "scripts/test/test-wait-wake.sh expects the wake word detector to fire on it"),
    Clip("v2j-porcupine", "v2j_old", "debian/voice2json_1.0_amd64/usr/lib/voice2json/etc/test/porcupine.wav",
         "other_assistant", "porcupine", "tests/test.py: the 'correct' wake word WAV",
         ),
    Clip("porcupine-porcupine-single", "porcupine_old", "resources/audio_samples/porcupine.wav", "other_assistant",
         "porcupine", "Porcupine's test_process asserts exactly one detection of 'porcupine'"),
    *_porcupine_clips(),
    *_wwb_clips(),
    # Speech Commands words (Arm's evaluation kit samples, concatenated one-second clips)
    *[Clip(f"arm-sc-{word}", "arm", path, "yes_no" if word in ("yes", "no") else "single_word", word,
           "files.md lists the Speech Commands file of each second", segment=seg, upstream=f"{_SC} {up}")
      for word, path, seg, up in (
          ("yes", "resources/kws/samples/yes_no_go_stop.wav", (0.0, 1.0), "yes/0b40aa8e_nohash_0.wav"),
          ("no", "resources/kws/samples/yes_no_go_stop.wav", (1.0, 2.0), "no/0a2b400e_nohash_0.wav"),
          ("go", "resources/kws/samples/yes_no_go_stop.wav", (2.0, 3.0), "go/0c2ca723_nohash_2.wav"),
          ("stop", "resources/kws/samples/yes_no_go_stop.wav", (3.0, 4.0), "stop/0a196374_nohash_0.wav"),
          ("right", "resources/kws/samples/right_left_up.wav", (0.0, 1.0), "right/0d82fd99_nohash_0.wav"),
          ("left", "resources/kws/samples/right_left_up.wav", (1.0, 2.0), "left/0d82fd99_nohash_3.wav"),
          ("up", "resources/kws/samples/right_left_up.wav", (2.0, 3.0), "up/0a2b400e_nohash_1.wav"),
          ("down", "resources/kws/samples/down.wav", None, "down/0a9f9af7_nohash_2.wav"))],
    Clip("tflm-yes", "tflm", "tensorflow/lite/micro/examples/micro_speech/testdata/yes_1000ms.wav", "yes_no", "yes",
         "file name; evaluate_test.py expects the 'yes' category"),
    Clip("tflm-no", "tflm", "tensorflow/lite/micro/examples/micro_speech/testdata/no_1000ms.wav", "yes_no", "no",
         "file name; evaluate_test.py expects the 'no' category"),
    # sentences nobody should act on
    *[Clip(f"arm-libri-{name}", "arm", f"resources/asr/samples/{name}.wav", "out_of_domain", text,
           "files.md gives the LibriSpeech utterance and its transcript", upstream=f"LibriSpeech {up}")
      for name, text, up in (
          ("testing_routine", "this isn't part of your testing routine is it", "251-137823-0002"),
          ("another_engineer", "another engineer rushed toward the door to see what was happening outside",
           "251-137823-0003"),
          ("another_door", "and he walked immediately out of the apartment by another door", "3536-23268-0010"),
          ("i_tell_you", "i tell you it is not poison she cried", "251-118436-0001"))],
    Clip("whispercpp-jfk", "whispercpp", "samples/jfk.wav", "out_of_domain",
         "and so my fellow americans ask not what your country can do for you",
         "whisper.cpp's bindings tests assert this transcript (first 7.9 s of the clip)", segment=(0.0, 7.9)),
    *[Clip(f"vosk-digits-{n}", "vosk", "python/example/test.wav", "out_of_domain", text,
           "vosk's example notebook output (python/example/colab/vosk.ipynb), word times from it", segment=seg)
      for n, text, seg in ((1, "one zero zero zero one", (0.45, 2.95)), (2, "nine oh two one oh", (3.55, 5.25)),
                           (3, "zero one eight zero three", (5.9, 8.31)))],
    Clip("v2j-launch_firefox", "v2j", "recipes/launch_program/test/launch_firefox.wav", "out_of_domain",
         "launch firefox", "file name (voice2json launch_program recipe test)"),
    Clip("rhino-within_context", "rhino", "resources/audio_samples/test_within_context.wav", "out_of_domain",
         "a request for a medium double-shot americano",
         "resources/.test/test_data.json: intent orderBeverage {beverage: americano, numberOfShots: double shot, "
         "size: medium}", transcript_exact=False),
    Clip("rhino-out_of_context", "rhino", "resources/audio_samples/test_out_of_context.wav", "out_of_domain",
         "a request outside the coffee-maker context (something like a noodle soup)",
         "Rhino's tests assert it is not understood in the coffee_maker context", transcript_exact=False,
         note="trimmed to 8 s"),
    Clip("picovoice-coffee", "picovoice", "resources/audio_samples/picovoice-coffee.wav", "out_of_domain",
         "picovoice, make me a large coffee",
         "Picovoice SDK demo: wake word 'picovoice' then an orderBeverage command", transcript_exact=False),
    # home commands spoken by a person
    Clip("wfw-turn_on_the_living_room_lamp", "wfw", "tests/turn_on_the_living_room_lamp.wav", "home_command",
         "turn on the living room lamp", "tests/test_faster_whisper.py asserts this transcript",
         expected=_call("HassTurnOn", name="living room lamp")),
    Clip("v2j-would_you_please_turn_on_living_room_lamp", "v2j",
         "etc/test/would_you_please_turn_on_living_room_lamp.wav", "home_command",
         "would you please turn on living room lamp", "file name; scripts/test/test-open-transcription.sh",
         expected=_call("HassTurnOn", name="living room lamp")),
    Clip("v2j-what_time_is_it", "v2j", "etc/test/what_time_is_it.wav", "home_command", "what time is it",
         "file name (tests/test.py uses it as the not-a-wake-word WAV)", expected=_call("get_time")),
    *_stp_clips(),
]


def _git_dir(sources: Path, repo: str) -> Path:
    owner, name = repo.split("/")
    for candidate in (sources / f"{owner}+{name}" / "repo", sources / owner / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"no git copy of {repo} under {sources}")


def _blob(sources: Path, source: Source, path: str) -> bytes:
    git_dir = _git_dir(sources, source.repo)
    if (git_dir / ".git").exists():
        git_dir = git_dir / ".git"
    out = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{source.commit}:{path}"],
                         capture_output=True, check=True)
    return out.stdout


def _convert(data: bytes, suffix: str, segment: tuple[float, float] | None) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"in{suffix}"
        dst = Path(tmp) / "out.wav"
        src.write_bytes(data)
        cmd = ["sox", "-V1", "-D", str(src), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(dst)]
        if segment is not None:
            cmd += ["trim", f"{segment[0]}", f"={segment[1]}"]
        subprocess.run(cmd, check=True)
        with wave.open(str(dst), "rb") as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
    if segment is None:
        pcm = _trim_quiet(pcm)
    return pcm[: int(MAX_S * RATE)]


def _trim_quiet(pcm: np.ndarray, margin_s: float = 0.25, below_db: float = 35.0) -> np.ndarray:
    frame = RATE // 100
    n = len(pcm) // frame
    if n < 3:
        return pcm
    energy = np.sqrt(np.mean(pcm[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)) + 1e-9
    loud = np.flatnonzero(20 * np.log10(energy / energy.max()) > -below_db)
    start = max(0, loud[0] * frame - int(margin_s * RATE))
    end = min(len(pcm), (loud[-1] + 1) * frame + int(margin_s * RATE))
    return pcm[start:end]


def _url(source: Source, path: str) -> str:
    return f"https://github.com/{source.repo}/blob/{source.commit}/{path.replace(' ', '%20')}"


def collect(sources: Path, out: Path) -> dict[str, Any]:
    """Write every clip and manifest.json into ``out``; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    ids = set()
    for clip in CLIPS:
        assert clip.id not in ids, clip.id  # noqa: S101 - script sanity
        assert clip.category in CATEGORIES, clip  # noqa: S101
        ids.add(clip.id)
        source = SOURCES[clip.source]
        pcm = _convert(_blob(sources, source, clip.path), Path(clip.path).suffix, clip.segment)
        file = f"{clip.id}.wav"
        with wave.open(str(out / file), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(RATE)
            wav.writeframes(pcm.tobytes())
        entry: dict[str, Any] = {
            "id": clip.id, "file": file, "category": clip.category, "transcript": clip.transcript,
            "transcript_exact": clip.transcript_exact, "label_source": clip.label_source,
            "source": {"repo": source.repo, "path": clip.path, "commit": source.commit, "url": _url(source, clip.path)},
            "licence": source.licence, "speakers": source.speakers,
            "segment_s": list(clip.segment) if clip.segment else None,
            "duration_s": round(len(pcm) / RATE, 3),
        }
        if clip.upstream:
            entry["upstream"] = clip.upstream
        if clip.category == "home_command":
            entry["expected"] = clip.expected
        if clip.note:
            entry["note"] = clip.note
        entries.append(entry)
    manifest = {
        "description": "Real human recordings (no synthesized speech) for the phrase brain's 'hear right or do "
                       "nothing' checks; assembled by scripts/collect_recordings.py; see README.md",
        "format": {"rate": RATE, "channels": 1, "sample_width": 2, "max_duration_s": MAX_S},
        "allowed_licences": list(ALLOWED_LICENCES),
        "categories": list(CATEGORIES),
        "bench_extra_entities": list(BENCH_EXTRA_ENTITIES),
        "sources": {key: {"repo": s.repo, "commit": s.commit, "licence": s.licence,
                          "licence_evidence": s.licence_evidence, "speakers": s.speakers}
                    for key, s in SOURCES.items()},
        "clips": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=Path, required=True, help="folder of git copies of the source repos")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "recordings")
    args = parser.parse_args(argv)
    manifest = collect(args.sources, args.out)
    counts: dict[str, int] = {}
    for entry in manifest["clips"]:
        counts[entry["category"]] = counts.get(entry["category"], 0) + 1
    size = sum((args.out / e["file"]).stat().st_size for e in manifest["clips"])
    print(f"{len(manifest['clips'])} clips, {size / 1e6:.2f} MB: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
