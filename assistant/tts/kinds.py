"""The TTS sink kinds: the one list that settings validation, the factory, the CLI and the docs read.

Importing this module is cheap (no audio libraries), so ``assistant.config`` and
``assistant.cli`` may use it. A new sink is one ``TtsKind`` member, one ``SINKS`` entry
and one builder in ``assistant.tts.make_tts``; tests/tts check that every reader agrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class TtsKind(StrEnum):
    """Values of ``tts.kind``."""

    ESPEAK = "espeak"
    PIPER = "piper"
    MQTT = "mqtt"
    FILE = "file"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class SinkKind:
    """What a kind of sink is and needs."""

    summary: str
    """One line for docs and ``--help``."""
    speaker: bool = False
    """Plays on the local output device (so earcons play there too)."""
    needs_mqtt: bool = False
    """Needs a broker (``mqtt.host``) to work."""


SINKS: Mapping[TtsKind, SinkKind] = {
    TtsKind.ESPEAK: SinkKind("espeak-ng on the speaker", speaker=True),
    TtsKind.PIPER: SinkKind("piper neural voice on the speaker", speaker=True),
    TtsKind.MQTT: SinkKind("reply text on an MQTT topic, for Home Assistant to speak", needs_mqtt=True),
    TtsKind.FILE: SinkKind("one WAV file per reply"),
    TtsKind.NONE: SinkKind("silent: replies are only logged and published"),
}

TTS_KINDS: tuple[str, ...] = tuple(kind.value for kind in TtsKind)
"""Every ``tts.kind``, in documentation order (for argparse ``choices`` and messages)."""
