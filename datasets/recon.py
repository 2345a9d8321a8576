"""The training data set over the rendered ``PERS/`` layout (facts sheet §5.3, §6.1, §6.2).

A list file holds one view per line: three space-separated ``/``-led paths relative to the data
root (SHADED, NOSHADING, front DEPTH; only the first and third are read). The back depth is the
front path with ``_front.png`` -> ``_back.png``, the keypoints ``PERS/keypoint/<view>/<item>
_front.npy``. Samples feed ``Model2K2K.forward(image, theta)`` and ``Loss2K2K`` directly.

Randomness: a training sample draws everything from ``np.random.default_rng((seed, epoch,
index))``, so it is a pure function of those three numbers, whatever the worker count, order or
resume point. Call :meth:`ReconDataset.set_epoch` before creating each epoch's DataLoader iterator
(the authors build a new DataLoader per epoch; with ``persistent_workers=True`` the workers would
keep the old epoch).

Bad views are found at start-up by :meth:`ReconDataset.check_views` (every file present, PNG
headers, keypoints; no pixel decoding), which ``train.py`` runs before the first step. Bad samples
that still fail at run time (pixel data damaged behind an intact header, a file changed since):
``bad_samples="raise"`` raises :class:`DatasetError` naming the file and the problem (in a
DataLoader worker too: the main process re-raises it as a :class:`DatasetError`,
:func:`worker_error_message` recovers the one line). ``"skip"`` logs that message and returns
None; use :func:`collate_skip_none`, whose batches may then be smaller or None (skip those).
Skipping, rather than substituting another sample, keeps every sample a pure function of (seed,
epoch, index) and never repeats data silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from datasets.augment import (
    apply_jitter,
    background_crop,
    composite,
    draw_background,
    draw_jitter,
    load_background,
    soften_boundary,
)
from utils.camera import png_to_depth_units
from utils.errors import BadInputError
from utils.fileio import PNG_SIGNATURE
from utils.keypoints import KeypointError, part_matrices, read_keypoints_npy

log = logging.getLogger(__name__)

BAD_SAMPLE_POLICIES = ("raise", "skip")
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
PNG_TAIL_BYTES = 1024
"""A PNG counts as complete when its IEND chunk lies within its last 1 KiB (libpng ignores bytes
after it); a file cut short has none there."""
PNG_GREY = 0
"""PNG colour type of a single-channel (greyscale, no alpha) image: the depth maps'."""


def _untimed(name: str) -> AbstractContextManager:
    """The default ``stage`` of :meth:`ReconDataset.load`: nothing around each step."""
    return nullcontext()


class DatasetError(BadInputError):
    """A list or sample that cannot be used; the message names the file and the problem."""


