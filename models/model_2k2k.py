"""The full 2K2K model (authors' ``Model_2K2K``, facts sheet §1.2-1.3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from utils.keypoints import invert_affine

from .aunet import AUNet
from .blocks import Checkpointable
from .daunet import DAUNet
from .parts import (
    NUM_PARTS,
    PART_NETS,
    PartGeometry,
    blend_windows,
    crop_grids,
    merge_parts,
    sample_part_crops,
)
from .refine import RefineNet

COARSE_FACTOR = 8  # coarse nets run at res / 8 (256 for 2048)
FRONT_BACKGROUND = 6.0  # front depth of background pixels, in D units (ReLU6 ceiling)
ORIGIN_DEPTH = 2.0  # D units of the mesh centre (range 1 from the camera)
NORMAL_HEAD_START = 0.5  # encoded normal every output starts at under init_normal_heads_alive
NORMAL_NETS = (*(name for name, _, _ in PART_NETS), "down")  # img2normal_<name>
CHECKPOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "parts": tuple(f"img2normal_{name}" for name, _, _ in PART_NETS),
    "coarse": ("img2normal_down", "ImgNorm_to_Dep"),
    "refine": ("refine",),
}
"""Activation-checkpointing groups (:meth:`Model2K2K.set_checkpointing`) -> sub-network names."""


class Model2K2K(nn.Module):
    """Coarse normal net, five part normal nets, D-AU-Net coarse depth and (phase 2) refinement.

    Args:
        phase: 1 = normal nets + coarse depth (no refinement net); 2 = full model.
        res: working resolution (multiple of 64; the authors' model is 2048).
        width: channel multiplier of every network (1.0 = the authors' architecture).
        frozen_eval: phase 2 only. Keep the frozen networks (all but ``refine``) in eval mode when
            the model is put in training mode, so their BatchNorm uses and keeps the phase-1 running
            statistics. The authors train them in train mode (facts sheet §8 item 3); False
            restores that.
        detach_coarse_normals: feed the coarse depth net a detached copy of the coarse normals,
            so that only the coarse normal loss trains the coarse normal net. The authors let
            the coarse depth, consistency and mask losses reach it too (facts §1.3), which turns
            its output into a silhouette-like feature map (README, "Coarse normals"). Changes
            gradients only, never outputs.

    Attributes:
        eval_channels_last: in eval mode run every convolution channels_last whatever layout the
            caller's tensors have (2-3x faster on CPU, same values up to summation order): the
            weights are converted when the model enters eval mode and restored when it goes back
            to training; inputs are converted in :meth:`forward`. Set False before ``eval()`` to
            keep the caller's layout.
    """

    def __init__(
        self,
        phase: int = 2,
        res: int = 2048,
        width: float = 1.0,
        frozen_eval: bool = True,
        detach_coarse_normals: bool = False,
    ) -> None:
        super().__init__()
        if phase not in (1, 2):
            raise ValueError(f"phase must be 1 or 2, got {phase}")
        self.phase, self.res, self.frozen_eval = phase, res, frozen_eval
        self.detach_coarse_normals = detach_coarse_normals
        self.eval_channels_last = True
        self._layout_to_restore: torch.memory_format | None = None
        self.geometry = PartGeometry.for_resolution(res)
        self.img2normal_face = AUNet(6, 6, width)
        self.img2normal_upper = AUNet(6, 6, width)
        self.img2normal_arm = AUNet(6, 6, width)
        self.img2normal_leg = AUNet(6, 6, width)
        self.img2normal_shoe = AUNet(6, 6, width)
        self.img2normal_down = AUNet(3, 6, width)
        self.ImgNorm_to_Dep = DAUNet(3, 6, 3, width)
        if phase == 2:
            self.refine = RefineNet(2, 6, 3, width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Authors' init: conv weights ~ N(0, 2/(k_h k_w C_out)), default conv bias, BN (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                kh, kw = m.kernel_size
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (kh * kw * m.out_channels)))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def init_depth_heads_at_origin(self) -> None:
        """Start every depth output at the origin's depth (D = 2) instead of the authors' random
        head: front/back output weights 0, biases 2 (training option ``--depth_head_init origin``).

        The authors' He-initialised 1x1 heads give pre-activations of several units; when the
        foreground's are negative, ReLU6 passes no gradient there and the depth never learns
        (seed-dependent). The mask channel keeps the authors' initialisation.
        """
        heads = [self.ImgNorm_to_Dep.Conv_1x1]
        if self.phase == 2:
            heads.append(self.refine.merge3_2)
        with torch.no_grad():
            for head in heads:
                head.weight[:2].zero_()
                head.bias[:2].fill_(ORIGIN_DEPTH)

    def init_normal_heads_alive(self) -> None:
        """Start every normal output at 0.5 instead of the authors' random head: the 1x1 head
        weights of the six normal nets 0, biases 0.5 (training option ``--normal_head_init
        alive``).

        The authors' He-initialised head (std sqrt(2/6) on 6 outputs) gives each output channel a
        pre-activation whose sign is nearly the same on every pixel; a channel that starts
        negative on the body passes no gradient through the head's ReLU and stays 0 for good
        (7-13 of the 36 normal channels at init, seeds 0-4, widths 0.25 and 1; README). The
        model's function is unchanged; only the starting point differs.
        """
        with torch.no_grad():
            for name in NORMAL_NETS:
                head = getattr(self, f"img2normal_{name}").Conv_1x1.conv[0]
                head.weight.zero_()
                head.bias.fill_(NORMAL_HEAD_START)

    def freeze_for_phase(self) -> None:
        """Phase 2 trains only the refinement net (facts §1.3): every other parameter stops
        requiring gradients. Phase 1 trains everything."""
        for name, p in self.named_parameters():
            p.requires_grad_(self.phase == 1 or name.startswith("refine."))

    def set_checkpointing(self, groups: Sequence[str]) -> None:
        """Recompute the activations of these :data:`CHECKPOINT_GROUPS` in the backward pass
        (``models.blocks``: less memory, about one more forward of time; same outputs, gradients
        and BatchNorm statistics). The others keep theirs; an empty list turns it off. A group
        that a phase does not train (phase 2: all but ``refine``) runs without gradients and is
        not affected.
        """
        unknown = set(groups) - set(CHECKPOINT_GROUPS)
        if unknown:
            raise ValueError(
                f"unknown checkpointing groups {sorted(unknown)}: {list(CHECKPOINT_GROUPS)}"
            )
        for group, names in CHECKPOINT_GROUPS.items():
            for name in names:
                net = getattr(self, name, None)  # phase 1 has no refine
                for m in net.modules() if net is not None else ():
                    if isinstance(m, Checkpointable):
                        m.grad_checkpointing = group in groups

    def part_net(self, name: str) -> AUNet:
        return getattr(self, f"img2normal_{name}")

    def train(self, mode: bool = True) -> Model2K2K:
        super().train(mode)
        if mode and self.phase == 2 and self.frozen_eval:
            for child in self.children():
                if child is not self.refine:
                    child.eval()
        self._set_weight_layout(mode)
        return self

    def _set_weight_layout(self, training: bool) -> None:
        """channels_last weights in eval (:attr:`eval_channels_last`); training gets back the
        layout it had."""
        if not training and self.eval_channels_last and self._layout_to_restore is None:
            probe = self.img2normal_down.Conv1.conv[0].weight
            was_last = probe.is_contiguous(memory_format=torch.channels_last)
            self._layout_to_restore = torch.channels_last if was_last else torch.contiguous_format
            self.to(memory_format=torch.channels_last)
        elif training and self._layout_to_restore is not None:
            self.to(memory_format=self._layout_to_restore)
            self._layout_to_restore = None

    def forward(self, image: torch.Tensor, theta: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Run the model.

        Args:
            image: [B, 3, res, res] RGB normalised to [-1, 1].
            theta: [B, 12, 2, 3] per-part sampling matrices, canvas NC -> image NC
                (``utils.keypoints.part_matrices``).
        Returns:
            The authors' output dictionary (facts sheet §1.2): ``pred_<net>_normal_front/back``
            [B * n_parts, 3, h, w] (encoded normals, canvas frame), ``pred_down_normal_front/back``
            [B, 3, res/8, res/8], ``pred_down_depth_front/back/mask`` [B, 1, res/8, res/8] (D units;
            phase 2: after the mask clean-up), ``pred_normal_front/back`` [B, 3, res, res] merged
            normals, ``pred_depth_front/back/mask`` [B, 1, res, res], ``occupancy`` [B, res, res],
            ``z`` = theta, ``inv_z`` [B, 12, 2, 3]; plus ``pred_down_depth_mask_logit`` and
            ``pred_depth_mask_logit`` (pre-sigmoid masks, for a proper BCE-with-logits loss).
            Entries a phase does not compute are None.
        """
        B, C, H, W = image.shape
        assert (C, H, W) == (3, self.res, self.res), f"image must be [B, 3, {self.res}, {self.res}]"
        if not self.training and self.eval_channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        assert theta.shape == (B, NUM_PARTS, 2, 3), (
            f"theta must be [B, 12, 2, 3], got {theta.shape}"
        )
        assert theta.dtype == image.dtype, f"theta is {theta.dtype} but image is {image.dtype}"
        assert torch.isfinite(theta).all(), "theta has NaN/inf entries (a part could not be placed)"
        geo = self.geometry
        r = self.res // COARSE_FACTOR
        out: dict[str, torch.Tensor | None] = {}
        frozen = self.phase == 2
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            with torch.no_grad():
                grids = crop_grids(theta, geo)
                rgb_crops = sample_part_crops(image, grids, geo)
                small = F.interpolate(image, size=(r, r), mode="bilinear", align_corners=False)
            down_normal = self.img2normal_down(small)  # [B, 6, r, r]
            out["pred_down_normal_front"], out["pred_down_normal_back"] = down_normal.split(3, 1)
            with torch.no_grad():
                guide = F.interpolate(
                    down_normal[:, :3], size=(H, W), mode="bilinear", align_corners=False
                )  # [B, 3, res, res], upsampled once for all parts
                guide_crops = sample_part_crops(guide, grids, geo)
                del guide
            part_out = {}
            for name, _, _ in PART_NETS:
                x = torch.cat((rgb_crops[name], guide_crops[name]), dim=1)  # [B*n, 6, h, w]
                net = self.part_net(name)
                # In eval, one crop at a time keeps activations cache-sized (~10% faster, same
                # values).
                part_out[name] = net(x) if net.training else torch.cat([net(c) for c in x.split(1)])
                front, back = part_out[name].split(3, 1)
                out[f"pred_{name}_normal_front"], out[f"pred_{name}_normal_back"] = front, back
            del rgb_crops, guide_crops
            depth_guide = down_normal.detach() if self.detach_coarse_normals else down_normal
            coarse = self.ImgNorm_to_Dep(small, depth_guide)  # [B, 3, r, r]
        down_front = F.relu6(coarse[:, 0:1])
        down_back = F.relu6(coarse[:, 1:2])
        out["pred_down_depth_mask_logit"] = coarse[:, 2:3]
        out["pred_down_depth_mask"] = down_mask = torch.sigmoid(coarse[:, 2:3])
        out["z"] = theta
        out["inv_z"] = inv_theta = invert_affine(theta)
        for key in ("pred_normal_front", "pred_normal_back", "pred_depth_front", "pred_depth_back"):
            out[key] = None
        out["pred_depth_mask"] = out["pred_depth_mask_logit"] = out["occupancy"] = None
        if self.phase == 1:
            out["pred_down_depth_front"], out["pred_down_depth_back"] = down_front, down_back
            return out

        with torch.no_grad():
            keep = (down_mask > 0.5).to(down_front.dtype)
            down_front = down_front * keep + FRONT_BACKGROUND * (1 - keep)
            down_back = down_back * keep
            out["pred_down_depth_front"], out["pred_down_depth_back"] = down_front, down_back
            weights = blend_windows(grids, geo)
            merged, occupancy = merge_parts(
                part_out, weights, theta, inv_theta.to(image.dtype), geo
            )
            out["pred_normal_front"], out["pred_normal_back"] = merged.split(3, 1)
            out["occupancy"] = occupancy
        refined = self.refine(torch.cat((down_front, down_back), dim=1), merged)  # [B, 3, res, res]
        out["pred_depth_front"] = F.relu6(refined[:, 0:1])
        out["pred_depth_back"] = F.relu6(refined[:, 1:2])
        out["pred_depth_mask_logit"] = refined[:, 2:3]
        out["pred_depth_mask"] = torch.sigmoid(refined[:, 2:3])
        return out
