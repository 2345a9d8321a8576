"""Seconds per training step and peak memory, phase 1 and phase 2, each in its own process.

One step = forward, the authors' loss, backward and an Adam step, at batch size ``--batch``, on a
synthetic target (a sphere-like depth pair and the embedded case's part matrices), after
``--warmup`` untimed steps. Peak memory is the process's peak RSS on CPU and
``torch.cuda.max_memory_allocated`` on CUDA.

Usage:
    python -m bench.bench_train --res 512
    python -m bench.bench_train --res 2048 --steps 2 --warmup 1
    python -m bench.bench_train --res 2048 --device cuda --amp
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from bench.common import fixture_theta, peak_rss_gb
from models import build_model
from models.losses import Loss2K2K

CONFIGS = ("phase1", "phase2")


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
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    phase = 1 if config == "phase1" else 2
    model = build_model(phase=phase, res=args.res, width=args.width).to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = Loss2K2K(phase)
    batch = synthetic_batch(args.res, args.batch, device)
    use_amp = args.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            outputs = model(batch["image"], batch["theta"])
        outputs = {k: v.float() if torch.is_tensor(v) else v for k, v in outputs.items()}
        loss = loss_fn(outputs, batch, model.geometry)["total"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else peak_rss_gb()
    return {"config": config, "seconds": min(times), "peak_gb": peak, "loss": float(loss.detach())}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=512)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=2, help="batch size (paper: 2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps (the best is reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--amp", action="store_true", help="float16 autocast (CUDA)")
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    rows = []
    for config in args.configs:
        cmd = [sys.executable, "-m", "bench.bench_train", "--child", config]
        for key in ("res", "width", "batch", "steps", "warmup", "threads", "device"):
            cmd += [f"--{key}", str(getattr(args, key))]
        cmd += ["--amp"] if args.amp else []
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"training step, res {args.res}, width {args.width}, batch {args.batch}, "
        f"{args.device}{' amp' if args.amp else ''}, {args.threads} threads"
    )
    print("{:8s} {:>12s} {:>10s} {:>10s}".format("config", "s / step", "peak [GB]", "loss"))
    for r in rows:
        print(f"{r['config']:8s} {r['seconds']:12.2f} {r['peak_gb']:10.2f} {r['loss']:10.4f}")


if __name__ == "__main__":
    main(get_parser().parse_args())
