"""GT normals of the part crops (``models.losses.part_normal_targets``) against analytic surfaces.

A tilted plane has one normal everywhere, so every part crop (rotated and scaled by its keypoint
similarity) must hold exactly the plane's encoded ``get_normal`` value wherever it samples the
image interior, front in channels 0-2 and back in 3-5. A mirrored image with mirrored keypoints
gives each limb its partner's crop flipped left-right with the x channel negated (no limb is
mirrored by the model, as the authors'). Also the normal heads' ``alive`` initialisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_keypoints import synthetic_body

from models import build_model
from models.losses import NORMAL_C, part_normal_targets
from models.model_2k2k import NORMAL_HEAD_START, NORMAL_NETS
from models.parts import PART_NETS, PartGeometry, crop_grids
from utils.keypoints import KEYPOINT_NAMES, PART_NAMES, part_matrices

RES = 256


def body_keypoints(res: int = RES) -> np.ndarray:
    """The upright test person of ``test_keypoints`` scaled from 2048 to ``res``."""
    kp = synthetic_body()
    kp[:, :2] *= res / 2048
    return kp


def mirror_part(name: str) -> str:
    """The left/right partner of a keypoint or part name (itself for face, upper body ...)."""
    if name.startswith(("l_", "r_")):
        return ("r_" if name[0] == "l" else "l_") + name[2:]
    return name


def mirrored_keypoints(kp: np.ndarray, res: int = RES) -> np.ndarray:
    """Keypoints of the left-right mirrored image: ``u -> res - u`` (NC ``x -> -x``) and the
    person's left and right rows swapped (the mirror image of a left arm is a right arm)."""
    partner = [KEYPOINT_NAMES.index(mirror_part(name)) for name in KEYPOINT_NAMES]
    out = kp[partner].copy()
    out[:, 0] = res - out[:, 0]
    return out


def plane(res: int, offset: float, du: float, dv: float) -> torch.Tensor:
    """[1, 1, res, res] depth ``offset + du * column + dv * row`` (D units)."""
    i, j = torch.meshgrid(torch.arange(res).double(), torch.arange(res).double(), indexing="ij")
    return (offset + du * j + dv * i)[None, None]


def encoded_plane_normal(du: float, dv: float) -> torch.Tensor:
    """``get_normal`` of such a plane, by hand: g_h = -du, g_v = -dv (facts §4.1)."""
    n = math.sqrt(du * du + dv * dv + NORMAL_C * NORMAL_C)
    return torch.tensor(
        [(-du / n + 1) / 2, (-dv / n + 1) / 2, (NORMAL_C / n + 1) / 2], dtype=torch.float64
    )


