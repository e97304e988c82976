"""The mixed-precision GPU check (scripts/gpu_check.py), run here on the CPU at a tiny size."""

from __future__ import annotations

import os
import subprocess

from aiclassify.benchmarks.precision import (
    CheckOptions,
    child_environment,
    format_report,
    parse_child,
    run_check,
    summarise,
)

GB = 1024**3


def test_both_precisions_train_in_their_own_child_and_are_compared():
    options = CheckOptions(model="cnn_small2", image_size=32, batch_size=4, steps=3)
    report = run_check(options)
    results = report["results"]
    assert set(results) == {"float32", "mixed_float16"}
    assert all(r["completed"] and r["images_per_s"] > 0 and r["peak_bytes"] > 0 for r in results.values())
    assert results["float32"]["conv_compute_dtype"] == "float32"
    assert results["mixed_float16"]["conv_compute_dtype"] == "float16"  # the policy reached the child
    assert (
        report["mixed_over_float32"]
        == results["mixed_float16"]["images_per_s"] / (results["float32"]["images_per_s"])
    )
    if results["float32"]["device"] == "cpu":
        assert results["float32"]["fits"] is None  # no accelerator memory to fit in
    text = format_report(report)
    assert "float32" in text and "mixed_float16" in text and "goal batch 4 fits in 4 GB" in text


def test_the_jax_memory_fraction_is_the_cap_over_the_card():
    environment = child_environment(CheckOptions(memory_cap_gb=4), total_bytes=141 * GB)
    assert environment["XLA_PYTHON_CLIENT_MEM_FRACTION"] == f"{4 / 141:.4f}"
    assert environment["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert child_environment(CheckOptions(), total_bytes=None) == dict(os.environ)  # no card: no cap


def test_running_out_of_memory_is_a_result_that_does_not_fit():
    failed = subprocess.CompletedProcess(
        [], 1, "", "jaxlib.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory"
    )
    result = parse_child(failed, CheckOptions())
    assert result == {"completed": False, "out_of_memory": True, "error": [failed.stderr]}
    gpu = {"completed": True, "device": "gpu", "images_per_s": 300.0, "peak_bytes": 3 * GB}
    report = summarise(CheckOptions(), {"float32": result, "mixed_float16": gpu}, 16 * GB)
    assert report["results"]["float32"]["fits"] is False
    assert report["results"]["mixed_float16"]["fits"] is True
    assert report["goals"]["batch 32 fits in 4 GB (mixed_float16)"] is True
    over = {**gpu, "peak_bytes": 5 * GB}
    report = summarise(
        CheckOptions(), {"float32": {**gpu, "images_per_s": 100.0}, "mixed_float16": over}, None
    )
    assert report["results"]["mixed_float16"]["fits"] is False and report["mixed_over_float32"] == 3.0
    assert report["goals"]["mixed_float16 >= 2x float32 images/s"] is True
