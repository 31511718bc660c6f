"""Speech output: TTS sinks (the kinds in assistant.tts.kinds), playback and earcons."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from assistant.config import Settings
from assistant.errors import ErrorCode, TtsError
from assistant.tools.context import Publish
from assistant.tts.base import SpeakResult, Synthesizer, TtsSink, split_sentences
from assistant.tts.earcons import EarconPlayer, SilentEarcons
from assistant.tts.kinds import SINKS, TTS_KINDS, TtsKind
from assistant.tts.playback import make_player
from assistant.tts.sinks import FileSink, MqttSink, NullSink, SpeakerSink

__all__ = [
    "SINKS",
    "TTS_KINDS",
    "EarconPlayer",
    "FileSink",
    "MqttSink",
    "NullSink",
    "Publish",
    "SilentEarcons",
    "SpeakResult",
    "SpeakerSink",
    "Synthesizer",
    "TtsError",
    "TtsKind",
    "TtsSink",
    "make_earcons",
    "make_synthesizer",
    "make_tts",
    "split_sentences",
]

_LOGGER = logging.getLogger(__name__)


def make_synthesizer(settings: Settings) -> Synthesizer:
    """piper when tts.kind is piper or tts.voice names a .onnx file, else espeak-ng."""
    from assistant.tts.espeak import EspeakSynthesizer  # noqa: PLC0415 - keep imports light
    from assistant.tts.piper import PiperSynthesizer  # noqa: PLC0415

    voice = settings.tts.voice
    if settings.tts.kind == TtsKind.PIPER.value or (voice and voice.endswith(".onnx")):
        return PiperSynthesizer(voice)
    return EspeakSynthesizer(voice, settings.tts.speed)


def _speaker(settings: Settings, _publish: Publish | None) -> TtsSink:
    player = make_player(settings.audio.output_device, settings.audio.volume)
    return SpeakerSink(settings.tts.kind, make_synthesizer(settings), player)


def _mqtt(settings: Settings, publish: Publish | None) -> TtsSink:
    if publish is None:
        raise TtsError("tts.kind is mqtt but no MQTT broker is configured (mqtt.host)",
                       code=ErrorCode.TTS_CONFIG)
    topic = settings.tts.topic or f"{settings.mqtt.base_topic}/{settings.site}/tts"
    return MqttSink(publish, topic)


def _file(settings: Settings, _publish: Publish | None) -> TtsSink:
    folder = settings.tts.output_dir or settings.state_dir / "replies"
    return FileSink(make_synthesizer(settings), folder)


def _none(_settings: Settings, _publish: Publish | None) -> TtsSink:
    return NullSink()


BUILDERS: Mapping[TtsKind, Callable[[Settings, Publish | None], TtsSink]] = {
    TtsKind.ESPEAK: _speaker,
    TtsKind.PIPER: _speaker,
    TtsKind.MQTT: _mqtt,
    TtsKind.FILE: _file,
    TtsKind.NONE: _none,
}
"""One builder per kind (assistant.tts.kinds.SINKS says what each kind is)."""


def make_tts(settings: Settings, publish: Publish | None = None) -> TtsSink:
    """The sink named by ``tts.kind``; raises TtsError with a clear reason when it cannot work."""
    try:
        kind = TtsKind(settings.tts.kind)
    except ValueError:
        raise TtsError(f"unknown tts.kind {settings.tts.kind!r}; one of {', '.join(TTS_KINDS)}",
                       code=ErrorCode.TTS_CONFIG) from None
    return BUILDERS[kind](settings, publish)


def make_earcons(settings: Settings, sink: TtsSink | None = None) -> EarconPlayer | SilentEarcons:
    """Earcons on the speaker for sinks that play there (SINKS[kind].speaker); silent otherwise."""
    if isinstance(sink, SpeakerSink):
        return EarconPlayer(sink.player)
    kind = TtsKind(settings.tts.kind) if settings.tts.kind in TTS_KINDS else None
    if sink is None and kind is not None and SINKS[kind].speaker:
        return EarconPlayer(make_player(settings.audio.output_device, settings.audio.volume))
    return SilentEarcons()
