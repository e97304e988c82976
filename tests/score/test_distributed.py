"""The Ray engine on a local Ray cluster of two actors: the same rows as the local engine."""

from __future__ import annotations

import json
import sys

import pytest
from builders import image_writer, noise_image

from aiclassify.predict import Predictor
from aiclassify.score import score_folder
from aiclassify.score.distributed import import_ray

write_image = image_writer(200)


def test_a_missing_engine_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'aiclassify\[ray\]'"):
        import_ray()


@pytest.mark.slow  # a local Ray cluster and two actors, each loading TensorFlow
def test_ray_engine_writes_the_rows_of_the_local_engine(tiny_run, tmp_path):
    pytest.importorskip("ray.data", reason="the ray extra is not installed: pip install 'aiclassify[ray]'")
    folder = tmp_path / "images"
    for index in range(20):
        write_image(folder / ("sub" if index % 3 else "") / f"{index:02d}.png", size=(32, 32))
    (folder / "broken.jpg").write_bytes(noise_image("JPEG")[:100])
    predictor = Predictor.load(tiny_run)  # loaded once for both engines (the actors load their own)
    local, distributed = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    score_folder(folder, predictor, local, batch_size=4, progress=False)
    distributed.write_text("".join(local.read_text().splitlines(keepends=True)[:9]))  # an earlier run
    summary = score_folder(
        folder, predictor, distributed, batch_size=4, engine="ray", workers=2, progress=False
    )
    assert (summary.already_done, summary.scored, summary.earlier_errors) == (9, 12, 1)
    expected = [json.loads(line) for line in local.read_text().splitlines()]
    rows = [json.loads(line) for line in distributed.read_text().splitlines()]
    assert [row["path"] for row in rows] == [row["path"] for row in expected]  # file order
    for row, want in zip(rows, expected, strict=True):
        if want["error"] is None:
            assert row.pop("probability_ai") == pytest.approx(want.pop("probability_ai"), rel=1e-6)
            uncalibrated = row.pop("probability_ai_uncalibrated")
            assert uncalibrated == pytest.approx(want.pop("probability_ai_uncalibrated"), rel=1e-6)
        assert row == want
