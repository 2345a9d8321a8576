"""Atomic file writers: every output is written to a temporary file beside it, then renamed.

A killed process therefore leaves either the old file, the complete new one, or a stray
``.*.tmp*`` file that no reader looks at, never a truncated output under the real name.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The first 8 bytes of every PNG file."""


def _file_mode() -> int:
    """Permissions of a newly created file under the current umask (mkstemp would give 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating the parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name is
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_FILE_MODE = _file_mode()


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create the output folder ``path`` (with its parents) and check that a file can be written
    in it, so a batch tool stops before its first item rather than failing every item.

    Raises:
        OSError: the folder cannot be created or written; the message names it.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"{path}: output folder cannot be written ({exc.strerror or exc})") from exc
    return path


def encode_png(image: np.ndarray, source: str = "<png>") -> bytes:
    """PNG bytes of an OpenCV-ordered image ([H, W, 3|4] BGR(A) uint8, or [H, W] uint8/uint16).

    Raises:
        OSError: OpenCV could not encode it (the message names ``source``).
    """
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise OSError(f"{source}: OpenCV could not encode a {image.dtype} image of {image.shape}")
    return buf.tobytes()


def write_all(files: Mapping[Path, bytes]) -> list[Path]:
    """Write one item's files, each atomically (:func:`atomic_write_bytes`); if one write fails,
    remove those this call already wrote, so the item leaves nothing behind, and raise.

    Returns:
        the written paths.
    """
    written: list[Path] = []
    try:
        for path, data in files.items():
            atomic_write_bytes(path, data)
            written.append(Path(path))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an OpenCV image (BGR uint8, or single-channel uint8/uint16) atomically.

    The format follows the file extension (``.png``, ``.jpg``, ...).
    """
    ok, buf = cv2.imencode(Path(path).suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {image.dtype} image of {image.shape}")
    atomic_write_bytes(path, buf.tobytes())


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a NumPy array atomically (``.npy`` format)."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write an object as JSON atomically."""
    write_text(path, json.dumps(obj))
