"""The package layering: ``utils`` is the ground floor and imports nothing else of this project;
the training engine and the parity check live above it (``evaluation`` without ``render``:
``tests/test_evaluation.py``)."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import utils

REPO = Path(__file__).resolve().parents[1]
OURS = (
    "bench",
    "datasets",
    "evaluation",
    "inference",
    "meshing",
    "models",
    "render",
    "training",
    "utils",
)


def loaded_after_import(modules: list[str]) -> list[str]:
    """Modules of this project loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {OURS!r}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip())


def test_utils_imports_nothing_else_of_ours():
    names = [f"utils.{m.name}" for m in pkgutil.iter_modules(utils.__path__)]
    assert {"utils.camera", "utils.keypoints", "utils.scans"} <= set(names)
    outside = [m for m in loaded_after_import(names) if not m.startswith("utils")]
    assert outside == [], f"utils imports {outside}"


def test_training_engine_and_parity_moved_out_of_utils():
    assert not any((REPO / "utils" / f"{m}.py").exists() for m in ("training", "parity", "metrics"))
    loaded = loaded_after_import(["training.loop", "models.parity"])
    assert {"training.schedule", "training.distributed", "training.metrics"} <= set(loaded)
