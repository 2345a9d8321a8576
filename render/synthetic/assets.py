"""The Anny model, its rest-pose axes and the body part of each vertex (``render.synthetic``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# Rest-pose world axes in Anny's frame.
UP = np.array([0.0, 0.0, 1.0])
FORWARD = np.array([0.0, -1.0, 0.0])
LEFT = np.array([1.0, 0.0, 0.0])

SIDES = {"L": 1.0, "R": -1.0}
"""Anny side suffix -> sign of the person's lateral direction along Anny's +X."""

BODY_PARTS = ("head", "neck", "torso") + tuple(
    f"{limb}.{side}"
    for limb in ("upperarm", "forearm", "hand", "thigh", "shin", "foot")
    for side in SIDES
)
"""Parts of the outer body surface (``AnnyAssets.part`` also has eye.L/R and mouth inside)."""


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
    """Body part of a bone: head, neck, torso, or a limb part + side (see ``BODY_PARTS``)."""
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
