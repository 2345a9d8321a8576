"""Folder driver of ``test_02_model.py``: each photo's keypoints and mask, the Predictor, outputs.

Where an image's inputs come from (:class:`InputOptions`):

* keypoints: ``"file"`` (default, the authors' way): ``<stem>_keypoints.json`` (OpenPose) or
  ``.npy`` beside the image or in ``keypoint_dir``; ``"auto"``: that file when it exists, else
  the built-in detector (:mod:`inference.detect`, the photo extra); ``"detect"``: always the
  detector. Detected keypoints are written as OpenPose JSON (``keypoints/<stem>_keypoints.json``,
  readable back with ``--keypoint_dir``, so they can be corrected by hand) with an overlay
  picture (``keypoints/<stem>_overlay.jpg``).
* mask: the image's alpha, else ``<stem>_mask.png`` / ``<stem>.png`` in ``mask_dir``, else
  ``"rembg"`` (default, the authors' way: rembg with a local model, see
  :mod:`inference.background`), ``"segmenter"`` (the detector's person segmentation), or
  ``"auto"``: the segmenter when the photo extra is installed and no rembg model was named, else
  rembg.

A bad image (file, keypoints, mask, no person found) fails alone with its reason; the batch goes
on and nothing of that image is written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from utils.batch import run_item

from .background import alpha_mask, find_mask_file, read_mask
from .detect import (
    Detection,
    DetectionError,
    KeypointDetector,
    PhotoExtraMissing,
    draw_overlay,
    photo_extra_missing,
)
from .io import (
    InputError,
    check_keypoints_in_image,
    image_stem,
    keypoint_file,
    list_images,
    load_keypoints,
    read_image,
    write_files,
)
from .predictor import OutputOptions, Predictor, output_names, prediction_files

log = logging.getLogger(__name__)

KEYPOINT_SOURCES = ("file", "auto", "detect")
MASK_SOURCES = ("rembg", "auto", "segmenter")
SEGMENT_THRESHOLD = 0.5
"""Person probability above which a pixel of the segmenter's map is foreground."""


@dataclass(frozen=True)
class InputOptions:
    """Where keypoints and masks come from (see the module docstring).

    Args:
        keypoints: one of :data:`KEYPOINT_SOURCES`.
        mask: one of :data:`MASK_SOURCES` (used when the image has no alpha and no mask file).
        keypoint_dir: folder of the keypoint files (default: beside each image).
        mask_dir: folder of mask files.
        rembg_model_given: a rembg model was named (``--rembg_model``): ``mask="auto"`` uses it.
        min_confidence: the detector's visibility below which a body point is missing.
    """

    keypoints: str = "file"
    mask: str = "rembg"
    keypoint_dir: str | os.PathLike | None = None
    mask_dir: str | os.PathLike | None = None
    rembg_model_given: bool = False
    min_confidence: float = 0.1

    def __post_init__(self) -> None:
        if self.keypoints not in KEYPOINT_SOURCES:
            raise ValueError(f"keypoints must be one of {KEYPOINT_SOURCES}, got {self.keypoints!r}")
        if self.mask not in MASK_SOURCES:
            raise ValueError(f"mask must be one of {MASK_SOURCES}, got {self.mask!r}")

    @property
    def mask_fallback(self) -> str:
        """What makes the mask of an image without alpha or mask file: segmenter or rembg."""
        if self.mask == "auto":
            use_rembg = self.rembg_model_given or photo_extra_missing() is not None
            return "rembg" if use_rembg else "segmenter"
        return self.mask

    def check(self) -> None:
        """Refuse at once sources that need the photo extra when it is absent.

        Raises:
            PhotoExtraMissing: naming the install command.
        """
        missing = photo_extra_missing()
        if missing and (self.keypoints == "detect" or self.mask == "segmenter"):
            raise PhotoExtraMissing(missing)


