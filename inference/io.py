"""Inputs of the Predictor: images of any kind, keypoint files, square padding (facts §1.1, §7.1).

* Images are decoded with OpenCV from their bytes. PNG (and anything but JPEG) with
  ``IMREAD_UNCHANGED``: 8- or 16-bit, grey, grey + alpha, RGB or RGBA; 16-bit values are scaled to
  8 bits (``round(v / 257)``, so 65535 -> 255). JPEG with ``IMREAD_COLOR``, which applies the EXIF
  orientation as OpenPose (and the authors' ``cv2.imread``) see the photo, so the keypoints fit;
  the EXIF orientation of a PNG (``eXIf``) or WebP is applied here for the same reason (OpenCV's
  ``cv2.imread`` applies it, ``IMREAD_UNCHANGED`` does not).
* PNG transparency given by a ``tRNS`` chunk (palette entries' alpha, or the one transparent grey
  or RGB value) is applied here, not left to OpenCV: OpenCV ignores it for grey images, and
  whether it honours it for palette images has depended on its version. The chunk is removed and
  a palette replaced by an index ramp before OpenCV decodes, so every OpenCV >= 4.9 gives the same
  RGBA. (Pillow would do it too, but it clips 16-bit grey to 8 bits instead of scaling it.)
* Keypoints: ``<stem>_keypoints.json`` (OpenPose BODY_25 + hands, the authors' format), else
  ``<stem>_keypoints.npy`` holding the ``(31, 3)`` rows ``(u, v, confidence)`` (or ``(3, 31)``) in
  the original image's pixels; confidence <= 0 marks a missing keypoint.
* The stem is the file name without its last suffix (``a.b.png`` -> ``a.b``); the authors cut at
  the first dot, which truncates such names (facts §8 item 31).
* Square padding replicates the border (image) or pads with 0 (masks); the extra pixel of an odd
  pad goes to the bottom/right; then a bicubic resize to ``res`` (masks: area average or bilinear,
  then > 0.5), as :func:`utils.keypoints.pad_and_scale_keypoints` does to the keypoints.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.errors import BadInputError
from utils.fileio import PNG_SIGNATURE, write_all
from utils.keypoints import (
    KEYPOINT_NAMES,
    KeypointError,
    load_openpose_json,
    pad_offsets,
    read_keypoints_npy,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MASK_SUFFIX = "_mask"
"""Files whose stem ends with this are masks, never inputs (so masks may sit beside images)."""
MIN_LONG_SIDE = 32
"""Smallest accepted long side of an input image in pixels (nothing smaller can hold a person)."""
MAX_ASPECT = 10.0
"""Largest accepted long side / short side: after square padding a person in a thinner strip would
cover less than a tenth of the model's input."""
KEYPOINT_MARGIN = 0.02
"""Keypoints may lie this fraction of the long side outside the image; farther ones mean the
keypoints belong to another image (or another resolution of it)."""


class InputError(BadInputError):
    """A bad input file (image, keypoints, mask); the message names the file and the problem."""


def image_stem(path: str | os.PathLike) -> str:
    """Name of an input without its last suffix (``a.b.png`` -> ``a.b``)."""
    return Path(path).stem


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Input images of a folder: ``.png .jpg .jpeg`` in any case, sorted by name.

    Other files (keypoints, masks named ``<stem>_mask.<ext>``, anything else) and folders are
    ignored. An entry with an image's name that is no regular file (a broken link, a pipe) is
    listed, so that reading it fails with a line of its own instead of vanishing from the batch
    unnoticed.
    Raises:
        InputError: the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: input folder not found")
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not p.stem.endswith(MASK_SUFFIX)
        and not p.is_dir()
    )


def _to_uint8(image: np.ndarray, source: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.rint(image.astype(np.float32) / 257.0).astype(np.uint8)
    raise InputError(f"{source}: unsupported pixel type {image.dtype} (8- or 16-bit expected)")


_TRNS_LENGTH = {0: 2, 2: 6}
"""Length of a valid ``tRNS`` chunk per PNG colour type (grey: one value, RGB: three; palette:
1 to 256 alpha entries)."""


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, content)`` of each complete chunk of a PNG, in order (a truncated tail ends the
    list; OpenCV reports the file as undecodable)."""
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if pos + 12 + length > len(data):
            break
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_chunk(kind: bytes, content: bytes) -> bytes:
    """One PNG chunk: length, type, content and CRC."""
    return (
        struct.pack(">I4s", len(content), kind)
        + content
        + struct.pack(">I", zlib.crc32(kind + content))
    )


@dataclass(frozen=True)
class _Transparency:
    """A PNG's ``tRNS`` chunk with what is needed to apply it (see :func:`_apply_transparency`)."""

    color_type: int  # 0 grey, 2 RGB, 3 palette
    bit_depth: int
    trns: bytes
    palette: bytes  # PLTE content (palette images)


