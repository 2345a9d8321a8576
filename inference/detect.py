"""Built-in 2D keypoints and person masks for plain photos (optional install: the photo extra).

The detector is MediaPipe 0.10.21's Holistic solution (BlazePose "full", ``model_complexity=1``,
plus its hand-landmark model on crops around the pose's wrists), whose weights ship inside the
wheel: nothing is downloaded. One call gives the pose, both hands and a person segmentation mask.
The result is written in OpenPose's JSON layout (BODY_25 + hands), so the rest of the pipeline
reads a detected photo exactly as one with OpenPose keypoints
(:func:`utils.keypoints.openpose_to_keypoints31`: same missing-point rules, ear fallback, part
fits). Install: ``bash scripts/setup.sh --photo`` (:data:`PHOTO_INSTALL`).

BlazePose (33 landmarks) -> BODY_25, every choice:

* nose, eyes (eye centres), ears, shoulders, elbows, wrists, hips, knees, ankles: the landmark
  of the same name (``left`` = the person's own left, as in OpenPose);
* neck (1) = midpoint of the shoulders, mid-hip (8) = midpoint of the hips (OpenPose's own
  definitions; 2K2K uses neither);
* big toe (19, 22) = ``foot_index`` (the tip of the foot), heel (21, 24) = ``heel``;
* small toe (20, 23): BlazePose has none; written as missing, so the part fit uses the big toe
  for both toes (the existing fallback; the foot canvas maps both toes to the same target, so
  only their mean matters);
* hands: the 21 hand landmarks have OpenPose's hand layout (wrist, then 4 joints per finger from
  the thumb), so they are written unchanged; 2K2K reads the PIP joints (6, 10, 14, 18).

Confidences: a body point's is BlazePose's ``visibility``; hand points take the visibility of
their wrist (Holistic reports no hand score). A point is written as missing (0, 0, 0, OpenPose's
convention) when its confidence is below ``min_confidence`` or it lies outside the image (BlazePose
places joints it cannot see, e.g. ankles below a photo cut at the knees, beyond the frame).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from utils.keypoints import openpose_to_keypoints31

from .io import InputError

log = logging.getLogger(__name__)

PHOTO_INSTALL = "bash scripts/setup.sh --photo"
"""Command that installs the photo extra (requirements-photo.txt) into the project's .venv."""

MEDIAPIPE_VERSION = "0.10.21"
"""The last MediaPipe release whose wheel ships the Holistic and Pose models."""

# BlazePose landmark indices.
_NOSE, _L_EYE, _R_EYE, _L_EAR, _R_EAR = 0, 2, 5, 7, 8
_L_SHOULDER, _R_SHOULDER, _L_ELBOW, _R_ELBOW, _L_WRIST, _R_WRIST = 11, 12, 13, 14, 15, 16
_L_HIP, _R_HIP, _L_KNEE, _R_KNEE, _L_ANKLE, _R_ANKLE = 23, 24, 25, 26, 27, 28
_L_HEEL, _R_HEEL, _L_FOOT, _R_FOOT = 29, 30, 31, 32

#: BODY_25 row -> BlazePose landmark(s) whose mean it is; None = not detected (small toes).
BODY25_FROM_BLAZEPOSE: tuple[tuple[int, ...] | None, ...] = (
    (_NOSE,),  # 0 nose
    (_L_SHOULDER, _R_SHOULDER),  # 1 neck
    (_R_SHOULDER,),  # 2
    (_R_ELBOW,),  # 3
    (_R_WRIST,),  # 4
    (_L_SHOULDER,),  # 5
    (_L_ELBOW,),  # 6
    (_L_WRIST,),  # 7
    (_L_HIP, _R_HIP),  # 8 mid-hip
    (_R_HIP,),  # 9
    (_R_KNEE,),  # 10
    (_R_ANKLE,),  # 11
    (_L_HIP,),  # 12
    (_L_KNEE,),  # 13
    (_L_ANKLE,),  # 14
    (_R_EYE,),  # 15
    (_L_EYE,),  # 16
    (_R_EAR,),  # 17
    (_L_EAR,),  # 18
    (_L_FOOT,),  # 19 left big toe
    None,  # 20 left small toe
    (_L_HEEL,),  # 21
    (_R_FOOT,),  # 22 right big toe
    None,  # 23 right small toe
    (_R_HEEL,),  # 24
)

