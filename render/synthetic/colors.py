"""Per-vertex colours of a synthetic human: skin, lips, eyes, hair, a top, bottoms and shoes."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from render.synthetic.assets import FORWARD, SIDES, AnnyAssets

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


@dataclass(frozen=True)
class PaintedRegions:
    """Where :func:`sample_vertex_colors` painted garments and hair, for the garment geometry.

    Attributes:
        top, bottoms, shoes, hair: ``[V]`` soft membership in [0, 1] of each painted region.
        top_colors, bottom_colors: ``[V, 3]`` float sRGB of the top's and the bottoms' fabric at
            every vertex (used where geometry extends a garment beyond its paint).
        waist: rest-pose height (Anny z, metres) of the waistline.
        skirt_hem: rest-pose height of a painted skirt's hem, or None (trousers or shorts).
        long_hair, bald: the hair style drawn.
    """

    top: np.ndarray
    bottoms: np.ndarray
    shoes: np.ndarray
    hair: np.ndarray
    top_colors: np.ndarray
    bottom_colors: np.ndarray
    waist: float
    skirt_hem: float | None
    long_hair: bool
    bald: bool


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


def sample_vertex_colors(
    rng: np.random.Generator,
    assets: AnnyAssets,
    rest: np.ndarray,
    heads: np.ndarray,
    keypoints: dict[str, np.ndarray],
    *,
    age: float,
    gender: float,
) -> tuple[np.ndarray, PaintedRegions]:
    """``[V, 4]`` uint8 sRGB colours (skin, hair, eyes, a top, bottoms and shoes) and where the
    garments and hair were painted.

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
    for side in SIDES:
        eye = part == f"eye.{side}"
        offsets = rest[eye] - rest[eye].mean(axis=0)
        facing = offsets @ FORWARD / np.linalg.norm(offsets, axis=1)
        colors[eye] = np.where(
            (facing > 0.93)[:, None],
            (20.0, 18.0, 18.0),
            np.where((facing > 0.78)[:, None], iris, (232.0, 228.0, 222.0)),
        )
    colors[part == "mouth"] = (110, 45, 45)

    # Positions along the limbs: 0 at the shoulder / hip, 0.5 at elbow / knee, 1 at wrist / ankle.
    arm, leg = np.zeros(len(rest)), np.zeros(len(rest))
    arm_length, leg_length = [], []
    for side in SIDES:
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
    skirt_hem = None
    if gender > 0.5 and rng.random() < 0.3:
        knee = 0.5 * (h["lowerleg01.L"][2] + h["lowerleg01.R"][2])
        hip = 0.5 * (h["upperleg01.L"][2] + h["upperleg01.R"][2])
        skirt_hem = hip + rng.uniform(0.35, 1.15) * (knee - hip)
        bottoms += legs * _soft(z - skirt_hem)
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
    hair = np.zeros(len(rest))
    if not bald:
        hair = in_parts("torso", "neck", "head") * _soft(relative[:, 2] - hairline)
        hair *= _soft(0.11 - radius)
        _paint(colors, hair, hair_color)
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
    regions = PaintedRegions(
        top=top,
        bottoms=bottoms,
        shoes=shoes,
        hair=hair,
        top_colors=top_colors,
        bottom_colors=bottom_colors,
        waist=float(waist),
        skirt_hem=None if skirt_hem is None else float(skirt_hem),
        long_hair=bool(long_hair),
        bald=bool(bald),
    )
    return rgba, regions
