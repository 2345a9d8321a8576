"""2K2K keypoints: OpenPose JSON -> 31 keypoints -> per-part similarity matrices.

This module turns an OpenPose detection (BODY_25 + both hands) into the 31-keypoint layout used by
2K2K, brings the keypoints into the square ``res x res`` working frame (the authors'
``center_padding``), and fits one similarity transform per body part (12 parts) that maps image
normalized coordinates (NC, the ``[-1, 1]`` frame of ``affine_grid``/``grid_sample`` with
``align_corners=False``) to the canonical crop canvas (also NC). The model receives the inverse of
each matrix (``theta``) as its sampling matrix.

Deviation from the authors' code (fact sheet §8 item 6): missing keypoints are tracked with
explicit validity (confidence > 0 and finite) instead of zero tests on shifted coordinates, and
every fallback is well defined (no NaN matrices; unplaceable parts raise
:class:`PartPlacementError`). In particular the foot fallbacks (toe <-> toe, heel -> ankle) are
applied; in the authors' reference outputs (parity ``keypoint_edge_cases``) theirs did not fire:
their foot fits used the missing point's raw coordinates.
"""

from __future__ import annotations

import json
import math
import os
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from utils.errors import BadInputError

__all__ = [
    "NUM_KEYPOINTS",
    "NUM_PARTS",
    "PART_NAMES",
    "KEYPOINT_NAMES",
    "BODY25_INDEX",
    "HAND_PIP_INDEX",
    "KeypointError",
    "PartPlacementError",
    "openpose_to_keypoints31",
    "load_openpose_json",
    "pad_and_scale_keypoints",
    "keypoints_to_nc",
    "fit_part_similarities",
    "invert_affine",
    "part_matrices",
]

NUM_KEYPOINTS: int = 31
NUM_PARTS: int = 12

PART_NAMES: tuple[str, ...] = (
    "face",
    "upper_body",
    "l_upper_arm",
    "l_lower_arm",
    "r_upper_arm",
    "r_lower_arm",
    "l_upper_leg",
    "l_lower_leg",
    "r_upper_leg",
    "r_lower_leg",
    "l_foot",
    "r_foot",
)

#: Names of the 31 keypoint rows (fact sheet §3.1); ``l``/``r`` are the person's own left/right.
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "l_eye",
    "r_eye",
    "l_ear",
    "r_ear",
    "l_shoulder",
    "r_shoulder",
    "l_elbow",
    "r_elbow",
    "l_wrist",
    "r_wrist",
    "l_hip",
    "r_hip",
    "l_knee",
    "r_knee",
    "l_ankle",
    "r_ankle",
    "l_big_toe",
    "l_small_toe",
    "l_heel",
    "r_big_toe",
    "r_small_toe",
    "r_heel",
    "l_index",
    "l_middle",
    "l_ring",
    "l_little",
    "r_index",
    "r_middle",
    "r_ring",
    "r_little",
)

# BODY_25 index for keypoint rows 0..22 (fact sheet §3.1).
# fmt: off
BODY25_INDEX: tuple[int, ...] = (
    0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11, 19, 20, 21, 22, 23, 24,
)
# fmt: on
# OpenPose hand indices of the PIP joints of index, middle, ring and little finger.
HAND_PIP_INDEX: tuple[int, ...] = (6, 10, 14, 18)
# Ear row -> same-side eye row used when the ear is missing in the JSON.
_EAR_FALLBACK: dict[int, int] = {3: 1, 4: 2}

_BODY25_LEN = 25 * 3
_HAND_LEN = 21 * 3

_NAME_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


class KeypointError(BadInputError):
    """Bad keypoint input; the message names the source file/object and the problem."""


