"""Normal-image error: both meshes seen by the same orthographic cameras, compared pixel by pixel.

Cameras: ``len(yaws)`` orthographic views around the vertical (+Y) axis through the centre of the
ground truth's bounding box (ICON/ECON: yaws 0, 90, 180, 270 degrees, 512 x 512 pixels). View ``a``
sees the mesh rotated by ``a`` about that axis (:func:`utils.camera.rotation_y`, the renderer's view
yaw) from +Z. The square image covers ``2 * half_extent`` (the GT's largest distance from the axis
or from the centre's height, times a margin), so the whole GT is inside every view. Rays are cast
through pixel centres with Open3D's ``RaycastingScene``. Each pixel holds the unit normal of the
first surface hit, in the camera frame (x right, y up, z toward the camera), and zero where nothing
is hit. ``smooth=True`` interpolates area-weighted vertex normals over the hit triangle (ICON
renders interpolated normals), otherwise the face normal is used. Normals are not flipped toward the
camera: an inside-out surface counts as wrong.

Errors (``n_p``, ``n_g`` predicted and GT normals of a pixel):

* ``normal_angle_deg``: mean angle between ``n_p`` and ``n_g`` over the pixels both meshes cover.
* ``normal_l2``: mean ``|n_p - n_g|`` (in [0, 2]) over the pixels both cover.
* ``normal_error_icon``: ICON/ECON's "normal error" (``Evaluator.calculate_normal_consist``):
  mean of ``|n_p - n_g|^2`` over **all** pixels of all views, a missing surface counting as the
  zero normal (so a pixel covered by one mesh only adds 1, background adds 0). It therefore depends
  on the framing: comparable with theirs only at the same framing and resolution. ICON's first
  evaluator compared [0, 1]-encoded normals instead (a quarter of the squared difference where
  both meshes cover a pixel) and summed the four views rather than averaging them.
* ``silhouette_iou``: intersection over union of the covered pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from evaluation.geometry import check_mesh, face_normals
from meshing.poisson import vertex_normals
from utils.camera import rotation_y

ICON_YAWS = (0.0, 90.0, 180.0, 270.0)
"""The four views of ICON/ECON's normal error (front, left, back, right)."""


@dataclass(frozen=True)
class OrthoViews:
    """Orthographic cameras around the vertical axis through ``center``.

    Attributes:
        center: [3] point on the rotation axis, at the image centre of every view.
        half_extent: half side of the square viewed region, in mesh units.
        res: image side in pixels.
        yaws_deg: view yaws in degrees.
    """

    center: np.ndarray
    half_extent: float
    res: int
    yaws_deg: tuple[float, ...] = ICON_YAWS

    @classmethod
    def framing(
        cls,
        vertices: np.ndarray,
        res: int = 512,
        yaws_deg: tuple[float, ...] = ICON_YAWS,
        margin: float = 1.05,
    ) -> OrthoViews:
        """Views that show the whole mesh at every yaw (centre of its bounding box, +Y up).

        Args:
            vertices: [V, 3] the mesh to frame (the ground truth).
        """
        v = np.asarray(vertices, dtype=np.float64)
        center = 0.5 * (v.min(axis=0) + v.max(axis=0))
        radial = np.hypot(v[:, 0] - center[0], v[:, 2] - center[2]).max()
        vertical = np.abs(v[:, 1] - center[1]).max()
        return cls(center, margin * float(max(radial, vertical)), res, tuple(yaws_deg))

    def rays(self, yaw_deg: float, start: float) -> np.ndarray:
        """[res * res, 6] float32 rays (origin, direction) of one view, in the mesh frame
        translated so that ``center`` is the origin.

        Args:
            start: distance from the axis of the plane the rays start on (beyond the mesh).
        """
        c = (np.arange(self.res) + 0.5) / self.res * 2.0 - 1.0  # pixel centres in [-1, 1]
        x = np.broadcast_to(c[None, :] * self.half_extent, (self.res, self.res))
        y = np.broadcast_to(-c[:, None] * self.half_extent, (self.res, self.res))  # row 0 = top
        origins = np.stack((x, y, np.full_like(x, start)), axis=-1).reshape(-1, 3)  # view frame
        r = rotation_y(math.radians(yaw_deg))  # mesh -> view
        rays = np.empty((self.res * self.res, 6), np.float32)
        rays[:, :3] = origins @ r  # R^T x for row vectors
        rays[:, 3:] = np.array([0.0, 0.0, -1.0]) @ r
        return rays


