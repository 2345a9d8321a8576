"""Tests of models/losses.py: get_normal, reductions, mask loss variants, targets, gradients."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import FIXTURES, syn_theta_batch

from bench.naive_parts import naive_crops
from models import build_model
from models.losses import (
    NORMAL_C,
    Loss2K2K,
    LossConfig,
    get_normal,
    sum_of_item_means,
)
from models.parts import PART_NETS, PartGeometry

RES = 256
WIDTH = 0.125
GROUPS = ("normal", "depth", "consistency", "mask")
NORMAL_NETS = ("face", "upper", "arm", "leg", "shoe", "down")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def blob_depth(batch: int, res: int = RES, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth body-like blob: front depth in [1, 3] inside an ellipse, 0 outside; back = front+0.3.

    Returns front, back [batch, 1, res, res] float32 (D units).
    """
    g = torch.Generator().manual_seed(seed)
    i, j = ij_grid(res, res, torch.float32)
    fronts, backs = [], []
    for _ in range(batch):
        ci, cj = (res / 2 + 4 * torch.rand((), generator=g) for _ in range(2))
        r2 = ((i - ci) / (0.42 * res)) ** 2 + ((j - cj) / (0.2 * res)) ** 2
        inside = r2 < 1
        front = torch.where(inside, 1 + 2 * torch.exp(-3 * r2), torch.zeros(()))
        fronts.append(front)
        backs.append(torch.where(inside, front + 0.3, torch.zeros(())))
    return torch.stack(fronts)[:, None].float(), torch.stack(backs)[:, None].float()


