"""Posed, clothed-looking synthetic humans from the open Anny body model.

Anny (NAVER, code Apache-2.0, MakeHuman-derived assets CC0) is a parametric human model with
phenotype blendshapes (gender, age, muscle, weight, height, proportions) and a 104-bone rig with
fingers. This module samples, per integer seed, a plausible adult phenotype, a natural standing
pose (walking, hands on hips, a raised arm, a slight crouch, ...) and per-vertex colours that
look like skin, hair, a top, bottoms and shoes, and writes them as training data: a binary PLY
with vertex colours and a COCO-WholeBody 133-keypoint JSON per human.

Coordinate frame of everything returned (vertices, joints): metres, +Y up, the person faces +Z
(a camera at +Z looking down -Z sees the face), the person's own left side is at +X, the lowest
vertex lies at y = 0 and the pelvis (Anny's root bone) at x = z = 0.

Anny's own frame is Z-up with the person facing -Y and their left at +X; ``_ANNY_TO_OUT`` maps it
to ours. Poses are built as per-bone rotations about each bone's head, expressed in the
rest-pose world axes, composed down the kinematic chain into global rotations ``G`` and fed to
Anny in its ``"world-orient"`` parameterization (delta = ``G @ R_rest``), so identity rotations
reproduce the rest pose (an A-pose with the elbows bent about 45 degrees).

The first ``Anny()`` builds a ~790 MB cache (about 1-2 minutes, ``ANNY_CACHE_DIR``); later loads
take about a second.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from utils.fileio import atomic_write_bytes, write_json

NUM_JOINTS = 133
"""Rows of the COCO-WholeBody layout: 17 body, 6 feet, 68 face, 21 left hand, 21 right hand."""

_COCO_BODY_FEET = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
"""Anny COCO-regressor labels in COCO-WholeBody rows 0-22 (the regressor's own order differs)."""

_LEFT_HAND_START, _RIGHT_HAND_START = 91, 112

# Anny (Z up, facing -Y) -> output (Y up, facing +Z); a proper rotation, so windings are kept.
_ANNY_TO_OUT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Rest-pose world axes in Anny's frame.
_UP = np.array([0.0, 0.0, 1.0])
_FORWARD = np.array([0.0, -1.0, 0.0])
_LEFT = np.array([1.0, 0.0, 0.0])

_SIDES = {"L": 1.0, "R": -1.0}
"""Anny side suffix -> sign of the person's lateral direction along Anny's +X."""

_BODY_PARTS = ("head", "neck", "torso") + tuple(
    f"{limb}.{side}"
    for limb in ("upperarm", "forearm", "hand", "thigh", "shin", "foot")
    for side in _SIDES
)
"""Parts of the outer body surface (``AnnyAssets.part`` also has eye.L/R and mouth inside)."""

_POSE_ATTEMPTS = 40
_PENETRATION_MARGIN = 0.01  # m: a vertex this deep inside another body part is a collision
_NEAR_SURFACE = 0.06  # m: penetration is measured for vertices this close to the other part
_FACE_RADIUS = 0.1  # m: no forearm or hand within this of the nose across the view or behind it


@dataclass(frozen=True)
class SyntheticHuman:
    """One generated human, in the output frame (see the module docstring).

    Attributes:
        name: sample name, e.g. ``"anny_0007"``.
        vertices: ``[V, 3]`` float64 posed vertex positions, metres.
        faces: ``[F, 3]`` int64 triangles, counter-clockwise seen from outside.
        vertex_colors: ``[V, 4]`` uint8 sRGB colours, alpha 255.
        joints: ``[133, 3]`` float64 COCO-WholeBody keypoints, metres (face rows are zero).
        visible: ``[133]`` bool, True for the filled rows (body, feet, hands).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray
    joints: np.ndarray
    visible: np.ndarray


@dataclass(frozen=True)
class AnnyAssets:
    """The loaded Anny model plus phenotype-independent per-vertex data derived from it.

    Attributes:
        model: the ``anny.Anny`` model (LBS skinning).
        keypoints: its COCO ``anny.KeypointsRegressor`` (23 labelled keypoints).
        faces: ``[F, 3]`` int64 triangles.
        bone_index: bone label -> index into the model's bones.
        parents: ``[B]`` parent bone index per bone (-1 for the root), parents before children.
        dominant_bone: ``[V]`` index of the bone with the largest skinning weight per vertex.
        part: ``[V]`` body-part name per vertex (see ``_part_of_bone``), eyes and mouth apart.
        lips: ``[V]`` bool, vertices painted as lips by MakeHuman's lips texture mask.
    """

    model: Any
    keypoints: Any
    faces: np.ndarray
    bone_index: dict[str, int]
    parents: np.ndarray
    dominant_bone: np.ndarray
    part: np.ndarray
    lips: np.ndarray


def _part_of_bone(label: str) -> str:
    """Body part of a bone: head, neck, torso, or a limb part + side (see ``_BODY_PARTS``)."""
    if label in ("head", "eye.L", "eye.R"):
        return "head"
    if label.startswith("neck"):
        return "neck"
    if label == "root" or label.startswith(("spine", "pelvis", "clavicle", "shoulder01")):
        return "torso"
    side = label[-1]
    prefixes = {
        "upperarm": "upperarm",
        "lowerarm": "forearm",
        "wrist": "hand",
        "finger": "hand",
        "metacarpal": "hand",
        "upperleg": "thigh",
        "lowerleg": "shin",
        "foot": "foot",
        "toe": "foot",
    }
    for prefix, part in prefixes.items():
        if label.startswith(prefix):
            return f"{part}.{side}"
    raise ValueError(f"unexpected Anny bone {label!r}")


@functools.cache
def load_anny_model() -> AnnyAssets:
    """Build ``Anny(skinning_method="lbs")`` and its derived data, once per process.

    Returns:
        The cached ``AnnyAssets``; pass it to ``make_human``.
    """
    import anny
    from PIL import Image

    model = anny.Anny(skinning_method="lbs")
    keypoints = anny.KeypointsRegressor.coco(model)
    faces = model.faces.cpu().numpy().astype(np.int64)
    num_vertices = len(model.template_vertices)

    weights = model.vertex_bone_weights.cpu().numpy()
    indices = model.vertex_bone_indices.cpu().numpy()
    dominant = indices[np.arange(num_vertices), weights.argmax(axis=1)]
    part = np.array([_part_of_bone(model.bone_labels[b]) for b in dominant], dtype=object)
    for eye in ("eye.L", "eye.R"):
        part[dominant == model.bone_labels.index(eye)] = eye
    # Closed components besides the body and the two eyeballs: the mouth interior.
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_vertices, num_vertices)
    )
    _, component = connected_components(adjacency, directed=False)
    body = np.bincount(component).argmax()
    part[(component != body) & (part == "head")] = "mouth"

    # Per-vertex texture coordinates (any of a vertex's face corners) sample MakeHuman's mask.
    uv = model.texture_coordinates.cpu().numpy()[
        model.face_texture_coordinate_indices.cpu().numpy()
    ]
    vertex_uv = np.zeros((num_vertices, 2))
    vertex_uv[faces.ravel()] = uv.reshape(-1, 2)
    mask_path = anny.paths.get_anny_root_dir() / "data/mpfb2/textures/mpfb_lips.jpg"
    mask = np.asarray(Image.open(mask_path).convert("L"))
    rows = np.clip(((1.0 - vertex_uv[:, 1]) * mask.shape[0]).astype(int), 0, mask.shape[0] - 1)
    cols = np.clip((vertex_uv[:, 0] * mask.shape[1]).astype(int), 0, mask.shape[1] - 1)
    lips = (mask[rows, cols] > 128) & (part == "head")

    parents = np.asarray(model.bone_parents, dtype=np.int64)
    if np.any(parents[1:] >= np.arange(1, len(parents))):
        raise ValueError("expected Anny bones ordered parents first")
    return AnnyAssets(
        model=model,
        keypoints=keypoints,
        faces=faces,
        bone_index={label: i for i, label in enumerate(model.bone_labels)},
        parents=parents,
        dominant_bone=dominant,
        part=part,
        lips=lips,
    )


# ---------------------------------------------------------------------------------------------
# Phenotype


def _sample_phenotype(rng: np.random.Generator, assets: AnnyAssets) -> dict[str, float]:
    """Adult phenotype in Anny's [0, 1] parameters, the height parameter solved for a height.

    Returns:
        ``{"gender", "age", "muscle", "weight", "height", "proportions"}`` -> value; gender 0 is
        male and 1 female, age 2/3 is a young adult (~25 years) and 1 old (~90 years).
    """
    kind = rng.choice(["male", "female", "mixed"], p=[0.45, 0.45, 0.1])
    gender = {"male": (0.0, 0.25), "female": (0.75, 1.0), "mixed": (0.3, 0.7)}[kind]
    phenotype = {
        "gender": rng.uniform(*gender),
        "age": rng.uniform(0.62, 0.9),
        "muscle": 0.2 + 0.6 * rng.beta(2.0, 2.0),
        "weight": 0.12 + 0.7 * rng.beta(2.0, 2.2),
        "proportions": rng.uniform(0.2, 0.8),
    }
    mean_height = 1.77 - 0.14 * phenotype["gender"]
    target = float(np.clip(rng.normal(mean_height, 0.07), 1.55, 1.95))
    # The height blendshape is linear in its parameter: solve from its two extremes.
    extremes = assets.model(phenotype_kwargs={**phenotype, "height": np.array([0.0, 1.0])})[
        "rest_vertices"
    ][:, :, 2]
    low, high = (extremes.max(dim=1).values - extremes.min(dim=1).values).tolist()
    phenotype["height"] = float(np.clip((target - low) / (high - low), 0.0, 1.0))
    return {key: float(value) for key, value in phenotype.items()}


# ---------------------------------------------------------------------------------------------
# Pose


def _unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length."""
    return v / np.linalg.norm(v)


def _rot(axis: np.ndarray, degrees: float) -> np.ndarray:
    """``[3, 3]`` rotation by ``degrees`` about ``axis`` (right-handed)."""
    return Rotation.from_rotvec(np.deg2rad(degrees) * _unit(axis)).as_matrix()


def _align(a0: np.ndarray, b0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation taking direction ``a0`` to ``a1`` and the plane (a0, b0) to (a1, b1)."""

    def frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        x = _unit(a)
        y = _unit(b - (b @ x) * x)
        return np.stack([x, y, np.cross(x, y)], axis=1)

    return frame(a1, b1) @ frame(a0, b0).T


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors, degrees."""
    return float(np.degrees(np.arccos(np.clip(_unit(a) @ _unit(b), -1.0, 1.0))))


_ARM_ACTIONS = {
    # name: (abduction, forward angle, elbow flexion, bend direction) ranges in degrees
    "relaxed": ((14, 35), (-15, 25), (8, 45), (-10, 40)),
    "hip": ((50, 62), (-20, 0), (88, 102), (65, 90)),
    "raised": ((100, 165), (-5, 35), (10, 80), (-40, 15)),
    "forward": ((12, 40), (35, 85), (15, 90), (0, 45)),
    "tpose": ((75, 95), (-10, 20), (0, 25), (-20, 20)),
}
_ARM_PROBS = (0.4, 0.15, 0.15, 0.15, 0.15)
_LEG_ACTIONS = ("stand", "walk", "wide", "crouch", "shift")
_LEG_PROBS = (0.3, 0.25, 0.15, 0.1, 0.2)


def _sample_pose(rng: np.random.Generator) -> dict[str, float]:
    """Named pose angles in degrees (see ``_pose_rotations``), from a few natural archetypes."""
    u = rng.uniform
    pose = {
        "root_yaw": u(-10, 10),
        "spine_twist": u(-8, 8),
        "spine_side": u(-5, 5),
        "spine_flex": u(-4, 8),
        "neck_yaw": u(-20, 20),
        "neck_pitch": u(-10, 12),
        "neck_roll": u(-7, 7),
    }
    legs = rng.choice(_LEG_ACTIONS, p=_LEG_PROBS)
    lead = rng.choice(list(_SIDES))
    for side in _SIDES:
        leg = {
            "hip_flex": u(-5, 8),
            "hip_abd": u(-5, 1),
            "hip_rot": u(0, 12),
            "knee": u(0, 8),
            "foot_pitch": u(-5, 5),
        }
        if legs == "walk":
            if side == lead:
                leg.update(
                    hip_flex=u(15, 30), knee=u(5, 35), hip_abd=u(-4, 0), foot_pitch=u(-15, 0)
                )
            else:
                leg.update(
                    hip_flex=u(-20, -8), knee=u(5, 25), hip_abd=u(-4, 0), foot_pitch=u(0, 20)
                )
        elif legs == "wide":
            leg.update(hip_abd=u(3, 12), knee=u(0, 10))
        elif legs == "crouch":
            leg.update(hip_flex=u(15, 30), knee=u(30, 50), hip_abd=u(-2, 6))
        elif legs == "shift" and side == lead:
            leg.update(hip_flex=u(5, 15), knee=u(10, 25), hip_abd=u(0, 6))
        pose.update({f"{key}.{side}": value for key, value in leg.items()})
    if legs == "crouch":
        pose["spine_flex"] += u(5, 12)

    swing = legs == "walk" and rng.random() < 0.6
    for side in _SIDES:
        if swing:
            forward = u(10, 30) * (-1.0 if side == lead else 1.0)
            arm = (u(8, 20), forward, u(10, 40), u(0, 30))
        else:
            action = rng.choice(list(_ARM_ACTIONS), p=_ARM_PROBS)
            arm = tuple(u(*limits) for limits in _ARM_ACTIONS[action])
        abduction, forward, elbow, bend = arm
        pose.update(
            {
                f"arm_abd.{side}": abduction,
                f"arm_fwd.{side}": forward,
                f"elbow.{side}": elbow,
                f"arm_bend.{side}": bend,
                f"pronation.{side}": u(-30, 50),
                f"wrist_flex.{side}": u(-30, 30),
                f"wrist_dev.{side}": u(-15, 15),
                f"finger_curl.{side}": u(0.1, 0.8),
                f"clavicle.{side}": max(0.0, abduction - 90.0) * u(0.15, 0.3),
            }
        )
    return pose


def _pose_rotations(
    pose: dict[str, float], heads: np.ndarray, assets: AnnyAssets
) -> dict[str, np.ndarray]:
    """Per-bone local rotations for ``pose``, in rest-pose world axes about each bone head.

    Args:
        pose: named angles from ``_sample_pose``, degrees.
        heads: ``[B, 3]`` rest bone heads, metres, Anny frame.
        assets: the loaded model data (bone names).

    Returns:
        Bone label -> ``[3, 3]`` rotation; bones left out stay at their rest orientation
        relative to their parent.
    """
    h = {label: heads[i] for label, i in assets.bone_index.items()}
    local: dict[str, np.ndarray] = {}
    local["root"] = _rot(_UP, pose["root_yaw"])
    spine = ("spine05", "spine04", "spine03", "spine02", "spine01")
    for bone in spine:
        local[bone] = (
            _rot(_UP, pose["spine_twist"] / len(spine))
            @ _rot(_FORWARD, pose["spine_side"] / len(spine))
            @ _rot(_LEFT, pose["spine_flex"] / len(spine))
        )
    for bone in ("neck01", "neck03", "head"):
        local[bone] = (
            _rot(_UP, pose["neck_yaw"] / 3)
            @ _rot(_FORWARD, pose["neck_roll"] / 3)
            @ _rot(_LEFT, pose["neck_pitch"] / 3)
        )

    for side, sign in _SIDES.items():
        lateral = sign * _LEFT

        def bone(name: str, side: str = side) -> str:
            return f"{name}.{side}"

        # Legs: hip flexion, then abduction, then rotation about the vertical (toe-out); the knee
        # flexes about the axis across the shin; the foot stays nearly flat (its global rotation
        # is the leg's yaw plus a small pitch).
        hip = (
            _rot(_UP, sign * pose[bone("hip_rot")])
            @ _rot(_FORWARD, sign * pose[bone("hip_abd")])
            @ _rot(_LEFT, -pose[bone("hip_flex")])
        )
        local[bone("upperleg01")] = hip
        shin = h[bone("foot")] - h[bone("lowerleg01")]
        knee = _rot(np.cross(_FORWARD, shin), pose[bone("knee")])
        local[bone("lowerleg01")] = knee
        shin_global = local["root"] @ hip @ knee
        toes = shin_global @ _FORWARD
        yaw = np.degrees(np.arctan2(np.cross(_FORWARD, toes) @ _UP, toes @ _FORWARD))
        flat = _rot(_UP, yaw) @ _rot(_LEFT, pose[bone("foot_pitch")])
        local[bone("foot")] = shin_global.T @ flat

        # Arms: upper-arm direction and elbow bend plane from angles, relative to the torso.
        upper0 = h[bone("lowerarm01")] - h[bone("upperarm01")]
        fore0 = h[bone("wrist")] - h[bone("lowerarm01")]
        bend0 = fore0 - (fore0 @ _unit(upper0)) * _unit(upper0)
        abduction = np.deg2rad(pose[bone("arm_abd")])
        forward = np.deg2rad(pose[bone("arm_fwd")])
        frontal = np.sin(abduction) * lateral - np.cos(abduction) * _UP
        upper = _unit(np.cos(forward) * frontal + np.sin(forward) * _FORWARD)
        reference = _FORWARD + 0.25 * _UP
        reference = reference - (reference @ upper) * upper
        if np.linalg.norm(reference) < 1e-3:
            reference = _UP - (_UP @ upper) * upper
        reference = _unit(reference)
        medial = sign * _unit(np.cross(upper, reference))
        bend_angle = np.deg2rad(pose[bone("arm_bend")])
        bend = np.cos(bend_angle) * reference + np.sin(bend_angle) * medial
        clavicle = _rot(_FORWARD, -sign * pose[bone("clavicle")])
        local[bone("clavicle")] = clavicle
        local[bone("upperarm01")] = clavicle.T @ _align(upper0, bend0, upper, bend)
        elbow_axis = np.cross(upper0, fore0)
        local[bone("lowerarm01")] = _rot(elbow_axis, pose[bone("elbow")] - _angle(upper0, fore0))
        local[bone("lowerarm02")] = _rot(fore0, sign * pose[bone("pronation")])

        # Hand: palm normal from the finger directions (mirrored per side).
        fingers = _unit(h[bone("finger3-1")] - h[bone("wrist")])
        thumb_side = _unit(h[bone("finger2-1")] - h[bone("finger5-1")])
        palm = _unit(sign * np.cross(fingers, thumb_side))
        local[bone("wrist")] = _rot(np.cross(fingers, palm), pose[bone("wrist_flex")]) @ _rot(
            palm, pose[bone("wrist_dev")]
        )
        curl = pose[bone("finger_curl")]
        for finger in range(2, 6):  # index .. little, curling a little more towards the little
            direction = h[bone(f"finger{finger}-2")] - h[bone(f"finger{finger}-1")]
            axis = np.cross(direction, palm)
            for joint, max_angle in ((1, 40.0), (2, 45.0), (3, 25.0)):
                angle = curl * max_angle * (1.0 + 0.1 * (finger - 2))
                local[bone(f"finger{finger}-{joint}")] = _rot(axis, angle)
        thumb = h[bone("finger1-3")] - h[bone("finger1-2")]
        for joint in (2, 3):
            local[bone(f"finger1-{joint}")] = _rot(np.cross(thumb, palm), curl * 20.0)
    return local


def _global_rotations(local: dict[str, np.ndarray], assets: AnnyAssets) -> np.ndarray:
    """``[B, 3, 3]`` global rotations ``G_c = G_parent @ L_c`` from local ones (default identity)
    given by bone label."""
    rotations = np.tile(np.eye(3), (len(assets.parents), 1, 1))
    for label, index in assets.bone_index.items():  # bones are ordered parents first
        parent = assets.parents[index]
        base = rotations[parent] if parent >= 0 else np.eye(3)
        rotations[index] = base @ local.get(label, np.eye(3))
    return rotations


def _bad_pose(vertices: np.ndarray, assets: AnnyAssets, nose: np.ndarray) -> bool:
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
        rest_of_body = tuple(p for p in _BODY_PARTS if p not in arm)
        checks += [
            (arm[1:], rest_of_body),
            (arm[:1], ("head",)),
            (
                (f"shin.{side}", f"foot.{side}"),
                (f"thigh.{other}", f"shin.{other}", f"foot.{other}"),
            ),
        ]
    return any(inside(names, surface) for names, surface in checks)


# ---------------------------------------------------------------------------------------------
# Colours

_SKIN_TONES = np.array(
    [
        (255, 228, 209),
        (244, 208, 184),
        (234, 190, 158),
        (222, 171, 136),
        (198, 143, 107),
        (170, 113, 80),
        (140, 87, 58),
        (108, 66, 44),
        (80, 51, 36),
    ],
    dtype=float,
)
_HAIR_COLORS = np.array(
    [
        (26, 22, 20),  # black
        (52, 36, 27),  # dark brown
        (92, 62, 40),  # brown
        (138, 98, 62),  # light brown
        (176, 140, 90),  # dark blonde
        (216, 188, 134),  # blonde
        (128, 56, 32),  # auburn
        (170, 86, 44),  # ginger
        (140, 138, 135),  # grey
        (205, 203, 198),  # white
    ],
    dtype=float,
)
_HAIR_PROBS = np.array([0.25, 0.25, 0.15, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02])
_CLOTH_COLORS = np.array(
    [
        (24, 24, 27),  # black
        (236, 236, 232),  # white
        (178, 178, 176),  # light grey
        (62, 64, 68),  # charcoal
        (30, 40, 74),  # navy
        (58, 84, 124),  # denim
        (112, 142, 176),  # light denim
        (190, 170, 126),  # khaki
        (94, 100, 60),  # olive
        (112, 32, 46),  # burgundy
        (104, 74, 50),  # brown
        (222, 206, 176),  # beige
    ],
    dtype=float,
)
_EYE_COLORS = np.array([(70, 45, 28), (110, 75, 40), (70, 110, 150), (80, 115, 80), (120, 100, 60)])


def _cloth_color(rng: np.random.Generator) -> np.ndarray:
    """A garment colour: a common neutral/denim shade or a random moderately saturated hue."""
    if rng.random() < 0.5:
        return _CLOTH_COLORS[rng.integers(len(_CLOTH_COLORS))] * rng.uniform(0.92, 1.06)
    hue, saturation, value = rng.random(), rng.uniform(0.25, 0.85), rng.uniform(0.25, 0.9)
    return 255.0 * np.array(colorsys.hsv_to_rgb(hue, saturation, value))


def _smooth_noise(rng: np.random.Generator, points: np.ndarray, waves: int = 6) -> np.ndarray:
    """``[N]`` smooth noise in [-1, 1]: random plane waves (8-40 cm wavelength) of ``points``."""
    directions = rng.normal(size=(waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wavenumbers = 2 * np.pi / rng.uniform(0.08, 0.4, size=waves)
    phases = rng.uniform(0, 2 * np.pi, size=waves)
    noise = np.cos(points @ (directions * wavenumbers[:, None]).T + phases).sum(axis=1)
    return noise / np.abs(noise).max()


def _limb_coordinate(points: np.ndarray, joints: tuple[np.ndarray, ...]) -> np.ndarray:
    """``[N]`` position along a two-segment limb: 0 at the first joint, 0.5 at the middle one and
    1 at the last, from the projection on the nearest segment (negative beyond the first joint).
    """
    best_distance = np.full(len(points), np.inf)
    coordinate = np.zeros(len(points))
    for segment, (start, end) in enumerate(zip(joints[:-1], joints[1:], strict=True)):
        axis = end - start
        t = (points - start) @ axis / (axis @ axis)
        clipped = np.clip(t, 0.0 if segment else -np.inf, 1.0)
        distance = np.linalg.norm(points - start - clipped[:, None] * axis, axis=1)
        closer = distance < best_distance
        best_distance[closer] = distance[closer]
        coordinate[closer] = 0.5 * (segment + t[closer])
    return coordinate


def _soft(distance: np.ndarray, width: float = 0.02) -> np.ndarray:
    """``[N]`` soft region membership in [0, 1] from a signed distance to its border (metres,
    positive inside). Linear ramps keep borders straight on the coarse mesh, where a hard per-vertex
    label would give saw-toothed ones."""
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def _paint(colors: np.ndarray, weight: np.ndarray, layer: np.ndarray) -> None:
    """Blend ``layer`` (``[3]`` or ``[V, 3]``) over ``colors`` ``[V, 3]`` in place by ``weight``."""
    colors += weight[:, None] * (layer - colors)


def _garment(
    rng: np.random.Generator,
    stripe_coordinate: np.ndarray,
    plane: np.ndarray,
    stripes: float,
    checker: float,
) -> np.ndarray:
    """``[V, 3]`` garment colours: solid, or with probability ``stripes`` soft stripes across
    ``stripe_coordinate`` (``[V]``, metres), or with probability ``checker`` a soft checker on
    ``plane`` (``[V, 2]``, metres), in two colours."""
    base = _cloth_color(rng)
    pattern = rng.choice(
        ["solid", "stripes", "checker"], p=[1 - stripes - checker, stripes, checker]
    )
    if pattern == "solid":
        return np.tile(base, (len(stripe_coordinate), 1))
    second = _cloth_color(rng) if rng.random() < 0.6 else base * rng.choice([0.6, 1.35])
    if pattern == "stripes":  # the offset sets the share of the second colour
        period = rng.uniform(0.05, 0.12)
        wave = np.sin(2 * np.pi * (stripe_coordinate / period + rng.random()))
        wave += rng.uniform(-0.5, 0.5)
    else:
        period = rng.uniform(0.07, 0.15)
        waves = np.sin(2 * np.pi * (plane / period + rng.random(2)))
        wave = waves[:, 0] * waves[:, 1]
    weight = np.clip(0.5 + 2.0 * wave, 0.0, 1.0)
    return base + weight[:, None] * (second - base)


def _vertex_colors(
    rng: np.random.Generator,
    assets: AnnyAssets,
    rest: np.ndarray,
    heads: np.ndarray,
    keypoints: dict[str, np.ndarray],
    *,
    age: float,
    gender: float,
) -> np.ndarray:
    """``[V, 4]`` uint8 sRGB colours: skin, hair, eyes, a top, bottoms and shoes.

    Regions come from each vertex's dominant bone plus soft thresholds on the rest-pose geometry
    (heights, positions along the limbs, a hairline around the head), so they follow the body
    when posed.

    Args:
        rng: random generator.
        assets: loaded model data (per-vertex body parts, lips mask).
        rest: ``[V, 3]`` rest-pose vertices of this phenotype, metres, Anny frame.
        heads: ``[B, 3]`` rest-pose bone heads, metres, Anny frame.
        keypoints: rest-pose COCO keypoints by label, ``[3]`` metres each, Anny frame.
        age: Anny age parameter (older people get grey hair and baldness more often).
        gender: Anny gender parameter (0 male, 1 female).
    """
    part = assets.part
    h = {label: heads[i] for label, i in assets.bone_index.items()}
    x, y, z = rest.T

    def in_parts(*names: str, sides: str = "LR") -> np.ndarray:
        return np.isin(part, [f"{n}.{s}" for n in names for s in sides] + list(names))

    # Skin (with lips), eyes (pupil, iris, white) and the mouth inside.
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    low = min(int(tone), len(_SKIN_TONES) - 2)
    skin = _SKIN_TONES[low] + (tone - low) * (_SKIN_TONES[low + 1] - _SKIN_TONES[low])
    skin = skin * rng.uniform(0.96, 1.04, size=3)
    colors = np.tile(skin, (len(rest), 1))
    colors[assets.lips] = skin * np.array([0.86, 0.62, 0.62])
    iris = _EYE_COLORS[rng.integers(len(_EYE_COLORS))]
    for side in _SIDES:
        eye = part == f"eye.{side}"
        offsets = rest[eye] - rest[eye].mean(axis=0)
        facing = offsets @ _FORWARD / np.linalg.norm(offsets, axis=1)
        colors[eye] = np.where(
            (facing > 0.93)[:, None],
            (20.0, 18.0, 18.0),
            np.where((facing > 0.78)[:, None], iris, (232.0, 228.0, 222.0)),
        )
    colors[part == "mouth"] = (110, 45, 45)

    # Positions along the limbs: 0 at the shoulder / hip, 0.5 at elbow / knee, 1 at wrist / ankle.
    arm, leg = np.zeros(len(rest)), np.zeros(len(rest))
    arm_length, leg_length = [], []
    for side in _SIDES:
        arm_joints = (h[f"upperarm01.{side}"], h[f"lowerarm01.{side}"], h[f"wrist.{side}"])
        leg_joints = (h[f"upperleg01.{side}"], h[f"lowerleg01.{side}"], h[f"foot.{side}"])
        on_arm, on_leg = (
            in_parts("upperarm", "forearm", sides=side),
            in_parts("thigh", "shin", sides=side),
        )
        arm[on_arm] = _limb_coordinate(rest[on_arm], arm_joints)
        leg[on_leg] = _limb_coordinate(rest[on_leg], leg_joints)
        arm_length.append(np.linalg.norm(np.diff(arm_joints, axis=0), axis=1).sum())
        leg_length.append(np.linalg.norm(np.diff(leg_joints, axis=0), axis=1).sum())
    arms, legs = in_parts("upperarm", "forearm"), in_parts("thigh", "shin")

    # Bottoms: trousers / shorts (hem along the legs) or a skirt (horizontal hem); maybe a belt.
    waist = h["spine04"][2] + rng.uniform(-0.04, 0.02)
    torso = in_parts("torso")
    bottoms = torso * _soft(waist - z)
    if gender > 0.5 and rng.random() < 0.3:
        knee = 0.5 * (h["lowerleg01.L"][2] + h["lowerleg01.R"][2])
        hip = 0.5 * (h["upperleg01.L"][2] + h["upperleg01.R"][2])
        hem = hip + rng.uniform(0.35, 1.15) * (knee - hip)
        bottoms += legs * _soft(z - hem)
    else:
        length = rng.choice([rng.uniform(0.2, 0.4), 0.5, rng.uniform(0.7, 0.85), 1.02, 1.02])
        bottoms += legs * _soft((length - leg) * np.mean(leg_length))
    dress = rng.random() < 0.12
    top_colors = _garment(
        rng,
        np.where(arms, arm * np.mean(arm_length), z),
        rest[:, [0, 2]],
        stripes=0.25,
        checker=0.2,
    )
    bottom_colors = (
        top_colors if dress else _garment(rng, z, rest[:, [0, 2]], stripes=0.0, checker=0.1)
    )
    _paint(colors, bottoms, bottom_colors)
    if rng.random() < 0.3:
        _paint(colors, bottoms * _soft(0.018 - np.abs(z - waist + 0.02)), _cloth_color(rng) * 0.5)

    # Top: torso and neck base between the waist and a neckline (crew, V or scoop), sleeves.
    neck = h["neck01"]
    neckline = neck[2] - rng.uniform(0.0, 0.025) + 0.4 * (y - neck[1])  # higher at the back
    slope = np.ones(len(rest))  # ~ gradient norm of neckline - z: keeps the soft border width
    if rng.random() < 0.4:
        depth, width = rng.uniform(0.04, 0.1), rng.uniform(0.06, 0.11)
        inside = (y < neck[1]) & (np.abs(x) < width)
        shape = np.clip(1.0 - np.abs(x) / width, 0.0, 1.0) ** rng.choice([1.0, 0.5])
        neckline -= np.where(inside, depth * shape, 0.0)
        slope[inside] = np.hypot(1.0, 2.0 * depth / width)
    sleeve = rng.choice([0.0, rng.uniform(0.15, 0.35), 0.5, rng.uniform(0.65, 0.8), 0.98])
    top = in_parts("torso", "neck") * np.minimum(_soft(z - waist), _soft((neckline - z) / slope))
    top += arms * _soft((sleeve - arm) * np.mean(arm_length))
    _paint(colors, top, top_colors)

    # Shoes with a sole, sometimes boots or socks.
    ankle = 0.5 * (h["foot.L"][2] + h["foot.R"][2])
    boots = rng.random() < 0.12
    shoe_top = ankle + (rng.uniform(0.12, 0.25) if boots else rng.uniform(-0.02, 0.03))
    shins = in_parts("shin")
    if rng.random() < 0.4:
        socks = shins * _soft(shoe_top + rng.uniform(0.04, 0.12) - z) * (1.0 - bottoms)
        _paint(colors, socks, rng.choice([(235.0, 235.0, 232.0), (30.0, 30.0, 32.0)]))
    shoes = np.maximum(in_parts("foot"), shins * _soft(shoe_top - z))
    _paint(colors, shoes, _cloth_color(rng) * rng.uniform(0.5, 1.0))
    sole = shoes * _soft(rest[:, 2].min() + 0.015 - z, 0.006)
    _paint(colors, sole, rng.choice([(240.0, 240.0, 236.0), (35.0, 30.0, 28.0)]))

    # Hair above a hairline around the head (front: forehead, sides: ears, back: nape or lower
    # for long hair, falling onto the upper back), eyebrows in a darker shade.
    hair_probs = _HAIR_PROBS.copy()
    hair_probs[8:] *= 1.0 + 30.0 * max(0.0, age - 0.75)
    hair_color = _HAIR_COLORS[rng.choice(len(_HAIR_COLORS), p=hair_probs / hair_probs.sum())]
    hair_color = hair_color * rng.uniform(0.92, 1.08)
    centre = 0.5 * (keypoints["left_ear"] + keypoints["right_ear"])
    eye_height = 0.5 * (keypoints["left_eye"][2] + keypoints["right_eye"][2]) - centre[2]
    relative = rest - centre
    around = np.degrees(np.arctan2(np.abs(relative[:, 0]), -relative[:, 1]))  # 0 front, 180 back
    long_hair = rng.random() < (0.65 if gender > 0.5 else 0.12)
    front = eye_height + rng.uniform(0.045, 0.065)
    side_line = rng.uniform(-0.07, -0.03) if long_hair else rng.uniform(0.0, 0.025)
    back = rng.uniform(-0.17, -0.11) if long_hair else rng.uniform(-0.065, -0.04)
    hairline = np.interp(around, [0, 50, 95, 180], [front, front + 0.005, side_line, back])
    radius = np.linalg.norm(relative[:, :2], axis=1)
    bald = gender < 0.5 and rng.random() < 0.05 + 0.3 * max(0.0, age - 0.75)
    if not bald:
        hair = in_parts("torso", "neck", "head") * _soft(relative[:, 2] - hairline)
        _paint(colors, hair * _soft(0.11 - radius), hair_color)
    for label in ("left_eye", "right_eye"):
        eye_point = keypoints[label]
        brow = (
            (part == "head")
            * _soft(0.022 - np.abs(x - eye_point[0]), 0.006)
            * _soft(0.004 - np.abs(z - eye_point[2] - 0.019), 0.003)
            * (y < eye_point[1] + 0.012)
        )
        _paint(colors, brow, 0.55 * hair_color + 0.45 * skin * 0.45)

    # Mild smooth shading variation (+-5 %) everywhere.
    colors *= 1.0 + 0.05 * _smooth_noise(rng, rest)[:, None]
    rgba = np.full((len(rest), 4), 255, dtype=np.uint8)
    rgba[:, :3] = np.clip(np.round(colors), 0, 255).astype(np.uint8)
    return rgba


# ---------------------------------------------------------------------------------------------
# Assembly


def _hand_keypoints(
    side: str, posed_heads: np.ndarray, vertices: np.ndarray, assets: AnnyAssets
) -> np.ndarray:
    """``[21, 3]`` OpenPose hand keypoints (wrist, thumb CMC/MCP/IP/tip, then MCP/PIP/DIP/tip of
    index, middle, ring, little) from posed bone heads; a tip is the last phalanx's vertex
    farthest along that phalanx. Metres, Anny frame."""

    def head(label: str) -> np.ndarray:
        return posed_heads[assets.bone_index[f"{label}.{side}"]]

    def tip(finger: int) -> np.ndarray:
        last = f"finger{finger}-3"
        candidates = vertices[assets.dominant_bone == assets.bone_index[f"{last}.{side}"]]
        direction = head(last) - head(f"finger{finger}-2")
        return candidates[np.argmax(candidates @ direction)]

    points = [head("wrist")]
    for finger in range(1, 6):
        points += [head(f"finger{finger}-{joint}") for joint in (1, 2, 3)]
        points.append(tip(finger))
    return np.stack(points)


def _keypoints_by_label(assets: AnnyAssets, vertices: Any) -> dict[str, np.ndarray]:
    """Anny's 23 COCO keypoints (``[3]`` each, metres, Anny frame) of ``[1, V, 3]`` vertices."""
    points = assets.keypoints({"vertices": vertices})[0].numpy()
    return dict(zip(assets.keypoints.labels, points, strict=True))


def make_human(model: AnnyAssets, seed: int, name: str) -> SyntheticHuman:
    """Generate one posed, coloured human, deterministically from ``seed``.

    A sampled pose whose parts interpenetrate or whose arm hides the face is re-sampled (up to
    ``_POSE_ATTEMPTS`` times, then the rest pose is used).

    Args:
        model: what ``load_anny_model`` returns.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same human.
        name: the sample name stored in the result.

    Returns:
        The human in the output frame (see the module docstring).
    """
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        phenotype = _sample_phenotype(rng, model)
        rest = model.model(phenotype_kwargs=phenotype)
        rest_heads = rest["rest_bone_heads"][0].numpy()
        rest_rotations = rest["rest_bone_poses"][0, :, :3, :3].numpy()
        colors = _vertex_colors(
            rng,
            model,
            rest["rest_vertices"][0].numpy(),
            rest_heads,
            _keypoints_by_label(model, rest["rest_vertices"]),
            age=phenotype["age"],
            gender=phenotype["gender"],
        )
        for attempt in range(_POSE_ATTEMPTS + 1):
            last = attempt == _POSE_ATTEMPTS
            local = {} if last else _pose_rotations(_sample_pose(rng), rest_heads, model)
            deltas = np.tile(np.eye(4), (1, len(rest_heads), 1, 1))
            deltas[0, :, :3, :3] = _global_rotations(local, model) @ rest_rotations
            deltas[0, 0, :3, 3] = rest_heads[0]
            posed = model.model(
                pose_parameters=torch.from_numpy(deltas),
                phenotype_kwargs=phenotype,
                pose_parameterization="world-orient",
            )
            vertices = posed["vertices"][0].numpy()
            coco = _keypoints_by_label(model, posed["vertices"])
            if last or not _bad_pose(vertices, model, coco["nose"]):
                break
    posed_heads = posed["bone_poses"][0, :, :3, 3].numpy()

    joints = np.zeros((NUM_JOINTS, 3))
    visible = np.zeros(NUM_JOINTS, dtype=bool)
    joints[: len(_COCO_BODY_FEET)] = [coco[label] for label in _COCO_BODY_FEET]
    visible[: len(_COCO_BODY_FEET)] = True
    for side, start in (("L", _LEFT_HAND_START), ("R", _RIGHT_HAND_START)):
        joints[start : start + 21] = _hand_keypoints(side, posed_heads, vertices, model)
        visible[start : start + 21] = True

    # To the output frame: Y up, facing +Z, feet on y = 0, pelvis over the origin.
    vertices = vertices @ _ANNY_TO_OUT.T
    joints = joints @ _ANNY_TO_OUT.T
    pelvis = posed_heads[0] @ _ANNY_TO_OUT.T
    offset = np.array([pelvis[0], vertices[:, 1].min(), pelvis[2]])
    vertices -= offset
    joints[visible] -= offset
    return SyntheticHuman(
        name=name,
        vertices=vertices,
        faces=model.faces.copy(),
        vertex_colors=colors,
        joints=joints,
        visible=visible,
    )


# ---------------------------------------------------------------------------------------------
# Storage


def _paths(data_path: Path, data_name: str, name: str) -> tuple[Path, Path]:
    """The PLY and joint-JSON paths of sample ``name``."""
    data_path = Path(data_path)
    return (
        data_path / "obj" / data_name / name / f"{name}.ply",
        data_path / "Joint3D" / data_name / f"{name}.json",
    )


def save_human(human: SyntheticHuman, data_path: Path, data_name: str = "ANNY") -> None:
    """Write ``<data_path>/obj/<data_name>/<name>/<name>.ply`` (binary, vertex colours, vertex
    order kept) and ``<data_path>/Joint3D/<data_name>/<name>.json`` (``joint3d`` [133, 3] metres,
    ``visible`` 0/1, ``units``, ``layout``), each atomically, the JSON first (a PLY implies its
    JSON)."""
    ply_path, json_path = _paths(data_path, data_name, human.name)
    mesh = trimesh.Trimesh(
        human.vertices, human.faces, vertex_colors=human.vertex_colors, process=False
    )
    ply = mesh.export(file_type="ply", encoding="binary")
    record = {
        "joint3d": human.joints.tolist(),
        "visible": human.visible.astype(int).tolist(),
        "units": "m",
        "layout": "coco_wholebody_133",
    }
    write_json(json_path, record)
    atomic_write_bytes(ply_path, ply)


def generate(
    data_path: Path,
    num: int,
    seed: int = 0,
    data_name: str = "ANNY",
    num_shards: int = 1,
    shard_id: int = 0,
) -> list[str]:
    """Generate and save humans ``<data_name.lower()>_<i:04d>`` for ``i`` in ``range(num)``.

    Human ``i`` uses seed ``seed * 100003 + i``, so every ``(seed, i)`` pair gives the same human
    regardless of sharding. Only ``i % num_shards == shard_id`` is handled here; a human whose
    PLY and JSON both exist is skipped (resume). The model is loaded only if something is missing.

    Returns:
        The names of this shard's humans, written now or found on disk.
    """
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"need 0 <= shard_id < num_shards, got {shard_id=} {num_shards=}")
    names = []
    for index in tqdm(range(shard_id, num, num_shards), desc=f"{data_name} humans"):
        name = f"{data_name.lower()}_{index:04d}"
        names.append(name)
        if all(path.exists() for path in _paths(data_path, data_name, name)):
            continue
        human = make_human(load_anny_model(), seed * 100003 + index, name)
        save_human(human, data_path, data_name)
    return names
