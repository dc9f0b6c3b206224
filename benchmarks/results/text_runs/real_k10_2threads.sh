#!/bin/bash
# k=10 real runs on BANKING77 (MiniLM), one after another; outputs runs/real/*.json
cd /work/wt/text
export TRANSFERLAB_CACHE=/tmp/tlcache_text TRANSFERLAB_DATA=/work/shared/datasets PYTHONPATH=$PWD/runs/snap1
PY=/work/main/.venv/bin/python
TASK=banking77:per_class=10:max_length=64
FT="--optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 10"
run() { name=$1; shift; s=$(date +%s.%N); $PY -m transferlab transfer --source minilm --task $TASK --json --quiet "$@" > runs/real/k10_$name.json 2> runs/real/k10_$name.err; e=$(date +%s.%N); echo "$name wall_s=$(echo "$e - $s" | bc)" >> runs/real/k10_walls.txt; }
run linear-probe --protocol linear-probe
run freeze3 --protocol freeze:3 $FT
run finetune-0.1 --protocol finetune --lr-mult 0.1 $FT
run norm-only --protocol norm-only $FT
run head-only --protocol head-only $FT
run finetune-1.0 --protocol finetune --lr-mult 1.0 $FT
