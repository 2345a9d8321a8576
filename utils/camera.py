"""The render camera and the depth encoding, written once (facts sheet §6.3, §6.6, §6.10).

Conventions used everywhere in this project:

* World frame: the normalised mesh sits at the origin, +Y up, the person faces +Z. The camera
  centre is ``(0, 0, 1)``, looking down -Z with +Y up and no rotation; the person's own left is at
  +X, so it appears on the right of the image.
* Perspective pinhole, vertical = horizontal field of view 50 degrees, square images of side
  ``res``: ``f = res / (2 tan 25deg)`` pixels (2195.975 at 2048), principal point
  ``(res/2, res/2)``.
* Image coordinates ``(u, v)``: u to the right, v down, in pixels; pixel ``(row i, col j)`` covers
  ``[j, j+1) x [i, i+1)``, so its centre is ``(j + 0.5, i + 0.5)``. Row 0 is the top of the image.
* Depth maps store the *range* ``d``: the Euclidean distance from the camera centre along the unit
  ray through the pixel centre (not z-depth). Background is 0.
* Depth PNGs (uint16) and the network's D units are a fixed function of ``d`` at every resolution,
  the authors' 2048 encoding: ``depth_int = (d - 1) * F + 1024`` with ``F = 2195.975``,
  ``PNG = trunc(32 * depth_int)``, ``D = PNG / 32 / 512`` (so ``d = 1`` is ``D = 2``). One PNG
  step is ``1 / (32 F)`` = 1.42e-5 mesh units.
* Orthographic option: rays along -Z from the plane ``z = 1``, ``x, y`` in
  ``[-tan 25deg, tan 25deg]`` with the first and last pixel centres on the interval ends (the
  authors' grid); the range is the distance from that plane and uses the same encoding.
* Scan frame: a raw scan is taken to the normalised frame by a :class:`ScanTransform` (centring,
  scaling, a dataset's facing and size fixes), then a view with yaw ``a`` degrees sees it rotated
  by :func:`view_rotation` (rotation vector ``(0, a - g, 0)``, ``g`` the scan's facing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FOV_DEG = 50.0
CAMERA_Z = 1.0
REFERENCE_RES = 2048
DEPTH_F = REFERENCE_RES / (2.0 * math.tan(math.radians(FOV_DEG / 2.0)))
DEPTH_OFFSET = 1024.0
DEPTH_PNG_SCALE = 32.0
DEPTH_UNIT = 512.0
PNG_STEP = 1.0 / (DEPTH_PNG_SCALE * DEPTH_F)
ORTHO_HALF_EXTENT = math.tan(math.radians(FOV_DEG / 2.0))
MAX_ENCODABLE_RANGE = 1.0 + (65535.0 / DEPTH_PNG_SCALE - DEPTH_OFFSET) / DEPTH_F


def focal_length(res: int) -> float:
    """Focal length in pixels of the ``res`` x ``res`` perspective camera."""
    return res / (2.0 * math.tan(math.radians(FOV_DEG / 2.0)))


def pixel_rays(res: int) -> np.ndarray:
    """Unit ray directions through every pixel centre of the perspective camera.

    Returns:
        [res, res, 3] float64, row 0 = top of the image.
    """
    f = focal_length(res)
    c = (np.arange(res, dtype=np.float64) + 0.5 - res / 2.0) / f
    x = np.broadcast_to(c[None, :], (res, res))
    y = np.broadcast_to(-c[:, None], (res, res))
    d = np.stack((x, y, -np.ones((res, res))), axis=-1)  # [res, res, 3]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def ortho_ray_origins(res: int) -> np.ndarray:
    """Origins of the orthographic rays (direction -Z) on the plane ``z = 1``.

    Returns:
        [res, res, 3] float64, row 0 = top of the image.
    """
    c = np.linspace(-ORTHO_HALF_EXTENT, ORTHO_HALF_EXTENT, res)
    x = np.broadcast_to(c[None, :], (res, res))
    y = np.broadcast_to(-c[:, None], (res, res))
    return np.stack((x, y, np.full((res, res), CAMERA_Z)), axis=-1)  # [res, res, 3]


def project(points: np.ndarray, res: int) -> np.ndarray:
    """Project world points into the perspective image.

    Args:
        points: [N, 3] world coordinates (in front of the camera, z < 1).
        res: image side in pixels.
    Returns:
        [N, 2] continuous pixel coordinates ``(u, v)`` (pixel centres at ``+0.5``).
    """
    points = np.asarray(points, dtype=np.float64)
    f = focal_length(res)
    depth = CAMERA_Z - points[:, 2]  # [N] distance in front of the camera along -Z
    u = f * points[:, 0] / depth + res / 2.0
    v = -f * points[:, 1] / depth + res / 2.0
    return np.stack((u, v), axis=1)  # [N, 2]


def backproject(range_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points of a perspective range map (inverse of ray casting).

    Args:
        range_map: [H, W] range along each pixel's unit ray (H = W = res), 0 = background.
    Returns:
        points [N, 3] float64 for the N foreground pixels in row-major order, and the
        [H, W] bool foreground mask.
    """
    h, w = range_map.shape
    if h != w:
        raise ValueError(f"range map must be square, got {h}x{w}")
    mask = range_map > 0
    rays = pixel_rays(h)[mask]  # [N, 3]
    origin = np.array([0.0, 0.0, CAMERA_Z])
    return origin + rays * range_map[mask][:, None].astype(np.float64), mask


