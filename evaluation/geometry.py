"""Surface metrics between a reconstructed mesh and its ground truth, the two alignments
(the renderer's known camera, and scale + ICP for in-the-wild predictions) and the mesh loader.

Conventions (every distance is in the units of the input vertices):

* Both surfaces are sampled uniformly by area (``num_samples`` points each, 100k by default; each
  mesh's samples depend only on that mesh and ``seed``, so swapping the meshes swaps the two
  directions, up to float32 rounding).
* Distances are point-to-**surface**: each sample's Euclidean distance to the closest point of the
  other *triangle mesh* (Open3D ``RaycastingScene``), not to the other mesh's samples.
* ``p2s``: mean distance of the prediction's samples to the GT surface (PIFu's "P2S", SiTH's
  "P-to-S"). ``s2p``: GT samples to the predicted surface. ICON/ECON call the GT -> prediction
  direction "P2S", so their P2S is our ``s2p``.
* ``chamfer``: ``(p2s + s2p) / 2``, the ICON/ECON convention (mean, not sum, of the two
  directions; not squared).
* ``normal_consistency``: mean ``|n . n'|`` between a sample's face normal and the normal of the
  closest triangle of the other mesh, averaged over both directions (Occupancy Networks, SiTH);
  ``normal_consistency_signed`` without the absolute value (detects inside-out meshes).
* ``fscore``: ``2 P R / (P + R)`` with precision ``P`` = share of prediction samples closer than
  ``fscore_threshold`` to the GT surface and recall ``R`` = share of GT samples closer than it to
  the prediction (Tatarchenko et al. 2019, with point-to-surface distances), in [0, 1].

The published protocols differ in sampling: ICON/ECON draw 1,000 points per surface
(``calculate_chamfer_p2s(num_samples=1000)``, PyTorch3D point-to-face distances, x100 to report
cm); SiTH draws 100,000 and measures to the nearest *sample* of the other mesh (a k-d tree), which
adds roughly the sample spacing, with ``|n . n'|`` normal consistency and the F-score at
``tau = 0.01`` (``<=``, in percent), after trimesh ICP with scaling.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh

from utils.camera import ScanTransform, view_rotation
from utils.errors import BadInputError
from utils.scans import scan_files, scan_transform


class MeshInputError(BadInputError):
    """A mesh that cannot be evaluated; the message names the mesh and the problem."""


def check_mesh(
    vertices: np.ndarray, faces: np.ndarray, name: str = "mesh"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a triangle mesh and return it as float64 vertices and int64 faces.

    Args:
        vertices: [V, 3] coordinates.
        faces: [F, 3] vertex indices.
        name: what to call the mesh in error messages (e.g. its file).
    Raises:
        MeshInputError: wrong shapes, no faces, indices out of range, non-finite coordinates,
            zero or infinite surface area.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise MeshInputError(f"{name}: vertices must be [V, 3], got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise MeshInputError(f"{name}: mesh has no triangles (faces shape {f.shape})")
    if not np.issubdtype(f.dtype, np.integer):
        raise MeshInputError(f"{name}: face indices must be integers, got {f.dtype}")
    f = f.astype(np.int64)
    if f.min() < 0 or f.max() >= len(v):
        raise MeshInputError(f"{name}: face refers to a vertex that does not exist")
    if not np.isfinite(v).all(axis=1)[f].all():  # only the vertices the triangles use
        raise MeshInputError(f"{name}: non-finite vertex coordinates")
    with np.errstate(over="ignore", invalid="ignore"):  # coordinates near the float limit
        area = triangle_areas(v, f).sum()
    if not np.isfinite(area):
        raise MeshInputError(f"{name}: surface area overflows (coordinates too large)")
    if area <= 0:
        raise MeshInputError(f"{name}: degenerate mesh (zero surface area)")
    return v, f


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F] area of each triangle."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))  # 3 x [F, 3]
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F, 3] unit normals by the right-hand rule (counter-clockwise = outward); 0 if degenerate."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)  # [F, 3]
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, num_samples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points drawn uniformly by area on a triangle mesh.

    Args:
        vertices: [V, 3]; faces: [F, 3] (validated, e.g. by :func:`check_mesh`).
        num_samples: number of points N.
        seed: the draw depends only on the mesh and this seed.
    Returns:
        points [N, 3] float64 and the index [N] of the triangle each lies on.
    """
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(triangle_areas(vertices, faces))
    face_ids = np.searchsorted(cdf, rng.random(num_samples) * cdf[-1], side="right")
    face_ids = np.minimum(face_ids, len(faces) - 1)  # guards the rounding at the top end
    r1, r2 = np.sqrt(rng.random(num_samples)), rng.random(num_samples)
    a, b, c = (vertices[faces[face_ids, k]] for k in range(3))  # 3 x [N, 3]
    points = (1 - r1)[:, None] * a + (r1 * (1 - r2))[:, None] * b + (r1 * r2)[:, None] * c
    return points, face_ids


