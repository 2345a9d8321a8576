"""Numeric precision: float32 (the authors'), TF32, or ``torch.autocast`` at 16 bits.

``fp32`` is strict float32 on CUDA too: PyTorch runs cuDNN convolutions in TF32 by default
(``torch.backends.cudnn.allow_tf32``), which moves the outputs of the authors' function by up to
1 D at 2048² (``bench/gpu_check.py``, parity section); ``tf32`` allows it. The TF32 switches are
global settings read by CUDA kernels only; on a CPU they change nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "tf32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Precision names: None = float32 (TF32 on CUDA for ``tf32`` only), else the autocast type."""


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    return precision


@contextlib.contextmanager
def tf32_mode(precision: str) -> Iterator[None]:
    """TF32 in CUDA convolutions and matrix products allowed for ``tf32`` only, restored after.

    Training holds it over the whole run (forward, backward with its checkpoint recomputation,
    validation); :func:`autocast` over a forward.
    """
    allowed = check_precision(precision) == "tf32"
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """A forward at ``precision`` on ``device``: :func:`tf32_mode` and, for bf16 / fp16,
    ``torch.autocast`` (CPU or CUDA). An unknown precision is a ValueError here, not on entry."""
    dtype = PRECISIONS[check_precision(precision)]
    return _forward_context(torch.device(device).type, precision, dtype)


@contextlib.contextmanager
def _forward_context(device_type: str, precision: str, dtype: torch.dtype | None) -> Iterator[None]:
    with tf32_mode(precision):
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type, dtype=dtype):
                yield
