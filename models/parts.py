"""Part crops and their merge back into the image, without full-resolution canvases.

The authors (facts sheet §3.4-3.6) warp the whole image into one ``res x res`` canvas per part and
cut a small centred window out of it, and merge by inverse-warping 12 zero-padded canvases. Here the
same numbers come from crop-sized grids:

* **Crops**: the affine grid of a part is the authors' full-canvas grid restricted to the window
  rows and columns (same base coordinates, same ``bmm``), so ``grid_sample`` returns the same
  values.
* **Blend weights**: the canvas occupancy is only non-zero inside the shrunken window, and its
  Gaussian blur stays inside the crop window, so the blurred weight lives on the crop grid.
* **Merge**: each part is inverse-warped only over the bounding box of its footprint in the image,
  by bilinear sampling of the crop (zeros outside, like the zero canvas), and accumulated:
  ``N = sum_k o_k n_k / sum_k o_k`` where any ``o_k > 0``.

Conventions: normalized coordinates (NC) are those of ``affine_grid``/``grid_sample`` with
``align_corners=False``; ``theta`` [B, 12, 2, 3] maps canvas NC -> image NC, ``M = theta^-1`` maps
image NC -> canvas NC. Parts are in the order of ``utils.keypoints.PART_NAMES``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# (net name, part indices, crop (h, w) at 2048) -- facts sheet §3.4.
PART_NETS: tuple[tuple[str, tuple[int, ...], tuple[int, int]], ...] = (
    ("face", (0,), (368, 320)),
    ("upper", (1,), (528, 336)),
    ("arm", (2, 3, 4, 5), (352, 224)),
    ("leg", (6, 7, 8, 9), (272, 256)),
    ("shoe", (10, 11), (176, 128)),
)
NUM_PARTS = 12
REFERENCE_RES = 2048


@dataclass(frozen=True)
class PartGeometry:
    """Crop sizes, blend-window margin and blur of the part crops at one working resolution.

    At 2048 these are the authors' numbers; other resolutions scale them by ``res / 2048`` (crop
    sizes rounded to multiples of 8, as the AU-Net needs, so the NC extent of a crop changes by a
    few percent).
    """

    res: int
    crop_sizes: tuple[tuple[int, int], ...]  # per net, in PART_NETS order
    margin: int  # zeroed border of the blend window (8 at 2048: window (h - 16) x (w - 16))
    blur_radius: int  # Gaussian kernel is (2r + 1)^2 (7 -> 15 x 15 at 2048)
    blur_sigma: float  # 5.0 at 2048

    @classmethod
    def for_resolution(cls, res: int) -> PartGeometry:
        if res % 64 != 0 or res <= 0:
            raise ValueError(f"resolution must be a positive multiple of 64, got {res}")
        if res == REFERENCE_RES:
            return cls(res, tuple(hw for _, _, hw in PART_NETS), 8, 7, 5.0)
        s = res / REFERENCE_RES
        sizes = tuple(
            (max(16, 8 * round(h * s / 8)), max(16, 8 * round(w * s / 8)))
            for _, _, (h, w) in PART_NETS
        )
        margin = max(2, round(8 * s))
        # The blur must stay inside the crop window (the merge samples the crop with zeros outside).
        radius = max(1, min(round(7 * s), margin - 1))
        return cls(res, sizes, margin, radius, 5.0 * s)

    def part_sizes(self) -> list[tuple[int, int]]:
        """Crop (h, w) of each of the 12 parts."""
        sizes: list[tuple[int, int]] = [(0, 0)] * NUM_PARTS
        for (_, parts, _), hw in zip(PART_NETS, self.crop_sizes, strict=True):
            for p in parts:
                sizes[p] = hw
        return sizes


def _nc_linspace(n: int, device: torch.device) -> torch.Tensor:
    """Pixel-centre NC coordinates of ``n`` pixels, computed exactly as ``affine_grid`` does."""
    return torch.linspace(-1, 1, n, device=device) * (n - 1) / n


def _grid_points(xs: torch.Tensor, ys: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Affine grid over the pixel rectangle ``ys x xs`` (NC values) of a larger canvas.

    Args:
        xs: [w] NC x of the columns; ys: [h] NC y of the rows.
        matrices: [B, 2, 3] affine matrices (output NC -> input NC).
    Returns:
        [B, h * w, 2] sampling coordinates, identical to the matching rows of ``affine_grid``.
    """
    B = matrices.shape[0]
    h, w = ys.numel(), xs.numel()
    base = torch.empty(1, h, w, 3, dtype=matrices.dtype, device=matrices.device)
    base[..., 0] = xs
    base[..., 1] = ys[:, None]
    base[..., 2] = 1
    base = base.view(1, h * w, 3).expand(B, h * w, 3)
    return torch.bmm(base, matrices.transpose(1, 2))  # [B, h*w, 2]


