"""Parity with the authors' model (``shared/spec/parity/README.md``): recipe weights, the exact
input tensor and θ, one full 2048² phase-2 forward per case, every output key compared with the
recommended tolerances (§8).

case_syn is in the repository and always runs; the photo cases 000 and 005 are read from
``../shared/spec/parity`` and skipped when it is absent. The model runs the fast inference path:
eval mode, ``channels_last``, tiled refinement, 2 threads, no grad.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CASE_SYN

from models.parity import (
    CaseReference,
    build_recipe_model,
    compare_key,
    load_input,
    run_case,
    sha256_float32,
    theta_from_json,
)

CASES = ["syn", "000", "005"]
OUTPUT_KEYS = list(json.loads((CASE_SYN / "ref_stats.json").read_text())["outputs"])


def case_dir(case: str, request: pytest.FixtureRequest) -> Path:
    if case == "syn":
        return CASE_SYN
    return request.getfixturevalue("shared_parity_dir") / f"case_{case}"


def case_json(case: str, directory: Path) -> tuple[Path, int, int]:
    """OpenPose JSON of the case and the size of the image it refers to."""
    if case == "syn":
        return directory / "syn_keypoints.json", 2048, 2048
    return directory / f"sith_{case}_keypoints.json", 1024, 1024


# ------------------------------------------------------------------------------------------------
# inputs (no forward pass)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_input_tensor_matches_reference(case, request):
    d = case_dir(case, request)
    ref = json.loads((d / "ref_stats.json").read_text())["input"]
    x = load_input(d / "input_rgb_2048.png")
    assert list(x.shape) == ref["shape"] == [1, 3, 2048, 2048]
    assert x.dtype == torch.float32 and x.is_contiguous()
    assert sha256_float32(x) == ref["sha256_float32_le_C_order"]
    x64 = x.double()
    assert abs(x64.sum().item() - ref["sum"]) <= 1e-6 * abs(ref["sum"])
    assert abs(x64.abs().sum().item() - ref["abs_sum"]) <= 1e-6 * ref["abs_sum"]
    assert x.reshape(-1)[: len(ref["first_values_flat"])].tolist() == ref["first_values_flat"]


@pytest.mark.parametrize("case", CASES)
def test_theta_from_keypoints_matches_reference(case, request):
    d = case_dir(case, request)
    theta_ref = np.load(d / "theta.npy")
    assert theta_ref.dtype == np.float32 and theta_ref.shape == (12, 2, 3)
    stats = json.loads((d / "ref_stats.json").read_text())
    assert sha256_float32(theta_ref[None]) == stats["theta_sha256_float32"]
    path, height, width = case_json(case, d)
    theta = theta_from_json(path, height, width)
    assert theta.dtype == np.float32
    err = float(np.abs(theta.astype(np.float64) - theta_ref).max())
    assert err <= 1e-6, f"θ from {path.name}: max error {err:.3e}"


# ------------------------------------------------------------------------------------------------
# full forward (one per case, shared by the key tests)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def recipe_model() -> torch.nn.Module:
    torch.set_num_threads(2)
    return build_recipe_model(channels_last=True)


class CaseRun:
    def __init__(self, case: str, directory: Path, outputs: dict[str, np.ndarray]) -> None:
        self.case, self.dir, self.outputs = case, directory, outputs
        self.ref = CaseReference(directory)


@pytest.fixture(scope="module", params=CASES)
def case_run(request, recipe_model) -> CaseRun:
    d = case_dir(request.param, request)
    torch.set_num_threads(2)
    with torch.no_grad():
        outputs = run_case(recipe_model, d)
    return CaseRun(request.param, d, outputs)


@pytest.mark.slow
def test_output_keys(case_run):
    """Every reference key is returned (extra keys such as the mask logits are allowed)."""
    missing = [k for k in case_run.ref.keys if k not in case_run.outputs]
    assert not missing, f"outputs missing: {missing}"
    assert case_run.ref.keys == OUTPUT_KEYS


@pytest.mark.slow
@pytest.mark.parametrize("key", OUTPUT_KEYS)
def test_output_parity(case_run, key):
    report = compare_key(key, case_run.outputs[key], case_run.ref)
    print(report)
    assert report.ok, f"case {case_run.case}:\n{report}"


@pytest.mark.slow
def test_coarse_mask_binarisation(case_run):
    """(coarse mask > 0.5) equals the reference's (the fixture keeps every pixel far from 0.5)."""
    mine = case_run.outputs["pred_down_depth_mask"] > 0.5
    ref = case_run.ref.small["pred_down_depth_mask"] > 0.5
    assert mine.shape == ref.shape
    n_diff = int((mine != ref).sum())
    assert n_diff == 0, f"{n_diff} coarse pixels binarised differently"
    thr = case_run.ref.stats["coarse_mask_threshold"]
    assert int(mine.sum()) == thr["n_pixels_mask_gt_half"]
    assert mine.size == thr["n_pixels_total"]
