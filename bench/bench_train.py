"""Seconds per training step and peak memory per phase, precision and checkpointing, each
configuration in its own process.

One step = forward, the authors' loss, backward and an Adam step, at batch size ``--batch``, on a
synthetic target (a body-sized ellipsoid's depth pair and the embedded case's part matrices),
after ``--warmup`` untimed steps. A configuration is ``p<phase>-<precision>[-ckpt]``: ``ckpt``
recomputes the activations of every trained network in the backward pass
(``train.py --checkpointing parts coarse refine``). The plain float32 configuration of each phase
is the baseline of its rows. Peak memory is the process's peak RSS on CPU (model, optimizer and
the interpreter included) and ``torch.cuda.max_memory_allocated`` on CUDA.

Usage:
    python -m bench.bench_train --res 512
    python -m bench.bench_train --res 1024 --configs p1-fp32 p1-bf16-ckpt p2-fp32 p2-bf16-ckpt
    python -m bench.bench_train --res 2048 --device cuda --precisions fp32 bf16 fp16
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time

import torch

from bench.common import cpu_line, fixture_theta, peak_rss_gb
from models import build_model
from models.losses import Loss2K2K
from models.model_2k2k import CHECKPOINT_GROUPS
from models.precision import PRECISIONS, tf32_mode
from training.distributed import DistInfo
from training.loop import train_step


def config_names(precisions: list[str]) -> list[str]:
    """Every ``p<phase>-<precision>[-ckpt]`` for the given precisions, phase 1 first."""
    return [
        f"p{phase}-{precision}{suffix}"
        for phase, precision, suffix in itertools.product((1, 2), precisions, ("", "-ckpt"))
    ]


def parse_config(config: str) -> tuple[int, str, bool]:
    """``"p2-bf16-ckpt"`` -> (2, "bf16", True)."""
    phase, precision, *rest = config.split("-")
    if phase not in ("p1", "p2") or precision not in PRECISIONS or rest not in ([], ["ckpt"]):
        raise ValueError(f"bad configuration {config!r}: p<1|2>-<{'|'.join(PRECISIONS)}>[-ckpt]")
    return int(phase[1]), precision, bool(rest)


def synthetic_batch(res: int, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A body-sized ellipsoid: front/back depth in D units (background 0), image, theta."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, res), torch.linspace(-1, 1, res), indexing="ij")
    r2 = (x / 0.3) ** 2 + (y / 0.8) ** 2
    thick = 0.4 * torch.sqrt((1 - r2).clamp_min(0))
    inside = r2 < 1
    front = torch.where(inside, 2.0 - thick, torch.zeros_like(r2))[None, None]
    back = torch.where(inside, 2.0 + thick, torch.zeros_like(r2))[None, None]
    g = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 3, res, res, generator=g) * 2 - 1
    out = {
        "image": image,
        "depth_front": front.expand(batch, -1, -1, -1).contiguous(),
        "depth_back": back.expand(batch, -1, -1, -1).contiguous(),
        "theta": fixture_theta().expand(batch, -1, -1, -1).contiguous(),
    }
    return {k: v.to(device) for k, v in out.items()}


def measure(config: str, args: argparse.Namespace) -> dict:
    """Time ``args.steps`` training steps of one configuration (this process only): the model as
    ``train.py`` sets it up and its :func:`training.loop.train_step`."""
    phase, precision, ckpt = parse_config(config)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = DistInfo(rank=0, local_rank=0, world_size=1, device=device)
    torch.manual_seed(0)  # the same initial weights in every configuration
    model = build_model(phase=phase, res=args.res, width=args.width)
    model.set_checkpointing(list(CHECKPOINT_GROUPS) if ckpt else [])
    model.freeze_for_phase()
    model.to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = Loss2K2K(phase)
    batch = {**synthetic_batch(args.res, args.batch, device), "path": ["synthetic"] * args.batch}
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    times = []
    with tf32_mode(precision):
        for i in range(args.warmup + args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            values = train_step(model, batch, loss_fn, optimizer, scaler, precision, info, config)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else peak_rss_gb()
    return {"config": config, "seconds": min(times), "peak_gb": peak, "loss": values["total"]}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=512)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=2, help="batch size (paper: 2)")
    p.add_argument("--steps", type=int, default=2, help="timed steps (the best is reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--precisions",
        nargs="+",
        choices=tuple(PRECISIONS),
        default=["fp32", "bf16"],
        help="precisions of the default configuration list",
    )
    p.add_argument("--configs", nargs="+", help="p<1|2>-<precision>[-ckpt] (default: all)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    configs = args.configs or config_names(args.precisions)
    for config in configs:
        parse_config(config)
    rows = []
    for config in configs:
        cmd = [sys.executable, "-m", "bench.bench_train", "--child", config]
        for key in ("res", "width", "batch", "steps", "warmup", "threads", "device"):
            cmd += [f"--{key}", str(getattr(args, key))]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr: tracebacks
        if done.returncode != 0:  # e.g. out of memory: report it, go on, exit 1 at the end
            rows.append({"config": config, "failed": f"exit status {done.returncode}"})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"training step, res {args.res}, width {args.width}, batch {args.batch}, "
        f"{args.device}, {args.threads} threads; peak = "
        + ("max_memory_allocated" if args.device.startswith("cuda") else "process peak RSS")
    )
    print(cpu_line(args.threads))
    print(f"{'config':14s} {'s / step':>9s} {'peak [GB]':>10s} {'vs fp32':>8s} {'loss':>9s}")
    base = {r["config"][:2]: r for r in rows if r["config"].endswith("fp32") and "peak_gb" in r}
    for r in rows:
        if "failed" in r:
            print(f"{r['config']:14s} failed: {r['failed']}")
            continue
        ref = base.get(r["config"][:2])
        ratio = f"{r['peak_gb'] / ref['peak_gb']:7.2f}x" if ref else f"{'':>8s}"
        print(
            f"{r['config']:14s} {r['seconds']:9.2f} {r['peak_gb']:10.2f} {ratio} {r['loss']:9.4f}"
        )
    if any("failed" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main(get_parser().parse_args())
