"""Prediction: the one inference path from encoded images to calibrated verdicts.

:class:`Predictor` (:mod:`aiclassify.predict.predictor`) serves the predict command, the API,
evaluation and explanations; ``python -m aiclassify.predict`` is its command line
(:mod:`aiclassify.predict.cli`).
"""

from aiclassify.predict.predictor import (
    ExplanationUnavailableError,
    FilePrediction,
    OperatingPoint,
    Predictor,
    UnknownOperatingPointError,
    Verdict,
)

__all__ = [
    "ExplanationUnavailableError",
    "FilePrediction",
    "OperatingPoint",
    "Predictor",
    "UnknownOperatingPointError",
    "Verdict",
]
