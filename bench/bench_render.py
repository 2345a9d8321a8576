"""Rendering one scan: our renderer against the authors' approach, each in its own process.

Renders one open synthetic human (``render.synthetic``, made once before timing) into the training
layout: every yaw, front/back depth, front/back NOSHADING colour and the SHADED image.

* ``ours``: :class:`render.pipeline.ScanRenderer`: the scan loaded once, two first-hit Open3D
  queries per view (front, and reversed rays for the back), one reused OpenGL context, 4 lights.
* ``authors``: the authors' algorithm with their Python per-hit loops vectorised (otherwise it takes
  minutes per view): trimesh's Embree ray caster with all hits (``multiple_hits=True``), min/max
  reduction per ray, the mesh rotated per view, a new OffscreenRenderer per view and the spot light
  added at 360 poses. ``--authors_views`` limits how many yaws it renders (it is slow and
  memory-hungry at 2048); its per-scan time is the scan load plus 7 times the median view.

Ours runs with its defaults (SHADED supersampled 2x under OSMesa, which has no MSAA); the authors'
way renders SHADED once (their EGL renders had pyrender's MSAA, free on a GPU).

Usage:
    python -m bench.bench_render --res 2048
    python -m bench.bench_render --res 512 --configs ours
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import trimesh
import trimesh.remesh

from bench.common import cpu_line, peak_rss_gb
from render.layout import DEFAULT_YAWS
from render.mesh import Scan, load_scan
from render.pipeline import RenderOptions, ScanRenderer
from render.shading import AMBIENT, SPOT_INNER, SPOT_OUTER, gl_platform
from render.synthetic.assets import load_anny_model
from render.synthetic.human import make_human, save_human
from utils.camera import CAMERA_Z, pixel_rays, range_to_png, rotation_y

CONFIGS = ("ours", "authors")


def authors_view(scan: Scan, yaw: int, res: int, rng: np.random.Generator, out: Path) -> None:
    """One view the authors' way (vectorised loops): all hits, min/max per ray, fresh renderer;
    the same five PNGs as ours written to ``out``."""
    gl_platform()
    import pyrender

    vertices = np.asarray(scan.mesh.vertices) @ scan.view_rotation(yaw).T
    mesh = trimesh.Trimesh(vertices, scan.mesh.faces, vertex_colors=scan.mesh.visual.vertex_colors)
    dirs = pixel_rays(res).reshape(-1, 3)
    origins = np.broadcast_to(np.array([0.0, 0.0, CAMERA_Z]), dirs.shape)
    locations, ray_idx, tri_idx = mesh.ray.intersects_location(origins, dirs, multiple_hits=True)
    dist = np.linalg.norm(locations - origins[ray_idx], axis=1)
    front = np.full(res * res, np.inf)
    back = np.zeros(res * res)
    np.minimum.at(front, ray_idx, dist)
    np.maximum.at(back, ray_idx, dist)
    front[~np.isfinite(front)] = 0.0
    colors = mesh.visual.face_colors[:, 2::-1]  # BGR
    order = np.argsort(-dist)  # the last write per ray wins: nearest hit first, then farthest
    noshading_front = np.zeros((res * res, 3), np.uint8)
    noshading_front[ray_idx[order]] = colors[tri_idx[order]]
    noshading_back = np.zeros((res * res, 3), np.uint8)
    noshading_back[ray_idx[order[::-1]]] = colors[tri_idx[order[::-1]]]
    renderer = pyrender.OffscreenRenderer(res, res)
    scene = pyrender.Scene(ambient_light=AMBIENT, bg_color=(0.0, 0.0, 0.0, 0.0))
    scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=False))
    camera_pose = np.eye(4)
    camera_pose[2, 3] = CAMERA_Z
    scene.add(pyrender.PerspectiveCamera(yfov=math.radians(50), aspectRatio=1.0), pose=camera_pose)
    light = pyrender.SpotLight(
        color=(1.0, 0.75, 1.0), intensity=8.0, innerConeAngle=SPOT_INNER, outerConeAngle=SPOT_OUTER
    )
    for angle in rng.integers(0, 360, size=360):
        pose = np.eye(4)
        pose[:3, :3] = rotation_y(math.radians(float(angle)))
        pose[:3, 3] = pose[:3, :3] @ np.array([0.0, 0.0, 2.0])
        scene.add(light, pose=pose)
    shaded, _ = renderer.render(scene)
    renderer.delete()
    images = {
        "depth_front": range_to_png(front.reshape(res, res)),
        "depth_back": range_to_png(back.reshape(res, res)),
        "noshading_front": noshading_front.reshape(res, res, 3),
        "noshading_back": noshading_back.reshape(res, res, 3),
        "shaded": shaded[:, :, ::-1],
    }
    for kind, image in images.items():
        cv2.imwrite(str(out / f"{yaw}_{kind}.png"), image)


def measure(
    config: str, data_path: str, item: str, res: int, views: int, supersample: int | None
) -> dict:
    """One configuration's per-scan seconds: ours end to end (load + every view + writes); the
    authors' way as load + 7 x the median view (after the imports, which a batch pays once)."""
    gl_platform()
    import pyrender  # noqa: F401  (imported before timing: a batch pays this once)

    base = peak_rss_gb()
    start = time.perf_counter()
    if config == "ours":
        renderer = ScanRenderer(data_path, "ANNY", RenderOptions(res=res, supersample=supersample))
        renderer.render_item(item)
        renderer.close()
        n = len(DEFAULT_YAWS)
        per_scan = time.perf_counter() - start
    else:
        scan = load_scan(data_path, "ANNY", item)
        load = time.perf_counter() - start
        rng = np.random.default_rng(0)
        times = []
        for yaw in DEFAULT_YAWS[:views]:
            t = time.perf_counter()
            authors_view(scan, yaw, res, rng, Path(data_path))
            times.append(time.perf_counter() - t)
        n = len(times)
        per_scan = load + len(DEFAULT_YAWS) * float(np.median(times))
    return {
        "config": config,
        "views": n,
        "seconds": time.perf_counter() - start,
        "per_scan_s": per_scan,
        "peak_rss_gb": peak_rss_gb(),
        "added_rss_gb": peak_rss_gb() - base,
    }


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=2048)
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--authors_views", type=int, default=2, help="yaws rendered the authors' way")
    p.add_argument("--seed", type=int, default=0, help="synthetic human seed")
    p.add_argument(
        "--subdivide", type=int, default=0, help="midpoint subdivisions (x4 faces each), scan-like"
    )
    p.add_argument(
        "--supersample", type=int, help="ours: SHADED supersampling (default: render.py's)"
    )
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    p.add_argument("--data_path", help=argparse.SUPPRESS)
    p.add_argument("--item", help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> None:
    if args.child:
        row = measure(
            args.child, args.data_path, args.item, args.res, args.authors_views, args.supersample
        )
        print(json.dumps(row))
        return
    with tempfile.TemporaryDirectory() as tmp:
        human = make_human(load_anny_model(), args.seed, "bench_human", clothes="painted")
        for _ in range(args.subdivide):
            v, f, attrs = trimesh.remesh.subdivide(
                human.vertices, human.faces, vertex_attributes={"c": human.vertex_colors}
            )
            human = dataclasses.replace(
                human, vertices=v, faces=f, vertex_colors=attrs["c"].round().astype(np.uint8)
            )
        save_human(human, Path(tmp))
        print(
            f"synthetic human: {len(human.vertices)} vertices, {len(human.faces)} faces, "
            f"res {args.res}"
        )
        print(cpu_line())
        rows = []
        for config in args.configs:
            cmd = [sys.executable, "-m", "bench.bench_render", "--child", config]
            cmd += ["--res", str(args.res), "--authors_views", str(args.authors_views)]
            if args.supersample:
                cmd += ["--supersample", str(args.supersample)]
            cmd += ["--data_path", tmp, "--item", "bench_human"]
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    header = ("config", "views", "time [s]", "per scan [s]", "peak RSS [GB]")
    print("{:8s} {:>6s} {:>9s} {:>14s} {:>14s}".format(*header))
    for r in rows:
        print(
            f"{r['config']:8s} {r['views']:6d} {r['seconds']:9.1f} {r['per_scan_s']:14.1f} "
            f"{r['peak_rss_gb']:14.2f}"
        )
    if len(rows) == 2:
        print(
            f"ours vs authors: {rows[1]['per_scan_s'] / rows[0]['per_scan_s']:.1f}x faster per scan"
        )


if __name__ == "__main__":
    main(get_parser().parse_args())
