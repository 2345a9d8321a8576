"""Where the scans of each dataset are, their geometry and their normalisation (facts sheet §6.1,
§6.4).

The renderer (``render/mesh.py`` adds the colours), the 3D keypoints and the evaluation all place a
scan in the same normalised frame through :func:`scan_transform`; the frame itself and the view
rotations are in ``utils/camera.py``.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trimesh

from utils.camera import ScanTransform, rotation_y
from utils.errors import BadInputError

NORMALIZE_FACTOR = 2.8
"""``v <- (v - centroid) / (2.8 * max|v - centroid|)``: the mesh fits in [-0.357, 0.357]^3."""

MAX_STRAY_RATIO = 10.0
"""A scan whose full extent (largest per-axis max - min of the used vertices) exceeds 10 times the
extent of its bulk (the same over the 1st..99th percentile vertices) has stray vertices far from
the body: normalised by the full extent, the body would fill less than a tenth of the image. A
human scan's bulk spans nearly all of it (ratio about 1 to 1.2), at any units (the ratio is
scale-free); the test is meaningful from about 100 vertices on (fewer: the percentiles are the
extremes and the ratio is 1)."""

RP_ROTATE_NEG90 = frozenset(
    {
        "rp_wendy_posed_002",
        "rp_toshiro_posed_021",
        "rp_scott_posed_037",
        "rp_pamela_posed_012",
        "rp_oliver_posed_029",
        "rp_noah_posed_011",
        "rp_mira_posed_001",
        "rp_luke_posed_008",
        "rp_luke_posed_007",
        "rp_jessica_posed_006",
        "rp_helen_posed_038",
        "rp_eve_posed_003",
        "rp_eric_posed_036",
        "rp_eric_posed_007",
        "rp_emma_posed_025",
        "rp_dennis_posed_008",
        "rp_chloe_posed_004",
        "rp_anna_posed_001",
        "rp_andrew_posed_004",
        "rp_maya_posed_027",
        "rp_petra_posed_006",
    }
)
"""RenderPeople scans turned by -90 degrees about +Y after normalisation (facing fix)."""

RP_SCALE_09 = frozenset(
    {
        "rp_michael_posed_019",
        "rp_mei_posed_007",
        "rp_joel_posed_006",
        "rp_ethan_posed_003",
        "rp_elena_posed_013",
        "rp_dennis_posed_001",
        "rp_christine_posed_017",
        "rp_beatrice_posed_034",
        "rp_andrew_posed_007",
    }
)
"""RenderPeople scans scaled by 0.9 after normalisation (size fix)."""

DATASETS = ("RP", "THuman2", "2K2K", "ANNY")
"""Dataset names understood by the renderers. ``ANNY`` = the open synthetic humans of
``render.synthetic`` (laid out like 2K2K: ``obj/ANNY/<id>/<id>.ply``)."""


class RenderInputError(BadInputError):
    """A scan that cannot be loaded or rendered; the message names the file and the problem."""


def check_data_name(data_name: str) -> str:
    """``data_name`` if it is one of :data:`DATASETS`, else :class:`RenderInputError`."""
    if data_name not in DATASETS:
        raise RenderInputError(f"unknown dataset name {data_name!r}; expected one of {DATASETS}")
    return data_name


def list_items(data_path: str | os.PathLike, data_name: str) -> list[str]:
    """Sorted item names of a dataset under ``<data_path>/obj/`` (facts §6.1)."""
    check_data_name(data_name)
    root = Path(data_path) / "obj" / data_name
    if data_name == "THuman2":
        root = root / "data"
    if not root.is_dir():
        raise RenderInputError(f"{root}: dataset folder not found")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if data_name == "RP":
        return [n[: -len("_OBJ")] for n in names if n.endswith("_OBJ")]
    return names


def _first_existing(candidates: list[Path], what: str) -> Path:
    for c in candidates:
        if c.is_file():
            return c
    tried = f" (also tried {', '.join(c.name for c in candidates[1:])})" if candidates[1:] else ""
    raise RenderInputError(f"{candidates[0]}: {what} not found{tried}")


def scan_files(
    data_path: str | os.PathLike, data_name: str, name: str, mesh_format: str = "ply"
) -> tuple[Path, Path | None]:
    """The mesh file and texture (``None`` for vertex-coloured PLY) of one item."""
    check_data_name(data_name)
    obj = Path(data_path) / "obj" / data_name
    if data_name == "RP":
        d = obj / f"{name}_OBJ"
        mesh = _first_existing(
            [d / f"{name}_100k.obj", d / f"{name}_100k.OBJ", d / f"{name}_200k.obj"], "RP mesh"
        )
        tex = _first_existing(
            [d / "tex" / f"{name}_dif_8k.jpg", d / "tex" / f"{name}_dif.jpg"], "RP texture"
        )
        return mesh, tex
    if data_name == "THuman2":
        d = obj / "data" / name
        return _first_existing([d / f"{name}.obj"], "THuman2 mesh"), _first_existing(
            [d / "material0.jpeg", d / "material0.jpg", d / "material0.png"], "THuman2 texture"
        )
    d = obj / name
    if mesh_format == "ply":
        return _first_existing([d / f"{name}.ply"], f"{data_name} vertex-coloured PLY"), None
    if mesh_format == "obj":
        return _first_existing([d / f"{name}.obj"], f"{data_name} OBJ"), _first_existing(
            [d / f"{name}.png", d / f"{name}.jpg"], f"{data_name} texture"
        )
    raise ValueError(f"mesh_format must be 'ply' or 'obj', got {mesh_format!r}")


def _parse_obj_line(
    line: str,
    verts: list[list[float]],
    uvs: list[list[float]],
    tri_v: list[tuple[int, int, int]],
    tri_t: list[tuple[int, int, int]],
) -> None:
    """Append what one OBJ line declares; raises ValueError/IndexError when it is malformed."""
    fields = line.split()
    if not fields:
        return
    if fields[0] == "v":
        if len(fields) < 4:
            raise ValueError("a vertex needs 3 coordinates")
        verts.append([float(x) for x in fields[1:4]])
    elif fields[0] == "vt":
        if len(fields) < 3:
            raise ValueError("a texture coordinate needs 2 values")
        uvs.append([float(x) for x in fields[1:3]])
    elif fields[0] == "f":
        if len(fields) < 4:
            raise ValueError("a face needs at least 3 corners")
        vi, ti = [], []
        for c in fields[1:]:
            parts = c.split("/")
            v = int(parts[0])
            t = int(parts[1]) if len(parts) > 1 and parts[1] else None
            if v == 0 or t == 0:
                raise ValueError("OBJ indices start at 1")
            vi.append(v - 1 if v > 0 else len(verts) + v)  # negative = relative to the end
            ti.append(-1 if t is None else t - 1 if t > 0 else len(uvs) + t)
            if t is not None and ti[-1] < 0:
                raise ValueError("relative texture index before the first vt")
        if len(vi) == 4:
            order = [(0, 1, 2), (2, 3, 0)]
        else:
            order = [(0, k, k + 1) for k in range(1, len(vi) - 1)]
        for a, b, c in order:
            tri_v.append((vi[a], vi[b], vi[c]))
            tri_t.append((ti[a], ti[b], ti[c]))


def parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices [V, 3], UVs [T, 2], and triangle vertex / UV indices [F, 3] (0-based, -1 = none).

    Quads are split ``(1, 2, 3), (3, 4, 1)`` as the authors do; larger polygons as a fan from
    the first corner. A malformed line raises :class:`RenderInputError` naming the line.
    """
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    tri_v: list[tuple[int, int, int]] = []
    tri_t: list[tuple[int, int, int]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            try:
                _parse_obj_line(line, verts, uvs, tri_v, tri_t)
            except (ValueError, IndexError) as e:
                raise RenderInputError(f"{path}: malformed OBJ line {n}: {line.strip()!r}") from e
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    t = np.asarray(uvs, dtype=np.float64).reshape(-1, 2)
    try:
        fv = np.asarray(tri_v, dtype=np.int64).reshape(-1, 3)
        ft = np.asarray(tri_t, dtype=np.int64).reshape(-1, 3)
    except OverflowError as e:  # an index beyond int64 cannot name an existing element
        raise RenderInputError(f"{path}: face index out of range ({e})") from e
    if len(fv) and (fv.min() < 0 or fv.max() >= len(v)):
        raise RenderInputError(f"{path}: face refers to a vertex that does not exist")
    if len(ft) and ft.max() >= len(t):
        raise RenderInputError(f"{path}: face refers to a texture coordinate that does not exist")
    return v, t, fv, ft


def load_vertex_colored_ply(path: Path) -> trimesh.Trimesh:
    """A vertex-coloured PLY (2K2K / ANNY) as a trimesh with [V, 4] uint8 colours."""
    try:
        mesh = trimesh.load(path, process=False, force="mesh")
    except Exception as e:  # trimesh raises many types for corrupt files
        raise RenderInputError(f"{path}: cannot read the mesh ({type(e).__name__}: {e})") from e
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise RenderInputError(f"{path}: mesh has no faces")
    if mesh.visual.kind != "vertex":
        raise RenderInputError(f"{path}: PLY has no vertex colours")
    return mesh


def thuman2_facing(data_path: str | os.PathLike, name: str) -> float:
    """THuman2 facing yaw: the y-component of SMPL-X ``global_orient`` (axis-angle, radians)."""
    path = Path(data_path) / "obj" / "THuman2" / "smplx" / name / "smplx_param.pkl"
    if not path.is_file():
        raise RenderInputError(f"{path}: missing SMPL-X parameters (THuman2 facing needs them)")
    try:
        with open(path, "rb") as f:
            params = pickle.load(f)
        orient = np.asarray(params["global_orient"], dtype=np.float64).reshape(-1)
    except Exception as e:  # unpickling can raise nearly anything
        raise RenderInputError(
            f"{path}: unreadable SMPL-X parameters ({type(e).__name__}: {e})"
        ) from e
    if orient.size != 3 or not np.isfinite(orient).all():
        raise RenderInputError(f"{path}: global_orient must be 3 finite numbers, got {orient}")
    return float(orient[1])


def normalization(
    mesh: trimesh.Trimesh,
    name: str,
    data_name: str,
    source: str | os.PathLike | None = None,
) -> ScanTransform:
    """Centroid / 2.8 max normalisation plus the RenderPeople facing and size fixes (facts §6.4).

    The largest coordinate is taken over the vertices the faces use (the authors' processed
    trimesh drops unreferenced ones). The normalisation is scale-free: the same scan in millimetres
    or metres gives the same normalised mesh.

    Args:
        mesh: finite raw mesh with faces; name: item name; data_name: dataset name.
        source: what error messages name (the mesh file; default ``name``).
    Raises:
        RenderInputError: zero surface area or extent, coordinates too large to normalise in
            float64, or stray vertices (:data:`MAX_STRAY_RATIO`).
    """
    source = name if source is None else os.fspath(source)
    with np.errstate(over="ignore", invalid="ignore"):
        area = float(mesh.area)
        center = np.asarray(mesh.centroid, dtype=np.float64)
    if area == 0:
        raise RenderInputError(f"{source}: degenerate mesh (zero surface area)")
    if not (np.isfinite(area) and np.isfinite(center).all()):
        raise RenderInputError(f"{source}: coordinates too large to normalise (area {area})")
    used = np.asarray(mesh.vertices)[np.unique(np.asarray(mesh.faces))]
    scale = NORMALIZE_FACTOR * float(np.abs(used - center).max())
    if not np.isfinite(scale) or scale <= 0:
        raise RenderInputError(f"{source}: degenerate mesh (zero extent)")
    full = float((used.max(axis=0) - used.min(axis=0)).max())
    lo, hi = np.percentile(used, [1, 99], axis=0, method="nearest")
    bulk = float((hi - lo).max())
    if full > MAX_STRAY_RATIO * bulk:
        raise RenderInputError(
            f"{source}: stray vertices far from the body (extent {full:.4g}, 98% of the vertices "
            f"within {bulk:.4g}; at most {MAX_STRAY_RATIO:g}x): the body would render as a speck"
        )
    rotation = np.eye(3)
    post_scale = 1.0
    if data_name == "RP" and name in RP_ROTATE_NEG90:
        rotation = rotation_y(-math.pi / 2)
    if data_name == "RP" and name in RP_SCALE_09:
        post_scale = 0.9
    return ScanTransform(center=center, scale=scale, rotation=rotation, post_scale=post_scale)


def scan_facing(data_path: str | os.PathLike, data_name: str, name: str) -> float:
    """The facing yaw of an item in radians: :func:`thuman2_facing` for THuman2, 0 otherwise."""
    return thuman2_facing(data_path, name) if data_name == "THuman2" else 0.0


def check_raw_mesh(mesh: trimesh.Trimesh, path: Path) -> trimesh.Trimesh:
    """``mesh`` (read from ``path``) if its faces index existing vertices and every vertex is
    finite, else :class:`RenderInputError`."""
    faces = np.asarray(mesh.faces)
    if faces.min() < 0 or faces.max() >= len(mesh.vertices):
        raise RenderInputError(f"{path}: face refers to a vertex that does not exist")
    if not np.isfinite(mesh.vertices).all():
        raise RenderInputError(f"{path}: non-finite vertex coordinates")
    return mesh


def obj_geometry(mesh_path: Path, texture_path: Path) -> trimesh.Trimesh:
    """The triangles of a textured OBJ scan without its texture (``texture_path`` unused)."""
    v, _, fv, _ = parse_obj(mesh_path)
    if len(fv) == 0:
        raise RenderInputError(f"{mesh_path}: mesh has no faces")
    return trimesh.Trimesh(v, fv, process=False)


def read_scan(
    data_path: str | os.PathLike,
    data_name: str,
    name: str,
    mesh_format: str = "ply",
    load_obj: Callable[[Path, Path], trimesh.Trimesh] = obj_geometry,
) -> tuple[trimesh.Trimesh, ScanTransform, float]:
    """One item's checked raw mesh, its normalisation and its facing yaw in radians.

    A vertex-coloured PLY is read as is; a textured OBJ with ``load_obj(mesh, texture)`` (by
    default its geometry alone; ``render.mesh.load_scan`` passes the colouring loader).
    """
    mesh_path, texture_path = scan_files(data_path, data_name, name, mesh_format)
    facing = scan_facing(data_path, data_name, name)
    if texture_path is None:
        mesh = load_vertex_colored_ply(mesh_path)
    else:
        mesh = load_obj(mesh_path, texture_path)
    mesh = check_raw_mesh(mesh, mesh_path)
    return mesh, normalization(mesh, name, data_name, mesh_path), facing


def scan_transform(
    data_path: str | os.PathLike, data_name: str, name: str, mesh_format: str = "ply"
) -> tuple[ScanTransform, float]:
    """The normalisation and facing of one item from its geometry alone (no texture).

    Equal to what ``render.mesh.load_scan`` applies: one midpoint subdivision changes neither the
    area-weighted centroid nor the largest centred coordinate.

    Returns:
        (transform, facing yaw in radians).
    """
    _, transform, facing = read_scan(data_path, data_name, name, mesh_format)
    return transform, facing
