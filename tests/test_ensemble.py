"""The ensemble model: members averaged in logit space, saved and reloaded, bad members refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from aiclassify.ensemble import LOGIT_EPSILON, MeanLogit
from aiclassify.models import build_model, load_keras_model


def _members(folder, sizes=(32, 32)) -> list[str]:
    paths = []
    for index, size in enumerate(sizes):
        keras.utils.set_random_seed(index)
        member = folder / f"member{index}"
        member.mkdir()
        build_model("cnn_small2", size).save(member / "model.keras")
        paths.append(str(member))
    return paths


def _logit(probability: np.ndarray) -> np.ndarray:
    clipped = np.clip(probability, LOGIT_EPSILON, 1 - LOGIT_EPSILON)
    return np.log(clipped / (1 - clipped))


def test_the_ensemble_scores_the_sigmoid_of_its_members_mean_logit(tmp_path):
    members = _members(tmp_path)
    model = build_model("ensemble", 32, members=tuple(members))
    pixels = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    scores = [load_keras_model(f"{m}/model.keras").predict(pixels, verbose=0) for m in members]
    expected = 1 / (1 + np.exp(-(_logit(scores[0]) + _logit(scores[1])) / 2))
    np.testing.assert_allclose(model.predict(pixels, verbose=0), expected, rtol=1e-5)
    assert not np.allclose(scores[0], scores[1])  # distinct members, so the mean is not trivially one of them
    assert [layer.name for layer in model.layers] == ["image", "member0", "member1", "probability_ai"]


def test_the_ensemble_saves_and_reloads_with_the_same_scores(tmp_path):
    model = build_model("ensemble", 32, members=tuple(_members(tmp_path)))
    model.save(tmp_path / "ensemble.keras")
    pixels = np.full((2, 32, 32, 3), 128.0, "float32")
    reloaded = load_keras_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(
        reloaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), rtol=1e-6
    )


def test_mean_logit_keeps_saturated_members_finite():
    probabilities = [np.array([[1.0], [0.0]], "float32"), np.array([[1.0], [0.5]], "float32")]
    combined = keras.ops.convert_to_numpy(MeanLogit()(probabilities))
    assert np.isfinite(combined).all()
    assert combined[0, 0] > 0.999 and combined[1, 0] < 0.01


def test_an_ensemble_needs_two_members_of_its_input_size_and_no_filter_of_its_own(tmp_path):
    members = _members(tmp_path, sizes=(32, 64))
    with pytest.raises(ValueError, match="two or more members"):
        build_model("ensemble", 32, members=(members[0],))
    with pytest.raises(ValueError, match=r"input \(32, 32, 3\).*member1"):
        build_model("ensemble", 32, members=tuple(members))
    with pytest.raises(ValueError, match="data.filter to none"):
        build_model("ensemble", 32, filter_name="srm", members=(members[0], members[0]))
    with pytest.raises(FileNotFoundError, match="model.keras.*nowhere"):
        build_model("ensemble", 32, members=(members[0], str(tmp_path / "nowhere")))
