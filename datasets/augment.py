"""Input-image augmentation of the authors' training (facts sheet §5.3 steps 4-6), NumPy + OpenCV.

Images are ``[H, W, 3]`` float32 RGB in ``[0, 1]``; masks ``[H, W]`` bool (True = the person).
Every random draw comes from an explicit ``np.random.Generator``, so a sample is a pure function
of its generator's seed. The order of a training sample: :func:`apply_jitter` on the human render,
:func:`composite` with a background (:func:`background_crop`), then :func:`soften_boundary`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.camera import REFERENCE_RES
from utils.errors import BadInputError

log = logging.getLogger(__name__)

JITTER_OPS = ("brightness", "contrast", "saturation")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
BAND_LOW, BAND_HIGH = 0.2, 0.8
"""A pixel is in the softened band when its 3x3-blurred mask value lies strictly between these."""
SMOOTH_MARGIN = 3
"""Pixels a band pixel's smoothed value depends on: 1 (3x3 median) + 2 (5x5 Gaussian)."""


def grayscale(image: np.ndarray) -> np.ndarray:
    """[H, W] float32 luma ``0.299 R + 0.587 G + 0.114 B`` of an [H, W, 3] RGB image."""
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


# The adjustments compute in place on their one new array (same float32 operations and order as
# ``np.clip(f * image + ..., 0, 1)``, so the same values, without the temporaries).


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """``x * factor`` clamped to [0, 1] (torchvision ``adjust_brightness``)."""
    out = image * np.float32(factor)
    return np.clip(out, 0.0, 1.0, out=out)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean of the grayscale image, clamped to [0, 1] (``adjust_contrast``)."""
    f = np.float32(factor)
    out = f * image
    out += (1 - f) * grayscale(image).mean()
    return np.clip(out, 0.0, 1.0, out=out)


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the grayscale image, clamped to [0, 1] (``adjust_saturation``)."""
    f = np.float32(factor)
    grey = grayscale(image)
    grey *= 1 - f
    out = f * image
    out += grey[:, :, None]
    return np.clip(out, 0.0, 1.0, out=out)


_ADJUST = {
    "brightness": adjust_brightness,
    "contrast": adjust_contrast,
    "saturation": adjust_saturation,
}


@dataclass(frozen=True)
class JitterParams:
    """One draw of the colour jitter: the op order (a permutation of :data:`JITTER_OPS`) and the
    three factors (1 = unchanged)."""

    order: tuple[str, ...]
    brightness: float
    contrast: float
    saturation: float


def draw_jitter(rng: np.random.Generator, jitter: tuple[float, float] = (0.7, 1.0)) -> JitterParams:
    """Draw torchvision ``ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter)``
    parameters: a random op order, then each factor uniform in ``jitter`` (no hue)."""
    order = tuple(JITTER_OPS[i] for i in rng.permutation(len(JITTER_OPS)))
    b, c, s = (float(v) for v in rng.uniform(jitter[0], jitter[1], size=3))
    return JitterParams(order, brightness=b, contrast=c, saturation=s)


def apply_jitter(image: np.ndarray, params: JitterParams) -> np.ndarray:
    """Apply the three adjustments in ``params.order``; [H, W, 3] float32 in [0, 1]."""
    for op in params.order:
        image = _ADJUST[op](image, getattr(params, op))
    return image


def background_crop(background: np.ndarray, res: int, rng: np.random.Generator) -> np.ndarray:
    """Scale a background like the authors' x2 at 2048 and crop a random ``res`` square.

    The scale is ``2 res / 2048`` (bilinear), raised where needed so that both sides reach ``res``
    (the authors' random 2048 crop failed on images under 1024 px, facts §8 item 22).

    Args:
        background: [h, w, 3] uint8 BGR image of any size (:func:`load_background`).
        res: side of the crop in pixels.
        rng: draws the crop offset.
    Returns:
        [res, res, 3] float32 RGB in [0, 1].
    """
    h, w = background.shape[:2]
    scale = max(2.0 * res / REFERENCE_RES, res / min(h, w))
    size = (max(res, round(w * scale)), max(res, round(h * scale)))  # (width, height)
    scaled = cv2.resize(background, size, interpolation=cv2.INTER_LINEAR)
    y0 = int(rng.integers(0, size[1] - res + 1))
    x0 = int(rng.integers(0, size[0] - res + 1))
    crop = scaled[y0 : y0 + res, x0 : x0 + res, ::-1].astype(np.float32)  # BGR -> RGB
    crop /= 255.0
    return crop


