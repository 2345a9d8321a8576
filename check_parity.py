"""Run the 2K2K model on a parity case and compare with the authors' reference outputs.

The default case is the embedded synthetic render (``tests/fixtures/case_syn``, CC0); the model gets
the fixture's deterministic recipe weights (not trained weights), so the outputs show that this
implementation computes the authors' function, not a reconstruction. Writes a PNG panel and the
report to ``--out``.

    python check_parity.py                       # embedded case, ~20 s on 2 CPU cores
    python check_parity.py --case ../shared/spec/parity/case_000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from models.parity import build_recipe_model, case_inputs, compare_case
from utils.visualize import depth_rgb8, grid, label, to_rgb8, write_png

DEFAULT_CASE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "tests", "fixtures", "case_syn"
)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    case = Path(args.case)
    image, theta = case_inputs(case)
    model = build_recipe_model()
    start = time.perf_counter()
    with torch.no_grad():
        out = model(image, theta)
    seconds = time.perf_counter() - start
    arrays = {k: v.contiguous().numpy() for k, v in out.items() if v is not None}
    reports = compare_case(arrays, case)
    text = "\n".join(str(r) for r in reports if not r.ok or args.verbose) or "all checks ok"
    ok = all(r.ok for r in reports)
    summary = (
        f"case {args.case}: forward {seconds:.1f} s on {args.threads} threads; "
        f"parity {'PASSED' if ok else 'FAILED'} ({sum(r.ok for r in reports)}/{len(reports)})"
    )
    print(text)
    print(summary)

    os.makedirs(args.out, exist_ok=True)
    s = args.tile
    tiles = [
        label(to_rgb8(image[0], -1, 1, s), "input"),
        label(to_rgb8(out["pred_normal_front"][0], 0, 1.5, s), "merged normal front"),
        label(to_rgb8(out["pred_normal_back"][0], 0, 1.5, s), "merged normal back"),
        label(to_rgb8(out["occupancy"], 0, 1, s), "blend occupancy"),
        label(to_rgb8(out["pred_down_normal_front"][0], 0, 1.5, s), "coarse normal front"),
        label(depth_rgb8(out["pred_down_depth_back"][0], s), "coarse depth back"),
        label(depth_rgb8(out["pred_depth_front"][0], s), "refined depth front"),
        label(depth_rgb8(out["pred_depth_back"][0], s), "refined depth back"),
    ]
    write_png(os.path.join(args.out, "parity_panel.png"), grid(tiles, 4))
    with open(os.path.join(args.out, "parity_report.txt"), "w") as f:
        f.write(text + "\n" + summary + "\n")
    print(f"wrote {args.out}/parity_panel.png and parity_report.txt")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--case", default=DEFAULT_CASE, help="parity case folder")
    p.add_argument("--out", default="outputs/parity", help="output folder for panel and report")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--tile", type=int, default=384, help="panel tile size in pixels")
    p.add_argument("--verbose", action="store_true", help="print every check, not only failures")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
