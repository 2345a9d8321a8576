"""One synthetic human from a seed (phenotype, colours, a pose that passes the collision test,
COCO-WholeBody keypoints), its files, and the sharded, resumable batch generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from tqdm import tqdm

from render.synthetic.assets import AnnyAssets, load_anny_model
from render.synthetic.collision import bad_pose
from render.synthetic.colors import sample_vertex_colors
from render.synthetic.garments import RestHeights, dress
from render.synthetic.pose import global_rotations, pose_rotations, sample_pose
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

_POSE_ATTEMPTS = 40


@dataclass(frozen=True)
class SyntheticHuman:
    """One generated human, in the output frame (see ``render.synthetic``).

    Attributes:
        name: sample name, e.g. ``"anny_0007"``.
        vertices: ``[V, 3]`` float64 posed vertex positions, metres.
        faces: ``[F, 3]`` int64 triangles, counter-clockwise seen from outside.
        vertex_colors: ``[V, 4]`` uint8 sRGB colours, alpha 255.
        joints: ``[133, 3]`` float64 COCO-WholeBody keypoints, metres (face rows are zero).
        visible: ``[133]`` bool, True for the filled rows (body, feet, hands).
        outfit: garment name -> kind (empty for painted clothes), for logs and the model card.
        garment: ``[V]`` int, :data:`render.synthetic.garments.SKIN` or the garment layer that
            made each vertex (all skin for painted clothes).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray
    joints: np.ndarray
    visible: np.ndarray
    outfit: dict[str, str] = field(default_factory=dict)
    garment: np.ndarray | None = None


CLOTHES = ("geometry", "painted")
"""Clothing of :func:`make_human`: garments with their own surfaces, or colours on the body."""


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


def make_human(
    model: AnnyAssets, seed: int, name: str, clothes: str = "geometry"
) -> SyntheticHuman:
    """Generate one posed, dressed human, deterministically from ``seed``.

    The body, its pose and its paint come from ``default_rng(seed)``; garment geometry
    (``clothes="geometry"``, :mod:`render.synthetic.garments`) from ``default_rng([seed, 1])``,
    so ``clothes="painted"`` gives the same person in painted-on clothes (the demo weights'
    data). A sampled pose whose parts interpenetrate or whose arm hides the face is re-sampled
    (up to ``_POSE_ATTEMPTS`` times, then the rest pose is used).

    Args:
        model: what ``load_anny_model`` returns.
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same human.
        name: the sample name stored in the result.
        clothes: one of :data:`CLOTHES`.

    Returns:
        The human in the output frame (see the module docstring).
    """
    import torch

    if clothes not in CLOTHES:
        raise ValueError(f"clothes must be one of {CLOTHES}, got {clothes!r}")
    # anny's forward rounds differently with another torch thread count, and a garment's
    # discrete choices can follow the last bit: one thread gives every machine the same human
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _make_human(model, seed, name, clothes)
    finally:
        torch.set_num_threads(threads)


def _make_human(model: AnnyAssets, seed: int, name: str, clothes: str) -> SyntheticHuman:
    """:func:`make_human` on the current torch threads."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        phenotype = _sample_phenotype(rng, model)
        rest = model.model(phenotype_kwargs=phenotype)
        rest_heads = rest["rest_bone_heads"][0].numpy()
        rest_rotations = rest["rest_bone_poses"][0, :, :3, :3].numpy()
        rest_vertices = rest["rest_vertices"][0].numpy()
        colors, regions = sample_vertex_colors(
            rng,
            model,
            rest_vertices,
            rest_heads,
            _keypoints_by_label(model, rest["rest_vertices"]),
            age=phenotype["age"],
            gender=phenotype["gender"],
        )
        for attempt in range(_POSE_ATTEMPTS + 1):
            last = attempt == _POSE_ATTEMPTS
            local = {} if last else pose_rotations(sample_pose(rng), rest_heads, model)
            deltas = np.tile(np.eye(4), (1, len(rest_heads), 1, 1))
            deltas[0, :, :3, :3] = global_rotations(local, model) @ rest_rotations
            deltas[0, 0, :3, 3] = rest_heads[0]
            posed = model.model(
                pose_parameters=torch.from_numpy(deltas),
                phenotype_kwargs=phenotype,
                pose_parameterization="world-orient",
            )
            vertices = posed["vertices"][0].numpy()
            coco = _keypoints_by_label(model, posed["vertices"])
            if last or not bad_pose(vertices, model, coco["nose"]):
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
    faces, outfit = model.faces.copy(), {}
    garment = np.zeros(len(vertices), dtype=np.int64)
    if clothes == "geometry":
        head = {label: rest_heads[i] for label, i in model.bone_index.items()}

        def height(label: str) -> float:
            return float(0.5 * (head[f"{label}.L"][2] + head[f"{label}.R"][2]))

        dressed = dress(
            np.random.default_rng([seed, 1]),
            vertices,
            faces,
            colors,
            rest_vertices,
            model.part,
            regions,
            RestHeights(
                ankle=height("foot"),
                knee=height("lowerleg01"),
                hip=height("upperleg01"),
                shoulder=height("upperarm01"),
            ),
            gender=phenotype["gender"],
        )
        vertices, faces, colors, outfit, garment = (
            dressed.vertices,
            dressed.faces,
            dressed.colors,
            dressed.outfit,
            dressed.layer,
        )
        joints[visible, 1] += dressed.shift
    return SyntheticHuman(
        name=name,
        vertices=vertices,
        faces=faces,
        vertex_colors=colors,
        joints=joints,
        visible=visible,
        outfit=outfit,
        garment=garment,
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
    progress: bool = True,
    clothes: str = "geometry",
) -> list[str]:
    """Generate and save humans ``<data_name.lower()>_<i:04d>`` for ``i`` in ``range(num)``.

    Human ``i`` uses seed ``seed * 100003 + i``, so every ``(seed, i)`` pair gives the same human
    regardless of sharding. Only ``i % num_shards == shard_id`` is handled here; a human whose
    PLY and JSON both exist is skipped (resume). The model is loaded only if something is missing.

    Args:
        progress: show a tqdm bar.
        clothes: see :func:`make_human`.
    Returns:
        The names of this shard's humans, written now or found on disk.
    """
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(f"need 0 <= shard_id < num_shards, got {shard_id=} {num_shards=}")
    names = []
    indices = range(shard_id, num, num_shards)
    for index in tqdm(indices, desc=f"{data_name} humans", disable=not progress):
        name = f"{data_name.lower()}_{index:04d}"
        names.append(name)
        if all(path.exists() for path in _paths(data_path, data_name, name)):
            continue
        human = make_human(load_anny_model(), seed * 100003 + index, name, clothes)
        save_human(human, data_path, data_name)
    return names
