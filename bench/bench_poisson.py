"""Meshing one point cloud: seconds, peak memory and accuracy per configuration, each in a process.

The cloud is what ``test_02_model.py`` writes for a perfect prediction: an open synthetic human
(``render.synthetic``) is ray-cast at ``--res`` (front and back range, facts §6.6), encoded as the
16-bit depth PNGs, decoded to D units and back-projected by the Predictor's own code
(``inference.pointcloud.colored_point_cloud``, optionally with ``--side_fill``) into a binary PLY
without normals. ``--noise_mm`` adds Gaussian noise to the ranges first (a stand-in for prediction
error); ``--wrinkles_mm`` gives the smooth body cloth-like relief first. Every configuration
reads that PLY, meshes it and writes an OBJ:

* ``authors``: pymeshlab's screened Poisson as the authors call it, in Open3D
  (``meshing.AUTHORS_OPTIONS``: PCA of 70 neighbours, spanning-tree orientation, depth 10,
  scale 1.1, point weight 4, no trimming);
* ``ours``: ``meshing.PoissonOptions()``, the defaults (normals from the depth maps rebuilt from
  the cloud, depth 10 at scale 1.5, point weight 10);
* ``d9``, ``d10``: the same at depth 9 and 10 with the authors' scale 1.1;
* ``camera``: the defaults with the normals of clouds that are not on a pixel lattice (PCA of
  30 neighbours signed with the camera).

Accuracy against the GT mesh, in mm (the human's real size): ``chamfer``, ``p2s``, ``s2p`` of
``evaluation.geometry.mesh_metrics`` (everything, including the sides no view saw) and
``s2p_seen``: GT-to-mesh distance on the GT samples seen by the front or back view, the part the
cloud describes. Seconds: reading, normals, Poisson, writing, total (wall) and the process's CPU
seconds; peak RSS up to the end of the write (before the evaluation).

Usage:
    python -m bench.bench_poisson --res 2048
    python -m bench.bench_poisson --res 2048 --wrinkles_mm 1 --noise_mm 0.5
    python -m bench.bench_poisson --res 512 --configs ours camera --side_fill
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import open3d as o3d
import trimesh
import trimesh.remesh

from bench.common import cpu_line, peak_rss_gb
from evaluation.geometry import SurfaceQuery, mesh_metrics, sample_surface
from inference.pointcloud import colored_point_cloud, write_ply
from meshing import AUTHORS_OPTIONS, PoissonOptions, read_point_cloud, reconstruct, write_mesh
from render.pipeline import colour_image
from render.raycast import BEYOND, RayCaster
from utils.camera import CAMERA_Z, png_to_depth_units, range_to_png
from utils.scans import normalization

CONFIGS = {
    "authors": AUTHORS_OPTIONS,
    "ours": PoissonOptions(),
    "d9": PoissonOptions(depth=9, scale=1.1),
    "d10": PoissonOptions(depth=10, scale=1.1),
    "camera": PoissonOptions(normals="camera"),
}
COLUMNS = (
    ("config", "config", 10, "s"),
    ("normals+Poisson", "mesh_s", 15, ".1f"),
    ("write", "write_s", 6, ".1f"),
    ("total", "total_s", 6, ".1f"),
    ("CPU", "cpu_s", 6, ".1f"),
    ("RSS GB", "peak_rss_gb", 7, ".2f"),
    ("vertices", "vertices", 9, "d"),
    ("Chamfer", "chamfer_mm", 8, ".3f"),
    ("P2S", "p2s_mm", 6, ".3f"),
    ("S2P", "s2p_mm", 6, ".3f"),
    ("S2P seen", "s2p_seen_mm", 9, ".3f"),
    ("F@1mm", "fscore_1mm", 6, ".3f"),
)
"""(title, row key, width, format) of the printed table."""
SEEN_TOLERANCE = 2e-5
"""A GT sample is seen when a view's ray hits the surface within this distance of it (units)."""


