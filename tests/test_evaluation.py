"""Tests of the reconstruction metrics (evaluation/) and evaluate.py against analytic geometry:
identical meshes, concentric spheres, a hemisphere against its sphere, inside-out surfaces, ICP
recovery of known similarities, normal images of a sphere, the render-frame inversion checked with
the real renderer, bad inputs, and the CLI's batch behaviour.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
import trimesh.remesh

import evaluate
from evaluation.geometry import (
    MeshInputError,
    SurfaceQuery,
    align_icp,
    check_mesh,
    load_mesh,
    mesh_metrics,
    render_frame_to_scan,
    sample_surface,
)
from evaluation.normal_images import (
    OrthoViews,
    compare_normal_images,
    normal_image_errors,
    render_normals,
)
from render.mesh import load_scan
from render.raycast import RayCaster
from utils.camera import backproject, rotation_y

ROOT = Path(__file__).resolve().parents[1]


def sphere(radius: float = 1.0, level: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=level, radius=radius)


def toy_body() -> trimesh.Trimesh:
    """A capsule 'torso' with a head, one arm out to the side and a leg forward: no symmetry."""
    parts = [
        trimesh.creation.capsule(height=0.8, radius=0.15, count=[24, 24]),
        trimesh.creation.icosphere(3, radius=0.12).apply_translation([0.0, 0.0, 0.7]),
        trimesh.creation.box((0.5, 0.08, 0.08)).apply_translation([0.3, 0.0, 0.3]),
        trimesh.creation.box((0.08, 0.4, 0.08)).apply_translation([-0.1, 0.25, -0.2]),
    ]
    mesh = trimesh.util.concatenate(parts)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    return mesh  # +Y up after the rotation (the capsule's axis was +Z)


# ------------------------------------------------------------------ surface metrics


def test_identical_meshes_score_perfectly() -> None:
    s = sphere()
    m = mesh_metrics(s.vertices, s.faces, s.vertices, s.faces, num_samples=20_000)
    assert m["chamfer"] < 1e-6 and m["p2s"] < 1e-6 and m["s2p"] < 1e-6
    assert m["normal_consistency"] == pytest.approx(1.0, abs=1e-9)
    assert m["normal_consistency_signed"] == pytest.approx(1.0, abs=1e-9)
    assert m["fscore"] == m["precision"] == m["recall"] == 1.0


@pytest.mark.parametrize("delta", [0.02, 0.1])
def test_concentric_spheres_chamfer_is_the_gap(delta: float) -> None:
    """Sphere r = 1 vs r = 1 + delta: every point is delta from the other surface. The
    icospheres (level 5) deviate from the true spheres by < 2e-4 r, hence rtol 1e-3 (+ 3e-4 abs)."""
    a, b = sphere(1.0), sphere(1.0 + delta)
    m = mesh_metrics(a.vertices, a.faces, b.vertices, b.faces, num_samples=20_000)
    for key in ("chamfer", "p2s", "s2p"):
        assert m[key] == pytest.approx(delta, rel=1e-3, abs=3e-4), key
    assert m["normal_consistency"] > 0.9999
    below = mesh_metrics(a.vertices, a.faces, b.vertices, b.faces, 5_000, delta * 0.9)
    above = mesh_metrics(a.vertices, a.faces, b.vertices, b.faces, 5_000, delta * 1.1)
    assert below["fscore"] == 0.0 and above["fscore"] == 1.0


def test_hemisphere_against_sphere_is_analytic() -> None:
    """Prediction = the upper half of the GT unit sphere (open). Its samples lie on the GT
    (P2S 0, precision 1). A GT point at angle phi below the equator is 2 sin(phi / 2) from the
    rim, so S2P = int_0^{pi/2} sin(phi / 2) cos(phi) dphi = (1 + sqrt2/2) / 3 - (1 - sqrt2/2)
    = 0.27614, the recall at tau is 1/2 + sin(2 asin(tau / 2)) / 2, and the closest triangle has
    the rim's normal, so NC = (1 + 1/2 + 1/2 int_0^{pi/2} cos^2) / 2 = 3/4 + pi/16."""
    theta = np.linspace(0, math.pi, 129)  # a ring of vertices on the equator
    gt = trimesh.creation.revolve(np.stack((np.sin(theta), np.cos(theta)), axis=1), sections=128)
    upper = gt.faces[gt.vertices[gt.faces].mean(axis=1)[:, 2] > 0]
    tau = 0.1
    m = mesh_metrics(gt.vertices, upper, gt.vertices, gt.faces, 200_000, tau)
    s2p = (1 + math.sqrt(2) / 2) / 3 - (1 - math.sqrt(2) / 2)
    recall = 0.5 + math.sin(2 * math.asin(tau / 2)) / 2
    assert m["p2s"] < 1e-6 and m["precision"] == 1.0
    assert m["s2p"] == pytest.approx(s2p, rel=2e-3)
    assert m["recall"] == pytest.approx(recall, abs=3e-3)
    assert m["fscore"] == pytest.approx(2 * recall / (1 + recall), abs=3e-3)
    assert m["chamfer"] == pytest.approx(s2p / 2, rel=2e-3)
    assert m["normal_consistency"] == pytest.approx(0.75 + math.pi / 16, abs=3e-3)


