"""Model2K2K: architecture (parameter counts, state-dict keys), recipe weights, initialisation,
small-resolution forward passes, tiled refinement, train/eval handling of the frozen nets and
input validation."""

from __future__ import annotations

import copy
import csv
import math
import zlib

import numpy as np
import pytest
import torch
from conftest import CASE_SYN, WEIGHTS_TSV, syn_theta_batch
from torch import nn

from models import build_model
from models.model_2k2k import Model2K2K
from models.parts import PART_NETS
from models.precision import autocast, tf32_mode
from models.recipe import RECIPE_OVERRIDES, recipe_state_dict
from utils.keypoints import part_matrices

PHASE2_PARAMS = 77_655_212
PHASE1_PARAMS = 77_381_161
PHASE2_ENTRIES = 1_504
# Facts sheet §2.7.
MODULE_PARAMS = {
    "img2normal_face": 8_653_679,
    "img2normal_upper": 8_653_679,
    "img2normal_arm": 8_653_679,
    "img2normal_leg": 8_653_679,
    "img2normal_shoe": 8_653_679,
    "img2normal_down": 8_651_951,
    "ImgNorm_to_Dep": 25_460_815,
    "refine": 274_051,
}
PART_COUNT = {name: len(parts) for name, parts, _ in PART_NETS}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def read_tsv() -> list[dict[str, str]]:
    with open(WEIGHTS_TSV, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def tsv_shape(text: str) -> tuple[int, ...]:
    return () if text == "scalar" else tuple(int(s) for s in text.split("x"))


# ------------------------------------------------------------------------------------------------
# full-size architecture (no forward)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model2() -> Model2K2K:
    return build_model(phase=2)


@pytest.fixture(scope="module")
def model1() -> Model2K2K:
    return build_model(phase=1)


@pytest.fixture(scope="module")
def tsv_rows() -> list[dict[str, str]]:
    return read_tsv()


def test_phase2_parameter_count(model2):
    assert n_params(model2) == PHASE2_PARAMS
    assert len(model2.state_dict()) == PHASE2_ENTRIES


def test_phase1_parameter_count(model1):
    assert n_params(model1) == PHASE1_PARAMS
    keys = list(model1.state_dict())
    assert not any(k.startswith("refine.") for k in keys)
    assert not hasattr(model1, "refine")


def test_per_module_parameter_counts(model2):
    counts = {name: n_params(m) for name, m in model2.named_children() if n_params(m) > 0}
    assert counts == MODULE_PARAMS


def test_state_dict_keys_order_shapes_match_authors(model2, tsv_rows):
    sd = model2.state_dict()
    assert len(tsv_rows) == PHASE2_ENTRIES
    ours = [(k, tuple(v.shape)) for k, v in sd.items()]
    theirs = [(r["key"], tsv_shape(r["shape"])) for r in tsv_rows]
    mismatch = [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    assert not mismatch, f"{len(mismatch)} entries differ, first: {mismatch[:5]}"
    assert [int(r["index"]) for r in tsv_rows] == list(range(PHASE2_ENTRIES))


def test_phase1_keys_are_phase2_keys_without_refine(model1, model2):
    k2 = [k for k in model2.state_dict() if not k.startswith("refine.")]
    assert list(model1.state_dict()) == k2


def test_recipe_weights_reproduce_tsv_checksums(model2, tsv_rows):
    sd = recipe_state_dict(model2)
    assert list(sd) == [r["key"] for r in tsv_rows]
    bad = []
    for r in tsv_rows:
        t = sd[r["key"]]
        assert zlib.crc32(r["key"].encode("utf-8")) == int(r["crc32_seed"])
        if r["kind"] == "bn_num_batches_tracked":
            ok = t.dtype == torch.int64 and t.shape == () and int(t) == 0
        else:
            assert t.dtype == torch.float32, r["key"]
            v = t.double()
            s, a = float(r["sum_f64"]), float(r["abs_sum_f64"])
            ok = (
                math.isclose(v.sum().item(), s, rel_tol=1e-12, abs_tol=1e-300)
                and math.isclose(v.abs().sum().item(), a, rel_tol=1e-12)
                and float(t.reshape(-1)[0]) == float(r["first_value"])
                and tuple(t.shape) == tsv_shape(r["shape"])
            )
        if not ok:
            bad.append(r["key"])
    assert not bad, f"{len(bad)} recipe entries differ from the TSV, first: {bad[:5]}"


def test_recipe_overrides(model2, tsv_rows):
    overridden = {r["key"] for r in tsv_rows if r["override"] == "yes"}
    assert overridden == set(RECIPE_OVERRIDES)
    sd = recipe_state_dict(model2)
    for key, values in RECIPE_OVERRIDES.items():
        assert torch.equal(sd[key], torch.tensor(values, dtype=torch.float32))


def test_recipe_loads_strictly(model2):
    m = build_model(phase=2, res=256, width=0.125)
    m.load_state_dict(recipe_state_dict(m), strict=True)
    # Same key set at any width: the recipe is keyed by name only.
    assert list(recipe_state_dict(m)) == list(model2.state_dict())


def test_init_statistics(model2):
    """Facts sheet §2.6: conv weight ~ N(0, 2 / (k k C_out)), BN weight 1 / bias 0."""
    big = model2.img2normal_face.Conv4.conv[3]  # 512 x 512 x 3 x 3 = 2.36 M weights
    w = big.weight.detach().double()
    expected = math.sqrt(2.0 / (3 * 3 * 512))
    assert abs(w.std().item() / expected - 1) < 0.01
    assert abs(w.mean().item()) < 0.01 * expected
    head = model2.ImgNorm_to_Dep.Up_conv5.conv[0]  # another big one: 512 x 1024 x 3 x 3
    assert abs(head.weight.detach().std().item() / math.sqrt(2.0 / (9 * 512)) - 1) < 0.01
    one_by_one = model2.img2normal_down.Att4.W_g[0]  # 128 x 256 x 1 x 1: std sqrt(2/128)
    assert abs(one_by_one.weight.detach().std().item() / math.sqrt(2.0 / 128) - 1) < 0.03
    n_bn = 0
    for m in model2.modules():
        if isinstance(m, nn.BatchNorm2d):
            n_bn += 1
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
            assert torch.all(m.running_mean == 0) and torch.all(m.running_var == 1)
            assert (m.eps, m.momentum, m.affine) == (1e-5, 0.1, True)
        elif isinstance(m, nn.Conv2d):
            # Biases keep PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.bias is not None
            assert m.bias.abs().max().item() <= 1 / math.sqrt(fan_in) + 1e-7
    assert n_bn > 100


# ------------------------------------------------------------------------------------------------
# small forward passes
# ------------------------------------------------------------------------------------------------


def syn_theta(res: int, batch: int) -> torch.Tensor:
    """θ from the case_syn keypoints scaled to ``res`` (NC is resolution-independent)."""
    kp = np.load(CASE_SYN / "keypoints31.npy").copy()
    kp[:, :2] *= res / 2048
    _, theta = part_matrices(kp, res=res)
    t = torch.from_numpy(theta)[None].repeat(batch, 1, 1, 1)
    if batch > 1:  # second sample: the same person shifted and shrunk a little
        t[1, :, :, :2] *= 1.1
        t[1, :, 0, 2] += 0.05
    return t


def check_outputs(model: Model2K2K, out: dict, batch: int, theta: torch.Tensor) -> None:
    res, r = model.res, model.res // 8
    geo = model.geometry
    for (name, _, _), (h, w) in zip(PART_NETS, geo.crop_sizes, strict=True):
        for side in ("front", "back"):
            t = out[f"pred_{name}_normal_{side}"]
            assert t.shape == (batch * PART_COUNT[name], 3, h, w), name
            assert torch.isfinite(t).all() and (t >= 0).all()
    for side in ("front", "back"):
        t = out[f"pred_down_normal_{side}"]
        assert t.shape == (batch, 3, r, r) and torch.isfinite(t).all() and (t >= 0).all()
    for key in (
        "pred_down_depth_front",
        "pred_down_depth_back",
        "pred_down_depth_mask",
        "pred_down_depth_mask_logit",
    ):
        assert out[key].shape == (batch, 1, r, r), key
        assert torch.isfinite(out[key]).all(), key
    for key in ("pred_down_depth_front", "pred_down_depth_back"):
        assert (out[key] >= 0).all() and (out[key] <= 6).all(), key
    mask = out["pred_down_depth_mask"]
    assert (mask > 0).all() and (mask < 1).all()
    assert torch.allclose(mask, torch.sigmoid(out["pred_down_depth_mask_logit"]))
    assert torch.equal(out["z"], theta)
    assert out["inv_z"].shape == (batch, 12, 2, 3) and out["inv_z"].dtype == torch.float32
    # inv_z is the inverse of θ: [θ; 0 0 1] @ [inv_z; 0 0 1] = I
    pad = torch.tensor([0.0, 0.0, 1.0]).expand(batch, 12, 1, 3)
    prod = torch.cat((theta, pad), 2).double() @ torch.cat((out["inv_z"], pad), 2).double()
    assert torch.allclose(prod, torch.eye(3, dtype=torch.float64).expand_as(prod), atol=1e-5)

    if model.phase == 1:
        for key in (
            "pred_normal_front",
            "pred_normal_back",
            "pred_depth_front",
            "pred_depth_back",
            "pred_depth_mask",
            "pred_depth_mask_logit",
            "occupancy",
        ):
            assert key in out and out[key] is None, key
        return
    keep = mask > 0.5
    assert torch.all(out["pred_down_depth_front"][~keep] == 6)
    assert torch.all(out["pred_down_depth_back"][~keep] == 0)
    for side in ("front", "back"):
        t = out[f"pred_normal_{side}"]
        assert t.shape == (batch, 3, res, res) and torch.isfinite(t).all() and (t >= 0).all()
    for key in ("pred_depth_front", "pred_depth_back", "pred_depth_mask", "pred_depth_mask_logit"):
        assert out[key].shape == (batch, 1, res, res), key
        assert torch.isfinite(out[key]).all(), key
    for key in ("pred_depth_front", "pred_depth_back"):
        assert (out[key] >= 0).all() and (out[key] <= 6).all(), key
    assert (out["pred_depth_mask"] > 0).all() and (out["pred_depth_mask"] < 1).all()
    occ = out["occupancy"]
    assert occ.shape == (batch, res, res)
    nonzero = occ != 0
    assert torch.all((occ[nonzero] - 1).abs() <= 1e-6)
    assert 0.02 < nonzero.double().mean().item() < 0.9  # the part windows cover part of the image
    merged = torch.cat((out["pred_normal_front"], out["pred_normal_back"]), 1)
    assert torch.all(merged.permute(1, 0, 2, 3)[:, ~nonzero] == 0)


@pytest.mark.parametrize("phase", [1, 2])
@pytest.mark.parametrize("res", [256, 320])
def test_forward_small(phase, res):
    """Res 320 is not a multiple of 128: the coarse res (40) is padded inside the D-AU-Net."""
    model = build_model(phase=phase, res=res, width=0.125).eval()
    batch = 2
    image = torch.rand(batch, 3, res, res) * 2 - 1
    theta = syn_theta(res, batch) if res == 256 else syn_theta_batch(batch)
    with torch.no_grad():
        out = model(image, theta)
    check_outputs(model, out, batch, theta)


def test_forward_batch_items_are_independent():
    """Each sample of a batch (different images and θ) gives the same outputs as running it alone
    (eval mode), up to float noise of batch-size dependent convolution kernels."""
    model = build_model(phase=2, res=256, width=0.125).eval()
    image = torch.rand(2, 3, 256, 256) * 2 - 1
    theta = syn_theta(256, 2)
    n = PART_COUNT["arm"]
    with torch.no_grad():
        both = model(image, theta)
        for b in range(2):
            alone = model(image[b : b + 1], theta[b : b + 1])
            for key in (
                "pred_depth_front",
                "pred_normal_back",
                "pred_down_depth_mask",
                "occupancy",
            ):
                torch.testing.assert_close(both[key][b : b + 1], alone[key], atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(
                both["pred_arm_normal_front"][b * n : (b + 1) * n],
                alone["pred_arm_normal_front"],
                atol=1e-4,
                rtol=1e-4,
            )
    # the two samples really differ, so a mix-up of samples would be caught
    assert (both["occupancy"][0] - both["occupancy"][1]).abs().max() > 0.5


def test_forward_rejects_bad_theta():
    model = build_model(phase=2, res=256, width=0.125).eval()
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    theta = syn_theta(256, 1)
    with pytest.raises(AssertionError, match="dtype|float64"):
        model(image, theta.double())
    theta[0, 3] = float("nan")
    with pytest.raises(AssertionError, match="NaN"):
        model(image, theta)


@pytest.fixture(scope="module")
def model512() -> Model2K2K:
    model = build_model(phase=2, res=512, width=0.25)
    model.load_state_dict(recipe_state_dict(model))
    return model.eval()


def test_tiled_refine_equals_untiled_full_model(model512):
    image = torch.rand(1, 3, 512, 512) * 2 - 1
    theta = syn_theta(512, 1)
    refine = model512.refine
    old = refine.tile_pixels
    try:
        with torch.no_grad():
            refine.tile_pixels = 0
            ref = model512(image, theta)
            refine.tile_pixels = 1  # smallest tiles: 8x8 + halo
            tiled = model512(image, theta)
    finally:
        refine.tile_pixels = old
    for key in ("pred_depth_front", "pred_depth_back", "pred_depth_mask"):
        err = (tiled[key] - ref[key]).abs().max().item()
        assert err <= 1e-5, f"{key}: tiled vs untiled max error {err:.3e}"
    assert torch.equal(tiled["pred_normal_front"], ref["pred_normal_front"])


@pytest.mark.parametrize("tile_pixels", [1, 512 * 10, 512 * 24, 512 * 100, 512 * 511])
def test_tiled_refine_tile_sizes(model512, tile_pixels):
    """Tiles that do not divide the image, at every stage, match the untiled net."""
    refine = model512.refine
    g = torch.Generator().manual_seed(1)
    depth = torch.rand(1, 2, 64, 64, generator=g) * 6
    normal = torch.rand(1, 6, 512, 512, generator=g)
    old = refine.tile_pixels
    try:
        with torch.no_grad():
            refine.tile_pixels = 0
            ref = refine(depth, normal)
            refine.tile_pixels = tile_pixels
            tiled = refine(depth, normal)
    finally:
        refine.tile_pixels = old
    assert tiled.shape == ref.shape == (1, 3, 512, 512)
    err = (tiled - ref).abs().max().item()
    assert err <= 1e-5, f"tile_pixels={tile_pixels}: max error {err:.3e}"


def test_refine_train_mode_is_not_tiled(model512):
    """Training mode runs whole stages: BatchNorm batch statistics would differ per tile, so a
    tiled training forward would be a different function."""
    refine = copy.deepcopy(model512.refine).train()
    g = torch.Generator().manual_seed(2)
    depth = torch.rand(1, 2, 64, 64, generator=g) * 6
    normal = torch.rand(1, 6, 512, 512, generator=g)
    with torch.no_grad():
        refine.tile_pixels = 1
        tiny = refine(depth, normal)
        refine.tile_pixels = 0
        whole = refine(depth, normal)
    assert torch.equal(tiny, whole)


# ------------------------------------------------------------------------------------------------
# train / eval of frozen nets, gradients
# ------------------------------------------------------------------------------------------------


def child_modes(model: nn.Module) -> dict[str, set[bool]]:
    return {name: {m.training for m in child.modules()} for name, child in model.named_children()}


def test_phase2_train_keeps_frozen_nets_in_eval():
    model = build_model(phase=2, res=256, width=0.125)
    assert model.frozen_eval is True
    model.train()
    assert model.training
    for name, flags in child_modes(model).items():
        assert flags == ({True} if name == "refine" else {False}), name
    model.eval()
    assert all(flags == {False} for flags in child_modes(model).values())
    model.train(True)
    assert child_modes(model)["img2normal_face"] == {False}


def test_phase2_frozen_eval_false_restores_train_mode():
    model = build_model(phase=2, res=256, width=0.125, frozen_eval=False)
    model.train()
    assert all(flags == {True} for flags in child_modes(model).values())


def test_phase1_train_mode_everywhere():
    model = build_model(phase=1, res=256, width=0.125)
    model.train()
    assert all(flags == {True} for flags in child_modes(model).values())


def test_phase2_training_step_touches_only_refine():
    """Facts sheet §1.3: in phase 2 only the refinement net gets gradients; with frozen_eval the
    frozen BatchNorms keep their running statistics."""
    model = build_model(phase=2, res=256, width=0.125).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    out = model(torch.rand(2, 3, 256, 256) * 2 - 1, syn_theta(256, 2))
    loss = out["pred_depth_front"].mean() + out["pred_depth_mask_logit"].mean()
    assert loss.requires_grad
    for key in (
        "pred_down_depth_front",
        "pred_face_normal_front",
        "pred_normal_front",
        "occupancy",
    ):
        assert not out[key].requires_grad, key
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("refine."):
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    after = model.state_dict()
    changed = {k for k, v in before.items() if not torch.equal(v, after[k])}
    assert changed and all(k.startswith("refine.") for k in changed)


def test_phase1_gradient_paths():
    """Phase 1: part losses do not reach the coarse normal net (guide under no_grad); the coarse
    depth losses do."""
    model = build_model(phase=1, res=256, width=0.125).train()
    out = model(torch.rand(2, 3, 256, 256) * 2 - 1, syn_theta(256, 2))
    out["pred_face_normal_front"].mean().backward(retain_graph=True)
    assert all(p.grad is None for p in model.img2normal_down.parameters())
    assert all(p.grad is not None for p in model.img2normal_face.parameters())
    out["pred_down_depth_front"].mean().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.img2normal_down.parameters()
    )


# ------------------------------------------------------------------------------------------------
# invalid arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("res", [100, 0, 200, -64])
def test_invalid_resolution(res):
    with pytest.raises(ValueError, match="multiple of 64"):
        build_model(phase=2, res=res, width=0.125)


def test_invalid_phase():
    with pytest.raises(ValueError, match="phase"):
        build_model(phase=3, res=256, width=0.125)


@pytest.fixture(scope="module")
def small_model() -> Model2K2K:
    return build_model(phase=2, res=256, width=0.125).eval()


@pytest.mark.parametrize(
    "image_shape, theta_shape, match",
    [
        ((1, 3, 128, 128), (1, 12, 2, 3), "image must be"),
        ((1, 4, 256, 256), (1, 12, 2, 3), "image must be"),
        ((1, 3, 256, 320), (1, 12, 2, 3), "image must be"),
        ((1, 3, 256, 256), (1, 11, 2, 3), "theta must be"),
        ((1, 3, 256, 256), (2, 12, 2, 3), "theta must be"),
        ((1, 3, 256, 256), (1, 12, 3, 3), "theta must be"),
    ],
)
def test_wrong_input_shapes(small_model, image_shape, theta_shape, match):
    with pytest.raises(AssertionError, match=match), torch.no_grad():
        small_model(torch.zeros(image_shape), torch.zeros(theta_shape))


def _conv_weight(model: Model2K2K) -> torch.Tensor:
    return model.img2normal_down.Conv1.conv[0].weight


def test_eval_runs_channels_last_for_any_caller():
    """A plain ``model.eval()`` forward runs channels_last with the caller's NCHW tensors, gives
    the values of the NCHW model, and training gets its own layout back."""
    model = build_model(phase=2, res=256, width=0.125)
    model.load_state_dict(recipe_state_dict(model))
    image = torch.rand(1, 3, 256, 256) * 2 - 1
    theta = syn_theta(256, 1)
    model.eval_channels_last = False
    model.eval()
    assert _conv_weight(model).is_contiguous()
    with torch.no_grad():
        ref = model(image, theta)
    model.train()
    model.eval_channels_last = True
    model.eval()
    assert _conv_weight(model).is_contiguous(memory_format=torch.channels_last)
    assert model.refine.merge3_2.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = model(image, theta)
    assert fast["pred_depth_front"].is_contiguous(memory_format=torch.channels_last)
    for key in ("pred_depth_front", "pred_depth_back", "pred_normal_front", "pred_depth_mask"):
        err = (fast[key] - ref[key]).abs().max().item()
        assert err <= 1e-4, f"{key}: channels_last vs NCHW max error {err:.3e}"
    model.train()
    assert _conv_weight(model).is_contiguous()  # back to the training layout
    model.to(memory_format=torch.channels_last)  # a caller's own channels_last training
    model.eval().train()
    assert _conv_weight(model).is_contiguous(memory_format=torch.channels_last)


def _saved_bytes_and_grads(
    model: Model2K2K, image: torch.Tensor, theta: torch.Tensor
) -> tuple[int, dict[str, torch.Tensor]]:
    """Bytes the forward keeps for backward (distinct storages) and the gradients of a fixed
    random projection of every trainable output."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(image, theta)
    g = torch.Generator().manual_seed(1)
    loss = sum(
        (v * torch.rand(v.shape, generator=g)).sum()
        for v in out.values()
        if torch.is_tensor(v) and v.requires_grad
    )
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return sum(storages.values()), grads


@pytest.mark.parametrize("phase", [1, 2])
def test_checkpointing_keeps_gradients_and_statistics(phase):
    """Activation checkpointing (every group) gives the same outputs' gradients and BatchNorm
    running statistics as the plain training forward, recomputes (each checkpointed conv runs
    twice) and keeps fewer bytes for the backward pass."""
    torch.manual_seed(0)
    plain = build_model(phase=phase, res=128, width=0.25).train()
    ckpt = copy.deepcopy(plain)
    ckpt.set_checkpointing(["parts", "coarse", "refine"])
    image = torch.rand(2, 3, 128, 128) * 2 - 1
    theta = syn_theta(128, 2)
    probe = (ckpt.refine.merge3_1 if phase == 2 else ckpt.img2normal_arm.Conv2).conv[0]
    calls = []
    probe.register_forward_hook(lambda *_: calls.append(1))
    saved_plain, grads_plain = _saved_bytes_and_grads(plain, image, theta)
    saved_ckpt, grads_ckpt = _saved_bytes_and_grads(ckpt, image, theta)
    assert len(calls) == 2  # forward + recomputation
    assert saved_ckpt < 0.6 * saved_plain, (saved_ckpt, saved_plain)
    assert grads_plain.keys() == grads_ckpt.keys() and len(grads_plain) > 0
    if phase == 2:
        assert all(name.startswith("refine.") for name in grads_plain)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    buffers_ckpt = dict(ckpt.named_buffers())
    for name, buf in plain.named_buffers():
        assert torch.equal(buffers_ckpt[name], buf), name  # running stats updated once
    ckpt.set_checkpointing([])
    calls.clear()
    _saved_bytes_and_grads(ckpt, image, theta)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="unknown checkpointing groups"):
        ckpt.set_checkpointing(["decoder"])


def test_fp32_precision_turns_cuda_tf32_off():
    """``fp32`` on CUDA runs without TF32 (PyTorch's cuDNN default moves parity outputs by up to
    1 D, bench/gpu_check.py), ``tf32`` with it; the global flags come back afterwards. The flags
    are plain settings read by CUDA kernels only, so this runs without a GPU."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    try:
        cudnn.allow_tf32, matmul.allow_tf32 = True, False
        with autocast("cuda", "fp32"):
            assert not cudnn.allow_tf32 and not matmul.allow_tf32
        with autocast("cuda:0", "tf32"):
            assert cudnn.allow_tf32 and matmul.allow_tf32
        assert (cudnn.allow_tf32, matmul.allow_tf32) == (True, False)
        with tf32_mode("bf16"):  # the switches are global; TF32 only by name
            assert not cudnn.allow_tf32 and not matmul.allow_tf32
        with pytest.raises(ValueError, match="precision must be one of"):
            autocast("cpu", "fp8")
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
