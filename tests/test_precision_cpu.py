"""A 16-bit precision this CPU runs slower than float32 is named before the run (issue 18 item 6):
the decision on given facts, the probe on this CPU and under oneDNN capped to AVX2
(``ONEDNN_MAX_CPU_ISA``, the issue's machine simulated with the real kernels), and the warning
from a real Predictor and a real ``train.py``."""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models.precision
from models.precision import (
    SLOW_FACTOR,
    CpuFacts,
    check_cpu_precision,
    cpu_facts,
    cpu_precision_support,
    probe_slowdown,
)

ROOT = Path(__file__).resolve().parents[1]
SAPPHIRE = CpuFacts(
    "Intel(R) Xeon(R) Processor",
    "AVX512",
    frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"}),
)
AVX2_ONLY = CpuFacts("AMD EPYC 7B12", "AVX2", frozenset({"avx2", "fma", "f16c"}))
AVX2_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
"""oneDNN's and ATen's kernels limited to AVX2: this CPU runs as the issue's AVX2 machine."""
WARNING = "WARNING {}: --precision bf16 on this CPU ("
x86_only = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="ONEDNN_MAX_CPU_ISA is x86"
)


def test_summary_names_the_instructions_or_their_absence() -> None:
    assert SAPPHIRE.summary() == (
        "Intel(R) Xeon(R) Processor, AVX512, bf16: avx512_bf16 amx_bf16, fp16: avx512_fp16"
    )
    assert AVX2_ONLY.summary() == "AMD EPYC 7B12, AVX2, no bf16 / fp16 instructions"
    assert CpuFacts("arm", "DEFAULT", frozenset()).summary() == "arm, DEFAULT, flags unknown"


@pytest.mark.parametrize(
    ("facts", "slowdown", "ok"),
    [
        (SAPPHIRE, 0.26, True),  # AMX bf16 (this machine)
        (SAPPHIRE, SLOW_FACTOR, True),
        (SAPPHIRE, 1.8, False),  # fp16 here: the flag alone does not make it fast
        (AVX2_ONLY, 5.9, False),  # the machine
        (AVX2_ONLY, 1.0, True),  # the probe decides, not the flags
    ],
)
def test_decision_follows_the_probe_and_names_the_cpu(
    facts: CpuFacts, slowdown: float, ok: bool
) -> None:
    got, reason = cpu_precision_support("bf16", facts, slowdown)
    assert got is ok
    took = f"a 64-channel convolution took {slowdown:.1f}x its fp32 time"
    assert reason == f"{facts.summary()}; {took}"
    assert cpu_precision_support("fp32", facts, slowdown)[0]
    assert cpu_precision_support("tf32", facts, slowdown)[0]


def test_warning_on_a_slow_cpu_only_and_never_a_probe_for_cuda_or_fp32(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The facts as the AVX2 machine's (monkeypatched detection of ours, not torch's)."""
    logger = logging.getLogger("test_precision_cpu")
    monkeypatch.setattr(models.precision, "cpu_facts", lambda: AVX2_ONLY)
    monkeypatch.setattr(models.precision, "probe_slowdown", lambda p: 5.9)
    with caplog.at_level(logging.WARNING):
        assert not check_cpu_precision("bf16", "cpu", logger)
    assert [r.getMessage() for r in caplog.records] == [
        "--precision bf16 on this CPU (AMD EPYC 7B12, AVX2, no bf16 / fp16 instructions; a "
        "64-channel convolution took 5.9x its fp32 time): expect a run slower than in fp32 "
        "(python -m bench.conv_rate measures this CPU); use --precision fp32"
    ]
    caplog.clear()

    def no_probe(precision: str) -> float:
        raise AssertionError(f"probed {precision}")

    monkeypatch.setattr(models.precision, "probe_slowdown", no_probe)
    with caplog.at_level(logging.WARNING):
        assert check_cpu_precision("bf16", "cuda", logger)
        assert check_cpu_precision("fp16", torch.device("cuda", 1), logger)
        assert check_cpu_precision("fp32", "cpu", logger)
        assert check_cpu_precision("tf32", "cpu", logger)
    assert not caplog.records


@x86_only
def test_probe_on_this_cpu_agrees_with_its_flags() -> None:
    """AMX bf16 runs bf16 faster than float32; without bf16 instructions it is emulated, slower.
    (AVX512-BF16 alone measures 1.8x at the probe's size: not asserted either way.)"""
    facts = cpu_facts()
    assert facts.capability == torch.backends.cpu.get_cpu_capability()
    assert probe_slowdown("fp32") == 1.0
    if "amx_bf16" in facts.flags:
        assert probe_slowdown("bf16") < SLOW_FACTOR
    elif not facts.flags & {"avx512_bf16", "amx_bf16"}:
        assert probe_slowdown("bf16") > SLOW_FACTOR
    else:
        pytest.skip("AVX512-BF16 without AMX: bf16 is near fp32 at the probe's size")


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


PREDICTORS = """
import logging
from inference import Predictor
from models import build_model
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
model = build_model(phase=2, res=256, width=0.125)
for precision in ("fp32", "bf16"):
    Predictor(model, precision=precision)
print("built")
"""


@x86_only
@pytest.mark.parametrize("env", [AVX2_ENV, {}], ids=["avx2", "this_cpu"])
def test_predictor_warns_on_the_avx2_machine(env: dict[str, str]) -> None:
    """A real Predictor at fp32 then bf16, real kernels: one warning with AVX2 kernels (the
    probe measures ~6x), none here with AMX."""
    if not env and "amx_bf16" not in cpu_facts().flags:
        pytest.skip("no AMX bf16 on this CPU: bf16 is slow here too")
    done = run_python(["-c", PREDICTORS], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "built"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    if env:
        assert len(warnings) == 1, done.stderr
        assert warnings[0].startswith(WARNING.format("inference.predictor")), warnings
        assert ", AVX2, " in warnings[0]
        slowdown = float(warnings[0].split("convolution took ")[1].split("x")[0])
        assert slowdown > SLOW_FACTOR
    else:
        assert warnings == []


@x86_only
def test_train_warns_before_anything_else(tmp_path: Path) -> None:
    """``train.py --precision bf16`` on the AVX2 machine: one warning, before the run stops on
    the (empty) data folder."""
    argv = ["train.py", "--phase", "1", "--data_path", str(tmp_path), "--res", "256"]
    argv += ["--width", "0.125", "--device", "cpu", "--precision", "bf16", "--workers", "0"]
    argv += ["--out_dir", str(tmp_path / "out"), "--no_tensorboard", "--no_progress"]
    done = run_python(argv, AVX2_ENV)
    assert done.returncode != 0  # no list/train.txt
    assert "train.txt" in done.stderr  # it got as far as the data
    lines = done.stderr.splitlines()
    warned = [i for i, line in enumerate(lines) if line.startswith(WARNING.format("train"))]
    failed = [i for i, line in enumerate(lines) if "train.txt" in line]
    assert len(warned) == 1 and warned[0] < failed[0], done.stderr  # warned before the data
    assert sum("--precision" in line for line in lines) == 1
