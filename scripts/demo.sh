#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default, offline: the phase-2 model on the
# embedded synthetic case, checked against the authors' reference outputs; panel in outputs/parity/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python check_parity.py "$@"
