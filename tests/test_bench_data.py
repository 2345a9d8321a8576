"""bench/bench_data.py's measured stages are the dataset's own, and its node arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_data import make_backgrounds, node_requirement, stage_breakdown, through_loader
from datasets import ReconDataset


def test_stages_rebuild_the_sample_and_the_loader_counts(synthetic_training_set, tmp_path: Path):
    root, train_list, _ = synthetic_training_set
    backgrounds = make_backgrounds(tmp_path, count=2)
    ds = ReconDataset(root, train_list, 256, True, backgrounds=backgrounds, background_prob=1.0)
    stages, equal = stage_breakdown(ds, 3)
    assert equal and {"colour jitter", "composite", "soften boundary"} <= set(stages)
    assert all(v > 0 for v in stages.values())
    result = through_loader(ds, workers=1, batch=2, samples=4, warmup=1)
    assert result["samples"] == 4 and result["rate"] > 0 and result["cpu_s"] > 0


def test_node_requirement():
    need = node_requirement(gpus=4, batch=2, step_s=0.5, worker_rate=3.0, cpu_s=0.4, cores=32)
    assert need["required"] == pytest.approx(16.0) and need["workers_per_gpu"] == 2
    assert need["cores_needed"] == pytest.approx(16 * 0.4 + 4) and need["reached"]
    assert not node_requirement(4, 2, 0.1, 1.0, 1.0, 32)["reached"]  # 80 samples/s
