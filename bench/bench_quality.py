"""Reconstruction quality on rendered people with ground truth: maps, meshes, boundary treatments.

Run from the repository root::

    python -m bench.bench_quality --checkpoint checkpoints/demo_w025_512.pt \
        --data_path data/synthetic --items anny_0090 anny_0093 anny_0095 \
        --variants order meet meet+trim

For each item the rendered SHADED view at ``--yaw`` (alpha = its silhouette, as the demo's inputs)
goes through the :class:`inference.Predictor`; each variant post-processes the depth
(``--depth_mask``: ``order`` = the authors', ``predicted``, ``meet``), builds the point cloud
(``+side``: with the authors' side filling), meshes it with screened Poisson (``+trim``: remove
the lowest ``--trim_quantile`` of Poisson density) and compares it with the scan. Reported per
variant, averaged over the items (cm at the person's real size):

* map errors against the rendered GT depth of the same view (same for every variant): merged
  normal angle, front and back, against ``get_normal`` of the GT depth on the GT mask eroded by
  one pixel; mean encoded normal colour on the body; interior depth roughness (mean
  |4-neighbour Laplacian| on the twice-eroded GT mask);
* ``missing``: GT-mask pixels without predicted depth after the post-processing;
* mesh errors: Chamfer, P2S (mesh -> scan), S2P, normal consistency, F-score at 1 cm, normal-image
  angle (:func:`inference.demo.evaluate_against_scan`), whether the mesh was flipped;
* interior depth error (|predicted - GT| on the GT mask eroded by 3 pixels where both have depth,
  cm), front and back, and its signed mean.

``--depth_source`` swaps depth maps before meshing to show where the Chamfer is lost: ``gt`` (the
rendered GT depth: the meshing and evaluation floor), ``gt_front`` / ``gt_back`` (GT on one side,
the prediction on the other, on the predicted silhouette), ``coarse`` (the coarse depth, bilinearly
upsampled and post-processed like the refined one: what the refinement net adds).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bench.common import cpu_line
from evaluation.geometry import scan_ground_truth
from inference.demo import evaluate_against_scan
from inference.pointcloud import colored_point_cloud
from inference.predictor import DEPTH_MASKS, Prediction, Predictor, postprocess_depth
from meshing.io import write_mesh
from meshing.poisson import PoissonOptions, reconstruct
from models.losses import get_normal
from render.layout import view_files
from render.make_demo_samples import view_input
from training.metrics import angle_error_deg
from utils.camera import DEPTH_F, DEPTH_UNIT, png_to_depth_units

MESH_KEYS = ("chamfer", "p2s", "s2p", "normal_consistency", "fscore", "normal_angle_deg")
MAP_KEYS = (
    "normal_front_deg",
    "normal_back_deg",
    "roughness_front_cm",
    "roughness_back_cm",
    "gt_roughness_front_cm",
    "gt_roughness_back_cm",
)


def parse_variant(variant: str) -> tuple[str, bool, bool]:
    """``mode[+side][+trim]`` -> (depth_mask mode, side filling, density trimming)."""
    mode, *flags = variant.split("+")
    if mode not in DEPTH_MASKS or not set(flags) <= {"side", "trim"}:
        raise ValueError(f"variant {variant!r}: expected one of {DEPTH_MASKS} [+side] [+trim]")
    return mode, "side" in flags, "trim" in flags


def _eroded(mask: torch.Tensor, times: int) -> torch.Tensor:
    """[1, 1, H, W] float mask eroded ``times`` by a 3x3 square."""
    for _ in range(times):
        mask = (F.max_pool2d(1 - mask, 3, 1, 1) == 0).float()
    return mask


def roughness(depth: torch.Tensor, mask: torch.Tensor, cm_per_d: float) -> float:
    """Mean |4-neighbour Laplacian| of [1, 1, H, W] depth on ``mask``, in cm."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    lap = F.conv2d(depth, kernel.to(depth), padding=1).abs()
    return float((lap * mask).sum() / mask.sum().clamp_min(1)) * cm_per_d


