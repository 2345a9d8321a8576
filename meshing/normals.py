"""Oriented normals for the front/back point clouds of the render camera (facts sheet §7.3, §7.4).

Screened Poisson needs every point's normal to point out of the body. The authors estimate
normals with MeshLab (PCA of k = 70 neighbours), orient them by propagation over a spanning tree,
and fix a globally inverted result after reconstruction. Our clouds come from front and back range
maps of a known camera (``utils.camera``), so the orientation is known:

* :func:`depth_map_normals`: normals straight from a range map by finite differences on the pixel
  grid (central where the surface is continuous, one-sided at depth discontinuities), front
  normals facing the camera and back normals facing away. No neighbour search.
* :func:`cloud_depth_normals`: the same for a cloud that was back-projected from such maps (the
  Predictor's PLYs, which carry no normals): :func:`pixel_lattice` finds the map resolution from
  the points themselves (they lie on pixel-centre rays), the front and back maps are rebuilt
  (nearest and farthest point per pixel) and differentiated. About 1.5 s at 2048².
* :func:`orient_normals_camera`, for other clouds, after :func:`estimate_normals` (PCA): the cloud
  gives, per bucket of camera rays, the nearest and farthest point, i.e. the interval the body
  fills along those rays. A normal is outward when a short step along it leaves that volume and a
  step against it enters; when the test cannot tell (thin parts), front-sheet points face the
  camera and back-sheet points face away. Side-filling points between the sheets are oriented by
  the volume test too.
* :func:`orient_normals_tangent_plane`: the authors' (MeshLab's) propagation, for comparison
  (minutes at 2048²).
"""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree

from utils.camera import CAMERA_Z, FOV_DEG, focal_length, pixel_rays

CARVE_STEP = 1.5
"""Length of the inside/outside test step, in ray buckets at the point's range."""
CONTINUITY_RATIO = 3.0
"""Neighbouring steps longer than this many times the other side's are a depth discontinuity."""


def _edge_aware_difference(points: np.ndarray, axis: int) -> np.ndarray:
    """Per-pixel tangent along ``axis``: the central difference where both neighbours continue
    the surface (steps within :data:`CONTINUITY_RATIO` of each other), else the shorter one-sided
    difference, so no tangent is taken across a depth discontinuity.

    Args:
        points: [H, W, 3] camera-frame points, NaN = background.
    Returns:
        [H, W, 3] differences, NaN where neither neighbour exists.
    """
    step = np.diff(points, axis=axis)  # [H, W-1, 3] or [H-1, W, 3]
    pad = [(0, 0)] * 3
    pad[axis] = (0, 1)
    forward = np.pad(step, pad, constant_values=np.nan)
    pad[axis] = (1, 0)
    backward = np.pad(step, pad, constant_values=np.nan)
    len_f = np.nan_to_num(np.einsum("...i,...i->...", forward, forward), nan=np.inf)
    len_b = np.nan_to_num(np.einsum("...i,...i->...", backward, backward), nan=np.inf)
    one_sided = np.where((len_f <= len_b)[..., None], forward, backward)
    both = np.maximum(len_f, len_b) <= CONTINUITY_RATIO**2 * np.minimum(len_f, len_b)
    return np.where(both[..., None], forward + backward, one_sided)


def depth_map_normals(range_map: np.ndarray, back: bool = False) -> np.ndarray:
    """Outward unit normals of the surface seen in a perspective range map.

    The tangents are edge-aware finite differences of the back-projected pixel grid (central
    where the surface is continuous, one-sided at depth discontinuities); a pixel with
    no foreground neighbour along a row or column gets the viewing direction. Front normals are
    turned to face the camera (``n . ray < 0``), back normals to face away.

    Args:
        range_map: [H, W] range (``utils.camera`` convention, H = W = res), 0 = background.
        back: the map is a back (farthest hit) map.
    Returns:
        [N, 3] float64 unit normals of the N foreground pixels in row-major order, the order of
        ``utils.camera.backproject(range_map)``.
    """
    h, w = range_map.shape
    if h != w:
        raise ValueError(f"range map must be square, got {h}x{w}")
    mask = range_map > 0
    if not mask.any():
        return np.zeros((0, 3))
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    window = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # foreground bounding box
    rays = pixel_rays(h)[window]  # [h', w', 3]
    crop = mask[window]
    points = np.where(crop[..., None], rays * range_map[window][..., None], np.nan)  # [h', w', 3]
    normals = np.cross(_edge_aware_difference(points, 1), _edge_aware_difference(points, 0))
    normals = normals[crop]  # [N, 3]
    rays = rays[crop]
    length = np.linalg.norm(normals, axis=1)
    bad = ~(length > 0)  # NaN (isolated pixel) or degenerate
    normals[bad] = -rays[bad]
    normals[~bad] /= length[~bad, None]
    facing = np.einsum("ij,ij->i", normals, rays)
    wrong = facing < 0 if back else facing > 0
    normals[wrong] *= -1
    return normals


