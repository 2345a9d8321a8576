#!/usr/bin/env bash
# Run the test suite (sets the project up first if needed). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