def read_list(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """Lines of a list file as (SHADED, NOSHADING, front DEPTH) ``/``-led paths; blank lines, a
    byte-order mark and Windows line ends are accepted.

    Raises:
        DatasetError: the file is missing, unreadable or not UTF-8 text, or lines are malformed
            (every malformed line is named, numbered from 1, the first five in full).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: list file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot be read as a text list ({e})") from e
    out, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.startswith("/") for f in fields):
            bad.append(f"line {number}: {line.strip()[:120]!r}")
            continue
        out.append((fields[0], fields[1], fields[2]))
    if bad:
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise DatasetError(
            f"{path}: {len(bad)} malformed line(s), expected 3 space-separated '/'-led paths "
            f"(SHADED NOSHADING DEPTH): {'; '.join(bad[:5])}{more}"
        )
    return out


@dataclass(frozen=True)
class SampleFiles:
    """The files one sample reads."""

    shaded: Path
    depth_front: Path
    depth_back: Path
    keypoint: Path


def sample_files(data_path: Path, line: tuple[str, str, str]) -> SampleFiles:
    """Paths of one list line (the authors' ``DEPTH`` -> ``keypoint``, ``png`` -> ``npy``)."""
    shaded, _, depth = line
    if not depth.endswith("_front.png") or "/DEPTH/" not in depth:
        raise DatasetError(f"{depth}: expected a '.../DEPTH/<view>/<item>_front.png' path")
    keypoint = depth.replace("/DEPTH/", "/keypoint/", 1).removesuffix(".png") + ".npy"
    return SampleFiles(
        shaded=data_path / shaded.lstrip("/"),
        depth_front=data_path / depth.lstrip("/"),
        depth_back=data_path / (depth.lstrip("/").removesuffix("_front.png") + "_back.png"),
        keypoint=data_path / keypoint.lstrip("/"),
    )


def read_image(path: Path, flags: int, dtype: type, channels: int, res: int) -> np.ndarray:
    """Read an image and check its type and size; [res, res] or [res, res, channels].

    Raises:
        DatasetError: missing, undecodable (corrupt or truncated), other bit depth, channel
            count or size.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        image = cv2.imread(str(path), flags)
    except cv2.error as e:  # e.g. a header claiming more pixels than OpenCV's limit
        raise DatasetError(f"{path}: cannot be decoded ({e.err})") from e
    if image is None:
        raise DatasetError(f"{path}: cannot be decoded (corrupt or truncated image)")
    if image.dtype != dtype:
        raise DatasetError(f"{path}: {image.dtype} pixels, expected {np.dtype(dtype)}")
    found = 1 if image.ndim == 2 else image.shape[2]
    if found != channels:
        raise DatasetError(f"{path}: {found} channel(s), expected {channels}")
    if image.shape[:2] != (res, res):
        raise DatasetError(f"{path}: {image.shape[1]}x{image.shape[0]}, expected {res}x{res}")
    return image


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, reading 33 bytes and the
    last :data:`PNG_TAIL_BYTES`; None when the file is not a PNG (no PNG signature).

    Raises:
        DatasetError: missing, a PNG whose IHDR is damaged, or one cut short (no IEND at the end).
    """
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    with open(path, "rb") as f:
        head = f.read(33)
        if not head.startswith(PNG_SIGNATURE):
            return None
        f.seek(max(path.stat().st_size - PNG_TAIL_BYTES, 0))
        tail = f.read()
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise DatasetError(f"{path}: damaged PNG header (no IHDR chunk)")
    if PNG_IEND not in tail:
        raise DatasetError(f"{path}: truncated PNG (no IEND chunk at the end)")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return width, height, head[24], head[25]


def check_image(path: Path, flags: int, dtype: type, channels: int, res: int) -> None:
    """What :func:`read_image` will find, from the PNG header alone: the file is present and
    complete, ``res`` x ``res``, and for a depth map (``cv2.IMREAD_UNCHANGED``, uint16) 16-bit
    single-channel. A file that is not a PNG is decoded in full by :func:`read_image` instead.

    Raises:
        DatasetError: as :func:`read_image` would, naming the file.
    """
    header = png_header(path)
    if header is None:
        read_image(path, flags, dtype, channels, res)
        return
    width, height, bits, colour = header
    if flags == cv2.IMREAD_UNCHANGED and dtype == np.uint16 and (bits, colour) != (16, PNG_GREY):
        raise DatasetError(
            f"{path}: PNG of bit depth {bits}, colour type {colour}; expected 16-bit "
            f"single-channel (colour type {PNG_GREY})"
        )
    if (width, height) != (res, res):
        raise DatasetError(f"{path}: {width}x{height}, expected {res}x{res}")


def worker_error_message(exc: BadInputError) -> str:
    """The message of a :class:`DatasetError` (any bad-input error) as the user should see it.

    PyTorch re-raises a DataLoader worker's exception in the main process with ``Caught <type> in
    DataLoader worker process N`` and the worker's traceback as its message, whose last line is
    ``<module>.DatasetError: <message>``: that one line is returned. Any other message (raised in
    the main process, possibly of several lines, e.g. a checkpoint's missing keys) is returned as
    it is."""
    text = str(exc).strip()
    lines = text.splitlines()
    if not lines or not lines[0].startswith("Caught ") or "DataLoader worker" not in lines[0]:
        return text
    marker = f"{type(exc).__name__}: "
    return lines[-1].split(marker, 1)[1] if marker in lines[-1] else lines[-1]


def read_theta(path: Path, res: int) -> np.ndarray:
    """[12, 2, 3] float32 sampling matrices of a ``(31, 3)`` (or ``(3, 31)``) keypoint file of
    rows (u, v, c) in the ``res`` pixel frame; c > 0 marks a valid keypoint (facts §3.2).

    Raises:
        DatasetError: missing or unreadable file, wrong shape, a part that cannot be placed.
    """
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    try:
        _, theta = part_matrices(read_keypoints_npy(path), res, source=str(path))
    except KeypointError as e:
        raise DatasetError(str(e)) from e
    except (ValueError, TypeError) as e:  # an array NumPy cannot turn into float keypoints
        raise DatasetError(f"{path}: not a keypoint array ({e})") from e
    return theta


class ReconDataset(Dataset):
    """Training samples of 2K2K (facts §5.3): image, front/back depth, mask and part matrices.

    Args:
        data_path: data root the list paths are relative to.
        list_file: list of views (:func:`read_list`).
        res: image side in pixels; every file must have it.
        train: augment (colour jitter, random backgrounds); False = validation: no jitter, black
            background, no randomness.
        backgrounds: background images (:func:`datasets.augment.find_backgrounds`); None or
            empty = always black.
        background_prob: probability of a background image rather than black (authors: 0.9).
        jitter: range of the brightness, contrast and saturation factors (authors: 0.7-1.0).
        seed: base seed of the augmentation (>= 0).
        bad_samples: ``"raise"`` or ``"skip"`` (see the module docstring).
    """

    def __init__(
        self,
        data_path: str | os.PathLike,
        list_file: str | os.PathLike,
        res: int,
        train: bool,
        backgrounds: Sequence[Path] | None = None,
        background_prob: float = 0.9,
        jitter: tuple[float, float] = (0.7, 1.0),
        seed: int = 0,
        bad_samples: str = "raise",
    ) -> None:
        if bad_samples not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"bad_samples must be one of {BAD_SAMPLE_POLICIES}: {bad_samples!r}")
        if res < 1 or seed < 0:
            raise ValueError(f"need res >= 1 and seed >= 0, got res={res}, seed={seed}")
        if not 0.0 <= background_prob <= 1.0:
            raise ValueError(f"background_prob must be in [0, 1], got {background_prob}")
        if not 0.0 <= jitter[0] <= jitter[1]:
            raise ValueError(f"jitter must be (lo, hi) with 0 <= lo <= hi, got {jitter}")
        self.data_path = Path(data_path)
        self.res, self.train, self.seed, self.bad_samples = res, train, seed, bad_samples
        self.backgrounds = list(backgrounds or ())
        self.background_prob, self.jitter = background_prob, jitter
        self.epoch = 0
        self.list_file = Path(list_file)
        self.files = [sample_files(self.data_path, line) for line in read_list(list_file)]
        if not self.files:
            raise DatasetError(f"{list_file}: no samples")
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (>= 0) for every following sample."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int | str] | None:
        """One sample; None for a bad sample under ``bad_samples="skip"``.

        Returns:
            ``"image"`` [3, res, res] float32 RGB in [-1, 1]; ``"depth_front"``, ``"depth_back"``
            [1, res, res] float32 in D units (PNG / 32 / 512, background 0); ``"mask"``
            [1, res, res] float32 (front PNG > 0); ``"theta"`` [12, 2, 3] float32 (canvas NC ->
            image NC); ``"index"``; ``"path"`` (the SHADED file).
        """
        try:
            return self.load(index)
        except DatasetError as e:
            if self.bad_samples == "raise":
                raise
            log.warning("skipping sample %d: %s", index, e)
            return None

    def check_view(self, index: int) -> None:
        """Cheap start-up check of view ``index``: the four files exist, both depth PNG headers say
        16-bit single-channel ``res`` x ``res``, the SHADED PNG header says ``res`` x ``res``, every
        PNG ends with its IEND chunk (not cut short), and the keypoints place every part (the
        ``.npy`` is read in full: 372 bytes). Pixel data is not decoded (a non-PNG image is).

        Raises:
            DatasetError: the first problem found, naming the file.
        """
        files, res = self.files[index], self.res
        check_image(files.shaded, cv2.IMREAD_COLOR, np.uint8, 3, res)
        check_image(files.depth_front, cv2.IMREAD_UNCHANGED, np.uint16, 1, res)
        check_image(files.depth_back, cv2.IMREAD_UNCHANGED, np.uint16, 1, res)
        read_theta(files.keypoint, res)

    def check_views(self, indices: Sequence[int] | None = None) -> dict[int, str]:
        """:meth:`check_view` of ``indices`` (default: every view); returns the bad views' one-line
        problems (``"<file>: <problem>"``) by index."""
        bad = {}
        for index in range(len(self)) if indices is None else indices:
            try:
                self.check_view(index)
            except DatasetError as e:
                bad[index] = str(e)
        return bad

    def drop_views(self, indices: Sequence[int]) -> None:
        """Remove views ``indices`` (the list's order of the others is kept).

        Raises:
            DatasetError: no view would be left.
        """
        drop = set(indices)
        kept = [f for i, f in enumerate(self.files) if i not in drop]
        if not kept:
            raise DatasetError(f"{self.list_file}: no usable view left")
        self.files = kept

    def load(
        self, index: int, stage: Callable[[str], AbstractContextManager] = _untimed
    ) -> dict[str, torch.Tensor | int | str]:
        """Sample ``index`` (see :meth:`__getitem__`), raising :class:`DatasetError` for a bad
        one. ``stage(name)`` wraps each step (``bench.bench_data`` passes a timer)."""
        files = self.files[index]
        res = self.res
        with stage("decode SHADED PNG (8-bit RGB)"):
            shaded = read_image(files.shaded, cv2.IMREAD_COLOR, np.uint8, 3, res)
        with stage("decode 2 depth PNGs (16-bit)"):
            front = read_image(files.depth_front, cv2.IMREAD_UNCHANGED, np.uint16, 1, res)
            back = read_image(files.depth_back, cv2.IMREAD_UNCHANGED, np.uint16, 1, res)
        with stage("keypoints -> part matrices"):
            theta = read_theta(files.keypoint, res)
        with stage("depth -> D units, mask, checks"):
            depth_front, depth_back = png_to_depth_units(front), png_to_depth_units(back)
            if not all(np.isfinite(a).all() for a in (theta, depth_front, depth_back)):
                raise DatasetError(f"{files.depth_front}: non-finite theta or depth")
            mask = front > 0
        with stage("image -> float RGB"):
            image = cv2.cvtColor(shaded, cv2.COLOR_BGR2RGB).astype(np.float32)
            image /= 255.0  # [res, res, 3] RGB in [0, 1]
        background = None
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            with stage("colour jitter"):
                image = apply_jitter(image, draw_jitter(rng, self.jitter))
            with stage("background: decode, scale, crop"):
                path = draw_background(self.backgrounds, self.background_prob, rng)
                background = None if path is None else self._background(path, rng)
        with stage("composite"):
            image = composite(image, mask, background)
        with stage("soften boundary"):
            image = soften_boundary(image, mask)
        with stage("to tensors"):
            chw = np.empty((3, res, res), np.float32)
            np.multiply(image.transpose(2, 0, 1), 2.0, out=chw)
            chw -= 1.0
            return {
                "image": torch.from_numpy(chw),
                "depth_front": torch.from_numpy(depth_front[None]),
                "depth_back": torch.from_numpy(depth_back[None]),
                "mask": torch.from_numpy(mask[None].astype(np.float32)),
                "theta": torch.from_numpy(theta),
                "index": index,
                "path": str(files.shaded),
            }

    def _background(self, path: Path, rng: np.random.Generator) -> np.ndarray | None:
        """[res, res, 3] random crop of a background; None (black) if it cannot be read."""
        image = load_background(path)
        if image is None:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("%s: background cannot be read, using black", path)
            return None
        return background_crop(image, self.res, rng)


def collate_skip_none(batch: Sequence[dict | None]) -> dict | None:
    """``default_collate`` of the samples that are not None; None when none is left."""
    items = [b for b in batch if b is not None]
    return default_collate(items) if items else None
