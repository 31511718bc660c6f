"""`assistant process --json` end to end, as a user runs it, for each brain.

The Gemma brain runs on a tiny generated model set with the real export's I/O contract,
scripted to call HassTurnOn(kitchen light) (the real weights cannot be downloaded here).
No broker is configured, so the demo house answers in dry-run mode.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "assistant" / "data" / "samples" / "two_commands.wav"


def process(config: Path, *files: Path) -> tuple[int, list[dict[str, Any]], str]:
    env = {**os.environ, "ASSISTANT_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "process", "--json", "--tts", "none", *map(str, files)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, lines, result.stderr


@pytest.fixture(scope="module")
def scripted_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(ROOT / "tests" / "gemma"))
    from gemma_helpers import CALL, CONTEXT, REPLY, RESPONSE, load_generator

    script = [(CONTEXT, False), (CALL, True), (RESPONSE, False), (REPLY, True)]
    path: Path = load_generator().make_tiny_gemma(
        tmp_path_factory.mktemp("gemma") / "scripted", variants=("fp32",), script=script
    )
    return path


def test_phrase_brain_json_lines_for_the_bundled_sample(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    rc, lines, stderr = process(config, SAMPLE)
    assert rc == 0, stderr
    assert [line["tool_calls"] for line in lines] == [
        [{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}],
        [{"name": "get_time", "arguments": {}}],
    ]
    first = lines[0]
    expected = {"file", "start_s", "end_s", "transcript", "tool_calls", "results", "reply", "timings_ms"}
    assert set(first) >= expected
    assert first["transcript"] == "turn on the kitchen light"
    assert first["results"][0]["status"] == "ok"
    assert "end_of_speech_to_action" in first["timings_ms"]
    assert "demo house" in stderr


def test_gemma_brain_on_the_tiny_scripted_model(tmp_path: Path, scripted_gemma: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"brain:\n  kind: gemma\n  gemma:\n    model_dir: {scripted_gemma}\n    variant: fp32\n"
    )
    rc, lines, stderr = process(config, SAMPLE)
    assert rc == 0, stderr
    assert len(lines) == 2
    for line in lines:
        assert line["tool_calls"] == [{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}]
        assert line["results"][0]["status"] == "ok"
        assert line["transcript"] is None  # Gemma hears audio; there is no text form
        assert line["counts"]["prefill_tokens"] > 0  # a count, not a timing


def test_hybrid_keeps_grammar_hits_on_the_phrase_brain(tmp_path: Path, scripted_gemma: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"brain:\n  kind: hybrid\n  gemma:\n    model_dir: {scripted_gemma}\n    variant: fp32\n"
    )
    rc, lines, stderr = process(config, SAMPLE)
    assert rc == 0, stderr
    assert [line["tool_calls"][0]["name"] for line in lines] == ["HassTurnOn", "get_time"]
    assert "prefill_tokens" not in lines[1]["counts"]  # Gemma never ran
    assert "decode" in lines[1]["timings_ms"]  # the phrase brain did


def test_gemma_without_model_files_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"brain:\n  kind: gemma\n  gemma:\n    model_dir: {tmp_path / 'none'}\n")
    rc, lines, stderr = process(config, SAMPLE)
    assert rc == 1
    assert lines == []
    assert "Traceback" not in stderr
    assert "models pull" in stderr or "model" in stderr


def test_bad_recordings_are_reported_and_the_rest_still_runs(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(SAMPLE.read_bytes()[:30])
    rc, lines, stderr = process(config, empty, SAMPLE, truncated)
    assert rc == 1
    assert len(lines) == 2
    assert "empty.wav" in stderr and "truncated.wav" in stderr
    assert "Traceback" not in stderr


def test_process_publishes_to_a_real_broker(tmp_path: Path) -> None:
    import threading
    import time

    import paho.mqtt.client as mqtt

    from tests.support.mosquitto import Broker, mosquitto_available

    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    with Broker(tmp_path) as broker:
        seen: list[tuple[str, bytes]] = []
        lock = threading.Lock()

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            with lock:
                seen.append((msg.topic, bytes(msg.payload)))

        ha = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="process-ha")
        ha.on_message = on_message
        ha.connect(broker.host, broker.port)
        ha.subscribe("test/#", qos=1)
        ha.loop_start()
        light = {"name": None, "uniq_id": "pk1", "cmd_t": "test/kitchen/light/set",
                 "dev": {"ids": ["pk"], "name": "Kitchen Light", "sa": "Kitchen"}}
        ha.publish("homeassistant/light/pk/config", json.dumps(light), qos=1, retain=True).wait_for_publish(5)
        config = tmp_path / "c.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\nmqtt:\n  host: {broker.host}\n  port: {broker.port}\n"
        )
        try:
            rc, lines, stderr = process(config, SAMPLE)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not seen:
                time.sleep(0.05)
        finally:
            ha.loop_stop()
            ha.disconnect()
    assert rc == 0, stderr
    assert lines[0]["tool_calls"] == [{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}]
    assert lines[0]["results"][0]["data"]["published"][0]["topic"] == "test/kitchen/light/set"
    assert seen == [("test/kitchen/light/set", b"ON")]
