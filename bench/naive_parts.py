"""Naive full-canvas part cropping and merging, written the authors' way (facts sheet §3.4-3.6).

Reference for :mod:`models.parts` in the tests, baseline of ``bench.bench_parts`` and the part
handling of the ``authors`` configuration of ``bench.bench_inference``. The structure and tensor
lifetimes follow the authors' ``Part_2048`` / ``Model_2K2K`` / ``Refine_2048`` code, so time and
memory are theirs (GBs at 2048):

* the image is copied once per part and all 12 parts are warped into ``res x res`` canvases in one
  ``grid_sample``; the crops are views of those canvases (which stay alive as long as a crop does);
* the occupancy (warped ones-map) of all 12 parts likewise, then one shrunken, blurred and
  inverse-warped canvas per part;
* the coarse-normal guide is upsampled to ``res x res`` again for every part net, copied per part
  and warped into full canvases;
* each net's part outputs are zero-padded into full canvases and inverse-warped, the 12 canvases
  stacked ``[B, 12, C, res, res]``, multiplied by the weights and summed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.parts import NUM_PARTS, PART_NETS, PartGeometry, gaussian_kernel2d


def _window(size: int, h: int, w: int) -> tuple[slice, slice]:
    """Rows and columns of the centred ``h x w`` window of a ``size x size`` canvas."""
    c = size // 2
    return slice(c - h // 2, c + h // 2), slice(c - w // 2, c + w // 2)


def _parts_slice(parts: tuple[int, ...]) -> slice:
    """The parts of a net are consecutive part indices."""
    return slice(parts[0], parts[-1] + 1)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``x`` [N, C, H, W] sampled through ``theta`` [N, 2, 3] onto an [N, C, H, W] canvas."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [N, H, W, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def naive_canvases(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The whole ``image`` [B, C, H, W] warped with each of the 12 ``theta`` [B, 12, 2, 3] ->
    [B, 12, C, H, W] (authors' ``Part_2048``: one copy of the image per part, one call)."""
    B, C, H, W = image.shape
    copies = image.unsqueeze(1).expand(-1, NUM_PARTS, -1, -1, -1).reshape(-1, C, H, W)
    return _warp(copies, theta.reshape(-1, 2, 3)).view(B, NUM_PARTS, C, H, W)


def centre_windows(canvases: torch.Tensor, geo: PartGeometry) -> dict[str, torch.Tensor]:
    """Cut each part's centred crop window out of ``canvases`` [B, 12, C, H, W] ->
    ``{net: [B * n_parts, C, h, w]}`` sample-major (views when B = 1, as the authors')."""
    _, _, C, H, W = canvases.shape
    crops = {}
    for (name, parts, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True):
        rows, cols = _window(H, h, w)
        crops[name] = canvases[:, _parts_slice(parts)].reshape(-1, C, H, W)[:, :, rows, cols]
    return crops


def naive_crops(
    image: torch.Tensor, theta: torch.Tensor, geo: PartGeometry
) -> dict[str, torch.Tensor]:
    """Warp the whole image into a canvas per part, then cut the centred windows."""
    return centre_windows(naive_canvases(image, theta), geo)


def naive_guide_crops(
    coarse_normal: torch.Tensor, theta: torch.Tensor, geo: PartGeometry
) -> dict[str, torch.Tensor]:
    """Part-net guide channels from the coarse normals [B, 6, r, r], as the authors compute them:
    for every net, upsample all 6 channels to ``res x res`` (bilinear), keep the front 3, copy them
    per part, warp into full canvases and cut the windows -> ``{net: [B * n_parts, 3, h, w]}``."""
    res = geo.res
    crops = {}
    for (name, parts, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True):
        up = F.interpolate(coarse_normal, size=(res, res), mode="bilinear", align_corners=False)
        front = up[:, :3].unsqueeze(1).expand(-1, len(parts), -1, -1, -1).reshape(-1, 3, res, res)
        del up
        canvas = _warp(front, theta[:, _parts_slice(parts)].reshape(-1, 2, 3))
        rows, cols = _window(res, h, w)
        crops[name] = canvas[:, :, rows, cols]
    return crops


def naive_blend_weights(
    theta: torch.Tensor, inv_theta: torch.Tensor, geo: PartGeometry
) -> torch.Tensor:
    """Normalised blend weights [B, 12, res, res] of the parts in the image frame: warped
    ones-maps of all parts, each kept on its shrunken window in a zero canvas, blurred (reflect
    padding), inverse-warped and divided by their sum where it is positive."""
    B, res = theta.shape[0], geo.res
    r, m = geo.blur_radius, geo.margin
    kernel = gaussian_kernel2d(r, geo.blur_sigma)[None, None]
    ones = torch.ones(B * NUM_PARTS, 1, res, res)
    occupancy = _warp(ones, theta.reshape(-1, 2, 3)).view(B, NUM_PARTS, 1, res, res)
    del ones
    per_net = []
    for (_, parts, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True):
        occ = occupancy[:, _parts_slice(parts)].reshape(-1, 1, res, res)
        rows, cols = _window(res, h - 2 * m, w - 2 * m)
        inner = torch.zeros_like(occ)
        inner[:, :, rows, cols] = occ[:, :, rows, cols]
        blurred = F.conv2d(F.pad(inner, (r, r, r, r), mode="reflect"), kernel)
        del inner
        warped = _warp(blurred, inv_theta[:, _parts_slice(parts)].reshape(-1, 2, 3))
        per_net.append(warped.view(B, len(parts), res, res))
    del occupancy
    weights = torch.cat(per_net, dim=1)  # [B, 12, res, res]
    total = weights.sum(dim=1, keepdim=True)
    total[total == 0] = 1
    return weights / total


def warp_part_outputs(
    part_normals: dict[str, torch.Tensor], inv_theta: torch.Tensor, res: int
) -> list[torch.Tensor]:
    """Each net's outputs [B * n, C, h, w] zero-padded into centred ``res x res`` canvases and
    inverse-warped into the image frame -> one [B, n, C, res, res] per net."""
    B = inv_theta.shape[0]
    warped = []
    for name, parts, _ in PART_NETS:
        out = part_normals[name]
        C, h, w = out.shape[1:]
        canvas = F.pad(out, ((res - w) // 2, (res - w) // 2, (res - h) // 2, (res - h) // 2))
        canvas = _warp(canvas, inv_theta[:, _parts_slice(parts)].reshape(-1, 2, 3))
        warped.append(canvas.view(B, len(parts), C, res, res))
    return warped


def blend(warped: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Stack the 12 warped part canvases, weight them and sum over parts -> [B, C, res, res]."""
    stacked = torch.cat(warped, dim=1)  # [B, 12, C, res, res]
    stacked = stacked * weights.unsqueeze(2).expand(-1, -1, stacked.shape[2], -1, -1)
    return stacked.sum(dim=1)


def naive_merge(
    part_normals: dict[str, torch.Tensor],
    theta: torch.Tensor,
    inv_theta: torch.Tensor,
    geo: PartGeometry,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merged normals [B, C, res, res] and occupancy (sum of the weights) [B, res, res]."""
    weights = naive_blend_weights(theta, inv_theta, geo)
    merged = blend(warp_part_outputs(part_normals, inv_theta, geo.res), weights)
    return merged, weights.sum(dim=1)
