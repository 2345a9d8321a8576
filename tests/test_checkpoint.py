"""Checkpoint loading (models/checkpoint.py): the authors' ``.pth.tar`` layout, ours, and every way
a checkpoint can fail to fit (missing, unexpected, mis-shaped keys, missing or corrupt file)."""

from __future__ import annotations

import os

import pytest
import torch

from models import CheckpointError, build_model, load_checkpoint
from models.checkpoint import extract_state_dict, load_state_dict_strict
from models.recipe import recipe_state_dict

RES, WIDTH = 256, 0.125  # small and fast; the key names are the authors' at any width


def small(phase: int = 2, width: float = WIDTH):
    return build_model(phase=phase, res=RES, width=width)


def authors_checkpoint(state: dict) -> dict:
    """The layout of the authors' ``ckpt_bg_mask.pth.tar`` (DataParallel ``module.`` prefix)."""
    return {
        "epoch": 7,
        "model": "Model",
        "best_loss": 0.125,
        "model_state_dict": {f"module.{k}": v for k, v in state.items()},
        "optimizer_state_dict": {},
    }


def assert_state_equal(model: torch.nn.Module, state: dict) -> None:
    own = model.state_dict()
    assert list(own) == list(state)
    for k, v in state.items():
        assert own[k].dtype == v.dtype and torch.equal(own[k], v), k


@pytest.fixture(scope="module")
def recipe2() -> dict:
    return recipe_state_dict(small(2))


def test_authors_format_loads_strictly(tmp_path, recipe2):
    path = tmp_path / "ckpt_bg_mask.pth.tar"
    torch.save(authors_checkpoint(recipe2), path)
    model = small(2)
    checkpoint = load_checkpoint(model, path)
    assert_state_equal(model, recipe2)
    assert checkpoint["epoch"] == 7 and checkpoint["best_loss"] == 0.125
    assert checkpoint["model"] == "Model"


def test_build_model_with_checkpoint(tmp_path, recipe2):
    path = tmp_path / "authors.pth.tar"
    torch.save(authors_checkpoint(recipe2), path)
    model = build_model(phase=2, res=RES, width=WIDTH, checkpoint=path)
    assert_state_equal(model, recipe2)
    model = build_model(phase=2, res=RES, width=WIDTH, checkpoint=str(path))
    assert_state_equal(model, recipe2)


def test_our_format_loads(tmp_path, recipe2):
    path = tmp_path / "ours.pt"
    torch.save({"model": recipe2, "epoch": 3}, path)
    model = small(2)
    assert load_checkpoint(model, path)["epoch"] == 3
    assert_state_equal(model, recipe2)


def test_bare_state_dict_loads(tmp_path, recipe2):
    path = tmp_path / "bare.pt"
    torch.save(recipe2, path)
    model = small(2)
    load_checkpoint(model, path)
    assert_state_equal(model, recipe2)


def test_extract_state_dict_layouts(recipe2):
    prefixed = {f"module.{k}": v for k, v in recipe2.items()}
    for ckpt in (
        {"model_state_dict": prefixed},
        {"model": recipe2},
        {"state_dict": prefixed},
        recipe2,
        prefixed,
    ):
        assert list(extract_state_dict(ckpt)) == list(recipe2)
    with pytest.raises(CheckpointError, match="expected a dict"):
        extract_state_dict([1, 2, 3], "list.pt")
    with pytest.raises(CheckpointError, match="not a tensor"):
        extract_state_dict({"a.weight": torch.zeros(1), "b.bias": 3.0}, "mixed.pt")


def test_save_load_round_trip_of_model(tmp_path):
    """A model's own state dict, saved our way, reloads into a fresh model bit for bit."""
    model = small(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "round.pt"
    torch.save({"model": model.state_dict()}, path)
    fresh = small(2)
    load_checkpoint(fresh, path)
    assert_state_equal(fresh, model.state_dict())


def test_phase1_checkpoint_into_phase2_model(tmp_path):
    state1 = recipe_state_dict(small(1))
    path = tmp_path / "phase1.pth.tar"
    torch.save(authors_checkpoint(state1), path)
    model = small(2)
    refine_keys = [k for k in model.state_dict() if k.startswith("refine.")]
    assert len(refine_keys) == 90
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"{len(refine_keys)} missing key(s)" in msg
    listed = [line.strip() for line in msg.splitlines() if line.startswith("    ")]
    listed = [k for k in listed if k != "..."]
    assert listed and all(k in refine_keys for k in listed)
    assert refine_keys[0] in msg
    assert "unexpected" not in msg and "mis-shaped" not in msg

    # With the refine keys allowed to be missing, everything else loads; refine keeps its init.
    refine_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("refine.")}
    load_checkpoint(model, path, allow_missing=("refine.",))
    own = model.state_dict()
    for k, v in state1.items():
        assert torch.equal(own[k], v), k
    for k, v in refine_before.items():
        assert torch.equal(own[k], v), k


