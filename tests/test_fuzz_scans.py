"""Property-based fuzzing of the scan and 3D-joint readers the renderer uses (issue 18, item 3).

Every reader either returns valid values or raises :class:`~utils.scans.RenderInputError` (a
:class:`~utils.errors.BadInputError`) whose message names the file it read; never another exception
type, never a hang, never a multi-GB allocation for a header that claims 10^12 vertices.

* :func:`utils.scans.read_scan` on PLY scans (ASCII and binary, vertex counts and face counts in
  the header that lie, truncation, flipped bytes, NaN / inf / 1e9 coordinates, face indices out
  of range) and OBJ scans (random, malformed and valid lines mixed);
* :func:`render.mesh.load_scan` on textured OBJ scans with good, truncated, random, empty and
  huge-claiming texture files;
* the joint readers of ``render_keypoint.py``: ``Joint3D`` JSON, 2K2K ``kp3ds.json`` and OpenPose
  JSON (:func:`utils.keypoints.load_openpose_json`).

The example budget is ``FUZZ_EXAMPLES`` per test (default 100, derandomised so CI is reproducible);
``FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_scans.py`` is the long run.
"""

from __future__ import annotations

import json
import resource
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from render.keypoints3d import load_kp3ds, load_wholebody_json
from render.mesh import load_scan
from utils.errors import BadInputError
from utils.keypoints import load_openpose_json
from utils.scans import RenderInputError, read_scan, scan_files

FUZZ = fuzz_settings(100)

MAX_SECONDS = 5.0
"""Longest one read of a file of a few kB may take (a hang or a 10^12-row loop fails it)."""

MAX_GROWTH_MB = 1024
"""Largest growth of the process's peak memory over a whole fuzz test (a header that made a
reader allocate what it claims, 10^12 rows, would be far above)."""

NORMALISED_EXTENT = 0.5
"""Bound of a normalised scan's coordinates (the mesh fits in 0.357; RP scales by 0.9 at most)."""

SPECIALS = [float("nan"), float("inf"), float("-inf"), 1e9, -1e9, 1e30, 1e-30, 0.0, 1e200]
HUGE_COUNTS = [0, 1, 2**31, 2**32 + 3, 10**12, -1, -(10**12)]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def memory_bound():
    """The whole module stays within :data:`MAX_GROWTH_MB` of peak memory."""
    before = peak_mb()
    yield
    assert peak_mb() - before < MAX_GROWTH_MB


def check_outcome(call, files: list[Path]):
    """Run ``call()``: it returns a value, or raises RenderInputError naming one of ``files``.

    Returns the value (None when it raised)."""
    start = time.monotonic()
    try:
        value = call()
    except BadInputError as e:
        assert isinstance(e, RenderInputError), f"{type(e).__name__}: {e}"
        assert any(str(e).startswith(f"{f}:") for f in files), str(e)
        value = None
    assert time.monotonic() - start < MAX_SECONDS
    return value


