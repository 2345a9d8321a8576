"""2K2K in the browser: upload a photo, get its keypoints, normal and depth maps and a 3D mesh.

    python app.py                                   # http://127.0.0.1:7860, the open weights
    python app.py --checkpoint outputs/train/p2/best.pt --server_name 0.0.0.0 --port 8080

Needs the app extra (``bash scripts/setup.sh --app``: Gradio); plain photos (no alpha, no
keypoint file) also need the photo extra (``--photo``) for their mask and keypoints. Runs offline
on the CPU: no analytics, no share link, nothing fetched. Each run's files (the authors' output
layout, ``output_objs/<stem>.obj|.ply|.glb``) go to a new folder under ``--out``; a bad photo is
one line on the page, naming the file and the problem. ``docs/app.md`` has the details.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from inference.app import AppRunner, app_extra_missing, launch
from inference.demo import DEMO_CHECKPOINT
from models import CheckpointError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, default=DEMO_CHECKPOINT, help="phase-2 weights")
    p.add_argument(
        "--server_name",
        default="127.0.0.1",
        help="address to listen on (default: this machine only; 0.0.0.0 for a cluster node)",
    )
    p.add_argument("--port", type=int, default=7860, help="port to listen on")
    p.add_argument("--out", type=Path, default=Path("outputs/app"), help="folder of the runs")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
    missing = app_extra_missing()
    if missing:
        raise SystemExit(f"error: {missing}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        runner = AppRunner(args.checkpoint, args.out, device=args.device)
    except (CheckpointError, ValueError, OSError) as e:  # weights, device, output folder
        raise SystemExit(f"error: {e}") from e
    try:
        launch(runner, args.server_name, args.port)
    except OSError as e:  # e.g. the port is taken
        raise SystemExit(f"error: {e}") from e
    finally:
        runner.close()


if __name__ == "__main__":
    main(get_parser().parse_args())
