"""The demo on the embedded default: bundled synthetic photos -> 3D meshes, evaluated.

    python demo.py                      # data/demo + checkpoints/open_w025_512.pt -> outputs/demo

Runs the Predictor (depth and normal maps, coloured point clouds), screened Poisson meshing and
the evaluation against the ground-truth scans, prints the table and writes ``panel.png``. Fully
offline: the inputs and the weights ship with the repository (see checkpoints/README.md for what
the open weights are and are not).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from inference.demo import DEMO_CHECKPOINT, DEMO_DATA, format_table, run_demo
from inference.io import InputError
from models import CheckpointError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=DEMO_DATA, help="demo folder (images/, obj/)")
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT, help="phase-2 weights")
    p.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        results = run_demo(args.data, args.checkpoint, args.out, device=args.device)
    except (CheckpointError, InputError) as e:  # missing or unreadable weights or inputs
        raise SystemExit(f"error: {e}") from e
    print(format_table(results))
    print(f"meshes in {args.out / 'output_objs'}, panel {args.out / 'panel.png'}")


if __name__ == "__main__":
    main(get_parser().parse_args())
