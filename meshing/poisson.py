"""Point cloud -> oriented normals -> screened Poisson -> optional trimming -> coloured mesh.

The authors' ``test_03_poisson.py`` (facts sheet §7.4) runs MeshLab through pymeshlab: normals from
k = 70 neighbours oriented by propagation, screened Poisson at octree depth 10 with MeshLab's
defaults (full depth 5, scale 1.1, 1.5 samples per node, point weight 4), no trimming, then a
check of six extreme vertices that negates the vertex normals when the result looks inside out
(the faces stay inverted: facts §8 item 30). Here Open3D runs the same reconstruction (Kazhdan's
code, ``create_from_point_cloud_poisson``); :data:`AUTHORS_OPTIONS` is that configuration, and
:class:`PoissonOptions` defaults to the one chosen with ``bench/bench_poisson.py`` (more accurate
on every measure and about 10x faster on a 2048² cloud):

* normals: those of the cloud when it has them; for the Predictor's clouds (no normals, points
  on pixel rays) from the front and back depth maps rebuilt from the cloud
  (``meshing.normals.cloud_depth_normals``: exact orientation, 1.5 s); for other clouds PCA of
  30 neighbours signed with the known camera (``orient_normals_camera``). The authors' 70
  neighbours with spanning-tree propagation take minutes at 2048² and leave about 0.3 % of the
  normals inverted, which Poisson turns into bumps;
* octree depth 10 with scale 1.5 instead of 1.1: the cube around the cloud, hence every cell,
  is 1.36x larger (2.5 mm for a 1.7 m person instead of 1.8 mm; depth 9 gives 3.7 mm and
  smooths cloth folds), which takes 60 % of the time of depth 10 at scale 1.1;
* point weight 10 instead of 4: a stronger screening term keeps the surface on the points;
* the orientation check flips the faces *and* the normals of an inverted mesh.

**No detached fragments** (a deviation, on by default; the authors keep everything, facts §7.4):
after Poisson only the connected component (triangles sharing vertices) holding the most vertices
is kept, the rest is dropped. A person is one surface; the other pieces are Poisson's closed
specks and blobs of stray depth in front of, behind or beside the body (the 8 real photos with
the demo weights: 235-749 pieces, 1.2-3.4 % of the vertices, none over 153 vertices; exact depth
maps of a synthetic human still give a few specks of 5-30 vertices). Vertices, not area, decide
because that is the measure the rule is checked by (``evaluation.photo_report``: share of the
vertices in the largest component) and Poisson's octree gives the surface near-uniform
triangles, so both rank the pieces the same.
``PoissonOptions(largest_component=False)`` (``test_03_poisson.py --keep_fragments``,
``--authors``) gives the authors' output.

Density trimming is an option, off by default as the authors: the unseen sides of the body are
exactly where Poisson's density is low, so trimming opens holes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from meshing.normals import (
    cloud_depth_normals,
    estimate_normals,
    orient_normals_camera,
    orient_normals_tangent_plane,
    pixel_lattice,
)
from utils.camera import CAMERA_Z
from utils.errors import BadInputError

NORMAL_METHODS = ("auto", "depth_map", "camera", "tangent_plane")
MIN_POINTS = 100
"""Fewer points than this cannot describe a body; such clouds are refused."""


class MeshingError(BadInputError):
    """A point cloud that cannot be meshed; the message says why (the caller adds the file)."""


@dataclass(frozen=True)
class PoissonOptions:
    """Settings of :func:`reconstruct`.

    Attributes:
        depth: octree depth: 2^depth cells across the bounding cube.
        scale: bounding-cube side / largest side of the cloud's box. Cell size = scale x cloud
            size / 2^depth: for a 1.7 m person 2.5 mm at depth 10 and scale 1.5, 1.8 mm at
            depth 10 and scale 1.1 (the authors'), 3.7 mm at depth 9 and scale 1.1 (a 2048²
            pixel is 1.1 mm on the body).
        point_weight: screening weight (MeshLab default 4; Open3D default 2).
        samples_per_node: minimum samples per octree leaf.
        full_depth: depth below which the octree is complete.
        linear_fit: place iso-vertices by linear interpolation.
        normals: how normals are made when the cloud has none: ``depth_map`` (rebuild the front
            and back range maps from the cloud and differentiate them,
            :func:`meshing.normals.cloud_depth_normals`; side-filling points as ``camera``),
            ``camera`` (PCA, signed with the known camera,
            :func:`meshing.normals.orient_normals_camera`), ``tangent_plane`` (PCA, the authors'
            spanning-tree propagation; slow), ``auto`` = ``depth_map`` when the points lie on
            the camera's pixel rays (:func:`meshing.normals.pixel_lattice`), else ``camera``.
        normal_neighbors: PCA neighbourhood (authors: 70).
        camera_z: camera centre ``(0, 0, camera_z)`` of the cloud (1 = ``utils.camera`` world
            frame; the authors' clouds are divided by 1.0367394, so ``1 / 1.0367394``).
        density_quantile: remove vertices whose Poisson density is below this quantile (0 = off).
        largest_component: keep only the connected component with the most vertices (default;
            False = keep detached fragments, as the authors).
        threads: Poisson threads (0 = all cores). Default 1: Open3D's Poisson with more threads
            segfaults now and then when the CPU is saturated (isl-org/Open3D#6828, #7229; seen
            here twice with two meshing processes on 2 cores), which kills the whole process.
    """

    depth: int = 10
    point_weight: float = 10.0
    scale: float = 1.5
    samples_per_node: float = 1.5
    full_depth: int = 5
    linear_fit: bool = False
    normals: str = "auto"
    normal_neighbors: int = 30
    camera_z: float = CAMERA_Z
    density_quantile: float = 0.0
    largest_component: bool = True
    threads: int = 1

    def __post_init__(self) -> None:
        if self.normals not in NORMAL_METHODS:
            raise ValueError(f"normals must be one of {NORMAL_METHODS}, not {self.normals!r}")
        if not 0.0 <= self.density_quantile < 1.0:
            raise ValueError(f"density_quantile must be in [0, 1), not {self.density_quantile}")
        if not 1 <= self.depth <= 16:
            raise ValueError(f"depth must be in [1, 16], not {self.depth}")


AUTHORS_OPTIONS = PoissonOptions(
    depth=10,
    scale=1.1,
    point_weight=4.0,
    normals="tangent_plane",
    normal_neighbors=70,
    largest_component=False,
)
"""pymeshlab's screened Poisson as the authors call it (facts §7.4), in Open3D."""


@dataclass
class Mesh:
    """A reconstructed triangle mesh.

    Attributes:
        vertices: [V, 3] float64 positions (the cloud's frame).
        faces: [F, 3] int64 vertex indices, counter-clockwise seen from outside.
        normals: [V, 3] float64 unit vertex normals (area-weighted face normals), outward.
        colors: [V, 3] float64 RGB in [0, 1] interpolated from the cloud, or None.
        densities: [V] float64 Poisson sample density at each vertex.
        flipped: the orientation check found the mesh inside out and flipped it.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray | None
    densities: np.ndarray
    flipped: bool = False


def _check_cloud(
    points: np.ndarray, colors: np.ndarray | None, normals: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Validated float64 copies; raises :class:`MeshingError` with the reason."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise MeshingError(f"points must be [N, 3], got {points.shape}")
    if len(points) < MIN_POINTS:
        raise MeshingError(f"only {len(points)} points; at least {MIN_POINTS} are needed")
    if not np.isfinite(points).all():
        raise MeshingError("points contain NaN or infinite coordinates")
    if colors is not None:
        colors = np.asarray(colors, dtype=np.float64)
        if colors.shape != points.shape:
            raise MeshingError(f"colors must be [N, 3] like the points, got {colors.shape}")
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != points.shape:
            raise MeshingError(f"normals must be [N, 3] like the points, got {normals.shape}")
        length = np.linalg.norm(normals, axis=1)
        if not (np.isfinite(length) & (length > 0)).all():
            raise MeshingError("normals contain zero, NaN or infinite vectors")
        normals = normals / length[:, None]
    return points, colors, normals


def cloud_normals(points: np.ndarray, options: PoissonOptions) -> np.ndarray:
    """[N, 3] normals of a cloud without them, by ``options.normals`` (see
    :class:`PoissonOptions`): outward, or for ``tangent_plane`` consistently signed.

    Raises:
        MeshingError: ``depth_map`` was asked for but the points are not on pixel rays.
    """
    if options.normals in ("auto", "depth_map"):
        res = pixel_lattice(points, options.camera_z)
        if res is not None:
            normals, on_sheet = cloud_depth_normals(points, res, options.camera_z)
            if not on_sheet.all():  # side-filling points between the sheets
                pca = estimate_normals(points, options.normal_neighbors)
                normals[~on_sheet] = orient_normals_camera(points, pca, options.camera_z)[~on_sheet]
            return normals
        if options.normals == "depth_map":
            raise MeshingError(
                f"the points do not lie on the pixel rays of the camera at z = "
                f"{options.camera_z} (not back-projected from depth maps, or another camera)"
            )
    normals = estimate_normals(points, options.normal_neighbors)
    if options.normals == "tangent_plane":
        return orient_normals_tangent_plane(points, normals, options.normal_neighbors)
    return orient_normals_camera(points, normals, camera_z=options.camera_z)


def fix_orientation(mesh: Mesh) -> Mesh:
    """The authors' inside-out check, with the flip done properly.

    At the vertices with the smallest and largest x, y and z, an outward normal points towards
    -x, +x, -y, +y, -z, +z. If more than three of the six point the other way the mesh is inside
    out: the faces are re-wound and the normals negated (the authors negated only the normals).

    Returns:
        ``mesh`` itself, flipped in place when needed (``mesh.flipped`` set).
    """
    inward = 0
    for axis in range(3):
        lo, hi = np.argmin(mesh.vertices[:, axis]), np.argmax(mesh.vertices[:, axis])
        inward += int(mesh.normals[lo, axis] > 0) + int(mesh.normals[hi, axis] < 0)
    if inward > 3:
        mesh.faces = mesh.faces[:, ::-1].copy()
        mesh.normals = -mesh.normals
        mesh.flipped = not mesh.flipped
    return mesh


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] unit vertex normals: the area-weighted sum of the adjacent faces' normals
    (counter-clockwise winding = outward); [0, 0, 0] for a vertex no face uses."""
    corners = vertices[faces]  # [F, 3, 3]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _keep_faces(mesh: Mesh, keep: np.ndarray) -> None:
    """Keep the faces where ``keep`` [F] is True and the vertices they use, in place."""
    faces = mesh.faces[keep]
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    new_index = np.cumsum(used) - 1
    mesh.faces = new_index[faces]
    mesh.vertices = mesh.vertices[used]
    mesh.densities = mesh.densities[used]
    if mesh.colors is not None:
        mesh.colors = mesh.colors[used]
    mesh.normals = vertex_normals(mesh.vertices, mesh.faces)


def vertex_components(num_vertices: int, faces: np.ndarray) -> np.ndarray:
    """Connected components of a triangle mesh (triangles sharing a vertex are connected).

    Args:
        num_vertices: V, the number of vertices.
        faces: [F, 3] vertex indices.
    Returns:
        [V] int component label of every vertex (a vertex no face uses is its own component).
    """
    faces = np.asarray(faces, dtype=np.int64)
    edges = np.concatenate((faces[:, :2], faces[:, 1:]))  # [2F, 2]
    graph = coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)
    )
    return connected_components(graph, directed=False)[1]


