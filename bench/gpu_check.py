"""The CUDA checks of ``bench/gpu_check.sh``: parity on the GPU, autocast, timings, EGL, DDP.

Sections (``--sections``, all by default):

* ``parity``: the authors' function at 2048² (recipe weights, embedded case ``case_syn``) on CUDA
  at precision ``fp32`` (TF32 off) and ``tf32`` (PyTorch's default for cuDNN convolutions), each
  against the authors' reference outputs (``models.parity``) and against this machine's CPU
  forward (max |difference|).
* ``forward``: phase-2 forward time at 2048², batch 1 (best of ``--repeat`` after a warm-up, CUDA
  synchronised) and peak ``max_memory_allocated``: fp32, tf32, bf16 and fp16, and fp32 / bf16
  with the refinement net untiled (the CPU tiling is for caches, not a GPU).
* ``egl``: pyrender through EGL (``PYOPENGL_PLATFORM=egl``) renders a sphere at 2048²; its
  silhouette against the analytic disc of the pinhole camera, and seconds per view.
* ``ddp``: with two or more GPUs, two processes (``torch.distributed.run``, NCCL) take one
  phase-1 training step (``training.loop.train_step``, activation checkpointing on) under
  DistributedDataParallel on different data and must end with equal weights; skipped with one
  GPU. Without CUDA it runs on gloo (the same code path).

Usage:
    python -m bench.gpu_check
    python -m bench.gpu_check --sections parity forward --device cuda:1
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import cpu_line
from models import build_model
from models.losses import Loss2K2K
from models.parity import build_recipe_model, case_inputs, compare_case, run_case
from models.precision import autocast
from utils.camera import CAMERA_Z, FOV_DEG

ROOT = Path(__file__).resolve().parents[1]
CASE = ROOT / "tests" / "fixtures" / "case_syn"
SECTIONS = ("parity", "forward", "egl", "ddp")
COMPARED = ("pred_depth_front", "pred_depth_back", "pred_normal_front", "pred_down_depth_front")


def check_parity(device: torch.device) -> bool:
    """CUDA at ``fp32`` and ``tf32`` (``models.precision.autocast`` sets the TF32 switches) vs
    the authors' references and vs the CPU forward; parity is claimed for fp32 only."""
    model = build_recipe_model()
    cpu = run_case(model, CASE)
    model.to(device)
    ok = True
    for precision in ("fp32", "tf32"):
        with autocast(device, precision):
            gpu = run_case(model, CASE)
        reports = compare_case(gpu, CASE)
        passed = sum(r.ok for r in reports)
        diffs = ", ".join(f"{k} {np.abs(gpu[k] - cpu[k]).max():.1e}" for k in COMPARED)
        print(f"parity CUDA {precision}: {passed}/{len(reports)} reference checks pass")
        print(f"  max |CUDA - CPU|: {diffs}")
        if precision == "fp32":
            for r in reports:
                if not r.ok:
                    print(f"  {r}")
            ok = passed == len(reports)
    return ok


def time_forward(device: torch.device, repeat: int) -> None:
    """Phase-2 forward time and peak memory at 2048², per precision (see module docstring)."""
    image, theta = (t.to(device) for t in case_inputs(CASE))
    model = build_recipe_model().to(device)
    print(f"forward 2048², batch 1, {torch.cuda.get_device_name(device)} (best of {repeat})")
    print(f"{'config':<16} {'s':>8} {'peak GB':>8}")
    tile_pixels = model.refine.tile_pixels
    for config, precision, tiles in (
        ("fp32", "fp32", True),
        ("tf32", "tf32", True),
        ("bf16", "bf16", True),
        ("fp16", "fp16", True),
        ("fp32 untiled", "fp32", False),
        ("bf16 untiled", "bf16", False),
    ):
        model.refine.tile_pixels = tile_pixels if tiles else 0
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(repeat + 1):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            with torch.no_grad(), autocast(device, precision):
                model(image, theta)
            torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(device) / 1e9
        print(f"{config:<16} {min(times[1:]):8.3f} {peak:8.2f}")
    model.refine.tile_pixels = tile_pixels


