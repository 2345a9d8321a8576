"""Tests of the training-data renderer (facts sheet §6): camera and depth encoding, ray casting
against analytic geometry, view yaw / THuman2 facing, NOSHADING and SHADED images, back-projection
onto the surface, the textured-OBJ loader, file layout and list files, resume, bad inputs, CLIs and
the 3D-joint keypoints.

Every dataset is built in a temporary folder; resolutions are 64-256 px.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")  # before anything imports pyrender

import json
import math
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import open3d as o3d
import pytest
import trimesh

from render.keypoints3d import (
    AUTHORS_KEYPOINT_SCALE,
    load_joints,
    project_keypoints,
    write_item_keypoints,
)
from render.layout import DEFAULT_YAWS, list_line, list_path, view_files, view_name
from render.mesh import load_scan, load_textured_obj, sample_texture
from render.pipeline import RenderOptions, ScanRenderer, render_dataset, shard, write_list
from render.raycast import RayCaster
from utils.camera import (
    PNG_STEP,
    backproject,
    depth_units_to_range,
    focal_length,
    ortho_ray_origins,
    pixel_rays,
    png_to_depth_units,
    png_to_range,
    project,
    range_to_png,
)
from utils.scans import (
    DATASETS,
    RP_ROTATE_NEG90,
    RP_SCALE_09,
    RenderInputError,
    list_items,
    normalization,
    scan_files,
    scan_transform,
)

REPO = Path(__file__).resolve().parents[1]
CAMERA = np.array([0.0, 0.0, 1.0])
F_2048 = 2048 / (2 * math.tan(math.radians(25)))  # facts §6.3: 2195.975
FLOAT_TOL = 1e-6  # float32 geometry / rays in Open3D

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def rot_y(deg: float) -> np.ndarray:
    """Rotation by ``deg`` about +Y from the rotation vector (0, deg, 0) (independent of
    ``utils.camera.rotation_y``)."""
    return cv2.Rodrigues(np.array([0.0, math.radians(deg), 0.0]))[0]


def box(extents, center, color=None) -> trimesh.Trimesh:
    m = trimesh.creation.box(extents=extents)
    m.apply_translation(center)
    if color is not None:
        m.visual.vertex_colors = np.tile([*color, 255], (len(m.vertices), 1)).astype(np.uint8)
    return m


def colored(mesh: trimesh.Trimesh, color) -> trimesh.Trimesh:
    mesh.visual.vertex_colors = np.tile([*color, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh


def concat(*meshes: trimesh.Trimesh) -> trimesh.Trimesh:
    out = trimesh.util.concatenate(list(meshes))
    if all(m.visual.kind == "vertex" for m in meshes):
        assert out.visual.kind == "vertex"
    return out


def pair_mesh(color=(30, 160, 90)) -> trimesh.Trimesh:
    """Two boxes: asymmetric under x, y and z mirroring and under yaw sign."""
    return colored(
        concat(box((0.3, 0.6, 0.3), (0, 0, 0)), box((0.15, 0.15, 0.15), (0.3, 0.25, 0.15))), color
    )


def write_ply_item(root: Path, ds: str, name: str, mesh: trimesh.Trimesh) -> Path:
    d = root / "obj" / ds / name
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.ply"
    mesh.export(path)
    return path


def write_obj(path: Path, vertices, faces, uvs=None) -> None:
    """OBJ with one UV per vertex (same index); ``faces`` 0-based, polygons allowed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in np.asarray(vertices, dtype=np.float64).tolist()]
    if uvs is not None:
        lines += [f"vt {u!r} {v!r}" for u, v in np.asarray(uvs, dtype=np.float64).tolist()]
    for f in faces:
        if uvs is None:
            lines.append("f " + " ".join(str(i + 1) for i in f))
        else:
            lines.append("f " + " ".join(f"{i + 1}/{i + 1}" for i in f))
    path.write_text("\n".join(lines) + "\n")


def write_png_bytes(path: Path, image_bgr: np.ndarray) -> None:
    """Lossless PNG content under any file name (OpenCV reads by content, not extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", image_bgr)
    assert ok
    path.write_bytes(buf.tobytes())


def flat_texture(color_rgb=(120, 60, 200), size=8) -> np.ndarray:
    return np.tile(np.array(color_rgb[::-1], np.uint8), (size, size, 1))


def write_rp_item(root: Path, name: str, mesh: trimesh.Trimesh, texture_bgr=None) -> Path:
    d = root / "obj" / "RP" / f"{name}_OBJ"
    write_obj(
        d / f"{name}_100k.obj", mesh.vertices, mesh.faces, np.full((len(mesh.vertices), 2), 0.5)
    )
    if texture_bgr is not None:
        write_png_bytes(d / "tex" / f"{name}_dif_8k.jpg", texture_bgr)
    return d


def write_thuman2_item(
    root: Path, name: str, mesh: trimesh.Trimesh, orient=None, texture: bool = True
) -> Path:
    d = root / "obj" / "THuman2" / "data" / name
    write_obj(d / f"{name}.obj", mesh.vertices, mesh.faces, np.full((len(mesh.vertices), 2), 0.5))
    if texture:
        cv2.imwrite(str(d / "material0.jpeg"), flat_texture())
    if orient is not None:
        p = root / "obj" / "THuman2" / "smplx" / name / "smplx_param.pkl"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            pickle.dump({"global_orient": np.asarray(orient, np.float32).reshape(1, 3)}, f)
    return d


def render_all(root: Path, ds: str, **options):
    renderer = ScanRenderer(root, ds, RenderOptions(**options))
    try:
        return render_dataset(renderer, list_items(root, ds), progress=False)
    finally:
        renderer.close()


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def ray_sphere(origins, dirs, center, radius):
    """Analytic ray-sphere intersection: (hit, near root, far root)."""
    oc = origins - np.asarray(center, dtype=np.float64)
    b = np.einsum("...i,...i->...", dirs, oc)
    c = np.einsum("...i,...i->...", oc, oc) - radius**2
    disc = b * b - c
    hit = disc > 0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    return hit, -b - sq, -b + sq


def ray_box(origins, dirs, lo, hi):
    """Analytic ray-AABB intersection (slabs): (hit, entry distance, exit distance)."""
    origins = np.broadcast_to(origins, dirs.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (np.asarray(lo) - origins) / dirs
        t2 = (np.asarray(hi) - origins) / dirs
    t_in = np.minimum(t1, t2).max(axis=-1)
    t_out = np.maximum(t1, t2).min(axis=-1)
    return (t_out > t_in) & (t_out > 0), t_in, t_out


def silhouette_band(mask: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of the silhouette (inside or outside)."""
    kernel = np.ones((3, 3), np.uint8)
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, kernel) > 0) & ~(cv2.erode(m, kernel) > 0)


def sagitta(vertices, faces, center, radius) -> float:
    """Largest gap between a sphere and its inscribed tessellation: radius - min face-plane
    distance from the centre."""
    v = np.asarray(vertices, np.float64) - np.asarray(center, np.float64)
    tri = v[np.asarray(faces)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return float(radius - np.abs(np.einsum("ij,ij->i", n, tri[:, 0])).min())


def check_sphere_ranges(front, back, center, radius, s, res, trunc):
    """Front/back range maps of a tessellated sphere (vertices on the sphere, sagitta ``s``).

    The polyhedron lies between the spheres of radius ``radius - s`` and ``radius``, so the front
    range lies between their near roots and the back range between their far roots; ``trunc`` is
    the allowed downward (truncation) error of the stored values.
    """
    rays = pixel_rays(res)
    hit_out, t0_out, t1_out = ray_sphere(CAMERA, rays, center, radius)
    hit_in, t0_in, t1_in = ray_sphere(CAMERA, rays, center, radius - s)
    hit = front > 0
    assert np.array_equal(hit, back > 0)
    assert not (hit_in & ~hit).any(), "rays through the inscribed sphere must hit"
    assert not (hit & ~hit_out).any(), "rays missing the circumscribed sphere must miss"
    band = silhouette_band(hit_out)
    assert not ((hit ^ hit_out) & ~band).any(), "hit mask differs off the 1-px silhouette band"
    m = hit & hit_in
    assert (front[m] >= t0_out[m] - trunc - FLOAT_TOL).all()
    assert (front[m] <= t0_in[m] + FLOAT_TOL).all()
    assert (back[m] >= t1_in[m] - trunc - FLOAT_TOL).all()
    assert (back[m] <= t1_out[m] + FLOAT_TOL).all()
    # away from grazing incidence the error is at most truncation + sagitta / cos(incidence)
    normal = CAMERA + rays * t0_out[..., None] - center
    cos_inc = np.abs(np.einsum("...i,...i->...", rays, normal)) / radius
    ng = hit & (cos_inc > 0.5)
    assert ng.sum() > 0.5 * hit.sum()
    assert np.abs(front[ng] - t0_out[ng]).max() <= trunc + 2 * s + FLOAT_TOL
    assert np.abs(back[ng] - t1_out[ng]).max() <= trunc + 2 * s + FLOAT_TOL


# ------------------------------------------------------------------------------------------------
# 1. camera and depth encoding
# ------------------------------------------------------------------------------------------------


def test_focal_length_matches_facts():
    assert focal_length(2048) == pytest.approx(2195.975, abs=1e-3)
    assert focal_length(512) == pytest.approx(2195.975 / 4, abs=1e-3)


def test_backproject_then_project_lands_on_pixel_centres(rng):
    res = 64
    range_map = rng.uniform(0.6, 1.4, (res, res))
    range_map[rng.random((res, res)) < 0.3] = 0.0  # background
    points, mask = backproject(range_map)
    assert np.array_equal(mask, range_map > 0)
    assert points.shape == (mask.sum(), 3)
    rows, cols = np.nonzero(mask)  # row-major, as backproject's order
    uv = project(points, res)
    np.testing.assert_allclose(uv[:, 0], cols + 0.5, atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], rows + 0.5, atol=1e-9)
    # the range is the Euclidean distance from the camera centre (not z-depth)
    np.testing.assert_allclose(np.linalg.norm(points - CAMERA, axis=1), range_map[mask], atol=1e-12)