def ij_grid(h: int, w: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column index maps [h, w]."""
    rows, cols = torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype)
    return torch.meshgrid(rows, cols, indexing="ij")


def make_batch(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    front, back = blob_depth(batch, seed=seed)
    return {"depth_front": front, "depth_back": back, "theta": syn_theta_batch(batch)}


def encode(v: torch.Tensor) -> torch.Tensor:
    """Unit normal [..., 3] -> encoded (n + 1) / 2."""
    return (v / v.norm(dim=-1, keepdim=True) + 1) / 2


def decode(enc: torch.Tensor) -> torch.Tensor:
    """Encoded [B, 3, H, W] -> unit vectors [B, H, W, 3]."""
    return (2 * enc - 1).permute(0, 2, 3, 1)


def duplicate(outputs: dict, batch: dict) -> tuple[dict, dict]:
    """Stack every tensor with itself along dim 0 (two identical samples; sample-major parts)."""
    out2 = {k: (None if v is None else torch.cat((v, v))) for k, v in outputs.items()}
    return out2, {k: torch.cat((v, v)) for k, v in batch.items()}


def grads_of(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


# ------------------------------------------------------------------------------------------------
# get_normal
# ------------------------------------------------------------------------------------------------


def test_get_normal_matches_authors_fixture() -> None:
    data = np.load(FIXTURES / "get_normal_check.npz")
    depth = torch.from_numpy(data["depth"])
    normal = get_normal(depth)
    assert normal.shape == (1, 3, 256, 256) and normal.dtype == torch.float32
    assert np.abs(normal.numpy() - data["normal"]).max() <= 1e-6


@pytest.mark.parametrize(("p", "q"), [(0.003, -0.002), (-0.01, 0.0), (0.0, 0.02)])
def test_get_normal_tilted_plane(p: float, q: float) -> None:
    """depth = a + p i + q j: g_v = x(i-1, j) - x(i, j) = -p, g_h = x(i, j) - x(i, j+1) = -q.

    Interior normal (-q, -p, c) / |.|; first row (g_v = 0): (-q, 0, c); last column (g_h = 0):
    (0, -p, c); top-right corner: (0, 0, 1). Non-square map to catch an axis swap.
    """
    H, W, a, c = 12, 20, 2.0, NORMAL_C
    i, j = ij_grid(H, W, torch.float64)
    depth = (a + p * i + q * j)[None, None]
    enc = get_normal(depth)
    assert enc.dtype == torch.float64 and enc.shape == (1, 3, H, W)
    got = enc[0].permute(1, 2, 0)  # [H, W, 3]

    def v(x: list[float]) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float64)

    def check(actual: torch.Tensor, expected: torch.Tensor) -> None:
        torch.testing.assert_close(actual, expected.expand_as(actual), rtol=0, atol=1e-12)

    check(got[1:, :-1], encode(v([-q, -p, c])))  # interior
    check(got[0, :-1], encode(v([-q, 0.0, c])))  # first row: g_v = 0
    check(got[1:, -1], encode(v([0.0, -p, c])))  # last column: g_h = 0
    check(got[0, -1], v([0.5, 0.5, 1.0]))  # top-right corner: (0, 0, 1)
    check(decode(enc).norm(dim=-1), v([1.0]))  # decoded normals are unit vectors


def test_get_normal_sphere_cap_direction() -> None:
    """Cap x = 2 - sqrt(R^2 - rho^2) / s (the parity fixture's surface), in float64.

    g_v(i, j) is a central difference of -dx/di at (i - 1/2, j), g_h(i, j) one of -dx/dj at
    (i, j + 1/2); the error of a unit-step central difference is at most max|x'''| / 24. Along a
    line, x = -sqrt(a^2 - t^2)/s with a <= R, so |x'''| = 3 a^2 |t| / (s (a^2 - t^2)^{5/2})
    <= 3 R^2 rho / (s (R^2 - rho^2)^{5/2}). The angle between (g, c) and (g + d, c) is at most
    |d| / c, giving the bound below (~8e-4 rad for rho <= 0.8 R + 1).
    """
    R, s, res = 100.0, 64.0, 256
    i, j = ij_grid(res, res, torch.float64)

    def cap(ii: torch.Tensor, jj: torch.Tensor) -> torch.Tensor:
        return R**2 - (ii - 127.5) ** 2 - (jj - 127.5) ** 2

    rho2 = R**2 - cap(i, j)
    depth = torch.where(rho2 < R**2, 2 - torch.sqrt(cap(i, j).clamp(min=0)) / s, 0.0)[None, None]
    enc = get_normal(depth)

    # Analytic gradients at the staggered points: dx/di = (i - ci) / (s sqrt(R^2 - rho^2)).
    di = (i - 0.5 - 127.5) / (s * torch.sqrt(cap(i - 0.5, j).clamp(min=1e-9)))
    dj = (j + 0.5 - 127.5) / (s * torch.sqrt(cap(i, j + 0.5).clamp(min=1e-9)))
    expected = torch.stack((-dj, -di, torch.full_like(di, NORMAL_C)), dim=-1)
    expected = expected / expected.norm(dim=-1, keepdim=True)
    region = rho2 <= (0.8 * R) ** 2
    cos = (decode(enc)[0] * expected).sum(-1).clamp(-1, 1)
    angle = torch.arccos(cos)[region]

    rho_max = 0.8 * R + 1
    third = 3 * R**2 * rho_max / (s * (R**2 - rho_max**2) ** 2.5)
    bound = math.sqrt(2) * (third / 24) / NORMAL_C
    assert bound < 1e-3
    assert angle.max().item() <= bound
    # Background and the cut-off: exactly 0 outside the cap.
    assert (enc[:, :, ~(rho2 < R**2)] == 0).all()


def test_get_normal_cutoff_dtype_and_no_mutation() -> None:
    row = torch.tensor([0.0, 0.1, 0.19999, 0.2, 1.0, 3.0])
    depth = row.repeat(4, 1)[None, None]  # [1, 1, 4, 6]
    before = depth.clone()
    enc = get_normal(depth)
    assert torch.equal(depth, before)
    zero = (enc == 0).all(dim=1)[0]  # [4, 6]
    assert zero[:, :3].all() and not zero[:, 3:].any()
    enc_low = get_normal(depth, cutoff=0.05)
    assert (enc_low[:, :, :, 0] == 0).all() and (enc_low[:, :, :, 1:] > 0).all()
    assert get_normal(depth.double()).dtype == torch.float64
    assert get_normal((depth * 100).to(torch.int32)).dtype == torch.float32
    with pytest.raises(ValueError):
        get_normal(depth[0])


# ------------------------------------------------------------------------------------------------
# reductions and the mask loss
# ------------------------------------------------------------------------------------------------


def test_sum_of_item_means_matches_loop() -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.rand(3, 2, 5, 7, generator=g), torch.rand(3, 2, 5, 7, generator=g)
    got = sum_of_item_means(lambda p, t: F.l1_loss(p, t, reduction="none"), pred, target)
    expected = sum(F.l1_loss(pred[k], target[k]) for k in range(3))
    torch.testing.assert_close(got, expected)


@pytest.fixture(scope="module")
def phase1_eval_outputs() -> tuple[dict, dict, PartGeometry]:
    torch.manual_seed(0)
    model = build_model(1, res=RES, width=WIDTH).eval()
    batch = make_batch(1)
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, RES, RES) * 2 - 1, batch["theta"])
    return outputs, batch, model.geometry


def test_reduction_sum_items_vs_mean(phase1_eval_outputs: tuple[dict, dict, PartGeometry]) -> None:
    """Two identical samples: the authors' reduction doubles L1 / Smooth-L1 / BCE; "mean" not."""
    outputs, batch, geo = phase1_eval_outputs
    out2, batch2 = duplicate(outputs, batch)
    for reduction, factor in (("sum_items", 2.0), ("mean", 1.0)):
        loss = Loss2K2K(1, LossConfig(reduction=reduction))
        one, two = loss(outputs, batch, geo), loss(out2, batch2, geo)
        for key in ("depth", "consistency", "mask"):
            assert one[key] > 0
            torch.testing.assert_close(two[key], factor * one[key], rtol=1e-5, atol=0)
        # SSIM is a mean in both modes; without it the normal term scales like L1.
        no_ssim = Loss2K2K(1, LossConfig(reduction=reduction, ssim_weight=0.0))
        torch.testing.assert_close(
            no_ssim(out2, batch2, geo)["normal"],
            factor * no_ssim(outputs, batch, geo)["normal"],
            rtol=1e-5,
            atol=0,
        )
    mean_loss = Loss2K2K(1, LossConfig(reduction="mean"))
    torch.testing.assert_close(
        mean_loss(out2, batch2, geo)["normal"],
        mean_loss(outputs, batch, geo)["normal"],
        rtol=1e-5,
        atol=0,
    )


def _phase2_mask_case(logit: float, fg: bool, mode: str) -> float:
    res = 64
    depth = torch.full((1, 1, res, res), 2.0 if fg else 0.0)
    logits = torch.full((1, 1, res, res), logit)
    outputs = {
        "pred_depth_front": torch.full_like(depth, 2.0),
        "pred_depth_back": torch.full_like(depth, 2.3),
        "pred_depth_mask_logit": logits,
        "pred_depth_mask": torch.sigmoid(logits),
    }
    batch = {"depth_front": depth, "depth_back": depth + 0.3 * fg, "mask": (depth > 0).float()}
    loss = Loss2K2K(2, LossConfig(mask_loss=mode))  # type: ignore[arg-type]
    return loss(outputs, batch, PartGeometry.for_resolution(res))["mask"].item()


def test_double_sigmoid_mask_loss_floor() -> None:
    """BCE-with-logits on sigmoided masks: floor -log sigmoid(1) ~ 0.313 (y=1), log 2 (y=0)."""
    floor_fg, floor_bg = -math.log(1 / (1 + math.exp(-1))), math.log(2)
    assert abs(floor_fg - 0.3133) < 1e-4 and abs(floor_bg - 0.6931) < 1e-4
    assert _phase2_mask_case(40.0, True, "double_sigmoid") == pytest.approx(floor_fg, abs=1e-6)
    assert _phase2_mask_case(-40.0, False, "double_sigmoid") == pytest.approx(floor_bg, abs=1e-6)
    assert _phase2_mask_case(40.0, True, "logits") < 1e-6
    assert _phase2_mask_case(-40.0, False, "logits") < 1e-6
    # These are the minima: a sweep of logits never goes below them.
    loss = Loss2K2K(2, LossConfig(mask_loss="double_sigmoid", reduction="mean"))
    z = torch.linspace(-40, 40, 801)[None, None, None]  # [1, 1, 1, 801]
    for y, floor in ((1.0, floor_fg), (0.0, floor_bg)):
        target = torch.full((1, 1, 1, 1), y)
        per_z = [
            loss.mask_term(None, torch.sigmoid(z[..., k : k + 1]), target).item()
            for k in range(0, 801, 20)
        ]
        assert min(per_z) == pytest.approx(floor, abs=1e-6)
    with pytest.raises(KeyError):
        Loss2K2K(2).mask_term(None, torch.sigmoid(z), torch.ones_like(z))


# ------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------


def test_phase1_perfect_prediction(phase1_eval_outputs: tuple[dict, dict, PartGeometry]) -> None:
    """Predictions built from the GT the authors' way (canvas crops, rows/cols 3, 11, ..) give 0."""
    outputs, batch, geo = phase1_eval_outputs
    front, back = batch["depth_front"], batch["depth_back"]
    idx = torch.arange(3, RES, 8)
    coarse_f, coarse_b = front[:, :, idx][:, :, :, idx], back[:, :, idx][:, :, :, idx]
    parts = naive_crops(torch.cat((get_normal(front), get_normal(back)), 1), batch["theta"], geo)
    perfect = dict(outputs)
    for name, _, _ in PART_NETS:
        perfect[f"pred_{name}_normal_front"] = parts[name][:, :3]
        perfect[f"pred_{name}_normal_back"] = parts[name][:, 3:]
    perfect["pred_down_normal_front"] = get_normal(coarse_f)
    perfect["pred_down_normal_back"] = get_normal(coarse_b)
    perfect["pred_down_depth_front"] = torch.where(coarse_f > 0, coarse_f, 6.0)
    perfect["pred_down_depth_back"] = coarse_b
    logit = torch.where(coarse_f > 0, 50.0, -50.0)
    perfect["pred_down_depth_mask_logit"] = logit
    perfect["pred_down_depth_mask"] = torch.sigmoid(logit)
    got = Loss2K2K(1)(perfect, batch, geo)
    assert got["normal"].item() < 1e-5
    assert got["depth"].item() == 0.0
    assert got["mask"].item() < 1e-6
    assert got["consistency"].item() > 0  # the bg 6 makes rim normals differ (authors' behaviour)

    # Sampling at offset 4 instead of 3 is detected.
    shifted = dict(perfect)
    idx4 = torch.arange(4, RES, 8)
    shifted["pred_down_depth_back"] = back[:, :, idx4][:, :, :, idx4]
    assert Loss2K2K(1)(shifted, batch, geo)["depth"].item() > 1e-4

    # Coarse consistency ignores predictions where the coarse GT front depth is 0 (here: the top
    # rows, far enough from the body that no foreground normal sees them).
    assert (coarse_f[:, :, :3] == 0).all()
    noisy = dict(perfect)
    for key in ("pred_down_depth_front", "pred_down_depth_back"):
        d = perfect[key].clone()
        d[:, :, :2] = torch.rand_like(d[:, :, :2]) * 5
        noisy[key] = d
    torch.testing.assert_close(
        Loss2K2K(1)(noisy, batch, geo)["consistency"], got["consistency"], rtol=0, atol=0
    )


def test_phase2_targets_and_consistency_mask() -> None:
    """Full-frame GT without background: perfect depth gives 0; consistency ignores mask = 0."""
    res = 64
    i, j = ij_grid(res, res, torch.float32)
    front = (2 + 0.3 * torch.sin(i / 7.0) * torch.cos(j / 5.0))[None, None].float()
    back = front + 0.4
    mask = (j >= 20).float()[None, None]
    logit = torch.where(mask > 0, 50.0, -50.0)
    outputs = {
        "pred_depth_front": front.clone(),
        "pred_depth_back": back.clone(),
        "pred_depth_mask_logit": logit,
        "pred_depth_mask": torch.sigmoid(logit),
    }
    geo = PartGeometry.for_resolution(res)
    batch = {"depth_front": front, "depth_back": back, "mask": mask}
    loss = Loss2K2K(2)
    got = loss(outputs, batch, geo)
    assert got["depth"].item() == 0 and got["consistency"].item() == 0 and got["mask"].item() < 1e-6
    assert got["normal"].item() == 0
    noisy = dict(outputs)
    noise = torch.where(j[None, None] < 20, torch.rand(1, 1, res, res), 0.0)
    noisy["pred_depth_front"] = front + noise
    got = loss(noisy, batch, geo)
    assert got["depth"].item() > 0 and got["consistency"].item() == 0
    no_mask = {k: v for k, v in batch.items() if k != "mask"}  # default mask: front > 0 everywhere
    assert loss(noisy, no_mask, geo)["consistency"].item() > 0

    # Front background 0 -> target 6; back background stays 0.
    bg = {"depth_front": torch.zeros(1, 1, res, res), "depth_back": torch.zeros(1, 1, res, res)}
    six = dict(outputs, pred_depth_front=torch.full((1, 1, res, res), 6.0))
    six["pred_depth_back"] = torch.zeros(1, 1, res, res)
    assert loss(six, bg, geo)["depth"].item() == 0


# ------------------------------------------------------------------------------------------------
# full model: finite totals, gradient routing, no mutation
# ------------------------------------------------------------------------------------------------


def _run(phase: int, config: LossConfig = LossConfig()) -> tuple[torch.nn.Module, dict, dict, dict]:  # noqa: B008
    torch.manual_seed(phase)
    model = build_model(phase, res=RES, width=WIDTH)
    model.train()
    batch = make_batch(2 if phase == 1 else 1, seed=phase)
    if phase == 2:
        batch["mask"] = (batch["depth_front"] > 0).float()
    before = {k: v.clone() for k, v in batch.items()}
    outputs = model(torch.rand(batch["theta"].shape[0], 3, RES, RES) * 2 - 1, batch["theta"])
    out_before = {k: v.detach().clone() for k, v in outputs.items() if v is not None}
    losses = Loss2K2K(phase, config)(outputs, batch, model.geometry)
    losses["total"].backward()
    for k, v in before.items():
        assert torch.equal(batch[k], v), f"batch[{k!r}] was modified"
    for k, v in out_before.items():
        assert torch.equal(outputs[k].detach(), v), f"outputs[{k!r}] was modified"
    return model, losses, batch, outputs


def test_phase1_total_finite_and_gradients() -> None:
    model, losses, _, _ = _run(1)
    assert set(losses) == {*GROUPS, "total"}
    for key in GROUPS:
        assert torch.isfinite(losses[key]) and losses[key].item() > 0, key
    torch.testing.assert_close(losses["total"], sum(losses[k] for k in GROUPS))
    assert not hasattr(model, "refine")
    for name in NORMAL_NETS:
        grads = grads_of(model.part_net(name))
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name  # type: ignore[union-attr]
    grads = grads_of(model.ImgNorm_to_Dep)
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)  # type: ignore[union-attr]


def test_phase1_depth_losses_reach_coarse_normal_net() -> None:
    """With the normal term off, only the coarse depth losses train; they reach img2normal_down."""
    model, losses, _, _ = _run(1, LossConfig(normal_weight=0.0))
    assert losses["normal"].item() == 0 and torch.isfinite(losses["total"])
    for module in (model.img2normal_down, model.ImgNorm_to_Dep):
        grads = grads_of(module)
        assert all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)  # type: ignore[union-attr]
    for name, _, _ in PART_NETS:
        assert all(g is None for g in grads_of(model.part_net(name))), name


