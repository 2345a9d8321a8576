"""Evaluate reconstructed meshes against ground-truth meshes: Chamfer, P2S, S2P, normal
consistency, F-score and normal-image errors, per object and on average.

Examples::

    # predictions and GT already in the same frame, GT in metres (results in cm)
    python evaluate.py --pred outputs/test/output_objs --gt data/gt_meshes --units m

    # in-the-wild: align each prediction to its GT by scale + ICP first (as SiTH)
    python evaluate.py --pred outputs/test/output_objs --gt data/gt_meshes --units m --align icp

    # our renders (known camera): predictions of the yaw-0 view of the rendered synthetic humans,
    # named <item>_front.obj; GT read from the renderer's dataset layout
    python evaluate.py --pred outputs/test/output_objs --pred_suffix _front --align camera \\
        --data_path data/synthetic --data_name ANNY --yaw 0 --units m

Predictions and GT are matched by file stem (``--pred_suffix`` / ``--gt_suffix`` are removed
first; a folder is searched recursively for .obj/.ply/.off/.stl/.glb). Distances are reported in
cm when ``--units`` gives the GT's units, else in the GT's own units. Conventions (sampling,
directions, normal images): ``evaluation/geometry.py`` and ``evaluation/normal_images.py``.
Writes ``--out`` (JSON: settings, per-object metrics, failures, means) and prints a table. An item
that cannot be evaluated, for whatever reason, is reported as one line with its file and the
problem (``--debug`` adds the traceback), the batch goes on, and the exit status is 1 if any
failed. An unwritable ``--out`` or ``--save_normals`` folder stops the run before the first item.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from evaluation.geometry import (
    MeshInputError,
    align_icp,
    load_mesh,
    mesh_metrics,
    render_frame_to_scan,
    scan_ground_truth,
)
from evaluation.normal_images import ICON_YAWS, normal_images, normal_panel
from utils.batch import add_debug_argument, run_item
from utils.fileio import check_writable_dir, write_image, write_json
from utils.scans import DATASETS

log = logging.getLogger("evaluate")

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb")
TO_CM = {"m": 100.0, "cm": 1.0, "mm": 0.1, "none": 1.0}
TABLE = (
    ("chamfer", "Chamfer"),
    ("p2s", "P2S"),
    ("s2p", "S2P"),
    ("normal_consistency", "NC"),
    ("fscore", "F-score"),
    ("normal_angle_deg", "normal deg"),
    ("normal_error_icon", "normal ICON"),
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    io = p.add_argument_group("inputs and output")
    io.add_argument("--pred", required=True, help="predicted mesh file or folder")
    io.add_argument("--gt", help="ground-truth mesh file or folder (--align none|icp)")
    io.add_argument("--pred_suffix", default="", help="removed from prediction stems to match")
    io.add_argument("--gt_suffix", default="", help="removed from GT stems to match")
    io.add_argument(
        "--out", default="outputs/evaluation/metrics.json", help="JSON file written (atomically)"
    )
    io.add_argument("--save_normals", help="folder for a normal-image panel per item (PNG)")
    add_debug_argument(io)
    frame = p.add_argument_group("frames and units")
    frame.add_argument(
        "--align",
        choices=("none", "icp", "camera"),
        default="none",
        help="none: same frame already; icp: scale + ICP of the prediction to the GT; camera: "
        "the prediction is in the render frame of a view of --data_path (inverted exactly)",
    )
    frame.add_argument(
        "--units",
        required=True,
        choices=tuple(TO_CM),
        help="units of the GT coordinates; m, cm or mm report in cm, none in GT units",
    )
    frame.add_argument(
        "--pred_scale",
        type=float,
        default=1.0,
        help="multiply the prediction's coordinates first (1.0367394227574303 undoes the "
        "authors' point-cloud division, facts sheet §7.3)",
    )
    frame.add_argument("--rigid", action="store_true", help="--align icp without scale")
    frame.add_argument("--data_path", help="renderer dataset root (--align camera)")
    frame.add_argument("--data_name", choices=DATASETS, help="dataset name (--align camera)")
    frame.add_argument("--mesh_format", choices=("ply", "obj"), default="ply", help="2K2K meshes")
    frame.add_argument("--yaw", type=float, default=0.0, help="view yaw in degrees (camera)")
    metric = p.add_argument_group("metrics")
    metric.add_argument("--num_samples", type=int, default=100_000, help="samples per surface")
    metric.add_argument(
        "--fscore_threshold",
        type=float,
        help="F-score distance in the reported units (default 1 cm; required with --units none)",
    )
    metric.add_argument("--seed", type=int, default=0, help="sampling seed")
    metric.add_argument("--no_normals", action="store_true", help="skip the normal images")
    metric.add_argument("--normal_res", type=int, default=512, help="normal image side (px)")
    metric.add_argument(
        "--normal_yaws", type=float, nargs="+", default=list(ICON_YAWS), help="view yaws (deg)"
    )
    metric.add_argument("--flat_normals", action="store_true", help="face normals, not smooth")
    return p


def find_meshes(path: Path, suffix: str) -> dict[str, Path]:
    """Item name -> mesh file: one file (its stem) or every mesh under a folder, by stem."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.suffix.lower() in MESH_SUFFIXES)
    else:
        raise SystemExit(f"error: {path}: no such file or folder")
    items: dict[str, Path] = {}
    for f in files:
        name = f.stem[: -len(suffix)] if suffix and f.stem.endswith(suffix) else f.stem
        if name in items:
            raise SystemExit(f"error: item {name!r} matches both {items[name]} and {f}")
        items[name] = f
    return items


