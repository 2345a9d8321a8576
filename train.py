"""Train 2K2K: phase 1 (normal nets + coarse depth), then phase 2 (the refinement net).

Examples (from the repository root)::

    # a small synthetic training set, then both phases on one process (CPU or one GPU)
    python -m render.make_training_set --data_path data/synthetic --num 8 --res 512
    python train.py --phase 1 --data_path data/synthetic --res 512 --width 0.25 \\
        --out_dir outputs/train/p1
    python train.py --phase 2 --data_path data/synthetic --res 512 --width 0.25 \\
        --init_from outputs/train/p1/best.pt --out_dir outputs/train/p2

    # 4 GPUs on one node; several nodes: add --nnodes N --node_rank R --rdzv_endpoint HOST:PORT
    python -m torch.distributed.run --nproc_per_node 4 train.py --phase 1 \\
        --data_path /data/2k2k --train_list list/train.txt --val_list list/val.txt

    # continue a stopped run exactly where it stopped
    python train.py ... --out_dir outputs/train/p1 --resume auto

    # 2048², batch 2 on a 16 GB GPU (README: peak memory per option)
    python train.py --phase 1 ... --checkpointing parts coarse refine
    python train.py --phase 2 ... --precision bf16 --checkpointing refine

Defaults follow the paper and the authors' answers: Adam at 1e-4, their cosine warm-restart
schedule, 30 epochs, batch size 2 per process, the authors' losses and weights.
"""

from __future__ import annotations

import argparse
import logging

import torch

from datasets import worker_error_message
from models.model_2k2k import CHECKPOINT_GROUPS
from models.precision import PRECISIONS, check_cpu_precision
from training.loop import train
from utils.errors import BadInputError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--phase",
        type=int,
        choices=(1, 2),
        required=True,
        help="1: normal nets + coarse depth; 2: refinement net",
    )
    p.add_argument("--data_path", required=True, help="dataset root (PERS/, list/)")
    p.add_argument("--train_list", default="list/train.txt", help="relative to --data_path")
    p.add_argument("--val_list", default="list/val.txt", help="relative to --data_path; '' = none")
    p.add_argument("--backgrounds", help="folder of background images or the authors' list file")
    p.add_argument(
        "--backgrounds_root",
        help="folder the list's lines are relative to (default <data_path>/IndoorCVPR09 if "
        "present, else <data_path>)",
    )
    p.add_argument("--res", type=int, default=2048, help="working resolution (multiple of 64)")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1 = authors')")
    p.add_argument("--epochs", type=int, default=30, help="paper: 30")
    p.add_argument("--batch_size", type=int, default=2, help="per process")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (Adam)")
    p.add_argument(
        "--init_from",
        help="phase 2: phase-1 checkpoint (ours or the authors'), or a phase-2 one whose "
        "refinement net then trains on; phase 1: weights to continue from (a phase-2 "
        "checkpoint's refinement net is left out)",
    )
    p.add_argument(
        "--refine_from",
        help="phase 2: a phase-2 checkpoint whose refinement net replaces the one of "
        "--init_from (fine-tune a trained refinement net on new phase-1 nets)",
    )
    p.add_argument(
        "--frozen_train_mode",
        action="store_true",
        help="phase 2: keep the frozen nets in train mode as the authors (BatchNorm drifts)",
    )
    p.add_argument(
        "--mask_loss",
        choices=("logits", "double_sigmoid"),
        default="logits",
        help="double_sigmoid = the authors' BCE on sigmoid outputs",
    )
    p.add_argument(
        "--depth_head_init",
        choices=("authors", "origin"),
        default="origin",
        help="origin: depth outputs start at D = 2 (no dead ReLU6 on the body; README); "
        "authors: their He-initialised heads",
    )
    p.add_argument(
        "--normal_head_init",
        choices=("authors", "alive"),
        default="alive",
        help="alive: normal outputs start at 0.5 (no dead ReLU channel on the body; README); "
        "authors: their He-initialised heads",
    )
    p.add_argument(
        "--coarse_normal_grad",
        choices=("all", "normal"),
        default="all",
        help="phase 1: all = the authors' (depth, consistency and mask losses reach the coarse "
        "normal net too); normal = only its own loss trains it (README)",
    )
    p.add_argument(
        "--loss_reduction",
        choices=("sum_items", "mean"),
        default="sum_items",
        help="sum_items = the authors' per-item means summed over batch and crops",
    )
    p.add_argument(
        "--depth_beta",
        type=float,
        default=1.0,
        help="Smooth-L1 beta of the depth losses in D units: 1 = the authors' (quadratic below "
        "57 cm); 0 = L1 (README, 'Depth loss')",
    )
    p.add_argument("--out_dir", default="outputs/train/run", help="checkpoints, logs, tensorboard")
    p.add_argument("--resume", help="checkpoint to continue from, or 'auto' = <out_dir>/last.pt")
    p.add_argument("--save_every", type=int, default=500, help="steps between last.pt saves")
    p.add_argument("--ckpt_every", type=int, default=5, help="epochs between kept checkpoints")
    p.add_argument("--max_steps", type=int, default=0, help="stop after this many steps (0 = off)")
    p.add_argument(
        "--max_minutes",
        type=float,
        default=0.0,
        help="stop after the first step that ends this many minutes after the start (0 = off), "
        "saving last.pt as --max_steps does: a run sized to the time at hand",
    )
    p.add_argument(
        "--validate_first", action="store_true", help="also validate the untrained model"
    )
    p.add_argument(
        "--bad_samples",
        choices=("raise", "skip"),
        default="raise",
        help="a sample that fails to load during training (after the start-up check) stops "
        "training (raise) or is logged and dropped (skip)",
    )
    p.add_argument(
        "--skip_bad_views",
        action="store_true",
        help="at start-up every view of the lists is checked (files present, PNG headers, "
        "keypoints): a bad view stops training before the first step, each named on one line; "
        "with this option they are left out, with a warning and a count",
    )
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--precision",
        choices=tuple(PRECISIONS),
        default="fp32",
        help="fp32 (authors'; strict float32 on CUDA), tf32 (CUDA TF32), or bf16 / fp16 autocast "
        "(fp16 with a gradient scaler); README",
    )
    p.add_argument(
        "--checkpointing",
        nargs="*",
        choices=tuple(CHECKPOINT_GROUPS),
        default=[],
        help="recompute these networks' activations in the backward pass (less memory; same "
        "gradients): parts, coarse, refine",
    )
    p.add_argument("--seed", type=int, default=0, help="model init, shuffling, augmentation")
    p.add_argument(
        "--no_tensorboard", dest="tensorboard", action="store_false", help="no <out_dir>/tb"
    )
    p.add_argument("--no_progress", dest="progress", action="store_false", help="no tqdm bars")
    return p


def main(args: argparse.Namespace) -> None:
    if args.refine_from and args.phase != 2:
        raise SystemExit("error: --refine_from needs --phase 2")
    if args.max_minutes < 0:
        raise SystemExit(f"error: --max_minutes must be >= 0, got {args.max_minutes}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    on_cpu = args.device == "cpu" or not torch.cuda.is_available()  # init_distributed's choice
    check_cpu_precision(args.precision, "cpu" if on_cpu else "cuda", logging.getLogger("train"))
    try:
        metrics = train(args)
    except BadInputError as e:  # a bad view at start-up, a sample or a checkpoint
        raise SystemExit(f"error: {worker_error_message(e)}") from e
    except FileNotFoundError as e:  # --resume (or another named file) that is not there
        raise SystemExit(f"error: {e}") from e
    if metrics:
        print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
    main(get_parser().parse_args())
