"""Data-loading throughput of the training set (``ReconDataset`` with its augmentation) and the
rate a multi-GPU node needs.

Measures samples/s in-process (one worker's work, no IPC) and through a ``DataLoader`` as
``train.py`` builds it (``collate_skip_none``, batch ``--batch``) with 1 and 2 worker processes,
each after ``--warmup`` untimed samples or batches, plus the validation set (no augmentation) as a
baseline, and splits one sample's time into its stages (PNG decode, keypoints -> part matrices,
jitter, background, compositing, boundary softening, tensors). CPU s/sample counts every process
(workers and the main one), so it stays meaningful when other jobs share the CPU.

Phase 1 and phase 2 train on the same samples (``ReconDataset`` takes no phase), so one
measurement serves both. Without ``--data_path`` it renders 2 synthetic humans x 2 yaws at
``--res`` into ``--out`` (about 15 s at 2048, reused by later runs) and writes 1280x1024 JPEG
backgrounds (the authors' list keeps indoor images of >= 1024 px).

The node requirement is ``gpus x batch / gpu_step_s``; the default step time is the fastest
2048², batch-2 training step ``bench/gpu_check.sh`` measured on an H200 (0.18 s: phase 1 in bf16;
tf32 0.19 s, strict fp32 0.27 s, phase 2 0.35-0.49 s), so the default is the demanding case.

Usage:
    python -m bench.bench_data                      # 2048, renders its own data
    python -m bench.bench_data --res 512 --samples 24
    python -m bench.bench_data --data_path data/synthetic --res 512 --list list/train.txt
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from bench.common import cpu_line
from datasets import ReconDataset, collate_skip_none, find_backgrounds
from render.training_set import build_synthetic_training_set

BENCH_YAWS = (0, 30)
BACKGROUND_SIZE = (1280, 1024)  # (width, height)
GPU_STEP_S = 0.18
"""Fastest training step at 2048², batch 2, measured on one H200 (``bench/gpu_check.sh``)."""


def make_backgrounds(folder: Path, count: int = 4, seed: int = 0) -> list[Path]:
    """``count`` smooth-noise JPEG backgrounds of :data:`BACKGROUND_SIZE` (kept if present)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"bg_{i}.jpg"
        if not path.is_file():
            noise = rng.integers(0, 256, (*BACKGROUND_SIZE[::-1], 3), dtype=np.uint8)
            cv2.imwrite(
                str(path), cv2.GaussianBlur(noise, (0, 0), 3), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
        paths.append(path)
    return paths


def prepare_data(args: argparse.Namespace) -> tuple[Path, Path, list[Path]]:
    """(data root, training list, backgrounds): the given ones, or rendered into ``--out``."""
    out = Path(args.out)
    if args.data_path:
        root = Path(args.data_path)
        train_list = root / args.list
    else:
        root = out / f"anny_{args.res}"
        train_list, _ = build_synthetic_training_set(
            root, num=2, res=args.res, yaws=BENCH_YAWS, val_items=0, progress=False
        )
    if args.backgrounds:
        backgrounds = find_backgrounds(args.backgrounds)
    else:
        backgrounds = make_backgrounds(out / "backgrounds")
    return root, train_list, backgrounds


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (DataLoader workers)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def order(count: int, size: int) -> list[int]:
    """``count`` dataset indices cycling over ``size`` samples."""
    return [i % size for i in range(count)]


def in_process(ds: ReconDataset, samples: int, warmup: int) -> dict[str, float]:
    """Samples/s and CPU s/sample of ``ds[i]`` in this process, after ``warmup`` samples."""
    for i in order(warmup, len(ds)):
        ds[i]
    wall, cpu = time.perf_counter(), cpu_seconds()
    for i in order(samples, len(ds)):
        ds[i]
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"samples": samples, "wall_s": wall, "rate": samples / wall, "cpu_s": cpu / samples}


def through_loader(
    ds: ReconDataset, workers: int, batch: int, samples: int, warmup: int
) -> dict[str, float]:
    """Samples/s through a ``DataLoader`` with ``workers`` processes, timed from the arrival of
    the first batch after ``warmup`` batches (worker start-up excluded) to the last; CPU s/sample
    over the whole run, start-up included, workers and main process together."""
    loader = DataLoader(
        ds,
        batch_size=batch,
        sampler=order((warmup + 1) * batch + samples, len(ds)),
        num_workers=workers,
        collate_fn=collate_skip_none,
    )
    cpu = cpu_seconds()
    count, start = 0, 0.0
    for number, batch_data in enumerate(loader):
        if number == warmup:
            start = time.perf_counter()
        elif number > warmup:
            count += len(batch_data["index"])
    wall = time.perf_counter() - start  # the ended iterator has joined its workers: CPU counted
    total = (warmup + 1) * batch + samples
    return {
        "samples": count,
        "wall_s": wall,
        "rate": count / wall,
        "cpu_s": (cpu_seconds() - cpu) / total,
    }


