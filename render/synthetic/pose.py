"""Natural standing poses: named joint angles sampled from a few archetypes, turned into per-bone
rotations of the Anny rig (see ``render.synthetic`` for the frames)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from render.synthetic.assets import FORWARD, LEFT, SIDES, UP, AnnyAssets


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


def sample_pose(rng: np.random.Generator) -> dict[str, float]:
    """Named pose angles in degrees (see ``pose_rotations``), from a few natural archetypes."""
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
    lead = rng.choice(list(SIDES))
    for side in SIDES:
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
    for side in SIDES:
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


def pose_rotations(
    pose: dict[str, float], heads: np.ndarray, assets: AnnyAssets
) -> dict[str, np.ndarray]:
    """Per-bone local rotations for ``pose``, in rest-pose world axes about each bone head.

    Args:
        pose: named angles from ``sample_pose``, degrees.
        heads: ``[B, 3]`` rest bone heads, metres, Anny frame.
        assets: the loaded model data (bone names).

    Returns:
        Bone label -> ``[3, 3]`` rotation; bones left out stay at their rest orientation
        relative to their parent.
    """
    h = {label: heads[i] for label, i in assets.bone_index.items()}
    local: dict[str, np.ndarray] = {}
    local["root"] = _rot(UP, pose["root_yaw"])
    spine = ("spine05", "spine04", "spine03", "spine02", "spine01")
    for bone in spine:
        local[bone] = (
            _rot(UP, pose["spine_twist"] / len(spine))
            @ _rot(FORWARD, pose["spine_side"] / len(spine))
            @ _rot(LEFT, pose["spine_flex"] / len(spine))
        )
    for bone in ("neck01", "neck03", "head"):
        local[bone] = (
            _rot(UP, pose["neck_yaw"] / 3)
            @ _rot(FORWARD, pose["neck_roll"] / 3)
            @ _rot(LEFT, pose["neck_pitch"] / 3)
        )

    for side, sign in SIDES.items():
        lateral = sign * LEFT

        def bone(name: str, side: str = side) -> str:
            return f"{name}.{side}"

        # Legs: hip flexion, then abduction, then rotation about the vertical (toe-out); the knee
        # flexes about the axis across the shin; the foot stays nearly flat (its global rotation
        # is the leg's yaw plus a small pitch).
        hip = (
            _rot(UP, sign * pose[bone("hip_rot")])
            @ _rot(FORWARD, sign * pose[bone("hip_abd")])
            @ _rot(LEFT, -pose[bone("hip_flex")])
        )
        local[bone("upperleg01")] = hip
        shin = h[bone("foot")] - h[bone("lowerleg01")]
        knee = _rot(np.cross(FORWARD, shin), pose[bone("knee")])
        local[bone("lowerleg01")] = knee
        shin_global = local["root"] @ hip @ knee
        toes = shin_global @ FORWARD
        yaw = np.degrees(np.arctan2(np.cross(FORWARD, toes) @ UP, toes @ FORWARD))
        flat = _rot(UP, yaw) @ _rot(LEFT, pose[bone("foot_pitch")])
        local[bone("foot")] = shin_global.T @ flat

        # Arms: upper-arm direction and elbow bend plane from angles, relative to the torso.
        upper0 = h[bone("lowerarm01")] - h[bone("upperarm01")]
        fore0 = h[bone("wrist")] - h[bone("lowerarm01")]
        bend0 = fore0 - (fore0 @ _unit(upper0)) * _unit(upper0)
        abduction = np.deg2rad(pose[bone("arm_abd")])
        forward = np.deg2rad(pose[bone("arm_fwd")])
        frontal = np.sin(abduction) * lateral - np.cos(abduction) * UP
        upper = _unit(np.cos(forward) * frontal + np.sin(forward) * FORWARD)
        reference = FORWARD + 0.25 * UP
        reference = reference - (reference @ upper) * upper
        if np.linalg.norm(reference) < 1e-3:
            reference = UP - (UP @ upper) * upper
        reference = _unit(reference)
        medial = sign * _unit(np.cross(upper, reference))
        bend_angle = np.deg2rad(pose[bone("arm_bend")])
        bend = np.cos(bend_angle) * reference + np.sin(bend_angle) * medial
        clavicle = _rot(FORWARD, -sign * pose[bone("clavicle")])
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


def global_rotations(local: dict[str, np.ndarray], assets: AnnyAssets) -> np.ndarray:
    """``[B, 3, 3]`` global rotations ``G_c = G_parent @ L_c`` from local ones (default identity)
    given by bone label."""
    rotations = np.tile(np.eye(3), (len(assets.parents), 1, 1))
    for label, index in assets.bone_index.items():  # bones are ordered parents first
        parent = assets.parents[index]
        base = rotations[parent] if parent >= 0 else np.eye(3)
        rotations[index] = base @ local.get(label, np.eye(3))
    return rotations
