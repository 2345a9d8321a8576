"""Reading coloured point-cloud PLYs and writing coloured meshes (OBJ or PLY), atomically.

Point clouds: PLY (ASCII or binary) whose first element is ``vertex`` with scalar properties
``x y z``, optional ``red green blue`` (8-bit, or float in [0, 1]; ``alpha`` is ignored) and
optional ``nx ny nz`` (used as outward normals), as ``inference.pointcloud``, trimesh and Open3D
write them; read with NumPy, so an empty, truncated or malformed file raises
:class:`PointCloudError` naming the file and the problem (Open3D's reader returns garbage points
with only a warning).

Meshes: OBJ as the authors' (``v x y z r g b`` with colours in [0, 1], ``vn``, ``f a//a b//b c//c``)
or binary PLY (8-bit colours, normals), through ``utils.fileio`` (temporary file + rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from meshing.poisson import Mesh
from utils.errors import BadInputError
from utils.fileio import atomic_write_bytes

MESH_FORMATS = ("obj", "ply")

_PLY_TYPES = {
    "char": "i1",
    "uchar": "u1",
    "int8": "i1",
    "uint8": "u1",
    "short": "i2",
    "ushort": "u2",
    "int16": "i2",
    "uint16": "u2",
    "int": "i4",
    "uint": "u4",
    "int32": "i4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_PLY_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}


class PointCloudError(BadInputError):
    """An unusable point-cloud file; the message names the file and the problem."""


@dataclass
class PointCloud:
    """A coloured point cloud.

    Attributes:
        points: [N, 3] float64 positions.
        colors: [N, 3] float64 RGB in [0, 1], or None.
        normals: [N, 3] float64 normals, or None.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None


@dataclass
class _PlyHeader:
    fmt: str  # ascii, binary_little_endian or binary_big_endian
    count: int  # vertices
    properties: list[tuple[str, str]]  # vertex properties (name, numpy type code)
    size: int  # bytes up to and including the end_header line


def _read_header(path: Path) -> _PlyHeader:
    """The vertex layout of a PLY; raises :class:`PointCloudError` naming what is wrong."""
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise PointCloudError(f"{path}: not a PLY file (no 'ply' header line)")
        lines = []
        while (line := f.readline()).strip() != b"end_header":
            if not line or len(lines) > 1000:
                raise PointCloudError(f"{path}: PLY header has no end_header line")
            lines.append(line.decode("ascii", errors="replace").split())
        size = f.tell()
    fmt, count, properties, element = None, None, [], None
    for fields in lines:
        if fields[:1] == ["format"] and len(fields) > 1:
            fmt = fields[1]
        elif fields[:1] == ["element"] and len(fields) == 3:
            if element is None and fields[1] != "vertex":
                raise PointCloudError(f"{path}: the first PLY element is {fields[1]!r}, not vertex")
            element = fields[1]
            if element == "vertex":
                count = int(fields[2]) if fields[2].isdigit() else None
        elif fields[:1] == ["property"] and element == "vertex":
            if len(fields) != 3 or fields[1] not in _PLY_TYPES:
                raise PointCloudError(f"{path}: unsupported vertex property {' '.join(fields)!r}")
            properties.append((fields[2], _PLY_TYPES[fields[1]]))
    if fmt not in _PLY_FORMATS:
        raise PointCloudError(f"{path}: unknown PLY format {fmt!r}")
    if count is None:
        raise PointCloudError(f"{path}: PLY header declares no vertex count")
    names = [name for name, _ in properties]
    if len(set(names)) != len(names):
        raise PointCloudError(f"{path}: PLY vertices have a property twice ({names})")
    if not {"x", "y", "z"} <= set(names):
        raise PointCloudError(f"{path}: PLY vertices have no x, y, z properties ({names})")
    return _PlyHeader(fmt, count, properties, size)


def _read_vertices(path: Path, header: _PlyHeader) -> np.ndarray:
    """The vertex table as a structured array [count] (ASCII parsed, binary mapped)."""
    if header.fmt == "ascii":
        dtype = np.dtype([(name, code) for name, code in header.properties])
        with open(path, "rb") as f:
            f.seek(header.size)
            rows = [line.split() for line in f.read().splitlines() if line.strip()]
        if len(rows) < header.count:
            raise PointCloudError(
                f"{path}: truncated: {header.count} points declared, {len(rows)} lines of data"
            )
        try:
            values = np.array(rows[: header.count], dtype=np.float64)
        except ValueError as e:  # ragged or non-numeric lines
            raise PointCloudError(f"{path}: malformed ASCII PLY data ({e})") from e
        if values.shape[1] != len(header.properties):
            raise PointCloudError(f"{path}: ASCII PLY lines do not have one value per property")
        table = np.empty(header.count, dtype)
        for k, name in enumerate(dtype.names):
            column = values[:, k]
            if np.issubdtype(dtype[name], np.integer):
                info = np.iinfo(dtype[name])
                fits = np.isfinite(column) & (column == np.round(column))
                if not np.all(fits & (column >= info.min) & (column <= info.max)):
                    raise PointCloudError(
                        f"{path}: ASCII PLY property {name!r} has values that are not "
                        f"{dtype[name]} integers"
                    )
            with np.errstate(over="ignore"):  # beyond float32: infinite, refused by the caller
                table[name] = column
        return table
    endian = _PLY_FORMATS[header.fmt]
    dtype = np.dtype([(name, endian + code) for name, code in header.properties])
    need = header.size + header.count * dtype.itemsize
    if path.stat().st_size < need:
        raise PointCloudError(
            f"{path}: truncated: {header.count} points need {need} bytes, "
            f"the file has {path.stat().st_size}"
        )
    return np.fromfile(path, dtype=dtype, count=header.count, offset=header.size)


