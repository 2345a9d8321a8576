"""Depth swaps and interior depth errors of bench/bench_quality.py (where the Chamfer is lost)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.bench_quality import DEPTH_SOURCES, interior_depth_errors, swap_depth
from inference.predictor import Prediction

RES = 64


def disc(radius: float) -> np.ndarray:
    i, j = np.mgrid[:RES, :RES]
    return (i - RES / 2) ** 2 + (j - RES / 2) ** 2 < radius**2


def prediction(front: np.ndarray, back: np.ndarray, coarse: float) -> Prediction:
    r = RES // 8
    zeros3 = np.zeros((3, RES, RES), np.float32)
    return Prediction(
        image=np.zeros((RES, RES, 3), np.uint8),
        foreground=front > 0,
        keypoints=np.zeros((31, 3)),
        depth_front=front,
        depth_back=back,
        normal_front=zeros3,
        normal_back=zeros3,
        mask=(front > 0).astype(np.float32),
        down_depth_front=np.full((r, r), coarse, np.float32),
        down_depth_back=np.full((r, r), coarse + 0.3, np.float32),
        down_mask=np.ones((r, r), np.float32),
        down_normal_front=np.zeros((3, r, r), np.float32),
        down_normal_back=np.zeros((3, r, r), np.float32),
    )


def test_swap_depth_sources() -> None:
    body = disc(20)
    gt_f, gt_b = np.where(body, 2.0, 0), np.where(body, 2.3, 0)
    pred_body = disc(18)  # the prediction's silhouette is smaller
    pf, pb = np.where(pred_body, 2.1, 0).astype(np.float32), np.where(pred_body, 2.2, 0)
    pred = prediction(pf, pb.astype(np.float32), coarse=1.9)
    assert set(DEPTH_SOURCES) == {"pred", "gt", "gt_front", "gt_back", "coarse"}
    f, b = swap_depth("pred", pred, gt_f, gt_b, "meet")
    assert f is pred.depth_front and b is pred.depth_back
    f, b = swap_depth("gt", pred, gt_f, gt_b, "meet")
    assert f is gt_f and b is gt_b
    f, b = swap_depth("gt_front", pred, gt_f, gt_b, "meet")
    assert np.array_equal(f, np.where(pred_body, 2.0, 0)) and b is pred.depth_back
    f, b = swap_depth("gt_back", pred, gt_f, gt_b, "meet")
    assert f is pred.depth_front and np.array_equal(b, np.where(pred_body, 2.3, 0))
    f, b = swap_depth("coarse", pred, gt_f, gt_b, "meet")
    assert f.shape == b.shape == (RES, RES)
    assert np.allclose(f[pred_body], 1.9) and np.allclose(b[pred_body], 2.2)
    assert (f[~pred_body] == 0).all() and (b[~pred_body] == 0).all()
    with pytest.raises(ValueError, match="depth source"):
        swap_depth("normals", pred, gt_f, gt_b, "meet")


def test_interior_depth_errors_ignore_the_silhouette_band() -> None:
    body = disc(20)
    gt_f, gt_b = np.where(body, 2.0, 0), np.where(body, 2.3, 0)
    ring = body & ~disc(17)  # errors only within 3 pixels of the silhouette
    pf = np.where(body, 2.0 + 5.0 * ring, 0)
    pb = np.where(body, 2.3 - 0.1, 0)  # the back 0.1 D too near everywhere
    got = interior_depth_errors(pf, pb, gt_f, gt_b, cm_per_d=50.0)
    assert got["depth_front_cm"] == pytest.approx(0.0, abs=1e-6)
    assert got["depth_back_cm"] == pytest.approx(5.0)
    assert got["depth_back_signed_cm"] == pytest.approx(-5.0)
