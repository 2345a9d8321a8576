"""Project 3D joints to the 31 training keypoints of every rendered view (PERS/keypoint/...).

Run from the repository root after ``render.render`` (same ``--res`` and ``--yaws``), as a module
or as a file (``python render/render_keypoint.py ...``; see ``render/render.py``)::

    python -m render.render_keypoint --data_path data/synthetic --data_name ANNY --res 512

    # THuman2, filling invisible joints from the SMPL-X fits (licensed model files)
    python -m render.render_keypoint --data_path /data/2k2k --data_name THuman2 \\
        --smpl_model_path /models/smplx

    # the authors' keypoint scale and finger joints, to reproduce their training data
    python -m render.render_keypoint --data_path /data/2k2k --data_name RP --keypoint_scale 1.037

    # keypoints from OpenPose run on the SHADED renders (<dir>/<view>/<item>_front_keypoints.json)
    python -m render.render_keypoint --data_path /data/2k2k --data_name 2K2K \\
        --source openpose --openpose_dir /data/openpose_out

Items whose keypoint files exist are skipped. An item that fails, whatever the reason, is one line
``FAILED <file or item>: <problem>`` (``--debug``: with its traceback), nothing is written under its
name, and the batch goes on; the failures are listed again at the end and the exit status is 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

if __name__ == "__main__" and __spec__ is None:  # run as a file, not with -m: start again as -m
    os.execv(sys.executable, [sys.executable, "-m", "render.render_keypoint", *sys.argv[1:]])

from render.keypoints3d import AUTHORS_KEYPOINT_SCALE, FINGER_ROWS, keypoint_dataset  # noqa: E402 (after the re-execution above)
from render.pipeline import add_dataset_arguments, selected_items  # noqa: E402 (after the re-execution above)
from utils.batch import add_debug_argument, exit_on_failures  # noqa: E402 (after the re-execution above)
from utils.scans import RenderInputError  # noqa: E402 (after the re-execution above)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_arguments(p)
    p.add_argument(
        "--source",
        choices=("joints", "openpose"),
        default="joints",
        help="3D joints (Joint3D/, kp3ds.json) or OpenPose JSONs of the renders",
    )
    p.add_argument("--openpose_dir", help="OpenPose JSON folder for --source openpose")
    p.add_argument(
        "--finger",
        choices=tuple(FINGER_ROWS),
        default="mcp",
        help="finger joints of the COCO-WholeBody layout: mcp (authors) or pip (as OpenPose)",
    )
    p.add_argument(
        "--keypoint_scale",
        type=float,
        default=1.0,
        help=f"scale of the 3D joints before projection (authors: {AUTHORS_KEYPOINT_SCALE})",
    )
    p.add_argument("--smpl_model_path", help="SMPL-X model folder (THuman2 joint filling)")
    add_debug_argument(p)
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.source == "openpose" and args.openpose_dir is None:
        raise SystemExit("--source openpose needs --openpose_dir")
    try:
        items = selected_items(args)
    except RenderInputError as e:
        raise SystemExit(f"error: {e}") from e
    report = keypoint_dataset(
        args.data_path,
        args.data_name,
        items,
        yaws=args.yaws,
        res=args.res,
        source=args.source,
        openpose_dir=args.openpose_dir,
        finger=args.finger,
        keypoint_scale=args.keypoint_scale,
        smplx_model_path=args.smpl_model_path,
        mesh_format=args.mesh_format,
        overwrite=args.overwrite,
        debug=args.debug,
    )
    print(
        f"keypoints written for {len(report.rendered)} items, {len(report.complete)} complete, "
        f"failed {len(report.failed)}"
    )
    exit_on_failures(report.failed.values())  # each line names its file or item


if __name__ == "__main__":
    main(get_parser().parse_args())
