"""The TTS kinds are written once (assistant.tts.kinds); every reader agrees with that list."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from assistant import cli, config
from assistant.config import Settings, TtsSettings
from assistant.errors import TtsError
from assistant.tts import BUILDERS, SINKS, TTS_KINDS, TtsKind, make_earcons, make_tts
from assistant.tts.earcons import EarconPlayer, SilentEarcons

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_the_factory_and_the_settings_list_the_same_kinds() -> None:
    assert set(SINKS) == set(TtsKind) == set(BUILDERS)
    annotation = typing.get_type_hints(config.TtsSettings)["kind"]
    assert set(typing.get_args(annotation)) == set(TTS_KINDS)


def test_the_cli_offers_every_kind() -> None:
    parser = cli._parser()
    process = next(a for a in parser._subparsers._group_actions[0].choices["process"]._actions  # type: ignore[union-attr]
                   if "--tts" in a.option_strings)
    assert set(process.choices or ()) == set(TTS_KINDS)


def test_the_example_config_documents_every_kind() -> None:
    text = (ROOT / "systemd" / "config.example.yaml").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.strip().startswith("kind:") and "espeak" in line)
    assert all(kind in line for kind in TTS_KINDS)


@pytest.mark.parametrize("kind", ["file", "none"])
def test_every_kind_without_hardware_builds(kind: str, tmp_path: Path) -> None:
    sink = make_tts(Settings(state_dir=tmp_path, tts=TtsSettings(kind=kind)))  # type: ignore[arg-type]
    assert sink.name == kind
    assert isinstance(make_earcons(Settings(tts=TtsSettings(kind=kind)), sink), SilentEarcons)  # type: ignore[arg-type]


def test_mqtt_without_a_broker_is_a_coded_error() -> None:
    with pytest.raises(TtsError) as info:
        make_tts(Settings(tts=TtsSettings(kind="mqtt")))
    assert info.value.code == "tts_config"


def test_speaker_kinds_get_earcons_on_the_speaker() -> None:
    assert [k for k, sink in SINKS.items() if sink.speaker] == [TtsKind.ESPEAK, TtsKind.PIPER]
    assert isinstance(make_earcons(Settings(tts=TtsSettings(kind="espeak"))), EarconPlayer)