def pixel_lattice(
    points: np.ndarray, camera_z: float = CAMERA_Z, sample: int = 2000, tol: float = 0.02
) -> int | None:
    """The resolution of the range maps a cloud was back-projected from, if it was.

    A point back-projected from pixel ``(i, j)`` of a ``res`` x ``res`` map projects to
    ``(j + 0.5, i + 0.5)`` exactly (float32 storage moves it by < 0.001 px at 2048). The smallest
    ``res`` near the estimate of :func:`ray_grid_resolution` that puts 99 % of a sample of points
    within ``tol`` pixels of pixel centres is returned (odd multiples of it align too).

    Args:
        points: [N, 3] positions, camera at ``(0, 0, camera_z)``.
    Returns:
        The map side in pixels, or None when the points do not lie on pixel rays.
    """
    points = np.asarray(points, np.float64) / camera_z
    rng = np.random.default_rng(0)
    p = points[rng.choice(len(points), min(sample, len(points)), replace=False)]
    depth = 1.0 - p[:, 2]
    if not (depth > 0).all():
        return None
    width = 2.0 * math.tan(math.radians(FOV_DEG / 2.0))  # image width at unit depth
    t = np.stack((p[:, 0] / depth / width + 0.5, 0.5 - p[:, 1] / depth / width))  # [2, n] in [0, 1]
    estimate = 2 * ray_grid_resolution(points, 1.0)
    for lo in range(max(8, estimate // 2), 4 * estimate + 1, 512):
        res = np.arange(lo, min(lo + 512, 4 * estimate + 1))  # candidates [R]
        frac = np.mod(res[:, None, None] * t[None], 1.0) - 0.5  # [R, 2, n]
        aligned = (np.abs(frac) < tol).all(axis=1).mean(axis=1)  # [R]
        hits = np.flatnonzero(aligned >= 0.99)
        if len(hits):
            return int(res[hits[0]])
    return None


def cloud_depth_normals(
    points: np.ndarray, res: int, camera_z: float = CAMERA_Z
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`depth_map_normals` for a cloud back-projected from a front and a back range map.

    The maps are rebuilt from the cloud (nearest and farthest point per pixel of the ``res``
    lattice, see :func:`pixel_lattice`); points on neither sheet (side-filling layers) get none.

    Args:
        points: [N, 3] positions, camera at ``(0, 0, camera_z)``.
        res: the lattice resolution.
    Returns:
        normals [N, 3] (zero where not on a sheet) and the [N] bool mask of points on a sheet.
    """
    p = np.asarray(points, np.float64) / camera_z
    rel = p - np.array([0.0, 0.0, 1.0])
    f = focal_length(res)
    col = np.clip(np.floor(f * rel[:, 0] / -rel[:, 2] + res / 2), 0, res - 1).astype(np.int64)
    row = np.clip(np.floor(-f * rel[:, 1] / -rel[:, 2] + res / 2), 0, res - 1).astype(np.int64)
    pixel = row * res + col
    rng = np.linalg.norm(rel, axis=1)
    front = np.full(res * res, np.inf)
    back = np.zeros(res * res)
    np.minimum.at(front, pixel, rng)
    np.maximum.at(back, pixel, rng)
    front[~np.isfinite(front)] = 0.0
    normals = np.zeros_like(p)
    on_sheet = np.zeros(len(p), dtype=bool)
    # The back sheet first: where a ray has one hit its point faces the camera (front wins).
    for sheet, is_back in ((back, True), (front, False)):
        index = np.full(res * res, -1)
        hit = sheet > 0
        index[hit] = np.arange(hit.sum())
        sheet_normals = depth_map_normals(sheet.reshape(res, res), back=is_back)
        mine = rng == sheet[pixel]
        normals[mine] = sheet_normals[index[pixel[mine]]]
        on_sheet |= mine
    return normals, on_sheet


def estimate_normals(points: np.ndarray, neighbors: int = 30) -> np.ndarray:
    """Unoriented unit normals by PCA of the ``neighbors`` nearest points (Open3D).

    Args:
        points: [N, 3] positions.
        neighbors: neighbourhood size (MeshLab's / the authors' setting is 70).
    Returns:
        [N, 3] float64 unit normals with an arbitrary sign per point.
    """
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(neighbors))
    return np.asarray(pcd.normals)


def ray_grid_resolution(points: np.ndarray, camera_z: float = CAMERA_Z, sample: int = 4000) -> int:
    """Side of a camera grid whose buckets are about two point spacings wide.

    The median nearest-neighbour distance over a sample of points, divided by the range, is the
    angular spacing of the cloud (one pixel of the map it came from); buckets twice as wide leave
    no empty bucket inside the silhouette.

    Args:
        points: [N, 3] positions, camera at ``(0, 0, camera_z)``.
    Returns:
        Grid side in pixels, between 32 and 4096.
    """
    rng = np.random.default_rng(0)
    idx = rng.choice(len(points), min(sample, len(points)), replace=False)
    dist, _ = cKDTree(points).query(points[idx], k=2)
    ranges = np.linalg.norm(points[idx] - np.array([0.0, 0.0, camera_z]), axis=1)
    angle = float(np.median(dist[:, 1] / ranges))  # radians per pixel of the source map
    if not angle > 0:
        return 4096
    res = 2.0 * math.tan(math.radians(FOV_DEG / 2.0)) / (2.0 * angle)  # buckets of two spacings
    return int(np.clip(round(res), 32, 4096))


class _RayBuckets:
    """Nearest and farthest range of the cloud per bucket of a ``res`` x ``res`` camera grid."""

    def __init__(self, points: np.ndarray, res: int) -> None:
        self.res = res
        self.f = focal_length(res)
        index, rng = self.locate(points)
        inside = index >= 0
        self.near = np.full(res * res, np.inf)
        self.far = np.full(res * res, -np.inf)
        np.minimum.at(self.near, index[inside], rng[inside])
        np.maximum.at(self.far, index[inside], rng[inside])

    def locate(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bucket index ([N], -1 = outside the image or behind the camera) and range [N]."""
        rel = points - np.array([0.0, 0.0, 1.0])  # camera frame, looking down -Z
        depth = -rel[:, 2]
        ok = depth > 1e-9
        safe = np.where(ok, depth, 1.0)
        col = np.floor(self.f * rel[:, 0] / safe + self.res / 2).astype(np.int64)
        row = np.floor(-self.f * rel[:, 1] / safe + self.res / 2).astype(np.int64)
        ok &= (col >= 0) & (col < self.res) & (row >= 0) & (row < self.res)
        return np.where(ok, row * self.res + col, -1), np.linalg.norm(rel, axis=1)

    def inside(self, points: np.ndarray) -> np.ndarray:
        """[N] bool: strictly between the nearest and farthest point of its bucket."""
        index, rng = self.locate(points)
        safe = np.maximum(index, 0)
        return (index >= 0) & (rng > self.near[safe]) & (rng < self.far[safe])


def orient_normals_camera(
    points: np.ndarray,
    normals: np.ndarray,
    camera_z: float = CAMERA_Z,
    grid_res: int | None = None,
) -> np.ndarray:
    """Turn unoriented normals of a front/back cloud outward, using the known camera.

    Args:
        points: [N, 3] positions; the camera is at ``(0, 0, camera_z)`` looking down -Z with the
            50° field of view of ``utils.camera`` (``camera_z = 1`` for clouds in the world frame,
            ``1 / 1.0367394`` for the authors' scaled clouds).
        normals: [N, 3] unit normals, any sign.
        grid_res: side of the ray-bucket grid (default :func:`ray_grid_resolution`).
    Returns:
        [N, 3] normals, each negated where it pointed into the body.
    """
    points = np.asarray(points, np.float64) / camera_z  # the camera to (0, 0, 1)
    normals = np.asarray(normals, np.float64).copy()
    res = grid_res or ray_grid_resolution(points, 1.0)
    buckets = _RayBuckets(points, res)
    index, rng = buckets.locate(points)
    step = (CARVE_STEP * rng / buckets.f)[:, None] * normals  # [N, 3]
    vote = buckets.inside(points - step).astype(np.int8) - buckets.inside(points + step)
    # Undecided (thin parts, grazing sheets): the front sheet faces the camera, the back sheet not.
    safe = np.maximum(index, 0)
    front = rng - buckets.near[safe] <= buckets.far[safe] - rng
    rays = points - np.array([0.0, 0.0, 1.0])
    toward = np.einsum("ij,ij->i", normals, rays) < 0
    outward = np.where(vote != 0, vote > 0, toward == front)
    normals[~outward] *= -1
    return normals


def orient_normals_tangent_plane(
    points: np.ndarray, normals: np.ndarray, neighbors: int = 70
) -> np.ndarray:
    """The authors' orientation: propagate a consistent sign over a minimum spanning tree of the
    ``neighbors``-nearest-neighbour graph (Hoppe et al.; MeshLab's point-set normals, Open3D's
    ``orient_normals_consistent_tangent_plane``). The global sign is arbitrary: fix it after the
    reconstruction (:func:`meshing.poisson.fix_orientation`).

    Args:
        points: [N, 3] positions.
        normals: [N, 3] unit normals, any sign.
    Returns:
        [N, 3] consistently signed normals.
    """
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    pcd.normals = o3d.utility.Vector3dVector(np.asarray(normals, np.float64))
    pcd.orient_normals_consistent_tangent_plane(neighbors)
    return np.asarray(pcd.normals)
