"""Training losses of 2K2K (authors' ``LossBuilderHuman_2048``, facts sheet §4).

Phase 1 trains the coarse normal net, the five part normal nets and the coarse depth net with

* **normal**: 12 tensors (5 part fronts, coarse front, 5 part backs, coarse back), each
  ``normal_weight * (l1_weight * L1 + ssim_weight * (1 - SSIM))``;
* **depth**: Smooth-L1 (beta ``depth_beta``, the authors' 1) of the coarse front/back depth,
  ``depth_weight``;
* **consistency**: Smooth-L1 between ``get_normal`` of the predicted coarse depth (zeroed where the
  coarse GT front depth is 0) and the coarse GT normals, ``consistency_weight``;
* **mask**: BCE of the coarse mask, ``mask_weight``.

Phase 2 trains only the refinement net with the full-resolution depth, consistency and mask terms.

Targets (§4.2): GT normals come from the GT depth (:func:`get_normal`) *before* the front
background is set to ``FRONT_BACKGROUND`` (6); the coarse GT depth is the full-resolution GT
point-sampled at rows and columns ``3, 11, 19, ...`` (offset 3, stride 8); part GT normals are the
full-resolution GT normals cut with the model's own part sampler (equal to the authors'
warp-into-canvas-then-centre-crop). No input tensor is modified (the authors write the background
value into the caller's depth, §8 item 10).

Two deliberate, configurable choices (:class:`LossConfig`):

* ``reduction``: ``"sum_items"`` (default) reproduces the authors' L1 / Smooth-L1 / BCE reduction:
  a mean over ``C, H, W`` of each item, *summed* over the first dimension (batch, or batch x parts
  for the part nets; §4.3, §8 item 2); ``"mean"`` is a plain mean over all elements. SSIM is always
  averaged over batch and channels, as in the original.
* ``mask_loss``: ``"logits"`` (default) applies BCE-with-logits to the raw mask logit, the loss the
  authors intended; ``"double_sigmoid"`` reproduces their exact loss, BCE-with-logits applied to the
  already-sigmoided mask (minimum 0.313 for y = 1 and 0.693 for y = 0, §4.4, §8 item 1).

A term whose weight is 0 is not computed at all (it contributes a constant 0 without autograd
graph), so e.g. ``normal_weight = 0`` sends no (not even zero) gradients to the part nets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_msssim import SSIM
from torch import Tensor, nn

from .model_2k2k import COARSE_FACTOR, FRONT_BACKGROUND
from .parts import PART_NETS, PartGeometry, crop_grids, sample_part_crops

NORMAL_C = 1.0 / 255.0  # z component of the un-normalised depth-gradient normal (facts sheet §4.1)
COARSE_OFFSET = 3  # coarse GT = full-res GT at rows/cols 3, 11, 19, ... (offset 3, stride 8)

Reduction = Literal["sum_items", "mean"]
ElementwiseLoss = Callable[[Tensor, Tensor], Tensor]


def get_normal(depth: Tensor, cutoff: float = 0.2) -> Tensor:
    """Encoded surface normals of a depth map (authors' ``get_normal``, facts sheet §4.1).

    With ``x`` the depth and replicate padding at the border::

        g_v(i, j) = x(i-1, j) - x(i, j)   (0 on the first row)
        g_h(i, j) = x(i, j) - x(i, j+1)   (0 on the last column)
        n = sqrt(g_h^2 + g_v^2 + c^2),    c = 1/255
        normal = ((g_h/n + 1)/2, (g_v/n + 1)/2, (c/n + 1)/2)

    and all three channels are 0 wherever ``x < cutoff``. ``c`` does not depend on the resolution,
    so the encoding is resolution-dependent (a per-pixel gradient).

    Args:
        depth: [B, 1, H, W] depth in D units (integer and half inputs are computed in float32).
        cutoff: depth below which the normal is set to 0 (background, D units).
    Returns:
        [B, 3, H, W] encoded normals in [0, 1] (0 = background), dtype of ``depth`` (>= float32).
    """
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be [B, 1, H, W], got {tuple(depth.shape)}")
    x = depth
    if not x.is_floating_point() or torch.finfo(x.dtype).bits < 32:
        x = x.float()
    zero_row = torch.zeros_like(x[:, :, :1, :])
    zero_col = torch.zeros_like(x[:, :, :, :1])
    g_v = torch.cat((zero_row, x[:, :, :-1, :] - x[:, :, 1:, :]), dim=2)  # [B, 1, H, W]
    g_h = torch.cat((x[:, :, :, :-1] - x[:, :, :, 1:], zero_col), dim=3)  # [B, 1, H, W]
    c = torch.full_like(x, NORMAL_C)
    n = torch.sqrt(g_v.pow(2) + g_h.pow(2) + c.pow(2))
    normal = (torch.cat((g_h / n, g_v / n, c / n), dim=1) + 1) / 2  # [B, 3, H, W]
    return torch.where(x < cutoff, torch.zeros_like(normal), normal)


@torch.no_grad()
def part_normal_targets(
    depth_front: Tensor, depth_back: Tensor, theta: Tensor, geometry: PartGeometry
) -> dict[str, Tensor]:
    """GT normals of the part crops (facts sheet §4.2): :func:`get_normal` of the full-resolution
    GT depth, cut with the model's part sampler.

    The values stay in the image frame's encoding: a crop is a resampling, not a rotation of
    the normals, and no limb is mirrored (the authors' targets), so a left and a right limb seen
    in a mirrored image get mirrored crops with the x channel negated (``x -> 1 - x``).

    Args:
        depth_front, depth_back: [B, 1, res, res] GT depth in D units, background 0.
        theta: [B, 12, 2, 3] part sampling matrices (canvas NC -> image NC).
        geometry: the model's :class:`PartGeometry` (``geometry.res == res``).
    Returns:
        ``{net: [B * n_parts, 6, h, w]}``: channels 0-2 front, 3-5 back, parts sample-major.
    """
    if depth_front.shape[-1] != geometry.res:
        raise ValueError(f"GT size {depth_front.shape[-1]} != geometry.res {geometry.res}")
    gt_normals = torch.cat((get_normal(depth_front), get_normal(depth_back)), 1)  # [B, 6, r, r]
    grids = crop_grids(theta.to(gt_normals.dtype), geometry)
    return sample_part_crops(gt_normals, grids, geometry)


def sum_of_item_means(loss_fn: ElementwiseLoss, pred: Tensor, target: Tensor) -> Tensor:
    """The authors' reduction: mean over all but the first dimension, summed over the first.

    Args:
        loss_fn: element-wise loss ``(pred, target) -> Tensor`` of their shape (no reduction).
        pred, target: [N, C, H, W] (N = batch, or batch x parts for the part nets).
    Returns:
        Scalar ``sum_n mean_{c,h,w} loss_fn(pred, target)[n]``.
    """
    return loss_fn(pred, target).flatten(1).mean(dim=1).sum()


def _reduce(loss_fn: ElementwiseLoss, pred: Tensor, target: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "sum_items":
        return sum_of_item_means(loss_fn, pred, target)
    if reduction == "mean":
        return loss_fn(pred, target).mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def _zero_where(condition: Tensor, x: Tensor) -> Tensor:
    """``x`` with 0 where ``condition`` (broadcast over channels); not in place."""
    return torch.where(condition, torch.zeros_like(x), x)


def _l1(pred: Tensor, target: Tensor) -> Tensor:
    return F.l1_loss(pred, target, reduction="none")


def _smooth_l1(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    return F.smooth_l1_loss(pred, target, reduction="none", beta=beta)


def _bce_logits(pred: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none")


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of :class:`Loss2K2K`.

    The default weights and SSIM window are the authors' (§4.3), as is ``reduction``; the default
    ``mask_loss`` is the corrected one (the authors' is ``"double_sigmoid"``).

    Attributes:
        normal_weight: ``N_ratio``, factor of every normal term (phase 1).
        l1_weight, ssim_weight: mix of L1 and ``1 - SSIM`` inside a normal term.
        depth_weight: Smooth-L1 depth terms.
        depth_beta: Smooth-L1 beta of the depth terms, D units. The authors' 1.0 makes the loss
            quadratic for every error under 1 D (57 cm at a person's size), so body errors of a
            few cm get almost no gradient; 0 is plain L1 (README, "Depth loss").
        consistency_weight: Smooth-L1 between normals of predicted and GT depth.
        mask_weight: mask BCE term.
        mask_loss: ``"logits"`` (BCE-with-logits on the raw logit; default, the fix of §8 item 1) or
            ``"double_sigmoid"`` (the authors' BCE-with-logits on the sigmoided mask).
        reduction: ``"sum_items"`` (authors: per-item means summed over the first dimension) or
            ``"mean"`` (plain mean). Applies to L1, Smooth-L1 and BCE; SSIM is always a mean.
        ssim_window, ssim_sigma: Gaussian SSIM window (size, std in pixels); "valid" filtering.
    """

    normal_weight: float = 0.5
    l1_weight: float = 0.85
    ssim_weight: float = 0.15
    depth_weight: float = 0.85
    depth_beta: float = 1.0
    consistency_weight: float = 0.15
    mask_weight: float = 1.0
    mask_loss: Literal["logits", "double_sigmoid"] = "logits"
    reduction: Reduction = "sum_items"
    ssim_window: int = 5
    ssim_sigma: float = 1.5


def coarse_sample(depth: Tensor, size: int) -> Tensor:
    """Point-sample [B, 1, H, W] at rows/cols ``3, 3 + s, ...`` (s = H / size): [B, 1, size, size].

    At 2048 -> 256 these are rows/cols 3, 11, 19, ..., 2043 (the authors' ``[:, :, 3::8, 3::8]``).
    """
    stride = depth.shape[-1] // size
    if stride != COARSE_FACTOR or depth.shape[-2] // size != COARSE_FACTOR:
        raise ValueError(f"coarse size {size} is not 1/{COARSE_FACTOR} of {depth.shape[-2:]}")
    return depth[:, :, COARSE_OFFSET::stride, COARSE_OFFSET::stride]


class Loss2K2K(nn.Module):
    """The phase-dependent 2K2K training loss.

    Args:
        phase: 1 (normal nets + coarse depth) or 2 (refinement net), as in :class:`Model2K2K`.
        config: weights and options, see :class:`LossConfig`.
    """

    def __init__(self, phase: int, config: LossConfig = LossConfig()) -> None:  # noqa: B008
        super().__init__()
        if phase not in (1, 2):
            raise ValueError(f"phase must be 1 or 2, got {phase}")
        if config.mask_loss not in ("logits", "double_sigmoid"):
            raise ValueError(f"unknown mask_loss {config.mask_loss!r}")
        if config.depth_beta < 0:
            raise ValueError(f"depth_beta must be >= 0, got {config.depth_beta}")
        if config.reduction not in ("sum_items", "mean"):
            raise ValueError(f"unknown reduction {config.reduction!r}")
        self.phase = phase
        self.config = config
        # pytorch_msssim 1.0: separable Gaussian window, conv with padding=0 ("valid"), per-channel
        # SSIM clamped at 0 by ReLU (nonnegative_ssim), averaged over batch and channels.
        self.ssim = SSIM(
            data_range=1.0,
            size_average=True,
            win_size=config.ssim_window,
            win_sigma=config.ssim_sigma,
            channel=3,
            K=(0.01, 0.03),
            nonnegative_ssim=True,
        )

    # -- individual terms ------------------------------------------------------------------------

    def normal_term(self, pred: Tensor, target: Tensor) -> Tensor:
        """``normal_weight * (l1_weight * L1 + ssim_weight * (1 - SSIM))`` of [N, 3, h, w] maps."""
        cfg = self.config
        loss = pred.new_zeros(())
        if cfg.l1_weight != 0:
            loss = loss + cfg.l1_weight * _reduce(_l1, pred, target, cfg.reduction)
        if cfg.ssim_weight != 0:
            h, w = pred.shape[-2:]
            if min(h, w) < cfg.ssim_window:
                raise ValueError(f"{h}x{w} map is smaller than the SSIM window {cfg.ssim_window}")
            loss = loss + cfg.ssim_weight * (1 - self.ssim(pred, target))
        return cfg.normal_weight * loss

    def mask_term(self, logit: Tensor | None, prob: Tensor, target: Tensor) -> Tensor:
        """Mask BCE of [B, 1, H, W] maps (``target`` in {0, 1}), before ``mask_weight``.

        ``"logits"`` uses ``logit`` (pre-sigmoid); ``"double_sigmoid"`` feeds ``prob`` (after the
        sigmoid) to BCE-with-logits, as the authors do.
        """
        if self.config.mask_loss == "logits":
            if logit is None:
                raise KeyError("mask_loss='logits' needs the model's *_mask_logit output")
            return _reduce(_bce_logits, logit, target, self.config.reduction)
        return _reduce(_bce_logits, prob, target, self.config.reduction)

    def _smooth_l1_pair(
        self, pred: tuple[Tensor, Tensor], target: tuple[Tensor, Tensor], beta: float = 1.0
    ) -> Tensor:
        """Sum of the reduced Smooth-L1 of the (front, back) pairs, before the weight."""
        red = self.config.reduction

        def loss(p: Tensor, t: Tensor) -> Tensor:
            return _smooth_l1(p, t, beta)

        return _reduce(loss, pred[0], target[0], red) + _reduce(loss, pred[1], target[1], red)

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self, outputs: dict[str, Tensor | None], batch: dict[str, Tensor], geometry: PartGeometry
    ) -> dict[str, Tensor]:
        """Compute the loss of one batch.

        Args:
            outputs: the model's output dictionary (:meth:`Model2K2K.forward`).
            batch: ``"depth_front"``, ``"depth_back"`` [B, 1, res, res] GT depth in D units with
                background 0; ``"mask"`` [B, 1, res, res] optional (default ``depth_front > 0``;
                phase 2); ``"theta"`` [B, 12, 2, 3] part sampling matrices (phase 1). Nothing in
                ``batch`` or ``outputs`` is modified.
            geometry: the model's :class:`PartGeometry` (``model.geometry``).
        Returns:
            Scalars ``"normal"``, ``"depth"``, ``"consistency"``, ``"mask"`` (weighted group sums;
            0 for groups the phase does not train) and their sum ``"total"``.
        """
        depth_front, depth_back = batch["depth_front"], batch["depth_back"]
        shape = depth_front.shape
        if depth_front.dim() != 4 or shape[1] != 1 or depth_back.shape != shape:
            raise ValueError("depth_front / depth_back must both be [B, 1, res, res]")
        if self.phase == 1:
            losses = self._phase1(outputs, batch, geometry)
        else:
            losses = self._phase2(outputs, batch)
        total = losses["normal"] + losses["depth"]
        losses["total"] = total + losses["consistency"] + losses["mask"]
        return losses

    def _phase1(
        self, outputs: dict[str, Tensor | None], batch: dict[str, Tensor], geometry: PartGeometry
    ) -> dict[str, Tensor]:
        cfg = self.config
        gt_f, gt_b = batch["depth_front"], batch["depth_back"]
        pred_f, pred_b = outputs["pred_down_depth_front"], outputs["pred_down_depth_back"]
        assert pred_f is not None and pred_b is not None
        zero = pred_f.new_zeros(())
        size = pred_f.shape[-1]
        with torch.no_grad():
            coarse_f = coarse_sample(gt_f, size).to(pred_f.dtype)  # [B, 1, r, r], bg 0
            coarse_b = coarse_sample(gt_b, size).to(pred_f.dtype)
            coarse_bg = coarse_f == 0  # consistency / depth-fill mask
            coarse_mask = (coarse_f > 0).to(pred_f.dtype)
            coarse_f_target = torch.where(coarse_bg, FRONT_BACKGROUND, coarse_f)
            coarse_gt_n = (get_normal(coarse_f), get_normal(coarse_b))  # before the bg fill

        normal = zero
        if cfg.normal_weight != 0:
            part_gt = part_normal_targets(gt_f, gt_b, batch["theta"], geometry)
            for side, s in (("front", 0), ("back", 1)):
                for name, _, _ in PART_NETS:
                    pred = outputs[f"pred_{name}_normal_{side}"]
                    assert pred is not None
                    target = part_gt[name][:, 3 * s : 3 * s + 3].to(pred.dtype)
                    normal = normal + self.normal_term(pred, target)
                pred = outputs[f"pred_down_normal_{side}"]
                assert pred is not None
                normal = normal + self.normal_term(pred, coarse_gt_n[s].to(pred.dtype))

        depth = zero
        if cfg.depth_weight != 0:
            depth = self._smooth_l1_pair(
                (pred_f, pred_b), (coarse_f_target, coarse_b), cfg.depth_beta
            )
            depth = cfg.depth_weight * depth

        consistency = zero
        if cfg.consistency_weight != 0:
            preds = (
                _zero_where(coarse_bg, get_normal(pred_f)),
                _zero_where(coarse_bg, get_normal(pred_b)),
            )
            consistency = cfg.consistency_weight * self._smooth_l1_pair(preds, coarse_gt_n)

        mask = zero
        if cfg.mask_weight != 0:
            prob = outputs["pred_down_depth_mask"]
            assert prob is not None
            mask = cfg.mask_weight * self.mask_term(
                outputs.get("pred_down_depth_mask_logit"), prob, coarse_mask
            )
        return {"normal": normal, "depth": depth, "consistency": consistency, "mask": mask}

    def _phase2(
        self, outputs: dict[str, Tensor | None], batch: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        cfg = self.config
        gt_f, gt_b = batch["depth_front"], batch["depth_back"]
        pred_f, pred_b = outputs["pred_depth_front"], outputs["pred_depth_back"]
        if pred_f is None or pred_b is None:
            raise KeyError("phase 2 loss needs the refined depth (pred_depth_front/back)")
        if pred_f.shape != gt_f.shape:
            raise ValueError(f"prediction {tuple(pred_f.shape)} != GT {tuple(gt_f.shape)}")
        zero = pred_f.new_zeros(())
        with torch.no_grad():
            gt_f, gt_b = gt_f.to(pred_f.dtype), gt_b.to(pred_f.dtype)
            gt_mask = batch.get("mask")
            fg = (gt_f > 0) if gt_mask is None else (gt_mask > 0)  # [B, 1, res, res] bool
            bg = ~fg  # the authors zero the consistency normals where mask == 0
            target_mask = fg.to(pred_f.dtype)
            front_target = torch.where(gt_f == 0, FRONT_BACKGROUND, gt_f)

        depth = zero
        if cfg.depth_weight != 0:
            depth = self._smooth_l1_pair((pred_f, pred_b), (front_target, gt_b), cfg.depth_beta)
            depth = cfg.depth_weight * depth

        consistency = zero
        if cfg.consistency_weight != 0:
            with torch.no_grad():
                targets = (_zero_where(bg, get_normal(gt_f)), _zero_where(bg, get_normal(gt_b)))
            preds = (_zero_where(bg, get_normal(pred_f)), _zero_where(bg, get_normal(pred_b)))
            consistency = cfg.consistency_weight * self._smooth_l1_pair(preds, targets)

        mask = zero
        if cfg.mask_weight != 0:
            prob = outputs["pred_depth_mask"]
            assert prob is not None
            logit = outputs.get("pred_depth_mask_logit")
            mask = cfg.mask_weight * self.mask_term(logit, prob, target_mask)
        return {"normal": zero, "depth": depth, "consistency": consistency, "mask": mask}


__all__ = [
    "COARSE_OFFSET",
    "Loss2K2K",
    "LossConfig",
    "NORMAL_C",
    "get_normal",
    "part_normal_targets",
    "sum_of_item_means",
]
