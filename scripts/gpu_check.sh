#!/usr/bin/env bash
# The GPU checks as one script (about 8 minutes on one GPU): the CUDA-marked tests (bf16 encoding, the hard path,
# fp16/bf16 training steps, GradCache replaying the CUDA random state), then scripts/gpu_check.py: bf16 encode
# throughput of MiniLM on 50k synthetic passages, training-step times of both arms, and a 2-process NCCL DDP step
# when there are 2 GPUs. Everything lands in $OUT (default gpu_check_out); the figures in $OUT/gpu_check.json.
# Run from the repository root after `pip install -e ".[offline,dev]"` with a CUDA build of torch.
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python -m pytest -q -m cuda tests/test_cuda.py --junitxml "$OUT/cuda_tests.xml" 2>&1 | tee "$OUT/cuda_tests.txt"
python scripts/gpu_check.py --out "$OUT" 2>&1 | grep -v docs_iter | tee "$OUT/gpu_check.txt"
