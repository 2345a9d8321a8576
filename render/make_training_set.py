"""Build a synthetic training set: anny humans, renders, keypoints, train and val lists.

Run from the repository root as a module::

    python -m render.make_training_set --data_path data/synthetic --num 8 --res 512

This runs ``make_synthetic``, ``render`` and ``render_keypoint`` for the ``ANNY`` data set and
splits ``list/ANNY_all.txt`` by item (the last ``--val_items`` items are validation). Whatever is
already on disk is skipped, so an interrupted build resumes. A human that fails at any step is one
line ``FAILED <file or item>: <problem>`` (``--debug``: with its traceback) and is left out of the
lists; the others are built, the failures are listed again at the end and the exit status is 1.
Headless OpenGL: set ``PYOPENGL_PLATFORM`` (``osmesa`` default, ``egl`` on GPU hosts).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from render.layout import DEFAULT_YAWS
from render.pipeline import positive_int
from render.synthetic.human import CLOTHES
from render.training_set import build_synthetic_training_set
from utils.batch import add_debug_argument, exit_on_failures, print_failures


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_path", type=Path, required=True, help="dataset root")
    p.add_argument("--num", type=positive_int, default=8, help="number of humans")
    p.add_argument("--res", type=positive_int, default=512, help="image side in pixels")
    p.add_argument("--yaws", type=int, nargs="+", default=list(DEFAULT_YAWS), help="view yaws")
    p.add_argument("--seed", type=int, default=0, help="seed of the humans and render lights")
    p.add_argument("--val_items", type=int, default=1, help="items (all views) for validation")
    p.add_argument(
        "--clothes",
        choices=CLOTHES,
        default="geometry",
        help="garments with their own surfaces, or painted on the body (the demo weights' data)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes (one core each; the files do not depend on it)",
    )
    add_debug_argument(p)
    return p


def main(args: argparse.Namespace) -> None:
    """Build the set, print the two list files and the failed humans (exit status 1 if any)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    failures: list[tuple[str, str]] = []
    try:
        train, val = build_synthetic_training_set(
            args.data_path,
            num=args.num,
            res=args.res,
            yaws=args.yaws,
            seed=args.seed,
            val_items=args.val_items,
            failures=failures,
            debug=args.debug,
            clothes=args.clothes,
            workers=args.workers,
        )
    except (ValueError, OSError) as e:  # whole-run errors (RenderInputError included)
        print_failures(line for _, line in failures)
        raise SystemExit(f"error: {e}") from e
    for path in (train, val):
        print(f"wrote {path} ({len(path.read_text().splitlines())} lines)")
    exit_on_failures(line for _, line in failures)  # each line names its file or item


if __name__ == "__main__":
    main(get_parser().parse_args())
