"""3D joints -> the 31 training keypoints of every rendered view (facts sheet §6.9, §3.1).

Sources of 3D joints, all put in the rendered frame with the scan's own normalisation
(:func:`utils.scans.scan_transform`, shared with ``render.py``) and the view yaw:

* ``Joint3D/<DS>/<item>.json`` (RP, THuman2, ANNY): ``{"joint3d": [[x, y, z], ...],
  "visible": [...]}`` in the raw scan's units, COCO-WholeBody 133-point layout. Rows 0-22 are the
  body and feet; the fingers are the MCP joints 96, 100, 104, 108 / 117, 121, 125, 129 (the
  authors' choice) or, with ``finger="pip"``, the PIP joints one row later, which match the
  OpenPose hand points used at test time (facts §8 item 5).
* THuman2 with an SMPL-X model folder: invisible joints are filled from the SMPL-X fit in
  ``obj/THuman2/smplx/<id>/smplx_param.pkl`` (male, 12 PCA hand components, x scale + translation).
* 2K2K: ``Joint3D/2K2K/<item>.json`` as above if present, else ``obj/2K2K/<item>/kp3ds.json``:
  triangulated OpenPose, ``N x 4`` rows ``(x, y, z, confidence)``, assumed BODY_25 (rows 0-24),
  then the left and right hand (21 rows each); the rows are those of the test-time mapping
  (a missing ear stays missing: no substitution by the eye for 3D joints).

Projection uses the render camera (:func:`utils.camera.project`). The authors first scale the
points by 1.037 about the mesh centre (facts §8 item 4); that factor is ``keypoint_scale``, and
the default 1.0 puts the keypoints where the rendered body is (see the README).

Stored per view: ``(31, 3)`` float32 rows ``(u, v, 1)``, ``(0, 0, 0)`` for a missing joint.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from render.layout import view_files, view_name
from render.pipeline import RenderReport, run_items
from utils.camera import ScanTransform, project, view_rotation
from utils.fileio import encode_png, write_all
from utils.keypoints import (
    BODY25_INDEX,
    HAND_PIP_INDEX,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    load_openpose_json,
)
from utils.scans import RenderInputError, scan_transform

AUTHORS_KEYPOINT_SCALE = 1.037
"""The authors' unexplained scale of the 3D joints before projection (facts §8 item 4, §10)."""

FINGER_ROWS = {
    "mcp": (96, 100, 104, 108, 117, 121, 125, 129),
    "pip": (97, 101, 105, 109, 118, 122, 126, 130),
}
"""COCO-WholeBody rows of the 8 finger keypoints (left index..little, right index..little)."""

MIN_WHOLEBODY_ROWS = 131
JOINT_EXTENT = 0.5
"""Largest normalised coordinate accepted for a joint (the normalised mesh fits in 0.357)."""

# 31-row index -> SMPL-X joint index used to fill invisible THuman2 joints (facts §6.9).
# fmt: off
SMPLX_FILL_INDEX: tuple[int, ...] = (
    55, 57, 56, 59, 58, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8,
    60, 61, 62, 63, 64, 65, 67, 68, 69, 70, 72, 73, 74, 75,
)
# fmt: on

# 31-row indices of the ankle, big toe, small toe and heel of each foot.
_FEET = ((15, 17, 18, 19), (16, 20, 21, 22))