def test_swapping_the_meshes_swaps_the_directions_exactly() -> None:
    a, b = sphere(1.0, 4), toy_body()
    ab = mesh_metrics(a.vertices, a.faces, b.vertices, b.faces, 10_000, 0.05)
    ba = mesh_metrics(b.vertices, b.faces, a.vertices, a.faces, 10_000, 0.05)
    # Same samples both ways; only the float32 scene origin (the GT's box centre) changes.
    assert ab["p2s"] == pytest.approx(ba["s2p"], rel=1e-6)
    assert ab["s2p"] == pytest.approx(ba["p2s"], rel=1e-6)
    assert ab["precision"] == pytest.approx(ba["recall"], abs=1e-3)
    assert ab["recall"] == pytest.approx(ba["precision"], abs=1e-3)
    for key in ("chamfer", "normal_consistency", "normal_consistency_signed", "fscore"):
        assert ab[key] == pytest.approx(ba[key], rel=1e-5), key
    assert ab == mesh_metrics(a.vertices, a.faces, b.vertices, b.faces, 10_000, 0.05)  # seeded


def test_inside_out_prediction_is_caught_by_the_signed_consistency() -> None:
    s = sphere(1.0, 4)
    m = mesh_metrics(s.vertices, s.faces[:, ::-1], s.vertices, s.faces, num_samples=5_000)
    assert m["normal_consistency"] == pytest.approx(1.0, abs=1e-9)  # |n . n'|, as ONet/SiTH
    assert m["normal_consistency_signed"] == pytest.approx(-1.0, abs=1e-9)


def test_far_from_origin_keeps_float32_precision() -> None:
    """Scan coordinates in mm far from 0: the scenes are centred before going to float32."""
    a, b = sphere(1000.0), sphere(1005.0)
    shift = np.array([1e5, -2e5, 3e5])
    m = mesh_metrics(a.vertices + shift, a.faces, b.vertices + shift, b.faces, 10_000, 10.0)
    assert m["chamfer"] == pytest.approx(5.0, rel=2e-3)