def check_egl(res: int = 2048) -> bool:
    """Render a white sphere (radius 0.3 at the origin) through EGL; compare with the disc."""
    import trimesh

    from render.shading import ShadedRenderer

    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.3)
    sphere.visual.vertex_colors = np.full((len(sphere.vertices), 4), 255, np.uint8)
    start = time.perf_counter()
    renderer = ShadedRenderer(res, platform="egl")
    created = time.perf_counter() - start
    rng = np.random.default_rng(0)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        color = renderer.render(sphere, np.eye(3), rng)
        times.append(time.perf_counter() - start)
    renderer.close()
    focal = res / (2 * math.tan(math.radians(FOV_DEG / 2)))
    radius_px = focal * math.tan(math.asin(0.3 / CAMERA_Z))
    c = (np.arange(res) + 0.5) - res / 2
    disc = (c[None, :] ** 2 + c[:, None] ** 2) <= radius_px**2
    seen = color.max(axis=2) > 0
    iou = float((seen & disc).sum() / max(1, (seen | disc).sum()))
    print(
        f"EGL ({os.environ.get('PYOPENGL_PLATFORM')}): context {created:.2f} s, "
        f"{min(times[1:]):.3f} s / {res}² view, sphere silhouette IoU {iou:.4f} with the disc"
    )
    return iou > 0.99


def ddp_step(res: int = 256) -> None:
    """One phase-1 training step (:func:`training.loop.train_step`, every network checkpointed)
    under DDP in this process, launched by ``torch.distributed.run``; rank 0 prints whether the
    weights are equal on every rank."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from bench.bench_train import synthetic_batch
    from models.model_2k2k import CHECKPOINT_GROUPS
    from training.distributed import init_distributed
    from training.loop import train_step

    info = init_distributed("auto")
    torch.manual_seed(0)
    model = build_model(phase=1, res=res, width=0.25)
    model.set_checkpointing(list(CHECKPOINT_GROUPS))
    model.to(info.device).train()
    cuda = info.device.type == "cuda"
    ddp = DistributedDataParallel(model, device_ids=[info.local_rank] if cuda else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(info.device.type, enabled=False)
    batch = {**synthetic_batch(res, 2, info.device), "path": ["synthetic"] * 2}
    batch["image"] = batch["image"] + 0.1 * info.rank  # different data per rank
    start = time.perf_counter()
    train_step(ddp, batch, Loss2K2K(1), optimizer, scaler, "fp32", info, "gpu_check ddp")
    if cuda:
        torch.cuda.synchronize(info.device)
    seconds = time.perf_counter() - start
    # BatchNorm statistics are per rank until DDP broadcasts rank 0's at the next forward
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    checksum = checksum.reshape(1)
    sums = [torch.zeros_like(checksum) for _ in range(info.world_size)]
    dist.all_gather(sums, checksum)
    if info.is_main:
        values = [float(v) for v in sums]
        same = all(v == values[0] for v in values)
        print(
            f"DDP {dist.get_backend()} x{info.world_size}: step {seconds:.2f} s (checkpointed), "
            f"weights equal on every rank: {same} ({values[0]:.6f})"
        )
    dist.destroy_process_group()


def check_ddp() -> bool:
    """Two processes, NCCL, when two GPUs are there (gloo without CUDA)."""
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        print(f"DDP: skipped ({torch.cuda.device_count()} GPU; NCCL needs two)")
        return True
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "bench.gpu_check", "--ddp_child"]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(done.stdout.strip())
    return done.returncode == 0 and "equal on every rank: True" in done.stdout


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeat", type=int, default=10, help="timed forwards per configuration")
    p.add_argument("--ddp_child", action="store_true", help=argparse.SUPPRESS)
    return p


def main(args: argparse.Namespace) -> int:
    """Run the sections; returns the exit status (1 if a check failed) for the shell script."""
    if args.ddp_child:
        ddp_step()
        return 0
    device = torch.device(args.device)
    cuda = device.type == "cuda" and torch.cuda.is_available()
    print(cpu_line())
    failed = []
    for section in args.sections:
        if section in ("parity", "forward") and not cuda:
            print(f"{section}: skipped (no CUDA device {args.device})")
            continue
        start = time.perf_counter()
        if section == "parity":
            ok = check_parity(device)
        elif section == "forward":
            time_forward(device, args.repeat)
            ok = True
        elif section == "egl":
            ok = check_egl()
        else:
            ok = check_ddp()
        print(f"[{section}: {'ok' if ok else 'FAILED'}, {time.perf_counter() - start:.0f} s]")
        if not ok:
            failed.append(section)
    print(f"gpu_check: {'all ok' if not failed else 'FAILED: ' + ', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