class PartPlacementError(KeypointError):
    """A body part cannot be placed (names the part and the missing keypoints).

    Attributes:
        parts: names of the parts that could not be placed (subset of :data:`PART_NAMES`).
        keypoints: names of the missing keypoints responsible (subset of :data:`KEYPOINT_NAMES`);
            empty when the failure is a degenerate fit rather than missing keypoints.
    """

    def __init__(
        self, message: str, parts: Sequence[str] = (), keypoints: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.parts: tuple[str, ...] = tuple(parts)
        self.keypoints: tuple[str, ...] = tuple(keypoints)


# ------------------------------------------------------------------------------------------------
# OpenPose JSON -> 31 keypoints
# ------------------------------------------------------------------------------------------------


def _as_float_array(values: object, what: str, source: str) -> np.ndarray:
    """A JSON list of numbers as a 1-D float64 array of finite values.

    Raises:
        KeypointError: not a list, an entry that is not a number (strings, booleans, nulls,
            nested lists), a number outside the float range (an integer with hundreds of
            digits) or a non-finite value (``NaN``, ``Infinity``, ``1e400``).
    """
    if not isinstance(values, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in values
    ):
        raise KeypointError(f"{source}: '{what}' must be a list of numbers")
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
    except OverflowError as exc:  # float() of an int beyond 1.8e308
        raise KeypointError(f"{source}: '{what}' contains a number too large for a float") from exc
    if not np.all(np.isfinite(arr)):
        raise KeypointError(f"{source}: '{what}' contains non-finite values")
    return arr


def openpose_to_keypoints31(data: dict, source: str = "<openpose json>") -> np.ndarray:
    """Convert an OpenPose JSON dictionary (BODY_25 + hands) to the 31-keypoint layout.

    Only ``people[0]`` is used. A keypoint is missing when its confidence is <= 0 or its pixel
    coordinates are both exactly 0 (OpenPose writes ``0, 0, 0`` for undetected points); missing rows
    are ``(0, 0, 0)``. A missing ear takes the whole row (u, v, confidence) of the same-side eye, as
    the authors do. Missing or empty hand arrays make that hand's fingers missing (not an error).

    Args:
        data: the parsed JSON object (``{"people": [{"pose_keypoints_2d": [...75 numbers...],
            "hand_left_keypoints_2d": [...63...], "hand_right_keypoints_2d": [...63...]}, ...]}``).
        source: name of the file/object, used in error messages.

    Returns:
        ``(31, 3)`` float64 array of rows ``(u, v, confidence)`` in the JSON's pixel frame.

    Raises:
        KeypointError: ``data`` is not a dict, has no ``people`` key, zero people, or a pose/hand
            array of the wrong length or with non-numeric / non-finite entries.
    """
    if not isinstance(data, dict):
        raise KeypointError(f"{source}: OpenPose JSON must be an object, got {type(data).__name__}")
    if "people" not in data:
        raise KeypointError(f"{source}: OpenPose JSON has no 'people' key")
    people = data["people"]
    if not isinstance(people, list):
        raise KeypointError(f"{source}: 'people' must be a list")
    if len(people) == 0:
        raise KeypointError(f"{source}: OpenPose JSON contains zero people (no person detected)")
    person = people[0]
    if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
        raise KeypointError(f"{source}: people[0] has no 'pose_keypoints_2d'")

    pose = _as_float_array(person["pose_keypoints_2d"], "pose_keypoints_2d", source)
    if pose.shape[0] != _BODY25_LEN:
        raise KeypointError(
            f"{source}: 'pose_keypoints_2d' has {pose.shape[0]} numbers, expected {_BODY25_LEN} "
            "(BODY_25 model)"
        )
    pose = pose.reshape(25, 3)

    out = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    out[: len(BODY25_INDEX)] = pose[list(BODY25_INDEX)]

    for row0, key in ((23, "hand_left_keypoints_2d"), (27, "hand_right_keypoints_2d")):
        hand_values = person.get(key)
        if hand_values is None:
            continue
        hand = _as_float_array(hand_values, key, source)
        if hand.shape[0] == 0:
            continue
        if hand.shape[0] != _HAND_LEN:
            raise KeypointError(
                f"{source}: '{key}' has {hand.shape[0]} numbers, expected {_HAND_LEN} or none"
            )
        out[row0 : row0 + 4] = hand.reshape(21, 3)[list(HAND_PIP_INDEX)]

    missing = (out[:, 2] <= 0) | ((out[:, 0] == 0) & (out[:, 1] == 0))
    out[missing] = 0.0
    for ear, eye in _EAR_FALLBACK.items():
        if missing[ear]:
            out[ear] = out[eye]
    return out


def load_openpose_json(path: str | os.PathLike) -> np.ndarray:
    """Read an OpenPose ``*_keypoints.json`` file and convert it (:func:`openpose_to_keypoints31`).

    Args:
        path: path of the JSON file.

    Returns:
        ``(31, 3)`` float64 array ``(u, v, confidence)`` in the image's pixel frame.

    Raises:
        KeypointError: the file is missing/unreadable, is not valid JSON, or its content is invalid
            (the message names the path).
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8-sig") as f:  # a byte-order mark is allowed
            data = json.load(f)
    except FileNotFoundError as exc:
        raise KeypointError(f"{source}: OpenPose JSON file not found") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int of > 4300 digits
        raise KeypointError(f"{source}: invalid JSON ({exc})") from exc
    except RecursionError as exc:
        raise KeypointError(f"{source}: invalid JSON (nested too deeply)") from exc
    except OSError as exc:
        raise KeypointError(f"{source}: cannot read OpenPose JSON ({exc})") from exc
    return openpose_to_keypoints31(data, source=source)


# ------------------------------------------------------------------------------------------------
# Frames
# ------------------------------------------------------------------------------------------------


KEYPOINT_NPY_KINDS = "iuf"
"""NumPy kinds a keypoint ``.npy`` may hold: signed and unsigned integers and real floats (not
booleans, complex numbers, strings, objects, structured records or dates)."""


def read_keypoints_npy(path: str | os.PathLike) -> np.ndarray:
    """The ``(31, 3)`` array of a keypoint ``.npy`` file (``(3, 31)`` is transposed, as the
    authors' training loader does); its values are the caller's to check.

    The header is read first, so a wrong shape, type or a huge declared size is refused before
    any data is read; pickles (object arrays) are never loaded, and an ``.npz`` archive is no
    ``.npy`` file.

    Returns:
        ``(31, 3)`` array of a kind in :data:`KEYPOINT_NPY_KINDS` (not converted).
    Raises:
        KeypointError: the file cannot be read as a ``.npy`` array, or it does not hold
            ``(31, 3)`` / ``(3, 31)`` real numbers.
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported")
    except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        # a damaged header dict: NumPy's parser raises SyntaxError / tokenize.TokenError
        raise KeypointError(f"{source}: cannot be read as a .npy array ({exc})") from exc
    if dtype.kind not in KEYPOINT_NPY_KINDS or dtype.fields is not None:
        raise KeypointError(
            f"{source}: keypoints must be real numbers (integers or floats), got {dtype}"
        )
    if shape not in ((NUM_KEYPOINTS, 3), (3, NUM_KEYPOINTS)):
        raise KeypointError(
            f"{source}: keypoints must be a ({NUM_KEYPOINTS}, 3) number array, got {dtype} {shape}"
        )
    try:
        keypoints = np.load(source, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise KeypointError(f"{source}: cannot be read as a .npy array ({exc})") from exc
    return keypoints.T if keypoints.shape == (3, NUM_KEYPOINTS) else keypoints


def _check_keypoints(keypoints: np.ndarray, source: str, columns: int = 3) -> np.ndarray:
    arr = np.asarray(keypoints, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != NUM_KEYPOINTS or arr.shape[1] < columns:
        raise KeypointError(
            f"{source}: keypoints must have shape ({NUM_KEYPOINTS}, {columns}), got {arr.shape}"
        )
    return arr


def _valid_mask(keypoints: np.ndarray) -> np.ndarray:
    """Validity of each row of a (31, 3) array: confidence > 0 and all three values finite."""
    return np.all(np.isfinite(keypoints[:, :3]), axis=1) & (keypoints[:, 2] > 0)


def pad_offsets(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pad making a ``height x width`` image square; the extra pixel of
    an odd pad goes to the bottom/right (the authors' ``center_padding``, facts §1.1)."""
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return top, side - height - top, left, side - width - left


def pad_and_scale_keypoints(
    keypoints: np.ndarray, height: int, width: int, res: int = 2048
) -> np.ndarray:
    """Apply the authors' ``center_padding`` + resize to keypoints.

    The ``(height, width)`` image is padded to a square of side ``max(height, width)`` by splitting
    the pad evenly (the extra pixel goes to the bottom/right, so the top/left pad is
    ``(max_side - side) // 2``); keypoints are shifted by the top/left pad, then ``u, v`` are scaled
    by ``res / max(height, width)``. Rows with confidence <= 0 (or non-finite values) stay exactly
    ``(0, 0, 0)``: the authors shift them too, which is a defect (fact sheet §8 item 6).

    Args:
        keypoints: ``(31, 3)`` array ``(u, v, confidence)`` in the original image's pixel frame.
        height: original image height in pixels.
        width: original image width in pixels.
        res: side of the square working frame.

    Returns:
        ``(31, 3)`` float64 array ``(u, v, confidence)`` in the ``res x res`` pixel frame.
    """
    kp = _check_keypoints(keypoints, "<keypoints>")
    if int(height) <= 0 or int(width) <= 0 or int(res) <= 0:
        raise KeypointError(f"invalid image size {height}x{width} or res {res}")
    top, _, left, _ = pad_offsets(int(height), int(width))
    scale = res / max(int(height), int(width))

    out = kp[:, :3].copy()
    out[:, 0] = (out[:, 0] + left) * scale
    out[:, 1] = (out[:, 1] + top) * scale
    out[~_valid_mask(kp)] = 0.0
    return out


def keypoints_to_nc(keypoints: np.ndarray, res: int = 2048) -> np.ndarray:
    """Pixel coordinates in the ``res x res`` frame -> normalized coordinates.

    ``x = 2u/res - 1``, ``y = 2v/res - 1`` (no half-pixel offset, as the authors). Missing rows are
    not treated specially (a ``(0, 0)`` row maps to ``(-1, -1)``); use the confidence column for
    validity.

    Args:
        keypoints: ``(31, 2)`` or ``(31, 3)`` array; only the first two columns are used.
        res: side of the square pixel frame.

    Returns:
        ``(31, 2)`` float64 array ``(x, y)`` in NC.
    """
    kp = _check_keypoints(keypoints, "<keypoints>", columns=2)
    return 2.0 * kp[:, :2] / res - 1.0


# ------------------------------------------------------------------------------------------------
# Part similarity fit
# ------------------------------------------------------------------------------------------------

# Virtual point ids for the lower-arm third point (mean of the fingers of one hand).
_L_HAND = -1
_R_HAND = -2
# Hand point id -> (finger rows, elbow row, wrist row).
_HAND_FINGERS: dict[int, tuple[tuple[int, ...], int, int]] = {
    _L_HAND: ((23, 24, 25, 26), 7, 9),
    _R_HAND: ((27, 28, 29, 30), 8, 10),
}
# Foot points that may fall back to another keypoint: big toe <-> small toe, heel -> ankle.
_POINT_FALLBACK: dict[int, int] = {17: 18, 18: 17, 19: 15, 20: 21, 21: 20, 22: 16}
# Finger target (0, 1/18) lies 1/4 of the elbow->wrist target distance (2/9) beyond the wrist.
_HAND_EXTRAPOLATION = 0.25


@dataclass(frozen=True)
class _PartSpec:
    name: str
    points: tuple[int, ...]  # keypoint rows, or _L_HAND / _R_HAND
    targets: tuple[tuple[float, float], ...]  # canvas NC targets, same order as points
    cap: tuple[int, int, float] | None  # (i, j, tau): positions in `points` of the reference pair


_UPPER_ARM_T = ((0.0, -0.1875), (0.0, 0.0625))
_LOWER_ARM_T = ((0.0, -2.0 / 9.0), (0.0, 0.0), (0.0, 1.0 / 18.0))
_FOOT_T = ((0.0, 1.0 / 24.0), (0.0, 1.0 / 24.0), (0.0, -1.0 / 24.0), (0.0, -1.0 / 24.0))


def _upper_leg_t(x: float) -> tuple[tuple[float, float], ...]:
    return ((x, -5.0 / 32.0), (x, 3.0 / 32.0))


def _lower_leg_t(x: float) -> tuple[tuple[float, float], ...]:
    return ((x, -9.0 / 64.0), (x, 9.0 / 64.0))


_PARTS: tuple[_PartSpec, ...] = (
    _PartSpec(
        "face", (4, 3), ((-1.0 / 12.0, 1.0 / 24.0), (1.0 / 12.0, 1.0 / 24.0)), (0, 1, 1.0 / 6.0)
    ),
    _PartSpec(
        "upper_body",
        (6, 5, 12, 11),
        (
            (-1.0 / 9.0, -1.0 / 6.0),
            (1.0 / 9.0, -1.0 / 6.0),
            (-1.0 / 12.0, 1.0 / 6.0),
            (1.0 / 12.0, 1.0 / 6.0),
        ),
        None,
    ),
    _PartSpec("l_upper_arm", (5, 7), _UPPER_ARM_T, (0, 1, 0.25)),
    _PartSpec("l_lower_arm", (7, 9, _L_HAND), _LOWER_ARM_T, (0, 2, 5.0 / 18.0)),
    _PartSpec("r_upper_arm", (6, 8), _UPPER_ARM_T, (0, 1, 0.25)),
    _PartSpec("r_lower_arm", (8, 10, _R_HAND), _LOWER_ARM_T, (0, 2, 5.0 / 18.0)),
    _PartSpec("l_upper_leg", (11, 13), _upper_leg_t(-3.0 / 128.0), (0, 1, 0.25)),
    _PartSpec("l_lower_leg", (13, 15), _lower_leg_t(-3.0 / 128.0), (0, 1, 9.0 / 32.0)),
    _PartSpec("r_upper_leg", (12, 14), _upper_leg_t(3.0 / 128.0), (0, 1, 0.25)),
    _PartSpec("r_lower_leg", (14, 16), _lower_leg_t(3.0 / 128.0), (0, 1, 9.0 / 32.0)),
    _PartSpec("l_foot", (17, 18, 19, 15), _FOOT_T, None),
    _PartSpec("r_foot", (20, 21, 22, 16), _FOOT_T, None),
)
if tuple(p.name for p in _PARTS) != PART_NAMES:  # pragma: no cover - table consistency
    raise RuntimeError("part table out of order")

# Minimum spread (NC) of a part's points and minimum fitted scale: below these the fit is
# degenerate.
_MIN_SPREAD = 1e-9
_MIN_SCALE = 1e-6


def _resolve_point(
    pid: int, nc: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray | None, list[str]]:
    """Position (NC, float64 (2,)) of a part point after fallbacks, or None + the missing names."""
    if pid in _HAND_FINGERS:
        fingers, elbow, wrist = _HAND_FINGERS[pid]
        present = [f for f in fingers if valid[f]]
        if present:
            return nc[present].mean(axis=0), []
        if valid[elbow] and valid[wrist]:
            return nc[wrist] + _HAND_EXTRAPOLATION * (nc[wrist] - nc[elbow]), []
        return None, [KEYPOINT_NAMES[i] for i in (elbow, wrist) if not valid[i]]
    if valid[pid]:
        return nc[pid], []
    fallback = _POINT_FALLBACK.get(pid)
    if fallback is not None and valid[fallback]:
        return nc[fallback], []
    names = [KEYPOINT_NAMES[pid]]
    if fallback is not None:
        names.append(KEYPOINT_NAMES[fallback])
    return None, names


def _fit_similarity(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Least-squares similarity (a, b, tx, ty) with a*px - b*py + tx = qx, b*px + a*py + ty = qy.

    Args:
        p: ``(n, 2)`` float64 source points.
        q: ``(n, 2)`` float64 target points.

    Returns:
        ``(2, 3)`` float64 matrix ``[[a, -b, tx], [b, a, ty]]``.
    """
    n = p.shape[0]
    a_mat = np.zeros((2 * n, 4), dtype=np.float64)
    a_mat[0::2, 0] = p[:, 0]
    a_mat[0::2, 1] = -p[:, 1]
    a_mat[0::2, 2] = 1.0
    a_mat[1::2, 0] = p[:, 1]
    a_mat[1::2, 1] = p[:, 0]
    a_mat[1::2, 3] = 1.0
    rhs = q.reshape(-1)
    a, b, tx, ty = np.linalg.pinv(a_mat) @ rhs
    return np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)


def fit_part_similarities(
    keypoints: np.ndarray, res: int = 2048, source: str = "<keypoints>"
) -> np.ndarray:
    """Fit one similarity per body part, mapping image NC to canvas NC (fact sheet §3.3).

    For each part the (fallback-resolved) keypoints are converted to NC and fitted in float64 by
    pseudo-inverse least squares to the part's fixed canvas targets; for capped parts, if the NC
    distance ``L`` of the reference pair is below ``tau``, all targets are multiplied by ``L / tau``
    (fitted scale 1).

    Fallbacks (explicit validity; a row is valid iff its confidence > 0 and it is finite):

    * lower-arm third point: mean of the valid fingers of that hand; with no valid finger,
      ``wrist + 0.25 * (wrist - elbow)`` (collinear with the canvas targets);
    * feet: a missing big toe uses the small toe and vice versa; a missing heel uses the ankle;
    * ears: handled in :func:`openpose_to_keypoints31` (missing ear -> eye); still missing -> error;
    * any other required keypoint missing -> :class:`PartPlacementError`.

    Args:
        keypoints: ``(31, 3)`` array ``(u, v, confidence)`` in the ``res x res`` pixel frame.
        res: side of the square pixel frame.
        source: name of the input, used in error messages.

    Returns:
        ``(12, 2, 3)`` float32 array ``M``; ``M[k] = [[a, -b, tx], [b, a, ty]]`` maps image NC to
        the canvas NC of part ``k`` (order of :data:`PART_NAMES`). Always finite.

    Raises:
        KeypointError: ``keypoints`` has the wrong shape.
        PartPlacementError: a part lacks required keypoints (all such parts and keypoints are
            named), or its fit is degenerate (coincident points, vanishing or non-finite scale).
    """
    kp = _check_keypoints(keypoints, source)
    valid = _valid_mask(kp)
    nc = np.where(valid[:, None], keypoints_to_nc(np.where(valid[:, None], kp, 0.0), res), 0.0)

    out = np.zeros((NUM_PARTS, 2, 3), dtype=np.float32)
    problems: list[str] = []
    bad_parts: list[str] = []
    bad_keypoints: list[str] = []
    for k, spec in enumerate(_PARTS):
        pts: list[np.ndarray] = []
        missing: list[str] = []
        for pid in spec.points:
            pos, names = _resolve_point(pid, nc, valid)
            if pos is None:
                missing.extend(n for n in names if n not in missing)
            else:
                pts.append(pos)
        if missing:
            problems.append(f"{spec.name} (missing {', '.join(missing)})")
            bad_parts.append(spec.name)
            bad_keypoints.extend(n for n in missing if n not in bad_keypoints)
            continue

        p = np.stack(pts)
        q = np.asarray(spec.targets, dtype=np.float64)
        spread = float(np.max(np.linalg.norm(p - p.mean(axis=0), axis=1)))
        if not spread > _MIN_SPREAD:
            problems.append(f"{spec.name} (degenerate: its keypoints coincide)")
            bad_parts.append(spec.name)
            continue
        if spec.cap is not None:
            i, j, tau = spec.cap
            length = float(np.linalg.norm(p[i] - p[j]))
            if length < tau:
                q = q * (length / tau)
        m = _fit_similarity(p, q)
        scale = math.hypot(m[0, 0], m[1, 0])
        m32 = m.astype(np.float32)
        if not (np.all(np.isfinite(m32)) and math.isfinite(scale) and scale > _MIN_SCALE):
            problems.append(f"{spec.name} (degenerate fit: scale {scale:.3g})")
            bad_parts.append(spec.name)
            continue
        out[k] = m32

    if problems:
        raise PartPlacementError(
            f"{source}: cannot place body part(s): {'; '.join(problems)}",
            parts=bad_parts,
            keypoints=bad_keypoints,
        )
    return out


def invert_affine(M: torch.Tensor) -> torch.Tensor:
    """Invert 2x3 affine matrices: ``[R | t] -> [R^-1 | -R^-1 t]``.

    Computed in float32 with ``torch.linalg.inv`` of the 2x2 block and a matrix-vector product, as
    the authors do, so results match their float32 values.

    Args:
        M: ``[..., 2, 3]`` tensor (any float dtype; computed in float32).

    Returns:
        ``[..., 2, 3]`` float32 tensor on ``M``'s device.
    """
    if M.ndim < 2 or tuple(M.shape[-2:]) != (2, 3):
        raise ValueError(f"invert_affine expects [..., 2, 3], got {tuple(M.shape)}")
    m = M.to(torch.float32)
    r_inv = torch.linalg.inv(m[..., :2])
    t_inv = -torch.matmul(r_inv, m[..., 2:3])
    return torch.cat([r_inv, t_inv], dim=-1)


def part_matrices(
    keypoints: np.ndarray, res: int = 2048, source: str = "<keypoints>"
) -> tuple[np.ndarray, np.ndarray]:
    """Part similarities and the model's sampling matrices.

    Args:
        keypoints: ``(31, 3)`` array ``(u, v, confidence)`` in the ``res x res`` pixel frame.
        res: side of the square pixel frame.
        source: name of the input, used in error messages.

    Returns:
        ``(M, theta)``, both ``(12, 2, 3)`` float32: ``M`` from :func:`fit_part_similarities`
        (image NC -> canvas NC) and ``theta = invert_affine(M)`` (canvas NC -> image NC, for
        ``affine_grid``).

    Raises:
        PartPlacementError: see :func:`fit_part_similarities`; also if an inverse is not finite.
    """
    m = fit_part_similarities(keypoints, res=res, source=source)
    theta = invert_affine(torch.from_numpy(m)).numpy()
    if not np.all(np.isfinite(theta)):
        bad = [PART_NAMES[k] for k in range(NUM_PARTS) if not np.all(np.isfinite(theta[k]))]
        raise PartPlacementError(
            f"{source}: cannot place body part(s): non-finite inverse for {', '.join(bad)}",
            parts=bad,
        )
    return m, theta
