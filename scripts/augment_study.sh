#!/usr/bin/env bash
# The augmentation study on a CIFAKE subset: one model per train.augment set (none, flips,
# jpeg+downscale, noise, color_jitter, crop_resize, all of them), same seeded splits, each
# evaluated on the clean test subset and the robustness tiers; prints one Markdown table.
#   bash scripts/augment_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]
# Same as: python -m aiclassify.study augment --data CIFAKE_DIR (2,500 train and 1,000 test images
# per class, 8 epochs at most, cnn_small3). Finished runs in OUT_DIR are reused.
set -euo pipefail
data=${1:?usage: augment_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]}
out=${2:-runs/augment-study}
model=${3:-cnn_small3}
python=${PYTHON:-.venv/bin/python}
exec "$python" -m aiclassify.study augment --data "$data" --out "$out" --model "$model" \
  --subset train=2500 --subset test=1000 --epochs 8