# Native log lines MediaPipe prints on every run that carry no information for a user.
_NOISE = (
    "inference_feedback_manager.cc",
    "landmark_projection_calculator.cc",
    "Created TensorFlow Lite XNNPACK delegate",
    "All log messages before absl::InitializeLog()",
    "'MessageFactory' object has no attribute 'GetPrototype'",  # protobuf >= 5, harmless
    "gl_context.cc",
)


class PhotoExtraMissing(RuntimeError):
    """The photo extra (MediaPipe) is not installed; the message names the install command."""


class DetectionError(InputError):
    """No usable person in a photo (the message names the file and what was missing)."""


def photo_extra_missing() -> str | None:
    """Why the photo extra cannot be used (one line naming the install command), or None."""
    if importlib.util.find_spec("mediapipe") is None:
        return (
            f"the photo extra (MediaPipe {MEDIAPIPE_VERSION}) is not installed: run {PHOTO_INSTALL}"
        )
    return None


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Drop MediaPipe's native log noise (file descriptors 1 and 2, written by its C++ threads)
    and pass every other line on to stderr."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            libc.fflush(None)  # C stdio buffers, still aimed at the temporary file
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if line.strip() and not any(n in line for n in _NOISE):
                    print(line, file=sys.stderr)


def _import_holistic() -> object:
    missing = photo_extra_missing()
    if missing is not None:
        raise PhotoExtraMissing(missing)
    with quiet_native_output():
        from mediapipe.python.solutions import holistic
    return holistic


@dataclass
class Detection:
    """What the detector found in one photo (pixel frame of the photo).

    Attributes:
        body25: (25, 3) rows ``(u, v, confidence)``, OpenPose's BODY_25 order; missing = 0.
        hands: ``{"left": (21, 3), "right": (21, 3)}``, OpenPose's hand layout; a hand that was
            not found is all 0.
        segmentation: [H, W] float32 person probability in [0, 1], or None when not computed.
        warnings: notes about the photo (back view, points outside the frame ...).
    """

    body25: np.ndarray
    hands: dict[str, np.ndarray]
    segmentation: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    def openpose(self) -> dict:
        """The detection as an OpenPose JSON object (one person)."""
        return {
            "version": 1.3,
            "people": [
                {
                    "person_id": [-1],
                    "pose_keypoints_2d": _flat(self.body25),
                    "hand_left_keypoints_2d": _flat(self.hands["left"]),
                    "hand_right_keypoints_2d": _flat(self.hands["right"]),
                    "face_keypoints_2d": [],
                }
            ],
            "detector": f"mediapipe {MEDIAPIPE_VERSION} holistic (model_complexity 1)",
            "warnings": list(self.warnings),
        }

    def keypoints31(self, source: str = "<detection>") -> np.ndarray:
        """(31, 3) 2K2K keypoints, read from :meth:`openpose` as an OpenPose file would be."""
        return openpose_to_keypoints31(self.openpose(), source=source)


def _flat(rows: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in rows.reshape(-1)]


def _landmarks(proto: object | None, count: int) -> np.ndarray | None:
    """(count, 3) ``x, y, visibility`` of a MediaPipe landmark list (normalised x, y)."""
    if proto is None:
        return None
    pts = np.array([(p.x, p.y, p.visibility) for p in proto.landmark], dtype=np.float64)
    if pts.shape != (count, 3):
        raise RuntimeError(f"MediaPipe returned {pts.shape[0]} landmarks, expected {count}")
    return pts


