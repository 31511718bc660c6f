"""The `assistant` command with odd input: options in any order, odd files, odd file names."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from assistant.cli import _parser, _verbosity
from tests.foundation.test_cli import run_cli

SAMPLE = Path(__file__).resolve().parents[2] / "assistant" / "data" / "samples" / "two_commands.wav"
STRICT_UTF8 = {"PYTHONIOENCODING": "utf-8", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

# Every command, as argv after the global options (the part argparse must accept them after).
COMMANDS = [
    ["run"],
    ["process", "a.wav"],
    ["process", "--json", "a.wav"],
    ["say", "hello"],
    ["devices"],
    ["config", "check"],
    ["config", "check", "other.yaml"],
    ["models", "pull", "e2b"],
    ["models", "check", "/models"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("options", "config", "verbose"),
    [
        (["--config", "F.yaml"], "F.yaml", 0),
        (["-c", "F.yaml"], "F.yaml", 0),
        (["--config=F.yaml"], "F.yaml", 0),
        (["-v"], None, 1),
        (["-vv"], None, 2),
        (["--verbose", "-c", "F.yaml"], "F.yaml", 1),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else str(v),
)
def test_global_options_before_or_after_every_command(
    command: list[str], options: list[str], config: str | None, verbose: int
) -> None:
    parser = _parser()
    before = parser.parse_args([*options, *command])
    after = parser.parse_args([*command, *options])
    for args in (before, after):
        assert args.config == config
        assert _verbosity(args) == verbose
    assert vars(before).keys() - {k for k in vars(before) if k.startswith("verbose_")} == (
        vars(after).keys() - {k for k in vars(after) if k.startswith("verbose_")}
    )


def test_options_on_both_sides() -> None:
    args = _parser().parse_args(["-v", "-c", "first.yaml", "models", "-v", "pull", "e2b", "-v"])
    assert _verbosity(args) == 3  # counted on every level
    args = _parser().parse_args(["-c", "first.yaml", "process", "a.wav", "-c", "last.yaml"])
    assert args.config == "last.yaml"  # the last one given wins
    args = _parser().parse_args(["-c", "only.yaml", "config", "check"])
    assert args.config == "only.yaml"  # a subcommand that does not repeat it keeps it


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--config", "{missing}"],
        ["run", "-v", "-c", "{missing}"],
        ["say", "hi", "--config", "{missing}"],
        ["devices", "--config", "{missing}"],
        ["process", "--config", "{missing}", "--json", "{sample}"],
        ["models", "check", "{tmp}", "--config", "{missing}"],
        ["models", "pull", "e2b", "--config", "{missing}"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_config_after_the_command_is_used(argv: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    args = [a.format(missing=missing, sample=SAMPLE, tmp=tmp_path) for a in argv]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert f"{missing}: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def _frontend_lines(result_stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in result_stdout.splitlines()]


def test_process_with_the_config_after_the_command(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nvad:\n  silence_end_ms: 600\n")
    after = run_cli("process", "--config", str(cfg), "--json", "--frontend-only", str(SAMPLE))
    before = run_cli("--config", str(cfg), "process", "--json", "--frontend-only", str(SAMPLE))
    assert after.returncode == 0, after.stderr
    assert before.returncode == 0, before.stderr
    assert after.stdout == before.stdout
    assert len(_frontend_lines(after.stdout)) == 2
    # The settings really are read: a bad value there fails the run whichever side it is on.
    cfg.write_text("vad:\n  silence_end_ms: -1\n")
    bad = run_cli("process", "--json", "--frontend-only", "-c", str(cfg), str(SAMPLE))
    assert bad.returncode == 2
    assert "vad.silence_end_ms" in bad.stderr


def test_process_through_the_brain_with_the_config_after_the_command(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\ntts:\n  kind: none\n")
    result = run_cli("process", "--config", str(cfg), "--json", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    lines = _frontend_lines(result.stdout)
    assert [line["transcript"] for line in lines] == ["turn on the kitchen light", "what time is it"]


def test_verbose_after_the_command_turns_on_logs(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n")
    quiet = run_cli("process", "--frontend-only", "-c", str(cfg), str(SAMPLE))
    loud = run_cli("process", "--frontend-only", "-c", str(cfg), "-vv", str(SAMPLE))
    assert quiet.returncode == loud.returncode == 0
    assert " DEBUG " not in quiet.stderr
    assert " DEBUG " in loud.stderr


# ----------------------------------------------------------------------------- odd inputs


def test_config_check_on_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    commands = (["config", "check", str(fifo)], ["process", "--config", str(fifo)], ["-c", str(fifo), "run"])
    for args in commands:
        result = run_cli(*args)  # run_cli's timeout fails the test on a hang
        assert result.returncode == 2, result.stderr
        assert "is a FIFO (named pipe), not a regular file" in result.stderr
        assert "Traceback" not in result.stderr


def test_config_check_on_dev_zero_and_a_directory(tmp_path: Path) -> None:
    for path, what in (("/dev/zero", "character device"), (str(tmp_path), "directory")):
        result = run_cli("config", "check", path)
        assert result.returncode == 2
        assert f"{path}: cannot read: is a {what}, not a regular file" in result.stderr


def test_process_refuses_fifos_and_devices_as_recordings(tmp_path: Path) -> None:
    fifo = tmp_path / "rec.wav"
    os.mkfifo(fifo)
    result = run_cli("process", "--frontend-only", str(fifo), "/dev/zero", str(tmp_path), str(SAMPLE))
    assert result.returncode == 1  # some files failed
    assert f"{fifo}: is a FIFO (named pipe), not a regular WAV file" in result.stderr
    assert "/dev/zero: is a character device, not a regular WAV file" in result.stderr
    assert f"{tmp_path}: is a directory, not a WAV file" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.count(str(SAMPLE)) == 2  # the good file is still processed


def _odd_named_copies(tmp_path: Path) -> tuple[str, str]:
    """A good WAV and a broken one whose names hold a byte that is not UTF-8."""
    good = os.fsencode(tmp_path) + b"/k\xfcche.wav"  # Latin-1 name: invalid UTF-8
    bad = os.fsencode(tmp_path) + b"/\xff.wav"
    shutil.copyfile(SAMPLE, good)
    with open(bad, "wb") as fh:
        fh.write(b"junk")
    return os.fsdecode(good), os.fsdecode(bad)  # as they arrive in sys.argv


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_non_utf8_file_names_are_printed_escaped_under_a_strict_locale(
    tmp_path: Path, as_json: bool
) -> None:
    good, bad = _odd_named_copies(tmp_path)
    flags = ["--json"] if as_json else []
    result = run_cli("process", "--frontend-only", *flags, good, bad, env=STRICT_UTF8)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1  # the broken one failed, nothing crashed
    shown = f"{tmp_path}/k\\xfcche.wav"
    if as_json:
        lines = _frontend_lines(result.stdout)
        assert [line["file"] for line in lines] == [shown, shown]
    else:
        assert [line.split()[0] for line in result.stdout.splitlines()] == [shown, shown]
    assert f"{tmp_path}/\\xff.wav: too short to be a WAV file" in result.stderr


def test_non_utf8_names_through_the_brain(tmp_path: Path) -> None:
    good, _bad = _odd_named_copies(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\ntts:\n  kind: none\n")
    result = run_cli("process", "-c", str(cfg), "--json", good, env=STRICT_UTF8)
    assert result.returncode == 0, result.stderr
    assert {line["file"] for line in _frontend_lines(result.stdout)} == {f"{tmp_path}/k\\xfcche.wav"}


def test_config_check_with_a_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/\xff.yaml"
    with open(raw, "wb") as fh:
        fh.write(b"site: kitchen\n")
    result = run_cli("config", "check", os.fsdecode(raw), env=STRICT_UTF8)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# settings from {tmp_path}/\\xff.yaml: OK")
    with open(raw, "wb") as fh:
        fh.write(b"site: 'a+b'\n")
    result = run_cli("config", "check", os.fsdecode(raw), env=STRICT_UTF8)
    assert result.returncode == 2
    assert f"{tmp_path}/\\xff.yaml:1: site: must be" in result.stderr
