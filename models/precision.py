"""Numeric precision: float32 (the authors'), TF32, or ``torch.autocast`` at 16 bits.

``fp32`` is strict float32 on CUDA too: PyTorch runs cuDNN convolutions in TF32 by default
(``torch.backends.cudnn.allow_tf32``), which moves the outputs of the authors' function by up to
1 D at 2048² (``bench/gpu_check.py``, parity section); ``tf32`` allows it. The TF32 switches are
global settings read by CUDA kernels only; on a CPU they change nothing.

``bf16`` / ``fp16`` are fast only on CPUs that compute in them (bf16: AMX, and at small sizes not
even AVX512-BF16 alone); elsewhere oneDNN emulates them, several times slower than float32
(:data:`SLOW_FACTOR`). :func:`check_cpu_precision` says so before a CPU run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


SLOW_FACTOR = 1.25
"""A 16-bit precision is slow on this CPU when :func:`probe_slowdown` measures more than 1.25x
the float32 time. Measured on a Sapphire Rapids Xeon with oneDNN capped by
``ONEDNN_MAX_CPU_ISA``: bf16 0.2x with AMX, 1.8x with AVX512-BF16 alone, 4.9x with AVX-512 but
no bf16, 5.9x with AVX2 (where ``bench/conv_rate.py`` gives 11-16x at the model's 264² tiles);
fp16 1.7x with AVX512-FP16 but no AMX-FP16, 6-9x without. Repeated probes vary by under 10 %."""

NATIVE_FLAGS: dict[str, tuple[str, ...]] = {
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
    "fp16": ("avx512_fp16", "amx_fp16", "asimdhp"),
}
"""CPU flags (``/proc/cpuinfo``; x86, then Arm) of instructions that compute in that type. Named
in messages only: the probe decides, as a flag does not make a type fast (fp16 with AVX512-FP16
but no AMX-FP16 is 1.7x slower than float32)."""

PROBE_CHANNELS, PROBE_SIDE, PROBE_REPEAT = 64, 32, 7
"""The probe: a [1, 64, 32, 32] -> [1, 64, 32, 32] 3x3 convolution (the networks' commonest
shape), channels_last, one thread, best of 7 after a warm-up, float32 and the precision
alternated: about 30 ms with native bf16, 100 ms emulated."""


@dataclass(frozen=True)
class CpuFacts:
    """What a CPU offers: ``name`` (model name), ``capability``
    (``torch.backends.cpu.get_cpu_capability()``: DEFAULT, AVX2, AVX512 ...), ``flags`` (its
    ``/proc/cpuinfo`` flags; empty where the system does not list them)."""

    name: str
    capability: str
    flags: frozenset[str]

    def summary(self) -> str:
        """``"<name>, <capability>, bf16: avx512_bf16 amx_bf16, fp16: avx512_fp16"``, or
        ``"..., no bf16 / fp16 instructions"``, or ``"..., flags unknown"``."""
        if not self.flags:
            return f"{self.name}, {self.capability}, flags unknown"
        native = {p: [f for f in names if f in self.flags] for p, names in NATIVE_FLAGS.items()}
        parts = [f"{p}: {' '.join(found)}" for p, found in native.items() if found]
        missing = [p for p, found in native.items() if not found]
        if missing:
            parts.append(f"no {' / '.join(missing)} instructions")
        return ", ".join([self.name, self.capability, *parts])


@functools.cache
def cpu_facts() -> CpuFacts:
    """This machine's :class:`CpuFacts` (``/proc/cpuinfo`` on Linux; elsewhere no flags)."""
    name, flags = platform.processor() or platform.machine(), frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and value.strip():
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuFacts(name, torch.backends.cpu.get_cpu_capability(), flags)


@functools.cache
def probe_slowdown(precision: str) -> float:
    """Time of a convolution (:data:`PROBE_CHANNELS`) at ``precision`` over its float32 time, on
    this CPU with this PyTorch (so the real kernels, whatever the flags say); 1.0 for fp32 / tf32.

    One thread: the ratio is a property of the instructions, and one thread is not held up by
    another process on a shared core as a team of threads is. Measured once per process.
    """
    if PRECISIONS[check_precision(precision)] is None:
        return 1.0
    shape = (1, PROBE_CHANNELS, PROBE_SIDE, PROBE_SIDE)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    w = torch.randn(PROBE_CHANNELS, PROBE_CHANNELS, 3, 3).contiguous(
        memory_format=torch.channels_last
    )
    best = {"fp32": float("inf"), precision: float("inf")}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i in range(PROBE_REPEAT + 1):
                for p in best:
                    with autocast("cpu", p):
                        start = time.perf_counter()
                        F.conv2d(x, w, padding=1)
                        seconds = time.perf_counter() - start
                    if i:  # the first round creates the kernels
                        best[p] = min(best[p], seconds)
    finally:
        torch.set_num_threads(threads)
    return best[precision] / best["fp32"]


def cpu_precision_support(precision: str, facts: CpuFacts, slowdown: float) -> tuple[bool, str]:
    """Whether a CPU run at ``precision`` is not slower than float32, and why.

    Args:
        precision: one of :data:`PRECISIONS`.
        facts: the CPU (:func:`cpu_facts`), named in the reason.
        slowdown: :func:`probe_slowdown` of ``precision`` on it; above :data:`SLOW_FACTOR` is slow.
    Returns:
        (ok, reason), e.g. (False, "Intel Xeon, AVX2, no bf16 / fp16 instructions; a 64-channel
        convolution took 5.9x its fp32 time").
    """
    if PRECISIONS[check_precision(precision)] is None:
        return True, f"{facts.summary()}; float32"
    reason = f"{facts.summary()}; a 64-channel convolution took {slowdown:.1f}x its fp32 time"
    return slowdown <= SLOW_FACTOR, reason


def check_cpu_precision(precision: str, device: torch.device | str, logger: logging.Logger) -> bool:
    """Warn (one line on ``logger``) before a CPU run at a 16-bit precision that this CPU runs
    slower than float32; True when the run is not slow. CUDA devices and fp32 / tf32 pass without
    a probe.

    It warns and does not fall back to fp32: fp32 is the default, so bf16 / fp16 was asked for by
    name, and its outputs differ from fp32's (``bench/bench_precision.py`` measures that on
    purpose); the probe is a 50 ms estimate, and a slow run is still a correct one.
    """
    if torch.device(device).type != "cpu" or PRECISIONS[check_precision(precision)] is None:
        return True
    ok, reason = cpu_precision_support(precision, cpu_facts(), probe_slowdown(precision))
    if not ok:
        logger.warning(
            "--precision %s on this CPU (%s): expect a run slower than in fp32 (python -m "
            "bench.conv_rate measures this CPU); use --precision fp32",
            precision,
            reason,
        )
    return ok
