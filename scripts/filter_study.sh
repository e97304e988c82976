#!/usr/bin/env bash
# The forensic-filter study on a CIFAKE subset: one model per input filter, same seeded splits,
# each evaluated on the clean test subset, the robustness tiers and with its input filter replaced
# by every other one (train-filter x test-filter matrix); prints the Markdown tables.
#   bash scripts/filter_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]
# CIFAKE_DIR: the extracted dataset ({train,test}/{REAL,FAKE}), e.g. after
#   mkdir -p /tmp/aiclassify-data && tar -xzf ../shared/data/cifake.tar.gz -C /tmp/aiclassify-data
# Same as: python -m aiclassify.study filters --data CIFAKE_DIR (2,500 train and 1,000 test images
# per class, 8 epochs at most, cnn_small3). Finished runs in OUT_DIR are reused.
set -euo pipefail
data=${1:?usage: filter_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]}
out=${2:-runs/filter-study}
model=${3:-cnn_small3}
python=${PYTHON:-.venv/bin/python}
exec "$python" -m aiclassify.study filters --data "$data" --out "$out" --model "$model" \
  --subset train=2500 --subset test=1000 --epochs 8
