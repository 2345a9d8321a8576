"""train.py end to end on a tiny synthetic training set: both phases, checkpoints, exact resume
(also after a SIGKILL mid-epoch with DataLoader workers, across an epoch boundary with validation
and best.pt, and under DDP), DDP on CPU through torch.distributed.run, the start-up check of the
views, and a NaN loss that stops training."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import models.blocks
import train
import training.loop
from datasets import DatasetError, ReconDataset, read_list, worker_error_message
from models import build_model
from models.export import export_weights
from models.losses import Loss2K2K, coarse_sample, get_normal, part_normal_targets
from models.parts import PART_NETS
from training import plot_log
from training.distributed import DistInfo
from training.loop import NonFiniteLossError, init_model, seed_everything, truncate_logs
from training.loop import train as train_loop
from training.metrics import angle_error_deg
from training.plot_log import run_curves

ROOT = Path(__file__).resolve().parents[1]
RES = 256
WIDTH = "0.125"


def train_argv(data, out: Path, *extra: str) -> list[str]:
    root, train_list, val_list = data
    return [
        "--data_path", str(root),
        "--train_list", str(train_list.relative_to(root)),  # relative to --data_path
        "--val_list", str(val_list),  # absolute
        "--res", str(RES),
        "--width", WIDTH,
        "--batch_size", "2",
        "--epochs", "1",
        "--workers", "0",
        "--threads", "2",
        "--out_dir", str(out),
        "--no_progress",
        "--no_tensorboard",
        *extra,
    ]  # fmt: skip


def train_args(data, out: Path, *extra: str):
    return train.get_parser().parse_args(train_argv(data, out, *extra))


def losses(out: Path) -> list[float]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [json.loads(line)["total"] for line in lines]


def initial_model(argv: list[str]) -> torch.nn.Module:
    """The model a run with ``argv`` starts from (``training.loop._train``'s seeding and init)."""
    args = train.get_parser().parse_args(argv)
    seed_everything(args.seed)
    return init_model(args, DistInfo(0, 0, 1, torch.device("cpu")))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


MOVED_FRACTION = 0.99
"""At least this fraction of the trainable tensors must have moved after a few steps: a
convolution bias feeding a BatchNorm has a zero gradient in exact arithmetic, so a few (measured:
1 of 814 in phase 1, ``img2normal_leg.Att3.psi.0.bias``) may get exactly 0 and stay."""


def assert_moved(
    model: torch.nn.Module,
    after: dict[str, torch.Tensor],
    before: dict[str, torch.Tensor] | None = None,
) -> None:
    """At least :data:`MOVED_FRACTION` of the trainable tensors of ``model`` differ between
    ``before`` (default: ``model``'s, the initial weights) and ``after``."""
    before = model.state_dict() if before is None else before
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    assert trainable
    still = [k for k in trainable if torch.equal(after[k], before[k])]
    assert len(still) <= (1 - MOVED_FRACTION) * len(trainable), (
        f"{len(still)} of {len(trainable)} trainable tensors never moved: {still[:5]}"
    )


def assert_same(a: object, b: object, where: str = "") -> None:
    """Nested dicts / lists / tensors / plain values equal exactly (tensors bit for bit)."""
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, set(a) ^ set(b))
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def assert_same_run(out: Path, reference: Path) -> None:
    """A resumed run's outputs equal an uninterrupted run's: last.pt and best.pt entirely (weights,
    optimizer, random states, position, best value; not the arguments, which name the folder and
    the stop), the training and validation logs line for line."""
    for name in ("last.pt", "best.pt"):
        if (reference / name).is_file() or (out / name).is_file():
            a = torch.load(out / name, weights_only=True)
            b = torch.load(reference / name, weights_only=True)
            a.pop("args"), b.pop("args")
            assert_same(a, b, name)
    for name in ("train_log.jsonl", "val_log.jsonl"):
        if (reference / name).is_file() or (out / name).is_file():
            assert (out / name).read_text() == (reference / name).read_text(), name


