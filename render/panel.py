"""A PNG panel of one rendered view: SHADED input, NOSHADING, front/back depth, keypoints.

Run from the repository root after ``render.render`` and ``render.render_keypoint``::

    python -m render.panel --data_path data/synthetic --data_name ANNY --item anny_0000 \\
        --yaws -30 0 30 --out outputs/render_panel.png
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from render.keypoints3d import keypoint_overlay
from render.layout import view_files
from utils.camera import png_to_range
from utils.fileio import write_image

TILE_TITLES = ("SHADED (input)", "NOSHADING", "depth front", "depth back", "keypoints")


def depth_bgr(png: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """[H, W] uint16 depth PNG -> [H, W, 3] uint8 BGR colour map over ranges [lo, hi]."""
    r = png_to_range(png)
    v = np.clip((r - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    out = cv2.applyColorMap((255 * (1.0 - v)).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    out[png == 0] = 0
    return out


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise FileNotFoundError(f"{path}: missing or unreadable (render this view first)")
    return image


def view_panel(
    data_path: str | Path, data_name: str, item: str, yaws: Sequence[int], tile: int = 384
) -> np.ndarray:
    """One row per yaw of the five tiles in :data:`TILE_TITLES`.

    Returns:
        [len(yaws) * tile, 5 * tile, 3] uint8 BGR.
    """
    rows = []
    for yaw in yaws:
        files = view_files(data_path, data_name, item, yaw)
        front = _read(files.depth_front, cv2.IMREAD_UNCHANGED)
        back = _read(files.depth_back, cv2.IMREAD_UNCHANGED)
        fg = png_to_range(np.concatenate((front[front > 0], back[back > 0])))
        lo, hi = (float(fg.min()), float(fg.max())) if fg.size else (0.0, 1.0)
        images = [
            _read(files.shaded, cv2.IMREAD_COLOR),
            _read(files.noshading_front, cv2.IMREAD_COLOR),
            depth_bgr(front, lo, hi),
            depth_bgr(back, lo, hi),
        ]
        small = [cv2.resize(im, (tile, tile), interpolation=cv2.INTER_AREA) for im in images]
        keypoints = np.zeros((31, 3), np.float32)
        if files.keypoint.is_file():
            keypoints = np.load(files.keypoint)
            keypoints[:, :2] *= tile / front.shape[0]
        small.append(keypoint_overlay(small[1], keypoints))
        for title, image in zip(TILE_TITLES, small, strict=True):
            cv2.putText(
                image,
                f"{title}, yaw {yaw}",
                (6, 20),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
        rows.append(np.concatenate(small, axis=1))
    return np.concatenate(rows, axis=0)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_path", required=True)
    p.add_argument("--data_name", required=True)
    p.add_argument("--item", required=True)
    p.add_argument("--yaws", type=int, nargs="+", default=[0])
    p.add_argument("--tile", type=int, default=384, help="tile side in pixels")
    p.add_argument("--out", required=True, help="output PNG")
    return p


def main(args: argparse.Namespace) -> None:
    panel = view_panel(args.data_path, args.data_name, args.item, args.yaws, args.tile)
    write_image(args.out, panel)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(get_parser().parse_args())
