"""Paint procedural background images to composite behind training renders.

Run from the repository root as a module::

    python -m render.make_backgrounds --out data/backgrounds --num 200 --size 1024 --seed 0
    python train.py ... --backgrounds data/backgrounds

The authors composite indoor photographs (IndoorCVPR09) that we may not ship; these are rooms,
walls, studio backdrops and outdoor scenes painted from shapes and noise
(``render.synthetic.backgrounds``), ``bg_<index:05d>.jpg``, each a pure function of
``(--seed, index, --size)``. Files already there are kept, so an interrupted run resumes. A failed
image is one line ``FAILED <file>: <problem>`` (``--debug``: with its traceback), the others are
written, the failures are listed again at the end and the exit status is 1.

``--size`` is the long side (4:3 images). ``background_crop`` enlarges a background by
``max(2 res / 2048, res / short side)``: 1024 gives 0.67x at res 512, 1.33x at 1024 and 2.67x
at 2048; 1366 gives the authors' factor (2 res / 2048) at every resolution.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from render.pipeline import positive_int
from render.synthetic.backgrounds import write_backgrounds
from utils.batch import add_debug_argument, exit_on_failures


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("data/backgrounds"), help="output folder")
    p.add_argument("--num", type=positive_int, default=200, help="number of images")
    p.add_argument("--size", type=positive_int, default=1024, help="long side in pixels")
    p.add_argument("--seed", type=int, default=0, help="seed of the set")
    add_debug_argument(p)
    return p


def main(args: argparse.Namespace) -> None:
    """Write the images that are not there yet, print how many, list the failures (exit 1)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    failures: list[tuple[str, str]] = []
    try:
        written = write_backgrounds(
            args.out, args.num, args.size, args.seed, failures, debug=args.debug
        )
    except (ValueError, OSError) as e:  # whole-run errors: size, output folder
        raise SystemExit(f"error: {e}") from e
    print(f"wrote {len(written)} new of {args.num} backgrounds in {args.out}")
    exit_on_failures(line for _, line in failures)


if __name__ == "__main__":
    main(get_parser().parse_args())
