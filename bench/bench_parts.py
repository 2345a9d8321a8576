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
import time

import torch

from bench.common import base_parser, cpu_line, fixture_theta, peak_rss_gb, run_children
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

CONFIGS = ("lean", "canvas")


def measure(config: str, res: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    geo = PartGeometry.for_resolution(res)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, res, res, generator=g) * 2 - 1
    guide = torch.rand(1, 3, res, res, generator=g)
    theta = fixture_theta()
    inv_theta = invert_affine(theta)
    parts = {
        name: torch.rand(len(p), 6, h, w, generator=g)
        for (name, p, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True)
    }
    base_rss = peak_rss_gb()
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
    peak = peak_rss_gb()
    checksum = float(merged.double().sum() + sum(c.double().sum() for c in crops[0].values()))
    return {
        "config": config,
        "seconds": seconds,
        "peak_rss_gb": peak,
        "added_rss_gb": peak - base_rss,
        "checksum": checksum,
    }


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args.res, args.threads)))
        return
    rows = run_children("bench.bench_parts", args, [])
    print(
        f"part crops (image + guide) + blend weights + merge, res {args.res}, "
        f"{args.threads} threads"
    )
    print(cpu_line(args.threads))
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
    return base_parser(__doc__, CONFIGS).parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
