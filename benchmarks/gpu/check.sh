#!/usr/bin/env bash
# One GPU run (prepare with benchmarks/gpu/prepare.sh; see README.md here): is the CUDA path
# correct, and how fast is it? Phase A runs, in parallel, the test suite with the default
# device ('auto' = cuda there), the CUDA lane (tests marked gpu) and two studies end to end;
# phase B times the GPU benchmarks alone on the machine, each side by side in one run.
# Everything lands in $OUT (JSON results, one log per step, steps.txt, summary.txt); the
# summary is printed last. Every step has a time limit, and the whole call stops starting
# steps at $BUDGET seconds (default 470: one device call of at most ~8 minutes).
# Run from the repository root: bash benchmarks/gpu/check.sh
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"; root=$PWD
BUDGET=${BUDGET:-470}
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || { echo "wheel install failed"; exit 1; }
fi
export PYTHONPATH=/tmp/site:$root/src TRANSFERLAB_DATA=$root/.gpu/datasets PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p ../shared && ln -sfn "$root/.gpu/datasets" ../shared/datasets 2>/dev/null
{ nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader
  python3 -c "import torch, transferlab, os; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cores', len(os.sched_getaffinity(0)))"
  git log -1 --format='commit %h %s' 2>/dev/null; } > "$OUT/env.txt" 2>&1
T0=$SECONDS
# step NAME LIMIT CMD...: run CMD with a time limit (cut to what is left of $BUDGET, minus
# a margin for the summary), its output in $OUT/NAME.txt, its exit code and time in steps.txt.
step() { local name=$1 limit=$2; shift 2; local s=$SECONDS left=$((BUDGET - 10 - SECONDS + T0))
  if [ "$left" -lt 15 ]; then echo "$name skipped (budget spent)" >> "$OUT/steps.txt"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; local rc=$?
  echo "$name rc=$rc $((SECONDS - s))s (limit ${limit}s)" >> "$OUT/steps.txt"; }

# Phase A: correctness on CUDA, in parallel (timings here mean nothing).
pyopts=(-q -p no:cacheprovider -p no:benchmark -o addopts= --tb=short -rfE)
python3 -c "import pytest_timeout" 2>/dev/null && pyopts+=(--timeout=120)
if python3 -c "import xdist" 2>/dev/null; then
  step pytest 150 python3 -m pytest -n 12 "${pyopts[@]}" -m "not gpu" tests &
else  # no pytest-xdist here (prepare.sh adds it): the suites of the GPU-touched code only
  step pytest 150 python3 -m pytest "${pyopts[@]}" -m "not gpu and not slow" \
    tests/test_transfer.py tests/test_data_resident.py tests/test_sweep_gpu_slots.py \
    tests/test_numerics_record.py tests/test_data_batching.py tests/test_sweep_pool.py &
fi
step gpu_lane 150 python3 -m pytest "${pyopts[@]}" -m gpu tests &
step study_fewshot 150 python3 -m transferlab study fewshot --pretrain mnist --target kmnist --shots 1,5 --episodes 3 --budget quick --workers-per-gpu 2 --out /tmp/fs --quiet &
step study_yosinski 150 python3 -m transferlab study yosinski --dataset mnist --split random --seeds 1 --budget quick --workers-per-gpu 2 --out /tmp/yos --quiet &
wait

# Phase B: timings, alone on the machine, each side by side in one run.
step bench_depth_sweep 80 python3 benchmarks/bench_depth_sweep.py --device cuda --strong-baseline --out "$OUT/depth_sweep_cuda.json"
step bench_gpu_peak 50 python3 benchmarks/bench_gpu_peak.py --device cuda --out "$OUT/gpu_peak_cuda.json"
step bench_linear_probe 45 python3 benchmarks/bench_linear_probe.py --device cuda --repeats 3 --out "$OUT/linear_probe_cuda.json"
if python3 benchmarks/bench_fewshot.py --help 2>/dev/null | grep -q -- "--device"; then fsdev=(--device cuda); else fsdev=(); fi
step bench_fewshot 50 python3 benchmarks/bench_fewshot.py "${fsdev[@]}" --out "$OUT/fewshot_cuda.json"
step bench_study_wall 120 python3 benchmarks/bench_study_wall.py --device cuda --timeout 55 --out "$OUT/study_wall_cuda.json"

{ cat "$OUT/env.txt"; cat "$OUT/steps.txt"
  for f in pytest gpu_lane; do echo "--- $f"; tail -n 15 "$OUT/$f.txt" 2>/dev/null; done
  for f in study_fewshot study_yosinski bench_depth_sweep bench_gpu_peak bench_linear_probe bench_fewshot bench_study_wall; do
    echo "--- $f"; tail -n 8 "$OUT/$f.txt" 2>/dev/null; done
  echo "total $((SECONDS - T0))s"; } > "$OUT/summary.txt"
cat "$OUT/summary.txt"
