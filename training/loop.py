"""The 2K2K training loop: two phases, validation, exact resume, DDP (driven by ``train.py``).

One flat loop (data and the start-up check of every view -> model, optimizer -> resume -> epochs
of steps -> validation and checkpoints). Everything random is a function of the seed: the model
initialisation, the shuffling (``DistributedSampler`` seeded per epoch, also when running alone),
every sample's augmentation (``(seed, epoch, index)``) and the DataLoader workers' seeds (their own
generator per epoch: creating a DataLoader leaves the global random state, which checkpoints save,
untouched), so a run resumed from a checkpoint, mid-epoch, at an epoch's end or under DDP,
continues exactly as if it had never stopped (on CPU; cuDNN may add non-determinism on GPUs).
A log line cut short by a kill is dropped on resume.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from datasets import DatasetError, ReconDataset, collate_skip_none, find_backgrounds
from models import build_model
from models.checkpoint import load_checkpoint
from models.losses import Loss2K2K, LossConfig, coarse_sample, get_normal
from models.model_2k2k import Model2K2K
from models.precision import autocast, tf32_mode
from utils.fileio import atomic_write_bytes, write_text
from utils.visualize import depth_rgb8, grid, label, normal_rgb8, to_rgb8

from .distributed import (
    DistInfo,
    barrier,
    cleanup,
    gather_objects,
    init_distributed,
    reduce_mean,
    reduce_sum,
)
from .metrics import prediction_metrics
from .schedule import cosine_warm_restarts

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
BEST_METRIC = {1: "normal_err_deg", 2: "depth_err_d"}
"""Validation metric that picks ``best.pt``: phase 2 cannot change the (frozen) normals."""
VAL_KEYS = (
    "loss_normal",
    "loss_depth",
    "loss_consistency",
    "loss_mask",
    "loss_total",
    "depth_err_d",
    "depth_err_mm",
    "normal_err_deg",
    "normal_err_front_deg",
    "normal_err_back_deg",
    "part_normal_err_front_deg",
    "part_normal_err_back_deg",
    "mask_iou",
)
RESUME_CRITICAL = ("phase", "res", "width", "batch_size", "seed", "train_list", "data_path")


class NonFiniteLossError(FloatingPointError):
    """A training loss became NaN or infinite; training stops with the step and the samples."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Every global random state a resumed run needs, as tensors and plain types (so that the
    checkpoint loads with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    states = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line (main process only)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def truncate_logs(out_dir: Path, global_step: int, start_epoch: int) -> None:
    """Drop log lines a resumed run will write again: training steps after the checkpoint and
    validations of epochs from ``start_epoch`` on; also a last line that a killed run left
    unfinished (no newline)."""
    for name, keep in (
        ("train_log.jsonl", lambda r: r["global_step"] <= global_step),
        ("val_log.jsonl", lambda r: r["epoch"] < start_epoch),
    ):
        path = out_dir / name
        if path.is_file():
            lines = path.read_text().splitlines(keepends=True)
            if lines and not lines[-1].endswith("\n"):
                lines.pop()  # cut short by a kill while it was written
            kept = [ln for ln in lines if ln.strip() and keep(json.loads(ln))]
            write_text(path, "".join(kept))


def check_resume_args(
    saved: dict, args: argparse.Namespace, world_size: int, info: DistInfo, path: object
) -> None:
    """Refuse to resume with arguments that change the sample order or the schedule position."""
    changed = {k: (saved.get(k), getattr(args, k)) for k in RESUME_CRITICAL}
    changed = {k: v for k, v in changed.items() if v[0] != v[1]}
    if world_size != info.world_size:
        changed["world_size"] = (world_size, info.world_size)
    if changed:
        raise ValueError(f"{path}: cannot resume with other settings (saved, now): {changed}")


def parameter_checksum(model: torch.nn.Module) -> float:
    """Sum of every parameter in float64 (equal on all ranks when DDP keeps them in sync)."""
    return float(sum(p.detach().double().sum() for p in model.parameters()))