def test_backproject_rejects_non_square():
    with pytest.raises(ValueError):
        backproject(np.ones((4, 5)))


def test_pixel_rays_geometry():
    res = 64
    rays = pixel_rays(res)
    assert rays.shape == (res, res, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=-1), 1.0, atol=1e-12)
    assert (rays[..., 2] < 0).all()
    f = focal_length(res)
    centre = rays[res // 2 - 1 : res // 2 + 1, res // 2 - 1 : res // 2 + 1].reshape(-1, 3)
    np.testing.assert_allclose(centre[:, :2], 0.0, atol=0.6 / f)
    assert (centre[:, 2] < -0.9999).all()
    # row 0 is the top (y > 0), column 0 the left (x < 0)
    assert (rays[0, :, 1] > 0).all() and (rays[-1, :, 1] < 0).all()
    assert (rays[:, 0, 0] < 0).all() and (rays[:, -1, 0] > 0).all()
    # pixel centres at +0.5: the outermost centres are half a pixel inside the 50 degree FOV
    edge = math.tan(math.radians(25)) * (1 - 1 / res)
    np.testing.assert_allclose(rays[0, -1, 0] / -rays[0, -1, 2], edge, rtol=1e-12)
    np.testing.assert_allclose(rays[0, -1, 1] / -rays[0, -1, 2], edge, rtol=1e-12)
    # the same rays project back onto their own pixel centres
    uv = project(CAMERA + rays.reshape(-1, 3) * 0.8, res)
    jj, ii = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5)
    np.testing.assert_allclose(uv, np.stack((jj.ravel(), ii.ravel()), 1), atol=1e-9)


def test_range_png_round_trip_truncates(rng):
    r = rng.uniform(0.55, 1.45, 100_000)
    png = range_to_png(r)
    assert png.dtype == np.uint16
    expected = np.trunc(((r - 1.0) * F_2048 + 1024.0) * 32.0)  # facts §6.6
    np.testing.assert_array_equal(png, expected.astype(np.uint16))
    decoded = png_to_range(png)
    err = r - decoded
    assert (err >= -1e-12).all(), "decoded range must never exceed the true range"
    assert (err < PNG_STEP + 1e-12).all()
    assert err.max() > 0.9 * PNG_STEP  # truncation, not rounding
    assert PNG_STEP == pytest.approx(1.0 / (32 * 2195.975), rel=1e-6)
    assert PNG_STEP == pytest.approx(1.42e-5, rel=0.01)