class SurfaceQuery:
    """Closest-point queries against one triangle mesh (an Embree scene built once).

    Args:
        vertices: [V, 3]; faces: [F, 3] (validated).
        origin: [3] subtracted from every coordinate before the float32 scene is built, so
            meshes far from the origin keep their precision (use the same for all queries).
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray) -> None:
        self.origin = np.asarray(origin, dtype=np.float64)
        self.normals = face_normals(vertices, faces)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(vertices - self.origin, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
        )

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance [N] to the surface and the unit normal [N, 3] of the closest triangle."""
        query = np.ascontiguousarray(points - self.origin, dtype=np.float32)
        out = self.scene.compute_closest_points(o3d.core.Tensor(query))
        nearest = out["points"].numpy().astype(np.float64)  # [N, 3]
        distance = np.linalg.norm(nearest - query.astype(np.float64), axis=1)
        return distance, self.normals[out["primitive_ids"].numpy().astype(np.int64)]


def mesh_metrics(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    num_samples: int = 100_000,
    fscore_threshold: float = 0.01,
    seed: int = 0,
) -> dict[str, float]:
    """Chamfer, P2S, S2P, normal consistency and F-score between two triangle meshes.

    See the module docstring for the exact conventions. The meshes must already be in the same
    frame and units (see :func:`align_icp` for in-the-wild predictions).

    Args:
        pred_vertices: [V, 3] predicted mesh vertices; pred_faces: [F, 3] its triangles.
        gt_vertices: [V', 3] ground-truth vertices; gt_faces: [F', 3] its triangles.
        num_samples: points sampled on each surface.
        fscore_threshold: distance threshold of the F-score, in the input units (the default
            0.01 is 1 cm for meshes in metres).
        seed: sampling seed.
    Returns:
        ``chamfer``, ``p2s``, ``s2p`` (input units), ``normal_consistency``,
        ``normal_consistency_signed`` (in [0, 1] and [-1, 1]), ``fscore``, ``precision``,
        ``recall`` (in [0, 1]), as floats.
    Raises:
        MeshInputError: a mesh is empty or malformed (:func:`check_mesh`).
        ValueError: ``num_samples < 1`` or a non-positive threshold.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not fscore_threshold > 0:
        raise ValueError(f"fscore_threshold must be > 0, got {fscore_threshold}")
    pv, pf = check_mesh(pred_vertices, pred_faces, "predicted mesh")
    gv, gf = check_mesh(gt_vertices, gt_faces, "ground-truth mesh")
    origin = 0.5 * (gv.min(axis=0) + gv.max(axis=0))
    pred, gt = SurfaceQuery(pv, pf, origin), SurfaceQuery(gv, gf, origin)
    pred_points, pred_ids = sample_surface(pv, pf, num_samples, seed)
    gt_points, gt_ids = sample_surface(gv, gf, num_samples, seed)
    d_pred, n_at_gt = gt.closest(pred_points)  # prediction -> GT surface
    d_gt, n_at_pred = pred.closest(gt_points)  # GT -> predicted surface
    dot_pred = np.sum(pred.normals[pred_ids] * n_at_gt, axis=1)  # [N]
    dot_gt = np.sum(gt.normals[gt_ids] * n_at_pred, axis=1)  # [N]
    precision = float(np.mean(d_pred < fscore_threshold))
    recall = float(np.mean(d_gt < fscore_threshold))
    total = precision + recall
    p2s, s2p = float(d_pred.mean()), float(d_gt.mean())
    return {
        "chamfer": 0.5 * (p2s + s2p),
        "p2s": p2s,
        "s2p": s2p,
        "normal_consistency": 0.5 * float(np.abs(dot_pred).mean() + np.abs(dot_gt).mean()),
        "normal_consistency_signed": 0.5 * float(dot_pred.mean() + dot_gt.mean()),
        "fscore": 2.0 * precision * recall / total if total > 0 else 0.0,
        "precision": precision,
        "recall": recall,
    }


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] float64 and triangles [F, 3] int64 of a mesh file (OBJ, PLY, OFF, STL, GLB).

    Vertex order is kept (``process=False``); several objects in one file are concatenated.

    Raises:
        MeshInputError: missing or unreadable file, no triangles, malformed mesh; the message
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshInputError(f"{path}: file not found")
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for corrupt or unknown files
        raise MeshInputError(f"{path}: cannot read the mesh ({type(e).__name__}: {e})") from e
    if not isinstance(mesh, trimesh.Trimesh):
        raise MeshInputError(f"{path}: no triangle mesh in the file")
    return check_mesh(mesh.vertices, mesh.faces, str(path))


def render_frame_to_scan(
    points: np.ndarray, transform: ScanTransform, yaw_deg: float = 0.0, facing: float = 0.0
) -> np.ndarray:
    """Points in the render frame of one view (utils/camera.py) -> the raw scan's coordinates.

    Inverts what the renderer applied to the scan: the view rotation (yaw ``yaw_deg`` degrees,
    facing ``facing`` radians), then :meth:`utils.camera.ScanTransform.apply` (centring, scaling
    by ``1 / scale``, facing fix, size fix).

    Args:
        points: [N, 3] render-frame coordinates (e.g. a reconstruction of that view).
    Returns:
        [N, 3] coordinates in the scan's own units and frame.
    """
    r = view_rotation(yaw_deg, facing)
    normalised = np.asarray(points, dtype=np.float64) @ r  # R^T x: undo the view yaw
    unrotated = normalised @ transform.rotation / transform.post_scale  # R_f^T x / post_scale
    return unrotated * transform.scale + transform.center


def scan_ground_truth(
    data_path: str | os.PathLike, data_name: str, item: str, mesh_format: str = "ply"
) -> tuple[np.ndarray, np.ndarray, Path, ScanTransform, float]:
    """The scan of a rendered item, and what maps a reconstruction of one of its views into it.

    Returns:
        scan vertices [V, 3] and faces [F, 3] in its own units, the scan file, and the item's
        normalisation and facing for :func:`render_frame_to_scan`.
    """
    path, _ = scan_files(data_path, data_name, item, mesh_format)
    transform, facing = scan_transform(data_path, data_name, item, mesh_format)
    vertices, faces = load_mesh(path)
    return vertices, faces, path, transform, facing


def similarity_transform(vertices: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """[V, 3] vertices mapped by a [4, 4] similarity ``x -> s R x + t`` (``[:3, :3]`` = s R)."""
    return np.asarray(vertices, dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]


def align_icp(
    pred_vertices: np.ndarray,
    pred_faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    with_scale: bool = True,
    num_samples: int = 20_000,
    max_iterations: int = 50,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Align a prediction to its GT by (scale +) ICP, for in-the-wild reconstructions.

    Start: centroids matched and, with ``with_scale``, the RMS radius of the prediction's surface
    samples scaled to the GT's. Then point-to-point ICP (Open3D, Umeyama with scale) from the
    prediction's surface samples to the GT's, at correspondence distances of 10 %, 3 % and 1 % of
    the GT's bounding-box diagonal. SiTH aligns the same way (trimesh ICP with scaling) before its
    metrics; ICON/ECON evaluate in the known camera instead.

    Args:
        pred_vertices: [V, 3], pred_faces: [F, 3]; gt_vertices: [V', 3], gt_faces: [F', 3].
        with_scale: estimate a scale as well (else rigid).
        num_samples: surface samples per mesh for ICP.
        max_iterations: ICP iterations per correspondence distance.
    Returns:
        the aligned prediction vertices [V, 3] and the [4, 4] similarity (prediction -> GT).
    """
    pv, pf = check_mesh(pred_vertices, pred_faces, "predicted mesh")
    gv, gf = check_mesh(gt_vertices, gt_faces, "ground-truth mesh")
    p, _ = sample_surface(pv, pf, num_samples, seed)
    g, _ = sample_surface(gv, gf, num_samples, seed)
    p_mean, g_mean = p.mean(axis=0), g.mean(axis=0)
    scale = 1.0
    if with_scale:
        scale = float(
            np.sqrt(((g - g_mean) ** 2).sum(1).mean() / ((p - p_mean) ** 2).sum(1).mean())
        )
    matrix = np.eye(4)
    matrix[:3, :3] *= scale
    matrix[:3, 3] = g_mean - scale * p_mean
    # Open3D works in float64 but far from the origin the thresholds lose meaning: centre on GT.
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p - g_mean))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(g - g_mean))
    shift = np.eye(4)
    shift[:3, 3] = g_mean
    current = np.linalg.inv(shift) @ matrix @ shift  # the start in the centred frame
    diagonal = float(np.linalg.norm(gv.max(axis=0) - gv.min(axis=0)))
    estimation = o3d.pipelines.registration.TransformationEstimationPointToPoint(
        with_scaling=with_scale
    )
    criteria = o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=max_iterations)
    for fraction in (0.1, 0.03, 0.01):
        result = o3d.pipelines.registration.registration_icp(
            source, target, fraction * diagonal, current, estimation, criteria
        )
        if result.fitness > 0:  # no correspondence at all: keep the previous estimate
            current = np.asarray(result.transformation)
    matrix = shift @ current @ np.linalg.inv(shift)
    return similarity_transform(pv, matrix), matrix