def seen_mask(gt_vertices: np.ndarray, gt_faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] bool: the GT surface point is the nearest (front) or farthest (back) hit of the camera
    ray through it, i.e. one of the two views saw it."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(gt_vertices.astype(np.float32)), o3d.core.Tensor(gt_faces.astype(np.uint32))
    )
    camera = np.array([0.0, 0.0, CAMERA_Z])
    rel = points - camera
    rng = np.linalg.norm(rel, axis=1)
    unit = rel / rng[:, None]
    front = np.concatenate((np.broadcast_to(camera, unit.shape), unit), axis=1)
    back = np.concatenate((camera + BEYOND * unit, -unit), axis=1)
    t_front = scene.cast_rays(o3d.core.Tensor(front.astype(np.float32)))["t_hit"].numpy()
    t_back = BEYOND - scene.cast_rays(o3d.core.Tensor(back.astype(np.float32)))["t_hit"].numpy()
    return (np.abs(t_front - rng) < SEEN_TOLERANCE) | (np.abs(t_back - rng) < SEEN_TOLERANCE)


def accuracy(
    vertices: np.ndarray,
    faces: np.ndarray,
    gt_vertices: np.ndarray,
    gt_faces: np.ndarray,
    mm_per_unit: float,
    num_samples: int = 200_000,
) -> dict[str, float]:
    """Chamfer / P2S / S2P (all of the GT) and S2P on the seen GT, in mm; F-score at 1 mm."""
    metrics = mesh_metrics(
        vertices,
        faces,
        gt_vertices,
        gt_faces,
        num_samples=num_samples,
        fscore_threshold=1.0 / mm_per_unit,
    )
    gt_points, _ = sample_surface(gt_vertices, gt_faces, num_samples, seed=0)
    seen = seen_mask(gt_vertices, gt_faces, gt_points)
    origin = 0.5 * (gt_vertices.min(axis=0) + gt_vertices.max(axis=0))
    distance, _ = SurfaceQuery(vertices, faces, origin).closest(gt_points[seen])
    return {
        "chamfer_mm": metrics["chamfer"] * mm_per_unit,
        "p2s_mm": metrics["p2s"] * mm_per_unit,
        "s2p_mm": metrics["s2p"] * mm_per_unit,
        "s2p_seen_mm": float(distance.mean()) * mm_per_unit,
        "seen_fraction": float(seen.mean()),
        "fscore_1mm": metrics["fscore"],
    }


