"""Speech output: TTS sinks (espeak-ng, piper, mqtt, file, none), playback and earcons."""

from __future__ import annotations

import logging

from assistant.config import Settings
from assistant.errors import TtsError
from assistant.tts.base import SpeakResult, Synthesizer, TtsSink, split_sentences
from assistant.tts.earcons import EarconPlayer, SilentEarcons
from assistant.tts.playback import make_player
from assistant.tts.sinks import FileSink, MqttSink, NullSink, Publish, SpeakerSink

__all__ = [
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
    if settings.tts.kind == "piper" or (voice and voice.endswith(".onnx")):
        return PiperSynthesizer(voice)
    return EspeakSynthesizer(voice, settings.tts.speed)


def make_tts(settings: Settings, publish: Publish | None = None) -> TtsSink:
    """The sink named by ``tts.kind``; raises TtsError with a clear reason when it cannot work."""
    kind = settings.tts.kind
    if kind == "none":
        return NullSink()
    if kind == "mqtt":
        if publish is None:
            raise TtsError("tts.kind is mqtt but no MQTT broker is configured (mqtt.host)", code="tts_config")
        topic = settings.tts.topic or f"{settings.mqtt.base_topic}/{settings.site}/tts"
        return MqttSink(publish, topic)
    if kind == "file":
        folder = settings.tts.output_dir or settings.state_dir / "replies"
        return FileSink(make_synthesizer(settings), folder)
    player = make_player(settings.audio.output_device, settings.audio.volume)
    return SpeakerSink(kind, make_synthesizer(settings), player)


def make_earcons(settings: Settings, sink: TtsSink | None = None) -> EarconPlayer | SilentEarcons:
    """Earcons on the speaker for speaker sinks; silent for mqtt, file and none."""
    if isinstance(sink, SpeakerSink):
        return EarconPlayer(sink.player)
    if sink is None and settings.tts.kind in ("espeak", "piper"):
        return EarconPlayer(make_player(settings.audio.output_device, settings.audio.volume))
    return SilentEarcons()
