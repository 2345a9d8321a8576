"""The authors' learning-rate schedule as a plain function of the fractional epoch (facts §5.2).

Their ``CosineAnnealingWarmUpRestarts(T_0=5, T_warmup=0.01, T_mult=1, eta_min=0, decay=0.5)`` no
longer runs on current PyTorch (facts §8 item 18); this is the same curve: a linear warm-up over the
first 1 % of an epoch, a cosine decay to ``eta_min`` over 5 epochs, then a warm restart with the
peak halved, repeated.
"""

from __future__ import annotations

import math


def cosine_warm_restarts(
    t: float,
    base_lr: float,
    period: float = 5.0,
    warmup: float = 0.01,
    decay: float = 0.5,
    eta_min: float = 0.0,
) -> float:
    """Learning rate at fractional epoch ``t >= 0`` (``epoch + iteration / iterations_per_epoch``).

    ``T = t mod period``, ``k = floor(t / period)``; ``lr = eta_min + (peak - eta_min) * w`` with
    ``peak = base_lr * decay**k`` and ``w = T / warmup`` during the warm-up, else
    ``w = (1 + cos(pi (T - warmup) / (period - warmup))) / 2``.
    """
    if t < 0:
        raise ValueError(f"fractional epoch must be >= 0, got {t}")
    cycle = math.floor(t / period)
    t_cur = t - cycle * period
    peak = base_lr * decay**cycle
    if t_cur < warmup:
        weight = t_cur / warmup
    else:
        weight = 0.5 * (1.0 + math.cos(math.pi * (t_cur - warmup) / (period - warmup)))
    return eta_min + (peak - eta_min) * weight
