#!/bin/bash
# The BANKING77 (MiniLM) runs missing from the loaded ones, on the idle machine, committed
# code, 2 torch threads, one after another; outputs benchmarks/results/text_runs/idle_*.json
cd "$(dirname "$0")/../../.."
export TRANSFERLAB_CACHE=/tmp/tlcache_text_idle TRANSFERLAB_DATA=${TRANSFERLAB_DATA:-/work/shared/datasets} HF_HUB_OFFLINE=1
PY=${PY:-.venv/bin/python}
OUT=benchmarks/results/text_runs
run() { regime=$1; name=$2; shift 2; task=banking77:max_length=64; [ "$regime" = k10 ] && task=banking77:per_class=10:max_length=64
  s=$(date +%s.%N); $PY -m transferlab transfer --source minilm --task $task --json --quiet "$@" > $OUT/idle_${regime}_$name.json 2> /tmp/idle_${regime}_$name.err
  e=$(date +%s.%N); echo "idle/$regime: $name wall_s=$(echo "$e - $s" | bc) end=$(date -u +%H:%M:%S) commit=$(git rev-parse --short HEAD) load=$(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT/walls.txt; }
FT10="--optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 10"
FT1="--optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 1"
run k10 finetune-1.0 --protocol finetune --lr-mult 1.0 $FT10
run k10 norm-only --protocol norm-only $FT10
run full head-only --protocol head-only --optimizer adamw --lr 5e-3 --weight-decay 0.0 --batch-size 128 --epochs 10
run full freeze3 --protocol freeze:3 $FT1
run full finetune-0.1 --protocol finetune --lr-mult 0.1 $FT1
run full finetune-1.0 --protocol finetune --lr-mult 1.0 $FT1
run full norm-only --protocol norm-only $FT1