class StageTimer:
    """Accumulates wall seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def stage_breakdown(ds: ReconDataset, samples: int) -> tuple[dict[str, float], bool]:
    """Mean seconds per sample of each stage of :meth:`ReconDataset.load` over ``samples``
    samples (after one untimed), and whether every timed sample equals ``ds[i]`` bit for bit."""
    ds.load(0, StageTimer())
    timer, equal = StageTimer(), True
    for i in order(samples, len(ds)):
        timed, direct = ds.load(i, timer), ds[i]
        equal &= all(torch.equal(v, direct[k]) for k, v in timed.items() if torch.is_tensor(v))
    return {k: v / samples for k, v in timer.seconds.items()}, equal


def node_requirement(
    gpus: int, batch: int, step_s: float, worker_rate: float, cpu_s: float, cores: int
) -> dict[str, float | bool]:
    """Samples/s a node needs, the workers per GPU that gives at ``worker_rate`` samples/s per
    worker, the cores that takes at ``cpu_s`` CPU s/sample plus one per training process, and
    whether ``cores`` suffice."""
    required = gpus * batch / step_s
    per_gpu = math.ceil(required / worker_rate / gpus)
    cores_needed = required * cpu_s + gpus
    return {
        "required": required,
        "workers_per_gpu": per_gpu,
        "cores_needed": cores_needed,
        "reached": gpus * (per_gpu + 1) <= cores and cores_needed <= cores,
    }


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    root, train_list, backgrounds = prepare_data(args)
    common = {"res": args.res, "seed": 0, "backgrounds": backgrounds}
    train = ReconDataset(root, train_list, train=True, **common)
    val = ReconDataset(root, train_list, train=False, **common)
    print(
        f"{len(train)} views of {root} at {args.res}², {len(backgrounds)} backgrounds "
        f"(p = {train.background_prob}); {args.samples} timed samples per row, cv2 threads "
        f"{cv2.getNumThreads()}, files in the page cache (disk reads not measured)"
    )
    print(cpu_line(args.threads))
    rows: list[tuple[str, dict[str, float]]] = [
        ("in-process, validation (no augmentation; baseline)", in_process(val, args.samples, 2)),
        ("in-process, training (one worker's work, no IPC)", in_process(train, args.samples, 2)),
    ]
    loader_rates = {}
    for workers in args.workers:
        result = through_loader(train, workers, args.batch, args.samples, args.warmup)
        loader_rates[workers] = result
        rows.append((f"DataLoader, {workers} worker(s), batch {args.batch}", result))
    print("\nThroughput (phase 1 and phase 2 read the same samples):\n")
    print_table(
        ("configuration", "samples", "wall s", "samples/s", "CPU s/sample, all processes"),
        [
            (name, str(r["samples"]), f"{r['wall_s']:.2f}", f"{r['rate']:.2f}", f"{r['cpu_s']:.3f}")
            for name, r in rows
        ],
    )
    stages, equal = stage_breakdown(train, args.stage_samples)
    total = sum(stages.values())
    print(
        f"\nStages of one training sample (mean of {args.stage_samples}; timed sample equals "
        f"ds[i] bit for bit: {'yes' if equal else 'NO'}):\n"
    )
    print_table(
        ("stage", "ms/sample", "share"),
        [(k, f"{1e3 * v:.1f}", f"{100 * v / total:.0f} %") for k, v in stages.items()]
        + [("total", f"{1e3 * total:.1f}", "100 %")],
    )
    decode = sum(v for k, v in stages.items() if k.startswith("decode"))
    print(
        f"\nPNG decode {100 * decode / total:.0f} %, keypoints -> part matrices "
        f"{100 * stages['keypoints -> part matrices'] / total:.1f} %, the rest (augmentation, "
        f"conversion) {100 * (total - decode - stages['keypoints -> part matrices']) / total:.0f} %"
    )
    one = loader_rates.get(1) or next(iter(loader_rates.values()))
    step_s = args.gpu_step_s
    need = node_requirement(
        args.gpus, args.batch, step_s, one["rate"], one["cpu_s"], args.node_cores
    )
    print(
        f"\n{args.gpus}-GPU node: {args.gpus} GPUs x batch {args.batch} / {step_s} s per "
        f"step = {need['required']:.1f} samples/s needed.\n"
        f"At {one['rate']:.2f} samples/s per DataLoader worker that is {need['workers_per_gpu']} "
        f"workers per GPU ({args.gpus * need['workers_per_gpu']} in all); "
        f"at {one['cpu_s']:.3f} CPU s/sample about {need['cores_needed']:.0f} cores with the "
        f"{args.gpus} training processes.\nA {args.node_cores}-core node "
        f"{'reaches' if need['reached'] else 'does NOT reach'} it (per-core speed of this CPU; "
        f"train.py --workers sets the workers per GPU)."
    )


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=2048, help="image side (2048; 512 for quick runs)")
    p.add_argument("--data_path", help="rendered data root to use instead of rendering")
    p.add_argument("--list", default="list/train.txt", help="list file relative to --data_path")
    p.add_argument("--backgrounds", help="background folder or list (default: generated JPEGs)")
    p.add_argument("--out", default="outputs/bench_data", help="where generated data goes")
    p.add_argument("--samples", type=int, default=16, help="timed samples per configuration")
    p.add_argument("--stage_samples", type=int, default=4, help="samples of the stage breakdown")
    p.add_argument("--warmup", type=int, default=1, help="untimed DataLoader batches")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DataLoader workers")
    p.add_argument("--batch", type=int, default=2, help="batch size per GPU")
    p.add_argument("--gpus", type=int, default=4, help="GPUs of the node to feed")
    p.add_argument(
        "--gpu_step_s",
        type=float,
        default=GPU_STEP_S,
        help="seconds per training step per GPU (default: the fastest measured at 2048², "
        "batch 2, on an H200)",
    )
    p.add_argument("--node_cores", type=int, default=32, help="CPU cores of that node")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    return p


if __name__ == "__main__":
    main(get_parser().parse_args())
