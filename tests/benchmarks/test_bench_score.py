"""The scoring benchmark end to end at a tiny size: the scorer against the batched forward."""

from __future__ import annotations

import json

from conftest import load_script


def test_benchmark_prints_the_ratio_and_writes_json(tiny_run, demo_data, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--run", str(tiny_run), "--images", str(demo_data), "--count", "16", "--batch-size", "8"]
    assert load_script("bench_score").main([*argv, "--rounds", "1", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["images"].endswith("(first 16 image files)") and results["scorer_errors"] == 0
    assert results["ratio_scorer_to_forward"] == (
        results["scorer_images_per_second"] / results["batched_forward_images_per_second"]
    )
    assert results["evidence_ms_per_image"] > 0 and results["model_ms_per_image"] > 0
    assert "ratio_scorer_to_forward" in capsys.readouterr().out
