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

    def _first_hit(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rays = np.concatenate((origins, dirs), axis=-1).astype(np.float32)  # [N, 6]
        out = self.scene.cast_rays(o3d.core.Tensor(rays), nthreads=self.threads)
        t = out["t_hit"].numpy().astype(np.float64)
        ids = out["primitive_ids"].numpy().astype(np.int64)
        hit = np.isfinite(t)
        return np.where(hit, t, 0.0), np.where(hit, ids, -1)

    def cast(self, res: int, rotation: np.ndarray | None = None, ortho: bool = False) -> RayHits:
        """Front and back hits for the ``res`` x ``res`` camera looking at the rotated mesh.

        Args:
            res: image side in pixels.
            rotation: [3, 3] rotation ``R`` applied to the mesh for this view (the rays are
                rotated by ``R^T`` instead); ``None`` = identity.
            ortho: orthographic rays along -Z from the plane ``z = 1`` instead of the pinhole.
        """
        if ortho:
            origins = ortho_ray_origins(res).reshape(-1, 3)
            dirs = np.broadcast_to(np.array([0.0, 0.0, -1.0]), origins.shape)
        else:
            dirs = pixel_rays(res).reshape(-1, 3)
            origins = np.broadcast_to(np.array([0.0, 0.0, CAMERA_Z]), dirs.shape)
        if rotation is not None:
            origins, dirs = origins @ rotation, dirs @ rotation  # R^T x for row vectors
        front, front_face = self._first_hit(origins, dirs)
        t_rev, back_face = self._first_hit(origins + BEYOND * dirs, -dirs)
        back = np.where(back_face >= 0, BEYOND - t_rev, 0.0)
        # Grazing rays may hit in one direction only: keep front and back consistent.
        only_back = (front_face < 0) & (back_face >= 0)
        back[only_back], back_face[only_back] = 0.0, -1
        only_front = (front_face >= 0) & (back_face < 0)
        back[only_front], back_face[only_front] = front[only_front], front_face[only_front]
        shape = (res, res)
        return RayHits(
            front=front.reshape(shape),
            back=back.reshape(shape),
            front_face=front_face.reshape(shape),
            back_face=back_face.reshape(shape),
        )
