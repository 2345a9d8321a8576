"""Validation metrics of a 2K2K prediction: depth error on the mask, normal angle error, mask IoU.

Phase 1 predicts the coarse (res/8) maps, phase 2 the full-resolution ones; each is compared with
the ground truth at its own resolution (the coarse target is the authors' point-sampled depth).
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.losses import coarse_sample, get_normal, part_normal_targets
from models.parts import PART_NETS, PartGeometry
from utils.camera import DEPTH_F, DEPTH_UNIT


def _decode_normals(encoded: Tensor) -> Tensor:
    """[B, 3, H, W] encoded ``(n + 1) / 2`` -> unit vectors."""
    n = encoded * 2 - 1
    return n / n.norm(dim=1, keepdim=True).clamp_min(1e-8)


def angle_error_deg(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean angle in degrees between encoded normal maps [B, 3, H, W] over mask [B, 1, H, W]."""
    cos = (_decode_normals(pred) * _decode_normals(target)).sum(dim=1, keepdim=True)
    angle = torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))
    return (angle * mask).sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def part_normal_errors(
    outputs: dict[str, Tensor | None], batch: dict[str, Tensor], geometry: PartGeometry
) -> tuple[float, float]:
    """Mean angle (degrees) of the part nets' front and back crops against their GT crops
    (:func:`models.losses.part_normal_targets`), over the crops' body pixels of all parts."""
    targets = part_normal_targets(
        batch["depth_front"], batch["depth_back"], batch["theta"], geometry
    )
    errors = []
    for s, side in enumerate(("front", "back")):
        total, pixels = 0.0, 0.0
        for name, _, _ in PART_NETS:
            target = targets[name][:, 3 * s : 3 * s + 3]
            mask = (target.sum(1, keepdim=True) > 0).to(target.dtype)
            pred = outputs[f"pred_{name}_normal_{side}"]
            total += float(angle_error_deg(pred, target, mask)) * float(mask.sum())
            pixels += float(mask.sum())
        errors.append(total / max(pixels, 1.0))
    return errors[0], errors[1]


@torch.no_grad()
def prediction_metrics(
    outputs: dict[str, Tensor | None],
    batch: dict[str, Tensor],
    phase: int,
    geometry: PartGeometry | None = None,
) -> dict[str, float]:
    """Metrics of one batch, averaged over its foreground pixels.

    Returns:
        ``depth_err_d`` (mean |depth error| on the GT mask, front and back, D units),
        ``depth_err_mm`` (the same as a range error in mm for a person 1.7 m / 0.7 mesh units
        tall), ``normal_err_deg`` (mean angle between predicted and GT normals from
        ``get_normal``, front and back, on the mask; coarse normals in phase 1, merged in phase
        2), the same per side (``normal_err_front_deg``, ``normal_err_back_deg``) and
        ``mask_iou`` (predicted mask > 0.5); with ``geometry`` also the part crops' errors
        ``part_normal_err_front_deg`` / ``part_normal_err_back_deg``
        (:func:`part_normal_errors`). Front and back apart, because one side can fail alone
        (a dead output channel).
    """
    gt_f, gt_b = batch["depth_front"], batch["depth_back"]
    if phase == 1:
        pred_f, pred_b = outputs["pred_down_depth_front"], outputs["pred_down_depth_back"]
        size = pred_f.shape[-1]
        gt_f, gt_b = coarse_sample(gt_f, size), coarse_sample(gt_b, size)
        normals = (outputs["pred_down_normal_front"], outputs["pred_down_normal_back"])
        pred_mask = outputs["pred_down_depth_mask"]
    else:
        pred_f, pred_b = outputs["pred_depth_front"], outputs["pred_depth_back"]
        normals = (outputs["pred_normal_front"], outputs["pred_normal_back"])
        pred_mask = outputs["pred_depth_mask"]
    mask = (gt_f > 0).to(pred_f.dtype)
    n = mask.sum().clamp_min(1)
    depth_err = (((pred_f - gt_f).abs() + (pred_b - gt_b).abs()) * mask).sum() / (2 * n)
    err_front = float(angle_error_deg(normals[0], get_normal(gt_f), mask))
    err_back = float(angle_error_deg(normals[1], get_normal(gt_b), mask))
    pred_fg = pred_mask > 0.5
    gt_fg = mask > 0
    iou = (pred_fg & gt_fg).sum() / (pred_fg | gt_fg).sum().clamp_min(1)
    mm_per_unit = 1700.0 / 0.7
    metrics = {
        "depth_err_d": float(depth_err),
        "depth_err_mm": float(depth_err) * DEPTH_UNIT / DEPTH_F * mm_per_unit,
        "normal_err_deg": (err_front + err_back) / 2,
        "normal_err_front_deg": err_front,
        "normal_err_back_deg": err_back,
        "mask_iou": float(iou),
    }
    if geometry is not None:
        front, back = part_normal_errors(outputs, batch, geometry)
        metrics.update(part_normal_err_front_deg=front, part_normal_err_back_deg=back)
    return metrics
