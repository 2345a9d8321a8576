"""bench/bench_inference.py: its ``authors`` configuration computes the model's function the
authors' way (same outputs as a plain eval call), and the best-of-rounds / bar bookkeeping."""

from __future__ import annotations

import torch

from bench.bench_inference import (
    against_authors,
    authors_forward,
    authors_model,
    best_per_config,
    recipe_model,
)
from bench.common import fixture_theta
from models.blocks import ConvBlock, UpConv

RES = 256


def test_authors_forward_equals_the_plain_eval_call() -> None:
    lean = recipe_model(RES).eval()
    authors = authors_model(RES)
    probe = authors.img2normal_down.Conv1.conv[0].weight
    assert probe.is_contiguous() and not authors.training
    assert lean.img2normal_down.Conv1.conv[0].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    assert authors.refine.tile_pixels == 0
    block, up = authors.refine.merge1_1, authors.refine.depth1
    assert isinstance(block, ConvBlock) and block.forward == block.conv.forward
    assert isinstance(up, UpConv) and up.forward == up.up.forward
    assert "forward" not in vars(lean.refine.merge1_1)  # the library's blocks are untouched
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, RES, RES, generator=g) * 2 - 1
    theta = fixture_theta()
    with torch.no_grad():
        ours = lean(image, theta)
    ref = authors_forward(authors, image, theta)
    keys = [
        "pred_depth_front",
        "pred_depth_back",
        "pred_depth_mask",
        "pred_normal_front",
        "pred_normal_back",
        "pred_down_depth_front",
        "pred_down_depth_back",
        "pred_down_depth_mask",
        "occupancy",
    ]
    assert set(keys) <= set(ref)
    for key in ref:
        assert ref[key].shape == ours[key].shape, key
        torch.testing.assert_close(ref[key], ours[key], atol=1e-4, rtol=1e-4, msg=key)
    assert (ref["occupancy"] > 0).any() and (ref["pred_depth_mask"] > 0.5).any()


def _row(config: str, best_s: float, rss: float, res: int = 2048) -> dict:
    return {"config": config, "res": res, "first_s": best_s, "best_s": best_s, "peak_rss_gb": rss}


def test_best_per_config_and_bars() -> None:
    rows = best_per_config(
        [
            _row("authors", 60.0, 9.0),
            _row("lean", 16.0, 1.6),
            _row("bf16", 8.0, 1.2),
            _row("authors", 50.0, 9.1),
            _row("lean", 12.0, 1.5),
            _row("bf16", 9.0, 1.1),
        ]
    )
    assert [(r["config"], r["best_s"], r["peak_rss_gb"], r["rounds"]) for r in rows] == [
        ("authors", 50.0, 9.0, 2),
        ("lean", 12.0, 1.5, 2),
        ("bf16", 8.0, 1.1, 2),
    ]
    lines = against_authors(rows)
    assert "lean vs authors: 4.17x faster, 6.00x less memory" in lines
    assert "bar lean >= 4x the authors' speed at 2048: met (4.17x)" in lines
    assert "bar bf16 >= 8x the authors' speed at 2048: NOT met (6.25x)" in lines
    assert not any(line.startswith("bar") for line in against_authors([_row("authors", 1, 1, 512)]))
    assert against_authors([_row("lean", 1.0, 1.0)]) == []
