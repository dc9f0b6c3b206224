#!/bin/bash
# full-set fine-tuning that fits in the time left: freeze:5 (layer6 + head train on cached layer-5 states), 2 epochs, one thread
cd /work/wt/text
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TRANSFERLAB_CACHE=/tmp/tlcache_text TRANSFERLAB_DATA=/work/shared/datasets PYTHONPATH=$PWD/runs/snap3
s=$(date +%s.%N)
/work/main/.venv/bin/python -m transferlab transfer --source minilm --task banking77:max_length=64 --json --quiet --protocol freeze:5 --optimizer adamw --lr 5e-4 --weight-decay 0.01 --batch-size 32 --epochs 2 > runs/real1/full_freeze5.json 2> runs/real1/full_freeze5.err
e=$(date +%s.%N); echo "freeze5 wall_s=$(echo "$e - $s" | bc) end=$(date +%H:%M:%S)" >> runs/real1/full_walls.txt
