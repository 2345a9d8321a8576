"""Convolution throughput of this CPU (or GPU) per precision: the floor under the model's time.

Times the convolution shapes of the 2K2K networks (a refinement tile is 264² at 2048) in float32
and under bf16 and fp16 autocast, channels_last, best of ``--repeat`` after a warm-up, and prints
GFLOP/s (2 x multiply-adds) under the CPU line (:func:`bench.common.cpu_line`).

Usage:
    python -m bench.conv_rate
    python -m bench.conv_rate --size 512 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bench.common import cpu_line
from models.precision import autocast

SHAPES = ((6, 32, 3), (64, 32, 3), (64, 64, 3), (128, 64, 3), (6, 64, 3), (64, 64, 1), (64, 3, 1))
"""(C_in, C_out, kernel) of the networks' convolutions."""
RATE_PRECISIONS = ("fp32", "bf16", "fp16")
"""The columns: float32 and the two autocast types of ``--precision``."""


def gflops(c_in: int, c_out: int, k: int, args: argparse.Namespace, precision: str) -> float:
    """GFLOP/s of one [1, c_in, size, size] -> [1, c_out, size, size] convolution."""
    device = torch.device(args.device)
    fmt = torch.channels_last
    x = torch.randn(1, c_in, args.size, args.size, device=device).contiguous(memory_format=fmt)
    w = torch.randn(c_out, c_in, k, k, device=device).contiguous(memory_format=fmt)
    b = torch.randn(c_out, device=device)
    best = float("inf")
    with torch.no_grad(), autocast(device, precision):
        for i in range(args.repeat + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            F.conv2d(x, w, b, padding=k // 2)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                best = min(best, time.perf_counter() - start)
    return 2 * c_in * c_out * k * k * args.size**2 / best / 1e9


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--size", type=int, default=264, help="image side (a refinement tile: 264)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--repeat", type=int, default=5, help="timed runs (the best is reported)")
    p.add_argument("--device", default="cpu")
    return p


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    print(f"conv2d at {args.size}², {args.device}, {args.threads} threads: GFLOP/s")
    print(cpu_line(args.threads))
    print(f"{'C_in -> C_out, k':<18}" + "".join(f" {p:>8}" for p in RATE_PRECISIONS))
    for c_in, c_out, k in SHAPES:
        rates = [gflops(c_in, c_out, k, args, p) for p in RATE_PRECISIONS]
        print(f"{f'{c_in} -> {c_out}, {k}x{k}':<18}" + "".join(f" {r:8.1f}" for r in rates))


if __name__ == "__main__":
    main(get_parser().parse_args())
