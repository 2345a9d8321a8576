"""Front/back range maps and hit triangles by ray casting (facts sheet §6.3, §6.6, §6.7).

The authors cast one ray per pixel with trimesh, collect *all* hits and keep the nearest (front)
and the farthest (back) in a Python loop. Here both come from two first-hit queries of Open3D's
Embree scene, built once per scan: the front hit along each ray, and the first hit of the reversed
ray started beyond the mesh, which is the farthest hit of the original ray. Views are made by
rotating the rays, not the mesh, so the acceleration structure is reused for every yaw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d

from utils.camera import CAMERA_Z, ortho_ray_origins, pixel_rays

BEYOND = 4.0
"""Start of the reversed rays (mesh units along the ray): past every normalised mesh (|v| < 0.5)."""


@dataclass
class RayHits:
    """Ray-casting result of one view.

    Attributes:
        front: [H, W] float64 range of the nearest hit (0 = no hit).
        back: [H, W] float64 range of the farthest hit (0 = no hit).
        front_face: [H, W] int64 triangle index of the nearest hit (-1 = no hit).
        back_face: [H, W] int64 triangle index of the farthest hit (-1 = no hit).
    """

    front: np.ndarray
    back: np.ndarray
    front_face: np.ndarray
    back_face: np.ndarray


class RayCaster:
    """Casts the camera's pixel rays against one triangle mesh.

    Args:
        vertices: [V, 3] normalised mesh vertices.
        faces: [F, 3] triangle vertex indices.
        threads: Open3D worker threads (0 = all cores).
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, threads: int = 0) -> None:
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(vertices, dtype=np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(faces, dtype=np.uint32)),
        )
        self.threads = threads
        self._rays: dict[tuple[int, bool], np.ndarray] = {}
        self.scene_vertices = np.asarray(vertices, dtype=np.float64)

    def range_bounds(
        self, rotation: np.ndarray | None = None, ortho: bool = False
    ) -> tuple[float, float]:
        """Smallest and largest range any ray of the view can return (exact for the mesh).

        Perspective: the distance from the camera centre to the closest mesh point, and to the
        farthest vertex. Orthographic: ``1 - z`` over the rotated vertices.
        """
        r = np.eye(3) if rotation is None else rotation
        vertices = self.scene_vertices @ r.T  # [V, 3] rotated mesh
        if ortho:
            return float(CAMERA_Z - vertices[:, 2].max()), float(CAMERA_Z - vertices[:, 2].min())
        camera = np.array([0.0, 0.0, CAMERA_Z]) @ r  # camera centre in the mesh frame
        query = o3d.core.Tensor(camera[None].astype(np.float32))
        nearest = float(self.scene.compute_distance(query).numpy()[0])
        farthest = float(np.linalg.norm(vertices - np.array([0.0, 0.0, CAMERA_Z]), axis=1).max())
        return nearest, farthest

    def _base_rays(self, res: int, ortho: bool) -> np.ndarray:
        """[res * res, 6] float32 unrotated rays (origin, unit direction), cached per camera."""
        key = (res, ortho)
        if key not in self._rays:
            rays = np.empty((res * res, 6), np.float32)
            if ortho:
                rays[:, :3] = ortho_ray_origins(res).reshape(-1, 3)
                rays[:, 3:] = (0.0, 0.0, -1.0)
            else:
                rays[:, :3] = (0.0, 0.0, CAMERA_Z)
                rays[:, 3:] = pixel_rays(res).reshape(-1, 3)
            self._rays = {key: rays}  # one camera at a time: each cache entry is ~100 MB at 2048
        return self._rays[key]

    def _first_hit(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hit distance (inf = miss) [N] float32 and triangle index [N] uint32 of each ray."""
        out = self.scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=self.threads)
        return out["t_hit"].numpy(), out["primitive_ids"].numpy()

    def cast(self, res: int, rotation: np.ndarray | None = None, ortho: bool = False) -> RayHits:
        """Front and back hits for the ``res`` x ``res`` camera looking at the rotated mesh.

        Args:
            res: image side in pixels.
            rotation: [3, 3] rotation ``R`` applied to the mesh for this view (the rays are
                rotated by ``R^T`` instead); ``None`` = identity.
            ortho: orthographic rays along -Z from the plane ``z = 1`` instead of the pinhole.
        """
        rays = self._base_rays(res, ortho)
        if rotation is not None:
            r = np.asarray(rotation, dtype=np.float32)
            rotated = np.empty_like(rays)
            np.matmul(rays[:, :3], r, out=rotated[:, :3])  # R^T x for row vectors
            np.matmul(rays[:, 3:], r, out=rotated[:, 3:])
            rays = rotated
        reverse = np.empty_like(rays)
        np.multiply(rays[:, 3:], BEYOND, out=reverse[:, :3])
        reverse[:, :3] += rays[:, :3]
        np.negative(rays[:, 3:], out=reverse[:, 3:])
        t_front, id_front = self._first_hit(rays)
        t_rev, id_back = self._first_hit(reverse)
        hit = np.isfinite(t_front)
        # Grazing rays may hit in one direction only: a back hit needs a front hit, and a front hit
        # without a back hit is its own back.
        back_hit = hit & np.isfinite(t_rev)
        front = np.where(hit, t_front, 0.0)  # float64
        back = np.where(back_hit, BEYOND - t_rev.astype(np.float64), front)
        front_face = np.where(hit, id_front.astype(np.int64), -1)
        back_face = np.where(back_hit, id_back.astype(np.int64), front_face)
        shape = (res, res)
        return RayHits(
            front=front.reshape(shape),
            back=back.reshape(shape),
            front_face=front_face.reshape(shape),
            back_face=back_face.reshape(shape),
        )