def state_digest(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of the state dict, buffers included (equal on all ranks when they
    hold the same model, bit for bit)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_training_checkpoint(path: Path, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename (a killed run never leaves half a file)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getbuffer())


def epoch_batches(sampler: DistributedSampler, epoch: int, batch_size: int) -> list[list[int]]:
    """This process's batches of an epoch (the sampler's order, incomplete last batch dropped)."""
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return [
        indices[i : i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)
    ]


def to_device(batch: dict, device: torch.device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def unwrap(model: torch.nn.Module) -> Model2K2K:
    return model.module if isinstance(model, DistributedDataParallel) else model


def build_datasets(args: argparse.Namespace) -> tuple[ReconDataset, ReconDataset | None]:
    """Training and validation sets; list paths are relative to ``--data_path`` (or absolute)."""
    root = Path(args.data_path)
    backgrounds = None
    if args.backgrounds:
        indoor = root / "IndoorCVPR09"  # the authors' list is relative to this folder (§6.2)
        bg_root = args.backgrounds_root or (indoor if indoor.is_dir() else root)
        backgrounds = find_backgrounds(args.backgrounds, root=bg_root)
    else:
        log.warning("no --backgrounds: every training sample has a black background")
    common = {"res": args.res, "seed": args.seed, "bad_samples": args.bad_samples}
    train = ReconDataset(
        root, root / args.train_list, train=True, backgrounds=backgrounds, **common
    )
    val = None
    if args.val_list:
        val = ReconDataset(root, root / args.val_list, train=False, **common)
    return train, val


def check_views(dataset: ReconDataset, skip: bool, info: DistInfo) -> None:
    """Start-up check of every view of a list (:meth:`ReconDataset.check_view`: files present,
    PNG headers, keypoints), each process checking every ``world_size``-th view: every bad view
    is logged as one line naming its file; then training refuses to start, or with ``skip``
    (``--skip_bad_views``) the bad views are dropped on every process alike, with a count.

    Raises:
        DatasetError: some view is bad and ``skip`` is off (or no view is left).
    """
    mine = dataset.check_views(range(info.rank, len(dataset), info.world_size))
    bad = {i: line for part in gather_objects(mine, info) for i, line in part.items()}
    if not bad:
        return
    if info.is_main:
        for index in sorted(bad):
            log.error("bad view: %s", bad[index])
    summary = f"{dataset.list_file}: {len(bad)} of {len(dataset)} views bad (logged above)"
    if not skip:
        raise DatasetError(f"{summary}; fix them or pass --skip_bad_views to leave them out")
    dataset.drop_views(sorted(bad))
    log.warning("%s; left out (--skip_bad_views): %d views remain", summary, len(dataset))


def views_digest(dataset: ReconDataset) -> str:
    """SHA-256 of the views a run trains on (a resume must see the same ones)."""
    return hashlib.sha256("\n".join(str(f.shaded) for f in dataset.files).encode()).hexdigest()


def init_model(args: argparse.Namespace, info: DistInfo) -> Model2K2K:
    """The phase's model; phase 2 starts from a phase-1 checkpoint (ours or the authors')."""
    model = build_model(
        phase=args.phase,
        res=args.res,
        width=args.width,
        frozen_eval=not args.frozen_train_mode,
        detach_coarse_normals=args.coarse_normal_grad == "normal",
    )
    if args.depth_head_init == "origin":
        model.init_depth_heads_at_origin()
    if args.normal_head_init == "alive":
        model.init_normal_heads_alive()
    if args.init_from:
        # phase 2 starts from phase-1 weights (no refinement net yet); phase 1 may continue from
        # any checkpoint of this model, a phase-2 one included (its refinement net is left out)
        refine = ("refine.",)
        allow, drop = (refine, ()) if args.phase == 2 else ((), refine)
        load_checkpoint(model, args.init_from, allow_missing=allow, drop=drop)
        log.info("initialised from %s", args.init_from)
    elif args.phase == 2:
        log.warning("phase 2 without --init_from: the frozen networks are untrained")
    if args.refine_from:
        # only the refinement net: every other top-level module keeps its --init_from weights
        others = tuple(f"{name}." for name, _ in model.named_children() if name != "refine")
        load_checkpoint(model, args.refine_from, allow_missing=others, drop=others)
        log.info("refinement net from %s", args.refine_from)
    model.set_checkpointing(args.checkpointing)
    model.freeze_for_phase()  # DDP needs the frozen parameters marked
    return model.to(info.device)


def prediction_panel(batch: dict, outputs: dict, phase: int, size: int = 192) -> np.ndarray:
    """[2 * size, 4 * size, 3] uint8 RGB: input, GT/predicted front normals, GT/predicted front
    depth, predicted back normals, GT/predicted mask, of the first sample."""
    gt_f = batch["depth_front"][:1]
    if phase == 1:
        pred_n, pred_nb = outputs["pred_down_normal_front"], outputs["pred_down_normal_back"]
        pred_d, pred_m = outputs["pred_down_depth_front"], outputs["pred_down_depth_mask"]
        gt_f = coarse_sample(gt_f, pred_d.shape[-1])
    else:
        pred_n, pred_nb = outputs["pred_normal_front"], outputs["pred_normal_back"]
        pred_d, pred_m = outputs["pred_depth_front"], outputs["pred_depth_mask"]
    tiles = [
        label(to_rgb8(batch["image"][0], -1, 1, size), "input"),
        label(normal_rgb8(get_normal(gt_f)[0], "front", size), "GT normal"),
        label(normal_rgb8(pred_n[0], "front", size), "normal front"),
        label(normal_rgb8(pred_nb[0], "back", size), "normal back"),
        label(depth_rgb8(gt_f[0], size), "GT depth"),
        label(depth_rgb8(pred_d[0] * (gt_f[0] > 0), size), "depth front (GT mask)"),
        label(to_rgb8((gt_f[0] > 0).float(), 0, 1, size), "GT mask"),
        label(to_rgb8(pred_m[0], 0, 1, size), "mask"),
    ]
    return grid(tiles, 4)


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    loader: DataLoader,
    loss_fn: Loss2K2K,
    phase: int,
    info: DistInfo,
) -> tuple[dict[str, float], np.ndarray | None]:
    """Mean losses and metrics over this process's validation batches, averaged over processes,
    and a panel of the first batch (:func:`prediction_panel`)."""
    model.eval()
    geometry = unwrap(model).geometry
    sums = dict.fromkeys(VAL_KEYS, 0.0)
    count = 0
    panel = None
    for batch in loader:
        if batch is None:
            continue
        batch = to_device(batch, info.device)
        outputs = model(batch["image"], batch["theta"])
        values = {f"loss_{k}": float(v) for k, v in loss_fn(outputs, batch, geometry).items()}
        values.update(prediction_metrics(outputs, batch, phase, geometry))
        if panel is None and info.is_main:
            panel = prediction_panel(batch, outputs, phase)
        for k in VAL_KEYS:
            sums[k] += values[k]
        count += 1
    model.train()
    totals = reduce_sum({**sums, "count": float(count)}, info)
    n = max(totals.pop("count"), 1.0)
    return {k: v / n for k, v in totals.items()}, panel


def _checkpoint_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    world_size: int,
    args: argparse.Namespace,
    epoch: int,
    step_in_epoch: int,
    global_step: int,
    best: float,
    views: str,
) -> dict:
    """Everything ``--resume`` needs to continue exactly (weights_only-loadable); ``views``:
    :func:`views_digest` of the training set."""
    return {
        "version": CHECKPOINT_VERSION,
        "model": unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "world_size": world_size,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "global_step": global_step,
        "best": best,
        "rng": rng_states(),
        "args": json.dumps(vars(args), default=str),
        "views": views,
    }