def map_metrics(
    pred_front: np.ndarray,
    normals: tuple[np.ndarray, np.ndarray],
    pred_back: np.ndarray,
    gt_front: np.ndarray,
    gt_back: np.ndarray,
    cm_per_d: float,
) -> dict[str, float]:
    """Normal and roughness errors of one prediction against the GT depth of its view."""
    gf, gb = (torch.from_numpy(d)[None, None].float() for d in (gt_front, gt_back))
    body = (gf > 0).float()
    inner, interior = _eroded(body, 1), _eroded(body, 2)
    out: dict[str, float] = {}
    for side, pred_n, gt in (("front", normals[0], gf), ("back", normals[1], gb)):
        pn = torch.from_numpy(pred_n)[None].float()
        gn = get_normal(gt)
        out[f"normal_{side}_deg"] = float(angle_error_deg(pn, gn, inner))
        on = inner[0, 0] > 0
        out[f"color_{side}"] = pn[0][:, on].mean(1).tolist()
        out[f"gt_color_{side}"] = gn[0][:, on].mean(1).tolist()
    for side, pred_d, gt in (("front", pred_front, gf), ("back", pred_back, gb)):
        pd = torch.from_numpy(pred_d)[None, None].float()
        both = interior * _eroded((pd > 0).float(), 1)  # prediction has depth in the 3x3
        out[f"roughness_{side}_cm"] = roughness(pd, both, cm_per_d)
        out[f"gt_roughness_{side}_cm"] = roughness(gt, interior, cm_per_d)
    return out


DEPTH_SOURCES = ("pred", "gt", "gt_front", "gt_back", "coarse")


