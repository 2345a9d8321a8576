"""models/parts.py against the authors' full-canvas way (bench/naive_parts.py): crop grids, crops,
blend windows and the merge, for the case_syn θ and random similarity / affine matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import syn_theta_batch

from bench.naive_parts import naive_crops, naive_merge
from models.parts import (
    NUM_PARTS,
    PART_NETS,
    PartGeometry,
    blend_windows,
    crop_grids,
    gaussian_kernel2d,
    merge_parts,
    sample_part_crops,
)
from utils.keypoints import invert_affine

AUTHORS_CROPS = ((368, 320), (528, 336), (352, 224), (272, 256), (176, 128))
RESOLUTIONS = [256, 512]


def random_theta(batch: int, seed: int, spread: float = 1.2) -> torch.Tensor:
    """Random canvas->image similarities: rotation, scale 0.6-3, centre anywhere in
    [-spread, spread]^2 (so with spread > 1 some parts lie partly or wholly outside the image)."""
    g = np.random.default_rng(seed)
    theta = np.zeros((batch, NUM_PARTS, 2, 3), dtype=np.float32)
    a = g.uniform(-math.pi, math.pi, (batch, NUM_PARTS))
    s = g.uniform(0.6, 3.0, (batch, NUM_PARTS))
    theta[..., 0, 0] = s * np.cos(a)
    theta[..., 0, 1] = -s * np.sin(a)
    theta[..., 1, 0] = s * np.sin(a)
    theta[..., 1, 1] = s * np.cos(a)
    theta[..., :, 2] = g.uniform(-spread, spread, (batch, NUM_PARTS, 2))
    return torch.from_numpy(theta)


def affine_theta(batch: int, seed: int) -> torch.Tensor:
    """General (anisotropic, sheared) affine matrices near the image centre."""
    g = np.random.default_rng(seed)
    m = g.uniform(-1.0, 1.0, (batch, NUM_PARTS, 2, 3)).astype(np.float32)
    m[..., 0, 0] += 1.5 * np.sign(m[..., 0, 0])  # keep the 2x2 block well conditioned
    m[..., 1, 1] += 1.5 * np.sign(m[..., 1, 1])
    m[..., :, 2] *= 0.5
    return torch.from_numpy(m)


THETAS = {
    "syn": lambda: syn_theta_batch(1),
    "syn_b2_shifted": lambda: torch.cat(
        (
            syn_theta_batch(1),
            syn_theta_batch(1) * 1.3 + 0.2 * torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]),
        )
    ),
    "random_inside": lambda: random_theta(1, seed=1, spread=0.6),
    "random_outside": lambda: random_theta(2, seed=2, spread=1.4),
    "affine": lambda: affine_theta(1, seed=3),
}


def random_part_outputs(geo: PartGeometry, batch: int, channels: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return {
        name: torch.rand(batch * len(parts), channels, h, w, generator=g)
        for (name, parts, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True)
    }


# ------------------------------------------------------------------------------------------------
# geometry
# ------------------------------------------------------------------------------------------------


def test_geometry_2048_is_the_authors():
    geo = PartGeometry.for_resolution(2048)
    assert geo.crop_sizes == AUTHORS_CROPS
    assert geo.margin == 8
    assert 2 * geo.blur_radius + 1 == 15
    assert geo.blur_sigma == 5.0
    assert (
        geo.part_sizes()
        == [AUTHORS_CROPS[0], AUTHORS_CROPS[1]]
        + [AUTHORS_CROPS[2]] * 4
        + [AUTHORS_CROPS[3]] * 4
        + [AUTHORS_CROPS[4]] * 2
    )
    # Blend windows (h - 16) x (w - 16): facts sheet §3.6.
    windows = [(h - 2 * geo.margin, w - 2 * geo.margin) for h, w in geo.crop_sizes]
    assert windows == [(352, 304), (512, 320), (336, 208), (256, 240), (160, 112)]


@pytest.mark.parametrize("res", [64, 128, 192, 256, 320, 384, 512, 640, 1024, 1536, 4096])
def test_scaled_geometry(res):
    geo = PartGeometry.for_resolution(res)
    assert geo.res == res
    for (h, w), (h0, w0) in zip(geo.crop_sizes, AUTHORS_CROPS, strict=True):
        assert h % 8 == 0 and w % 8 == 0
        assert 16 <= h <= res and 16 <= w <= res
        # Within one rounding step (8 px) of the proportional size, unless clamped at 16.
        assert abs(h - h0 * res / 2048) <= 4 or h == 16
        assert abs(w - w0 * res / 2048) <= 4 or w == 16
        assert h - 2 * geo.margin > 0 and w - 2 * geo.margin > 0
    assert 1 <= geo.blur_radius < geo.margin
    assert geo.blur_sigma > 0


@pytest.mark.parametrize("res", [0, 100, 2000, -64])
def test_geometry_rejects_bad_resolution(res):
    with pytest.raises(ValueError):
        PartGeometry.for_resolution(res)


@pytest.mark.parametrize("radius, sigma", [(7, 5.0), (1, 0.625), (3, 1.25), (4, 2.5)])
def test_gaussian_kernel(radius, sigma):
    k = gaussian_kernel2d(radius, sigma)
    n = 2 * radius + 1
    assert k.shape == (n, n) and k.dtype == torch.float32
    assert abs(k.double().sum().item() - 1) < 1e-6
    assert torch.equal(k, k.T) and torch.equal(k, k.flip(0)) and torch.equal(k, k.flip(1))
    # README §0: float32 linspace weights exp(-0.5 (t / sigma)^2), normalised, outer product.
    t = torch.linspace(-radius, radius, n, dtype=torch.float32)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    torch.testing.assert_close(k, torch.outer(g, g), atol=1e-9, rtol=0)
    assert k.argmax().item() == (n * n) // 2


# ------------------------------------------------------------------------------------------------
# crops
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("which", list(THETAS))
def test_crop_grids_equal_affine_grid_window(res, which):
    theta = THETAS[which]()
    B = theta.shape[0]
    geo = PartGeometry.for_resolution(res)
    grids = crop_grids(theta, geo)
    assert len(grids) == NUM_PARTS
    c = res // 2
    for k, (h, w) in enumerate(geo.part_sizes()):
        full = F.affine_grid(theta[:, k], [B, 1, res, res], align_corners=False)  # [B, res, res, 2]
        window = full[:, c - h // 2 : c + h // 2, c - w // 2 : c + w // 2].reshape(B, h * w, 2)
        assert grids[k].shape == (B, h * w, 2)
        diff = (grids[k] - window).abs().max()
        assert torch.equal(grids[k], window), f"part {k}: max diff {diff}"


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("which", list(THETAS))
def test_sample_part_crops_equal_naive(res, which):
    theta = THETAS[which]()
    B = theta.shape[0]
    geo = PartGeometry.for_resolution(res)
    image = torch.rand(B, 3, res, res) * 2 - 1
    ours = sample_part_crops(image, crop_grids(theta, geo), geo)
    ref = naive_crops(image, theta, geo)
    assert list(ours) == [name for name, _, _ in PART_NETS]
    for name, parts, _ in PART_NETS:
        assert ours[name].shape == ref[name].shape
        assert ours[name].shape[0] == B * len(parts)
        assert torch.equal(ours[name], ref[name]), (
            f"{name}: max diff {(ours[name] - ref[name]).abs().max()}"
        )


def test_crops_identity_theta_is_centre_window():
    """θ = identity: the crop is the centred window of the image itself (up to the float rounding
    of the pixel-centre coordinates, a few 1e-6 pixel)."""
    res = 256
    geo = PartGeometry.for_resolution(res)
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(1, NUM_PARTS, 2, 3).contiguous()
    image = torch.rand(1, 3, res, res)
    crops = sample_part_crops(image, crop_grids(theta, geo), geo)
    c = res // 2
    for (name, parts, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True):
        window = image[:, :, c - h // 2 : c + h // 2, c - w // 2 : c + w // 2]
        torch.testing.assert_close(
            crops[name], window.expand(len(parts), -1, -1, -1), atol=1e-4, rtol=0
        )


# ------------------------------------------------------------------------------------------------
# blend windows and merge
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("which", ["syn", "random_outside"])
def test_blend_windows_equal_blurred_canvas(res, which):
    """The blurred shrunken window equals the authors' blurred canvas (reflect padding, which never
    matters because the window is centred) cut to the crop."""
    theta = THETAS[which]()
    B = theta.shape[0]
    geo = PartGeometry.for_resolution(res)
    weights = blend_windows(crop_grids(theta, geo), geo)
    r, m, c = geo.blur_radius, geo.margin, res // 2
    kernel = gaussian_kernel2d(r, geo.blur_sigma)[None, None]
    for k, (h, w) in enumerate(geo.part_sizes()):
        grid = F.affine_grid(theta[:, k], [B, 1, res, res], align_corners=False)
        occ = F.grid_sample(torch.ones(B, 1, res, res), grid, align_corners=False)
        inner = torch.zeros_like(occ)
        rows = slice(c - (h - 2 * m) // 2, c + (h - 2 * m) // 2)
        cols = slice(c - (w - 2 * m) // 2, c + (w - 2 * m) // 2)
        inner[:, :, rows, cols] = occ[:, :, rows, cols]
        blurred = F.conv2d(F.pad(inner, (r, r, r, r), mode="reflect"), kernel)
        window = blurred[:, :, c - h // 2 : c + h // 2, c - w // 2 : c + w // 2]
        assert weights[k].shape == (B, 1, h, w)
        torch.testing.assert_close(weights[k], window, atol=1e-6, rtol=0)
        # nothing of the blurred canvas lies outside the crop window
        outside = blurred.clone()
        outside[:, :, c - h // 2 : c + h // 2, c - w // 2 : c + w // 2] = 0
        assert outside.abs().max().item() == 0


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("which", list(THETAS))
def test_merge_parts_equals_naive(res, which):
    theta = THETAS[which]()
    B = theta.shape[0]
    geo = PartGeometry.for_resolution(res)
    inv_theta = invert_affine(theta)
    parts = random_part_outputs(geo, B, 6, seed=res)
    merged, occ = merge_parts(
        parts, blend_windows(crop_grids(theta, geo), geo), theta, inv_theta, geo
    )
    ref_merged, ref_occ = naive_merge(parts, theta, inv_theta, geo)
    assert merged.shape == ref_merged.shape == (B, 6, res, res)
    assert occ.shape == ref_occ.shape == (B, res, res)
    zero, ref_zero = occ == 0, ref_occ == 0
    n_diff = int((zero != ref_zero).sum())
    assert n_diff == 0, f"{n_diff} pixels differ in the exact-zero set of the occupancy"
    occ_err = (occ - ref_occ).abs().max().item()
    err = (merged - ref_merged).abs().max().item()
    assert occ_err <= 1e-6, f"occupancy max error {occ_err:.3e}"
    assert err <= 1e-6, f"merged normals max error {err:.3e}"
    assert torch.all(merged.permute(1, 0, 2, 3)[:, zero] == 0)
    if which != "random_outside":
        assert (~zero).any()


def test_merge_parts_constant_parts_give_constant_normals():
    """All parts output one constant: the merge is that constant on the union, 0 elsewhere."""
    res = 256
    geo = PartGeometry.for_resolution(res)
    theta = syn_theta_batch(1)
    parts = {
        name: torch.full((len(p), 6, h, w), 0.7)
        for (name, p, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True)
    }
    merged, occ = merge_parts(
        parts, blend_windows(crop_grids(theta, geo), geo), theta, invert_affine(theta), geo
    )
    inside = occ[0] > 0
    assert 0.02 < inside.double().mean().item() < 0.9
    # Bilinear sampling of the zero-padded crop fades at the crop border, but the blend weight is
    # zero there (8-pixel margin at 2048, >= blur radius + 1 elsewhere), so no fade is visible.
    torch.testing.assert_close(
        merged[0][:, inside], torch.full_like(merged[0][:, inside], 0.7), atol=1e-5, rtol=0
    )
    assert torch.all(merged[0][:, ~inside] == 0)


def test_merge_parts_far_outside_is_empty():
    """Parts mapped entirely outside the image contribute nothing (and do not fail)."""
    res = 256
    geo = PartGeometry.for_resolution(res)
    theta = random_theta(1, seed=5, spread=0.3)
    theta[:, :, :, 2] += 5.0  # everything far to the bottom right
    parts = random_part_outputs(geo, 1, 6, seed=0)
    merged, occ = merge_parts(
        parts, blend_windows(crop_grids(theta, geo), geo), theta, invert_affine(theta), geo
    )
    assert torch.all(occ == 0) and torch.all(merged == 0)
