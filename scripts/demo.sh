#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default, offline: the bundled demo
# weights on the bundled synthetic photos -> depth/normal maps, point clouds, meshes, evaluation
# against the ground-truth scans, and a panel, all in outputs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-osmesa}
exec .venv/bin/python demo.py "$@"
