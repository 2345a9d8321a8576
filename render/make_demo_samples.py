"""Pack rendered views into the demo's input folder, with their ground truth.

Run from the repository root as a module::

    python -m render.make_demo_samples --data_path data/synthetic --data_name ANNY \
        --items anny_0090 anny_0093 --yaw 0 --out data/demo

For each item the view at ``--yaw`` becomes ``<out>/images/<item>.png`` (the SHADED render as
RGBA, alpha = rendered silhouette, i.e. front depth > 0) and ``<out>/images/<item>_keypoints.npy``
(the ``(31, 3)`` keypoints in its pixels), and the scan is copied to
``<out>/obj/<DS>/<item>/<item>.<ext>`` so that ``evaluate.py --align camera --data_path <out>``
finds the ground truth. The demo bundles the result; this script is its recipe.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from render.layout import view_files
from utils.fileio import write_image, write_npy
from utils.scans import DATASETS, RenderInputError, scan_files


def view_input(
    data_path: Path, data_name: str, item: str, yaw: int
) -> tuple[np.ndarray, np.ndarray]:
    """A rendered view as a demo input: the SHADED render as BGRA with alpha = its silhouette
    (front depth > 0), [res, res, 4] uint8, and its (31, 3) float32 keypoints."""
    files = view_files(data_path, data_name, item, yaw)
    for path in (files.shaded, files.depth_front, files.keypoint):
        if not path.is_file():
            raise RenderInputError(f"{path}: missing (render the view and its keypoints first)")
    bgr = cv2.imread(str(files.shaded), cv2.IMREAD_COLOR)
    depth = cv2.imread(str(files.depth_front), cv2.IMREAD_UNCHANGED)
    if bgr is None or depth is None or depth.shape != bgr.shape[:2]:
        raise RenderInputError(f"{files.shaded}: unreadable, or its depth map has another size")
    alpha = np.where(depth > 0, 255, 0).astype(np.uint8)
    return np.dstack((bgr, alpha)), np.load(files.keypoint).astype(np.float32)


def pack_sample(data_path: Path, data_name: str, item: str, yaw: int, out: Path) -> list[Path]:
    """Write one item's demo input and ground-truth scan; returns the written files."""
    bgra, kp = view_input(data_path, data_name, item, yaw)
    image = out / "images" / f"{item}.png"
    keypoints = out / "images" / f"{item}_keypoints.npy"
    write_image(image, bgra)
    write_npy(keypoints, kp)
    written = [image, keypoints]
    for src in scan_files(data_path, data_name, item):
        if src is None:  # vertex-coloured PLY: no texture
            continue
        dst = out / src.relative_to(data_path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return written


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_path", type=Path, required=True, help="rendered dataset root")
    p.add_argument("--data_name", choices=DATASETS, default="ANNY", help="dataset name")
    p.add_argument("--items", nargs="+", required=True, help="items to pack")
    p.add_argument("--yaw", type=int, default=0, help="view yaw of the input image")
    p.add_argument("--out", type=Path, default=Path("data/demo"), help="demo folder")
    return p


def main(args: argparse.Namespace) -> None:
    for item in args.items:
        try:
            written = pack_sample(args.data_path, args.data_name, item, args.yaw, args.out)
        except RenderInputError as e:
            raise SystemExit(f"error: {e}") from e
        print(f"{item}: " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main(get_parser().parse_args())
