"""Shared pieces of the benchmarks: fixture inputs, peak memory, one process per configuration,
the CPU line every benchmark prints beside its figures."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import numpy as np
import torch

from models.precision import cpu_facts, probe_slowdown

MM_PER_D = 570.0
"""Millimetres per depth unit at a person's size (the demo people's mean), for reporting."""
THETA_FIXTURE = os.path.join(
    os.path.dirname(__file__), "..", "tests", "fixtures", "case_syn", "theta.npy"
)


def fixture_theta() -> torch.Tensor:
    """[1, 12, 2, 3] part matrices of the embedded synthetic case. They are in normalised
    coordinates, so they place the parts sensibly at any resolution."""
    return torch.from_numpy(np.load(THETA_FIXTURE))[None]


def cpu_line(threads: int | None = None) -> str:
    """``"CPU: <name>, <capability>, <bf16 / fp16 flags>; probe vs fp32: bf16 0.26x, fp16 1.81x;
    2 threads"``: what the figures beside it were measured on (:func:`models.precision.cpu_facts`,
    :func:`models.precision.probe_slowdown`); ``threads`` default torch's current number."""
    probe = ", ".join(f"{p} {probe_slowdown(p):.2f}x" for p in ("bf16", "fp16"))
    threads = torch.get_num_threads() if threads is None else threads
    return f"CPU: {cpu_facts().summary()}; probe vs fp32: {probe}; {threads} threads"


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


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (0 when both are empty)."""
    return float((a & b).sum() / max(1, (a | b).sum()))


def prediction_difference(a: object, b: object) -> dict[str, float]:
    """How far two :class:`inference.Prediction` of one image are apart: silhouette IoU (front
    depth > 0), and on the pixels where both have a front and a back depth the depth difference
    (median, p99; mm at :data:`MM_PER_D`) and the merged-normal angle (mean, p99; degrees), per
    side (keys ``depth_front_median_mm``, ``normal_back_p99_deg`` ...)."""
    sa, sb = a.depth_front > 0, b.depth_front > 0
    both = sa & sb & (a.depth_back > 0) & (b.depth_back > 0)
    out = {"silhouette_iou": iou(sa, sb)}
    for side in ("front", "back"):
        d = np.abs(getattr(a, f"depth_{side}") - getattr(b, f"depth_{side}"))[both] * MM_PER_D
        out[f"depth_{side}_median_mm"] = float(np.median(d))
        out[f"depth_{side}_p99_mm"] = float(np.percentile(d, 99))
        na, nb = getattr(a, f"normal_{side}"), getattr(b, f"normal_{side}")
        norm = np.maximum(np.linalg.norm(na, axis=0) * np.linalg.norm(nb, axis=0), 1e-8)
        angle = np.degrees(np.arccos(np.clip((na * nb).sum(axis=0) / norm, -1.0, 1.0)))[both]
        out[f"normal_{side}_mean_deg"] = float(angle.mean())
        out[f"normal_{side}_p99_deg"] = float(np.percentile(angle, 99))
    return out
