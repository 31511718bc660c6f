"""Settings: search order, typed values, every error at once with line numbers, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import config
from assistant.config import ConfigError, Secret, load_settings, parse_settings, settings_to_dict

FIVE_MISTAKES = """\
site: kitchen
audoi:
  device: 2
vad:
  aggressiveness: 7
mqtt:
  host: broker.local
  port: not-a-port
brain:
  kind: gpt
tts:
  kind: espeak
  sped: 200
"""


def test_defaults_when_no_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    monkeypatch.setattr(config, "SEARCH_PATHS", (tmp_path / "absent.yaml",))
    settings = load_settings(None)
    assert settings.brain.kind == "phrase"
    assert settings.mqtt.host is None
    assert settings.vad.max_utterance_s == 30.0


def test_search_order_explicit_then_env_then_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    etc = tmp_path / "etc.yaml"
    etc.write_text("site: from-etc\n")
    env = tmp_path / "env.yaml"
    env.write_text("site: from-env\n")
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("site: from-flag\n")
    monkeypatch.setattr(config, "SEARCH_PATHS", (etc,))
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    assert load_settings(None).site == "from-etc"
    monkeypatch.setenv("ASSISTANT_CONFIG", str(env))
    assert load_settings(None).site == "from-env"
    assert load_settings(explicit).site == "from-flag"


def test_every_mistake_reported_at_once_with_line_numbers() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(FIVE_MISTAKES, source="bad.yaml")
    problems = info.value.problems
    assert len(problems) == 5, problems
    assert problems[0] == "bad.yaml:2: audoi: unknown key (did you mean 'audio'?)"
    assert "bad.yaml:5: vad.aggressiveness" in problems[1]
    assert "bad.yaml:8: mqtt.port: must be a whole number" in problems[2]
    assert "bad.yaml:10: brain.kind: must be one of phrase, gemma, hybrid" in problems[3]
    assert problems[4] == "bad.yaml:13: tts.sped: unknown key (did you mean 'speed'?)"


def test_invalid_yaml_reports_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings("site: [unclosed\n", source="x.yaml")
    assert info.value.problems[0].startswith("x.yaml:")
    assert "not valid YAML" in info.value.problems[0]


def test_wrong_shapes_are_errors_not_crashes() -> None:
    for text in ("- a list\n", "mqtt: 5\n", "wake:\n  words: okay_nabu\n", "audio:\n  volume: loud\n"):
        with pytest.raises(ConfigError):
            parse_settings(text)


def test_nested_lists_of_settings() -> None:
    settings = parse_settings("wake:\n  words:\n    - model: alexa\n      threshold: 0.9\n    - {}\n")
    assert [w.model for w in settings.wake.words] == ["alexa", "okay_nabu"]
    assert settings.wake.words[0].threshold == 0.9


def test_device_index_or_name() -> None:
    assert parse_settings("audio:\n  device: 3\n").audio.device == 3
    assert parse_settings("audio:\n  device: USB\n").audio.device == "USB"


def test_secret_from_env_variable_override() -> None:
    settings = parse_settings("mqtt:\n  host: h\n  username: u\n", env={"ASSISTANT_MQTT_PASSWORD": "pw1"})
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.reveal() == "pw1"


def test_secret_from_named_env_and_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    by_env = parse_settings("mqtt:\n  username: u\n  password: {env: MY_PW}\n", env={"MY_PW": "from-env"})
    by_file = parse_settings(f"mqtt:\n  username: u\n  password: {{file: {secret_file}}}\n", env={})
    assert by_env.mqtt.password == Secret("from-env")
    assert by_file.mqtt.password == Secret("from-file")


def test_missing_secret_sources_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MY_PW is not set"):
        parse_settings("mqtt:\n  username: u\n  password: {env: MY_PW}\n", env={})
    with pytest.raises(ConfigError, match="cannot read secret file"):
        parse_settings(f"mqtt:\n  username: u\n  password: {{file: {tmp_path}/none}}\n", env={})


def test_secrets_never_shown() -> None:
    settings = parse_settings("mqtt:\n  username: u\n  password: hunter2\n", env={})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings_to_dict(settings))
    assert settings_to_dict(settings)["mqtt"]["password"] == "********"


def test_settings_are_frozen() -> None:
    settings = parse_settings("")
    with pytest.raises(AttributeError):
        settings.site = "x"  # type: ignore[misc]


def test_home_aliases_and_the_assistants_area() -> None:
    settings = parse_settings(
        "home:\n  area: Kitchen\n  aliases:\n"
        "    big light: light.ceiling\n    reading lamp: living room lamp\n"
    )
    assert settings.home.area == "Kitchen"
    assert dict(settings.home.aliases) == {"big light": "light.ceiling", "reading lamp": "living room lamp"}
    assert config.HomeSettings().aliases == {} and config.HomeSettings().area is None
    with pytest.raises(ConfigError, match=r"home\.aliases"):
        parse_settings("home:\n  aliases:\n    big light: ''\n")
    with pytest.raises(ConfigError, match=r"home\.aliases"):
        parse_settings("home:\n  aliases: [big light]\n")
    with pytest.raises(ConfigError, match=r"home\.area"):
        parse_settings("home:\n  area: ' '\n")


def test_a_phrase_pause_limit_below_the_endpointers_silence_is_refused() -> None:
    """brain.phrase.max_pause_ms shorter than vad.silence_end_ms would refuse commands with a
    pause the endpointer lets through: a clear error naming both."""
    with pytest.raises(ConfigError, match=r"max_pause_ms \(500\) is shorter than vad\.silence_end_ms"):
        parse_settings("brain:\n  phrase:\n    max_pause_ms: 500\nvad:\n  silence_end_ms: 800\n")
    assert parse_settings("brain:\n  phrase:\n    max_pause_ms: 900\nvad:\n  silence_end_ms: 800\n")


def test_a_number_margin_below_the_twin_margin_is_refused() -> None:
    """Numbers are refused below twin_margin and asked back up to number_margin: the other order
    has no meaning and would silently never ask."""
    with pytest.raises(ConfigError, match=r"number_margin \(1\.0\) is below phrase\.twin_margin \(2\.0\)"):
        parse_settings("brain:\n  phrase:\n    number_margin: 1.0\n")
    settings = parse_settings("brain:\n  phrase:\n    number_margin: 2.0\n")
    assert settings.brain.phrase.number_margin == 2.0  # equal: never asks back


def test_the_verifier_settings_are_checked() -> None:
    """A probability gate outside 0..1 is a typo, not a setting; the folder is a path."""
    with pytest.raises(ConfigError, match=r"verifier_min_probability: must be in \[0, 1\], got 1\.5"):
        parse_settings("brain:\n  phrase:\n    verifier_min_probability: 1.5\n")
    settings = parse_settings("brain:\n  phrase:\n    verifier_dir: /var/lib/assistant/whisper\n")
    assert settings.brain.phrase.verifier_dir == Path("/var/lib/assistant/whisper")
    assert parse_settings("").brain.phrase.verifier_dir is None