@dataclass
class Item:
    """One input ready for the Predictor.

    Attributes:
        image: [H, W, 3|4] uint8 RGB(A).
        keypoints: (31, 3) ``(u, v, confidence)`` in the image's pixels.
        mask: [H, W] bool foreground, or None (alpha or rembg inside the Predictor).
        keypoint_source: the keypoint file, or ``"detector"``.
        mask_source: ``"alpha"``, the mask file, ``"segmenter"`` or ``"rembg"``.
        detection: the detector's result when it ran, else None.
    """

    image: np.ndarray
    keypoints: np.ndarray
    mask: np.ndarray | None
    keypoint_source: str
    mask_source: str
    detection: Detection | None = None


class InputReader:
    """Reads images with their keypoints and masks; one detector serves the whole batch."""

    def __init__(self, options: InputOptions | None = None) -> None:
        self.options = options or InputOptions()
        self._detector: KeypointDetector | None = None

    def detect(self, rgb: np.ndarray, source: str) -> Detection:
        """Run the built-in detector (created at the first call).

        Raises:
            DetectionError: no person, or the photo extra is not installed.
        """
        if self._detector is None:
            try:
                self._detector = KeypointDetector(self.options.min_confidence)
            except PhotoExtraMissing as exc:
                raise DetectionError(f"{source}: {exc}") from exc
        return self._detector(rgb, source)

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def read(self, path: str | os.PathLike) -> Item:
        """Read one image and resolve its keypoints and mask.

        Raises:
            InputError, KeypointError, DetectionError: naming the file and the problem.
        """
        path = Path(path)
        source = os.fspath(path)
        opts = self.options
        image = read_image(path)
        h, w = image.shape[:2]
        has_alpha = image.shape[2] == 4 and alpha_mask(image, source) is not None
        mask_path = None
        if opts.mask_dir is not None and not has_alpha:
            mask_path = find_mask_file(opts.mask_dir, image_stem(path), path)

        kp_path = None
        if opts.keypoints != "detect":
            try:
                kp_path = keypoint_file(path, opts.keypoint_dir)
            except InputError as exc:
                if opts.keypoints == "file":
                    raise
                missing = photo_extra_missing()
                if missing:
                    raise InputError(f"{exc}; --keypoints auto: {missing}") from exc
        fallback = opts.mask_fallback
        needs_mask = not has_alpha and mask_path is None
        detection = None
        if kp_path is None or (needs_mask and fallback == "segmenter"):
            detection = self.detect(np.ascontiguousarray(image[:, :, :3]), source)
            for note in detection.warnings:
                log.warning("%s: %s", source, note)

        if kp_path is not None:
            keypoints = load_keypoints(kp_path)
            check_keypoints_in_image(keypoints, h, w, os.fspath(kp_path))
            kp_source = os.fspath(kp_path)
        else:
            keypoints = detection.keypoints31(source=f"{source} (detected)")
            kp_source = "detector"

        mask = None
        if has_alpha:
            mask_source = "alpha"
        elif mask_path is not None:
            mask, mask_source = read_mask(mask_path, h, w), os.fspath(mask_path)
        elif fallback == "segmenter":
            mask, mask_source = segmenter_mask(detection, source), "segmenter"
        else:
            mask_source = "rembg"
        return Item(image, keypoints, mask, kp_source, mask_source, detection)


def segmenter_mask(detection: Detection, source: str = "<image>") -> np.ndarray:
    """Foreground from the detector's person segmentation: probability > 0.5.

    Returns:
        [H, W] bool.
    Raises:
        DetectionError: no segmentation or no foreground pixel.
    """
    if detection.segmentation is None or not (detection.segmentation > SEGMENT_THRESHOLD).any():
        raise DetectionError(f"{source}: the segmenter found no person")
    return detection.segmentation > SEGMENT_THRESHOLD


