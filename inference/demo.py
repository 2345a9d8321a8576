"""The demo: bundled synthetic photos -> maps, point clouds, meshes, evaluation and a panel.

Everything it reads ships with the repository (``data/demo``: CC0 synthetic humans rendered by
``render/`` with their ground-truth scans; ``checkpoints/open_w025_512.pt``: the open weights, a
small model trained by ``train.py`` on other synthetic humans, in painted clothes and then in
garments with geometry), so it runs offline on a fresh clone.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from evaluation.geometry import load_mesh, mesh_metrics, render_frame_to_scan, scan_ground_truth
from evaluation.normal_images import normal_images
from inference.batch import InputReader
from inference.io import image_stem, list_images, write_files
from inference.panel import mesh_normal_tile
from inference.predictor import OutputOptions, Prediction, Predictor, prediction_files
from meshing.batch import mesh_file
from meshing.poisson import PoissonOptions
from utils.fileio import write_json
from utils.visualize import depth_rgb8, grid, label, normal_rgb8, write_png

log = logging.getLogger(__name__)

DEMO_DATA = Path("data/demo")
DEMO_CHECKPOINT = Path("checkpoints/open_w025_512.pt")
DATA_NAME = "ANNY"
VIEW_YAW = 0
TILE = 256
PANEL_YAWS = (0.0, 90.0)
TABLE = (
    ("chamfer", "Chamfer cm"),
    ("p2s", "P2S cm"),
    ("s2p", "S2P cm"),
    ("normal_consistency", "NC"),
    ("fscore", "F@1cm"),
    ("normal_angle_deg", "normal deg"),
)


@dataclass
class DemoItem:
    """One demo image: its prediction, mesh file and evaluation."""

    stem: str
    prediction: Prediction
    mesh: Path
    metrics: dict[str, float]
    views: tuple[np.ndarray, np.ndarray]  # predicted / GT normal images [N, TILE, TILE, 3]


def evaluate_against_scan(
    mesh: Path, data_dir: Path, stem: str, yaw: int = VIEW_YAW
) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """Metrics (cm) of a reconstruction of the view at ``yaw`` against its scan (metres), and
    the predicted and GT normal images at :data:`PANEL_YAWS` framed on the GT."""
    pv, pf = load_mesh(mesh)
    gv, gf, _, transform, facing = scan_ground_truth(data_dir, DATA_NAME, stem)
    pv = render_frame_to_scan(pv, transform, yaw, facing) * 100.0  # metres -> cm
    gv = gv * 100.0
    metrics = mesh_metrics(pv, pf, gv, gf, num_samples=100_000, fscore_threshold=1.0)
    errors, pn, gn = normal_images(pv, pf, gv, gf, res=TILE, yaws_deg=PANEL_YAWS)
    metrics.update(errors)
    return metrics, (pn, gn)


def panel_row(item: DemoItem) -> list[np.ndarray]:
    """Input, predicted front/back normals, front depth, the mesh from the front and the side,
    and the ground truth from the side: seven [TILE, TILE, 3] tiles."""
    pred = item.prediction
    fg = pred.foreground[:, :, None].astype(bool)
    rgb = np.where(fg, pred.image, 255).astype(np.uint8)
    pn, gn = item.views
    front, back = (torch.from_numpy(n) for n in pred.silhouette_normals())  # as in normal/
    return [
        label(cv2.resize(rgb, (TILE, TILE), interpolation=cv2.INTER_AREA), item.stem),
        label(normal_rgb8(front, "front", TILE), "normal front"),
        label(normal_rgb8(back, "back", TILE), "normal back"),
        label(depth_rgb8(torch.from_numpy(pred.depth_front)[None], TILE), "depth front"),
        label(mesh_normal_tile(pn[0]), "mesh, front"),
        label(mesh_normal_tile(pn[1]), "mesh, side"),
        label(mesh_normal_tile(gn[1]), "ground truth, side"),
    ]


def run_demo(
    data_dir: Path = DEMO_DATA,
    checkpoint: Path = DEMO_CHECKPOINT,
    out_dir: Path = Path("outputs/demo"),
    poisson: PoissonOptions | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Run the whole path on every image of ``data_dir/images``; returns metrics per image.

    Writes the authors' output layout under ``out_dir`` (depth, normal, cons, images,
    output_plys, output_plys_c), ``output_objs/<stem>.obj``, ``summary.json`` and
    ``panel.png``.
    """
    start = time.perf_counter()
    predictor = Predictor(checkpoint, device=device)
    options = OutputOptions(normal_parts=False)
    items: list[DemoItem] = []
    reader = InputReader()
    for path in list_images(data_dir / "images"):
        stem = image_stem(path)
        item = reader.read(path)
        pred = predictor.predict(item.image, item.keypoints, item.mask, source=os.fspath(path))
        write_files(out_dir, prediction_files(pred, stem, options))
        mesh = out_dir / "output_objs" / f"{stem}.obj"
        stats = mesh_file(
            out_dir / "output_plys" / f"{stem}.ply", mesh, poisson or PoissonOptions()
        )
        metrics, views = evaluate_against_scan(mesh, data_dir, stem)
        metrics.update(forward_s=pred.seconds, poisson_s=stats["seconds"])
        items.append(DemoItem(stem, pred, mesh, metrics, views))
        log.info("%s: %s", stem, {k: round(v, 3) for k, v in metrics.items()})
    if not items:
        raise FileNotFoundError(f"{data_dir / 'images'}: no demo images")
    results = {item.stem: item.metrics for item in items}
    write_summary(out_dir / "summary.json", results)
    write_png(str(out_dir / "panel.png"), grid([t for i in items for t in panel_row(i)], 7))
    log.info("demo done in %.1f s", time.perf_counter() - start)
    return results


def format_table(results: dict[str, dict[str, float]]) -> str:
    """The evaluation as a text table, one row per image and the mean."""
    header = f"{'image':<12}" + "".join(f"{name:>12}" for _, name in TABLE)
    rows = [header]
    for stem, m in [*results.items(), ("mean", _mean(results))]:
        rows.append(f"{stem:<12}" + "".join(f"{m[key]:>12.3f}" for key, _ in TABLE))
    return "\n".join(rows)


def _mean(results: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = {k for m in results.values() for k in m}
    return {k: float(np.nanmean([m[k] for m in results.values() if k in m])) for k in keys}


def write_summary(path: Path, results: dict[str, dict[str, float]]) -> None:
    write_json(path, {"per_image": results, "mean": _mean(results)})


__all__ = ["DEMO_CHECKPOINT", "DEMO_DATA", "format_table", "run_demo", "write_summary"]
