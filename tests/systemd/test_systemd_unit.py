"""The systemd unit (sandbox score, required settings), the example config and install.sh."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from assistant.config import parse_settings

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNIT = SYSTEMD / "assistant.service"
INSTALL = SYSTEMD / "install.sh"


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_sandbox_exposure_is_at_most_2(tmp_path: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                          capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for assistant\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert float(match.group(1)) <= 2.0


def test_unit_declares_the_service_contract() -> None:
    unit = unit_settings()
    expected = {
        "Type": "notify", "Restart": "on-failure", "User": "assistant", "SupplementaryGroups": "audio",
        "StateDirectory": "assistant", "ConfigurationDirectory": "assistant",
        "ExecStart": "/opt/assistant/venv/bin/assistant run", "ExecReload": "/bin/kill -HUP $MAINPID",
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "DevicePolicy": "closed", "DeviceAllow": "char-alsa rw", "UMask": "0077", "CapabilityBoundingSet": "",
    }
    assert {key: unit.get(key, [None])[0] for key in expected} == expected
    assert int(unit["WatchdogSec"][0]) >= 10
    assert "@system-service" in unit["SystemCallFilter"]


def test_example_config_is_valid() -> None:
    settings = parse_settings((SYSTEMD / "config.example.yaml").read_text(encoding="utf-8"), env={})
    assert settings.site == "kitchen"


# --------------------------------------------------------------------------- install.sh

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
"""


