"""Parity check against the authors' reference outputs (``shared/spec/parity``, README §4-8).

A case folder holds ``input_rgb_2048.png``, ``theta.npy``, ``ref_stats.json``, ``ref_samples.npz``
and ``ref_small_full.npz``. The reference was made with the recipe weights (``models.recipe``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch

# Recommended tolerances of the fixture (README §8).
ATOL, RTOL = 1e-4, 1e-4
SUM_TOL = 1e-2
MEAN_TOL = 1e-6
ABS_SUM_RTOL = 1e-5
OCCUPANCY_TOL = 1e-6
INV_Z_TOL = 1e-6


def load_input(case_dir: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs of a case: image [1, 3, 2048, 2048] in [-1, 1] built as the reference did
    (float32 ``(P / 255 - 0.5) / 0.5``, one op at a time), and theta [1, 12, 2, 3]."""
    path = os.path.join(case_dir, "input_rgb_2048.png")
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read parity input image {path}")
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1)[None]
    image = (rgb.to(torch.float32) / 255 - 0.5) / 0.5
    theta = torch.from_numpy(np.load(os.path.join(case_dir, "theta.npy")))[None]
    return image, theta


def tensor_sha256(x: torch.Tensor) -> str:
    """SHA-256 of a float32 tensor's little-endian C-order bytes (the fixture's input fingerprint)."""
    return hashlib.sha256(x.detach().contiguous().numpy().astype("<f4").tobytes()).hexdigest()


@dataclass
class KeyReport:
    key: str
    ok: bool
    max_err: float  # worst |yours - ref| over samples / full tensor
    worst_ratio: float  # worst error / tolerance over all checks (<= 1 passes)
    detail: str


def compare_outputs(outputs: dict, case_dir: str | os.PathLike) -> list[KeyReport]:
    """Compare every reference output key with the fixture's tolerances (README §8)."""
    with open(os.path.join(case_dir, "ref_stats.json")) as f:
        stats = json.load(f)["outputs"]
    samples = np.load(os.path.join(case_dir, "ref_samples.npz"))
    full = np.load(os.path.join(case_dir, "ref_small_full.npz"))
    reports = []
    for key, st in stats.items():
        value = outputs.get(key)
        if value is None:
            reports.append(KeyReport(key, False, float("inf"), float("inf"), "missing"))
            continue
        y = value.detach().contiguous().numpy()
        if list(y.shape) != st["shape"]:
            reports.append(KeyReport(key, False, float("inf"), float("inf"),
                                     f"shape {list(y.shape)} != {st['shape']}"))
            continue
        ratios, max_err, notes = [], 0.0, []
        if key == "z":
            theta_ref = full["z"]
            ratios.append(0.0 if np.array_equal(y, theta_ref) else float("inf"))
        elif key == "inv_z":
            err = float(np.abs(y - full["inv_z"]).max())
            max_err = err
            ratios.append(err / INV_Z_TOL)
        else:
            refs = []
            if f"{key}__idx" in samples:
                refs.append((y.reshape(-1)[samples[f"{key}__idx"]], samples[f"{key}__val"]))
            if key in full:
                refs.append((y.reshape(-1), full[key].reshape(-1)))
            for got, ref in refs:
                err = np.abs(got.astype(np.float64) - ref.astype(np.float64))
                max_err = max(max_err, float(err.max()))
                if key == "occupancy":
                    ratios.append(float(err.max()) / OCCUPANCY_TOL)
                    if not np.array_equal(got == 0, ref == 0):
                        ratios.append(float("inf"))
                        notes.append("zero set differs")
                else:
                    ratios.append(float((err / (ATOL + RTOL * np.abs(ref))).max()))
            y64 = y.astype(np.float64)
            if f"{key}__rowsum" in samples:
                ratios.append(float(np.abs(y64.sum(-1) - samples[f"{key}__rowsum"]).max()) / SUM_TOL)
                ratios.append(float(np.abs(y64.sum(-2) - samples[f"{key}__colsum"]).max()) / SUM_TOL)
            ratios.append(abs(y64.mean() - st["mean"]) / MEAN_TOL)
            if st["abs_sum"] > 0:
                ratios.append(abs(np.abs(y64).sum() / st["abs_sum"] - 1) / ABS_SUM_RTOL)
        worst = max(ratios)
        reports.append(KeyReport(key, worst <= 1.0, max_err, worst, "; ".join(notes)))
    return reports


def format_report(reports: list[KeyReport]) -> str:
    lines = [f"{'output':26s} {'max |err|':>10s} {'err/tol':>8s}  result"]
    for r in reports:
        lines.append(f"{r.key:26s} {r.max_err:10.2e} {r.worst_ratio:8.3f}  "
                     f"{'ok' if r.ok else 'FAIL'} {r.detail}")
    return "\n".join(lines)
