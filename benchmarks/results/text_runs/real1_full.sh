#!/bin/bash
# real runs on BANKING77 (MiniLM), one thread (the shared CPU is oversubscribed), outputs runs/real1/full_*.json
cd /work/wt/text
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TRANSFERLAB_CACHE=/tmp/tlcache_text TRANSFERLAB_DATA=/work/shared/datasets PYTHONPATH=$PWD/runs/snap3
PY=/work/main/.venv/bin/python
FT="--optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 1"
run() { name=$1; shift; s=$(date +%s.%N); $PY -m transferlab transfer --source minilm --task banking77:max_length=64 --json --quiet "$@" > runs/real1/full_$name.json 2> runs/real1/full_$name.err; e=$(date +%s.%N); echo "$name wall_s=$(echo "$e - $s" | bc) end=$(date +%H:%M:%S)" >> runs/real1/full_walls.txt; }
for p in layer-mix finetune-0.1 freeze3 head-only norm-only finetune-1.0; do
  case $p in
    linear-probe) run linear-probe --protocol linear-probe ;;
    layer-mix) run layer-mix --protocol layer-mix ;;
    freeze3) run freeze3 --protocol freeze:3 $FT ;;
    finetune-0.1) run finetune-0.1 --protocol finetune --lr-mult 0.1 $FT ;;
    finetune-1.0) run finetune-1.0 --protocol finetune --lr-mult 1.0 $FT ;;
    norm-only) run norm-only --protocol norm-only $FT ;;
    head-only) run head-only --protocol head-only --optimizer adamw --lr 5e-3 --weight-decay 0.0 --batch-size 128 --epochs 10 ;;
  esac
done
