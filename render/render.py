"""Render scans into 2K2K's training layout (front/back depth, NOSHADING and SHADED images, lists).

Run from the repository root as a module, or as a file as the authors do (``python
render/render.py ...``, same arguments; see below)::

    # open synthetic humans made by render.make_synthetic, at a small resolution
    python -m render.render --data_path data/synthetic --data_name ANNY --res 512

    # RenderPeople at 2048, as the authors (PERS only), on shard 3 of a 16-way job array
    python -m render.render --data_path /data/2k2k --data_name RP --num_shards 16 --shard_id 3

    # after a job array (shards do not write the list): rebuild list/<DS>_all.txt
    python -m render.render --data_path /data/2k2k --data_name RP --list_only

Views that already exist are skipped (an interrupted run, even one killed, resumes). A scan that
fails, whatever the reason, is one line ``FAILED <file or item>: <problem>`` (``--debug``: with its
traceback), nothing is written under its name, and the batch goes on; the failed scans are listed
again at the end and the exit status is 1. Whole-run errors (arguments, a data set rendered with
other settings, an output folder that cannot be written) stop the run before any scan. Headless
OpenGL: set ``PYOPENGL_PLATFORM`` (``osmesa`` default, ``egl`` on GPU hosts) or pass
``--gl_platform``.

Run as a file, Python puts the script's own folder ``render/`` first on ``sys.path``, where this
file rather than the package answers ``import render`` ("'render' is not a package"). So the file,
run without ``-m``, does one thing: it starts again as ``python -m render.render`` with the same
arguments (``os.execv``, same interpreter), which finds the package from the working directory
(the repository root) or the installed project (``pip install -e .``). No import path is changed.
``render_keypoint.py`` does the same.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

if __name__ == "__main__" and __spec__ is None:  # run as a file, not with -m: start again as -m
    os.execv(sys.executable, [sys.executable, "-m", "render.render", *sys.argv[1:]])

from render.pipeline import (  # noqa: E402 (after the re-execution above)
    RenderOptions,
    ScanRenderer,
    add_dataset_arguments,
    positive_int,
    render_dataset,
    selected_items,
    write_list,
)
from utils.batch import add_debug_argument, exit_on_failures  # noqa: E402 (after the re-execution above)
from utils.scans import RenderInputError  # noqa: E402 (after the re-execution above)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_arguments(p)
    p.add_argument("--ortho", action="store_true", help="also render the ORTH/ counterparts")
    p.add_argument(
        "--supersample",
        type=positive_int,
        help="SHADED anti-aliasing factor (default: 2 under OSMesa, 1 under EGL's 4x MSAA)",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed of the light draws")
    p.add_argument("--list_only", action="store_true", help="only rebuild list/<DS>_all.txt")
    p.add_argument("--gl_platform", choices=("osmesa", "egl"), help="headless OpenGL back end")
    add_debug_argument(p)
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    failed: dict[str, str] = {}
    try:
        if not args.list_only:
            options = RenderOptions(
                res=args.res,
                yaws=tuple(args.yaws),
                ortho=args.ortho,
                supersample=args.supersample,
                seed=args.seed,
                mesh_format=args.mesh_format,
                overwrite=args.overwrite,
            )
            renderer = ScanRenderer(args.data_path, args.data_name, options, args.gl_platform)
            try:
                report = render_dataset(renderer, selected_items(args), debug=args.debug)
            finally:
                renderer.close()
            print(
                f"rendered {len(report.rendered)}, already complete {len(report.complete)}, "
                f"failed {len(report.failed)}"
            )
            failed = report.failed
        if args.num_shards > 1 and not args.list_only:
            print("sharded run: rebuild the list with --list_only once every shard has finished")
        else:
            print(f"wrote {write_list(args.data_path, args.data_name, args.yaws)}")
    except (RenderInputError, OSError) as e:  # whole-run errors: settings, list, output folder
        raise SystemExit(f"error: {e}") from e
    exit_on_failures(failed.values())  # each line names its file or item


if __name__ == "__main__":
    main(get_parser().parse_args())