def split_parts(crops: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{net: [n, C, h, w]}`` of one sample -> ``{part name: [C, h, w]}``."""
    out = {}
    for net, parts, _ in PART_NETS:
        for j, k in enumerate(parts):
            out[PART_NAMES[k]] = crops[net][j]
    return out


def interior(theta: torch.Tensor, geometry: PartGeometry, margin: float = 2.0) -> dict:
    """Per part, [h, w] bool: the crop pixel samples at least ``margin`` pixels inside the image
    and off the first row / last column (where ``get_normal`` is 0 by construction)."""
    out = {}
    sizes = geometry.part_sizes()
    for k, grid in enumerate(crop_grids(theta, geometry)):
        px = (grid[0] + 1) * geometry.res / 2 - 0.5  # [h*w, 2] pixel coordinates
        lo, hi = 1 + margin, geometry.res - 2 - margin
        ok = (px >= lo).all(1) & (px <= hi).all(1)
        out[PART_NAMES[k]] = ok.view(*sizes[k])
    return out


@pytest.mark.parametrize(
    ("front", "back"), [((4e-3, -2e-3), (-3e-3, 1e-3)), ((0.0, 0.0), (1e-2, 5e-3))]
)
def test_part_crops_of_a_tilted_plane_hold_its_normal(front, back):
    """Every part crop of a tilted front plane and another back plane: the plane's analytic
    encoded normal in channels 0-2 / 3-5 on every interior pixel, for left and right limbs
    alike, and 0 where the crop leaves the image."""
    geometry = PartGeometry.for_resolution(RES)
    _, theta = part_matrices(body_keypoints(), RES)
    theta = torch.from_numpy(theta).double()[None]
    crops = split_parts(
        part_normal_targets(plane(RES, 2.0, *front), plane(RES, 1.5, *back), theta, geometry)
    )
    want = torch.cat((encoded_plane_normal(*front), encoded_plane_normal(*back)))
    inside = interior(theta, geometry)
    for name in PART_NAMES:
        crop, ok = crops[name], inside[name]
        assert ok.float().mean() > 0.5, f"{name}: test pose leaves the crop mostly outside"
        err = (crop[:, ok] - want[:, None]).abs().max()
        assert err < 1e-9, f"{name}: crop differs from the plane's normal by {err:.2e}"
    # a camera-facing plane encodes (0.5, 0.5, 1); depth growing to the right lowers x
    assert torch.equal(encoded_plane_normal(0.0, 0.0), torch.tensor([0.5, 0.5, 1.0]).double())
    assert encoded_plane_normal(1e-3, 0.0)[0] < 0.5 and encoded_plane_normal(0.0, 1e-3)[1] < 0.5


def test_mirrored_limb_crops_are_flipped_with_x_negated():
    """A curved, asymmetric surface and its mirror image with mirrored keypoints: each part's
    crop of the mirror equals its partner's crop flipped left-right, x channel ``1 - x``."""
    geometry = PartGeometry.for_resolution(RES)
    i, j = torch.meshgrid(torch.arange(RES).double(), torch.arange(RES).double(), indexing="ij")
    front = 2.0 + 5e-6 * ((j - 90) ** 2 + 0.5 * (i - 150) ** 2) + 1e-3 * j  # [res, res]
    back = 1.2 - 3e-6 * ((j - 160) ** 2 + (i - 100) ** 2) + 5e-4 * i
    kp = body_keypoints()
    depth = (front[None, None], back[None, None])
    mirrored = (front.flip(-1)[None, None], back.flip(-1)[None, None])

    def crops_of(kps: np.ndarray, d: tuple[torch.Tensor, torch.Tensor]) -> dict:
        theta = torch.from_numpy(part_matrices(kps, RES)[1]).double()[None]
        return split_parts(part_normal_targets(*d, theta, geometry)), interior(theta, geometry)

    original, inside = crops_of(kp, depth)
    mirror, _ = crops_of(mirrored_keypoints(kp), mirrored)
    for name in PART_NAMES:
        partner = original[mirror_part(name)]
        expect = partner.flip(-1).clone()
        expect[[0, 3]] = 1 - expect[[0, 3]]  # x of front and back
        ok = inside[mirror_part(name)].flip(-1)
        err = (mirror[name][:, ok] - expect[:, ok]).abs().max()
        # get_normal's forward differences shift by one pixel under a mirror: O(curvature)
        assert err < 5e-3, f"{name}: mirrored crop differs by {err:.2e}"
        # and the crop is not trivially symmetric: the x channel really changes sign
        assert (partner[0, inside[mirror_part(name)]] - 0.5).abs().max() > 0.05, name


def test_alive_normal_heads_start_every_output_at_half_with_gradients():
    """``--normal_head_init alive``: all six normal nets output 0.5 on any input, and every
    output channel of every head receives a gradient (no ReLU starts dead)."""
    torch.manual_seed(0)
    model = build_model(phase=1, res=RES, width=0.125)
    model.init_normal_heads_alive()
    model.train()
    image = torch.rand(1, 3, RES, RES) * 2 - 1
    _, theta = part_matrices(body_keypoints(), RES)
    out = model(image, torch.from_numpy(theta)[None])
    normals = [v for k, v in out.items() if "normal" in k and v is not None]
    assert len(normals) == 12 and all(torch.all(v == NORMAL_HEAD_START) for v in normals)
    sum(((v - 0.8) ** 2).sum() for v in normals).backward()
    for name in NORMAL_NETS:
        grad = getattr(model, f"img2normal_{name}").Conv_1x1.conv[0].bias.grad
        assert grad is not None and torch.all(grad != 0), name
