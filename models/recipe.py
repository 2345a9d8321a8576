"""Deterministic "recipe" weights of the parity fixture (``shared/spec/parity/README.md`` §5).

Every state-dict entry is drawn from its own CPU generator seeded with the CRC-32 of its key, so the
values do not depend on construction order. Used for the parity tests, the demo and benchmarks;
these are *not* trained weights.
"""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn

# Depth-head offsets chosen by the fixture so that outputs are not flat at ReLU6 / 0.5 limits.
RECIPE_OVERRIDES: dict[str, list[float]] = {
    "ImgNorm_to_Dep.Conv_1x1.bias": [5.5, 1.5, 1.894],
    "refine.merge3_2.bias": [6.9, 4.0, 0.5],
}


def _entry_kinds(model: nn.Module) -> dict[str, str]:
    kinds = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.Conv2d):
            kinds[prefix + "weight"] = "conv_weight"
            kinds[prefix + "bias"] = "conv_bias"
        elif isinstance(module, nn.BatchNorm2d):
            for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                kinds[prefix + suffix] = f"bn_{suffix}"
    return kinds


def recipe_tensor(key: str, shape: tuple[int, ...], kind: str) -> torch.Tensor:
    """One state-dict entry of the recipe (float32; int64 zero for ``num_batches_tracked``)."""
    if key in RECIPE_OVERRIDES:
        return torch.tensor(RECIPE_OVERRIDES[key], dtype=torch.float32)
    if kind == "bn_num_batches_tracked":
        return torch.zeros((), dtype=torch.int64)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    if kind == "bn_running_var":
        return 1 + 0.5 * torch.rand(shape, generator=g, dtype=torch.float32)
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    if kind == "conv_weight":
        out, _, kh, kw = shape
        return x * math.sqrt(2 / (kh * kw * out))
    scale = {"conv_bias": 0.01, "bn_weight": 0.1, "bn_bias": 0.1, "bn_running_mean": 0.1}[kind]
    return 1 + scale * x if kind == "bn_weight" else scale * x


def recipe_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Recipe weights for every entry of ``model.state_dict()`` (keys are the authors' names)."""
    kinds = _entry_kinds(model)
    return {k: recipe_tensor(k, tuple(v.shape), kinds[k]) for k, v in model.state_dict().items()}