def render_normals(
    vertices: np.ndarray, faces: np.ndarray, views: OrthoViews, smooth: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Normal images of a mesh.

    Args:
        vertices: [V, 3]; faces: [F, 3].
        views: the cameras (:meth:`OrthoViews.framing` of the GT).
        smooth: interpolate vertex normals (else face normals).
    Returns:
        normals [N, res, res, 3] float32 (unit, camera frame, 0 = background) and the
        [N, res, res] bool coverage, for the N = ``len(views.yaws_deg)`` views.
    """
    v, f = check_mesh(vertices, faces)
    # The scene and the rays are centred on the views' axis (float32 precision far from 0).
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(v - views.center, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(f, dtype=np.uint32)),
    )
    start = float(np.linalg.norm(v - views.center, axis=1).max()) + 1.0
    flat = face_normals(v, f)
    smooth_n = vertex_normals(v, f) if smooth else None
    n_views, res = len(views.yaws_deg), views.res
    normals = np.zeros((n_views, res * res, 3), np.float32)
    mask = np.zeros((n_views, res * res), bool)
    for i, yaw in enumerate(views.yaws_deg):
        hit = scene.cast_rays(o3d.core.Tensor(views.rays(yaw, start)))
        mask[i] = np.isfinite(hit["t_hit"].numpy())
        ids = hit["primitive_ids"].numpy()[mask[i]].astype(np.int64)
        n = flat[ids]  # [M, 3]
        if smooth_n is not None:
            uv = hit["primitive_uvs"].numpy()[mask[i]].astype(np.float64)  # Embree (u, v)
            w = np.stack((1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]), axis=1)  # [M, 3]
            interp = np.einsum("mk,mkc->mc", w, smooth_n[f[ids]])  # [M, 3]
            length = np.linalg.norm(interp, axis=1, keepdims=True)
            n = np.where(length > 1e-8, interp / np.maximum(length, 1e-12), n)
        normals[i, mask[i]] = n @ rotation_y(math.radians(yaw)).T  # into the view frame
    return normals.reshape(n_views, res, res, 3), mask.reshape(n_views, res, res)


def compare_normal_images(
    pred_normals: np.ndarray, pred_mask: np.ndarray, gt_normals: np.ndarray, gt_mask: np.ndarray
) -> dict[str, float]:
    """Errors between normal images of the same views (module docstring).

    Args:
        pred_normals, gt_normals: [N, H, W, 3] unit normals, 0 = background.
        pred_mask, gt_mask: [N, H, W] bool coverage.
    Returns:
        ``normal_angle_deg``, ``normal_l2`` (NaN when no pixel is covered by both),
        ``normal_error_icon``, ``silhouette_iou``.
    """
    if pred_normals.shape != gt_normals.shape or pred_mask.shape != gt_mask.shape:
        raise ValueError(
            f"normal images differ in shape: {pred_normals.shape} vs {gt_normals.shape}"
        )
    both = pred_mask & gt_mask
    union = pred_mask | gt_mask
    p = np.where(pred_mask[..., None], pred_normals, 0.0).astype(np.float64)
    g = np.where(gt_mask[..., None], gt_normals, 0.0).astype(np.float64)
    sq = np.sum((p - g) ** 2, axis=-1)  # [N, H, W]
    cos = np.clip(np.sum(p * g, axis=-1)[both], -1.0, 1.0)
    covered = bool(both.any())
    return {
        "normal_angle_deg": float(np.degrees(np.arccos(cos)).mean()) if covered else math.nan,
        "normal_l2": float(np.sqrt(sq[both]).mean()) if covered else math.nan,
        "normal_error_icon": float(sq.mean()),
        "silhouette_iou": float(both.sum() / union.sum()) if union.any() else math.nan,
    }


def normal_images(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    res: int = 512,
    yaws_deg: tuple[float, ...] = ICON_YAWS,
    smooth: bool = True,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Normal images of a prediction and its GT, framed on the GT, and their errors.

    Args:
        pred_vertices: [V, 3], pred_faces: [F, 3]; gt_vertices: [V', 3], gt_faces: [F', 3],
            in the same frame (+Y up).
        res: image side in pixels; yaws_deg: view yaws in degrees.
        smooth: interpolated vertex normals (else face normals).
    Returns:
        :func:`compare_normal_images`' errors and the predicted and GT normal images
        [N, res, res, 3] (0 = background).
    """
    views = OrthoViews.framing(
        check_mesh(gt_vertices, gt_faces, "ground-truth mesh")[0], res, yaws_deg
    )
    pn, pm = render_normals(pred_vertices, pred_faces, views, smooth)
    gn, gm = render_normals(gt_vertices, gt_faces, views, smooth)
    return compare_normal_images(pn, pm, gn, gm), pn, gn


def normal_image_errors(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    res: int = 512,
    yaws_deg: tuple[float, ...] = ICON_YAWS,
    smooth: bool = True,
) -> dict[str, float]:
    """The errors of :func:`normal_images` alone (module docstring)."""
    return normal_images(pred_vertices, pred_faces, gt_vertices, gt_faces, res, yaws_deg, smooth)[0]


def normal_panel(pred_normals: np.ndarray, gt_normals: np.ndarray) -> np.ndarray:
    """[2H, N W, 3] uint8 picture: predicted views on top, GT below, ``(n + 1) / 2`` as RGB."""
    rows = [np.concatenate(list(x), axis=1) for x in (pred_normals, gt_normals)]  # 2 x [H, NW, 3]
    img = np.concatenate(rows, axis=0)
    covered = np.any(img != 0, axis=-1, keepdims=True)
    return np.where(covered, np.round((img + 1.0) * 127.5), 0).astype(np.uint8)