def test_surface_samples_are_uniform_by_area() -> None:
    """Two triangles of areas 1 and 3: a quarter of the samples on the first, all on the plane."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [5, 0, 0], [8, 0, 0], [5, 2, 0]], float)
    f = np.array([[0, 1, 2], [3, 4, 5]])
    points, ids = sample_surface(v, f, 40_000, seed=1)
    assert np.mean(ids == 0) == pytest.approx(0.25, abs=0.01)
    assert np.all(points[:, 2] == 0)
    first = points[ids == 0]
    assert np.all((first[:, 0] >= 0) & (first[:, 1] >= 0) & (2 * first[:, 0] + first[:, 1] <= 2))


def test_closest_point_distance_is_exact_for_a_plane() -> None:
    v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    query = SurfaceQuery(v, f, origin=np.zeros(3))
    d, n = query.closest(np.array([[0.2, 0.3, 0.5], [0.0, 0.0, -0.25], [3.0, 0.0, 0.0]]))
    assert d == pytest.approx([0.5, 0.25, 2.0], abs=1e-6)
    assert np.allclose(n, [0, 0, 1])


# ------------------------------------------------------------------ bad inputs


def test_bad_meshes_raise_one_clear_error(tmp_path: Path) -> None:
    s = sphere(1.0, 1)
    with pytest.raises(MeshInputError, match="predicted mesh: mesh has no triangles"):
        mesh_metrics(s.vertices, np.zeros((0, 3), int), s.vertices, s.faces)
    with pytest.raises(MeshInputError, match="ground-truth mesh: face refers to a vertex"):
        mesh_metrics(s.vertices, s.faces, s.vertices[:5], s.faces)
    bad = s.vertices.copy()
    bad[0] = np.nan
    with pytest.raises(MeshInputError, match="non-finite"):
        check_mesh(bad, s.faces, "x.obj")
    with pytest.raises(MeshInputError, match="zero surface area"):
        check_mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), "x.obj")
    with pytest.raises(ValueError, match="num_samples"):
        mesh_metrics(s.vertices, s.faces, s.vertices, s.faces, num_samples=0)
    missing = tmp_path / "missing.obj"
    with pytest.raises(MeshInputError, match=f"{missing}: file not found"):
        load_mesh(missing)
    points_only = tmp_path / "points.ply"
    trimesh.PointCloud(s.vertices).export(points_only)
    with pytest.raises(MeshInputError, match=str(points_only)):
        load_mesh(points_only)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(MeshInputError, match=str(garbage)):
        load_mesh(garbage)


# ------------------------------------------------------------------ alignment


def test_icp_recovers_a_translation() -> None:
    gt = toy_body()
    pred = trimesh.Trimesh(*trimesh.remesh.subdivide(gt.vertices, gt.faces))  # other samples
    shift = np.array([0.05, -0.03, 0.04])
    aligned, matrix = align_icp(pred.vertices + shift, pred.faces, gt.vertices, gt.faces, False)
    assert np.allclose(matrix[:3, :3], np.eye(3), atol=2e-3)
    assert np.allclose(matrix[:3, 3], -shift, atol=2e-3)
    m = mesh_metrics(aligned, pred.faces, gt.vertices, gt.faces, num_samples=10_000)
    assert m["chamfer"] < 1e-3


def test_icp_recovers_a_similarity() -> None:
    """Prediction = GT scaled by 1.3, turned 6 degrees and shifted: scale + ICP undoes it."""
    gt = toy_body()
    pred = trimesh.Trimesh(*trimesh.remesh.subdivide(gt.vertices, gt.faces))
    r, scale, t = rotation_y(math.radians(6)), 1.3, np.array([0.4, 0.2, -0.3])
    moved = scale * pred.vertices @ r.T + t
    aligned, matrix = align_icp(moved, pred.faces, gt.vertices, gt.faces)
    assert np.cbrt(np.linalg.det(matrix[:3, :3])) == pytest.approx(1 / scale, rel=2e-3)
    assert np.abs(aligned - pred.vertices).max() < 5e-3  # body is ~1.1 units tall
    rigid, _ = align_icp(moved, pred.faces, gt.vertices, gt.faces, False, num_samples=5_000)
    assert np.abs(rigid - pred.vertices).max() > 0.05  # without scale it cannot


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"v {x!r} {y!r} {z!r}" for x, y, z in vertices.tolist()] + ["vt 0.5 0.5"]
    lines += [f"f {a + 1}/1 {b + 1}/1 {c + 1}/1" for a, b, c in faces.tolist()]
    path.write_text("\n".join(lines) + "\n")


def _write_texture(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.full((4, 4, 3), 128, np.uint8))
    path.write_bytes(buf.tobytes())  # OpenCV reads by content, whatever the extension


def _raw_scan(tmp_path: Path, data_name: str, name: str) -> trimesh.Trimesh:
    """The toy body in centimetres, off the origin, in the renderer's dataset layout."""
    raw = toy_body()
    raw.vertices = raw.vertices * 160.0 + np.array([12.0, 95.0, -40.0])
    obj = tmp_path / "obj" / data_name
    if data_name == "RP":
        _write_obj(obj / f"{name}_OBJ" / f"{name}_100k.obj", raw.vertices, raw.faces)
        _write_texture(obj / f"{name}_OBJ" / "tex" / f"{name}_dif_8k.jpg")
    else:
        _write_obj(obj / "data" / name / f"{name}.obj", raw.vertices, raw.faces)
        _write_texture(obj / "data" / name / "material0.jpeg")
        smplx = obj / "smplx" / name / "smplx_param.pkl"
        smplx.parent.mkdir(parents=True)
        with open(smplx, "wb") as f:
            pickle.dump({"global_orient": np.array([[0.1, 0.6, -0.2]], np.float32)}, f)
    return raw


@pytest.mark.parametrize(
    ("data_name", "name"),
    [("RP", "rp_wendy_posed_002"), ("RP", "rp_michael_posed_019"), ("THuman2", "0007")],
)
def test_render_frame_points_map_back_onto_the_raw_scan(
    tmp_path: Path, data_name: str, name: str
) -> None:
    """Depth rendered by the real renderer at yaw 30 (RP facing fix, RP size fix, THuman2
    facing), back-projected with utils/camera.py, then mapped by render_frame_to_scan: the points
    lie on the raw scan (cm) to float32 ray-casting precision."""
    raw = _raw_scan(tmp_path, data_name, name)
    scan = load_scan(tmp_path, data_name, name)
    rotation = scan.view_rotation(30.0)
    hits = RayCaster(scan.mesh.vertices, scan.mesh.faces).cast(128, rotation)
    points, _ = backproject(hits.front)
    assert len(points) > 1000
    on_scan = render_frame_to_scan(points, scan.transform, 30.0, scan.facing)
    query = SurfaceQuery(raw.vertices, raw.faces, origin=raw.vertices.mean(axis=0))
    distance, _ = query.closest(on_scan)
    assert distance.max() < 2e-3  # cm; the scan is 176 cm tall
    wrong = render_frame_to_scan(points, scan.transform, 0.0, scan.facing)
    assert query.closest(wrong)[0].max() > 1.0  # the yaw matters