def test_range_png_background_and_d_units():
    png = range_to_png(np.array([[0.0, 1.0], [np.nan, 1.0 + 512.0 / F_2048]]))
    assert png[0, 0] == 0 and png[1, 0] == 0
    assert png[0, 1] == 32768  # d = 1: depth_int 1024, PNG 32768
    assert png[1, 1] == 32768 + 512 * 32
    d_units = png_to_depth_units(png)
    assert d_units.dtype == np.float32
    assert d_units[0, 1] == 2.0  # facts §6.6: the origin (d = 1) is D = 2
    assert d_units[1, 1] == 3.0
    assert d_units[0, 0] == 0.0
    np.testing.assert_array_equal(depth_units_to_range(np.array([2.0, 0.0, -1.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(depth_units_to_range(d_units), png_to_range(png), atol=1e-12)
    assert png_to_range(np.array([0]))[0] == 0.0


@pytest.mark.parametrize("bad", [0.5, 1.48, 3.0])
def test_range_png_out_of_range_raises(bad):
    with pytest.raises(ValueError):
        range_to_png(np.array([[1.0, bad]]))


def test_range_png_encodable_limits():
    lo = 1.0 - (1024.0 - 1.0 / 32.0) / F_2048 + 1e-9
    hi = 1.0 + (65535.0 / 32.0 - 1024.0) / F_2048
    png = range_to_png(np.array([lo, hi]))
    assert png[0] == 1 and png[1] == 65535


# ------------------------------------------------------------------------------------------------
# 2. ray casting against analytic geometry
# ------------------------------------------------------------------------------------------------


def test_raycast_sphere_analytic():
    res, radius = 128, 0.35
    sphere = trimesh.creation.icosphere(subdivisions=7, radius=radius)
    s = sagitta(sphere.vertices, sphere.faces, (0, 0, 0), radius)
    assert 0 < s < PNG_STEP, "tessellation must stay below one PNG step"
    hits = RayCaster(sphere.vertices, sphere.faces).cast(res)
    check_sphere_ranges(hits.front, hits.back, np.zeros(3), radius, s, res, trunc=0.0)
    hit = hits.front > 0
    assert np.array_equal(hits.front_face >= 0, hit) and np.array_equal(hits.back_face >= 0, hit)
    # the front triangle faces the camera, the back triangle faces away
    rays = pixel_rays(res)[hit]
    normals = sphere.face_normals
    assert (np.einsum("ij,ij->i", normals[hits.front_face[hit]], rays) < 0).all()
    assert (np.einsum("ij,ij->i", normals[hits.back_face[hit]], rays) > 0).all()


def test_raycast_box_analytic():
    res = 128
    lo, hi = np.array([-0.1, -0.24, -0.2]), np.array([0.2, 0.16, 0.0])
    mesh = box(hi - lo, (lo + hi) / 2)
    caster = RayCaster(mesh.vertices, mesh.faces)
    rays = pixel_rays(res)
    for yaw in (0, 25):
        hits = caster.cast(res, rotation=rot_y(yaw) if yaw else None)
        # mesh rotated by R about +Y == rays rotated by R^T in the mesh frame
        o, d = CAMERA @ rot_y(yaw), rays @ rot_y(yaw)
        hit, t_in, t_out = ray_box(o, d, lo, hi)
        hit_big = ray_box(o, d, lo - 1e-5, hi + 1e-5)[0]
        hit_small = ray_box(o, d, lo + 1e-5, hi - 1e-5)[0]
        got = hits.front > 0
        assert hit.sum() > 1000
        assert not (got & ~hit_big).any() and not (hit_small & ~got).any()
        m = got & hit
        np.testing.assert_allclose(hits.front[m], t_in[m], atol=FLOAT_TOL, rtol=0)
        np.testing.assert_allclose(hits.back[m], t_out[m], atol=FLOAT_TOL, rtol=0)


def test_raycast_box_ortho():
    res = 64
    lo, hi = np.array([-0.1, -0.24, -0.2]), np.array([0.2, 0.16, 0.05])
    mesh = box(hi - lo, (lo + hi) / 2)
    hits = RayCaster(mesh.vertices, mesh.faces).cast(res, ortho=True)
    xy = ortho_ray_origins(res)
    assert xy[0, 0, 0] == pytest.approx(-math.tan(math.radians(25)))
    assert xy[0, 0, 1] == pytest.approx(math.tan(math.radians(25)))  # row 0 = top
    inside = (
        (xy[..., 0] > lo[0]) & (xy[..., 0] < hi[0]) & (xy[..., 1] > lo[1]) & (xy[..., 1] < hi[1])
    )
    assert np.array_equal(hits.front > 0, inside)
    np.testing.assert_allclose(hits.front[inside], 1.0 - hi[2], atol=FLOAT_TOL)
    np.testing.assert_allclose(hits.back[inside], 1.0 - lo[2], atol=FLOAT_TOL)


# ---- through the full pipeline ------------------------------------------------------------------

GEO_YAWS = (0, 30)
GEO_RES = 128
COLORS = {"ball": (200, 100, 50), "box": (10, 220, 140), "pair": (30, 160, 90)}
NEAR_RED, FAR_BLUE = (220, 20, 20), (20, 20, 220)


@pytest.fixture(scope="module")
def geo_ds(tmp_path_factory):
    """ANNY items rendered once at 128 px, yaws 0 and 30: a finely tessellated sphere (off-centre
    raw), a box, two boxes (asymmetric), and a small red box in front of a large blue one."""
    root = tmp_path_factory.mktemp("geo")
    ball = trimesh.creation.icosphere(subdivisions=7, radius=0.25)
    ball.apply_translation((0.1, 0.2, -0.3))
    write_ply_item(root, "ANNY", "ball", colored(ball, COLORS["ball"]))
    write_ply_item(root, "ANNY", "box", box((0.5, 0.8, 0.3), (1.0, 2.0, 3.0), COLORS["box"]))
    write_ply_item(root, "ANNY", "pair", pair_mesh(COLORS["pair"]))
    layered = concat(
        box((0.1, 0.1, 0.05), (0, 0, 0.3), NEAR_RED), box((0.6, 0.6, 0.1), (0, 0, -0.3), FAR_BLUE)
    )
    write_ply_item(root, "ANNY", "layered", layered)
    report = render_all(root, "ANNY", res=GEO_RES, yaws=GEO_YAWS)
    assert sorted(report.rendered) == ["ball", "box", "layered", "pair"], report.failed
    scans = {name: load_scan(root, "ANNY", name) for name in ("ball", "box", "pair", "layered")}
    return SimpleNamespace(root=root, scans=scans)


def geo_file(ds, name: str, yaw: int, which: str) -> np.ndarray:
    return read(getattr(view_files(ds.root, "ANNY", name, yaw), which))


def test_pipeline_sphere_depth_is_analytic(geo_ds):
    scan = geo_ds.scans["ball"]
    center = scan.transform.apply(np.array([[0.1, 0.2, -0.3]]))[0]
    radius = 0.25 / scan.transform.scale
    # normalisation: centroid to the origin, largest |coordinate| to 1 / 2.8
    np.testing.assert_allclose(center, 0.0, atol=1e-7)
    assert radius == pytest.approx(1 / 2.8, abs=1e-7)
    assert np.abs(scan.mesh.vertices).max() == pytest.approx(1 / 2.8, abs=1e-7)
    s = sagitta(scan.mesh.vertices, scan.mesh.faces, center, radius)
    assert 0 < s < PNG_STEP
    for yaw in GEO_YAWS:  # a sphere at the origin looks the same from every yaw
        front = geo_file(geo_ds, "ball", yaw, "depth_front")
        back = geo_file(geo_ds, "ball", yaw, "depth_back")
        assert front.dtype == np.uint16 and front.shape == (GEO_RES, GEO_RES)
        check_sphere_ranges(
            png_to_range(front), png_to_range(back), center, radius, s, GEO_RES, trunc=PNG_STEP
        )


def test_pipeline_box_depth_is_analytic(geo_ds):
    scan = geo_ds.scans["box"]
    t = scan.transform
    np.testing.assert_allclose(t.center, (1.0, 2.0, 3.0), atol=1e-6)
    assert t.scale == pytest.approx(2.8 * 0.4, rel=1e-6)
    lo = t.apply(np.array([[0.75, 1.6, 2.85]]))[0]
    hi = t.apply(np.array([[1.25, 2.4, 3.15]]))[0]
    np.testing.assert_allclose(hi, [0.25 / 1.12, 0.4 / 1.12, 0.15 / 1.12], atol=1e-6)
    rays = pixel_rays(GEO_RES)
    for yaw in GEO_YAWS:
        front = png_to_range(geo_file(geo_ds, "box", yaw, "depth_front"))
        back = png_to_range(geo_file(geo_ds, "box", yaw, "depth_back"))
        o, d = CAMERA @ rot_y(yaw), rays @ rot_y(yaw)  # view = mesh rotated by +yaw about +Y
        hit, t_in, t_out = ray_box(o, d, lo, hi)
        hit_big = ray_box(o, d, lo - 1e-5, hi + 1e-5)[0]
        hit_small = ray_box(o, d, lo + 1e-5, hi - 1e-5)[0]
        got = front > 0
        assert np.array_equal(got, back > 0)
        assert not (got & ~hit_big).any() and not (hit_small & ~got).any(), f"yaw {yaw}"
        m = got & hit
        assert m.sum() > 1000
        for value, true in ((front[m], t_in[m]), (back[m], t_out[m])):
            assert (value <= true + FLOAT_TOL).all(), f"yaw {yaw}: decoded above true range"
            assert (value > true - PNG_STEP - FLOAT_TOL).all(), f"yaw {yaw}: off by > 1 step"


# ------------------------------------------------------------------------------------------------
# 3. yaw and THuman2 facing
# ------------------------------------------------------------------------------------------------


def compare_png_to_cast(png: np.ndarray, cast_range: np.ndarray) -> int:
    """Asserts the PNG equals the encoded cast within 1 unit and the masks differ only on the
    silhouette band; returns the number of foreground pixels."""
    expected = range_to_png(cast_range).astype(np.int64)
    got = png.astype(np.int64)
    both = (got > 0) & (expected > 0)
    assert np.abs(got[both] - expected[both]).max() <= 1
    assert not (((got > 0) ^ (expected > 0)) & ~silhouette_band(expected > 0)).any()
    return int(both.sum())


def test_yaw_rotates_mesh_about_plus_y(geo_ds):
    scan = geo_ds.scans["pair"]
    rotated = RayCaster(scan.mesh.vertices @ rot_y(30).T, scan.mesh.faces).cast(GEO_RES)
    front = geo_file(geo_ds, "pair", 30, "depth_front")
    back = geo_file(geo_ds, "pair", 30, "depth_back")
    assert compare_png_to_cast(front, rotated.front) > 1000
    compare_png_to_cast(back, rotated.back)
    # the test can tell the sign: the mesh rotated by -30 degrees looks different
    wrong = range_to_png(
        RayCaster(scan.mesh.vertices @ rot_y(-30).T, scan.mesh.faces).cast(GEO_RES).front
    )
    assert ((wrong > 0) ^ (front > 0)).sum() > 200
    # and yaw 0 is the unrotated mesh
    plain = RayCaster(scan.mesh.vertices, scan.mesh.faces).cast(GEO_RES)
    compare_png_to_cast(geo_file(geo_ds, "pair", 0, "depth_front"), plain.front)


def test_thuman2_facing_is_subtracted(tmp_path):
    g_deg = 20
    orient = (0.1, math.radians(g_deg), -0.2)  # only the y-component is the facing
    write_thuman2_item(tmp_path, "0001", pair_mesh(), orient=orient)
    scan = load_scan(tmp_path, "THuman2", "0001")
    assert scan.facing == pytest.approx(math.radians(g_deg), abs=1e-7)
    np.testing.assert_allclose(scan.view_rotation(g_deg), np.eye(3), atol=1e-7)
    np.testing.assert_allclose(scan.view_rotation(0), rot_y(-g_deg), atol=1e-7)
    np.testing.assert_allclose(scan.view_rotation(-10), rot_y(-10 - g_deg), atol=1e-7)
    transform, facing = scan_transform(tmp_path, "THuman2", "0001")
    assert facing == scan.facing
    np.testing.assert_allclose(
        transform.apply(pair_mesh().vertices)[:3], scan.mesh.vertices[:3], atol=1e-12
    )

    res = 64
    report = render_all(tmp_path, "THuman2", res=res, yaws=(0, g_deg))
    assert report.rendered == ["0001"], report.failed
    plain = RayCaster(scan.mesh.vertices, scan.mesh.faces).cast(res)
    turned = RayCaster(scan.mesh.vertices @ rot_y(-g_deg).T, scan.mesh.faces).cast(res)
    at_g = read(view_files(tmp_path, "THuman2", "0001", g_deg).depth_front)
    at_0 = read(view_files(tmp_path, "THuman2", "0001", 0).depth_front)
    assert compare_png_to_cast(at_g, plain.front) > 200  # yaw g of THuman2 == unrotated scan
    compare_png_to_cast(at_0, turned.front)
    assert ((at_g > 0) ^ (at_0 > 0)).sum() > 20


# ------------------------------------------------------------------------------------------------
# 4. NOSHADING and SHADED images
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pair", "box", "ball"])
@pytest.mark.parametrize("yaw", GEO_YAWS)
def test_noshading_is_the_flat_colour(geo_ds, name, yaw):
    bgr = np.array(COLORS[name][::-1], np.uint8)
    for side in ("front", "back"):
        image = geo_file(geo_ds, name, yaw, f"noshading_{side}")
        depth = geo_file(geo_ds, name, yaw, f"depth_{side}")
        assert image.dtype == np.uint8 and image.shape == (GEO_RES, GEO_RES, 3)
        fg = depth > 0
        assert fg.sum() > 500
        assert (image[fg] == bgr).all(), f"{side}: foreground is not BGR {bgr}"
        assert (image[~fg] == 0).all(), f"{side}: background is not black"


def test_noshading_front_and_back_surfaces(geo_ds):
    """Red box in front of a larger blue box: the front image shows red where the red box is the
    nearest surface, the back image is blue everywhere (the blue box is the farthest surface)."""
    red, blue = np.array(NEAR_RED[::-1]), np.array(FAR_BLUE[::-1])
    front = geo_file(geo_ds, "layered", 0, "noshading_front")
    back = geo_file(geo_ds, "layered", 0, "noshading_back")
    depth = png_to_range(geo_file(geo_ds, "layered", 0, "depth_front"))
    is_red, is_blue = (front == red).all(-1), (front == blue).all(-1)
    assert is_red.sum() > 20 and is_blue.sum() > 500
    assert np.array_equal(is_red | is_blue, depth > 0)
    assert depth[is_red].max() < depth[is_blue].min()
    assert (back[depth > 0] == blue).all()
    # the red box sits at the image centre
    rows, cols = np.nonzero(is_red)
    assert abs(rows.mean() + 0.5 - GEO_RES / 2) < 2 and abs(cols.mean() + 0.5 - GEO_RES / 2) < 2


@pytest.mark.parametrize("name", ["pair", "box", "ball"])
@pytest.mark.parametrize("yaw", GEO_YAWS)
def test_shaded_matches_depth_mask(geo_ds, name, yaw):
    shaded = geo_file(geo_ds, name, yaw, "shaded")
    depth = geo_file(geo_ds, name, yaw, "depth_front")
    assert shaded.dtype == np.uint8 and shaded.shape == (GEO_RES, GEO_RES, 3)
    fg = depth > 0
    lit = shaded.max(axis=-1) > 0
    assert not lit[~fg].any(), "SHADED must be black where the front depth is 0"
    assert lit[fg].mean() > 0.95, "SHADED must be non-black on most foreground pixels"
    # the rasterised silhouette (pyrender) and the ray-cast one agree up to 1 px
    assert not ((lit ^ fg) & ~silhouette_band(fg)).any()


def test_supersampled_shaded_is_masked(tmp_path):
    """With supersampling the anti-aliased edge leaks outside the ray-cast silhouette; SHADED is
    still black wherever the front depth is 0."""
    write_ply_item(tmp_path, "ANNY", "pair", pair_mesh())
    assert render_all(tmp_path, "ANNY", res=64, yaws=(0,), supersample=3).rendered == ["pair"]
    files = view_files(tmp_path, "ANNY", "pair", 0)
    shaded, fg = read(files.shaded), read(files.depth_front) > 0
    assert shaded.shape == (64, 64, 3)
    lit = shaded.max(axis=-1) > 0
    assert not lit[~fg].any() and lit[fg].mean() > 0.95
    assert not ((lit ^ fg) & ~silhouette_band(fg)).any()


def test_shaded_differs_between_views(geo_ds):
    """A new light draw per view: the sphere at the origin looks the same from every yaw (mean
    difference < 0.1 grey level with the same lights), so a large difference means new lights."""
    a = geo_file(geo_ds, "ball", 0, "shaded").astype(np.int64)
    b = geo_file(geo_ds, "ball", 30, "shaded").astype(np.int64)
    assert np.abs(a - b).mean() > 5, "each view draws its own lights"


def test_normalisation_of_an_asymmetric_mesh(tmp_path):
    mesh = pair_mesh()
    mesh.apply_translation((3.0, -1.0, 0.5))
    write_ply_item(tmp_path, "2K2K", "0007", mesh)
    scan = load_scan(tmp_path, "2K2K", "0007")
    tri = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    centroid = (area[:, None] * tri.mean(axis=1)).sum(0) / area.sum()  # area-weighted
    scale = 2.8 * np.abs(mesh.vertices - centroid).max()
    np.testing.assert_allclose(scan.transform.center, centroid, atol=1e-6)
    assert scan.transform.scale == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(scan.mesh.vertices, (mesh.vertices - centroid) / scale, atol=1e-6)
    assert np.abs(scan.mesh.vertices).max() == pytest.approx(1 / 2.8, rel=1e-6)
    np.testing.assert_array_equal(scan.mesh.visual.vertex_colors, mesh.visual.vertex_colors)
    assert scan.facing == 0.0 and scan.name == "0007" and scan.data_name == "2K2K"
    np.testing.assert_allclose(scan.view_rotation(20), rot_y(20), atol=1e-12)


# ------------------------------------------------------------------------------------------------
# 5. back-projection onto the surface
# ------------------------------------------------------------------------------------------------


def test_backprojected_depth_lies_on_the_mesh(tmp_path):
    res, yaw = 256, 20
    torus = trimesh.creation.torus(
        major_radius=0.3, minor_radius=0.1, major_sections=64, minor_sections=32
    )
    torus.apply_transform(trimesh.transformations.rotation_matrix(math.radians(60), (1, 0, 0)))
    torus.apply_translation((0.5, -0.2, 0.1))
    write_ply_item(tmp_path, "ANNY", "torus", colored(torus, (90, 90, 90)))
    assert render_all(tmp_path, "ANNY", res=res, yaws=(yaw,)).rendered == ["torus"]
    scan = load_scan(tmp_path, "ANNY", "torus")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor((scan.mesh.vertices @ rot_y(yaw).T).astype(np.float32)),
        o3d.core.Tensor(np.asarray(scan.mesh.faces, dtype=np.uint32)),
    )
    files = view_files(tmp_path, "ANNY", "torus", yaw)
    for path in (files.depth_front, files.depth_back):
        points, mask = backproject(png_to_range(read(path)))
        assert mask.sum() > 5000
        dist = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
        assert dist.mean() < 2e-4 and dist.max() < 2e-3, (path.name, dist.mean(), dist.max())
        # in fact the only error is the PNG truncation along the ray
        assert dist.max() < PNG_STEP + 2e-6, (path.name, dist.max())
    # the hole of the torus is seen: front and back differ (non-convex, several layers)
    front = png_to_range(read(files.depth_front))
    back = png_to_range(read(files.depth_back))
    assert ((back - front)[front > 0] > 0.05).mean() > 0.3


# ------------------------------------------------------------------------------------------------
# 6. textured OBJ and the RP exception lists
# ------------------------------------------------------------------------------------------------

TEX = np.array(
    [[(40 * r + 10, 40 * c + 20, 17 * (r * 4 + c)) for c in range(4)] for r in range(4)], np.uint8
)  # [4, 4, 3] RGB, all texels distinct
OBJ_V = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0.5, 0.8]], np.float64)
OBJ_UV = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.6, 0.4]])


