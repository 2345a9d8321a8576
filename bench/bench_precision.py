"""Geometric cost of ``--precision bf16|fp16`` against fp32 (the Predictor, autocast).

Input: the bundled demo people (``data/demo/images``, trained demo weights at 512², width 0.25),
so the differences are in real geometry. (The parity recipe weights at 2048² are untrained: their
post-processed silhouette is empty, so they cannot show a geometric cost; the 2048² times are in
``bench.bench_inference``.)

Per precision: silhouette IoU with fp32, depth difference on the common silhouette (median and
p99, mm at a person's size, 1 D = 570 mm), merged-normal angle difference (mean and p99) and the
forward time; with ``--mesh``, the Chamfer distance between the Poisson meshes of the two point
clouds (mm; Open3D, CPU).

Usage:
    python -m bench.bench_precision --threads 2 --mesh
    python -m bench.bench_precision --device cuda
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import MM_PER_D, cpu_line, prediction_difference
from inference import Prediction, Predictor
from inference.io import image_stem, list_images, read_image
from models.precision import PRECISIONS

ROOT = Path(__file__).resolve().parents[1]


def demo_items() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, RGBA image, keypoints) of the demo people."""
    paths = list_images(ROOT / "data" / "demo" / "images")
    return [(image_stem(p), read_image(p), np.load(p.with_name(f"{p.stem}_keypoints.npy")))
            for p in paths]  # fmt: skip


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    checkpoint, items = ROOT / "checkpoints" / "demo_w025_512.pt", demo_items()
    print(cpu_line(args.threads))
    preds: dict[str, list[Prediction]] = {}
    for precision in ("fp32", *args.precisions):
        predictor = Predictor(checkpoint, device=args.device, precision=precision)
        preds[precision] = [predictor.predict(im, kp, source=stem) for stem, im, kp in items]
        start = time.perf_counter()
        predictor.predict(items[0][1], items[0][2])
        print(f"{precision}: forward {time.perf_counter() - start:.2f} s")
    print(f"vs fp32 (depth mm at 1 D = {MM_PER_D:.0f} mm; normals deg; {len(items)} images, mean)")
    head = ("IoU", "dF med", "dF p99", "dB med", "dB p99", "nF mean", "nF p99", "nB mean")
    print(f"{'precision':<9}" + "".join(f" {h:>7}" for h in (*head, "nB p99")))
    for precision in args.precisions:
        pairs = zip(preds["fp32"], preds[precision], strict=True)
        rows = [prediction_difference(a, b) for a, b in pairs]
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(
            f"{precision:<9} {m['silhouette_iou']:>7.3f} {m['depth_front_median_mm']:>7.2f}"
            f" {m['depth_front_p99_mm']:>7.1f} {m['depth_back_median_mm']:>7.2f}"
            f" {m['depth_back_p99_mm']:>7.1f} {m['normal_front_mean_deg']:>7.2f}"
            f" {m['normal_front_p99_deg']:>7.1f} {m['normal_back_mean_deg']:>7.2f}"
            f" {m['normal_back_p99_deg']:>7.1f}"
        )
    if args.mesh:
        print_mesh_differences(preds, args.precisions)


def print_mesh_differences(preds: dict[str, list[Prediction]], precisions: list[str]) -> None:
    """Chamfer / P2S / S2P (mm) between the Poisson mesh of each precision and fp32's."""
    from evaluation.geometry import mesh_metrics
    from meshing.poisson import reconstruct

    def mesh(pred: Prediction) -> tuple[np.ndarray, np.ndarray]:
        points, colors = pred.point_cloud()
        m = reconstruct(points.astype(np.float64), colors / 255.0)
        return m.vertices, m.faces

    meshes = {k: [mesh(p) for p in v] for k, v in preds.items()}
    print(f"{'precision':<9} {'Chamfer':>8} {'P2S':>8} {'S2P':>8}  (mm, mean of images)")
    for precision in precisions:
        rows = [
            mesh_metrics(*m, *ref, num_samples=50_000)
            for m, ref in zip(meshes[precision], meshes["fp32"], strict=True)
        ]
        mm = {k: MM_PER_D * float(np.mean([r[k] for r in rows])) for k in ("chamfer", "p2s", "s2p")}
        print(f"{precision:<9} {mm['chamfer']:8.2f} {mm['p2s']:8.2f} {mm['s2p']:8.2f}")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=[k for k in PRECISIONS if k != "fp32"],
        default=["bf16", "fp16"],
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--mesh", action="store_true", help="also the meshes' Chamfer distance")
    return p


if __name__ == "__main__":
    main(get_parser().parse_args())