def detection_files(item: Item, stem: str) -> dict[str, bytes]:
    """``keypoints/<stem>_keypoints.json`` (OpenPose layout) and ``keypoints/<stem>_overlay.jpg``
    of an item whose keypoints were detected; nothing otherwise."""
    if item.keypoint_source != "detector":
        return {}
    doc = json.dumps(item.detection.openpose(), indent=1).encode()
    overlay = draw_overlay(np.ascontiguousarray(item.image[:, :, :3]), item.detection)
    ok, jpg = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise OSError(f"{stem}: OpenCV could not encode the keypoint overlay")
    return {
        f"keypoints/{stem}_keypoints.json": doc,
        f"keypoints/{stem}_overlay.jpg": jpg.tobytes(),
    }


@dataclass
class BatchReport:
    """Result of :func:`run_folder`: images done, skipped (outputs present) and failed (with the
    failure's one line, which names the file)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _run_image(
    predictor: Predictor,
    reader: InputReader,
    path: Path,
    stem: str,
    out_dir: str | os.PathLike,
    options: OutputOptions,
) -> tuple[Item, float]:
    """Read, predict and write one image (all its files at once); returns the item and the
    forward time in seconds."""
    item = reader.read(path)
    pred = predictor.predict(item.image, item.keypoints, item.mask, os.fspath(path))
    # detected keypoints first: --skip_existing looks for the prediction files, so an image
    # interrupted between the two groups is redone, not skipped without its keypoint files
    write_files(out_dir, detection_files(item, stem) | prediction_files(pred, stem, options))
    return item, pred.seconds


def run_folder(
    predictor: Predictor,
    images: Sequence[Path] | str | os.PathLike,
    out_dir: str | os.PathLike,
    inputs: InputOptions | None = None,
    options: OutputOptions | None = None,
    skip_existing: bool = False,
    progress: bool = True,
    debug: bool = False,
) -> BatchReport:
    """Run the Predictor on every image and write the outputs (:func:`output_names`, plus the
    detected keypoints, :func:`detection_files`).

    Each image is isolated (:func:`utils.batch.run_item`): a bad image (or keypoint, mask,
    detector, rembg problem), and any unexpected exception while it is read, predicted or written,
    is logged as one line with its file and the reason and leaves no output file; the others go
    on. An image with the stem of an earlier one (``a.png``, ``a.jpg``) fails too, instead of
    overwriting that one's outputs.

    Args:
        predictor: the model.
        images: a folder (:func:`inference.io.list_images`) or a list of image files.
        out_dir: output root (the authors' ``<save_path>/<save_name>``).
        inputs: where keypoints and masks come from (default :class:`InputOptions`).
        options: what to write (default :class:`OutputOptions`).
        skip_existing: skip images whose outputs all exist.
        progress: show a tqdm bar.
        debug: log the traceback of each failed image too.
    """
    options = options or OutputOptions()
    reader = InputReader(inputs)
    paths = list_images(images) if isinstance(images, (str, os.PathLike)) else list(images)
    report = BatchReport()
    stems: dict[str, Path] = {}
    try:
        for path in tqdm(paths, desc="2K2K", unit="image", disable=not progress):
            stem = image_stem(path)
            if stem in stems:  # a.png and a.jpg: the second would overwrite (or "skip") the first
                message = f"{path}: same name as {stems[stem].name}, whose outputs it would replace"
                log.error("FAILED %s", message)
                report.failed.append((path, message))
                continue
            stems[stem] = path
            names = output_names(stem, options)
            if skip_existing and all((Path(out_dir) / n).is_file() for n in names):
                report.skipped.append(path)
                continue
            failures: list[tuple[str, str]] = []
            result = run_item(
                path,
                partial(_run_image, predictor, reader, path, stem, out_dir, options),
                failures,
                debug=debug,
                logger=log,
            )
            if result is None:
                report.failed.append((path, failures[0][1]))
                continue
            item, seconds = result
            log.info(
                "%s: keypoints %s, mask %s, forward %.1f s",
                path.name,
                item.keypoint_source,
                item.mask_source,
                seconds,
            )
            report.done.append(path)
    finally:
        reader.close()
    return report