# ------------------------------------------------------------------ normal images


def test_sphere_normal_images_match_the_analytic_normals() -> None:
    """Orthographic view of a sphere: at pixel (x, y) the normal is (x, y, sqrt(1 - x^2 - y^2))
    / r, in every view. Interpolated normals agree to < 0.1 degree on average."""
    s = sphere(0.5)
    s.vertices += np.array([1.0, 2.0, 3.0])
    views = OrthoViews.framing(s.vertices, res=128)
    normals, mask = render_normals(s.vertices, s.faces, views)
    c = ((np.arange(128) + 0.5) / 128 * 2 - 1) * views.half_extent / 0.5
    x, y = np.meshgrid(c, -c)
    inside = x**2 + y**2 < 1
    analytic = np.stack((x, y, np.sqrt(np.clip(1 - x**2 - y**2, 0, None))), axis=-1)
    for i in range(len(views.yaws_deg)):
        assert (mask[i] ^ inside).sum() < 0.01 * inside.sum()
        both = mask[i] & inside
        cos = np.clip(np.sum(normals[i][both] * analytic[both], axis=-1), -1, 1)
        assert np.degrees(np.arccos(cos)).mean() < 0.1
    flat, _ = render_normals(s.vertices, s.faces, views, smooth=False)
    cos = np.clip(np.sum(flat[0][mask[0] & inside] * analytic[mask[0] & inside], -1), -1, 1)
    assert np.degrees(np.arccos(cos)).mean() > 0.3  # faceted normals are measurably worse


def test_normal_errors_identical_flipped_and_icon_convention() -> None:
    s = sphere(1.0, 4)
    same = normal_image_errors(s.vertices, s.faces, s.vertices, s.faces, res=96)
    assert same["normal_angle_deg"] < 0.05 and same["normal_l2"] < 1e-3
    assert same["normal_error_icon"] < 1e-6 and same["silhouette_iou"] == 1.0
    flipped = normal_image_errors(s.vertices, s.faces[:, ::-1], s.vertices, s.faces, res=96)
    assert flipped["normal_angle_deg"] > 179.0 and flipped["normal_l2"] > 1.999
    # ICON: |n_p - n_g|^2 averaged over all pixels = 4 x covered share (disk of r in 1.05 r box)
    covered = math.pi / (4 * 1.05**2)
    assert flipped["normal_error_icon"] == pytest.approx(4 * covered, rel=0.02)


def test_normal_error_of_a_half_missing_prediction() -> None:
    """Only the silhouette of the uncovered half is counted by ICON's value: a missing pixel
    contributes |0 - n_g|^2 = 1, an empty one 0."""
    n = np.zeros((1, 2, 2, 3), np.float32)
    n[..., 2] = 1.0
    gt_mask = np.array([[[True, True], [True, False]]])
    pred_mask = np.array([[[True, False], [False, False]]])
    e = compare_normal_images(n * pred_mask[..., None], pred_mask, n * gt_mask[..., None], gt_mask)
    assert e["normal_error_icon"] == pytest.approx(2 / 4)
    assert e["normal_angle_deg"] == pytest.approx(0.0, abs=1e-6)
    assert e["silhouette_iou"] == pytest.approx(1 / 3)
    none = compare_normal_images(n, pred_mask, n, ~pred_mask)
    assert math.isnan(none["normal_angle_deg"]) and none["silhouette_iou"] == 0.0


