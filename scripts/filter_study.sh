#!/usr/bin/env bash
# The forensic-filter study on a CIFAKE subset: one model per input filter, same seeded splits,
# each evaluated on the clean test subset and the robustness tiers; prints one Markdown table.
#   bash scripts/filter_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]
# CIFAKE_DIR: the extracted dataset ({train,test}/{REAL,FAKE}), e.g. after
#   mkdir -p /tmp/aiclassify-data && tar -xzf ../shared/data/cifake.tar.gz -C /tmp/aiclassify-data
set -euo pipefail
data=${1:?usage: filter_study.sh CIFAKE_DIR [OUT_DIR] [MODEL]}
out=${2:-runs/filter-study}
model=${3:-cnn_small3}
python=${PYTHON:-.venv/bin/python}
for filter in none gray_world gaussian_blur median_blur srm; do
  "$python" -m aiclassify.compare --config cifake.yaml --models "$model" --no-figures \
    --set data.path="$data" --set data.filter="$filter" --set train.epochs=8 \
    --subset train=2500 --subset test=1000 --out "$out/$filter"
done
"$python" - "$out" "$model" <<'PY'
import json, sys
from pathlib import Path
out, model = Path(sys.argv[1]), sys.argv[2]
columns = ["accuracy", "roc_auc", "acc_jpeg_q75", "acc_jpeg_q50", "acc_downscale_half", "acc_blur_sigma1", "train_seconds"]
print("| filter | " + " | ".join(columns) + " |")
print("|---" * (len(columns) + 1) + "|")
for folder in sorted(p for p in out.iterdir() if (p / "comparison.json").is_file()):
    row = next(r for r in json.loads((folder / "comparison.json").read_text())["rows"] if r["model"] == model)
    print(f"| {folder.name} | " + " | ".join(f"{row[c]:.4f}" if c != "train_seconds" else f"{row[c]:.0f}" for c in columns) + " |")
PY
