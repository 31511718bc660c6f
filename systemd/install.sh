#!/usr/bin/env bash
# Install the assistant as a system service on Raspberry Pi OS / Debian.
#
#   sudo systemd/install.sh            install or upgrade, enable and start the service
#   systemd/install.sh --dry-run       print what would be done, change nothing
#
# Idempotent: a second run upgrades the package, keeps /etc/assistant/config.yaml as the
# user edited it, and leaves an existing user and venv in place.
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
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

VENV="$PREFIX/venv"

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
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
run "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC[$EXTRAS]"

# 4. Configuration: the example only when there is none yet (never overwrite edits).
run install -d -m 0750 -o root -g "$SERVICE_USER" "$CONFIG_DIR"
if [ -e "$CONFIG_DIR/config.yaml" ]; then
  note "$CONFIG_DIR/config.yaml exists: kept"
else
  run install -m 0640 -o root -g "$SERVICE_USER" "$SRC/systemd/config.example.yaml" "$CONFIG_DIR/config.yaml"
fi

# 5. The unit, enabled (and started or restarted).
run install -d -m 0755 "$UNIT_DIR"
run install -m 0644 "$SRC/systemd/assistant.service" "$UNIT_DIR/assistant.service"
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
