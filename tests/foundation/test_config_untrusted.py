"""Settings from untrusted files: bounded reads, bounded YAML, and every value in a sensible range.

Every bad input must end in a ConfigError naming the file (and line where there is
one), quickly and in little memory: never a traceback, never a hang.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import tracemalloc
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant import config
from assistant.config import ConfigError, Settings, load_settings, parse_settings


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread: the test fails (instead of hanging) when it does not return."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the test thread
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not return within {seconds} s (blocked or reading forever)"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def problems_of(text: str, source: str = "c.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        within(20, lambda: parse_settings(text, source=source, env={}))
    return info.value.problems


def load_problems(path: Path | str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        within(10, lambda: load_settings(path))
    return info.value.problems


# ----------------------------------------------------------------------------- bounded reads


def test_config_that_is_dev_zero_is_refused_not_read_forever() -> None:
    problems = load_problems("/dev/zero")
    assert problems == ["/dev/zero: cannot read: is a character device, not a regular file"]


def test_config_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)  # nobody ever writes: opening it for reading would block forever
    (problem,) = load_problems(fifo)
    assert problem == f"{fifo}: cannot read: is a FIFO (named pipe), not a regular file"


def test_config_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (problem,) = load_problems(tmp_path)
    assert problem == f"{tmp_path}: cannot read: is a directory, not a regular file"


def test_config_over_one_mebibyte_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(2 << 30)  # a sparse 2 GiB file: reading it would take 2 GiB
    tracemalloc.start()
    try:
        (problem,) = load_problems(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem.startswith(f"{big}: cannot read: is too large (2147483648 bytes; the limit is 1048576)")
    assert peak < 1_000_000


def test_config_just_under_the_limit_is_read(tmp_path: Path) -> None:
    ok = tmp_path / "ok.yaml"
    ok.write_text("site: kitchen\n" + "#" * (config.MAX_CONFIG_BYTES - 20) + "\n")
    assert load_settings(ok).site == "kitchen"
    ok.write_text("site: kitchen\n" + "#" * config.MAX_CONFIG_BYTES + "\n")
    assert "too large" in load_problems(ok)[0]


def test_config_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"# settings\nsite: k\xfcche\n")
    assert load_problems(bad) == [f"{bad}:2: not UTF-8 text"]


def _secret_yaml(ref: Path | str) -> str:
    return f"mqtt:\n  username: u\n  password: {{file: {ref}}}\n"


def test_secret_file_that_is_dev_zero_is_refused() -> None:
    (problem,) = problems_of(_secret_yaml("/dev/zero"))
    assert problem == (
        "c.yaml:3: mqtt.password: cannot read secret file /dev/zero: "
        "is a character device, not a regular file"
    )


def test_secret_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    (problem,) = problems_of(_secret_yaml(fifo))
    assert problem.endswith(f"cannot read secret file {fifo}: is a FIFO (named pipe), not a regular file")


def test_secret_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (problem,) = problems_of(_secret_yaml(tmp_path))
    assert problem.endswith("is a directory, not a regular file")


def test_secret_file_over_64_kib_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "pw"
    big.write_bytes(b"x" * (config.MAX_SECRET_BYTES + 1))
    (problem,) = problems_of(_secret_yaml(big))
    assert "is too large (65537 bytes; the limit is 65536)" in problem
    big.write_bytes(b"x" * config.MAX_SECRET_BYTES)
    settings = parse_settings(_secret_yaml(big), env={})
    assert settings.mqtt.password is not None
    assert len(settings.mqtt.password.reveal()) == config.MAX_SECRET_BYTES


def test_secret_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "pw"
    bad.write_bytes(b"\xff\xfe")
    assert problems_of(_secret_yaml(bad))[0].endswith("not UTF-8 text")


# ----------------------------------------------------------------------------- bounded YAML


def billion_laughs(levels: int = 9) -> str:
    lines = ["home:", "  entities:", '    - &l0 {a: "lol"}']
    for level in range(1, levels + 1):
        refs = ", ".join(f"b{i}: *l{level - 1}" for i in range(10))
        lines.append(f"    - &l{level} {{{refs}}}")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_without_expanding_it() -> None:
    tracemalloc.start()
    try:
        problems = problems_of(billion_laughs(), source="lol.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == ["lol.yaml:7: aliases expand to more than 10000 values; refused"]
    assert peak < 20_000_000  # expanded it would be 10^9 mappings


def test_many_small_aliases_are_refused() -> None:
    items = "".join("    - *x\n" for _ in range(config.MAX_YAML_ALIASES + 1))
    text = "home:\n  sensitive_extra: [lock.front]\n  entities:\n    - &x {component: light}\n" + items
    problems = problems_of(text)
    assert problems == [f"c.yaml:{5 + config.MAX_YAML_ALIASES}: more than 100 aliases (*name); refused"]


def test_a_few_aliases_still_work() -> None:
    text = (
        "home:\n  entities:\n"
        "    - &light {component: light, name: Kitchen, command_topic: home/kitchen/set}\n"
        "    - *light\n"
        "wake:\n  words:\n    - &w {model: alexa, threshold: 0.7}\n    - *w\n"
    )
    settings = parse_settings(text, env={})
    assert settings.home.entities[0] == settings.home.entities[1]
    assert settings.wake.words[1].threshold == 0.7


def test_a_recursive_alias_is_refused() -> None:
    assert problems_of("home:\n  entities: &x\n    - *x\n") == [
        "c.yaml:3: an alias refers to the list or mapping it is inside; refused"
    ]


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("site: !!python/object:os.system x\n", 1, "!!python/object:os.system"),
        (
            "home:\n  entities:\n    - !!python/object/apply:os.system [ls]\n",
            3,
            "!!python/object/apply:os.system",
        ),
        ("site: !!python/name:os.system ''\n", 1, "!!python/name:os.system"),
        ("site: kitchen\ntts:\n  voice: !foo en-us\n", 3, "!foo"),
        ("home:\n  entities:\n    - !entity {component: light}\n", 3, "!entity"),
    ],
)
def test_custom_yaml_tags_are_a_line_numbered_error(text: str, line: int, shown: str) -> None:
    assert problems_of(text) == [f"c.yaml:{line}: unsupported tag {shown}; only plain YAML values are read"]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("mqtt:\n  port: !!int abc\n", 2, "mqtt.port: cannot read this value: invalid literal"),
        ("mqtt:\n  port: !!float x\n", 2, "mqtt.port: cannot read this value"),
        ("mqtt:\n  port: " + "9" * 5000 + "\n", 2, "mqtt.port: cannot read this value: a number with too"),
        ("site: !!timestamp nope\n", 1, "site: cannot read this value"),
        ("home:\n  entities:\n    - {? [a]: b}\n", 3, "home.entities.[0]: cannot read this value"),
        ("home:\n  entities:\n    - 5\n", 3, "home.entities.[0]: must be a mapping"),
    ],
)
def test_values_yaml_cannot_build_are_line_numbered_errors(text: str, line: int, fragment: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(f"c.yaml:{line}: {fragment}"), problem


def test_five_thousand_deep_flow_nesting_is_a_line_numbered_error() -> None:
    text = "site: kitchen\nhome:\n  entities: " + "[" * 5000 + "]" * 5000 + "\n"
    assert problems_of(text) == ["c.yaml:3: nested more than 64 levels deep; refused"]


def test_five_thousand_deep_block_nesting_is_a_line_numbered_error() -> None:
    text = "home:\n  entities:\n" + "".join("  " * (i + 2) + "-\n" for i in range(5000))
    assert problems_of(text) == ["c.yaml:65: nested more than 64 levels deep; refused"]


def test_deep_mappings_are_refused_too() -> None:
    text = "home:\n  entities:\n    - " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"
    assert problems_of(text) == ["c.yaml:3: nested more than 64 levels deep; refused"]


def test_billion_laughs_through_config_check_exits_2_quickly(tmp_path: Path) -> None:
    from tests.foundation.test_cli import run_cli

    lol = tmp_path / "lol.yaml"
    lol.write_text(billion_laughs())
    deep = tmp_path / "deep.yaml"
    deep.write_text("home:\n  entities: " + "[" * 5000 + "]" * 5000 + "\n")
    tag = tmp_path / "tag.yaml"
    tag.write_text("site: !!python/object/apply:os.system ['echo pwned']\n")
    for path, fragment in ((lol, "aliases expand"), (deep, "nested more than"), (tag, "unsupported tag")):
        result = run_cli("config", "check", str(path))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert fragment in result.stderr
        assert "pwned" not in result.stdout


# ----------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt:\n  freshness_s: .inf\n", "c.yaml:2: mqtt.freshness_s: must be a finite number, got inf"),
        ("mqtt:\n  freshness_s: .nan\n", "c.yaml:2: mqtt.freshness_s: must be a finite number, got nan"),
        ("mqtt:\n  freshness_s: 0\n", "c.yaml:2: mqtt.freshness_s: must be in (0, 3600], got 0.0"),
        ("router:\n  confirmation_window_s: .inf\n", "router.confirmation_window_s: must be a finite number"),
        ("router:\n  confirmation_window_s: -1\n", "router.confirmation_window_s: must be in (0, 3600]"),
        ("router:\n  call_timeout_s: 0\n", "router.call_timeout_s: must be in (0, 3600], got 0.0"),
        ("mqtt:\n  keepalive_s: -1\n", "c.yaml:2: mqtt.keepalive_s: must be in 1..65535, got -1"),
        ("mqtt:\n  queue_size: 0\n", "mqtt.queue_size: must be in 1..100000, got 0"),
        ("mqtt:\n  max_payload_bytes: 0\n", "mqtt.max_payload_bytes: must be in 1..16777216, got 0"),
        ("mqtt:\n  port: 70000\n", "mqtt.port: must be in 1..65535, got 70000"),
        ("audio:\n  retry_max_s: 0\n", "c.yaml:2: audio.retry_max_s: must be in (0, 3600], got 0.0"),
        ("audio:\n  command_rate: 0\n", "c.yaml:2: audio.command_rate: must be in 8000..192000, got 0"),
        ("audio:\n  command_channels: 0\n", "audio.command_channels: must be in 1..64, got 0"),
        ("audio:\n  channels: 1000\n", "audio.channels: must be in 1..64, got 1000"),
        ("audio:\n  queue_blocks: 0\n", "audio.queue_blocks: must be in 1..100000, got 0"),
        ("audio:\n  volume: 1.5\n", "audio.volume: must be in [0, 1], got 1.5"),
        ("audio:\n  device: -1\n", "audio.device: a device index must be 0 or more, got -1"),
        ("vad:\n  speech_start_ms: -30\n", "vad.speech_start_ms: must be in 0..5000, got -30"),
        ("vad:\n  silence_end_ms: 0\n", "vad.silence_end_ms: must be in 10..10000, got 0"),
        ("vad:\n  pre_roll_ms: -1\n", "vad.pre_roll_ms: must be in 0..5000, got -1"),
        ("vad:\n  min_utterance_ms: -1\n", "vad.min_utterance_ms: must be in 0..30000, got -1"),
        ("vad:\n  no_speech_timeout_s: 0\n", "vad.no_speech_timeout_s: must be in (0, 600], got 0.0"),
        ("vad:\n  min_speech_dbfs: 3\n", "vad.min_speech_dbfs: must be in [-200, 0], got 3.0"),
        ("vad:\n  silero_threshold: 1.5\n", "vad.silero_threshold: must be in (0, 1], got 1.5"),
        ("vad:\n  silero_threshold: 0\n", "vad.silero_threshold: must be in (0, 1], got 0.0"),
        ("vad:\n  max_utterance_s: 40\n", "vad.max_utterance_s: must be in (0, 30], got 40.0"),
        (
            "vad:\n  min_utterance_ms: 5000\n  max_utterance_s: 2\n",
            "c.yaml:2: vad.min_utterance_ms: must not exceed max_utterance_s (2 s), got 5000",
        ),
        ("wake:\n  words:\n    - threshold: 2\n", "wake.words.[0].threshold: must be in (0, 1], got 2.0"),
        ("wake:\n  words:\n    - refractory_s: -1\n", "wake.words.[0].refractory_s: must be in [0, 600]"),
        ("wake:\n  words: []\n", "c.yaml:2: wake.words: wake is enabled but no wake words are listed"),
        ("wake:\n  follow_up_s: -2\n", "wake.follow_up_s: must be in [0, 600], got -2.0"),
        ("wake:\n  stop_words: ['']\n", "wake.stop_words: must not contain empty words"),
        ("brain:\n  gemma:\n    top_p: 1.5\n", "brain.gemma.top_p: must be in (0, 1], got 1.5"),
        ("brain:\n  gemma:\n    top_k: 0\n", "brain.gemma.top_k: must be in 1..1000000, got 0"),
        ("brain:\n  gemma:\n    temperature: -1\n", "brain.gemma.temperature: must be in [0, 5], got -1.0"),
        ("brain:\n  gemma:\n    max_new_tokens: 0\n", "brain.gemma.max_new_tokens: must be in 1..8192"),
        ("brain:\n  gemma:\n    max_rounds: 0\n", "brain.gemma.max_rounds: must be in 1..20, got 0"),
        ("brain:\n  gemma:\n    intra_op_threads: -1\n", "brain.gemma.intra_op_threads: must be in 0..256"),
        ("brain:\n  phrase:\n    rejection_threshold: 0\n", "phrase.rejection_threshold: must be in (0"),
        ("brain:\n  phrase:\n    twin_margin: -1\n", "brain.phrase.twin_margin: must be in [0, 10000]"),
        ("brain:\n  phrase:\n    confidence_threshold: .inf\n", "confidence_threshold: must be a finite"),
        ("tts:\n  speed: 0\n", "tts.speed: must be in 80..500, got 0"),
    ],
)
def test_out_of_range_settings_fail_config_check(text: str, expected: str) -> None:
    problems = problems_of(text)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems[0]


def test_all_range_problems_are_reported_at_once() -> None:
    text = (
        "mqtt:\n  freshness_s: .inf\n  keepalive_s: -1\n"
        "router:\n  confirmation_window_s: .inf\n"
        "audio:\n  retry_max_s: 0\n  command_rate: 0\n"
        "vad:\n  silero_threshold: 2\n  speech_start_ms: -5\n"
        "wake:\n  words:\n    - threshold: 7\n"
    )
    problems = problems_of(text)
    keys = [p.split(": ")[1] for p in problems]
    assert keys == [
        "mqtt.freshness_s",
        "mqtt.keepalive_s",
        "router.confirmation_window_s",
        "audio.retry_max_s",
        "audio.command_rate",
        "vad.silero_threshold",
        "vad.speech_start_ms",
        "wake.words.[0].threshold",
    ]


def test_edges_of_the_ranges_are_accepted() -> None:
    settings = parse_settings(
        "vad:\n  silero_threshold: 1\n  speech_start_ms: 0\n  pre_roll_ms: 0\n  min_utterance_ms: 0\n"
        "wake:\n  enabled: false\n  words: []\n  follow_up_s: 0\n"
        "audio:\n  retry_max_s: 0.01\n  volume: 0\n  device: 0\n"
        "brain:\n  gemma:\n    top_p: 1\n    temperature: 0\n    intra_op_threads: 0\n"
        "  phrase:\n    confidence_threshold: null\n"
        "mqtt:\n  keepalive_s: 65535\n",
        env={},
    )
    assert settings.wake.words == ()
    assert settings.vad.silero_threshold == 1.0
    assert settings.brain.phrase.confidence_threshold is None


def _numeric_fields() -> list[tuple[type[Any], str]]:
    """Every int or float field (optional or not) of every settings dataclass."""
    seen: list[tuple[type[Any], str]] = []
    todo: list[type[Any]] = [Settings]
    done: set[type[Any]] = set()
    while todo:
        cls = todo.pop()
        if cls in done:
            continue
        done.add(cls)
        for name, tp in typing.get_type_hints(cls).items():
            args = typing.get_args(tp) or (tp,)
            for arg in args:
                inner = typing.get_args(arg)
                for sub in inner or (arg,):
                    if dataclasses.is_dataclass(sub) and isinstance(sub, type):
                        todo.append(sub)
            if any(a in (int, float) for a in args) and not any(a is str for a in args):
                seen.append((cls, name))
    return seen


def test_every_numeric_setting_has_a_range() -> None:
    fields = _numeric_fields()
    assert len(fields) > 30
    enumerated = {("AudioSettings", "block_ms"), ("VadSettings", "frame_ms")}  # one of a few values
    missing = [
        f"{cls.__name__}.{name}"
        for cls, name in fields
        if name not in config._RANGES.get(cls, {}) and (cls.__name__, name) not in enumerated
    ]
    assert missing == []


def test_defaults_are_inside_every_range() -> None:
    for cls, ranges in config._RANGES.items():
        defaults = cls()
        for name, allowed in ranges.items():
            value = getattr(defaults, name)
            assert value is None or value in allowed, (cls.__name__, name, value)


# ----------------------------------------------------------------------------- topics and site


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("mqtt:\n  base_topic: 'a/+/b'\n", "mqtt.base_topic", "(found +)"),
        ("mqtt:\n  base_topic: 'a/#'\n", "mqtt.base_topic", "(found #)"),
        ('mqtt:\n  base_topic: "a\\nb"\n', "mqtt.base_topic", "(found \\n)"),
        ('mqtt:\n  base_topic: "a\\0b"\n', "mqtt.base_topic", "(found \\x00)"),
        ("mqtt:\n  base_topic: ''\n", "mqtt.base_topic", "must not be empty"),
        ("mqtt:\n  base_topic: '/assistant'\n", "mqtt.base_topic", "must not start or end with '/'"),
        ("mqtt:\n  discovery_prefix: 'home+assistant'\n", "mqtt.discovery_prefix", "(found +)"),
        ('mqtt:\n  discovery_prefix: "ha\\r"\n', "mqtt.discovery_prefix", "(found \\r)"),
        ("tts:\n  topic: 'speak/#'\n", "tts.topic", "(found #)"),
        ('mqtt:\n  client_id: "a\\0"\n', "mqtt.client_id", "printable"),
        ("site: 'kitchen+'\n", "site", "must be a non-empty name"),
        ("site: 'kit#chen'\n", "site", "must be a non-empty name"),
        ('site: "kitchen\\n"\n', "site", "control characters"),
        ('site: "kit\\0chen"\n', "site", "control characters"),
        ('site: "kit\\tchen"\n', "site", "control characters"),
        ("site: ''\n", "site", "non-empty"),
        ("site: " + "k" * 65 + "\n", "site", "at most 64 characters"),
        (
            "home:\n  entities:\n    - {component: light, command_topic: 'home/+/set'}\n",
            "home.entities",
            "[0].command_topic must not contain MQTT wildcards",
        ),
        (
            'home:\n  entities:\n    - {component: light, state_topic: "home/x\\0"}\n',
            "home.entities",
            "[0].state_topic must be non-empty and without control characters",
        ),
    ],
)
def test_topics_and_site_without_wildcards_or_control_characters(text: str, key: str, fragment: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith("c.yaml:"), problem
    assert f": {key}: " in problem, problem
    assert fragment in problem, problem


def test_subscription_wildcards_in_an_entity_state_topic_are_allowed() -> None:
    settings = parse_settings(
        "home:\n  entities:\n    - {component: sensor, state_topic: 'home/+/temperature'}\n", env={}
    )
    assert settings.home.entities[0]["state_topic"] == "home/+/temperature"


def test_the_example_config_still_passes() -> None:
    example = Path(__file__).resolve().parents[2] / "systemd" / "config.example.yaml"
    assert parse_settings(example.read_text(encoding="utf-8"), env={}).site
