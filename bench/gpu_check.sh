#!/usr/bin/env bash
# One-command GPU check: CUDA parity with the authors' references and the CPU, autocast errors and
# forward times at 2048², EGL rendering, training step time and peak memory per phase, precision
# and checkpointing at 2048² batch 2, and two-process NCCL when two GPUs are there.
#
#   bash bench/gpu_check.sh            # ~6 min on one H200
#
# PYTHON picks the interpreter (default: the project's .venv, else python3); CUDA_VISIBLE_DEVICES
# the GPUs. Exits non-zero when a check fails; the timings are figures, not checks.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python
fi
export PYOPENGL_PLATFORM=egl PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || status=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'cuDNN', torch.backends.cudnn.version(), 'GPUs', torch.cuda.device_count())"
"$PYTHON" -m bench.gpu_check || status=1
echo "== autocast cost on the demo people (trained weights, 512², CUDA) =="
"$PYTHON" -m bench.bench_precision --device cuda || status=1
echo "== training step at 2048², batch 2 (the paper's; p1-fp32 twice: run-to-run noise) =="
"$PYTHON" -m bench.bench_train --device cuda --res 2048 --batch 2 --steps 3 \
    --configs p1-fp32 p1-fp32 p1-tf32 p1-fp32-ckpt p1-bf16 p1-bf16-ckpt p1-fp16-ckpt \
    p2-fp32 p2-tf32 p2-fp32-ckpt p2-bf16 p2-bf16-ckpt p2-fp16-ckpt || status=1
echo "gpu_check.sh: $([[ $status == 0 ]] && echo all ok || echo FAILED)"
exit $status
