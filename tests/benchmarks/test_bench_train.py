"""The training benchmark: its FLOP count, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
from conftest import load_script

from aiclassify.models import build_model


def test_forward_flops_of_cnn5_at_224():
    convolution_macs = 224**2 * (3 * 9 * 32 + 32 * 9 * 32) + 4 * 112**2 * (32 * 9 * 64 + 64 * 9 * 64)
    dense_macs = 7 * 7 * 512 * 512 + 512
    flops = load_script("bench_train").forward_flops(build_model("cnn5", 224))
    assert flops == 2 * (convolution_macs + dense_macs)


@pytest.mark.slow
def test_benchmark_runs_on_demo_data_and_writes_json(tmp_path, demo_data):
    out = tmp_path / "bench.json"
    argv = ["--config", "demo.yaml", "--data", str(demo_data), "--steps", "4", "--rounds", "2"]
    argv += ["--out", str(out), "--set", "model.name=cnn_small2", "--set", "train.batch_size=8"]
    assert load_script("bench_train").main(argv) == 0
    results = json.loads(out.read_text())
    assert results["pipeline_images_per_second"] > 0 and results["in_memory_images_per_second"] > 0
    assert 0 <= results["data_wait_fraction"] <= 1
    assert results["forward_gflops_per_image"] > 0
