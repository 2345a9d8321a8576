"""Numeric precision of a forward pass: float32 (the authors'), TF32, or ``torch.autocast`` at 16
bits.

``fp32`` is strict float32 on CUDA too: PyTorch runs cuDNN convolutions in TF32 by default
(``torch.backends.cudnn.allow_tf32``), which moves the outputs of the authors' function by up to
1 D at 2048² (``bench/gpu_check.py``, parity section); ``tf32`` allows it (on CPU it is fp32).
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
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {tuple(PRECISIONS)}, got {precision!r}")
    return precision


@contextlib.contextmanager
def _cuda_tf32(allowed: bool) -> Iterator[None]:
    """TF32 in cuDNN convolutions and CUDA matrix products allowed or not, restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward (and its backward) runs in at ``precision`` on ``device``."""
    dtype = PRECISIONS[check_precision(precision)]
    device_type = torch.device(device).type
    if dtype is not None:
        return torch.autocast(device_type, dtype=dtype)
    if device_type == "cuda":
        return _cuda_tf32(precision == "tf32")
    return contextlib.nullcontext()
