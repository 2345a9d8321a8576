#!/usr/bin/env bash
# Set up the project on a fresh Debian/Ubuntu machine: the apt packages it needs (python3-venv, and
# the libraries for headless rendering and Open3D), then a virtual environment in .venv with
# requirements.txt. The first run needs the package registries (apt, PyPI); a second run only checks
# and works offline. Nothing here or in the code downloads weights or data.
#
#   bash scripts/setup.sh           the main environment
#   bash scripts/setup.sh --photo   also the photo extra (requirements-photo.txt: built-in keypoints
#                                   and masks); it adds packages and changes none already there
#   bash scripts/setup.sh --app     also the app extra (requirements-app.txt: `python app.py`, a
#                                   Gradio page, and its browser test) and Debian's chromium; it
#                                   adds packages and changes none already there
# The two options can be combined.
set -euo pipefail
cd "$(dirname "$0")/.."
photo=0
app=0
for arg in "$@"; do
  case "$arg" in
    --photo) photo=1 ;;
    --app) app=1 ;;
    *) echo "usage: bash scripts/setup.sh [--photo] [--app]" >&2; exit 2 ;;
  esac
done

apt_pkgs=(python3-venv libosmesa6 libusb-1.0-0 libgl1 libegl1)
if [ "$app" -eq 1 ]; then
  apt_pkgs+=(chromium)  # the browser test's browser (tests/test_app.py), from Debian
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[setup] apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "[setup] creating .venv"
  rm -rf .venv  # a half-made one (e.g. venv without ensurepip) would break every later run
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing requirements (first time: ~2 minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$want" > "$stamp"
fi

# pip install "$@" with everything already installed held at its version (numpy 2, opencv
# headless, protobuf, pillow ...): an extra adds packages and changes none
pinned_install() {
  local pin
  pin=$(mktemp)
  .venv/bin/python -m pip list --format=freeze --exclude-editable --disable-pip-version-check \
    > "$pin"
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c "$pin" "$@"; then
    rm -f "$pin"
    return 1
  fi
  rm -f "$pin"
}

if [ "$photo" -eq 1 ]; then
  pstamp=.venv/.photo.sha
  pwant=$( (cat "$stamp"; sha256sum requirements-photo.txt) | sha256sum | cut -d' ' -f1)
  if [ ! -f "$pstamp" ] || [ "$(cat "$pstamp")" != "$pwant" ]; then
    echo "[setup] installing the photo extra (first time: ~1 minute)"
    pinned_install -r requirements-photo.txt
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps mediapipe==0.10.21
    echo "$pwant" > "$pstamp"
  fi
  .venv/bin/python -c "from inference.detect import KeypointDetector; KeypointDetector().close()"
  echo "[setup] photo extra ok (mediapipe 0.10.21)"
fi
if [ "$app" -eq 1 ]; then
  gradio_pin=gradio==6.31.0  # --no-deps: its pillow<13 would replace pillow (requirements-app.txt)
  astamp=.venv/.app.sha
  awant=$( (cat "$stamp"; sha256sum requirements-app.txt; echo "$gradio_pin") | sha256sum \
    | cut -d' ' -f1)
  if [ ! -f "$astamp" ] || [ "$(cat "$astamp")" != "$awant" ]; then
    echo "[setup] installing the app extra (first time: ~1 minute)"
    pinned_install -r requirements-app.txt
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "$gradio_pin"
    echo "$awant" > "$astamp"
  fi
  .venv/bin/python -c "import gradio, playwright.sync_api"
  echo "[setup] app extra ok ($gradio_pin, $(/usr/lib/chromium/chromium --version))"
fi
echo "[setup] ok: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
