"""The learning-rate schedule against the facts sheet's table, and the validation metrics."""

from __future__ import annotations

import math

import pytest
import torch

from models.losses import coarse_sample, get_normal
from training.metrics import angle_error_deg, prediction_metrics
from training.schedule import cosine_warm_restarts

# (fractional epoch, lr) from facts sheet §5.2, computed with the authors' scheduler (base 1e-4).
AUTHORS_TABLE = [
    (0, 0.0),
    (0.005, 5.0e-5),
    (0.01, 1.0e-4),
    (0.5, 9.76e-5),
    (1, 9.06e-5),
    (2.5, 5.02e-5),
    (4.99, 1e-9),
    (5.0, 0.0),
    (5.01, 5.0e-5),
    (7.5, 2.51e-5),
    (10.01, 2.5e-5),
    (15.01, 1.25e-5),
    (20.01, 6.25e-6),
    (25.01, 3.13e-6),
    (50.01, 9.8e-8),
]


@pytest.mark.parametrize(("t", "lr"), AUTHORS_TABLE)
def test_schedule_matches_the_authors_table(t, lr):
    # the table is printed with 3 significant digits
    assert cosine_warm_restarts(t, 1e-4) == pytest.approx(lr, rel=6e-3, abs=1e-10)


def test_schedule_shape():
    base = 1e-4
    assert cosine_warm_restarts(0.0, base) == 0.0
    assert cosine_warm_restarts(0.01, base) == pytest.approx(base)
    # monotone decay within a cycle after the warm-up, halved peak after each restart
    ts = [0.01 + k * 0.49 for k in range(10)]
    lrs = [cosine_warm_restarts(t, base) for t in ts]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    for cycle in range(4):
        assert cosine_warm_restarts(5 * cycle + 0.01, base) == pytest.approx(base * 0.5**cycle)
    with pytest.raises(ValueError):
        cosine_warm_restarts(-0.1, base)


def _sphere_depth(res: int) -> torch.Tensor:
    """[1, 1, res, res] depth of a hemisphere in D units, 0 outside."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    r2 = x**2 + y**2
    depth = 2.0 - 0.5 * torch.sqrt((0.6**2 - r2).clamp_min(0))
    return torch.where(r2 < 0.36, depth, torch.zeros_like(depth))[None, None]


def test_angle_error_of_known_rotation():
    n = torch.zeros(1, 3, 4, 4)
    n[:, 2] = 1.0
    m = torch.zeros(1, 3, 4, 4)
    m[:, 0] = math.sin(math.radians(30))
    m[:, 2] = math.cos(math.radians(30))
    err = angle_error_deg((n + 1) / 2, (m + 1) / 2, torch.ones(1, 1, 4, 4))
    assert float(err) == pytest.approx(30.0, abs=1e-3)


@pytest.mark.parametrize("phase", [1, 2])
def test_metrics_of_a_perfect_and_a_wrong_prediction(phase):
    res = 64
    front = _sphere_depth(res)
    back = torch.where(front > 0, 4.0 - front, front)
    batch = {"depth_front": front, "depth_back": back}
    gt_f, gt_b = (front, back) if phase == 2 else (coarse_sample(front, 8), coarse_sample(back, 8))
    prefix = "pred_" if phase == 2 else "pred_down_"
    perfect = {
        f"{prefix}depth_front": gt_f,
        f"{prefix}depth_back": gt_b,
        f"{prefix}normal_front": get_normal(gt_f),
        f"{prefix}normal_back": get_normal(gt_b),
        f"{prefix}depth_mask": (gt_f > 0).float(),
    }
    m = prediction_metrics(perfect, batch, phase)
    assert m["depth_err_d"] == 0 and m["mask_iou"] == 1
    assert m["normal_err_deg"] < 0.1
    wrong = dict(perfect)
    wrong[f"{prefix}depth_front"] = gt_f + 0.01
    wrong[f"{prefix}depth_back"] = gt_b - 0.01
    wrong[f"{prefix}depth_mask"] = torch.zeros_like(gt_f)
    flat = torch.zeros_like(gt_f).expand(-1, 3, -1, -1).clone()
    flat[:, 2] = 1.0
    wrong[f"{prefix}normal_front"] = flat
    m = prediction_metrics(wrong, batch, phase)
    assert m["depth_err_d"] == pytest.approx(0.01, rel=1e-4)
    assert m["depth_err_mm"] == pytest.approx(0.01 * 512 / 2195.975 * 1700 / 0.7, rel=1e-3)
    assert m["mask_iou"] == 0
    assert m["normal_err_deg"] > 1
