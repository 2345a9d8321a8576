"""Normals for pictures (``utils.visualize.viewer_normals``) against an analytic sphere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.losses import get_normal
from utils.camera import CAMERA_Z, pixel_rays, png_to_depth_units, range_to_png
from utils.visualize import normal_rgb8, viewer_normals

RES = 256
CENTER = np.array([0.08, -0.05, 0.0])  # off the optical axis: both signs of x and y occur
RADIUS = 0.3


def sphere_maps() -> tuple[np.ndarray, ...]:
    """Front/back depth (D units) of the sphere seen by the render camera, and the outward unit
    normals of the front and back hits in the camera frame ([res, res, 3], 0 off the sphere)."""
    rays = pixel_rays(RES)  # [res, res, 3]
    origin = np.array([0.0, 0.0, CAMERA_Z])
    oc = origin - CENTER
    b = np.einsum("...i,i->...", rays, oc)
    disc = b * b - (oc @ oc - RADIUS**2)
    hit = disc > 0
    root = np.sqrt(np.where(hit, disc, 0))
    near, far = np.where(hit, -b - root, 0), np.where(hit, -b + root, 0)
    normals = [
        np.where(hit[..., None], (origin + rays * t[..., None] - CENTER) / RADIUS, 0)
        for t in (near, far)
    ]
    depth = [png_to_depth_units(range_to_png(t)) for t in (near, far)]
    return depth[0], depth[1], normals[0], normals[1]


def test_sphere_normals_are_shown_as_each_viewer_sees_them():
    """Front map: camera-frame outward normals; back map: seen from behind (x and z negated).
    Both show the sphere's facing surface blue; signs of x and y agree with the true normals."""
    front, back, n_front, n_back = sphere_maps()
    behind = n_back * np.array([-1.0, 1.0, -1.0])  # the back viewer's frame
    for depth, truth, side in ((front, n_front, "front"), (back, behind, "back")):
        encoded = get_normal(torch.from_numpy(depth)[None, None].double())[0]
        shown = viewer_normals(encoded, side).numpy().transpose(1, 2, 0) * 2 - 1  # [H, W, 3]
        inner = np.linalg.norm(truth[..., :2], axis=-1) < 0.9  # off the silhouette ring
        inner &= depth > 0
        for c in (0, 1):
            strong = inner & (np.abs(truth[..., c]) > 0.2)
            agree = np.sign(shown[..., c][strong]) == np.sign(truth[..., c][strong])
            assert agree.mean() > 0.99, (side, c, agree.mean())
        assert (shown[..., 2][inner] > 0).all(), side  # facing the viewer: blue in both maps
        assert (shown[depth == 0] == -1).all()  # background stays 0 (decodes to -1)


def test_viewer_normals_flips_and_background():
    enc = torch.tensor([0.2, 0.7, 0.9]).view(3, 1, 1).expand(3, 2, 2).clone()
    enc[:, 0, 0] = 0
    front, back = viewer_normals(enc, "front"), viewer_normals(enc, "back")
    assert torch.allclose(front[:, 1, 1], torch.tensor([0.8, 0.7, 0.9]))
    assert torch.allclose(back[:, 1, 1], torch.tensor([0.8, 0.3, 0.9]))
    assert torch.all(front[:, 0, 0] == 0) and torch.all(back[:, 0, 0] == 0)
    assert normal_rgb8(enc, "back", 8).shape == (8, 8, 3)
    with pytest.raises(ValueError, match="side"):
        viewer_normals(enc, "left")