def _without_transparency(data: bytes) -> tuple[bytes, _Transparency | None]:
    """PNG bytes without the ``tRNS`` chunk (a palette image's palette replaced by the index
    ramp ``(i, i, 255)``, so the decoded pixels give back the indices) and the chunk's content;
    the bytes unchanged and None when there is no valid ``tRNS``."""
    chunks = _png_chunks(data)
    found = dict(reversed(chunks))  # first chunk of each type
    header, trns = found.get(b"IHDR", b""), found.get(b"tRNS")
    if len(header) != 13 or trns is None:
        return data, None
    bit_depth, color_type = header[8], header[9]
    palette = found.get(b"PLTE", b"")
    if color_type == 3:
        if not palette or len(palette) % 3 or not 0 < len(trns) <= 256:
            return data, None
    elif _TRNS_LENGTH.get(color_type) != len(trns):
        return data, None  # libpng ignores such a chunk too
    out = [PNG_SIGNATURE]
    for kind, content in chunks:
        if kind == b"tRNS":
            continue
        if kind == b"PLTE" and color_type == 3:
            content = bytes(v for i in range(len(content) // 3) for v in (i & 255, i & 255, 255))
        out.append(_png_chunk(kind, content))
    return b"".join(out), _Transparency(color_type, bit_depth, trns, palette)


def _apply_transparency(image: np.ndarray, t: _Transparency) -> np.ndarray:
    """BGRA of a PNG decoded without its ``tRNS`` chunk (:func:`_without_transparency`).

    Args:
        image: OpenCV's decoding, [H, W] grey (bit depths below 8 scaled to 8 bits) or
            [H, W, 3] BGR, uint8 or uint16; palette images: the index ramp.
    Returns:
        [H, W, 4] BGRA of ``image``'s type: a palette entry's alpha from the chunk (255 beyond
        its end; an index beyond the palette is opaque black, as libpng), or alpha 0 exactly
        where a grey / RGB pixel equals the chunk's value.
    """
    top = np.iinfo(image.dtype).max
    if t.color_type == 3:
        index = image[:, :, 2]
        in_palette = image[:, :, 0] == 255
        colors = np.zeros((256, 3), np.uint8)
        entries = np.frombuffer(t.palette, np.uint8).reshape(-1, 3)[:256]
        colors[: len(entries)] = entries[:, ::-1]  # RGB -> BGR
        alphas = np.full(256, 255, np.uint8)
        alphas[: len(t.trns)] = np.frombuffer(t.trns, np.uint8)
        bgr = np.where(in_palette[:, :, None], colors[index], 0).astype(np.uint8)
        alpha = np.where(in_palette, alphas[index], 255).astype(np.uint8)
        return np.dstack((bgr, alpha))
    depth = min(t.bit_depth, 16)
    key = [v & ((1 << depth) - 1) for v in struct.unpack(f">{len(t.trns) // 2}H", t.trns)]
    if depth < 8:  # OpenCV scales 1, 2 and 4-bit grey to 8 bits
        key = [v * (255 // ((1 << depth) - 1)) for v in key]
    if t.color_type == 0 and image.ndim == 2:
        bgr = np.dstack((image, image, image))
    elif t.color_type == 2 and image.ndim == 3 and image.shape[2] == 3:
        bgr, key = image, key[::-1]  # RGB -> BGR
    else:
        return image  # not what the header says: the caller reports the channels
    transparent = np.all(bgr == np.asarray(key, image.dtype), axis=2)
    return np.dstack((bgr, np.where(transparent, 0, top).astype(image.dtype)))


def _exif_orientation(exif: bytes) -> int:
    """The orientation tag (1 to 8) of EXIF data (a TIFF structure); 1 when absent or invalid."""
    exif = exif.removeprefix(b"Exif\0\0")
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return 1
    ifd = struct.unpack(order + "I", exif[4:8])[0]
    if ifd + 2 > len(exif):
        return 1
    for k in range(struct.unpack(order + "H", exif[ifd : ifd + 2])[0]):
        entry = exif[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:  # Orientation, SHORT
            value = struct.unpack(order + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else 1
    return 1


def _embedded_exif(data: bytes) -> bytes:
    """The EXIF data of a PNG (``eXIf`` chunk) or WebP (``EXIF`` chunk); b"" otherwise."""
    if data.startswith(PNG_SIGNATURE):
        return next((c for kind, c in _png_chunks(data) if kind == b"eXIf"), b"")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        pos = 12
        while pos + 8 <= len(data):
            kind, size = struct.unpack("<4sI", data[pos : pos + 8])
            if kind == b"EXIF":
                return data[pos + 8 : pos + 8 + size]
            pos += 8 + size + (size & 1)
    return b""


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1 to 8) as OpenCV's ``imread`` does (its ``ExifTransform``)."""
    if orientation >= 5:
        image = image.swapaxes(0, 1)
    if orientation in (2, 6):
        image = image[:, ::-1]
    elif orientation in (3, 7):
        image = image[::-1, ::-1]
    elif orientation in (4, 8):
        image = image[::-1]
    return image


def decode_image(data: bytes, source: str = "<image>") -> np.ndarray:
    """Decode image bytes to 8-bit RGB or RGBA.

    Args:
        data: the file's bytes.
        source: file name for error messages.
    Returns:
        [H, W, 3] uint8 RGB, or [H, W, 4] uint8 RGBA when the file has an alpha channel
        (including PNG ``tRNS`` transparency), in the EXIF orientation.
    Raises:
        InputError: empty, undecodable (corrupt, truncated, or larger than OpenCV decodes),
            unsupported pixel type, or an image too small (long side < :data:`MIN_LONG_SIDE`) or
            too elongated (> :data:`MAX_ASPECT`).
    """
    if len(data) == 0:
        raise InputError(f"{source}: empty file (0 bytes)")
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    transparency = None
    if data.startswith(PNG_SIGNATURE):
        data, transparency = _without_transparency(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. a header declaring more pixels than OpenCV accepts
        message = str(exc).strip().splitlines()[-1]
        raise InputError(f"{source}: cannot be decoded as an image ({message})") from exc
    if image is None:
        raise InputError(f"{source}: cannot be decoded as an image (corrupt or truncated file)")
    if transparency is not None:
        image = _apply_transparency(image, transparency)
    if not is_jpeg:
        image = np.ascontiguousarray(_orient(image, _exif_orientation(_embedded_exif(data))))
    image = _to_uint8(image, source)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 2:  # grey + alpha
        grey, alpha = image[:, :, 0], image[:, :, 1]
        image = np.dstack((grey, grey, grey, alpha))
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    else:
        raise InputError(f"{source}: {image.shape[2]} channels (1 to 4 expected)")
    check_image_size(image.shape[0], image.shape[1], source)
    return np.ascontiguousarray(image)


def check_image_size(height: int, width: int, source: str = "<image>") -> None:
    """Refuse images that cannot hold a person usefully (see :data:`MIN_LONG_SIDE`,
    :data:`MAX_ASPECT`)."""
    long_side, short_side = max(height, width), min(height, width)
    if long_side < MIN_LONG_SIDE:
        raise InputError(
            f"{source}: image is {width}x{height} pixels, too small "
            f"(the long side must be at least {MIN_LONG_SIDE})"
        )
    if long_side > MAX_ASPECT * short_side:
        raise InputError(
            f"{source}: image is {width}x{height} pixels, aspect ratio over {MAX_ASPECT:g}:1 "
            "(crop it around the person)"
        )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as 8-bit RGB(A) (:func:`decode_image`).

    Raises:
        InputError: missing or unreadable file, or see :func:`decode_image`.
    """
    source = os.fspath(path)
    if not Path(source).is_file():  # a broken link, a folder, or a pipe that would block a read
        what = "not a regular file" if Path(source).exists() else "no such file"
        raise InputError(f"{source}: cannot read image ({what})")
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"{source}: cannot read image ({exc.strerror or exc})") from exc
    return decode_image(data, source)


def keypoint_file(image_path: str | os.PathLike, keypoint_dir: str | os.PathLike | None) -> Path:
    """The keypoint file of an image: ``<stem>_keypoints.json``, else ``<stem>_keypoints.npy``,
    in ``keypoint_dir`` (default: the image's folder).

    Raises:
        InputError: neither exists.
    """
    image_path = Path(image_path)
    folder = Path(keypoint_dir) if keypoint_dir is not None else image_path.parent
    stem = image_stem(image_path)
    candidates = [folder / f"{stem}_keypoints.json", folder / f"{stem}_keypoints.npy"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"{image_path}: no keypoint file ({candidates[0]} or {candidates[1].name} expected)"
    )


def load_keypoints_npy(path: str | os.PathLike) -> np.ndarray:
    """``(31, 3)`` float64 keypoints ``(u, v, confidence)`` from a ``.npy`` file (``(3, 31)`` is
    transposed, as the authors' training loader does).

    Raises:
        KeypointError: unreadable file, wrong shape, not real numbers (complex, boolean, text,
            objects ...: :func:`utils.keypoints.read_keypoints_npy`) or non-finite values.
    """
    source = os.fspath(path)
    keypoints = read_keypoints_npy(source).astype(np.float64)  # integers beyond 2^53 round
    if not np.all(np.isfinite(keypoints)):
        rows = np.flatnonzero(~np.all(np.isfinite(keypoints), axis=1))
        raise KeypointError(f"{source}: non-finite keypoint values in rows {rows.tolist()}")
    return keypoints


def load_keypoints(path: str | os.PathLike) -> np.ndarray:
    """``(31, 3)`` keypoints ``(u, v, confidence)`` in the image's pixels, from an OpenPose JSON
    (``.json``) or a ``.npy`` file.

    Raises:
        KeypointError: naming the file (missing, malformed, zero people, wrong shape, NaN ...).
    """
    if Path(path).suffix.lower() == ".npy":
        return load_keypoints_npy(path)
    return load_openpose_json(path)


def check_keypoints_in_image(
    keypoints: np.ndarray, height: int, width: int, source: str = "<keypoints>"
) -> None:
    """Refuse present keypoints (confidence > 0) lying outside the ``width x height`` image by
    more than :data:`KEYPOINT_MARGIN` of its long side.

    Raises:
        KeypointError: naming the keypoints, their position and the image size.
    """
    margin = KEYPOINT_MARGIN * max(height, width)
    u, v, c = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    outside = (c > 0) & (
        (u < -margin) | (u > width + margin) | (v < -margin) | (v > height + margin)
    )
    if outside.any():
        shown = ", ".join(
            f"{KEYPOINT_NAMES[i]} ({u[i]:.0f}, {v[i]:.0f})" for i in np.flatnonzero(outside)[:4]
        )
        more = f" and {outside.sum() - 4} more" if outside.sum() > 4 else ""
        raise KeypointError(
            f"{source}: keypoints outside the {width}x{height} image: {shown}{more} "
            "(keypoints of another image or resolution?)"
        )


def square_image(image: np.ndarray, res: int) -> np.ndarray:
    """Pad an [H, W, C] uint8 image to a square by border replication, then resize it to
    ``res x res`` with bicubic interpolation (facts §1.1 step 2).

    Returns:
        [res, res, C] uint8.
    """
    h, w = image.shape[:2]
    top, bottom, left, right = pad_offsets(h, w)
    padded = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REPLICATE)
    if padded.shape[0] != res:
        padded = cv2.resize(padded, (res, res), interpolation=cv2.INTER_CUBIC)
    return padded


def square_mask(mask: np.ndarray, res: int) -> np.ndarray:
    """Pad an [H, W] bool mask to a square with background, then resize it to ``res x res``
    (area average when shrinking, bilinear when enlarging, then > 0.5).

    Returns:
        [res, res] bool.
    """
    h, w = mask.shape
    top, bottom, left, right = pad_offsets(h, w)
    padded = cv2.copyMakeBorder(
        mask.astype(np.float32), top, bottom, left, right, cv2.BORDER_CONSTANT, value=0.0
    )
    if padded.shape[0] != res:
        shrink = padded.shape[0] > res
        interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        padded = cv2.resize(padded, (res, res), interpolation=interpolation)
    return padded > 0.5


def write_files(root: str | os.PathLike, files: dict[str, bytes]) -> list[Path]:
    """Write several files under ``root`` atomically, each through a temporary file.

    If one write fails, the files this call already wrote are removed again, so an item never
    leaves part of its outputs behind.

    Args:
        root: output folder.
        files: relative path -> content.
    Returns:
        the written paths.
    """
    return write_all({Path(root) / rel: data for rel, data in files.items()})
