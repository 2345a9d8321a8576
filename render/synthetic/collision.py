"""The test that rejects a sampled pose: interpenetrating body parts, or an arm hiding the face."""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from render.synthetic.assets import BODY_PARTS, AnnyAssets

_PENETRATION_MARGIN = 0.01  # m: a vertex this deep inside another body part is a collision
_NEAR_SURFACE = 0.06  # m: penetration is measured for vertices this close to the other part
_FACE_RADIUS = 0.1  # m: no forearm or hand within this of the nose across the view or behind it


def bad_pose(vertices: np.ndarray, assets: AnnyAssets, nose: np.ndarray) -> bool:
    """Whether large body parts interpenetrate or a forearm or hand hides the face from the front.

    A vertex of one part is inside another part when it lies more than ``_PENETRATION_MARGIN``
    behind that part's surface at the part's nearest vertex (along its outward normal), within
    ``_NEAR_SURFACE`` of it (farther, the nearest vertex may be on the part's open border). This
    allows contact such as hands on the hips, where convex hulls would not.

    Args:
        vertices: ``[V, 3]`` posed vertices, metres, Anny frame.
        assets: loaded model data (faces, per-vertex body parts).
        nose: ``[3]`` posed nose keypoint, metres, Anny frame.
    """
    part = assets.part
    lower_arms = vertices[np.isin(part, ["forearm.L", "forearm.R", "hand.L", "hand.R"])]
    across = np.hypot(lower_arms[:, 0] - nose[0], lower_arms[:, 2] - nose[2])
    if np.any((across < _FACE_RADIUS) & (lower_arms[:, 1] < nose[1] + _FACE_RADIUS)):
        return True

    normals = trimesh.Trimesh(vertices, assets.faces, process=False).vertex_normals

    def inside(names: tuple[str, ...], surface_names: tuple[str, ...]) -> bool:
        surface = np.isin(part, surface_names)
        points = vertices[np.isin(part, names)]
        distance, nearest = cKDTree(vertices[surface]).query(points)
        behind = vertices[surface][nearest] - points
        depth = np.einsum("ij,ij->i", behind, normals[surface][nearest])
        return bool(np.any((depth > _PENETRATION_MARGIN) & (distance < _NEAR_SURFACE)))

    # The surfaces are chosen so that their open borders stay far from the tested vertices.
    checks = []
    for side, other in (("L", "R"), ("R", "L")):
        arm = (f"upperarm.{side}", f"forearm.{side}", f"hand.{side}")
        rest_of_body = tuple(p for p in BODY_PARTS if p not in arm)
        checks += [
            (arm[1:], rest_of_body),
            (arm[:1], ("head",)),
            (
                (f"shin.{side}", f"foot.{side}"),
                (f"thigh.{other}", f"shin.{other}", f"foot.{other}"),
            ),
        ]
    return any(inside(names, surface) for names, surface in checks)