def test_allow_missing_does_not_hide_other_errors(tmp_path):
    state1 = recipe_state_dict(small(1))
    del state1["img2normal_face.Conv1.conv.0.bias"]
    path = tmp_path / "phase1_broken.pth.tar"
    torch.save(authors_checkpoint(state1), path)
    with pytest.raises(CheckpointError, match="img2normal_face.Conv1.conv.0.bias"):
        load_checkpoint(small(2), path, allow_missing=("refine.",))


def test_mis_shaped_checkpoint(tmp_path):
    wide = recipe_state_dict(small(2, width=0.25))
    path = tmp_path / "wide.pth.tar"
    torch.save(authors_checkpoint(wide), path)
    model = small(2, width=WIDTH)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="mis-shaped") as info:
        load_checkpoint(model, path)
    msg = str(info.value)
    # e.g. "img2normal_face.Conv1.conv.0.weight: checkpoint (16, 6, 3, 3) vs model (8, 6, 3, 3)"
    assert (
        "img2normal_face.Conv1.conv.0.weight: checkpoint (16, 6, 3, 3) vs model (8, 6, 3, 3)" in msg
    )
    assert "missing" not in msg and "unexpected" not in msg
    # Nothing was loaded.
    assert_state_equal(model, before)


def test_unexpected_key_is_named(tmp_path, recipe2):
    state = dict(recipe2)
    state["stn.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth.tar"
    torch.save(authors_checkpoint(state), path)
    with pytest.raises(CheckpointError, match="unexpected") as info:
        load_checkpoint(small(2), path)
    assert "stn.extra.weight" in str(info.value)
    assert "1 unexpected key(s)" in str(info.value)


def test_phase2_checkpoint_into_phase1_model_is_unexpected(tmp_path, recipe2):
    path = tmp_path / "phase2.pth.tar"
    torch.save(authors_checkpoint(recipe2), path)
    with pytest.raises(CheckpointError, match="90 unexpected key"):
        load_checkpoint(small(1), path)


def test_load_state_dict_strict_direct(recipe2):
    model = small(2)
    load_state_dict_strict(model, recipe2)
    assert_state_equal(model, recipe2)
    broken = dict(recipe2)
    broken.pop("refine.merge3_2.bias")
    with pytest.raises(CheckpointError, match="refine.merge3_2.bias"):
        load_state_dict_strict(small(2), broken, source="mine")


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "ckpt.pth.tar"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(small(2), path)
    assert os.fspath(path) in str(info.value)
    with pytest.raises(CheckpointError, match="nope"):
        build_model(phase=2, res=RES, width=WIDTH, checkpoint=path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.pth.tar"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(small(2), path)
    assert os.fspath(path) in str(info.value)


def test_truncated_file(tmp_path, recipe2):
    good = tmp_path / "good.pt"
    torch.save({"model": recipe2}, good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(small(2), bad)
    assert os.fspath(bad) in str(info.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(small(2), tmp_path)


def test_phase2_checkpoint_into_phase1_model_with_drop(tmp_path, recipe2):
    """Continuing phase 1 from a phase-2 checkpoint: ``drop`` leaves its refinement net out and
    everything else loads strictly (a missing phase-1 key is still an error)."""
    path = tmp_path / "phase2.pth.tar"
    torch.save(authors_checkpoint(recipe2), path)
    model = small(1)
    load_checkpoint(model, path, drop=("refine.",))
    assert_state_equal(model, {k: v for k, v in recipe2.items() if not k.startswith("refine.")})
    broken = dict(recipe2)
    broken.pop("ImgNorm_to_Dep.Conv_1x1.weight")
    torch.save(authors_checkpoint(broken), path)
    with pytest.raises(CheckpointError, match="1 missing key"):
        load_checkpoint(small(1), path, drop=("refine.",))