# ------------------------------------------------------------------ CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "evaluate.py", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_batch_reports_failures_and_continues(tmp_path: Path) -> None:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    a, b = sphere(0.9, 4), sphere(0.92, 4)  # metres: Chamfer 2 cm
    a.export(pred / "a_front.obj")
    b.export(gt / "a.ply")
    toy_body().export(pred / "b_front.ply")
    toy_body().export(gt / "b.obj")
    (pred / "broken_front.obj").write_text("v 0 0 0\n")  # no faces
    b.export(pred / "orphan_front.obj")  # no GT
    out = tmp_path / "eval" / "metrics.json"
    panels = tmp_path / "normals"
    args = ["--pred", str(pred), "--gt", str(gt), "--pred_suffix", "_front", "--units", "m"]
    args += ["--out", str(out), "--num_samples", "20000", "--normal_res", "64"]
    r = run_cli(*args, "--save_normals", str(panels))
    assert r.returncode == 1, r.stderr
    failed_lines = [line for line in r.stderr.splitlines() if "FAILED" in line]
    assert len(failed_lines) == 2, r.stderr  # one line per bad item, no traceback
    assert "Traceback" not in r.stderr
    assert "broken_front.obj: " in failed_lines[0]
    assert "orphan_front.obj: no ground-truth mesh named 'orphan'" in failed_lines[1]
    report = json.loads(out.read_text())
    assert set(report["items"]) == {"a", "b"} and set(report["failed"]) == {"broken", "orphan"}
    assert report["distance_unit"] == "cm"
    assert report["items"]["a"]["chamfer"] == pytest.approx(2.0, rel=0.01)
    assert report["items"]["b"]["chamfer"] < 1e-4 and report["items"]["b"]["fscore"] == 1.0
    assert report["mean"]["chamfer"] == pytest.approx(report["items"]["a"]["chamfer"] / 2)
    assert "mean" in r.stdout and "Chamfer" in r.stdout
    assert sorted(p.name for p in panels.iterdir()) == ["a.png", "b.png"]
    assert not list(out.parent.glob(".*.tmp"))


def test_cli_icp_and_camera_modes(tmp_path: Path) -> None:
    gt = toy_body()
    moved = tmp_path / "moved.obj"
    trimesh.Trimesh(1.2 * gt.vertices + [0.3, 0.1, 0.0], gt.faces).export(moved)
    gt_file = tmp_path / "gt.obj"
    gt.export(gt_file)
    out = tmp_path / "icp.json"
    common = ["--units", "m", "--num_samples", "20000", "--no_normals"]
    common += ["--pred", str(moved), "--gt", str(gt_file), "--out", str(out)]
    r = run_cli(*common)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["items"]["moved"]["chamfer"] > 5.0  # not aligned
    r = run_cli(*common, "--align", "icp")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["items"]["moved"]["chamfer"] < 0.05  # cm

    # camera: the normalised, yaw-30 mesh of a THuman2 scan (cm) maps back onto the scan
    raw = _raw_scan(tmp_path, "THuman2", "0007")
    scan = load_scan(tmp_path, "THuman2", "0007")
    view = scan.mesh.vertices @ scan.view_rotation(30.0).T
    (tmp_path / "pred").mkdir()
    trimesh.Trimesh(view, scan.mesh.faces).export(tmp_path / "pred" / "0007_front.obj")
    args = ["--pred", str(tmp_path / "pred"), "--pred_suffix", "_front", "--align", "camera"]
    args += ["--data_path", str(tmp_path), "--data_name", "THuman2", "--yaw", "30"]
    args += ["--units", "cm", "--out", str(out), "--normal_res", "64", "--flat_normals"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    item = json.loads(out.read_text())["items"]["0007"]
    # load_scan subdivides once, so the samples differ; face normals are the same
    assert len(raw.faces) * 4 == len(scan.mesh.faces)
    assert item["chamfer"] < 1e-3 and item["normal_angle_deg"] < 0.05


def test_cli_refuses_inconsistent_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = evaluate.get_parser()
    for argv, message in [
        (["--units", "m"], "--align none needs --gt"),
        (["--gt", str(tmp_path), "--units", "none"], "--fscore_threshold"),
        (["--align", "camera", "--units", "m"], "--data_path and --data_name"),
    ]:
        with pytest.raises(SystemExit) as e:
            evaluate.check_args(parser, parser.parse_args(["--pred", str(tmp_path), *argv]))
        assert e.value.code == 2 and message in capsys.readouterr().err
    args = parser.parse_args(["--pred", str(tmp_path / "x"), "--gt", str(tmp_path), "--units", "m"])
    evaluate.check_args(parser, args)
    assert args.fscore_threshold == 1.0  # cm
    with pytest.raises(SystemExit, match="no such file or folder"):
        evaluate.main(args)


# ------------------------------------------------------------------ layering


def test_evaluation_does_not_import_the_renderer() -> None:
    """The scan layout, normalisation and view rotations come from ``utils/``, not ``render/``."""
    code = (
        "import sys, evaluation.geometry, evaluation.normal_images; "
        "print(sorted(m for m in sys.modules if m == 'render' or m.startswith('render.')))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