def load_background(path: str | os.PathLike) -> np.ndarray | None:
    """[h, w, 3] uint8 BGR image, or None when it cannot be read. Grey, RGBA and 16-bit files
    are converted by OpenCV's ``IMREAD_COLOR`` (alpha dropped, 16 bit shifted to 8), as the
    authors read them."""
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def composite(image: np.ndarray, mask: np.ndarray, background: np.ndarray | None) -> np.ndarray:
    """Replace the pixels outside ``mask`` by ``background`` ([H, W, 3]; None = black)."""
    out = np.zeros_like(image) if background is None else background.copy()
    out = cv2.copyTo(image, mask.astype(np.uint8), out)  # ~4x faster than boolean indexing
    return out


def boundary_band(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool band about one pixel wide on each side of the silhouette: the mask blurred by
    OpenCV's 3x3 Gaussian (weights 1/4, 1/2, 1/4 per axis) lies in (0.2, 0.8)."""
    blurred = cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
    return (blurred > BAND_LOW) & (blurred < BAND_HIGH)


def soften_boundary(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Replace the :func:`boundary_band` pixels by the image after a 3x3 median filter and a 5x5
    Gaussian (1, 4, 6, 4, 1)/16 per axis (facts §5.3 step 6); [H, W, 3] float32.

    The filters run on the band's bounding box widened by :data:`SMOOTH_MARGIN` pixels (clipped
    to the image, whose own border rules then apply as on the full image), which gives every band
    pixel the same value as filtering the whole image.
    """
    band = boundary_band(mask)
    out = image.copy()
    rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
    if rows.size == 0:
        return out
    m = SMOOTH_MARGIN
    y0, y1 = max(0, rows[0] - m), min(image.shape[0], rows[-1] + 1 + m)
    x0, x1 = max(0, cols[0] - m), min(image.shape[1], cols[-1] + 1 + m)
    box = np.ascontiguousarray(image[y0:y1, x0:x1])
    smooth = cv2.GaussianBlur(cv2.medianBlur(box, 3), (5, 5), 0)
    inner, view = band[y0:y1, x0:x1], out[y0:y1, x0:x1]
    view[inner] = smooth[inner]
    return out


def find_backgrounds(path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Path]:
    """Background images from a folder or a list file.

    Args:
        path: a folder (every ``.jpg .jpeg .png .bmp`` below it, any case, sorted), or a list
            file with one image path per line (``\\`` read as ``/``; repeated lines are kept, so
            they are drawn more often, as in the authors' list).
        root: folder the list's paths are relative to; default the list folder's parent (the
            data root for ``<data_path>/list/<name>.txt``). The authors'
            ``train_split_indoor09_1024.txt`` holds ``<category>/<file>`` lines: pass
            ``root=<data_path>/IndoorCVPR09``.
    Returns:
        The existing image paths. Missing list entries are dropped with one warning (count and an
        example): 47 of the authors' images were never published (facts §8 item 22).
    Raises:
        BadInputError: ``path`` does not exist or is no text list, or no background image was
            found (``train.py`` stops with this one line before anything is written).
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        base = path.parent.parent if root is None else Path(root)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise BadInputError(f"{path}: cannot be read as a background list ({e})") from e
        lines = [ln.strip().replace("\\", "/") for ln in text.splitlines()]
        listed = [base / ln for ln in lines if ln]
        found = [p for p in listed if p.is_file()]
        missing = [p for p in listed if not p.is_file()]
        if missing:
            log.warning(
                "%s: %d of %d background entries missing, dropped (e.g. %s)",
                path,
                len(missing),
                len(listed),
                missing[0],
            )
    else:
        raise BadInputError(f"{path}: background folder or list not found")
    if not found:
        raise BadInputError(f"{path}: no background image found")
    return found


def draw_background(
    backgrounds: Sequence[Path], probability: float, rng: np.random.Generator
) -> Path | None:
    """With ``probability`` a uniformly drawn entry of ``backgrounds``, else None (black)."""
    if not backgrounds or rng.random() >= probability:
        return None
    return backgrounds[int(rng.integers(len(backgrounds)))]