def stub_bin(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Stand-ins for the commands that change the system; they record their calls.

    useradd/usermod/systemctl would change this machine for real; getent/id answer from
    a small state file the stubs keep; install drops -o/-g (the test user does not exist)
    and runs the real install; the "python" creates a venv folder with a recording python.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    state = tmp_path / "users"
    state.touch()
    scripts = {
        "useradd": STUB + 'echo "passwd assistant" >> "{state}"\n',
        "usermod": STUB + 'echo "member audio" >> "{state}"\n',
        "systemctl": STUB,
        "getent": '#!/bin/sh\n[ "$1" = group ] && [ "$2" = audio ] && exit 0\n'
                  'grep -qx "$1 $2" "{state}"\n',
        "id": '#!/bin/sh\n[ "$1" = -u ] && {{ echo 0; exit 0; }}\n'
              'grep -qx "passwd assistant" "{state}" || exit 1\n'
              'grep -qx "member audio" "{state}" && echo "assistant audio" || echo assistant\n',
        "install": '#!/bin/bash\nargs=()\nwhile [ $# -gt 0 ]; do case "$1" in -o|-g) shift;; '
                   '*) args+=("$1");; esac; shift; done\nexec /usr/bin/install "${{args[@]}}"\n',
        "fakepython": STUB + '[ "$1" = -m ] && [ "$2" = venv ] && mkdir -p "$3/bin" && '
                      'printf \'#!/bin/sh\\necho "venv-python $*" >> "{log}"\\n\' > "$3/bin/python" && '
                      'chmod +x "$3/bin/python"\nexit 0\n',
    }
    for name, text in scripts.items():
        path = bin_dir / name
        path.write_text(text.format(log=log, state=state), encoding="utf-8")
        path.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir, log, env


def install(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["bash", str(INSTALL), "--no-system-deps", "--python", str(tmp_path / "bin" / "fakepython"),
            "--prefix", str(tmp_path / "opt"), "--config-dir", str(tmp_path / "etc"),
            "--unit-dir", str(tmp_path / "units"), *extra]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_install_dry_run_prints_the_steps_and_changes_nothing(tmp_path: Path) -> None:
    _, log, env = stub_bin(tmp_path)
    proc = install(tmp_path, env, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("+ useradd --system", "-m venv", "pip install", "config.example.yaml",
                 "assistant.service", "+ systemctl enable assistant.service", "nothing was changed"):
        assert step in out
    # The chosen paths reach the unit that would be installed.
    unit_line = next(line for line in out.splitlines() if line.startswith("= unit: "))
    assert f"ExecStart={tmp_path / 'opt'}/venv/bin/assistant run" in unit_line
    assert f"Environment=ASSISTANT_CONFIG={tmp_path / 'etc'}/config.yaml" in unit_line
    assert "ConfigurationDirectory" not in unit_line  # outside /etc it cannot be one
    assert log.read_text() == ""
    assert not any((tmp_path / d).exists() for d in ("opt", "etc", "units"))


def test_install_pins_pip_and_every_dependency(tmp_path: Path) -> None:
    _, _, env = stub_bin(tmp_path)
    proc = install(tmp_path, env, "--dry-run", "--extras", "piper,gemma")
    assert proc.returncode == 0, proc.stderr
    pip_lines = [line for line in proc.stdout.splitlines() if " -m pip install" in line]
    assert any(re.search(r"pip==\d", line) for line in pip_lines), pip_lines
    main = next(line for line in pip_lines if "[piper,gemma]" in line)
    assert "--constraint" in main
    # Every runtime dependency of the package and its extras is pinned in the script.
    from importlib import metadata

    from packaging.requirements import Requirement

    pinned = {m.group(1).lower().replace("_", "-")
              for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+$", INSTALL.read_text(), re.MULTILINE)}
    wanted = {Requirement(r).name.lower().replace("_", "-") for r in metadata.requires("assistant") or []
              if "extra" not in r or "piper" in r or "gemma" in r}
    assert wanted <= pinned, sorted(wanted - pinned)


def test_install_renders_the_unit_with_prefix_and_config_dir(tmp_path: Path) -> None:
    _, _, env = stub_bin(tmp_path)
    proc = install(tmp_path, env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    unit = (tmp_path / "units" / "assistant.service").read_text(encoding="utf-8")
    lines = unit.splitlines()
    assert f"ExecStart={tmp_path / 'opt'}/venv/bin/assistant run" in lines
    assert f"Environment=ASSISTANT_CONFIG={tmp_path / 'etc'}/config.yaml" in lines
    assert "/opt/assistant" not in unit and "/etc/assistant/config.yaml" not in unit
    assert not any(line.startswith("LoadCredential=") for line in lines)  # no password file
    # Everything else is the shipped unit, line for line.
    paths = ("ExecStart=", "Environment=ASSISTANT_CONFIG=")
    shipped = [line for line in UNIT.read_text(encoding="utf-8").splitlines()
               if not line.startswith((*paths, "ConfigurationDirectory"))]
    rendered = [line for line in lines if not line.startswith(paths)]
    assert rendered == shipped
    assert (tmp_path / "opt" / "constraints.txt").read_text().count("==") >= 20


def test_install_hands_a_password_file_to_the_unit_as_a_credential(tmp_path: Path) -> None:
    _, _, env = stub_bin(tmp_path)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    (etc / "mqtt-password").chmod(0o600)
    proc = install(tmp_path, env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    unit = (tmp_path / "units" / "assistant.service").read_text(encoding="utf-8").splitlines()
    assert f"LoadCredential=mqtt-password:{etc}/mqtt-password" in unit
    assert unit.index(f"LoadCredential=mqtt-password:{etc}/mqtt-password") == unit.index("[Service]") + 1
    assert not any("s3cret" in line or "PASSWORD" in line for line in unit)
    assert "passed to the service with LoadCredential=mqtt-password" in proc.stdout
    assert "s3cret" not in proc.stdout
    # What config.yaml then says: the credentials folder has a fixed path per unit.
    settings = parse_settings(
        "mqtt:\n  host: broker\n  username: va\n"
        f"  password: {{file: {etc}/mqtt-password}}\n", env={})
    assert settings.mqtt.password is not None and settings.mqtt.password.reveal() == "s3cret"


def test_install_is_idempotent_and_keeps_the_config(tmp_path: Path) -> None:
    _, log, env = stub_bin(tmp_path)
    first = install(tmp_path, env)
    assert first.returncode == 0, first.stderr + first.stdout
    config = tmp_path / "etc" / "config.yaml"
    assert (tmp_path / "units" / "assistant.service").is_file()
    config.write_text("site: garage\n", encoding="utf-8")  # the user's edit
    calls_first = log.read_text().splitlines()
    log.write_text("")
    second = install(tmp_path, env)
    assert second.returncode == 0, second.stderr + second.stdout
    calls_second = log.read_text().splitlines()
    assert any(c.startswith("useradd") for c in calls_first)
    assert any(c.startswith("fakepython -m venv") for c in calls_first)
    assert not any(c.startswith(("useradd", "usermod", "fakepython")) for c in calls_second)
    assert "systemctl enable assistant.service" in calls_second
    assert config.read_text() == "site: garage\n"
    assert "config.yaml exists: kept" in second.stdout


MDWE_CHILD = r"""
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    print(json.dumps({"supported": False}))
    sys.exit(0)
result = {"supported": True}
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
result["onnxruntime"] = session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0].tolist() == [0.0, 2.0]
from assistant.wake import WakeDetector
result["tflite"] = WakeDetector().process(b"\0" * 960, 0.0) is None
import cffi
try:
    cffi.FFI().callback("int(int)", lambda v: v)
    result["cffi_callback"] = True
except MemoryError:
    result["cffi_callback"] = False
print(json.dumps(result))
"""


def test_memory_deny_write_execute_decision_holds() -> None:
    """The unit leaves MemoryDenyWriteExecute off: ONNX Runtime and TFLite would cope, cffi callbacks
    (sounddevice's PortAudio callback) would not. Checked with the kernel's own W^X switch."""
    import json
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", MDWE_CHILD], capture_output=True, text=True, timeout=60,
                          cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["supported"]:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert result == {"supported": True, "onnxruntime": True, "tflite": True, "cffi_callback": False}
    assert unit_settings()["MemoryDenyWriteExecute"] == ["no"]
