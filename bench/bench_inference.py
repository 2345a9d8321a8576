"""Phase-2 inference benchmark: wall time and peak RSS of one forward pass (eval, no grad, batch 1).

Each configuration runs in a fresh process so its peak RSS is its own:

* ``lean``: a plain ``build_model(...).eval()`` call with NCHW inputs, as any caller makes it:
  the model runs channels_last in eval by itself, the refinement in tiles;
* ``bf16``: the same under ``torch.autocast(dtype=torch.bfloat16)`` (``--precision bf16``);
* ``baseline``: the same model without the measures (NCHW, refinement in one piece).

Usage:
    python -m bench.bench_inference --res 2048          # target on 2 CPU cores: <= 10 s, <= 2 GB
    python -m bench.bench_inference --res 512 --configs lean
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.common import base_parser, fixture_theta, peak_rss_gb, run_children
from models import build_model
from models.recipe import recipe_state_dict

CONFIGS = ("lean", "bf16", "baseline")


def measure(config: str, res: int, threads: int, repeat: int) -> dict:
    """Build the model, run ``repeat`` forwards, return best/first wall time and peak RSS."""
    torch.set_num_threads(threads)
    model = build_model(phase=2, res=res)
    model.load_state_dict(recipe_state_dict(model))
    if config == "baseline":
        model.eval_channels_last = False
        model.refine.tile_pixels = 0
    model.eval()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=config == "bf16")
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, res, res, generator=g) * 2 - 1
    theta = fixture_theta()
    times = []
    with torch.no_grad():
        for _ in range(repeat):
            start = time.perf_counter()
            with autocast:
                out = model(image, theta)
            times.append(time.perf_counter() - start)
            assert torch.isfinite(out["pred_depth_front"]).all()
            del out
    return {
        "config": config,
        "res": res,
        "threads": threads,
        "first_s": times[0],
        "best_s": min(times),
        "peak_rss_gb": peak_rss_gb(),
    }


def main(args: argparse.Namespace) -> None:
    if args.child:
        print(json.dumps(measure(args.child, args.res, args.threads, args.repeat)))
        return
    rows = run_children("bench.bench_inference", args, ["--repeat", str(args.repeat)])
    print(
        f"phase-2 forward, batch 1, res {args.res}, {args.threads} threads, "
        f"{args.repeat} run(s), torch {torch.__version__}"
    )
    print(f"{'config':10s} {'first [s]':>10s} {'best [s]':>10s} {'peak RSS [GB]':>14s}")
    for r in rows:
        print(
            f"{r['config']:10s} {r['first_s']:10.2f} {r['best_s']:10.2f} {r['peak_rss_gb']:14.2f}"
        )
    lean = next((r for r in rows if r["config"] == "lean"), None)
    base = next((r for r in rows if r["config"] == "baseline"), None)
    for fast in rows:
        if base and fast is not base:
            print(
                f"{fast['config']} vs baseline: {base['best_s'] / fast['best_s']:.2f}x faster, "
                f"{base['peak_rss_gb'] / fast['peak_rss_gb']:.2f}x less memory"
            )
    if lean and args.res == 2048:
        ok_t, ok_m = lean["best_s"] <= 10.0, lean["peak_rss_gb"] <= 2.0
        print(
            f"target (2 cores, 2048): <= 10 s {'met' if ok_t else 'NOT met'}, "
            f"<= 2 GB {'met' if ok_m else 'NOT met'}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = base_parser(__doc__, CONFIGS)
    p.add_argument("--repeat", type=int, default=2, help="forward passes per configuration")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
