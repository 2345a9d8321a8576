"""Naive full-canvas part cropping and merging, written the authors' way (facts sheet §3.4-3.6).

Reference for :mod:`models.parts` in the tests and baseline of ``bench.bench_parts``: one full
``res x res`` canvas per part, as the authors do (GBs at 2048).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.parts import NUM_PARTS, PART_NETS, PartGeometry, gaussian_kernel2d


def _window(size: int, h: int, w: int) -> tuple[slice, slice]:
    c = size // 2
    return slice(c - h // 2, c + h // 2), slice(c - w // 2, c + w // 2)


def naive_crops(
    image: torch.Tensor, theta: torch.Tensor, geo: PartGeometry
) -> dict[str, torch.Tensor]:
    """Warp the whole image into a canvas per part, then cut the centred window."""
    B, C, H, W = image.shape
    sizes = geo.part_sizes()
    crops = {}
    for name, parts, _ in PART_NETS:
        per_part = []
        for k in parts:
            grid = F.affine_grid(theta[:, k], [B, C, H, W], align_corners=False)
            canvas = F.grid_sample(
                image, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )
            rows, cols = _window(H, *sizes[k])
            per_part.append(canvas[:, :, rows, cols])
        crops[name] = torch.stack(per_part, dim=1).flatten(0, 1)  # sample-major [B*n, C, h, w]
    return crops


def naive_merge(
    part_normals: dict[str, torch.Tensor],
    theta: torch.Tensor,
    inv_theta: torch.Tensor,
    geo: PartGeometry,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad every part output into a full canvas, inverse-warp, blend with blurred occupancy."""
    B = theta.shape[0]
    res, sizes = geo.res, geo.part_sizes()
    C = next(iter(part_normals.values())).shape[1]
    r, m = geo.blur_radius, geo.margin
    kernel = gaussian_kernel2d(r, geo.blur_sigma)[None, None]
    occ, warped = [], []
    for name, parts, _ in PART_NETS:
        out = part_normals[name].view(B, len(parts), C, *part_normals[name].shape[-2:])
        for j, k in enumerate(parts):
            h, w = sizes[k]
            rows, cols = _window(res, h, w)
            ones = torch.ones(B, 1, res, res)
            o = F.grid_sample(
                ones,
                F.affine_grid(theta[:, k], [B, 1, res, res], align_corners=False),
                mode="bilinear",
                padding_mode="zeros",
                align_corners=False,
            )
            inner = torch.zeros_like(o)
            ir, ic = _window(res, h - 2 * m, w - 2 * m)
            inner[:, :, ir, ic] = o[:, :, ir, ic]
            blurred = F.conv2d(F.pad(inner, (r, r, r, r), mode="reflect"), kernel)
            inv_grid = F.affine_grid(inv_theta[:, k], [B, C, res, res], align_corners=False)
            occ.append(
                F.grid_sample(
                    blurred, inv_grid, mode="bilinear", padding_mode="zeros", align_corners=False
                )
            )
            canvas = torch.zeros(B, C, res, res)
            canvas[:, :, rows, cols] = out[:, j]
            warped.append(
                F.grid_sample(
                    canvas, inv_grid, mode="bilinear", padding_mode="zeros", align_corners=False
                )
            )
    total = torch.stack(occ).sum(0)  # [B, 1, res, res]
    weights = [torch.where(total > 0, o / torch.where(total > 0, total, 1), o) for o in occ]
    merged = sum(wk * nk for wk, nk in zip(weights, warped, strict=True))
    occupancy = torch.stack(weights).sum(0)[:, 0]
    assert len(occ) == NUM_PARTS
    return merged, occupancy
