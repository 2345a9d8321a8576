"""Where do the training keypoints land with the authors' 1.037 joint scale and without it?

Generates a few open synthetic humans, renders their front depth at every yaw, projects their
joints with ``keypoint_scale`` 1.0 and 1.037 (facts sheet §8 item 4) and counts the keypoints that
miss the rendered body; also the shift between the two at 2048². This is the measurement behind
the README's choice of 1.0.

Usage:
    python -m bench.keypoint_scale --num 3 --res 1024
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from render.keypoints3d import AUTHORS_KEYPOINT_SCALE, load_joints, project_keypoints
from render.layout import DEFAULT_YAWS, view_files
from render.pipeline import RenderOptions, ScanRenderer
from render.synthetic.human import generate
from utils.camera import REFERENCE_RES, view_rotation
from utils.scans import scan_transform

SCALES = (1.0, AUTHORS_KEYPOINT_SCALE)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--num", type=int, default=3, help="synthetic humans")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--res", type=int, default=1024, help="render resolution for the silhouettes")
    return p


def main(args: argparse.Namespace) -> None:
    off = dict.fromkeys(SCALES, 0)
    shifts, total = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = generate(root, args.num, seed=args.seed)
        renderer = ScanRenderer(root, "ANNY", RenderOptions(res=args.res, supersample=1))
        for item in items:
            renderer.render_item(item)
            transform, facing = scan_transform(root, "ANNY", item)
            points, visible = load_joints(root, "ANNY", item)
            for yaw in DEFAULT_YAWS:
                depth = cv2.imread(str(view_files(root, "ANNY", item, yaw).depth_front), -1)
                rotation = view_rotation(yaw, facing)
                kp = {
                    s: project_keypoints(points, visible, transform, rotation, args.res, s)
                    for s in SCALES
                }
                for s, k in kp.items():
                    col = np.clip(k[visible, 0].astype(int), 0, args.res - 1)
                    row = np.clip(k[visible, 1].astype(int), 0, args.res - 1)
                    off[s] += int((depth[row, col] == 0).sum())
                shift = np.linalg.norm(kp[SCALES[1]][:, :2] - kp[SCALES[0]][:, :2], axis=1)
                shifts.append(shift[visible] * REFERENCE_RES / args.res)
                total += int(visible.sum())
        renderer.close()
    shifts_all = np.concatenate(shifts)
    print(f"{len(items)} humans x {len(DEFAULT_YAWS)} yaws, {total} keypoints, res {args.res}")
    for s in SCALES:
        print(f"keypoint_scale {s}: {off[s]} of {total} off the rendered body")
    print(
        f"shift {SCALES[1]} vs {SCALES[0]} at {REFERENCE_RES}²: mean {shifts_all.mean():.1f} px, "
        f"max {shifts_all.max():.1f} px"
    )


if __name__ == "__main__":
    main(get_parser().parse_args())