class KeypointDetector:
    """Photo -> :class:`Detection` with MediaPipe Holistic, offline (bundled weights).

    One graph serves a whole batch (``static_image_mode``: every photo is detected afresh).
    MediaPipe finds one person, its most prominent; to warn about a second one, each photo is
    detected once more with the first person's box painted over (about 1.5x the time).

    Args:
        min_confidence: body points whose visibility is below this are written as missing.
        segmentation: also compute the person mask (used by ``--mask auto``).
    Raises:
        PhotoExtraMissing: MediaPipe is not installed.
    """

    def __init__(self, min_confidence: float = 0.1, segmentation: bool = True) -> None:
        if not 0.0 <= min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence}")
        holistic = _import_holistic()
        self.min_confidence = min_confidence
        self.segmentation = segmentation
        with quiet_native_output(), warnings.catch_warnings():
            # protobuf 6 deprecates FieldDescriptor.label, which MediaPipe 0.10.21 reads
            warnings.simplefilter("ignore", DeprecationWarning)
            self._graph = holistic.Holistic(
                static_image_mode=True,
                model_complexity=1,
                enable_segmentation=segmentation,
                refine_face_landmarks=False,
            )
            # the graph's threads set up their models (and log about it) at the first frame:
            # run one now, while the noise is caught, rather than in the middle of the batch
            self._graph.process(np.zeros((64, 64, 3), np.uint8))

    def close(self) -> None:
        with quiet_native_output():
            self._graph.close()

    def __enter__(self) -> KeypointDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, rgb: np.ndarray, source: str = "<image>") -> Detection:
        """Detect the person in an [H, W, 3] uint8 RGB photo.

        Raises:
            DetectionError: no person found.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"{source}: expected [H, W, 3] uint8 RGB, got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        with quiet_native_output():
            result = self._graph.process(np.ascontiguousarray(rgb))
        pose = _landmarks(result.pose_landmarks, 33)
        if pose is None:
            raise DetectionError(f"{source}: no person detected (MediaPipe found no body)")
        pix = pose[:, :2] * (w, h)
        conf = pose[:, 2].copy()
        inside = _in_frame(pix, w, h)
        conf[~inside | (conf < self.min_confidence)] = 0.0
        body = np.zeros((25, 3), dtype=np.float64)
        for row, ids in enumerate(BODY25_FROM_BLAZEPOSE):
            if ids is None or np.any(conf[list(ids)] <= 0):
                continue
            body[row, :2] = pix[list(ids)].mean(axis=0)
            body[row, 2] = conf[list(ids)].min()
        hands = {}
        for side, proto, wrist in (
            ("left", result.left_hand_landmarks, _L_WRIST),
            ("right", result.right_hand_landmarks, _R_WRIST),
        ):
            hand = np.zeros((21, 3), dtype=np.float64)
            pts = _landmarks(proto, 21)
            if pts is not None and conf[wrist] > 0:
                hand[:, :2] = pts[:, :2] * (w, h)
                hand[:, 2] = conf[wrist]
                hand[~_in_frame(hand[:, :2], w, h)] = 0.0
            hands[side] = hand
        seg = None
        if self.segmentation and result.segmentation_mask is not None:
            seg = np.asarray(result.segmentation_mask, dtype=np.float32)
        det = Detection(body, hands, seg)
        det.warnings.extend(_view_warnings(body, inside, w, h))
        other = self._other_person(rgb, pix[inside])
        if other is not None:
            det.warnings.append(
                f"another person near ({other[0]:.0f}, {other[1]:.0f}) px was ignored: only the "
                "detector's most prominent person is reconstructed"
            )
        return det

    def _other_person(self, rgb: np.ndarray, points: np.ndarray) -> np.ndarray | None:
        """Centre (u, v) of a second person, found by detecting again with the first one's
        box (its landmarks, 15 % margin) painted over in the photo's median colour; else None.
        """
        if len(points) == 0:
            return None
        lo, hi = points.min(axis=0), points.max(axis=0)
        margin = 0.15 * (hi - lo) + 2.0
        x0, y0 = np.floor(np.maximum(lo - margin, 0)).astype(int)
        x1, y1 = np.ceil(hi + margin).astype(int)
        painted = rgb.copy()
        painted[y0:y1, x0:x1] = np.median(rgb.reshape(-1, 3), axis=0).astype(np.uint8)
        with quiet_native_output():
            result = self._graph.process(painted)
        pose = _landmarks(result.pose_landmarks, 33)
        if pose is None:
            return None
        torso = pose[[_L_SHOULDER, _R_SHOULDER, _L_HIP, _R_HIP]]
        if torso[:, 2].min() < 0.5:
            return None
        centre = torso[:, :2].mean(axis=0) * rgb.shape[1::-1]
        inside_box = x0 <= centre[0] < x1 and y0 <= centre[1] < y1
        return None if inside_box else centre


def _in_frame(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which (N, 2) pixel positions ``(u, v)`` lie inside a ``width x height`` image."""
    u, v = points[:, 0], points[:, 1]
    return (u >= 0) & (u < width) & (v >= 0) & (v < height)


