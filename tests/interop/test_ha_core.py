"""The assistant against a real Home Assistant Core, over a real mosquitto on loopback.

Per release (2025.4.4 on Python 3.13, 2024.3.3 on Python 3.11: the venvs of
``scripts/ha_core_env``), one HA start shared by the module's tests: a minimal
configuration (``http`` on a free loopback port; no ``default_config``), onboarding and the
MQTT config flow through the REST API, a light announced by retained discovery (the test
plays the device: it answers the light's commands on its state topic), then the daemon
(``python -m assistant -v run``, live audio on stdin in real time). What is checked goes
through HA's REST API: the assistant's device and entities (per-component discovery, so
also on HA before 2024.11), HA's service calls reaching the daemon, a spoken command
changing the light as HA sees it, availability on SIGTERM and on kill -9 (last will), and
HA's own log: no warnings or errors about MQTT or the assistant; last, the retained
device-based config an older version left is migrated (what HA logs then is printed). HA runs offline
(``UV_OFFLINE``/``PIP_NO_INDEX``): every requirement must come from the venv.

Skipped, with the reason, when the venvs or mosquitto are not there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.live_daemon import Watcher
from tests.e2e.test_e2e_daemon import piper_speech, silence
from tests.e2e.test_e2e_signals import RealTimeStdin, _catches, _settings
from tests.support.mosquitto import Broker, free_port, mosquitto_available
from tests.support.sniffer import wait_until

CACHE = Path(os.environ.get("ASSISTANT_CI_CACHE", Path.home() / ".cache" / "assistant-ci"))
RELEASES = ("2025.4.4", "2024.3.3")
DEVICE_NAME = "Assistant kitchen"
ENTITIES = {
    "sensor.assistant_kitchen_assist_state",
    "sensor.assistant_kitchen_last_transcript",
    "sensor.assistant_kitchen_last_intent",
    "sensor.assistant_kitchen_last_response_time",
    "switch.assistant_kitchen_mute",
    "button.assistant_kitchen_listen",
    "text.assistant_kitchen_say",
    "number.assistant_kitchen_volume",
}
LIGHT = "light.kitchen_light"
LIGHT_SET = "test/kitchen/light/set"
LIGHT_STATE = "test/kitchen/light/state"
AVAILABILITY = "assistant/kitchen/availability"
# HA's log lines that count as a problem: warnings and errors from MQTT or naming the assistant.
_PROBLEM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) .*$", re.MULTILINE)

pytestmark = pytest.mark.skipif(not mosquitto_available(), reason="mosquitto is not installed")


def _venv(release: str) -> Path:
    return CACHE / f"ha-{release}"


def _wait(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    """Poll every ``step`` s (HA's REST API: not a tight loop)."""
    return wait_until(predicate, timeout, step=step)


# --------------------------------------------------------------------------- Home Assistant


@dataclass
class HomeAssistant:
    """``hass -c <dir>`` from a cached venv, driven through its REST API."""

    release: str
    config_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    started_s: float = 0.0
    log_mark: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.config_dir / "home-assistant.log"

    def start(self, timeout: float = 240.0) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n  name: Interop\n  time_zone: UTC\n  unit_system: metric\n"
            "  latitude: 52.37\n  longitude: 4.89\n  elevation: 0\n"
            # HA hands its satellites' announcements to ffmpeg as a URL of its own: the loopback one
            f"  internal_url: http://127.0.0.1:{self.port}\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "logger:\n  default: warning\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        # No network for HA itself: every requirement comes from the venv (scripts/ha_core_env).
        env.update(UV_OFFLINE="1", PIP_NO_INDEX="1", UV_NO_CACHE="1")
        # HA runs "ffmpeg" (its tts converts a satellite's answer): the venv's own (scripts/ha_core_env)
        env["PATH"] = f"{_venv(self.release) / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        console = (self.config_dir / "console.log").open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(_venv(self.release) / "bin" / "hass"), "-c", str(self.config_dir)],
            stdout=console,
            stderr=subprocess.STDOUT,
            env=env,
        )
        console.close()

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"HA {self.release} exited: {self.console()[-3000:]}")
            try:
                self.request("GET", "/api/onboarding", auth=False)
            except (OSError, urllib.error.URLError):
                return False
            return True

        if not _wait(up, timeout, 0.5):
            raise RuntimeError(f"HA {self.release} did not come up in {timeout} s: {self.console()[-3000:]}")
        self.started_s = time.monotonic() - started

    def console(self) -> str:
        return (self.config_dir / "console.log").read_text(errors="replace")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return self.console()

    def problems(self) -> list[str]:
        """HA's warnings and errors about MQTT or the assistant."""
        return [
            line
            for line in _PROBLEM.findall(self.log()) or []
            if "mqtt" in line.lower() or "assistant" in line.lower()
        ]

    def all_problems(self) -> list[str]:
        return [m.group(0) for m in _PROBLEM.finditer(self.log())]

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False
    ) -> Any:
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)  # noqa: S310 (loopback http)
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw else None

    def onboard(self) -> None:
        client_id = self.url + "/"
        user = self.request(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": client_id,
                "name": "Interop",
                "username": "interop",
                "password": "interop-pass-1",
                "language": "en",
            },
            auth=False,
        )
        tokens = self.request(
            "POST",
            "/auth/token",
            {"grant_type": "authorization_code", "code": user["auth_code"], "client_id": client_id},
            auth=False,
            form=True,
        )
        self.token = tokens["access_token"]  # valid 30 minutes: longer than the module runs

    def add_mqtt(self, broker: Broker) -> None:
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        for _ in range(4):
            if flow["type"] == "create_entry":
                return
            assert flow["type"] == "form", flow
            answer: dict[str, Any] = {}
            if flow["step_id"] == "broker":
                answer = {"broker": broker.host, "port": broker.port}
            flow = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", answer)
        raise AssertionError(f"the MQTT config flow did not finish: {flow}")

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def state(self, entity_id: str) -> str | None:
        try:
            return str(self.request("GET", f"/api/states/{entity_id}")["state"])
        except urllib.error.HTTPError:
            return None

    def wait_state(
        self, entity_id: str, expected: str | Callable[[str | None], bool], timeout: float
    ) -> bool:
        ok: Callable[[str | None], bool] = expected if callable(expected) else (lambda s: s == expected)
        return bool(_wait(lambda: ok(self.state(entity_id)), timeout))

    def call(self, domain: str, service: str, data: dict[str, Any]) -> None:
        self.request("POST", f"/api/services/{domain}/{service}", data)

    def template(self, text: str) -> str:
        req = urllib.request.Request(  # noqa: S310
            self.url + "/api/template",
            data=json.dumps({"template": text}).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310
            return str(response.read().decode())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- the daemon


class Daemon:
    """``python -m assistant -v run`` on the broker, microphone = real-time audio on stdin."""

    def __init__(self, tmp_path: Path, broker: Broker, name: str) -> None:
        self.settings = tmp_path / "config.yaml"
        _settings(self.settings, broker, tmp_path)
        self.replies = tmp_path / "replies"
        self.log_path = tmp_path / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "-v", "--config", str(self.settings), "run"],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.feeder = RealTimeStdin(self.proc).start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float, count: int = 1) -> bool:
        return bool(_wait(lambda: self.log().count(needle) >= count, timeout, 0.05))

    def ready(self, timeout: float = 90.0) -> None:
        assert _catches(self.proc.pid, (signal.SIGTERM,), 20), self.log()[-3000:]
        assert self.wait_log("Assistant ready", timeout), self.log()[-3000:]

    def end(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.feeder.stop()
        self._log.close()
        return self.proc.returncode


# --------------------------------------------------------------------------- fixtures


@dataclass
class Setup:
    ha: HomeAssistant
    broker: Broker
    watcher: Watcher
    daemon: Daemon
    tmp: Path


@pytest.fixture(scope="module", params=RELEASES)
def ha_setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    release: str = request.param
    if not (_venv(release) / "bin" / "hass").exists():
        pytest.skip(f"no Home Assistant {release} venv in {_venv(release)}: run scripts/ha_core_env")
    tmp = tmp_path_factory.mktemp(f"ha-{release}")
    broker = Broker(tmp).start()
    watcher = Watcher(
        broker, topics=("test/#", "assistant/#", "homeassistant/#"), client_id=f"interop-{release}"
    )
    # The light, announced before HA or the daemon runs (retained), with a state topic.
    light = {
        "name": None,
        "unique_id": "interop_kitchen_light",
        "command_topic": LIGHT_SET,
        "state_topic": LIGHT_STATE,
        "device": {"identifiers": ["interop_kitchen"], "name": "Kitchen Light", "suggested_area": "Kitchen"},
    }
    watcher.publish("homeassistant/light/interop_kitchen/config", json.dumps(light), retain=True)
    watcher.publish(LIGHT_STATE, "OFF", retain=True)
    previous = watcher.client.on_message
    assert previous is not None

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        previous(client, userdata, msg)
        if msg.topic == LIGHT_SET and msg.payload in (b"ON", b"OFF"):  # play the light: echo its state
            client.publish(LIGHT_STATE, bytes(msg.payload), qos=1, retain=True)

    watcher.client.on_message = on_message
    ha = HomeAssistant(release, tmp / "ha-config", free_port())
    daemon: Daemon | None = None
    try:
        ha.start()
        ha.onboard()
        ha.add_mqtt(broker)
        assert ha.wait_state(LIGHT, "off", 60), ha.log()[-3000:]
        started = time.monotonic()
        daemon = Daemon(tmp, broker, "daemon")
        daemon.ready()
        ha.timings["daemon_ready_s"] = time.monotonic() - started
        yield Setup(ha, broker, watcher, daemon, tmp)
    finally:
        if daemon is not None:
            daemon.end()
        ha.stop()
        print(f"\nHA {release}: started in {ha.started_s:.1f} s; {ha.timings}")
        for line in ha.all_problems():
            print(f"HA {release} log: {line}")
        watcher.close()
        broker.stop()
        if os.environ.get("INTEROP_KEEP"):
            shutil.copytree(tmp, Path(os.environ["INTEROP_KEEP"]) / f"ha-{release}", dirs_exist_ok=True)


# --------------------------------------------------------------------------- tests


def test_the_assistant_appears_as_one_device_with_all_its_entities(ha_setup: Setup) -> None:
    ha = ha_setup.ha
    found = _wait(lambda: set(ha.states()) >= ENTITIES, 60)
    states = ha.states()
    assert found, f"missing: {ENTITIES - set(states)}; log: {ha.problems()}"
    ours = {e for e in states if "assistant_kitchen" in e}
    assert ours == ENTITIES, f"duplicates or strays: {ours - ENTITIES}"
    available = _wait(lambda: all(ha.state(e) not in (None, "unavailable") for e in ENTITIES), 15)
    assert available, {e: ha.state(e) for e in ENTITIES}
    assert _wait(lambda: ha.state("sensor.assistant_kitchen_assist_state") == "idle", 10)
    attributes = ha.states()["sensor.assistant_kitchen_assist_state"]["attributes"]
    if ha.release != "2024.3.3":  # 2024.3 keeps an enum sensor's options out of its state attributes
        assert attributes["options"][0] == "idle", attributes
    devices = {ha.template(f"{{{{ device_attr(device_id('{e}'), 'name') }}}}") for e in ENTITIES}
    assert devices == {DEVICE_NAME}
    assert (
        ha.template("{{ device_attr(device_id('switch.assistant_kitchen_mute'), 'manufacturer') }}")
        == "assistant"
    )
    assert ha.problems() == []


def test_home_assistants_service_calls_reach_the_daemon(ha_setup: Setup) -> None:
    ha, watcher, daemon = ha_setup.ha, ha_setup.watcher, ha_setup.daemon
    mark = watcher.mark()
    ha.call("switch", "turn_on", {"entity_id": "switch.assistant_kitchen_mute"})
    assert watcher.wait(
        lambda m: m.topic == "assistant/kitchen/mute/set" and m.payload == b"ON", since=mark, timeout=10
    )
    assert daemon.wait_log("Wake word muted", 10), daemon.log()[-2000:]
    assert ha.wait_state("switch.assistant_kitchen_mute", "on", 10)  # the daemon's echo, as HA sees it
    ha.call("switch", "turn_off", {"entity_id": "switch.assistant_kitchen_mute"})
    assert daemon.wait_log("Wake word unmuted", 10), daemon.log()[-2000:]
    assert ha.wait_state("switch.assistant_kitchen_mute", "off", 10)

    ha.call("number", "set_value", {"entity_id": "number.assistant_kitchen_volume", "value": 35})
    assert watcher.wait(
        lambda m: m.topic == "assistant/kitchen/volume" and m.payload == b"35", since=mark, timeout=10
    ), "no volume echo from the daemon"
    assert ha.wait_state("number.assistant_kitchen_volume", lambda s: s is not None and float(s) == 35, 10)
    ha.call("number", "set_value", {"entity_id": "number.assistant_kitchen_volume", "value": 100})
    assert ha.wait_state("number.assistant_kitchen_volume", lambda s: s is not None and float(s) == 100, 10)

    replies = len(list(daemon.replies.glob("*"))) if daemon.replies.exists() else 0
    ha.call("text", "set_value", {"entity_id": "text.assistant_kitchen_say", "value": "Dinner is ready"})
    assert watcher.wait(
        lambda m: m.topic == "assistant/kitchen/say/set" and m.payload == b"Dinner is ready",
        since=mark,
        timeout=10,
    )
    assert _wait(lambda: daemon.replies.exists() and len(list(daemon.replies.glob("*"))) > replies, 20), (
        daemon.log()[-2000:]
    )
    assert ha.wait_state("sensor.assistant_kitchen_assist_state", "idle", 20)
    assert ha.problems() == []


def test_a_spoken_command_after_homeassistants_listen_button_turns_the_light_on(ha_setup: Setup) -> None:
    ha, daemon, watcher = ha_setup.ha, ha_setup.daemon, ha_setup.watcher
    assert ha.state(LIGHT) == "off"
    command = np.concatenate([piper_speech("Turn on the kitchen light."), silence(1.0)])
    mark = watcher.mark()
    ha.call("button", "press", {"entity_id": "button.assistant_kitchen_listen"})
    assert watcher.wait(lambda m: m.topic == "assistant/kitchen/listen/press", since=mark, timeout=10)
    assert ha.wait_state("sensor.assistant_kitchen_assist_state", "listening", 10), daemon.log()[-3000:]
    time.sleep(1.5)  # the wake earcon plays
    daemon.feeder.say(command)
    assert watcher.wait(lambda m: m.topic == LIGHT_SET and m.payload == b"ON", since=mark, timeout=30), (
        daemon.log()[-3000:]
    )
    assert ha.wait_state(LIGHT, "on", 10), ha.log()[-2000:]
    assert ha.wait_state(
        "sensor.assistant_kitchen_last_transcript", lambda s: bool(s and "kitchen" in s.lower()), 20
    )
    assert ha.wait_state("sensor.assistant_kitchen_assist_state", "idle", 20)
    # the response-time sensor shows the run's end of speech -> action, in ms (not a default 0)
    assert ha.wait_state("sensor.assistant_kitchen_last_response_time", _positive_number, 10), (
        ha.states().get("sensor.assistant_kitchen_last_response_time")
    )
    assert ha.problems() == []


def _positive_number(state: str | None) -> bool:
    try:
        return state is not None and float(state) > 0
    except ValueError:
        return False


def test_availability_follows_the_daemon_on_sigterm_and_on_kill(ha_setup: Setup) -> None:
    ha, setup = ha_setup.ha, ha_setup
    mute = "switch.assistant_kitchen_mute"
    assert ha.state(mute) not in (None, "unavailable")
    assert setup.daemon.end(signal.SIGTERM) == 0, setup.daemon.log()[-3000:]
    assert ha.wait_state(mute, "unavailable", 15)
    assert all(ha.state(e) == "unavailable" for e in ENTITIES)

    setup.daemon = Daemon(setup.tmp, setup.broker, "daemon-2")
    setup.daemon.ready()
    assert ha.wait_state(mute, lambda s: s not in (None, "unavailable"), 30)
    setup.daemon.end(signal.SIGKILL)  # no goodbye: the broker publishes the last will
    assert ha.wait_state(mute, "unavailable", 15)
    states = ha.states()
    assert {e for e in states if "assistant_kitchen" in e} == ENTITIES  # still one set, not removed
    assert ha.problems() == []


def test_an_older_versions_device_based_config_is_migrated(ha_setup: Setup) -> None:
    """The retained device-based config of an older version: HA's conflict, then the daemon migrates it."""
    ha, setup = ha_setup.ha, ha_setup
    legacy_topic = "homeassistant/device/assistant_kitchen/config"
    if setup.daemon.proc.poll() is None:
        setup.daemon.end()
    before = len(ha.log())
    legacy = {
        "device": {"identifiers": ["assistant_kitchen"], "name": DEVICE_NAME},
        "origin": {"name": "assistant"},
        "availability": [{"topic": AVAILABILITY}],
        "components": {
            "mute": {
                "platform": "switch",
                "unique_id": "assistant_kitchen_mute",
                "name": "Mute",
                "state_topic": "assistant/kitchen/mute",
                "command_topic": "assistant/kitchen/mute/set",
            },
        },
    }
    setup.watcher.publish(legacy_topic, json.dumps(legacy), retain=True)
    time.sleep(2.0)
    setup.daemon = Daemon(setup.tmp, setup.broker, "daemon-3")
    setup.daemon.ready()
    assert setup.daemon.wait_log("migrating the device-based discovery config", 15), setup.daemon.log()[
        -3000:
    ]
    mute = "switch.assistant_kitchen_mute"
    assert ha.wait_state(mute, lambda s: s not in (None, "unavailable"), 30)
    time.sleep(2.0)
    assert {e for e in ha.states() if "assistant_kitchen" in e} == ENTITIES  # no duplicates
    late = Watcher(setup.broker, topics=(legacy_topic,), client_id="interop-late")
    try:
        time.sleep(0.5)
        assert late.since(0) == []  # the legacy config is no longer retained
    finally:
        late.close()
    logged = [m.group(0) for m in _PROBLEM.finditer(ha.log()[before:])]
    print(f"\nHA {ha.release} while migrating an older version's device-based config: {logged}")
    if ha.release == "2024.3.3":
        assert all("device" in line and "not supported" in line for line in logged), logged