@dataclass
class Position:
    """Where training stands: the next epoch and step in it, steps done, best validation."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    best: float = math.inf


def resume_position(
    args: argparse.Namespace,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    info: DistInfo,
    views: str,
) -> tuple[Position, Path | str | None]:
    """Load ``--resume`` (``auto``: ``<out_dir>/last.pt`` when present) into the model, optimizer,
    scaler and random states; returns the position to continue from and the file. ``views``:
    :func:`views_digest` of this run's training set, which must be the checkpoint's."""
    out_dir = Path(args.out_dir)
    resume = out_dir / "last.pt" if args.resume == "auto" else args.resume
    found = gather_objects(bool(resume) and Path(resume).is_file(), info)
    if len(set(found)) > 1:
        raise FileNotFoundError(
            f"{resume}: visible to some processes only ({found}); --out_dir must be shared"
        )
    if not found[0]:
        if args.resume not in (None, "auto"):
            raise FileNotFoundError(f"{args.resume}: checkpoint to resume from not found")
        return Position(), resume
    state = torch.load(resume, map_location="cpu", weights_only=True)
    check_resume_args(json.loads(state["args"]), args, state["world_size"], info, resume)
    if state.get("views", views) != views:
        raise ValueError(
            f"{resume}: cannot resume on other training views (a view added, fixed or dropped "
            "since: the sample order would change)"
        )
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if state["scaler"] and scaler.is_enabled():  # fp16 both then and now; else a fresh scaler
        scaler.load_state_dict(state["scaler"])
    pos = Position(state["epoch"], state["step_in_epoch"], state["global_step"], state["best"])
    set_rng_states(state["rng"])
    log.info("resumed from %s at epoch %d step %d", resume, pos.epoch, pos.step)
    if info.is_main:
        truncate_logs(out_dir, pos.global_step, pos.epoch)
    return pos, resume


def validation_loader(
    val_set: ReconDataset | None, args: argparse.Namespace, info: DistInfo
) -> DataLoader | None:
    """This process's share of the validation set, one sample per batch (``None``: no set)."""
    if val_set is None:
        return None
    sampler = DistributedSampler(
        val_set, num_replicas=info.world_size, rank=info.rank, shuffle=False
    )
    return DataLoader(
        val_set,
        batch_size=1,
        sampler=sampler,
        num_workers=args.workers,
        collate_fn=collate_skip_none,
        generator=torch.Generator(),  # its workers' seeds, not drawn from the global generator
    )


