"""Depth maps -> coloured point clouds, side filling and binary PLY (facts §7.3).

Points are in the normalised mesh world frame of :mod:`utils.camera` (camera at ``(0, 0, 1)``,
+Y up, +Z toward the camera): a pixel with depth ``D`` > 0 gives the point at range
``d(D)`` along its pixel ray, exactly where the renderer's ray hit the surface. Deviations from the
authors' ``pers2pc`` (facts §8 item 28): an explicit pinhole back-projection instead of trimesh's
scene camera; the float depth instead of the truncated PNG values; no ``z > 0.3`` filter (every
depth >= 0 lies at z <= 0.56, so it never fired); their final division by 1.0367394227574303 is
optional (``scale``), since our keypoints and renders share one unscaled camera (§8 item 4).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from utils.camera import CAMERA_Z, backproject, depth_units_to_range, pixel_rays
from utils.fileio import atomic_write_bytes

AUTHORS_PLY_SCALE = 1.0367394227574303
"""The authors divide every exported coordinate by this (facts §7.3); pass it as ``scale``."""
SIDE_FILL_COLOR = 128
"""Grey level of the side-filling points (the authors')."""
BACK_COLORS = ("front", "dark", "grey")
"""Colours of back points: the front pixel's (authors), that colour darkened, or grey."""
DARK_FACTOR = 0.6
CAMERA = np.array([0.0, 0.0, CAMERA_Z])

_KERNEL = np.ones((3, 3), dtype=np.uint8)
_PLY_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    + [("alpha", "u1")]
)


def depth_points(
    depth: np.ndarray, rays: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """World points of a depth map in D units (:func:`utils.camera.backproject` of its range).

    Args:
        depth: [H, W] depth in D units (H = W), 0 = background.
        rays: optional [H, W, 3] ``utils.camera.pixel_rays(H)``, to reuse them across maps.
    Returns:
        points [N, 3] float64 of the N pixels with depth > 0 (row-major), and that [H, W] mask.
    """
    range_map = depth_units_to_range(np.where(depth > 0, depth, 0.0))
    if rays is None:
        return backproject(range_map)
    mask = range_map > 0
    return CAMERA + rays[mask] * range_map[mask][:, None], mask


def side_fill_layers(front: np.ndarray, back: np.ndarray) -> list[np.ndarray]:
    """The authors' seven side-filling depth layers between the front and back sheets.

    The back is kept inside the front eroded 3 times (3x3 ones), then dilated 1, 2, 3 times
    (``B1..B3``, grey-level max); ``F4`` = front eroded 4 times. On the rings ``R1 = B1 \\ B``,
    ``R2 = B2 \\ B1``, ``R3 = B3 \\ B2`` and ``R0 = B \\ F4`` the layers are ``(5F + B1)/6``,
    ``(4.5F + 1.5B1)/6``, ``(3F + 2B2)/5``, ``(2.5F + 2.5B2)/5``, ``(F + 3B3)/4``,
    ``(0.5F + 3.5B3)/4`` and ``(6.5F + 0.5B)/7`` (facts §7.3; linear, so D units work as well as
    PNG units).

    Args:
        front, back: [H, W] depth in D units, 0 = background.
    Returns:
        seven [H, W] float32 layers, each 0 outside its ring.
    """
    f = np.asarray(front, dtype=np.float32)
    b = np.where(cv2.erode(f, _KERNEL, iterations=3) > 0, back, 0).astype(np.float32)
    b1, b2, b3 = (cv2.dilate(b, _KERNEL, iterations=n) for n in (1, 2, 3))
    f4 = cv2.erode(f, _KERNEL, iterations=4) > 0
    r0 = (b > 0) & ~f4
    r1 = (b1 > 0) & ~(b > 0)
    r2 = (b2 > 0) & ~(b1 > 0)
    r3 = (b3 > 0) & ~(b2 > 0)
    # (ring, front weight, back map, back weight, denominator)
    recipe = (
        (r1, 5.0, b1, 1.0, 6.0),
        (r1, 4.5, b1, 1.5, 6.0),
        (r2, 3.0, b2, 2.0, 5.0),
        (r2, 2.5, b2, 2.5, 5.0),
        (r3, 1.0, b3, 3.0, 4.0),
        (r3, 0.5, b3, 3.5, 4.0),
        (r0, 6.5, b, 0.5, 7.0),
    )
    layers = []
    for ring, wf, bk, wb, denom in recipe:
        layer = np.zeros_like(f)
        layer[ring] = (wf * f[ring] + wb * bk[ring]) / denom
        layers.append(layer)
    return layers


def colored_point_cloud(
    front: np.ndarray,
    back: np.ndarray,
    image: np.ndarray,
    side_fill: bool = False,
    back_color: str = "front",
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Front + back points (+ the seven side-filling layers) with colours.

    Args:
        front, back: [H, W] post-processed depth in D units (0 = no point).
        image: [H, W, 3] uint8 RGB of the same frame (front points take their pixel's colour).
        side_fill: append :func:`side_fill_layers`, coloured grey :data:`SIDE_FILL_COLOR`.
        back_color: one of :data:`BACK_COLORS`.
        scale: every coordinate is divided by it (:data:`AUTHORS_PLY_SCALE` for the authors').
    Returns:
        points [N, 3] float32 (front, then back, then the layers) and colours [N, 3] uint8 RGB.
    """
    if back_color not in BACK_COLORS:
        raise ValueError(f"back_color must be one of {BACK_COLORS}, got {back_color!r}")
    if not (front.shape == back.shape == image.shape[:2]):
        raise ValueError(f"shapes differ: {front.shape}, {back.shape}, {image.shape}")
    points, colors = [], []
    rays = pixel_rays(front.shape[0])  # [H, W, 3], shared by every map
    front_points, front_mask = depth_points(front, rays)
    points.append(front_points)
    colors.append(image[front_mask])
    back_points, back_mask = depth_points(back, rays)
    points.append(back_points)
    if back_color == "front":
        colors.append(image[back_mask])
    elif back_color == "dark":
        colors.append((image[back_mask] * DARK_FACTOR).astype(np.uint8))
    else:
        colors.append(np.full((len(back_points), 3), SIDE_FILL_COLOR, dtype=np.uint8))
    if side_fill:
        for layer in side_fill_layers(front, back):
            layer_points, _ = depth_points(layer, rays)
            points.append(layer_points)
            colors.append(np.full((len(layer_points), 3), SIDE_FILL_COLOR, dtype=np.uint8))
    xyz = (np.concatenate(points) / scale).astype(np.float32)  # [N, 3]
    return xyz, np.concatenate(colors).astype(np.uint8)


def encode_ply(points: np.ndarray, colors: np.ndarray) -> bytes:
    """Binary little-endian PLY of a coloured point cloud (x y z float, red green blue alpha
    uchar, alpha 255: the layout of the authors' trimesh export).

    Args:
        points: [N, 3] coordinates.
        colors: [N, 3] uint8 RGB.
    """
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(
            f"points [N, 3] and colors [N, 3] expected, got {points.shape}, {colors.shape}"
        )
    vertices = np.empty(len(points), dtype=_PLY_DTYPE)
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = colors[:, i]
    vertices["alpha"] = 255
    properties = "".join(
        f"property {'float' if name in 'xyz' else 'uchar'} {name}\n" for name in _PLY_DTYPE.names
    )
    header = (
        f"ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n{properties}"
        "end_header\n"
    )
    return header.encode("ascii") + vertices.tobytes()


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> None:
    """Write :func:`encode_ply` atomically."""
    atomic_write_bytes(path, encode_ply(points, colors))