def swap_depth(
    source: str,
    pred: Prediction,
    gt_front: np.ndarray,
    gt_back: np.ndarray,
    mode: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Front and back depth [H, W] to mesh for ``source`` (see ``--depth_source``)."""
    if source == "pred":
        return pred.depth_front, pred.depth_back
    if source == "gt":
        return gt_front, gt_back
    if source == "gt_front":
        return np.where(pred.depth_front > 0, gt_front, 0), pred.depth_back
    if source == "gt_back":
        return pred.depth_front, np.where(pred.depth_back > 0, gt_back, 0)
    if source == "coarse":
        coarse = torch.from_numpy(np.stack((pred.down_depth_front, pred.down_depth_back)))[None]
        up = F.interpolate(coarse, (pred.res, pred.res), mode="bilinear", align_corners=False)
        front, back = up[0].numpy()
        return postprocess_depth(front, back, pred.mask, mode, pred.foreground)
    raise ValueError(f"depth source must be one of {DEPTH_SOURCES}, got {source!r}")


def interior_depth_errors(
    pred_front: np.ndarray,
    pred_back: np.ndarray,
    gt_front: np.ndarray,
    gt_back: np.ndarray,
    cm_per_d: float,
) -> dict[str, float]:
    """Mean |error| and mean signed error (cm) of [H, W] depth maps inside the body."""
    inner = _eroded(torch.from_numpy(gt_front > 0)[None, None].float(), 3)[0, 0].numpy() > 0
    inner &= (pred_front > 0) & (pred_back > 0)
    out = {}
    for side, pd, gt in (("front", pred_front, gt_front), ("back", pred_back, gt_back)):
        err = (pd - gt)[inner] * cm_per_d if inner.any() else np.zeros(1)
        out[f"depth_{side}_cm"] = float(np.abs(err).mean())
        out[f"depth_{side}_signed_cm"] = float(err.mean())
    return out


def evaluate_item(
    predictor: Predictor,
    data_path: Path,
    item: str,
    yaw: int,
    variants: list[str],
    trim_quantile: float,
    work: Path,
    depth_source: str = "pred",
) -> dict[str, dict[str, float]]:
    """Metrics of every variant for one item's view (see the module docstring)."""
    bgra, keypoints = view_input(data_path, "ANNY", item, yaw)
    rgba = bgra[:, :, [2, 1, 0, 3]]
    fg = bgra[:, :, 3] > 0
    files = view_files(data_path, "ANNY", item, yaw)
    front_png = cv2.imread(str(files.depth_front), cv2.IMREAD_UNCHANGED)
    back_png = cv2.imread(str(files.depth_back), cv2.IMREAD_UNCHANGED)
    if back_png is None:
        raise FileNotFoundError(f"{files.depth_back}: missing or unreadable")
    gt_front, gt_back = png_to_depth_units(front_png), png_to_depth_units(back_png)
    transform = scan_ground_truth(data_path, "ANNY", item)[3]
    cm_per_d = DEPTH_UNIT / DEPTH_F * transform.scale / transform.post_scale * 100.0
    results = {}
    for variant in variants:
        mode, side, trim = parse_variant(variant)
        predictor.depth_mask = mode
        pred = predictor.predict(rgba, keypoints, source=item)
        metrics = map_metrics(
            pred.depth_front,
            (pred.normal_front, pred.normal_back),
            pred.depth_back,
            gt_front,
            gt_back,
            cm_per_d,
        )
        metrics["missing"] = float((fg & (pred.depth_front <= 0)).sum() / fg.sum())
        metrics.update(
            interior_depth_errors(pred.depth_front, pred.depth_back, gt_front, gt_back, cm_per_d)
        )
        front, back = swap_depth(depth_source, pred, gt_front, gt_back, mode)
        points, colors = colored_point_cloud(
            front.astype(np.float32), back.astype(np.float32), pred.image, side
        )
        options = PoissonOptions(density_quantile=trim_quantile if trim else 0.0)
        mesh = reconstruct(points, colors, None, options)
        path = work / f"{item}_{variant}.obj"
        write_mesh(path, mesh)
        mesh_metrics, _ = evaluate_against_scan(path, data_path, item, yaw)
        metrics.update({k: mesh_metrics[k] for k in MESH_KEYS}, flipped=float(mesh.flipped))
        results[variant] = metrics
    return results


def summarise(per_item: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of every scalar metric per variant."""
    variants = next(iter(per_item.values())).keys()
    out = {}
    for v in variants:
        rows = [per_item[item][v] for item in per_item]
        out[v] = {
            k: float(np.mean([r[k] for r in rows]))
            for k in rows[0]
            if not isinstance(rows[0][k], list)
        }
        for k in ("color_front", "color_back", "gt_color_front", "gt_color_back"):
            out[v][k] = np.mean([r[k] for r in rows], axis=0).round(3).tolist()
    return out


def format_table(summary: dict[str, dict[str, float]]) -> str:
    head = ["variant", "normal F / B deg", "depth F / B cm", "missing %", "Chamfer", "P2S", "S2P"]
    head += ["NC", "F@1cm"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v, m in summary.items():
        cells = [
            v,
            f"{m['normal_front_deg']:.1f} / {m['normal_back_deg']:.1f}",
            f"{m['depth_front_cm']:.1f} / {m['depth_back_cm']:.1f}",
            f"{100 * m['missing']:.1f}",
            *(f"{m[k]:.2f}" for k in ("chamfer", "p2s", "s2p")),
            f"{m['normal_consistency']:.3f}",
            f"{m['fscore']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help="phase-2 weights")
    p.add_argument("--data_path", type=Path, required=True, help="rendered ANNY data set root")
    p.add_argument("--items", nargs="*", help="items (default: every item under obj/ANNY)")
    p.add_argument("--yaw", type=int, default=0, help="view yaw of the input")
    p.add_argument("--variants", nargs="+", default=["order", "meet"], help="mode[+side][+trim]")
    p.add_argument(
        "--depth_source",
        choices=DEPTH_SOURCES,
        default="pred",
        help="depth to mesh: the prediction, the GT, GT on one side, or the coarse depth",
    )
    p.add_argument("--trim_quantile", type=float, default=0.02, help="density quantile of +trim")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", type=Path, help="JSON file for every figure")
    return p


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    for v in args.variants:
        parse_variant(v)
    items = args.items or sorted(p.name for p in (args.data_path / "obj" / "ANNY").iterdir())
    predictor = Predictor(args.checkpoint)
    per_item = {}
    with tempfile.TemporaryDirectory() as work:
        for item in items:
            per_item[item] = evaluate_item(
                predictor, args.data_path, item, args.yaw, args.variants, args.trim_quantile,
                Path(work), args.depth_source,
            )  # fmt: skip
            first = per_item[item][args.variants[0]]
            print(
                f"{item}: normal F/B {first['normal_front_deg']:.1f}/{first['normal_back_deg']:.1f}"
                f" depth F/B {first['depth_front_cm']:.1f}/{first['depth_back_cm']:.1f} cm"
                + "".join(
                    f" | {v}: C {m['chamfer']:.2f} P2S {m['p2s']:.2f} S2P {m['s2p']:.2f}"
                    f" miss {100 * m['missing']:.1f}%"
                    for v, m in per_item[item].items()
                ),
                flush=True,
            )
    summary = summarise(per_item)
    print(
        f"\n{len(items)} items, checkpoint {args.checkpoint}, yaw {args.yaw}, "
        f"meshed depth: {args.depth_source}"
    )
    print(cpu_line(args.threads))
    print(format_table(summary))
    m = summary[args.variants[0]]
    print(
        f"mean encoded normal colour on the body, front pred {m['color_front']} GT "
        f"{m['gt_color_front']}, back pred {m['color_back']} GT {m['gt_color_back']}; interior "
        f"roughness pred / GT: front {m['roughness_front_cm']:.3f} / "
        f"{m['gt_roughness_front_cm']:.3f} cm, back {m['roughness_back_cm']:.3f} / "
        f"{m['gt_roughness_back_cm']:.3f} cm"
    )
    if args.out:
        args.out.write_text(json.dumps({"per_item": per_item, "mean": summary}, indent=1))


if __name__ == "__main__":
    main(get_parser().parse_args())
