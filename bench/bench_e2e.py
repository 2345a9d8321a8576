"""End to end, one image: photo + keypoints -> maps and point cloud (test_02_model) -> mesh
(test_03_poisson), seconds per stage and peak RSS, each configuration in a fresh process.

* ``ours``: the default path (lean phase-2 forward, our Poisson settings and depth-map normals);
* ``baseline``: the same model without the memory measures (NCHW, refinement in one piece) and
  the authors' meshing settings (k = 70 PCA normals with spanning-tree orientation, depth 10,
  scale 1.1, point weight 4).

The input is the embedded synthetic case (``tests/fixtures/case_syn``: 2048² RGB, mask, OpenPose
keypoints) with the parity recipe weights (width 1.0, the authors' architecture): timings, not a
reconstruction.

Usage:
    python -m bench.bench_e2e --res 2048
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import torch

from bench.common import base_parser, cpu_line, peak_rss_gb, run_children
from inference.io import write_files
from inference.predictor import OutputOptions, Predictor, prediction_files
from meshing.batch import mesh_file
from meshing.poisson import AUTHORS_OPTIONS, PoissonOptions
from models import build_model
from models.recipe import recipe_state_dict
from utils.keypoints import load_openpose_json

CONFIGS = ("ours", "baseline")
CASE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "case_syn"


def measure(config: str, res: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    times = {}
    start = time.perf_counter()
    model = build_model(phase=2, res=res)
    model.load_state_dict(recipe_state_dict(model))
    predictor = Predictor(model)
    if config == "baseline":
        model.refine.tile_pixels = 0
        predictor.model = predictor.model.to(memory_format=torch.contiguous_format)
    times["load_s"] = time.perf_counter() - start

    start = time.perf_counter()
    rgb = cv2.imread(str(CASE / "input_rgb_2048.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    mask = cv2.imread(str(CASE / "mask_2048.png"), cv2.IMREAD_GRAYSCALE) > 127
    keypoints = load_openpose_json(CASE / "syn_keypoints.json")
    times["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    pred = predictor.predict(rgb.copy(), keypoints, mask, source="case_syn")
    times["predict_s"] = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_files(tmp, prediction_files(pred, "case_syn", OutputOptions()))
        times["write_s"] = time.perf_counter() - start
        options = AUTHORS_OPTIONS if config == "baseline" else PoissonOptions()
        cloud = Path(tmp) / "output_plys" / "case_syn.ply"
        stats = mesh_file(cloud, Path(tmp) / "case_syn.obj", options)
        times["poisson_s"] = stats["seconds"]
    return {
        "config": config,
        "res": res,
        "threads": threads,
        **times,
        "total_s": sum(times.values()),
        "points": stats["points"],
        "faces": stats["faces"],
        "peak_rss_gb": peak_rss_gb(),
    }


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args.res, args.threads)))
        return
    rows = run_children("bench.bench_e2e", args, [])
    print(
        f"one image end to end, res {args.res}, {args.threads} threads, torch {torch.__version__}"
    )
    print(cpu_line(args.threads))
    keys = ("load_s", "read_s", "predict_s", "write_s", "poisson_s", "total_s", "peak_rss_gb")
    print(f"{'config':10s}" + "".join(f"{k:>13s}" for k in keys))
    for r in rows:
        print(f"{r['config']:10s}" + "".join(f"{r[k]:13.2f}" for k in keys))
    ours = next((r for r in rows if r["config"] == "ours"), None)
    base = next((r for r in rows if r["config"] == "baseline"), None)
    if ours and base:
        print(f"ours vs baseline: {base['total_s'] / ours['total_s']:.2f}x faster end to end")


def get_parser() -> argparse.ArgumentParser:
    return base_parser(__doc__, CONFIGS)


if __name__ == "__main__":
    main(get_parser().parse_args())
