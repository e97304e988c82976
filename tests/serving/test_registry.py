"""The model registry's lookups, with a fake predictor."""

from __future__ import annotations

import pytest
from builders import FakePredictor
from conftest import CALIBRATION, OPERATING_POINTS

from aiclassify.serving.errors import ApiError
from aiclassify.serving.registry import ModelRegistry, ServedModel


def test_an_unknown_model_name_is_echoed_truncated():
    registry = ModelRegistry([ServedModel("faces", None, FakePredictor())], "faces")
    with pytest.raises(ApiError) as raised:
        registry.find("n" * 1_000_000)
    assert raised.value.status == 404
    message = raised.value.message
    assert repr("n" * 64 + "...") in message and len(message) < 200  # the first 64 characters
    assert message.endswith("this server has: faces")
    with pytest.raises(ApiError, match="unknown model 'nope'; this server has: faces"):
        registry.find("nope")


def test_an_unknown_operating_point_is_echoed_truncated():
    calibration = {**CALIBRATION, "operating_points": OPERATING_POINTS}
    model = ServedModel("general", None, FakePredictor(calibration=calibration))
    with pytest.raises(ApiError) as raised:
        model.threshold_for(None, "p" * 1_000_000)
    assert raised.value.status == 422
    message = raised.value.message
    assert "operating_point=" + "p" * 64 + "...;" in message and len(message) < 300
    assert "available: fpr_1pct" in message