def wrinkled(
    vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, amplitude_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloth-like relief for the smooth synthetic body: two midpoint subdivisions (x16 faces),
    then a displacement along the vertex normals of up to ``amplitude_m`` metres, a product of
    sines with 2-3 cm wavelengths (folds a 1 mm pixel resolves and a coarse octree smooths)."""
    for _ in range(2):
        vertices, faces, attrs = trimesh.remesh.subdivide(
            vertices, faces, vertex_attributes={"c": colors}
        )
        colors = attrs["c"]
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    x, y, z = vertices.T
    relief = np.sin(2 * np.pi * y / 0.02 + 3 * x) * np.sin(2 * np.pi * (x / 0.03 + z / 0.025))
    return vertices + amplitude_m * relief[:, None] * normals, faces, colors


def synthetic_cloud(
    out: Path, res: int, seed: int, side_fill: bool, noise_mm: float, wrinkles_mm: float = 0.0
) -> tuple[int, int]:
    """Write ``out/cloud.ply`` (the Predictor's format) and ``out/gt.npz`` for one synthetic human
    (with :func:`wrinkled` relief when ``wrinkles_mm`` > 0); returns the numbers of points and
    of GT faces."""
    from render.synthetic.assets import load_anny_model
    from render.synthetic.human import make_human

    human = make_human(load_anny_model(), seed, "bench_human", clothes="painted")
    vertices, faces, colors = human.vertices, human.faces, human.vertex_colors
    if wrinkles_mm > 0:
        vertices, faces, colors = wrinkled(vertices, faces, colors, wrinkles_mm / 1000.0)
    transform = normalization(trimesh.Trimesh(vertices, faces, process=False), "human", "ANNY")
    vertices = transform.apply(vertices)
    hits = RayCaster(vertices, faces).cast(res)
    ranges = []
    rng = np.random.default_rng(seed)
    for r in (hits.front, hits.back):
        if noise_mm > 0:
            noise = rng.normal(0.0, noise_mm / (1000.0 * transform.scale), r.shape)
            r = np.where(r > 0, r + noise, 0.0)
        ranges.append(png_to_depth_units(range_to_png(r)))
    face_rgb = colors[faces][:, :, :3].astype(np.float64).mean(axis=1)  # [F, 3] flat colours
    face_rgb = np.concatenate((face_rgb, np.zeros((1, 3)))).astype(np.uint8)  # + "no hit" black
    image = colour_image(face_rgb, hits.front_face)  # [res, res, 3] RGB
    points, rgb = colored_point_cloud(ranges[0], ranges[1], image, side_fill=side_fill)
    write_ply(out / "cloud.ply", points, rgb)
    mm_per_unit = transform.scale * 1e3  # anny humans are in metres before normalisation
    np.savez(out / "gt.npz", vertices=vertices, faces=faces, mm_per_unit=mm_per_unit)
    return len(points), len(faces)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(config: str, cloud_path: Path, gt_path: Path, threads: int, out: Path) -> dict:
    """Read, mesh and write one cloud; then evaluate (outside the timing and peak memory)."""
    options = dataclasses.replace(CONFIGS[config], threads=threads)
    cpu0, start = cpu_seconds(), time.perf_counter()
    cloud = read_point_cloud(cloud_path)
    t_read = time.perf_counter()
    mesh = reconstruct(cloud.points, cloud.colors, cloud.normals, options)
    t_mesh = time.perf_counter()
    write_mesh(out / f"{config}.obj", mesh)
    t_write = time.perf_counter()
    row = {
        "config": config,
        "points": len(cloud.points),
        "read_s": t_read - start,
        "mesh_s": t_mesh - t_read,
        "write_s": t_write - t_mesh,
        "total_s": t_write - start,
        "cpu_s": cpu_seconds() - cpu0,
        "peak_rss_gb": peak_rss_gb(),
        "vertices": len(mesh.vertices),
        "flipped": mesh.flipped,
    }
    gt = np.load(gt_path)
    row.update(
        accuracy(mesh.vertices, mesh.faces, gt["vertices"], gt["faces"], float(gt["mm_per_unit"]))
    )
    return row


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=2048, help="resolution of the depth maps")
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--threads", type=int, default=2, help="Poisson threads")
    p.add_argument("--seed", type=int, default=0, help="synthetic human seed")
    p.add_argument("--side_fill", action="store_true", help="the Predictor's side-filled cloud")
    p.add_argument("--noise_mm", type=float, default=0.0, help="Gaussian range noise (mm)")
    p.add_argument("--wrinkles_mm", type=float, default=0.0, help="cloth-like relief amplitude")
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> None:
    if args.child:
        work = Path(args.work)
        row = measure(args.child, work / "cloud.ply", work / "gt.npz", args.threads, work)
        print(json.dumps(row))
        return
    with tempfile.TemporaryDirectory() as tmp:
        n_points, n_faces = synthetic_cloud(
            Path(tmp), args.res, args.seed, args.side_fill, args.noise_mm, args.wrinkles_mm
        )
        print(
            f"synthetic human (seed {args.seed}, {n_faces} faces) at {args.res}: {n_points} "
            f"points{' with side filling' if args.side_fill else ''}, noise {args.noise_mm} mm, "
            f"wrinkles {args.wrinkles_mm} mm, {args.threads} threads"
        )
        print(cpu_line(args.threads))
        rows = []
        for config in args.configs:
            cmd = [sys.executable, "-m", "bench.bench_poisson", "--child", config, "--work", tmp]
            cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(" ".join(f"{title:>{width}s}" for title, _, width, _ in COLUMNS))
    for r in rows:
        print(" ".join(f"{r[key]:>{width}{fmt}}" for _, key, width, fmt in COLUMNS))
    print("seconds are wall time per object; distances in mm; S2P seen = GT seen by a view")
    by_name = {r["config"]: r for r in rows}
    if "authors" in by_name and "ours" in by_name:
        a, o = by_name["authors"], by_name["ours"]
        print(
            f"ours vs authors: {a['total_s'] / o['total_s']:.1f}x faster, "
            f"Chamfer {o['chamfer_mm']:.3f} vs {a['chamfer_mm']:.3f} mm"
        )


if __name__ == "__main__":
    main(get_parser().parse_args())