def ground_truth(
    args: argparse.Namespace, name: str, gt_files: dict[str, Path]
) -> tuple[np.ndarray, np.ndarray, Path, Callable[[np.ndarray], np.ndarray]]:
    """GT vertices, faces and file of an item, plus the function taking the prediction into
    the GT frame (identity unless ``--align camera``)."""
    if args.align != "camera":
        if name not in gt_files:
            raise MeshInputError(f"no ground-truth mesh named {name!r} under {args.gt}")
        v, f = load_mesh(gt_files[name])
        return v, f, gt_files[name], lambda x: x
    v, f, path, transform, facing = scan_ground_truth(
        args.data_path, args.data_name, name, args.mesh_format
    )
    return v, f, path, lambda x: render_frame_to_scan(x, transform, args.yaw, facing)


def evaluate_item(
    args: argparse.Namespace, name: str, pred: Path, gt_files: dict[str, Path]
) -> dict[str, object]:
    """Metrics of one prediction (a dict of floats, distances in the reported units)."""
    pv, pf = load_mesh(pred)
    gv, gf, gt_path, to_gt_frame = ground_truth(args, name, gt_files)
    pv = to_gt_frame(pv * args.pred_scale)
    row: dict[str, object] = {"pred": str(pred), "gt": str(gt_path)}
    if args.align == "icp":
        pv, matrix = align_icp(pv, pf, gv, gf, with_scale=not args.rigid, seed=args.seed)
        row["icp_matrix"] = matrix.tolist()
    to_cm = TO_CM[args.units]
    pv, gv = pv * to_cm, gv * to_cm
    row.update(mesh_metrics(pv, pf, gv, gf, args.num_samples, args.fscore_threshold, args.seed))
    if not args.no_normals:
        errors, pn, gn = normal_images(
            pv, pf, gv, gf, args.normal_res, tuple(args.normal_yaws), not args.flat_normals
        )
        row.update(errors)
        if args.save_normals:
            panel = normal_panel(pn, gn)
            write_image(Path(args.save_normals) / f"{name}.png", panel[:, :, ::-1].copy())
    return row


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.align == "camera" and not (args.data_path and args.data_name):
        p.error("--align camera needs --data_path and --data_name")
    if args.align != "camera" and not args.gt:
        p.error(f"--align {args.align} needs --gt")
    if args.fscore_threshold is None:
        if args.units == "none":
            p.error("--units none needs --fscore_threshold (in the GT's units)")
        args.fscore_threshold = 1.0  # cm
    if args.num_samples < 1 or args.normal_res < 1 or not args.fscore_threshold > 0:
        p.error("--num_samples, --normal_res and --fscore_threshold must be positive")


def print_table(rows: dict[str, dict], means: dict[str, float], unit: str) -> None:
    keys = [k for k, _ in TABLE if k in means]
    width = max([len(n) for n in rows] + [6])
    print(f"distances in {unit}; NC, F-score in [0, 1]; normal deg = mean angle on covered pixels")
    print(f"{'item':<{width}} " + " ".join(f"{h:>11}" for k, h in TABLE if k in keys))
    for name, row in [*rows.items(), ("mean", means)]:
        print(f"{name:<{width}} " + " ".join(f"{row[k]:>11.4f}" for k in keys))


def json_ready(x: object) -> object:
    """NaN -> None (strict JSON), recursively."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items()}
    return x


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    preds = find_meshes(Path(args.pred), args.pred_suffix)
    gt_files = find_meshes(Path(args.gt), args.gt_suffix) if args.align != "camera" else {}
    if not preds:
        raise SystemExit(f"error: {args.pred}: no mesh files ({', '.join(MESH_SUFFIXES)})")
    if Path(args.pred).is_file() and args.gt and Path(args.gt).is_file():
        gt_files = {next(iter(preds)): Path(args.gt)}  # two files: compared whatever their names
    try:
        for folder in (Path(args.out).parent, args.save_normals):
            if folder is not None:
                check_writable_dir(folder)
    except OSError as e:
        raise SystemExit(f"error: {e}") from e
    rows: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for name, pred in preds.items():
        failures: list[tuple[str, str]] = []
        work = partial(evaluate_item, args, name, pred, gt_files)
        row = run_item(pred, work, failures, args.debug, log)
        if row is None:
            failed[name] = failures[0][1]
        else:
            rows[name] = row
    metric_keys = [k for k, v in next(iter(rows.values()), {}).items() if isinstance(v, float)]
    means = {k: float(np.nanmean([r[k] for r in rows.values()])) for k in metric_keys}
    unit = "cm" if args.units != "none" else "GT units"
    write_json(
        args.out,
        json_ready(
            {
                "settings": vars(args),
                "distance_unit": unit,
                "num_evaluated": len(rows),
                "mean": means,
                "items": rows,
                "failed": failed,
            }
        ),
    )
    if rows:
        print_table(rows, means, unit)
    unmatched = sorted(set(gt_files) - set(preds))
    if unmatched:
        print(f"{len(unmatched)} ground-truth meshes have no prediction (not evaluated)")
    print(f"{len(rows)} evaluated, {len(failed)} failed; wrote {args.out}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    parser = get_parser()
    arguments = parser.parse_args()
    check_args(parser, arguments)
    main(arguments)