def test_phase2_total_finite_and_only_refine_trains() -> None:
    model, losses, _, _ = _run(2)
    assert losses["normal"].item() == 0
    for key in ("depth", "consistency", "mask", "total"):
        assert torch.isfinite(losses[key]) and losses[key].item() > 0, key
    grads = grads_of(model.refine)
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)  # type: ignore[union-attr]
    refine_ids = {id(p) for p in model.refine.parameters()}
    for name, p in model.named_parameters():
        if id(p) not in refine_ids:
            assert p.grad is None, name


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Loss2K2K(3)
    with pytest.raises(ValueError):
        Loss2K2K(1, LossConfig(reduction="sum"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Loss2K2K(1, LossConfig(mask_loss="bce"))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# the whole loss against a literal restatement of the authors' procedure
# ------------------------------------------------------------------------------------------------


def _authors_loss(outputs: dict, batch: dict, phase: int, geo: PartGeometry) -> dict[str, float]:
    """Facts sheet §4, step by step: per-item loops, full canvases, in-place bg fill (on clones)."""
    from pytorch_msssim import ssim

    front, back = batch["depth_front"].clone(), batch["depth_back"].clone()
    mask = batch.get("mask", (batch["depth_front"] > 0).float())

    def per_item(fn: Callable, preds: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sum(fn(p, t) for p, t in zip(preds, targets, strict=True))

    def normal_loss(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        l1 = per_item(F.l1_loss, p, t)
        s = 1 - ssim(p, t, data_range=1.0, win_size=5, K=(0.01, 0.03), nonnegative_ssim=True)
        return 0.5 * (0.85 * l1 + 0.15 * s)

    def bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return per_item(F.binary_cross_entropy_with_logits, p, t)

    res = {}
    if phase == 1:
        t_n_f, t_n_b = get_normal(front), get_normal(back)  # before any bg fill
        crops = naive_crops(torch.cat((t_n_f, t_n_b), 1), batch["theta"], geo)
        t_d_f, t_d_b = front[:, :, 3::8, 3::8], back[:, :, 3::8, 3::8]  # views, as in the original
        t_d_n_f, t_d_n_b = get_normal(t_d_f), get_normal(t_d_b)
        t_d_m = (t_d_f > 0).float()
        s_f = get_normal(outputs["pred_down_depth_front"])
        s_b = get_normal(outputs["pred_down_depth_back"])
        con = (t_d_f == 0).expand(-1, 3, -1, -1)
        s_f[con], s_b[con] = 0.0, 0.0
        t_d_f[t_d_f == 0] = 6.0  # writes into `front` through the view
        pairs = [(outputs[f"pred_{n}_normal_front"], crops[n][:, :3]) for n, _, _ in PART_NETS]
        pairs += [(outputs[f"pred_{n}_normal_back"], crops[n][:, 3:]) for n, _, _ in PART_NETS]
        pairs += [(outputs["pred_down_normal_front"], t_d_n_f)]
        pairs += [(outputs["pred_down_normal_back"], t_d_n_b)]
        res["normal"] = sum(normal_loss(p, t) for p, t in pairs)
        res["depth"] = 0.85 * (
            per_item(F.smooth_l1_loss, outputs["pred_down_depth_front"], t_d_f)
            + per_item(F.smooth_l1_loss, outputs["pred_down_depth_back"], t_d_b)
        )
        res["consistency"] = 0.15 * (
            per_item(F.smooth_l1_loss, s_f, t_d_n_f) + per_item(F.smooth_l1_loss, s_b, t_d_n_b)
        )
        res["mask"] = bce(outputs["pred_down_depth_mask"], t_d_m)
    else:
        t_n_f, t_n_b = get_normal(front), get_normal(back)
        s_f, s_b = get_normal(outputs["pred_depth_front"]), get_normal(outputs["pred_depth_back"])
        con = (mask == 0).expand(-1, 3, -1, -1)
        for n in (s_f, s_b, t_n_f, t_n_b):
            n[con] = 0.0
        front[front == 0] = 6.0
        res["normal"] = torch.zeros(())
        res["depth"] = 0.85 * (
            per_item(F.smooth_l1_loss, outputs["pred_depth_front"], front)
            + per_item(F.smooth_l1_loss, outputs["pred_depth_back"], back)
        )
        res["consistency"] = 0.15 * (
            per_item(F.smooth_l1_loss, s_f, t_n_f) + per_item(F.smooth_l1_loss, s_b, t_n_b)
        )
        res["mask"] = bce(outputs["pred_depth_mask"], (mask > 0).float())
    return {k: float(v) for k, v in res.items()}


@pytest.mark.parametrize("phase", [1, 2])
def test_matches_authors_procedure(phase: int) -> None:
    """sum_items + double_sigmoid reproduce the authors' numbers (batch 2, random predictions)."""
    torch.manual_seed(3)
    model = build_model(phase, res=RES, width=WIDTH).eval()
    batch = make_batch(2, seed=5)
    batch["theta"] = batch["theta"] + 0.01 * torch.randn(batch["theta"].shape)  # distinct items
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, RES, RES) * 2 - 1, batch["theta"])
    # Random-weight predictions are near 0; shift the depths to a realistic range.
    for key in ("pred_down_depth_front", "pred_depth_front"):
        if outputs[key] is not None:
            outputs[key] = outputs[key] + torch.rand_like(outputs[key]) * 3
    expected = _authors_loss(outputs, batch, phase, model.geometry)
    config = LossConfig(mask_loss="double_sigmoid", reduction="sum_items")
    got = Loss2K2K(phase, config)(outputs, batch, model.geometry)
    for key, value in expected.items():
        assert got[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("phase", [1, 2])
def test_depth_beta_is_l1_at_zero_and_authors_at_one(phase: int) -> None:
    """``depth_beta`` changes only the depth term: 1 = the authors' Smooth-L1 (0.5 e^2 for
    |e| < 1 D), 0 = plain L1; a constant error e on every pixel gives exactly those values."""
    res, e = 64, 0.05
    front = torch.full((1, 1, res, res), 2.0)
    back = torch.full((1, 1, res, res), 2.3)
    size = res // 8 if phase == 1 else res
    key = "pred_down_depth" if phase == 1 else "pred_depth"
    logit = torch.full((1, 1, size, size), 50.0)
    outputs = {
        f"{key}_front": torch.full((1, 1, size, size), 2.0 + e),
        f"{key}_back": torch.full((1, 1, size, size), 2.3 - e),
        f"{key}_mask_logit": logit,
        f"{key}_mask": torch.sigmoid(logit),
    }
    batch = {"depth_front": front, "depth_back": back}
    geo = PartGeometry.for_resolution(res)
    off = {"normal_weight": 0.0, "consistency_weight": 0.0}
    authors = Loss2K2K(phase, LossConfig(**off))(outputs, batch, geo)
    l1 = Loss2K2K(phase, LossConfig(depth_beta=0.0, **off))(outputs, batch, geo)
    w = LossConfig().depth_weight
    assert authors["depth"].item() == pytest.approx(w * 2 * 0.5 * e**2, rel=1e-5)
    assert l1["depth"].item() == pytest.approx(w * 2 * e, rel=1e-5)
    assert l1["mask"].item() == authors["mask"].item()
    with pytest.raises(ValueError, match="depth_beta"):
        Loss2K2K(phase, LossConfig(depth_beta=-1.0))