def nearest_texel(uv) -> np.ndarray:
    """RGB of the nearest texel of TEX, OpenGL convention (v = 0 is the bottom row)."""
    out = []
    for u, v in np.asarray(uv, np.float64):
        col, row = min(int(math.floor(u * 4)), 3), min(int(math.floor(v * 4)), 3)
        out.append(TEX[3 - row, col])
    return np.array(out, np.uint8)


@pytest.fixture
def textured_obj(tmp_path):
    obj = tmp_path / "quad.obj"
    obj.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in OBJ_V)
        + "".join(f"vt {u} {v}\n" for u, v in OBJ_UV)
        + "f 1/1 2/2 3/3 4/4\n"  # quad
        + "f 2/2 5/5 3/3\n"  # triangle
    )
    tex = tmp_path / "tex.png"
    cv2.imwrite(str(tex), TEX[:, :, ::-1])
    return obj, tex


def test_sample_texture_nearest_and_in_range():
    uv = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.4], [0.999, 0.249]])
    np.testing.assert_array_equal(sample_texture(TEX, uv), nearest_texel(uv))
    assert (sample_texture(TEX, uv[:1]) == TEX[3, 0]).all()  # v = 0 is the bottom row
    assert (sample_texture(TEX, uv[1:2]) == TEX[0, 3]).all()  # u = v = 1 stays in the image
    # outside [0, 1] repeats
    np.testing.assert_array_equal(
        sample_texture(TEX, np.array([[1.25, -0.25]])), nearest_texel([[0.25, 0.75]])
    )


def test_textured_obj_colours_and_quad_split(textured_obj):
    obj, tex = textured_obj
    mesh = load_textured_obj(obj, tex, subdivide=False)
    np.testing.assert_array_equal(mesh.vertices, OBJ_V)
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [2, 3, 0], [1, 4, 2]])
    colors = np.asarray(mesh.visual.vertex_colors)
    assert colors.dtype == np.uint8 and colors.shape == (5, 4)
    np.testing.assert_array_equal(colors[:, :3], nearest_texel(OBJ_UV))
    assert (colors[:, 3] == 255).all()
    assert len({tuple(c) for c in colors[:, :3]}) == 5


def test_textured_obj_subdivision_averages_uvs(textured_obj):
    obj, tex = textured_obj
    mesh = load_textured_obj(obj, tex, subdivide=True)
    faces = np.array([[0, 1, 2], [2, 3, 0], [1, 4, 2]])
    edges = {tuple(sorted((f[i], f[(i + 1) % 3]))) for f in faces for i in range(3)}
    assert len(edges) == 7
    assert len(mesh.vertices) == 5 + len(edges) and len(mesh.faces) == 4 * len(faces)
    np.testing.assert_array_equal(mesh.vertices[:5], OBJ_V)
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
    np.testing.assert_array_equal(colors[:5], nearest_texel(OBJ_UV))
    for v, c in zip(mesh.vertices[5:], colors[5:], strict=True):
        matches = [e for e in edges if np.allclose((OBJ_V[e[0]] + OBJ_V[e[1]]) / 2, v)]
        assert len(matches) == 1, v
        a, b = matches[0]
        np.testing.assert_array_equal(c, nearest_texel([(OBJ_UV[a] + OBJ_UV[b]) / 2])[0])
    # the midpoints use other texels than their ends (so the averaging is really tested)
    assert len({tuple(c) for c in colors}) > 7