def check_raw_scan(mesh, transform) -> None:
    """A returned raw scan: finite vertices, faces in range, a finite normalisation that maps
    the used vertices into the normalised box."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    assert len(faces) > 0 and faces.ndim == 2 and faces.shape[1] == 3
    assert np.isfinite(vertices).all()
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert np.isfinite(transform.center).all() and np.isfinite(transform.scale)
    assert transform.scale > 0
    normalised = transform.apply(vertices[np.unique(faces)])
    assert np.isfinite(normalised).all() and np.abs(normalised).max() <= NORMALISED_EXTENT


# ------------------------------------------------------------------------------------------------
# PLY scans
# ------------------------------------------------------------------------------------------------

coordinate = st.one_of(st.floats(-2, 2, allow_nan=False), st.sampled_from(SPECIALS))


@st.composite
def ply_files(draw) -> bytes:
    """A vertex-coloured PLY as the renderer expects, then damaged (or not)."""
    nv = draw(st.integers(0, 8))
    vertices = [[draw(coordinate) for _ in range(3)] for _ in range(nv)]
    colors = [[draw(st.integers(0, 255)) for _ in range(3)] for _ in range(nv)]
    nf = draw(st.integers(0, 6))
    faces = [[draw(st.integers(-2, nv + 2)) for _ in range(3)] for _ in range(nf)]
    fmt = draw(st.sampled_from(["ascii", "binary_little_endian", "binary_big_endian"]))
    v_count = draw(st.one_of(st.just(nv), st.sampled_from(HUGE_COUNTS)))
    f_count = draw(st.one_of(st.just(nf), st.sampled_from(HUGE_COUNTS)))
    header = (
        f"ply\nformat {fmt} 1.0\nelement vertex {v_count}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {f_count}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()
    if fmt == "ascii":
        rows = [
            " ".join(map(repr, v)) + " " + " ".join(map(str, c))
            for v, c in zip(vertices, colors, strict=True)
        ]
        rows += ["3 " + " ".join(map(str, f)) for f in faces]
        body = ("\n".join(rows) + "\n").encode()
    else:
        e = "<" if fmt == "binary_little_endian" else ">"
        body = b"".join(
            struct.pack(f"{e}3f3B", *np.float32(v).tolist(), *c)
            for v, c in zip(vertices, colors, strict=True)
        )
        list_count = draw(st.sampled_from([3, 3, 3, 0, 255]))
        body += b"".join(
            struct.pack(f"{e}B", list_count) + struct.pack(f"{e}3i", *f) for f in faces
        )
    data = header + body
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "junk"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif damage == "junk":
        data += draw(st.binary(max_size=64))
    return data


@FUZZ
@given(data=ply_files())
def test_fuzz_ply_scans(root, data):
    path = root / "obj" / "ANNY" / "item" / "item.ply"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out = check_outcome(lambda: read_scan(root, "ANNY", "item"), [path])
    if out is not None:
        mesh, transform, facing = out
        check_raw_scan(mesh, transform)
        assert facing == 0.0
        colors = np.asarray(mesh.visual.vertex_colors)
        assert colors.shape == (len(mesh.vertices), 4) and colors.dtype == np.uint8


@FUZZ
@given(data=st.binary(max_size=512))
def test_fuzz_ply_random_bytes(root, data):
    path = root / "obj" / "ANNY" / "junk" / "junk.ply"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out = check_outcome(lambda: read_scan(root, "ANNY", "junk"), [path])
    if out is not None:
        check_raw_scan(out[0], out[1])


# ------------------------------------------------------------------------------------------------
# OBJ scans and textures
# ------------------------------------------------------------------------------------------------

number = st.one_of(
    st.floats(-2, 2, allow_nan=False).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e9", "1e400", "-0", "x", "1,5", "0x10"]),
)
index = st.one_of(st.integers(-6, 8), st.sampled_from([10**12, -(10**12), 10**30])).map(str)
corner = st.one_of(
    index,
    st.builds(lambda v, t: f"{v}/{t}", index, index),
    st.builds(lambda v, t, n: f"{v}/{t}/{n}", index, index, index),
    st.builds(lambda v, n: f"{v}//{n}", index, index),
    st.builds(lambda v: f"{v}/", index),
)
obj_line = st.one_of(
    st.builds(lambda *xs: "v " + " ".join(xs), number, number, number),
    st.builds(lambda a, b: f"v {a} {b}", number, number),
    st.builds(lambda a, b: f"vt {a} {b}", number, number),
    st.builds(lambda a: f"vt {a}", number),
    st.lists(corner, max_size=6).map(lambda cs: "f " + " ".join(cs)),
    st.sampled_from(["", "# comment", "mtllib x.mtl", "usemtl m", "o body", "s off", "vn 0 0 1"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=16,
    ),
)
CUBE_OBJ = [
    *(f"v {x} {y} {z}" for x in (-0.3, 0.3) for y in (-0.9, 0.9) for z in (-0.2, 0.2)),
    *(f"vt {u} {v}" for u in (0.1, 0.9) for v in (0.2, 0.8)),
    "f 1/1 2/2 4/4 3/3",
    "f 5/1 7/3 8/4 6/2",
    "f 1/1 5/2 6/4 2/3",
    "f 3/1 4/2 8/4 7/3",
    "f 1/1 3/2 7/4 5/3",
    "f 2/1 6/2 8/4 4/3",
]
"""A valid textured box (quads) that random lines are mixed into, so valid scans occur too."""


@st.composite
def obj_files(draw) -> bytes:
    """OBJ lines, random and valid mixed, then maybe bytes that are not UTF-8."""
    base = CUBE_OBJ if draw(st.booleans()) else []
    extra = draw(st.lists(obj_line, max_size=8))
    lines = list(base)
    for line in extra:
        lines.insert(draw(st.integers(0, len(lines))), line)
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    return text.encode() + draw(st.sampled_from([b"", b"\xff\xfe\x00", b"\nv 1 2 \xc3\n"]))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` RGB pixels, with 1000 bytes of data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_bytes(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


GOOD_TEXTURE = png_bytes(np.tile(np.array([40, 90, 200], np.uint8), (16, 16, 1)))


@st.composite
def texture_files(draw) -> bytes:
    kind = draw(st.sampled_from(["good", "good", "gray16", "truncated", "random", "empty", "huge"]))
    if kind == "good":
        return GOOD_TEXTURE
    if kind == "gray16":
        return png_bytes(np.full((4, 4), 40000, np.uint16))
    if kind == "truncated":
        return GOOD_TEXTURE[: draw(st.integers(0, len(GOOD_TEXTURE) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=256))
    if kind == "empty":
        return b""
    return png_claiming(draw(st.sampled_from([30000, 65535, 2**31 - 1])), 30000)


@FUZZ
@given(data=obj_files(), texture=texture_files())
def test_fuzz_obj_scans(root, data, texture):
    """2K2K textured OBJ through the geometry reader and the colouring loader."""
    d = root / "obj" / "2K2K" / "objitem"
    d.mkdir(parents=True, exist_ok=True)
    mesh_path, texture_path = d / "objitem.obj", d / "objitem.png"
    mesh_path.write_bytes(data)
    texture_path.write_bytes(texture)
    assert scan_files(root, "2K2K", "objitem", "obj") == (mesh_path, texture_path)
    out = check_outcome(lambda: read_scan(root, "2K2K", "objitem", "obj"), [mesh_path])
    if out is not None:
        check_raw_scan(out[0], out[1])
    scan = check_outcome(
        lambda: load_scan(root, "2K2K", "objitem", "obj"), [mesh_path, texture_path]
    )
    if scan is not None:
        vertices, faces = np.asarray(scan.mesh.vertices), np.asarray(scan.mesh.faces)
        assert np.isfinite(vertices).all() and np.abs(vertices).max() <= NORMALISED_EXTENT
        assert len(faces) and faces.min() >= 0 and faces.max() < len(vertices)
        colors = np.asarray(scan.mesh.visual.vertex_colors)
        assert colors.shape == (len(vertices), 4) and colors.dtype == np.uint8
        assert out is not None, "the colouring loader accepted what the geometry reader refused"


@FUZZ
@given(texture=texture_files())
def test_fuzz_textures(root, texture):
    """A valid textured OBJ with any texture file: coloured, or refused naming the texture."""
    d = root / "obj" / "2K2K" / "texitem"
    d.mkdir(parents=True, exist_ok=True)
    texture_path = d / "texitem.png"
    (d / "texitem.obj").write_text("\n".join(CUBE_OBJ) + "\n")
    texture_path.write_bytes(texture)
    scan = check_outcome(lambda: load_scan(root, "2K2K", "texitem", "obj"), [texture_path])
    if scan is not None:
        colors = np.asarray(scan.mesh.visual.vertex_colors)
        assert colors.shape == (len(scan.mesh.vertices), 4) and colors.dtype == np.uint8


# ------------------------------------------------------------------------------------------------
# 3D joints and OpenPose JSON (render_keypoint.py)
# ------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def joint_files(draw) -> bytes:
    """Joint3D JSON (``{"joint3d", "visible"}``), kp3ds (N x 4) or anything else, as bytes."""
    kind = draw(st.sampled_from(["joint3d", "kp3ds", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=128))
    if kind == "json":
        value = draw(json_values)
    else:
        rows = draw(st.sampled_from([133, 67, 130, 0, 1]))
        cols = draw(st.sampled_from([3, 4] if kind == "joint3d" else [4, 3]))
        value_at = st.one_of(st.floats(-1, 1), st.sampled_from([float("nan"), 1e308]))
        table = np.asarray(draw(st.lists(value_at, min_size=1, max_size=4)))
        values = np.resize(table, (rows, cols)).tolist()
        if kind == "joint3d":
            visible = draw(st.one_of(st.just([1] * rows), json_values))
            value = {"joint3d": values, "visible": visible}
        else:
            value = values
    text = json.dumps(value, allow_nan=True)
    return text.encode() if draw(st.booleans()) else text.encode("utf-16")


@FUZZ
@given(data=joint_files())
def test_fuzz_joint_readers(root, data):
    path = root / "joints.json"
    path.write_bytes(data)
    for reader, rows in ((load_wholebody_json, 31), (load_kp3ds, 31)):
        out = check_outcome(lambda reader=reader: reader(path), [path])
        if out is not None:
            points, visible = out
            assert points.shape == (rows, 3) and visible.shape == (rows,)
            assert visible.dtype == bool and np.isfinite(points[visible]).all()
    start = time.monotonic()
    try:
        keypoints = load_openpose_json(path)
    except BadInputError as e:
        assert str(e).startswith(f"{path}:"), str(e)
    else:
        assert keypoints.shape == (31, 3) and np.isfinite(keypoints).all()
    assert time.monotonic() - start < MAX_SECONDS