def trim(mesh: Mesh, density_quantile: float = 0.0, largest_component: bool = False) -> None:
    """Clean-up of a Poisson mesh, in place (vertex normals recomputed).

    Args:
        mesh: the mesh, with its Poisson densities.
        density_quantile: drop the faces touching a vertex whose density is below this quantile
            of all vertex densities (0 = off).
        largest_component: keep only the connected component with the most vertices (ties: the
            one with the lowest vertex index), drop the detached fragments.
    """
    if density_quantile > 0:
        low = mesh.densities < np.quantile(mesh.densities, density_quantile)
        _keep_faces(mesh, ~low[mesh.faces].any(axis=1))
    if largest_component and len(mesh.faces):
        labels = vertex_components(len(mesh.vertices), mesh.faces)
        _keep_faces(mesh, labels[mesh.faces[:, 0]] == np.bincount(labels).argmax())


def reconstruct(
    points: np.ndarray,
    colors: np.ndarray | None = None,
    normals: np.ndarray | None = None,
    options: PoissonOptions | None = None,
) -> Mesh:
    """Screened Poisson surface of a coloured point cloud.

    Args:
        points: [N, 3] positions.
        colors: [N, 3] RGB in [0, 1], interpolated onto the vertices; None = no colours.
        normals: [N, 3] outward normals (e.g. ``meshing.normals.depth_map_normals``); None =
            estimate and orient them (``options.normals``, ``options.normal_neighbors``).
        options: :class:`PoissonOptions` (default: the measured defaults).
    Returns:
        The :class:`Mesh`, outward (checked by :func:`fix_orientation`).
    Raises:
        MeshingError: too few points, non-finite values, wrong shapes, or an empty surface.
    """
    options = options or PoissonOptions()
    points, colors, normals = _check_cloud(points, colors, normals)
    if normals is None:
        normals = cloud_normals(points, options)
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.normals = o3d.utility.Vector3dVector(normals)
    if colors is not None:
        pcd.colors = o3d.utility.Vector3dVector(np.clip(colors, 0.0, 1.0))
    surface, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(
        pcd,
        depth=options.depth,
        scale=options.scale,
        linear_fit=options.linear_fit,
        n_threads=options.threads or -1,
        full_depth=options.full_depth,
        samples_per_node=options.samples_per_node,
        point_weight=options.point_weight,
    )
    vertices = np.asarray(surface.vertices).copy()
    faces = np.asarray(surface.triangles).astype(np.int64)
    if len(faces) == 0:
        raise MeshingError("screened Poisson produced an empty surface (degenerate cloud?)")
    mesh = Mesh(
        vertices=vertices,
        faces=faces,
        normals=vertex_normals(vertices, faces),
        colors=np.asarray(surface.vertex_colors).copy() if colors is not None else None,
        densities=np.asarray(densities).copy(),
    )
    trim(mesh, options.density_quantile, options.largest_component)
    if len(mesh.faces) == 0:
        raise MeshingError(f"density_quantile {options.density_quantile} removed every face")
    return fix_orientation(mesh)
