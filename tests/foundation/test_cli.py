"""The `assistant` command as a user runs it: clear messages, exit codes, no tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.foundation.test_config import FIVE_MISTAKES


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ASSISTANT_CONFIG": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def test_config_check_prints_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("site: kitchen\nmqtt:\n  host: h\n  username: u\n  password: hunter2\n")
    result = run_cli("config", "check", str(cfg))
    assert result.returncode == 0, result.stderr
    assert '"site": "kitchen"' in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
    assert "********" in result.stdout


def test_config_with_five_mistakes_lists_all_and_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(FIVE_MISTAKES)
    result = run_cli("--config", str(cfg), "config", "check")
    assert result.returncode == 2
    assert "5 problem(s)" in result.stderr
    assert "Traceback" not in result.stderr
    for key in ("audoi", "vad.aggressiveness", "mqtt.port", "brain.kind", "tts.sped"):
        assert key in result.stderr


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), "process")
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_for_every_command() -> None:
    for args in (["--help"], ["run", "--help"], ["process", "--help"], ["models", "pull", "--help"]):
        result = run_cli(*args)
        assert result.returncode == 0
        assert "usage: assistant" in result.stdout


def test_say_writes_the_reply_with_the_file_sink_and_prints_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\ntts:\n  kind: file\n  output_dir: {tmp_path / 'out'}\n")
    result = run_cli("--config", str(cfg), "say", "hello there")
    assert result.returncode == 0, result.stderr
    written = Path(result.stdout.strip())
    assert written.parent == tmp_path / "out" and written.stat().st_size > 1000


def test_say_on_mqtt_without_a_reachable_broker_is_a_coded_error(tmp_path: Path) -> None:
    from tests.support.mosquitto import free_port

    cfg = tmp_path / "c.yaml"
    port = free_port()
    cfg.write_text(f"state_dir: {tmp_path}\nmqtt:\n  host: 127.0.0.1\n  port: {port}\ntts:\n  kind: mqtt\n")
    result = run_cli("--config", str(cfg), "say", "hello")
    assert result.returncode != 0
    assert "[mqtt_offline]" in result.stderr and "Traceback" not in result.stderr


def test_model_choices_are_the_ones_the_model_code_knows() -> None:
    from assistant import cli
    from assistant.brains.gemma.files import VARIANT_SUFFIX
    from assistant.brains.gemma.pull import REPOS

    assert tuple(sorted(VARIANT_SUFFIX)) == cli.MODEL_VARIANTS
    assert tuple(sorted(REPOS)) == cli.MODEL_SIZES
    from assistant.brains.phrase.verifier import WHISPER_REPOS

    assert tuple(sorted(WHISPER_REPOS)) == cli.VERIFIER_MODELS


def test_an_unknown_model_variant_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    from assistant import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", "pull", "e2b", "--variant", "q3"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'q3'" in capsys.readouterr().err