def test_phase1_then_phase2_smoke(synthetic_training_set, tmp_path):
    """Two phase-1 steps and two phase-2 steps from the phase-1 checkpoint: finite losses,
    self-describing checkpoints, validation metrics, and phase 2 trains only the refinement net."""
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    metrics = train_loop(train_args(synthetic_training_set, p1, "--phase", "1", "--max_steps", "2"))
    assert len(losses(p1)) == 2 and all(torch.isfinite(torch.tensor(losses(p1))))
    state = torch.load(p1 / "last.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "step_in_epoch", "global_step", "rng", "args"} <= set(
        state
    )
    assert state["global_step"] == 2 and json.loads(state["args"])["phase"] == 1
    assert not any(k.startswith("refine.") for k in state["model"])
    build_model(phase=1, res=RES, width=float(WIDTH), checkpoint=p1 / "last.pt")  # strict load
    assert metrics == {}  # stopped by --max_steps before the epoch's validation

    metrics = train_loop(
        train_args(synthetic_training_set, p2, "--phase", "2", "--init_from", str(p1 / "last.pt"))
    )
    assert {"depth_err_d", "normal_err_deg", "mask_iou", "loss_total"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(list(metrics.values()))))
    after = torch.load(p2 / "last.pt", weights_only=True)["model"]
    for key, value in state["model"].items():
        # phase 2 leaves the phase-1 networks (weights and BatchNorm statistics) untouched
        assert torch.equal(after[key], value), key
    assert any(k.startswith("refine.") for k in after)
    assert (p2 / "best.pt").is_file() and (p2 / "val_log.jsonl").is_file()
    curves = run_curves(p2)  # loss chart + validation chart side by side
    assert curves.ndim == 3 and curves.shape[1] == 2 * curves.shape[0] * 640 // 360

    exported = export_weights(p2 / "last.pt", tmp_path / "weights.pt")  # inference weights only
    assert set(exported) == {"version", "model", "args", "epoch", "global_step"}
    assert (tmp_path / "weights.pt").stat().st_size < (p2 / "last.pt").stat().st_size
    model = build_model(phase=2, res=RES, width=float(WIDTH), checkpoint=tmp_path / "weights.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, after[key]), key

    # phase 1 continues from the phase-2 checkpoint (its refinement net left out), with L1 depth
    p1b = tmp_path / "p1b"
    extra = ("--max_steps", "1", "--depth_beta", "0", "--init_from", str(p2 / "last.pt"))
    train_loop(train_args(synthetic_training_set, p1b, "--phase", "1", *extra))
    assert len(losses(p1b)) == 1 and json.loads((p1b / "args.json").read_text())["depth_beta"] == 0
    # phase 2 on the new phase-1 nets with p2's trained refinement net (--refine_from)
    argv = train_argv(synthetic_training_set, tmp_path / "p2b", "--phase", "2")
    argv += ["--init_from", str(p1b / "last.pt"), "--refine_from", str(p2 / "last.pt")]
    combined = initial_model(argv).state_dict()
    new_p1 = torch.load(p1b / "last.pt", weights_only=True)["model"]
    for key, value in combined.items():
        source = after if key.startswith("refine.") else new_p1
        assert torch.equal(value, source[key]), key
    assert not all(torch.equal(new_p1[k], after[k]) for k in new_p1)  # p1b trained on
    png = tmp_path / "curves.png"  # p1 (no validation: one chart) above p2 (two charts)
    plot_log.main(plot_log.get_parser().parse_args(["--run", str(p1), str(p2), "--out", str(png)]))
    stacked = cv2.imread(str(png))
    assert stacked.shape == (curves.shape[0] + run_curves(p1).shape[0], curves.shape[1], 3)


def test_resume_continues_exactly(synthetic_training_set, tmp_path):
    """Stop after step 2, resume: step 3's loss equals the uninterrupted run's (CPU, exact)."""
    full, part = tmp_path / "full", tmp_path / "part"
    train_loop(train_args(synthetic_training_set, full, "--phase", "1", "--max_steps", "3"))
    train_loop(train_args(synthetic_training_set, part, "--phase", "1", "--max_steps", "2"))
    train_loop(
        train_args(
            synthetic_training_set, part, "--phase", "1", "--max_steps", "3", "--resume", "auto"
        )
    )
    assert len(losses(full)) == 3 and len(losses(part)) == 3
    assert losses(part) == losses(full)  # bit-identical, not just close
    a = torch.load(full / "last.pt", weights_only=True)["model"]
    b = torch.load(part / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_minutes_stops_after_a_step_and_resumes(synthetic_training_set, tmp_path):
    """A run out of time stops after the step in progress with last.pt saved (no validation);
    --resume auto continues from there."""
    out = tmp_path / "timed"
    metrics = train_loop(
        train_args(synthetic_training_set, out, "--phase", "1", "--max_minutes", "1e-9")
    )
    assert metrics == {} and len(losses(out)) == 1
    assert torch.load(out / "last.pt", weights_only=True)["global_step"] == 1
    extra = ("--max_steps", "2", "--resume", "auto")
    train_loop(train_args(synthetic_training_set, out, "--phase", "1", *extra))
    steps = [json.loads(line)["global_step"] for line in (out / "train_log.jsonl").open()]
    assert steps == [1, 2]


def test_resume_of_a_missing_checkpoint_is_an_error(synthetic_training_set, tmp_path):
    args = train_args(
        synthetic_training_set, tmp_path, "--phase", "1", "--resume", str(tmp_path / "nope.pt")
    )
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        train_loop(args)
    with pytest.raises(SystemExit, match=r"^error: .*nope\.pt: checkpoint to resume from not"):
        train.main(args)  # the script: one line, no traceback


def test_nan_loss_stops_training(synthetic_training_set, tmp_path):
    args = train_args(
        synthetic_training_set, tmp_path, "--phase", "1", "--lr", "1e30", "--max_steps", "4"
    )
    with pytest.raises(NonFiniteLossError, match="step"):
        train_loop(args)


DDP_ARGS = ("--batch_size", "1", "--epochs", "2", "--lr", "1e-3")
"""2 processes x 3 views: 3 steps per epoch of one view per process, validation after each epoch;
6 steps at learning rates 0, 9.9e-4, 9.6e-4, 9.1e-4, 8.4e-4, 7.5e-4 (the warm-up is the first 1 %
of an epoch)."""


def run_ddp(argv: list[str]) -> None:
    """``python -m torch.distributed.run --nproc_per_node 2 train.py <argv>`` (gloo on CPU)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYOPENGL_PLATFORM="osmesa")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd += ["--standalone", "train.py", *argv, "--threads", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def ddp_phase1(synthetic_training_set, tmp_path_factory) -> Path:
    """An uninterrupted 2-process phase-1 run with :data:`DDP_ARGS`; its output folder."""
    out = tmp_path_factory.mktemp("ddp_phase1")
    run_ddp(train_argv(synthetic_training_set, out, "--phase", "1", *DDP_ARGS))
    return out


@pytest.mark.parametrize("phase", ["1", "2"])
def test_ddp_two_processes_on_cpu(synthetic_training_set, tmp_path_factory, request, phase):
    """torch.distributed.run with 2 gloo processes, 6 steps at a real learning rate: the weights
    moved (phase 2: every tensor of the refinement net, the only one with gradients), and both
    ranks end with the same full state dict, BatchNorm running statistics included (DDP
    broadcasts rank 0's buffers at each forward, validation's too; without the closing
    validation rank 1 would keep its own last batch's statistics)."""
    if phase == "1":
        out = request.getfixturevalue("ddp_phase1")
    else:
        out = tmp_path_factory.mktemp("ddp_phase2")
        run_ddp(train_argv(synthetic_training_set, out, "--phase", phase, *DDP_ARGS))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 6
    digests, sums = summary["state_digests"], summary["parameter_checksums"]
    assert len(digests) == 2 and digests[0] == digests[1]  # every tensor, buffers included
    assert sums[0] == sums[1]
    argv = train_argv(synthetic_training_set, out, "--phase", phase, *DDP_ARGS)
    assert_moved(initial_model(argv), weights(out / "last.pt"))
    assert len((out / "val_log.jsonl").read_text().splitlines()) == 2


def test_ddp_resume_continues_exactly(synthetic_training_set, ddp_phase1, tmp_path):
    """Under DDP: stop after step 2 of epoch 0 (of 3), resume with 2 processes: last.pt, best.pt
    and the logs equal the uninterrupted 2-process run's exactly."""
    argv = train_argv(synthetic_training_set, tmp_path, "--phase", "1", *DDP_ARGS)
    run_ddp([*argv, "--max_steps", "2"])
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["world_size"]) == (0, 2, 2)
    run_ddp([*argv, "--resume", "auto"])
    assert_same_run(tmp_path, ddp_phase1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (
        summary["state_digests"]
        == json.loads((ddp_phase1 / "summary.json").read_text())["state_digests"]
    )


def test_ddp_out_of_time_stops_both_ranks_at_one_step(synthetic_training_set, tmp_path):
    """--max_minutes under 2-process DDP: the ranks agree (an all-reduce) to stop after the
    same step, and rank 0 saves last.pt there; no hang, no validation."""
    argv = train_argv(synthetic_training_set, tmp_path, "--phase", "1", *DDP_ARGS)
    run_ddp([*argv, "--max_minutes", "1e-9"])
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["world_size"]) == (0, 1, 2)
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 1
    assert not (tmp_path / "val_log.jsonl").exists()


KILL_ARGS = ("--batch_size", "1", "--workers", "1", "--save_every", "1", "--lr", "1e-3")
"""One process, one DataLoader worker, 6 steps in the epoch, last.pt after every step."""


def test_resume_after_sigkill_mid_epoch_with_workers(synthetic_training_set, tmp_path):
    """SIGKILL of a train.py process (one DataLoader worker) in the middle of the epoch, then
    ``--resume auto``: last.pt, best.pt and the logs equal an uninterrupted run's exactly."""
    full, part = tmp_path / "full", tmp_path / "part"
    train_loop(train_args(synthetic_training_set, full, "--phase", "1", *KILL_ARGS))
    argv = train_argv(synthetic_training_set, part, "--phase", "1", *KILL_ARGS)
    env = dict(os.environ, PYOPENGL_PLATFORM="osmesa")
    proc = subprocess.Popen([sys.executable, "train.py", *argv], cwd=ROOT, env=env)
    log_file, deadline = part / "train_log.jsonl", time.monotonic() + 300
    try:
        while not (log_file.is_file() and len(log_file.read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, "no second step"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = torch.load(part / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and 1 <= state["step_in_epoch"] < 6  # killed mid-epoch
    assert not (part / "summary.json").exists()
    train_loop(
        train_args(synthetic_training_set, part, "--phase", "1", *KILL_ARGS, "--resume", "auto")
    )
    assert_same_run(part, full)
    assert len(losses(part)) == 6


def test_resume_across_an_epoch_boundary_with_validation_and_best(
    synthetic_training_set, tmp_path, monkeypatch
):
    """A run that dies in the first validation (after the epoch's last step was saved) resumes
    into that validation, best.pt and the epoch's checkpoint, then the next epoch's first step:
    best.pt, last.pt, the training and validation logs equal the uninterrupted run's exactly."""
    full, part = tmp_path / "full", tmp_path / "part"
    extra = ("--phase", "1", "--epochs", "2", "--max_steps", "4", "--save_every", "1")
    extra += ("--lr", "1e-3", "--ckpt_every", "1")
    train_loop(train_args(synthetic_training_set, full, *extra))
    assert torch.load(full / "best.pt", weights_only=True)["epoch"] == 1

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed in validation")

    monkeypatch.setattr(training.loop, "validate", killed)
    with pytest.raises(KeyboardInterrupt):
        train_loop(train_args(synthetic_training_set, part, *extra))
    monkeypatch.undo()
    state = torch.load(part / "last.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)  # the epoch's steps, not validated
    assert not (part / "best.pt").exists() and not (part / "val_log.jsonl").exists()
    train_loop(train_args(synthetic_training_set, part, *extra, "--resume", "auto"))
    assert_same_run(part, full)
    assert len(losses(part)) == 4 and len((part / "val_log.jsonl").read_text().splitlines()) == 1
    a = torch.load(part / "epoch_001.pt", weights_only=True)
    b = torch.load(full / "epoch_001.pt", weights_only=True)
    a.pop("args"), b.pop("args")
    assert_same(a, b, "epoch_001.pt")


def test_origin_depth_head_init_starts_every_depth_at_d2():
    """``--depth_head_init origin``: coarse and refined depth start at D = 2 everywhere (alive
    under ReLU6), the mask channel keeps the authors' random head."""
    torch.manual_seed(0)
    model = build_model(phase=2, res=RES, width=float(WIDTH)).eval()
    mask_weight = model.ImgNorm_to_Dep.Conv_1x1.weight[2].clone()
    model.init_depth_heads_at_origin()
    assert torch.equal(model.ImgNorm_to_Dep.Conv_1x1.weight[2], mask_weight)
    image = torch.rand(1, 3, RES, RES) * 2 - 1
    theta = torch.tensor([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]]).expand(1, 12, 2, 3)
    with torch.no_grad():
        out = model(image, theta.contiguous())
    # coarse depth: 2 on the predicted body; phase 2 sets the rest to the background (6 / 0)
    assert torch.all((out["pred_down_depth_front"] == 2.0) | (out["pred_down_depth_front"] == 6.0))
    assert torch.all((out["pred_down_depth_back"] == 2.0) | (out["pred_down_depth_back"] == 0.0))
    assert (out["pred_down_depth_front"] == 2.0).any()
    for key in ("pred_depth_front", "pred_depth_back"):  # the refinement head itself
        assert torch.all(out[key] == 2.0), key


CHECKPOINTING_ATOL = 1e-6
"""Weights after 3 steps with and without ``--checkpointing`` may differ by this much (measured:
identical on CPU; Adam's first steps move each weight by up to ~lr = 1e-3)."""


FP16_INITIAL_SCALE = 2.0**16
"""``torch.amp.GradScaler``'s initial loss scale. This model's fp16 gradients overflow at scales
above 2048 (measured at 256², width 1/8), so a fresh scaler skips its first 5 steps (halving the
scale each time), by design; 6 fp16 steps are the fewest that move the weights, so the test
takes 9 (room for a CPU or oneDNN whose gradients overflow at smaller scales)."""


def test_checkpointing_and_precision_options(synthetic_training_set, tmp_path, monkeypatch):
    """``--checkpointing`` recomputes (every checkpointed unit runs twice) and changes neither the
    losses nor the weights after 3 real steps; ``--precision fp32`` keeps CUDA's TF32 switches off
    through the backward recomputation and restores them after; bf16 trains (the weights move)
    with finite losses, and a run resumes at another precision (fp16: a fresh gradient scaler,
    whose first steps overflow and are skipped; the later ones move the weights)."""
    plain, ckpt, low = tmp_path / "plain", tmp_path / "ckpt", tmp_path / "bf16"
    p1 = ("--phase", "1", "--max_steps", "3", "--lr", "1e-3")
    train_loop(train_args(synthetic_training_set, plain, *p1))
    start = initial_model(train_argv(synthetic_training_set, plain, *p1))
    assert_moved(start, weights(plain / "last.pt"))
    seen: list[bool] = []
    units: list[int] = []
    checkpointed = models.blocks.checkpointed

    def watched(fn, owner, *inputs):
        units.append(1)

        def run(*args):
            seen.append(torch.backends.cudnn.allow_tf32)
            return fn(*args)

        return checkpointed(run, owner, *inputs)

    monkeypatch.setattr(models.blocks, "checkpointed", watched)
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
    train_loop(train_args(synthetic_training_set, ckpt, *p1, "--checkpointing", "parts", "coarse"))
    assert torch.backends.cudnn.allow_tf32  # restored after the run
    assert len(seen) == 2 * len(units) > 0  # each unit ran again in the backward pass
    assert not any(seen)  # forward and recomputation in strict fp32
    np.testing.assert_allclose(losses(ckpt), losses(plain), rtol=1e-6)
    a, b = weights(ckpt / "last.pt"), weights(plain / "last.pt")
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=CHECKPOINTING_ATOL, msg=key)
    monkeypatch.undo()
    args = ("--checkpointing", "parts", "coarse", "refine", "--precision", "bf16")
    train_loop(train_args(synthetic_training_set, low, *p1, *args))
    assert len(losses(low)) == 3 and np.isfinite(losses(low)).all()
    assert losses(low) != losses(plain)  # autocast did run
    bf16 = weights(low / "last.pt")
    assert_moved(start, bf16)
    more = ("--phase", "1", "--epochs", "4", "--val_list", "", "--lr", "1e-3", "--resume", "auto")
    train_loop(train_args(synthetic_training_set, low, *more, "--precision", "fp16"))
    assert len(losses(low)) == 12 and np.isfinite(losses(low)).all()
    state = torch.load(low / "last.pt", weights_only=True)
    assert state["scaler"]["scale"] < FP16_INITIAL_SCALE  # it skipped overflowing steps
    assert_moved(start, state["model"], before=bf16)  # and then the fp16 steps moved them


def test_resume_with_other_settings_is_refused(synthetic_training_set, tmp_path):
    train_loop(train_args(synthetic_training_set, tmp_path, "--phase", "1", "--max_steps", "1"))
    args = train_args(
        synthetic_training_set, tmp_path, "--phase", "1", "--resume", "auto", "--seed", "7"
    )
    with pytest.raises(ValueError, match="seed"):
        train_loop(args)


OVERFIT_STEPS = 250
OVERFIT_BOUNDS = {"merged_front": 33.0, "merged_back": 33.0, "coarse": 60.0}  # degrees


def test_single_sample_overfit_learns_front_and_back_normals(synthetic_training_set):
    """Phase 1 on one 256² view (width 1/8, Adam 3e-3, train.py's default initialisation and
    coarse-normal gradients):
    the merged front and back normals and the coarse normals must each fall below a bound, and
    no output channel of any normal net may be dead on the body. Measured: 28.1° / 24.5° merged,
    51.8° coarse, no dead channel; with the authors' He-initialised heads (same seed) 18.2° /
    35.0°, 66.5°, and the arm back-z and foot front-x channels dead."""
    root, train_list, _ = synthetic_training_set
    sample = ReconDataset(root, train_list, RES, train=False)[1]
    batch = {k: v[None] for k, v in sample.items() if torch.is_tensor(v)}
    torch.manual_seed(0)
    model = build_model(phase=1, res=RES, width=float(WIDTH))
    model.init_depth_heads_at_origin()
    model.init_normal_heads_alive()
    loss_fn = Loss2K2K(phase=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(OVERFIT_STEPS):
        loss = loss_fn(model(batch["image"], batch["theta"]), batch, model.geometry)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    full = build_model(phase=2, res=RES, width=float(WIDTH))
    missing, unexpected = full.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("refine.") for k in missing)
    with torch.no_grad():
        out = full.eval()(batch["image"], batch["theta"])
    gt_f, gt_b = batch["depth_front"], batch["depth_back"]
    body = (F.max_pool2d((gt_f == 0).float(), 3, 1, 1) == 0).float()  # eroded GT mask
    size = RES // 8
    coarse_f, coarse_b = coarse_sample(gt_f, size), coarse_sample(gt_b, size)
    coarse_mask = (coarse_f > 0).float()
    errors = {
        "merged_front": angle_error_deg(out["pred_normal_front"], get_normal(gt_f), body),
        "merged_back": angle_error_deg(out["pred_normal_back"], get_normal(gt_b), body),
        "coarse": (
            angle_error_deg(out["pred_down_normal_front"], get_normal(coarse_f), coarse_mask)
            + angle_error_deg(out["pred_down_normal_back"], get_normal(coarse_b), coarse_mask)
        )
        / 2,
    }
    report = {k: round(float(v), 1) for k, v in errors.items()}
    for key, bound in OVERFIT_BOUNDS.items():
        assert errors[key] < bound, f"{key} normal error above {bound}°: {report}"
    targets = part_normal_targets(gt_f, gt_b, batch["theta"], full.geometry)
    for name, _, _ in PART_NETS:
        on_body = targets[name][:, :1] > 0  # [n, 1, h, w]
        for side in ("front", "back"):
            alive = ((out[f"pred_{name}_normal_{side}"] > 0) & on_body).sum((0, 2, 3))
            frac = alive.float() / on_body.sum().clamp_min(1)
            assert torch.all(frac > 0.5), f"{name} {side}: dead output channel(s), {frac.tolist()}"


@pytest.mark.parametrize("detach", [False, True])
def test_coarse_normal_grad_option_routes_only_gradients(detach):
    """``--coarse_normal_grad normal`` (detach): the depth and mask losses no longer reach the
    coarse normal net, its own normal loss still does, and the outputs are unchanged."""
    torch.manual_seed(0)
    model = build_model(phase=1, res=RES, width=float(WIDTH), detach_coarse_normals=detach)
    reference = build_model(phase=1, res=RES, width=float(WIDTH))
    reference.load_state_dict(model.state_dict())
    model.train(), reference.train()
    image = torch.rand(1, 3, RES, RES) * 2 - 1
    theta = torch.tensor([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]]).expand(1, 12, 2, 3).contiguous()
    out, ref = model(image, theta), reference(image, theta)
    for key, value in out.items():
        if torch.is_tensor(value):
            assert torch.equal(value, ref[key]), key
    params = list(model.img2normal_down.parameters())
    depth_loss = out["pred_down_depth_front"].sum() + out["pred_down_depth_mask_logit"].sum()
    grads = torch.autograd.grad(depth_loss, params, retain_graph=True, allow_unused=True)
    reached = any(g is not None and g.abs().sum() > 0 for g in grads)
    assert reached is not detach
    own = torch.autograd.grad(out["pred_down_normal_front"].sum(), params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in own)


def copy_training_set(data, dest: Path) -> tuple[Path, Path, Path]:
    """A copy of the synthetic training set (to damage)."""
    root, train_list, val_list = data
    shutil.copytree(root, dest)
    return dest, dest / train_list.relative_to(root), dest / val_list.relative_to(root)


def view_file(root: Path, line: tuple[str, str, str], kind: str) -> Path:
    """``shaded``, ``depth`` (front) or ``keypoint`` file of a list line."""
    depth = line[2].lstrip("/")
    return (
        root
        / {
            "shaded": line[0].lstrip("/"),
            "depth": depth,
            "keypoint": depth.replace("DEPTH/", "keypoint/", 1).replace(".png", ".npy"),
        }[kind]
    )


def test_bad_views_stop_training_before_the_first_step(synthetic_training_set, tmp_path, caplog):
    """Two bad views of six (keypoints missing, depth PNG cut short): training refuses to start,
    one logged line per bad view naming its file, nothing written; train.py says it in one line;
    ``--skip_bad_views`` trains on the other four, and a resume on other views is refused."""
    data = copy_training_set(synthetic_training_set, tmp_path / "data")
    root, train_list, _ = data
    lines = read_list(train_list)
    missing = view_file(root, lines[1], "keypoint")
    cut = view_file(root, lines[4], "depth")
    saved = {p: p.read_bytes() for p in (missing, cut)}
    missing.unlink()
    cut.write_bytes(saved[cut][: len(saved[cut]) - 20])
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR, logger="training.loop"):
        with pytest.raises(DatasetError, match="2 of 6 views bad") as info:
            train_loop(train_args(data, out, "--phase", "1"))
    assert str(info.value).startswith(str(train_list))
    bad = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(bad) == 2
    assert str(missing) in bad[0] and "missing" in bad[0]
    assert str(cut) in bad[1] and "truncated" in bad[1]
    assert not out.exists()  # refused before anything was written
    with pytest.raises(SystemExit, match=f"^error: {train_list}: 2 of 6 views bad"):
        train.main(train_args(data, out, "--phase", "1"))

    caplog.clear()
    skip = ("--phase", "1", "--max_steps", "1", "--skip_bad_views")
    with caplog.at_level(logging.WARNING, logger="training.loop"):
        train_loop(train_args(data, out, *skip))
    assert "4 views remain" in caplog.text
    assert len(losses(out)) == 1
    for path, data_bytes in saved.items():  # fixed: the training views are no longer the same
        path.write_bytes(data_bytes)
    with pytest.raises(ValueError, match="other training views"):
        train_loop(train_args(data, out, *skip, "--resume", "auto"))


def test_a_sample_damaged_behind_its_header_stops_training_naming_the_file(
    synthetic_training_set, tmp_path
):
    """Pixel data damaged behind an intact PNG header passes the start-up check; the DataLoader
    worker's decode failure reaches the main process as a DatasetError naming the file, and
    train.py reports it in one line."""
    data = copy_training_set(synthetic_training_set, tmp_path / "data")
    root, train_list, _ = data
    shaded = view_file(root, read_list(train_list)[3], "shaded")
    png = bytearray(shaded.read_bytes())
    middle = len(png) // 2
    png[middle : middle + 64] = bytes(64)  # inside the IDAT data: its CRC no longer matches
    shaded.write_bytes(bytes(png))
    argv = ("--phase", "1", "--workers", "1", "--max_steps", "0", "--val_list", "")
    with pytest.raises(DatasetError) as info:
        train_loop(train_args(data, tmp_path / "out", *argv))
    assert "DataLoader worker" in str(info.value)  # raised in the worker, re-raised here
    assert (
        worker_error_message(info.value)
        == f"{shaded}: cannot be decoded (corrupt or truncated image)"
    )
    with pytest.raises(SystemExit, match=f"^error: {shaded}: cannot be decoded"):
        train.main(train_args(data, tmp_path / "out2", *argv))


def test_truncate_logs_drops_a_line_cut_short_by_a_kill(tmp_path):
    """A resume keeps the log lines up to its checkpoint and drops a last line left unfinished
    by a SIGKILL during its write (it would not parse)."""
    lines = [json.dumps({"epoch": 0, "step": i, "global_step": i + 1}) for i in range(3)]
    (tmp_path / "train_log.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:9])
    (tmp_path / "val_log.jsonl").write_text(json.dumps({"epoch": 0}) + "\n{")
    truncate_logs(tmp_path, global_step=2, start_epoch=1)
    assert (tmp_path / "train_log.jsonl").read_text() == "".join(ln + "\n" for ln in lines[:2])
    assert (tmp_path / "val_log.jsonl").read_text() == json.dumps({"epoch": 0}) + "\n"
