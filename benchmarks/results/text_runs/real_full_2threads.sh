#!/bin/bash
# full-training-set real runs on BANKING77 (MiniLM), one after another; outputs runs/real/full_*.json
cd /work/wt/text
export TRANSFERLAB_CACHE=/tmp/tlcache_text TRANSFERLAB_DATA=/work/shared/datasets PYTHONPATH=$PWD/runs/snap2
PY=/work/main/.venv/bin/python
TASK=banking77:max_length=64
FT="--optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 1"
run() { name=$1; shift; s=$(date +%s.%N); $PY -m transferlab transfer --source minilm --task $TASK --json --quiet "$@" > runs/real/full_$name.json 2> runs/real/full_$name.err; e=$(date +%s.%N); echo "$name wall_s=$(echo "$e - $s" | bc)" >> runs/real/full_walls.txt; }
run linear-probe --protocol linear-probe
run layer-mix --protocol layer-mix
run finetune-0.1 --protocol finetune --lr-mult 0.1 $FT
run freeze3 --protocol freeze:3 $FT
run head-only --protocol head-only --optimizer adamw --lr 5e-3 --weight-decay 0.0 --batch-size 128 --epochs 10
run norm-only --protocol norm-only $FT
run finetune-1.0 --protocol finetune --lr-mult 1.0 $FT