def load_wholebody_json(path: Path, finger: str = "mcp") -> tuple[np.ndarray, np.ndarray]:
    """Read a ``Joint3D`` JSON and select the 31 training joints.

    Returns:
        points [31, 3] float64 (raw scan units) and visible [31] bool.
    Raises:
        RenderInputError: missing file, bad JSON or schema (the message names the file).
    """
    if finger not in FINGER_ROWS:
        raise ValueError(f"finger must be one of {tuple(FINGER_ROWS)}, got {finger!r}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        joints = np.asarray(data["joint3d"], dtype=np.float64)
        visible = np.asarray(data["visible"], dtype=np.float64).reshape(-1) > 0
    except FileNotFoundError as e:
        raise RenderInputError(f"{path}: 3D joint file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise RenderInputError(f"{path}: not a Joint3D JSON ({type(e).__name__}: {e})") from e
    if joints.ndim != 2 or joints.shape[1] < 3 or len(joints) < MIN_WHOLEBODY_ROWS:
        raise RenderInputError(
            f"{path}: joint3d must be N x 3 with N >= {MIN_WHOLEBODY_ROWS}, got {joints.shape}"
        )
    if len(visible) != len(joints):
        raise RenderInputError(f"{path}: {len(visible)} visible flags for {len(joints)} joints")
    rows = list(range(23)) + list(FINGER_ROWS[finger])
    points, vis = joints[rows, :3], visible[rows] & np.isfinite(joints[rows, :3]).all(axis=1)
    return points, vis


def load_kp3ds(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a 2K2K ``kp3ds.json`` (triangulated OpenPose, rows ``(x, y, z, confidence)``).

    Returns:
        points [31, 3] float64 and visible [31] bool (confidence > 0), test-time mapping.
    """
    try:
        with open(path, encoding="utf-8") as f:
            kp = np.asarray(json.load(f), dtype=np.float64)
    except FileNotFoundError as e:
        raise RenderInputError(f"{path}: 2K2K kp3ds.json not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:
        raise RenderInputError(f"{path}: not an N x 4 kp3ds.json ({type(e).__name__}: {e})") from e
    if kp.ndim != 2 or kp.shape[1] != 4 or len(kp) < 25 + 2 * 21:
        raise RenderInputError(f"{path}: kp3ds must be N x 4 with N >= 67, got {kp.shape}")
    hands = (kp[25:46], kp[46:67])
    rows = np.concatenate(
        [kp[list(BODY25_INDEX)]] + [h[list(HAND_PIP_INDEX)] for h in hands]
    )  # [31, 4]
    visible = (rows[:, 3] > 0) & np.isfinite(rows[:, :3]).all(axis=1)
    return rows[:, :3], visible


def clean_feet(points: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The authors' foot clean-up: an invisible heel takes the visible ankle; a foot with one
    visible toe copies it to the other toe.

    Args:
        points: [31, 3]; visible: [31] bool. Returns new arrays.
    """
    points, visible = points.copy(), visible.copy()
    for ankle, big, small, heel in _FEET:
        if not visible[heel] and visible[ankle]:
            points[heel], visible[heel] = points[ankle], True
        if visible[big] != visible[small]:
            src, dst = (big, small) if visible[big] else (small, big)
            points[dst], visible[dst] = points[src], True
    return points, visible


def smplx_joints(params_path: Path, model_path: Path) -> np.ndarray:
    """SMPL-X joints of a THuman2 fit, in scan units (``x scale + translation``; facts §6.9).

    Returns:
        [J, 3] float64 (J = 127 for the standard SMPL-X model).
    """
    try:
        with open(params_path, "rb") as f:
            params = pickle.load(f)
    except FileNotFoundError as e:
        raise RenderInputError(f"{params_path}: missing SMPL-X parameters") from e
    except Exception as e:  # unpickling can raise nearly anything
        raise RenderInputError(f"{params_path}: unreadable SMPL-X parameters ({e})") from e
    import smplx
    import torch

    try:
        model = smplx.create(
            str(model_path), model_type="smplx", gender="male", use_pca=True, num_pca_comps=12
        )
    except Exception as e:  # smplx raises assertion/OS errors for a bad model folder
        raise RenderInputError(f"{model_path}: cannot load the SMPL-X model ({e})") from e
    names = (
        "betas",
        "expression",
        "global_orient",
        "body_pose",
        "jaw_pose",
        "left_hand_pose",
        "right_hand_pose",
        "leye_pose",
        "reye_pose",
    )
    try:
        kwargs = {k: torch.as_tensor(np.asarray(params[k]), dtype=torch.float32) for k in names}
        kwargs = {k: v.reshape(1, -1) for k, v in kwargs.items()}
        scale = float(np.asarray(params["scale"]).reshape(-1)[0])
        translation = np.asarray(params["translation"], dtype=np.float64).reshape(3)
    except (KeyError, ValueError, TypeError) as e:
        raise RenderInputError(f"{params_path}: incomplete SMPL-X parameters ({e})") from e
    try:
        with torch.no_grad():
            joints = model(**kwargs).joints[0].double().numpy()
    except (RuntimeError, ValueError, TypeError) as e:  # shapes that do not fit the model
        raise RenderInputError(
            f"{params_path}: SMPL-X parameters do not fit the model ({e})"
        ) from e
    return joints * scale + translation


def fill_from_smplx(
    points: np.ndarray, visible: np.ndarray, smplx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fill every invisible joint from SMPL-X (:data:`SMPLX_FILL_INDEX`); all become visible."""
    points = points.copy()
    points[~visible] = smplx[list(SMPLX_FILL_INDEX)][~visible]
    return points, np.ones(NUM_KEYPOINTS, dtype=bool)


def project_keypoints(
    points: np.ndarray,
    visible: np.ndarray,
    transform: ScanTransform,
    rotation: np.ndarray,
    res: int,
    keypoint_scale: float = 1.0,
) -> np.ndarray:
    """Raw 3D joints -> the stored ``(31, 3)`` rows ``(u, v, 1)`` of one view.

    Args:
        points: [31, 3] raw scan coordinates; visible: [31] bool.
        transform: the scan's normalisation; rotation: [3, 3] view rotation.
        res: image side; keypoint_scale: scale about the mesh centre before projection.
    Returns:
        [31, 3] float32, ``(0, 0, 0)`` rows for invisible joints.
    """
    p = transform.apply(points) @ rotation.T * keypoint_scale  # [31, 3]
    uv = project(p, res)  # [31, 2]
    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float32)
    out[visible, :2] = uv[visible]
    out[visible, 2] = 1.0
    return out


def joint_file(data_path: str | os.PathLike, data_name: str, name: str) -> Path:
    """Where the 3D joints of an item are read from (see the module docstring)."""
    ours = Path(data_path) / "Joint3D" / data_name / f"{name}.json"
    if data_name == "2K2K" and not ours.is_file():
        return Path(data_path) / "obj" / "2K2K" / name / "kp3ds.json"
    return ours


def load_joints(
    data_path: str | os.PathLike,
    data_name: str,
    name: str,
    finger: str = "mcp",
    smplx_model_path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The 31 raw 3D joints of an item and their visibility, cleaned (and SMPL-X-filled for THuman2
    when a model path is given and a joint is invisible)."""
    path = joint_file(data_path, data_name, name)
    if path.name == "kp3ds.json":
        points, visible = load_kp3ds(path)
    else:
        points, visible = load_wholebody_json(path, finger)
    points, visible = clean_feet(points, visible)
    if data_name == "THuman2" and smplx_model_path is not None and not visible.all():
        params = Path(data_path) / "obj" / "THuman2" / "smplx" / name / "smplx_param.pkl"
        points, visible = fill_from_smplx(
            points, visible, smplx_joints(params, Path(smplx_model_path))
        )
    return points, visible


def keypoint_overlay(image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Draw the visible keypoints (left side green, right side red, centre blue) on a copy.

    Args:
        image_bgr: [H, W, 3] uint8; keypoints: [31, 3] rows (u, v, c).
    """
    out = image_bgr.copy()
    radius = max(2, image_bgr.shape[0] // 256)
    for i, (u, v, c) in enumerate(keypoints):
        if c <= 0:
            continue
        name = KEYPOINT_NAMES[i]
        color = (
            (0, 200, 0)
            if name.startswith("l_")
            else (0, 0, 230)
            if name.startswith("r_")
            else (230, 0, 0)
        )
        cv2.circle(out, (int(u), int(v)), radius, color, -1, cv2.LINE_AA)
    return out


def write_item_keypoints(
    data_path: str | os.PathLike,
    data_name: str,
    name: str,
    yaws: Sequence[int],
    res: int,
    source: str = "joints",
    openpose_dir: str | os.PathLike | None = None,
    finger: str = "mcp",
    keypoint_scale: float = 1.0,
    smplx_model_path: str | os.PathLike | None = None,
    mesh_format: str = "ply",
    overwrite: bool = False,
) -> bool:
    """Write ``PERS/keypoint/<view>/<item>_front.npy`` and its overlay for every view of an item.

    ``source="openpose"`` reads ``<openpose_dir>/<view>/<item>_front_keypoints.json`` (OpenPose run
    on the renders) with the test-time mapping and stores rows ``(u, v, confidence)``.

    The views must be rendered first, at the same ``res`` (the overlay is drawn on NOSHADING).

    Returns:
        False when every file already existed (nothing done).
    Raises:
        RenderInputError / KeypointError: missing or bad inputs, views not rendered or at another
            resolution, joints outside the scan. Whatever fails, nothing of this call is left on
            disk for the item (every view is computed before the first file is written).
    """
    views = [(yaw, view_files(data_path, data_name, name, yaw)) for yaw in yaws]
    todo = [
        (y, f)
        for y, f in views
        if overwrite or not (f.keypoint.is_file() and f.keypoint_sample.is_file())
    ]
    if not todo:
        return False
    results = []
    if source == "openpose":
        if openpose_dir is None:
            raise ValueError("source='openpose' needs openpose_dir")
        for yaw, _ in todo:
            path = Path(openpose_dir) / view_name(data_name, yaw) / f"{name}_front_keypoints.json"
            results.append(load_openpose_json(path).astype(np.float32))
    elif source == "joints":
        transform, facing = scan_transform(data_path, data_name, name, mesh_format)
        points, visible = load_joints(data_path, data_name, name, finger, smplx_model_path)
        normalized = transform.apply(points[visible])
        if len(normalized) and np.abs(normalized).max() > JOINT_EXTENT:
            raise RenderInputError(
                f"{joint_file(data_path, data_name, name)}: joints reach "
                f"{np.abs(normalized).max():.2f} in the normalised frame (the mesh fits in "
                f"0.36): not in the mesh's coordinates or units"
            )
        for yaw, _ in todo:
            rotation = view_rotation(yaw, facing)
            results.append(
                project_keypoints(points, visible, transform, rotation, res, keypoint_scale)
            )
    else:
        raise ValueError(f"source must be 'joints' or 'openpose', got {source!r}")
    images = []
    for _, files in todo:
        image = cv2.imread(str(files.noshading_front), cv2.IMREAD_COLOR)
        if image is None:
            raise RenderInputError(f"{files.noshading_front}: missing; render the views first")
        if image.shape[:2] != (res, res):
            raise RenderInputError(
                f"{files.noshading_front}: rendered at {image.shape[1]}x{image.shape[0]}, "
                f"keypoints asked for {res}x{res} (use the --res of render.py)"
            )
        images.append(image)
    outputs: dict[Path, bytes] = {}
    for (_, files), image, kp in zip(todo, images, results, strict=True):
        buf = io.BytesIO()
        np.save(buf, kp)
        outputs[files.keypoint] = buf.getvalue()
        outputs[files.keypoint_sample] = encode_png(keypoint_overlay(image, kp))
    write_all(outputs)
    return True


def keypoint_dataset(
    data_path: str | os.PathLike,
    data_name: str,
    items: Sequence[str],
    progress: bool = True,
    debug: bool = False,
    **options: object,
) -> RenderReport:
    """:func:`write_item_keypoints` for every item (``options`` are its keyword arguments); an
    item that fails, whatever the exception, is one line in the report (traceback logged with
    ``debug``) and the batch goes on."""
    return run_items(
        items,
        lambda item: write_item_keypoints(data_path, data_name, item, **options),
        f"keypoints {data_name}",
        progress=progress,
        debug=debug,
    )