def test_rp_scan_uses_textured_loader_and_fallbacks(tmp_path, textured_obj):
    obj, tex = textured_obj
    name = "rp_test_posed_001"
    d = tmp_path / "obj" / "RP" / f"{name}_OBJ"
    (d / "tex").mkdir(parents=True)
    (d / f"{name}_200k.obj").write_bytes(obj.read_bytes())  # fallback mesh name
    (d / "tex" / f"{name}_dif.jpg").write_bytes(tex.read_bytes())  # fallback texture name
    assert list_items(tmp_path, "RP") == [name]
    assert scan_files(tmp_path, "RP", name) == (
        d / f"{name}_200k.obj",
        d / "tex" / f"{name}_dif.jpg",
    )
    (d / f"{name}_100k.obj").write_bytes(obj.read_bytes())
    (d / "tex" / f"{name}_dif_8k.jpg").write_bytes(tex.read_bytes())
    assert scan_files(tmp_path, "RP", name) == (
        d / f"{name}_100k.obj",
        d / "tex" / f"{name}_dif_8k.jpg",
    )
    scan = load_scan(tmp_path, "RP", name)
    ref = load_textured_obj(obj, tex)
    np.testing.assert_array_equal(scan.mesh.visual.vertex_colors, ref.visual.vertex_colors)
    np.testing.assert_allclose(scan.mesh.vertices, scan.transform.apply(ref.vertices), atol=1e-15)
    assert np.abs(scan.mesh.vertices).max() == pytest.approx(1 / 2.8)
    assert scan.facing == 0.0


def test_2k2k_obj_format(tmp_path, textured_obj):
    obj, tex = textured_obj
    d = tmp_path / "obj" / "2K2K" / "0001"
    d.mkdir(parents=True)
    (d / "0001.obj").write_bytes(obj.read_bytes())
    (d / "0001.png").write_bytes(tex.read_bytes())
    assert scan_files(tmp_path, "2K2K", "0001", "obj") == (d / "0001.obj", d / "0001.png")
    with pytest.raises(RenderInputError, match="0001.ply"):
        load_scan(tmp_path, "2K2K", "0001")  # the default format is the vertex-coloured PLY
    scan = load_scan(tmp_path, "2K2K", "0001", mesh_format="obj")
    ref = load_textured_obj(obj, tex)
    np.testing.assert_array_equal(scan.mesh.visual.vertex_colors, ref.visual.vertex_colors)
    transform, facing = scan_transform(tmp_path, "2K2K", "0001", "obj")
    assert facing == 0.0
    np.testing.assert_allclose(transform.apply(ref.vertices), scan.mesh.vertices, atol=1e-12)


def test_rp_exception_lists(tmp_path, textured_obj):
    assert len(RP_ROTATE_NEG90) == 21 and len(RP_SCALE_09) == 9
    assert "rp_wendy_posed_002" in RP_ROTATE_NEG90 and "rp_michael_posed_019" in RP_SCALE_09
    mesh = pair_mesh()
    plain = normalization(mesh, "rp_plain_posed_001", "RP")
    turned = normalization(mesh, "rp_wendy_posed_002", "RP")
    scaled = normalization(mesh, "rp_michael_posed_019", "RP")
    other_ds = normalization(mesh, "rp_wendy_posed_002", "THuman2")
    p = plain.apply(mesh.vertices)
    np.testing.assert_allclose(turned.apply(mesh.vertices), p @ rot_y(-90).T, atol=1e-12)
    np.testing.assert_allclose(scaled.apply(mesh.vertices), 0.9 * p, atol=1e-12)
    np.testing.assert_allclose(other_ds.apply(mesh.vertices), p, atol=1e-12)
    # -90 degrees about +Y takes +X to +Z
    np.testing.assert_allclose(turned.rotation @ [1, 0, 0], [0, 0, 1], atol=1e-12)
    # and through load_scan (same files under three names)
    obj, tex = textured_obj
    for name in ("rp_plain_posed_001", "rp_wendy_posed_002", "rp_michael_posed_019"):
        d = tmp_path / "obj" / "RP" / f"{name}_OBJ"
        (d / "tex").mkdir(parents=True)
        (d / f"{name}_100k.obj").write_bytes(obj.read_bytes())
        (d / "tex" / f"{name}_dif_8k.jpg").write_bytes(tex.read_bytes())
    v = {n: load_scan(tmp_path, "RP", n).mesh.vertices for n in list_items(tmp_path, "RP")}
    np.testing.assert_allclose(
        v["rp_wendy_posed_002"], v["rp_plain_posed_001"] @ rot_y(-90).T, atol=1e-12
    )
    np.testing.assert_allclose(v["rp_michael_posed_019"], 0.9 * v["rp_plain_posed_001"], atol=1e-12)


# ------------------------------------------------------------------------------------------------
# 7. layout and list files
# ------------------------------------------------------------------------------------------------


def test_view_names():
    assert DEFAULT_YAWS == (-30, -20, -10, 0, 10, 20, 30)
    assert [view_name("RP", y) for y in DEFAULT_YAWS] == [
        "RP_0_y_-30_x",
        "RP_0_y_-20_x",
        "RP_0_y_-10_x",
        "RP_0_y_0_x",
        "RP_0_y_10_x",
        "RP_0_y_20_x",
        "RP_0_y_30_x",
    ]
    assert view_name("THuman2", 10) == "THuman2_0_y_10_x"
    assert view_name("2K2K", -20) == "2K2K_0_y_-20_x"


def test_view_files_and_list_line(tmp_path):
    f = view_files(tmp_path, "RP", "rp_a_posed_001", -30)
    v = "RP_0_y_-30_x"
    assert f.shaded == tmp_path / f"PERS/COLOR/SHADED/{v}/rp_a_posed_001_front.png"
    assert f.noshading_front == tmp_path / f"PERS/COLOR/NOSHADING/{v}/rp_a_posed_001_front.png"
    assert f.noshading_back == tmp_path / f"PERS/COLOR/NOSHADING/{v}/rp_a_posed_001_back.png"
    assert f.depth_front == tmp_path / f"PERS/DEPTH/{v}/rp_a_posed_001_front.png"
    assert f.depth_back == tmp_path / f"PERS/DEPTH/{v}/rp_a_posed_001_back.png"
    assert f.keypoint == tmp_path / f"PERS/keypoint/{v}/rp_a_posed_001_front.npy"
    assert f.keypoint_sample == tmp_path / f"PERS/keypoint_sample/{v}/rp_a_posed_001.png"
    o = view_files(tmp_path, "RP", "rp_a_posed_001", -30, "ORTH")
    assert o.depth_back == tmp_path / f"ORTH/DEPTH/{v}/rp_a_posed_001_back.png"
    assert o.shaded == tmp_path / f"ORTH/COLOR/SHADED/{v}/rp_a_posed_001_front.png"
    with pytest.raises(ValueError):
        view_files(tmp_path, "RP", "x", 0, "FISHEYE")
    assert list_line("RP", "rp_a_posed_001", -30) == (
        f"/PERS/COLOR/SHADED/{v}/rp_a_posed_001_front.png "
        f"/PERS/COLOR/NOSHADING/{v}/rp_a_posed_001_front.png "
        f"/PERS/DEPTH/{v}/rp_a_posed_001_front.png"
    )
    assert list_path(tmp_path, "THuman2") == tmp_path / "list" / "THuman2_all.txt"


def test_write_list_only_complete_items(tmp_path):
    for item in ("a", "b", "c"):
        (tmp_path / "obj" / "ANNY" / item).mkdir(parents=True)
    for item in ("a", "b"):
        for yaw in DEFAULT_YAWS:
            for p in view_files(tmp_path, "ANNY", item, yaw).image_files:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"x")
    view_files(tmp_path, "ANNY", "b", 20).depth_back.unlink()  # b incomplete, c absent
    path = write_list(tmp_path, "ANNY", DEFAULT_YAWS)
    assert path == tmp_path / "list" / "ANNY_all.txt"
    lines = path.read_text().splitlines()
    assert lines == [list_line("ANNY", "a", y) for y in DEFAULT_YAWS]
    assert len(lines) == 7
    assert lines[0] == (
        "/PERS/COLOR/SHADED/ANNY_0_y_-30_x/a_front.png "
        "/PERS/COLOR/NOSHADING/ANNY_0_y_-30_x/a_front.png "
        "/PERS/DEPTH/ANNY_0_y_-30_x/a_front.png"
    )
    for line in lines:
        parts = line.split(" ")
        assert len(parts) == 3
        assert all(p.startswith("/") and Path(str(tmp_path) + p).is_file() for p in parts)
    # once b is complete it is listed too, in sorted order
    view_files(tmp_path, "ANNY", "b", 20).depth_back.write_bytes(b"x")
    lines = write_list(tmp_path, "ANNY", DEFAULT_YAWS).read_text().splitlines()
    assert lines == [list_line("ANNY", i, y) for i in ("a", "b") for y in DEFAULT_YAWS]