def loader_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator an epoch's training DataLoader draws its workers' base seed from: a function
    of (seed, epoch), so that creating a DataLoader leaves the global torch generator (saved in
    checkpoints) as it was, and a resumed epoch's workers get the uninterrupted run's seeds."""
    seed = int(np.random.SeedSequence((seed, epoch)).generate_state(1)[0])
    return torch.Generator().manual_seed(seed)


def train_step(
    model: torch.nn.Module,
    batch: dict,
    loss_fn: Loss2K2K,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: str,
    info: DistInfo,
    where: str,
) -> dict[str, float]:
    """One optimisation step; returns the losses averaged over processes.

    Raises:
        NonFiniteLossError: on every process when any process's loss is not finite (``where``
            and the batch's files go into the message).
    """
    with autocast(info.device, precision):
        outputs = model(batch["image"], batch["theta"])
    outputs = {k: v.float() if torch.is_tensor(v) else v for k, v in outputs.items()}
    losses = loss_fn(outputs, batch, unwrap(model).geometry)
    total = losses["total"]
    finite = reduce_mean({"finite": float(torch.isfinite(total.detach()))}, info)
    if finite["finite"] < 1.0:  # every rank stops together
        raise NonFiniteLossError(
            f"{where}: loss {float(total.detach())} "
            f"({ {k: float(v.detach()) for k, v in losses.items()} }) on {batch['path']}"
        )
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return reduce_mean({k: float(v.detach()) for k, v in losses.items()}, info)


def log_values(writer: object | None, prefix: str, values: dict[str, float], step: int) -> None:
    """TensorBoard scalars ``<prefix>/<key>`` (nothing without a writer)."""
    if writer is not None:
        for k, v in values.items():
            writer.add_scalar(f"{prefix}/{k}", v, step)


def train(args: argparse.Namespace) -> dict[str, float]:
    """Run training as configured by ``train.py``'s arguments; returns the last validation.

    TF32 is allowed for the whole run (forward, backward, checkpoint recomputation, validation)
    only with ``--precision tf32`` (:func:`models.precision.tf32_mode`).
    """
    with tf32_mode(args.precision):
        return _train(args)


def _train(args: argparse.Namespace) -> dict[str, float]:
    info = init_distributed(args.device)
    train_set, val_set = build_datasets(args)
    for dataset in (train_set, val_set):  # before anything is written
        if dataset is not None:
            check_views(dataset, args.skip_bad_views, info)
    views = views_digest(train_set)
    out_dir = Path(args.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "args.json", json.dumps(vars(args), indent=2, default=str))
    seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = init_model(args, info)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr)
    loss_fn = Loss2K2K(
        args.phase,
        LossConfig(
            mask_loss=args.mask_loss, reduction=args.loss_reduction, depth_beta=args.depth_beta
        ),
    )
    sampler = DistributedSampler(
        train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=args.seed
    )
    iters = len(sampler) // args.batch_size
    if iters == 0:
        raise ValueError(
            f"{args.train_list}: {len(train_set)} samples give no full batch of {args.batch_size} "
            f"per process ({info.world_size} processes)"
        )

    if args.bad_samples == "skip" and info.distributed:
        raise ValueError("--bad_samples skip is not supported with several processes (DDP)")
    scaler = torch.amp.GradScaler(info.device.type, enabled=args.precision == "fp16")
    pos, resume = resume_position(args, model, optimizer, scaler, info, views)
    if pos.epoch >= args.epochs:
        log.info("%s: all %d epochs are done; nothing to train", resume, args.epochs)
        cleanup(info)
        return {}

    if info.distributed:
        ids = [info.local_rank] if info.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    model.train()
    writer = None
    if info.is_main and args.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        purge = pos.global_step + 1 if pos.global_step else None  # drop events a resume rewrites
        writer = SummaryWriter(str(out_dir / "tb"), purge_step=purge)
    val_loader = validation_loader(val_set, args, info)
    metrics: dict[str, float] = {}
    if args.validate_first and val_loader is not None and pos.global_step == 0:
        initial, _ = validate(model, val_loader, loss_fn, args.phase, info)
        if info.is_main:
            log.info("validation before training: %s", initial)
            append_jsonl(out_dir / "val_log.jsonl", {"epoch": -1, "global_step": 0, **initial})
    stop = False
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else None
    out_of_time = False
    for epoch in range(pos.epoch, args.epochs):
        train_set.set_epoch(epoch)
        batches = epoch_batches(sampler, epoch, args.batch_size)
        first = pos.step if epoch == pos.epoch else 0
        loader = DataLoader(
            train_set,
            batch_sampler=batches[first:],
            num_workers=args.workers,
            collate_fn=collate_skip_none,
            generator=loader_generator(args.seed, epoch),
        )
        bar = tqdm(
            loader,
            total=len(batches) - first,
            desc=f"phase {args.phase} epoch {epoch}",
            disable=not info.is_main or not args.progress,
        )
        for step, batch in enumerate(bar, start=first):
            if out_of_time or (args.max_steps and pos.global_step >= args.max_steps):
                stop = True
                break
            lr = cosine_warm_restarts(epoch + step / iters, args.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if batch is None:  # only with --bad_samples skip, refused under DDP
                log.warning("epoch %d step %d: every sample of the batch was skipped", epoch, step)
                continue
            batch = to_device(batch, info.device)
            where = f"epoch {epoch} step {step}"
            values = train_step(
                model, batch, loss_fn, optimizer, scaler, args.precision, info, where
            )
            pos.global_step += 1
            if info.is_main:
                record = {"epoch": epoch, "step": step, "global_step": pos.global_step, "lr": lr}
                append_jsonl(out_dir / "train_log.jsonl", {**record, **values})
                bar.set_postfix(loss=f"{values['total']:.4f}", lr=f"{lr:.2e}")
                log_values(writer, "train", {**values, "lr": lr}, pos.global_step)
            if deadline is not None:  # every rank stops after the same step
                late = {"late": float(time.monotonic() >= deadline)}
                out_of_time = reduce_sum(late, info)["late"] > 0
            at_max = out_of_time or (bool(args.max_steps) and pos.global_step >= args.max_steps)
            periodic = bool(args.save_every) and pos.global_step % args.save_every == 0
            if info.is_main and (at_max or periodic):
                # (epoch, iters) resumes straight into this epoch's validation and checkpoints
                at = (epoch, step + 1, pos.global_step, pos.best)
                state = _checkpoint_state(
                    model, optimizer, scaler, info.world_size, args, *at, views
                )
                save_training_checkpoint(out_dir / "last.pt", state)
        if stop:
            break
        if val_loader is not None:
            metrics, panel = validate(model, val_loader, loss_fn, args.phase, info)
            if info.is_main:
                log.info("epoch %d validation: %s", epoch, metrics)
                record = {"epoch": epoch, "global_step": pos.global_step, **metrics}
                append_jsonl(out_dir / "val_log.jsonl", record)
                log_values(writer, "val", metrics, epoch + 1)
                if writer is not None and panel is not None:
                    writer.add_image("val/panel", panel, epoch + 1, dataformats="HWC")
        if info.is_main:
            improved = bool(metrics) and metrics[BEST_METRIC[args.phase]] < pos.best
            if improved:
                pos.best = metrics[BEST_METRIC[args.phase]]
            at = (epoch + 1, 0, pos.global_step, pos.best)
            state = _checkpoint_state(model, optimizer, scaler, info.world_size, args, *at, views)
            save_training_checkpoint(out_dir / "last.pt", state)
            if args.ckpt_every and (epoch + 1) % args.ckpt_every == 0:
                save_training_checkpoint(out_dir / f"epoch_{epoch + 1:03d}.pt", state)
            if improved:
                save_training_checkpoint(out_dir / "best.pt", state)
        barrier(info)
    if writer is not None:
        writer.close()
    checksums = gather_objects(parameter_checksum(unwrap(model)), info)
    digests = gather_objects(state_digest(unwrap(model)), info)
    if info.is_main:
        summary = {
            "world_size": info.world_size,
            "global_step": pos.global_step,
            "parameter_checksums": checksums,  # one per rank: DDP keeps them equal
            "state_digests": digests,  # one per rank, buffers included
            "validation": metrics,
        }
        write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    cleanup(info)
    return metrics