def crop_grids(theta: torch.Tensor, geometry: PartGeometry) -> list[torch.Tensor]:
    """Sampling grids of the 12 part windows.

    Args:
        theta: [B, 12, 2, 3] canvas NC -> image NC.
    Returns:
        12 tensors [B, h_k * w_k, 2] of image NC coordinates.
    """
    lin = _nc_linspace(geometry.res, theta.device).to(theta.dtype)
    c = geometry.res // 2
    grids = []
    for k, (h, w) in enumerate(geometry.part_sizes()):
        ys, xs = lin[c - h // 2 : c + h // 2], lin[c - w // 2 : c + w // 2]
        grids.append(_grid_points(xs, ys, theta[:, k]))
    return grids


def sample_part_crops(
    image: torch.Tensor, grids: list[torch.Tensor], geometry: PartGeometry
) -> dict[str, torch.Tensor]:
    """Cut the part windows out of a full-resolution map in one ``grid_sample`` call.

    Args:
        image: [B, C, res, res] map to crop (image, normals, GT normals ...).
        grids: output of :func:`crop_grids`.
    Returns:
        ``{net: [B * n_parts, C, h, w]}``, parts of a net stacked sample-major (authors' order).
    """
    B, C = image.shape[:2]
    flat = torch.cat(grids, dim=1)[:, None]  # [B, 1, P_total, 2]
    samples = F.grid_sample(image, flat, mode="bilinear", padding_mode="zeros", align_corners=False)
    samples = samples[:, :, 0]  # [B, C, P_total]
    crops, start = {}, 0
    for (name, parts, _), (h, w) in zip(PART_NETS, geometry.crop_sizes, strict=True):
        n = len(parts)
        chunk = samples[:, :, start : start + n * h * w]  # [B, C, n*h*w]
        start += n * h * w
        chunk = chunk.reshape(B, C, n, h, w).transpose(1, 2)  # [B, n, C, h, w]
        crops[name] = chunk.reshape(B * n, C, h, w)
    return crops


def gaussian_kernel2d(
    radius: int, sigma: float, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """[2r+1, 2r+1] Gaussian: outer product of float32 1-D weights normalised to sum 1."""
    t = torch.linspace(-radius, radius, 2 * radius + 1, dtype=dtype)
    g = torch.exp(-0.5 * (t / sigma).pow(2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # [2r+1, 2r+1]


def blend_windows(grids: list[torch.Tensor], geometry: PartGeometry) -> list[torch.Tensor]:
    """Blurred blend weights of the 12 parts on their crop grids (facts sheet §3.6 steps 1-3).

    The occupancy (bilinear warp of an all-ones image: 1 inside the image, fall-off at its border)
    is kept on the window shrunk by ``margin`` and blurred with zero surroundings, exactly as
    blurring the otherwise-empty canvas.

    Returns:
        12 tensors [B, 1, h_k, w_k].
    """
    B = grids[0].shape[0]
    res, m, r = geometry.res, geometry.margin, geometry.blur_radius
    kernel = gaussian_kernel2d(r, geometry.blur_sigma).to(grids[0])[None, None]
    ones = torch.ones(B, 1, 1, 1, dtype=grids[0].dtype, device=grids[0].device)
    weights = []
    for grid, (h, w) in zip(grids, geometry.part_sizes(), strict=True):
        inner = grid.view(B, h, w, 2)[:, m : h - m, m : w - m]  # [B, h-2m, w-2m, 2]
        occ = F.grid_sample(
            ones.expand(B, 1, res, res),
            inner,
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )  # [B, 1, h-2m, w-2m]
        occ = F.pad(occ, (m, m, m, m))  # [B, 1, h, w]
        weights.append(F.conv2d(occ, kernel, padding=r))
    return weights


def _bilinear_sample(src: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling with zeros outside, in pixel coordinates, as ``grid_sample`` computes it.

    Args:
        src: [C, h, w]; ix, iy: [P] pixel coordinates (pixel centres at integers).
    Returns:
        [C, P]
    """
    C, h, w = src.shape
    x0, y0 = torch.floor(ix), torch.floor(iy)
    wx, wy = ix - x0, iy - y0
    ex, sy = 1 - wx, 1 - wy
    x0, y0 = x0.long(), y0.long()
    flat = src.reshape(C, h * w)
    out = None
    for dy, dx, weight in ((0, 0, sy * ex), (0, 1, sy * wx), (1, 0, wy * ex), (1, 1, wy * wx)):
        xx, yy = x0 + dx, y0 + dy
        inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).expand(C, -1)
        val = torch.gather(flat, 1, idx) * (weight * inside)  # [C, P]
        out = val if out is None else out + val
    return out


def _footprint(theta_k: torch.Tensor, h: int, w: int, res: int) -> tuple[int, int, int, int]:
    """Image-pixel bounding box (y0, y1, x0, x1) of a crop window mapped by ``theta_k`` [2, 3]."""
    hy, hx = h / res, w / res  # NC half extents of the window
    corners = torch.tensor(
        [[-hx, -hy, 1.0], [hx, -hy, 1.0], [-hx, hy, 1.0], [hx, hy, 1.0]], dtype=torch.float64
    )
    pts = corners @ theta_k.double().cpu().T  # [4, 2] image NC
    px = (pts + 1) * res / 2 - 0.5  # pixel coordinates
    x0 = max(0, math.floor(px[:, 0].min().item()) - 2)
    x1 = min(res, math.ceil(px[:, 0].max().item()) + 3)
    y0 = max(0, math.floor(px[:, 1].min().item()) - 2)
    y1 = min(res, math.ceil(px[:, 1].max().item()) + 3)
    return y0, y1, x0, x1


def merge_parts(
    part_normals: dict[str, torch.Tensor],
    weights: list[torch.Tensor],
    theta: torch.Tensor,
    inv_theta: torch.Tensor,
    geometry: PartGeometry,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-warp the part outputs into the image and blend them (facts sheet §3.6 steps 4-5).

    Args:
        part_normals: ``{net: [B * n, C, h, w]}`` part outputs (as from the part nets).
        weights: 12 blurred blend windows [B, 1, h_k, w_k] from :func:`blend_windows`.
        theta: [B, 12, 2, 3] canvas -> image (used only to bound each part's footprint).
        inv_theta: [B, 12, 2, 3] image -> canvas (the authors' ``inv_z``), used for the warp.
    Returns:
        merged: [B, C, res, res] blended normals, 0 outside every part window.
        occupancy: [B, res, res] sum of the normalised weights (1 inside the union, 0 outside).
    """
    res = geometry.res
    B = theta.shape[0]
    C = next(iter(part_normals.values())).shape[1]
    dtype, device = inv_theta.dtype, inv_theta.device
    merged = torch.zeros(B, C, res, res, dtype=dtype, device=device)
    total = torch.zeros(B, res, res, dtype=dtype, device=device)
    lin = _nc_linspace(res, device).to(dtype)
    sizes = geometry.part_sizes()
    per_part = []  # (part index, [B, C, h, w] outputs of that part)
    for name, parts, _ in PART_NETS:
        out = part_normals[name]
        out = out.view(B, len(parts), C, *out.shape[-2:])  # sample-major stacking
        per_part.extend((k, out[:, j]) for j, k in enumerate(parts))
    for b in range(B):
        for k, outputs in per_part:
            h, w = sizes[k]
            crop = outputs[b]  # [C, h, w]
            y0, y1, x0, x1 = _footprint(theta[b, k], h, w, res)
            if y0 >= y1 or x0 >= x1:
                continue
            pts = _grid_points(lin[x0:x1], lin[y0:y1], inv_theta[b : b + 1, k])[0]  # [P, 2]
            # grid_sample's unnormalisation for align_corners=False, shifted into the crop frame
            # (an exact float subtraction of an integer offset).
            ix = (pts[:, 0] + 1) * (res / 2) - 0.5 - (res // 2 - w // 2)
            iy = (pts[:, 1] + 1) * (res / 2) - 0.5 - (res // 2 - h // 2)
            wgt = _bilinear_sample(weights[k][b], ix, iy)  # [1, P]
            val = _bilinear_sample(crop, ix, iy)  # [C, P]
            hh, ww = y1 - y0, x1 - x0
            total[b, y0:y1, x0:x1] += wgt.view(hh, ww)
            merged[b, :, y0:y1, x0:x1] += (val * wgt).view(C, hh, ww)
    covered = total > 0
    merged /= torch.where(covered, total, 1)[:, None]  # uncovered pixels stay 0 / 1 = 0
    return merged, covered.to(dtype)