def test_ortho_option_mirrors_the_layout(tmp_path):
    write_ply_item(tmp_path, "ANNY", "box", box((0.5, 0.8, 0.3), (1.0, 2.0, 3.0), COLORS["box"]))
    res = 64
    assert render_all(tmp_path, "ANNY", res=res, yaws=(0,), ortho=True).rendered == ["box"]
    pers = view_files(tmp_path, "ANNY", "box", 0)
    orth = view_files(tmp_path, "ANNY", "box", 0, "ORTH")
    for p, o in zip(pers.image_files, orth.image_files, strict=True):
        assert p.is_file() and o.is_file()
        assert o.relative_to(tmp_path / "ORTH") == p.relative_to(tmp_path / "PERS")
    # the orthographic depth is the distance from the plane z = 1: the front face, 1 - z_max
    hx, hy, hz = 0.25 / 1.12, 0.4 / 1.12, 0.15 / 1.12
    xy = ortho_ray_origins(res)
    inside = (np.abs(xy[..., 0]) < hx - 1e-4) & (np.abs(xy[..., 1]) < hy - 1e-4)
    outside = (np.abs(xy[..., 0]) > hx + 1e-4) | (np.abs(xy[..., 1]) > hy + 1e-4)
    front = png_to_range(read(orth.depth_front))
    back = png_to_range(read(orth.depth_back))
    assert inside.sum() > 500
    assert (front[outside] == 0).all() and (front[inside] > 0).all()
    for value, true in ((front[inside], 1 - hz), (back[inside], 1 + hz)):
        assert (value <= true + FLOAT_TOL).all() and (value > true - PNG_STEP - FLOAT_TOL).all()
    # ORTH differs from PERS, which is a perspective view
    assert not np.array_equal(read(pers.depth_front), read(orth.depth_front))
    assert read(orth.shaded)[front == 0].max() == 0
    # the list is built from the PERS views
    assert write_list(tmp_path, "ANNY", (0,)).read_text().splitlines() == [
        list_line("ANNY", "box", 0)
    ]


# ------------------------------------------------------------------------------------------------
# 8. resume and sharding
# ------------------------------------------------------------------------------------------------


