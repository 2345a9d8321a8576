"""Shared pieces of the benchmarks: fixture inputs, peak memory, one process per configuration."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np
import torch

THETA_FIXTURE = os.path.join(
    os.path.dirname(__file__), "..", "tests", "fixtures", "case_syn", "theta.npy"
)


def fixture_theta() -> torch.Tensor:
    """[1, 12, 2, 3] part matrices of the embedded synthetic case. They are in normalised
    coordinates, so they place the parts sensibly at any resolution."""
    return torch.from_numpy(np.load(THETA_FIXTURE))[None]


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def base_parser(doc: str | None, configs: tuple[str, ...]) -> argparse.ArgumentParser:
    """``--res``, ``--threads``, ``--configs`` and the hidden ``--child`` of every benchmark."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--res", type=int, default=2048, help="working resolution (multiple of 64)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument(
        "--configs",
        nargs="+",
        choices=configs,
        default=list(configs),
        help="configurations to measure, each in its own process",
    )
    p.add_argument("--child", choices=configs, help=argparse.SUPPRESS)
    return p


def run_children(module: str, args: argparse.Namespace, extra: list[str]) -> list[dict]:
    """Run ``python -m module --child CONFIG ...`` once per configuration (so each has its own
    peak RSS) and collect the JSON line each prints last."""
    rows = []
    for config in args.configs:
        cmd = [sys.executable, "-m", module, "--child", config, "--res", str(args.res)]
        cmd += ["--threads", str(args.threads), *extra]
        # stderr is inherited, so a failing configuration shows its traceback
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows
