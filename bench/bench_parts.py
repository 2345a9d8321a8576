"""Part crop + blend + merge: the lean crop-sized path against the authors' 12-canvas way.

Measures, at a given resolution, the work around the part networks (cropping the image and the
upsampled coarse normals for 12 parts, blend weights, merging 12 part outputs back), with random
part outputs, each configuration in a fresh process for its own peak RSS:

* ``lean``: :mod:`models.parts` (crop-sized grids, accumulation over part footprints);
* ``canvas``: :mod:`bench.naive_parts`, a full ``res x res`` canvas per part (authors' approach).

Usage:
    python -m bench.bench_parts --res 2048
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from bench.naive_parts import naive_crops, naive_merge
from models.parts import (
    PART_NETS,
    PartGeometry,
    blend_windows,
    crop_grids,
    merge_parts,
    sample_part_crops,
)
from utils.keypoints import invert_affine

THETA_FIXTURE = os.path.join(
    os.path.dirname(__file__), "..", "tests", "fixtures", "case_syn", "theta.npy"
)
CONFIGS = ("lean", "canvas")


def measure(config: str, res: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    geo = PartGeometry.for_resolution(res)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, res, res, generator=g) * 2 - 1
    guide = torch.rand(1, 3, res, res, generator=g)
    theta = torch.from_numpy(np.load(THETA_FIXTURE))[None]
    inv_theta = invert_affine(theta)
    parts = {
        name: torch.rand(len(p), 6, h, w, generator=g)
        for (name, p, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True)
    }
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    with torch.no_grad():
        if config == "lean":
            grids = crop_grids(theta, geo)
            crops = (sample_part_crops(image, grids, geo), sample_part_crops(guide, grids, geo))
            merged, occupancy = merge_parts(parts, blend_windows(grids, geo), theta, inv_theta, geo)
        else:
            crops = (naive_crops(image, theta, geo), naive_crops(guide, theta, geo))
            merged, occupancy = naive_merge(parts, theta, inv_theta, geo)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    checksum = float(merged.double().sum() + sum(c.double().sum() for c in crops[0].values()))
    return {
        "config": config,
        "seconds": seconds,
        "peak_rss_gb": peak / 1e9,
        "added_rss_gb": (peak - base_rss) / 1e9,
        "checksum": checksum,
    }


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args.res, args.threads)))
        return
    rows = []
    for config in args.configs:
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_parts",
            "--child",
            config,
            "--res",
            str(args.res),
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"part crops (image + guide) + blend weights + merge, res {args.res}, "
        f"{args.threads} threads"
    )
    header = ("config", "time [s]", "peak RSS [GB]", "added [GB]", "checksum")
    print("{:8s} {:>9s} {:>14s} {:>11s} {:>16s}".format(*header))
    for r in rows:
        print(
            f"{r['config']:8s} {r['seconds']:9.2f} {r['peak_rss_gb']:14.2f} "
            f"{r['added_rss_gb']:11.2f} {r['checksum']:16.6f}"
        )
    if len(rows) == 2:
        lean, canvas = rows
        print(
            f"lean vs canvas: {canvas['seconds'] / lean['seconds']:.1f}x faster, "
            f"{canvas['added_rss_gb'] / max(lean['added_rss_gb'], 1e-3):.1f}x less added memory"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=2048, help="working resolution (multiple of 64)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        default=list(CONFIGS),
        help="configurations to measure, each in its own process",
    )
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