def file_state(root: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_resume_rerenders_only_the_missing_view(tmp_path):
    write_ply_item(tmp_path, "ANNY", "pair", pair_mesh())
    options = RenderOptions(res=64, yaws=(0, 10))
    renderer = ScanRenderer(tmp_path, "ANNY", options)
    try:
        assert renderer.missing_views("pair") == [("PERS", 0), ("PERS", 10)]
        assert renderer.render_item("pair") is True
        assert renderer.missing_views("pair") == []
        assert renderer.render_item("pair") is False
    finally:
        renderer.close()
    pers = tmp_path / "PERS"
    before = file_state(pers)
    assert len(before) == 10
    target = view_files(tmp_path, "ANNY", "pair", 10).shaded
    original = target.read_bytes()
    target.unlink()
    time.sleep(0.05)
    renderer = ScanRenderer(tmp_path, "ANNY", options)  # a new process-like renderer
    try:
        assert renderer.missing_views("pair") == [("PERS", 10)]
        report = render_dataset(renderer, ["pair"], progress=False)
    finally:
        renderer.close()
    assert report.rendered == ["pair"] and not report.failed
    after = file_state(pers)
    assert set(after) == set(before)
    changed = {p for p in after if after[p] != before[p]}
    view10 = set(view_files(tmp_path, "ANNY", "pair", 10).image_files)
    assert target in changed
    # only the missing view's files may be touched, never another view's
    assert not changed - view10, sorted(str(p) for p in changed)
    assert target.read_bytes() == original, "per-view seeded lights: byte-identical re-render"
    assert not list(tmp_path.rglob("*.tmp"))
    # a complete item is reported as complete
    renderer = ScanRenderer(tmp_path, "ANNY", options)
    try:
        report = render_dataset(renderer, ["pair"], progress=False)
    finally:
        renderer.close()
    assert report.complete == ["pair"] and report.rendered == []
    assert file_state(pers) == after


def test_shard_is_a_partition():
    items = [f"item{i:02d}" for i in range(11)]
    for n in (1, 2, 3, 4, 11, 13):
        parts = [shard(items, n, k) for k in range(n)]
        flat = [it for part in parts for it in part]
        assert sorted(flat) == items and len(flat) == len(set(flat))
        for part in parts:
            assert part == [it for it in items if it in part]  # order kept
    assert shard(items, 3, 1) == ["item01", "item04", "item07", "item10"]
    for n, k in ((0, 0), (3, 3), (3, -1)):
        with pytest.raises(ValueError):
            shard(items, n, k)


# ------------------------------------------------------------------------------------------------
# 9. bad input
# ------------------------------------------------------------------------------------------------

EMPTY_PLY = """ply
format ascii 1.0
element vertex 3
property float x
property float y
property float z
property uchar red
property uchar green
property uchar blue
element face 0
property list uchar int vertex_indices
end_header
0 0 0 255 0 0
1 0 0 255 0 0
0 1 0 255 0 0
"""


def output_items(root: Path) -> set[str]:
    """Item names of every file under PERS/ (``<item>_front.png`` / ``<item>_back.png``)."""
    return {p.name.rsplit("_", 1)[0] for p in (root / "PERS").rglob("*") if p.is_file()}


def test_bad_items_are_reported_and_skipped(tmp_path):
    rng = np.random.default_rng(1)
    obj = tmp_path / "obj"
    # ANNY: one good item, a missing mesh, an empty mesh, random bytes, a truncated binary PLY
    write_ply_item(tmp_path, "ANNY", "good", pair_mesh())
    (obj / "ANNY" / "nomesh").mkdir(parents=True)
    (obj / "ANNY" / "empty").mkdir()
    (obj / "ANNY" / "empty" / "empty.ply").write_text(EMPTY_PLY)
    (obj / "ANNY" / "corrupt").mkdir()
    (obj / "ANNY" / "corrupt" / "corrupt.ply").write_bytes(
        rng.integers(0, 256, 4000, np.uint8).tobytes()
    )
    good_bytes = (obj / "ANNY" / "good" / "good.ply").read_bytes()
    (obj / "ANNY" / "truncated").mkdir()
    (obj / "ANNY" / "truncated" / "truncated.ply").write_bytes(good_bytes[: len(good_bytes) // 2])
    # RP: good, missing texture
    write_rp_item(tmp_path, "rp_good_posed_001", pair_mesh(), flat_texture()[:, :, ::-1])
    write_rp_item(tmp_path, "rp_notex_posed_002", pair_mesh(), None)
    # THuman2: good, missing texture, missing SMPL-X parameters
    write_thuman2_item(tmp_path, "0001", pair_mesh(), orient=(0, 0.3, 0))
    write_thuman2_item(tmp_path, "0002", pair_mesh(), orient=(0, 0.3, 0), texture=False)
    write_thuman2_item(tmp_path, "0003", pair_mesh(), orient=None)

    expected_bad = {
        "ANNY": {
            "nomesh": obj / "ANNY/nomesh/nomesh.ply",
            "empty": obj / "ANNY/empty/empty.ply",
            "corrupt": obj / "ANNY/corrupt/corrupt.ply",
            "truncated": obj / "ANNY/truncated/truncated.ply",
        },
        "RP": {
            "rp_notex_posed_002": obj
            / "RP/rp_notex_posed_002_OBJ/tex/rp_notex_posed_002_dif_8k.jpg"
        },
        "THuman2": {
            "0002": obj / "THuman2/data/0002/material0.jpeg",
            "0003": obj / "THuman2/smplx/0003/smplx_param.pkl",
        },
    }
    good = {"ANNY": "good", "RP": "rp_good_posed_001", "THuman2": "0001"}
    for ds, bad in expected_bad.items():
        report = render_all(tmp_path, ds, res=64, yaws=(0,))
        assert report.rendered == [good[ds]], (ds, report.failed)
        assert set(report.failed) == set(bad), (ds, report.failed)
        for item, path in bad.items():
            assert str(path) in report.failed[item], (item, report.failed[item])
        assert all(p.is_file() for p in view_files(tmp_path, ds, good[ds], 0).image_files)
    assert output_items(tmp_path) == set(good.values())
    assert not list(tmp_path.rglob("*.tmp"))
    # the list holds the good items only
    lines = write_list(tmp_path, "ANNY", (0,)).read_text().splitlines()
    assert lines == [list_line("ANNY", "good", 0)]


@pytest.mark.parametrize(
    "text",
    [
        "v 0 0 0\nv 1 0 0\nv 0 oops 0\nvt 0 0\nf 1/1 2/1 3/1\n",  # not a number
        "v 0 0 0\nv 1 0 0\nv 0 1\nvt 0 0\nf 1/1 2/1 3/1\n",  # a vertex with 2 coordinates
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/x 3/1\n",  # bad texture index
        "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1\nf 1/1 2/1\n",  # 2-corner face
    ],
    ids=["nan-token", "short-vertex", "bad-index", "two-corner-face"],
)
def test_corrupt_obj_is_reported(tmp_path, text):
    """A malformed OBJ is a bad item like a corrupt PLY: reported naming the file, batch goes on."""
    write_rp_item(tmp_path, "rp_good_posed_001", pair_mesh(), flat_texture())
    d = write_rp_item(tmp_path, "rp_bad_posed_002", pair_mesh(), flat_texture())
    mesh_path = d / "rp_bad_posed_002_100k.obj"
    mesh_path.write_text(text)
    report = render_all(tmp_path, "RP", res=64, yaws=(0,))
    assert report.rendered == ["rp_good_posed_001"]
    assert list(report.failed) == ["rp_bad_posed_002"]
    assert str(mesh_path) in report.failed["rp_bad_posed_002"]
    assert output_items(tmp_path) == {"rp_good_posed_001"}


def test_unencodable_scan_is_reported_not_fatal(tmp_path):
    """A cube fills the normalisation box; turned by 30 degrees its corners leave the depth PNG
    range (d < 0.534 or d > 1.466). Its depth cannot be stored faithfully, so the scan is a bad
    item: one line naming it and the view, nothing written for it (not even its encodable yaw-0
    view: every view is checked before any is rendered), and the batch goes on."""
    write_ply_item(tmp_path, "ANNY", "a_cube", box((1.0, 1.0, 1.0), (0, 0, 0), (100, 100, 100)))
    write_ply_item(tmp_path, "ANNY", "b_pair", pair_mesh())
    report = render_all(tmp_path, "ANNY", res=64, yaws=(0, 30))
    assert report.rendered == ["b_pair"]
    assert list(report.failed) == ["a_cube"]
    assert report.failed["a_cube"].startswith("a_cube: PERS yaw 30 spans ranges")
    assert output_items(tmp_path) == {"b_pair"}
    assert all(
        p.is_file() for y in (0, 30) for p in view_files(tmp_path, "ANNY", "b_pair", y).image_files
    )


def test_unknown_dataset_name(tmp_path):
    for call in (
        lambda: list_items(tmp_path, "FOO"),
        lambda: load_scan(tmp_path, "FOO", "x"),
        lambda: scan_files(tmp_path, "FOO", "x"),
    ):
        with pytest.raises(RenderInputError) as info:
            call()
        for name in DATASETS:
            assert name in str(info.value)
        assert "FOO" in str(info.value)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(RenderInputError, match="dataset folder not found"):
        list_items(tmp_path, "ANNY")


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYOPENGL_PLATFORM="osmesa")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """``python <script> ...`` from the repository root (the script's folder leads sys.path)."""
    env = dict(os.environ, PYOPENGL_PLATFORM="osmesa")
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_render_cli_exit_status_and_list(tmp_path):
    write_ply_item(tmp_path, "ANNY", "a_good", pair_mesh())
    bad = tmp_path / "obj" / "ANNY" / "b_bad"
    bad.mkdir(parents=True)
    (bad / "b_bad.ply").write_bytes(b"not a ply at all")
    args = ("--data_path", str(tmp_path), "--data_name", "ANNY", "--res", "64", "--yaws", "0")
    proc = run_cli("render.render", *args)
    assert proc.returncode == 1, proc.stderr
    assert f"FAILED {bad / 'b_bad.ply'}: cannot read the mesh" in proc.stderr
    listing = tmp_path / "list" / "ANNY_all.txt"
    assert listing.read_text().splitlines() == [list_line("ANNY", "a_good", 0)]
    assert output_items(tmp_path) == {"a_good"}
    (bad / "b_bad.ply").unlink()
    bad.rmdir()
    proc = run_cli("render.render", *args)
    assert proc.returncode == 0, proc.stderr
    assert listing.read_text().splitlines() == [list_line("ANNY", "a_good", 0)]


# ------------------------------------------------------------------------------------------------
# 10. keypoints from 3D joints
# ------------------------------------------------------------------------------------------------

KP_YAWS = (-30, 0, 30)
KP_RES = 128
SELECTED = list(range(23)) + [96, 100, 104, 108, 117, 121, 125, 129]
CUBE_CENTERS = np.array([[0.25, 0.0, 0.25], [-0.25, 0.1, -0.1]])
CUBE_SIDE = 0.12
INVISIBLE = {3, 16, 19, 18, 20, 21, 22, 100}  # COCO-WholeBody rows marked invisible


@pytest.fixture(scope="module")
def kp_ds(tmp_path_factory):
    """Two separated cubes, 3D joints inside them (raw units), rendered at yaws -30/0/30 and the
    keypoint CLI run on it."""
    root = tmp_path_factory.mktemp("kp")
    mesh = colored(concat(*(box((CUBE_SIDE,) * 3, c) for c in CUBE_CENTERS)), (150, 150, 150))
    write_ply_item(root, "ANNY", "cubes", mesh)
    write_ply_item(root, "ANNY", "nojoints", pair_mesh())
    rng = np.random.default_rng(3)
    joints = CUBE_CENTERS[np.arange(133) % 2] + rng.uniform(-0.25, 0.25, (133, 3)) * CUBE_SIDE
    joints[15] = CUBE_CENTERS[0] + [0.01, -0.02, 0.0]  # left ankle (its heel will copy it)
    joints[17] = CUBE_CENTERS[1] + [0.0, 0.02, 0.01]  # left big toe (its small toe will copy it)
    visible = np.ones(133)
    visible[list(INVISIBLE)] = 0
    (root / "Joint3D" / "ANNY").mkdir(parents=True)
    (root / "Joint3D" / "ANNY" / "cubes.json").write_text(
        json.dumps({"joint3d": joints.tolist(), "visible": visible.tolist()})
    )
    renderer = ScanRenderer(root, "ANNY", RenderOptions(res=KP_RES, yaws=KP_YAWS))
    try:
        assert renderer.render_item("cubes")
    finally:
        renderer.close()
    proc = run_cli(
        "render.render_keypoint",
        *("--data_path", str(root), "--data_name", "ANNY", "--res", str(KP_RES)),
        *("--yaws", *map(str, KP_YAWS), "--items", "cubes"),
    )
    return SimpleNamespace(root=root, joints=joints, visible=visible, proc=proc)


@pytest.mark.parametrize("script", ["render/render.py", "render/render_keypoint.py"])
def test_scripts_run_as_files(script):
    """The authors' ``python render/render.py ...``: run as a file, not as a module."""
    proc = run_script(script, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--data_path" in proc.stdout and "--yaws" in proc.stdout


def test_scripts_as_files_match_the_modules(kp_ds, tmp_path):
    """``python render/render.py`` then ``python render/render_keypoint.py`` on a copy of the
    keypoint data set write what the module runs wrote (the fixture: the pipeline, then ``-m``)."""
    for folder in ("obj", "Joint3D"):
        shutil.copytree(kp_ds.root / folder, tmp_path / folder)
    args = ("--data_path", str(tmp_path), "--data_name", "ANNY", "--res", str(KP_RES))
    args += ("--yaws", *map(str, KP_YAWS), "--items", "cubes")
    for script in ("render/render.py", "render/render_keypoint.py"):
        proc = run_script(script, *args)
        assert proc.returncode == 0, proc.stderr
    for yaw in KP_YAWS:
        ours, theirs = (
            view_files(tmp_path, "ANNY", "cubes", yaw),
            view_files(kp_ds.root, "ANNY", "cubes", yaw),
        )
        np.testing.assert_array_equal(read(ours.depth_front), read(theirs.depth_front))
        np.testing.assert_array_equal(np.load(ours.keypoint), np.load(theirs.keypoint))


def test_keypoint_cli_writes_files(kp_ds):
    assert kp_ds.proc.returncode == 0, kp_ds.proc.stderr
    for yaw in KP_YAWS:
        files = view_files(kp_ds.root, "ANNY", "cubes", yaw)
        assert files.keypoint == kp_ds.root / f"PERS/keypoint/ANNY_0_y_{yaw}_x/cubes_front.npy"
        assert (
            files.keypoint_sample == kp_ds.root / f"PERS/keypoint_sample/ANNY_0_y_{yaw}_x/cubes.png"
        )
        kp = np.load(files.keypoint)
        assert kp.shape == (31, 3)
        sample = read(files.keypoint_sample)
        assert sample.shape == (KP_RES, KP_RES, 3)
        # the overlay is drawn over the NOSHADING front image
        assert not np.array_equal(sample, read(files.noshading_front))


def test_keypoints_fall_inside_the_silhouette(kp_ds):
    assert kp_ds.proc.returncode == 0, kp_ds.proc.stderr
    scan = load_scan(kp_ds.root, "ANNY", "cubes")
    for yaw in KP_YAWS:
        files = view_files(kp_ds.root, "ANNY", "cubes", yaw)
        kp = np.load(files.keypoint)
        depth = read(files.depth_front)
        vis = kp[:, 2] > 0
        assert vis.sum() == 31 - 6  # rows 3, 16 (ankle), 20, 21, 22 (right foot), 24 (finger)
        col, row = np.floor(kp[vis, 0]).astype(int), np.floor(kp[vis, 1]).astype(int)
        assert ((col >= 0) & (col < KP_RES) & (row >= 0) & (row < KP_RES)).all()
        assert (depth[row, col] > 0).all(), f"yaw {yaw}: keypoint outside the silhouette"
        # the silhouette test can tell the yaw sign: the opposite yaw misses
        points, visible = load_joints(kp_ds.root, "ANNY", "cubes")
        wrong = project_keypoints(points, visible, scan.transform, rot_y(-yaw), KP_RES)
        if yaw != 0:
            wc, wr = np.floor(wrong[vis, 0]).astype(int), np.floor(wrong[vis, 1]).astype(int)
            ok = (wc >= 0) & (wc < KP_RES) & (wr >= 0) & (wr < KP_RES)
            assert not (depth[wr[ok], wc[ok]] > 0).all()
        # the stored points are the pinhole projection of the normalised, rotated joints
        p = scan.transform.apply(points) @ rot_y(yaw).T
        np.testing.assert_allclose(kp[vis, :2], project(p, KP_RES)[vis], atol=1e-3)


def test_keypoint_visibility_and_feet_cleanup(kp_ds):
    assert kp_ds.proc.returncode == 0, kp_ds.proc.stderr
    kp = np.load(view_files(kp_ds.root, "ANNY", "cubes", 0).keypoint)
    # invisible rows (and feet whose clean-up has no source) are (0, 0, 0)
    for row in (3, 16, 20, 21, 22, 24):
        np.testing.assert_array_equal(kp[row], 0.0, err_msg=f"row {row}")
    assert (kp[np.setdiff1d(np.arange(31), [3, 16, 20, 21, 22, 24]), 2] == 1).all()
    # left heel (19) invisible, left ankle (15) visible -> heel = ankle
    np.testing.assert_array_equal(kp[19], kp[15])
    # left small toe (18) invisible, big toe (17) visible -> small toe = big toe
    np.testing.assert_array_equal(kp[18], kp[17])
    assert not np.array_equal(kp[15], kp[17])
    # row selection: 31-row index 23 is COCO-WholeBody row 96, index 30 is row 129
    points, visible = load_joints(kp_ds.root, "ANNY", "cubes")
    np.testing.assert_array_equal(points[23], kp_ds.joints[96])
    np.testing.assert_array_equal(points[30], kp_ds.joints[129])
    np.testing.assert_array_equal(points[:15], kp_ds.joints[:15])
    assert not visible[24] and visible[23]


def test_keypoint_scale_moves_points_outwards(kp_ds):
    points, visible = load_joints(kp_ds.root, "ANNY", "cubes")
    transform, facing = scan_transform(kp_ds.root, "ANNY", "cubes")
    assert facing == 0.0
    c = KP_RES / 2
    for yaw in KP_YAWS:
        r = rot_y(yaw)
        kp1 = project_keypoints(points, visible, transform, r, KP_RES)
        kp2 = project_keypoints(points, visible, transform, r, KP_RES, AUTHORS_KEYPOINT_SCALE)
        d1 = np.linalg.norm(kp1[visible, :2] - c, axis=1)
        d2 = np.linalg.norm(kp2[visible, :2] - c, axis=1)
        assert (d2 > d1).all()
        # (u - c) scales by s (1 - z) / (1 - s z) for the normalised, rotated z
        z = (transform.apply(points) @ r.T)[visible, 2]
        s = AUTHORS_KEYPOINT_SCALE
        np.testing.assert_allclose(d2 / d1, s * (1 - z) / (1 - s * z), rtol=1e-5)


def test_missing_joint_file_names_it(kp_ds):
    with pytest.raises(RenderInputError) as info:
        write_item_keypoints(kp_ds.root, "ANNY", "nojoints", (0,), KP_RES)
    assert str(kp_ds.root / "Joint3D" / "ANNY" / "nojoints.json") in str(info.value)
    assert not view_files(kp_ds.root, "ANNY", "nojoints", 0).keypoint.exists()


def test_light_count_is_pyrenders_spot_light_cap():
    """The authors add 360 spot-light poses, pyrender lights with at most MAX_N_LIGHTS of them
    (no shadows); we add exactly that many. Fails if a pyrender release changes the cap."""
    import pyrender.constants

    from render.shading import NUM_LIGHTS

    assert pyrender.constants.MAX_N_LIGHTS == NUM_LIGHTS


def test_shader_programs_do_not_pile_up(tmp_path):
    """Regression: under OSMesa pyrender compiled and kept a new shader program per render
    (about 3 MB each); the renderer now keeps their number bounded."""
    from render.shading import MAX_CACHED_PROGRAMS, ShadedRenderer

    mesh = pair_mesh()
    mesh.vertices -= mesh.centroid
    renderer = ShadedRenderer(32, supersample=1)
    try:
        rng = np.random.default_rng(0)
        for _ in range(3 * MAX_CACHED_PROGRAMS):
            renderer.render(mesh, np.eye(3), rng)
            assert len(renderer.renderer._renderer._program_cache._program_cache) <= (
                MAX_CACHED_PROGRAMS
            )
    finally:
        renderer.close()


def test_resume_with_other_settings_is_refused(tmp_path):
    write_ply_item(tmp_path, "ANNY", "a", pair_mesh())
    assert render_all(tmp_path, "ANNY", res=48, yaws=(0,)).rendered == ["a"]
    settings = json.loads((tmp_path / "list" / "ANNY_render.json").read_text())
    assert settings["res"] == 48
    with pytest.raises(RenderInputError, match="rendered with"):
        render_all(tmp_path, "ANNY", res=32, yaws=(0,))
    # more yaws with the same settings is a resume, not a conflict
    assert render_all(tmp_path, "ANNY", res=48, yaws=(0, 10)).rendered == ["a"]
    assert render_all(tmp_path, "ANNY", res=32, yaws=(0,), overwrite=True).rendered == ["a"]
    assert read(view_files(tmp_path, "ANNY", "a", 0).depth_front).shape == (32, 32)


def test_more_bad_meshes_are_reported(tmp_path):
    """An OBJ without texture coordinates, an OBJ with index 0, a zero-area PLY, a PLY with a face
    index out of range: each is reported by file, nothing is written, the good item renders."""
    mesh = pair_mesh()
    write_rp_item(tmp_path, "rp_good_posed_001", mesh, flat_texture())
    d = tmp_path / "obj" / "RP" / "rp_novt_posed_001_OBJ"
    write_obj(d / "rp_novt_posed_001_100k.obj", mesh.vertices, mesh.faces)
    write_png_bytes(d / "tex" / "rp_novt_posed_001_dif_8k.jpg", flat_texture())
    d = tmp_path / "obj" / "RP" / "rp_zero_posed_001_OBJ"
    write_obj(d / "rp_zero_posed_001_100k.obj", mesh.vertices, mesh.faces)
    text = (d / "rp_zero_posed_001_100k.obj").read_text().replace("\nf 1 ", "\nf 0 ", 1)
    (d / "rp_zero_posed_001_100k.obj").write_text(text)
    write_png_bytes(d / "tex" / "rp_zero_posed_001_dif_8k.jpg", flat_texture())
    report = render_all(tmp_path, "RP", res=32, yaws=(0,))
    assert report.rendered == ["rp_good_posed_001"]
    assert "no face has texture coordinates" in report.failed["rp_novt_posed_001"]
    assert "malformed OBJ line" in report.failed["rp_zero_posed_001"]

    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [2, 0, 0]], [[0, 1, 2]], process=False)
    flat.visual.vertex_colors = np.full((3, 4), 200, np.uint8)
    write_ply_item(tmp_path, "ANNY", "flat", flat)
    report = render_all(tmp_path, "ANNY", res=32, yaws=(0,))
    assert "zero surface area" in report.failed["flat"]
    assert output_items(tmp_path) == {"rp_good_posed_001"}


def test_joints_in_the_wrong_units_are_refused(tmp_path):
    """Joints 100x too large (e.g. centimetres against a metre mesh) name the joint file."""
    write_ply_item(tmp_path, "ANNY", "a", pair_mesh())
    assert render_all(tmp_path, "ANNY", res=32, yaws=(0,)).rendered == ["a"]
    joints = np.zeros((133, 3))
    joints[:, 1] = np.linspace(-30, 30, 133)
    path = tmp_path / "Joint3D" / "ANNY" / "a.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"joint3d": joints.tolist(), "visible": [1] * 133}))
    with pytest.raises(RenderInputError, match="not in the mesh's coordinates") as info:
        write_item_keypoints(tmp_path, "ANNY", "a", (0,), 32)
    assert str(path) in str(info.value)
    assert not view_files(tmp_path, "ANNY", "a", 0).keypoint.exists()


def test_sharded_cli_leaves_the_list_to_list_only(tmp_path):
    for name in ("a", "b"):
        write_ply_item(tmp_path, "ANNY", name, pair_mesh())
    common = ("--data_path", str(tmp_path), "--data_name", "ANNY", "--res", "32", "--yaws", "0")
    for shard_id in ("0", "1"):
        proc = run_cli("render.render", *common, "--num_shards", "2", "--shard_id", shard_id)
        assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "list" / "ANNY_all.txt").exists()
    assert run_cli("render.render", *common, "--list_only").returncode == 0
    assert (tmp_path / "list" / "ANNY_all.txt").read_text().splitlines() == [
        list_line("ANNY", "a", 0),
        list_line("ANNY", "b", 0),
    ]
