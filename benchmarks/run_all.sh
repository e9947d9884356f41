#!/usr/bin/env bash
# Every full benchmark run whose numbers are in the README, in order, then the HTML report.
# Hours on a 2-core CPU (gaze ~25 min, pupil ~46 min, domain ~4 min, objective ~17 min,
# speed ~14 min, plus the Johnson and SimGAN training). Needs ../shared/data for the
# real-data parts (pupil, domain, the UnityEyes→MPIIGaze SimGAN check); they skip or fail
# clearly without it. Run from the repository root with the venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1

# Inputs shared by several benchmarks (git-ignored runs/).
[ -d runs/data/train ] || eyepurify render --domain both --n 2000 --size 72x120 --seed 1 --wild-profile v1 --out runs/data/train
[ -d runs/data/test ] || eyepurify render --domain both --n 200 --size 72x120 --seed 2 --wild-profile v1 --out runs/data/test
[ -f runs/johnson/model.safetensors ] || eyepurify train --method johnson --content runs/data/train/wild \
    --style runs/data/train/indoor --out runs/johnson --beta 1e1 --steps 1000 --net johnson_small --backbone lite0 --seed 0
if [ ! -f runs/simgan_renders/refiner.safetensors ]; then
  eyepurify render --domain indoor --n 2000 --seed 11 --wild-profile v1 --out runs/simgan_data/indoor
  eyepurify render --domain wild --n 2000 --seed 12 --wild-profile v1 --out runs/simgan_data/wild
  eyepurify train-simgan --synthetic runs/simgan_data/indoor/indoor --real runs/simgan_data/wild/wild \
      --out runs/simgan_renders --size 36x60 --channels 1 --seed 0 --steps 300 \
      --pretrain-refiner-steps 80 --pretrain-disc-steps 40
fi
J=runs/johnson/model.safetensors

eyepurify bench paired --data runs/data/test --n 200 --models ours=src/eyepurify/weights/purifier.safetensors \
    Johnson=$J --out benchmarks/results/paired
eyepurify bench gaze --out benchmarks/results/gaze --n-train 3000 --n-test 500 --johnson $J \
    --optimize-n 20 --optimize-iters 100 --simgan runs/simgan_renders/refiner.safetensors \
    --cnn-epochs 6 --cnn-patience 3 --cnn-minutes 12
eyepurify bench pupil --out benchmarks/results/pupil --seg-steps 1000 --seg-batch 8 --pur-steps 300 \
    --pur-batch 4 --optimize-n 6 --optimize-iters 20 --renders 800 --seed 0 --threads 1
eyepurify bench domain --out benchmarks/results/domain --johnson $J
eyepurify bench domain --backbone random --out benchmarks/results/domain/random_features --johnson $J
eyepurify bench objective --out benchmarks/results/objective --sizes 72x120,144x240,288x480 --iters 100,100,80 --n 4
eyepurify bench speed --out benchmarks/results/speed --threads 1 --repeats 3 --gatys-iters 2
python benchmarks/segmentation_real.py
eyepurify report benchmarks/results --out benchmarks/results/report.html