def range_to_png(range_map: np.ndarray) -> np.ndarray:
    """Encode a range map as the authors' 16-bit depth PNG values (background stays 0).

    Args:
        range_map: [H, W] range in mesh units, 0 (or non-finite) = background.
    Returns:
        [H, W] uint16.
    Raises:
        ValueError: a foreground range does not fit the encoding (outside ``(1 - 1024/F, ~1.47)``).
    """
    r = np.asarray(range_map, dtype=np.float64)
    fg = np.isfinite(r) & (r > 0)
    value = np.zeros(r.shape, dtype=np.float64)
    value[fg] = ((r[fg] - 1.0) * DEPTH_F + DEPTH_OFFSET) * DEPTH_PNG_SCALE
    if fg.any() and (value[fg].min() < 1.0 or value[fg].max() >= 65536.0):
        raise ValueError(
            f"range {r[fg].min():.4f}..{r[fg].max():.4f} outside the depth PNG encoding "
            f"(0 < d < {MAX_ENCODABLE_RANGE:.4f})"
        )
    return np.trunc(value).astype(np.uint16)


def png_to_range(png: np.ndarray) -> np.ndarray:
    """Decode 16-bit depth PNG values to ranges in mesh units (0 stays 0 = background)."""
    p = np.asarray(png, dtype=np.float64)
    r = (p / DEPTH_PNG_SCALE - DEPTH_OFFSET) / DEPTH_F + 1.0
    return np.where(p > 0, r, 0.0)


def png_to_depth_units(png: np.ndarray) -> np.ndarray:
    """Depth PNG values to the network's D units (``PNG / 32 / 512``), float32, 0 = background."""
    return (np.asarray(png, dtype=np.float32) / DEPTH_PNG_SCALE) / DEPTH_UNIT


def depth_units_to_range(depth: np.ndarray) -> np.ndarray:
    """D units to ranges in mesh units (``d = (512 D - 1024) / F + 1``); D <= 0 maps to 0."""
    dd = np.asarray(depth, dtype=np.float64)
    return np.where(dd > 0, (DEPTH_UNIT * dd - DEPTH_OFFSET) / DEPTH_F + 1.0, 0.0)


def rotation_y(angle: float) -> np.ndarray:
    """[3, 3] rotation by ``angle`` radians about +Y (rotation vector ``(0, angle, 0)``)."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def view_rotation(yaw_deg: float, facing: float = 0.0) -> np.ndarray:
    """[3, 3] rotation of a normalised mesh for a view: rotation vector ``(0, a - g, 0)`` with the
    view yaw ``a`` (degrees) and the scan's facing ``g`` (radians; THuman2)."""
    return rotation_y(math.radians(yaw_deg) - facing)


@dataclass(frozen=True)
class ScanTransform:
    """The similarity taking raw scan coordinates to the normalised, facing-corrected frame.

    ``x_norm = post_scale * R @ ((x - center) / scale)``; the view yaw is applied afterwards.
    """

    center: np.ndarray  # [3] area-weighted surface centroid of the raw mesh
    scale: float  # 2.8 * largest absolute centred coordinate
    rotation: np.ndarray  # [3, 3] dataset-specific facing fix (identity for most scans)
    post_scale: float  # dataset-specific size fix (1 for most scans)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] raw coordinates -> [N, 3] normalised coordinates."""
        p = (np.asarray(points, dtype=np.float64) - self.center) / self.scale
        return self.post_scale * p @ self.rotation.T
