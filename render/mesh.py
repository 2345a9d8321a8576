"""Coloured, normalised scans for rendering (facts sheet §6.4, §6.5).

Every dataset goes through :func:`load_scan`, which returns a :class:`Scan`: the normalised,
vertex-coloured mesh plus the transform that was applied, so 3D joints can be put in the same frame
(``render_keypoint.py`` uses the same transform, :func:`utils.scans.scan_transform`; facts §8 item
38). Where the files are and how a scan is normalised is in ``utils/scans.py``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import trimesh
import trimesh.remesh

from utils.camera import ScanTransform, view_rotation
from utils.scans import RenderInputError, parse_obj, read_scan


@dataclass(frozen=True)
class Scan:
    """A normalised scan ready to render.

    Attributes:
        name: item name (RP folder name without ``_OBJ``; THuman2/2K2K/ANNY folder name).
        data_name: dataset name (one of :data:`utils.scans.DATASETS`).
        mesh: normalised trimesh with ``visual.vertex_colors`` [V, 4] uint8 RGBA.
        transform: raw -> normalised transform (for 3D joints).
        facing: yaw ``g`` in radians subtracted from every view yaw (THuman2: the y-component of
            SMPL-X ``global_orient``; 0 otherwise).
    """

    name: str
    data_name: str
    mesh: trimesh.Trimesh
    transform: ScanTransform
    facing: float

    def view_rotation(self, yaw_deg: float) -> np.ndarray:
        """[3, 3] rotation of the normalised mesh for a view (:func:`view_rotation`)."""
        return view_rotation(yaw_deg, self.facing)


def sample_texture(texture_rgb: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest texel of each UV, OpenGL convention (v = 0 is the bottom row), index kept in range.

    Args:
        texture_rgb: [H, W, 3] uint8.
        uv: [N, 2] texture coordinates; values outside [0, 1] repeat.
    Returns:
        [N, 3] uint8.
    """
    h, w = texture_rgb.shape[:2]
    uv = np.where((uv < 0) | (uv > 1), np.mod(uv, 1.0), uv)
    col = np.clip(np.floor(uv[:, 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor(uv[:, 1] * h).astype(np.int64), 0, h - 1)
    return texture_rgb[h - 1 - row, col]


MAX_TEXTURE_PIXELS = 2 * 8192 * 8192
"""Largest texture read, in pixels: twice RenderPeople's 8K textures (``*_dif_8k.jpg``), 400 MB
as BGR. A file whose header claims more is refused before it is decoded (a corrupt or hostile
header must not make OpenCV allocate gigabytes)."""


def read_texture(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 BGR texture, its size checked from the header before decoding.

    Raises:
        RenderInputError: missing, unreadable, or larger than :data:`MAX_TEXTURE_PIXELS`.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)  # ours is below
            with PIL.Image.open(path) as image:
                width, height = image.size
    except PIL.Image.DecompressionBombError as e:  # PIL's own limit, above ours
        raise RenderInputError(f"{path}: texture too large ({e})") from e
    except (OSError, ValueError):  # not an image PIL knows: OpenCV decides below
        width = height = 0
    if width * height > MAX_TEXTURE_PIXELS:
        raise RenderInputError(
            f"{path}: texture too large ({width}x{height} pixels, more than "
            f"{MAX_TEXTURE_PIXELS}: a corrupt header, or downscale it)"
        )
    try:
        texture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except cv2.error as e:  # OpenCV's own size limit, among others
        raise RenderInputError(f"{path}: unreadable texture ({e.err})") from e
    if texture is None:
        raise RenderInputError(f"{path}: texture missing or not a readable image")
    return texture


def load_textured_obj(
    obj_path: Path, texture_path: Path, subdivide: bool = True
) -> trimesh.Trimesh:
    """The authors' textured-OBJ loader, vectorised (facts §6.5), with the lookup defects fixed.

    Each vertex takes the UV of the last face corner that references it (quads included; the
    authors skipped quad corners); the mesh is subdivided once (mid-edge UVs averaged); each vertex
    gets the nearest texel. Vertices that no face gives a UV get the mean texel colour of the others
    (the authors used texel (0, 0)).

    Returns:
        trimesh with [V, 4] uint8 vertex colours (``process=False``: vertex order kept).
    """
    v, t, fv, ft = parse_obj(obj_path)
    if len(fv) == 0:
        raise RenderInputError(f"{obj_path}: mesh has no faces")
    if not (ft >= 0).any():
        raise RenderInputError(f"{obj_path}: no face has texture coordinates (vt) to colour it")
    if not np.isfinite(t).all():
        raise RenderInputError(f"{obj_path}: non-finite texture coordinates (vt)")
    texture = read_texture(texture_path)
    corner_v, corner_t = fv.reshape(-1), ft.reshape(-1)
    has_uv = corner_t >= 0
    corner_v, corner_t = corner_v[has_uv], corner_t[has_uv]
    last = len(corner_v) - 1 - np.unique(corner_v[::-1], return_index=True)[1]
    uv = np.zeros((len(v), 2))
    uv_known = np.zeros(len(v), dtype=bool)
    uv[corner_v[last]] = t[corner_t[last]]
    uv_known[corner_v[last]] = True
    faces = fv
    if subdivide:
        v, faces, attrs = trimesh.remesh.subdivide(
            v, fv, vertex_attributes={"uv": uv, "known": uv_known[:, None].astype(np.float64)}
        )
        uv, uv_known = attrs["uv"], attrs["known"][:, 0] == 1.0
    rgb = sample_texture(texture[:, :, ::-1], uv)
    if uv_known.any() and not uv_known.all():
        rgb[~uv_known] = rgb[uv_known].mean(axis=0).astype(np.uint8)
    colors = np.concatenate((rgb, np.full((len(v), 1), 255, np.uint8)), axis=1)
    return trimesh.Trimesh(v, faces, vertex_colors=colors, process=False)


def load_scan(
    data_path: str | os.PathLike, data_name: str, name: str, mesh_format: str = "ply"
) -> Scan:
    """Load, colour and normalise one item (facts §6.4, §6.5).

    Vertices no face uses are dropped, as the authors' processed trimesh does (they are not drawn,
    and one far away would otherwise stretch the depth range a view is checked against).

    Raises:
        RenderInputError: missing or unreadable mesh, texture or SMPL-X parameters, empty or
            degenerate mesh, unknown dataset name. The message names the file or item.
    """
    mesh, transform, facing = read_scan(data_path, data_name, name, mesh_format, load_textured_obj)
    colors = np.asarray(mesh.visual.vertex_colors, dtype=np.uint8)
    used, faces = np.unique(np.asarray(mesh.faces), return_inverse=True)
    normalized = trimesh.Trimesh(
        transform.apply(np.asarray(mesh.vertices)[used]),
        faces.reshape(-1, 3),
        vertex_colors=colors[used],
        process=False,
    )
    return Scan(name=name, data_name=data_name, mesh=normalized, transform=transform, facing=facing)
