#!/usr/bin/env bash
# The GPU checks, as one script: the CUDA-marked tests, then bf16 timings of training steps,
# corpus encoding (against sentence-transformers) and the SciFact evaluation.
# Run from the repository root on a machine with a CUDA GPU, in an environment where
# `pip install -e ".[offline,dev]"` has been run (with a CUDA build of torch).
set -euo pipefail
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.txt"
python scripts/bench_maw.py --dtype bf16 --batch-size 128 2>&1 | grep -v docs_iter | tee "$OUT/bench_maw_bf16.txt"
python scripts/bench_encode.py --dtypes fp32,bf16 --batch-size 128 2>&1 | grep -v docs_iter | tee "$OUT/bench_encode.txt"
if [ -n "${IR_DATASETS_HOME:-}" ]; then
  maw-bench eval --dataset beir/scifact/test --dtype bf16 --batch-size 256 --output "$OUT/scifact_bf16" 2>&1 | tail -12
  python -c "import json,sys; d=json.load(open('$OUT/scifact_bf16/metrics.json')); print('nDCG@10', d['results']['beir/scifact/test']['zero-shot']['ndcg@10'], 'docs/s', d['timings'])" | tee "$OUT/scifact.txt"
fi