def _columns(table: np.ndarray, names: tuple[str, str, str]) -> np.ndarray | None:
    """[N, 3] float64 of three properties, or None when the table lacks one."""
    if not set(names) <= set(table.dtype.names):
        return None
    return np.stack([table[n].astype(np.float64) for n in names], axis=1)


def read_point_cloud(path: str | os.PathLike) -> PointCloud:
    """Read a PLY point cloud: points, optional colours (8-bit, or float in [0, 1]) and normals.

    Returns:
        a :class:`PointCloud` with N >= 1 finite points, colours in [0, 1] (integer colours
        divided by their type's maximum) and finite normals when the file has them.
    Raises:
        PointCloudError: missing file, not a PLY, no vertices, truncated or malformed data,
            non-finite coordinates or normals, colours outside [0, 1]; the message names the file.
    """
    path = Path(path)
    if not path.is_file():  # also a pipe, which a read would block on
        what = "not a regular file" if path.exists() else "file not found"
        raise PointCloudError(f"{path}: {what}")
    header = _read_header(path)
    if header.count == 0:
        raise PointCloudError(f"{path}: PLY has no points")
    table = _read_vertices(path, header)
    points = _columns(table, ("x", "y", "z"))
    if not np.isfinite(points).all():
        raise PointCloudError(f"{path}: points contain NaN or infinite coordinates")
    colors = _columns(table, ("red", "green", "blue"))
    if colors is not None:
        if np.issubdtype(table.dtype["red"], np.integer):
            colors /= np.iinfo(table.dtype["red"]).max
        if not np.all((colors >= 0) & (colors <= 1)):  # also refuses NaN
            raise PointCloudError(f"{path}: colours outside [0, 1] (or NaN)")
    normals = _columns(table, ("nx", "ny", "nz"))
    if normals is not None and not np.isfinite(normals).all():
        raise PointCloudError(f"{path}: normals contain NaN or infinite values")
    return PointCloud(points, colors, normals)


def write_point_cloud(path: str | os.PathLike, cloud: PointCloud) -> None:
    """Write a binary PLY point cloud (float32 positions and normals, 8-bit colours), the
    layout :func:`read_point_cloud` reads."""
    data = {"x": cloud.points[:, 0], "y": cloud.points[:, 1], "z": cloud.points[:, 2]}
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if cloud.normals is not None:
        dtype += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
        data.update(nx=cloud.normals[:, 0], ny=cloud.normals[:, 1], nz=cloud.normals[:, 2])
    if cloud.colors is not None:
        rgb = np.clip(np.round(cloud.colors * 255), 0, 255)
        dtype += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        data.update(red=rgb[:, 0], green=rgb[:, 1], blue=rgb[:, 2])
    table = np.empty(len(cloud.points), dtype=dtype)
    for name, values in data.items():
        table[name] = values
    header = f"ply\nformat binary_little_endian 1.0\nelement vertex {len(table)}\n"
    header += "".join(f"property {'uchar' if t == 'u1' else 'float'} {n}\n" for n, t in dtype)
    atomic_write_bytes(path, (header + "end_header\n").encode() + table.tobytes())


def _obj_bytes(mesh: Mesh) -> bytes:
    """OBJ text in one formatting call per block (several times faster than line by line)."""
    n, f = len(mesh.vertices), len(mesh.faces)
    if mesh.colors is not None:
        rows = np.concatenate((mesh.vertices, mesh.colors), axis=1)  # [V, 6]
        vertex_lines = ("v %.6f %.6f %.6f %.4f %.4f %.4f\n" * n) % tuple(rows.ravel().tolist())
    else:
        vertex_lines = ("v %.6f %.6f %.6f\n" * n) % tuple(mesh.vertices.ravel().tolist())
    normal_lines = ("vn %.4f %.4f %.4f\n" * n) % tuple(mesh.normals.ravel().tolist())
    corners = np.repeat(mesh.faces + 1, 2, axis=1)  # [F, 6] vertex//normal, 1-based
    face_lines = ("f %d//%d %d//%d %d//%d\n" * f) % tuple(corners.ravel().tolist())
    return (vertex_lines + normal_lines + face_lines).encode("ascii")


def write_mesh(path: str | os.PathLike, mesh: Mesh) -> None:
    """Write a mesh with vertex normals and colours; the format follows the suffix (.obj, .ply)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "obj":
        atomic_write_bytes(path, _obj_bytes(mesh))
    elif suffix == "ply":
        colors = None
        if mesh.colors is not None:
            colors = np.clip(np.round(mesh.colors * 255), 0, 255).astype(np.uint8)
        out = trimesh.Trimesh(
            mesh.vertices,
            mesh.faces,
            vertex_normals=mesh.normals,
            vertex_colors=colors,
            process=False,
        )
        atomic_write_bytes(path, out.export(file_type="ply", encoding="binary", vertex_normal=True))
    else:
        raise ValueError(f"{path}: mesh format must be one of {MESH_FORMATS}")