def _view_warnings(body: np.ndarray, inside: np.ndarray, width: int, height: int) -> list[str]:
    """Notes on a detection that 2K2K's training data never had."""
    notes = []
    ls, rs = body[5], body[2]
    if ls[2] > 0 and rs[2] > 0 and ls[0] < rs[0]:
        notes.append(
            "back view? the left shoulder is on the image's left (2K2K was trained on front "
            "views within 30 degrees of yaw; the result is reconstructed as a front view)"
        )
    if not inside.all():
        notes.append(f"part of the body lies outside the {width}x{height} photo")
    return notes


def draw_overlay(rgb: np.ndarray, detection: Detection) -> np.ndarray:
    """The photo with the detected skeleton, for checking: [H, W, 3] uint8 BGR (to write)."""
    canvas = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    scale = max(rgb.shape[:2]) / 1024.0
    thick = max(1, round(2 * scale))
    radius = max(2, round(4 * scale))
    # person's left in blue-ish, right in red-ish (BGR), centre in green
    limbs = [
        ((1, 2), (0, 0, 255)), ((2, 3), (0, 0, 255)), ((3, 4), (0, 0, 255)),
        ((1, 5), (255, 0, 0)), ((5, 6), (255, 0, 0)), ((6, 7), (255, 0, 0)),
        ((1, 8), (0, 200, 0)), ((0, 1), (0, 200, 0)),
        ((8, 9), (0, 0, 255)), ((9, 10), (0, 0, 255)), ((10, 11), (0, 0, 255)),
        ((11, 24), (0, 0, 255)), ((11, 22), (0, 0, 255)),
        ((8, 12), (255, 0, 0)), ((12, 13), (255, 0, 0)), ((13, 14), (255, 0, 0)),
        ((14, 21), (255, 0, 0)), ((14, 19), (255, 0, 0)),
        ((0, 15), (0, 0, 255)), ((15, 17), (0, 0, 255)),
        ((0, 16), (255, 0, 0)), ((16, 18), (255, 0, 0)),
    ]  # fmt: skip
    body = detection.body25
    for (a, b), color in limbs:
        if body[a, 2] > 0 and body[b, 2] > 0:
            pa, pb = (tuple(int(round(v)) for v in body[i, :2]) for i in (a, b))
            cv2.line(canvas, pa, pb, color, thick, cv2.LINE_AA)
    for i in np.flatnonzero(body[:, 2] > 0):
        cv2.circle(canvas, tuple(int(round(v)) for v in body[i, :2]), radius, (0, 255, 255), -1)
    for side, color in (("left", (255, 128, 0)), ("right", (0, 128, 255))):
        hand = detection.hands[side]
        for finger in range(5):
            chain = [0] + list(range(1 + 4 * finger, 5 + 4 * finger))
            for a, b in zip(chain[:-1], chain[1:], strict=True):
                if hand[a, 2] > 0 and hand[b, 2] > 0:
                    pa, pb = (tuple(int(round(v)) for v in hand[i, :2]) for i in (a, b))
                    cv2.line(canvas, pa, pb, color, max(1, thick // 2), cv2.LINE_AA)
    return canvas
