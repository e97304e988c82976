"""Prediction: the one inference path from encoded images to calibrated verdicts.

:class:`Predictor` (:mod:`aiclassify.predict.predictor`) serves the predict command, the API,
evaluation and explanations; ``python -m aiclassify.predict`` is its command line
(:mod:`aiclassify.predict.cli`). :mod:`aiclassify.predict.band` holds the inconclusive band's rule,
:mod:`aiclassify.predict.diagnostics` the warnings computed from an image's bytes,
:mod:`aiclassify.predict.faces` the face path (every face scored by the face model).
"""

from aiclassify.predict.band import Band
from aiclassify.predict.diagnostics import ImageWarning
from aiclassify.predict.faces import FacePath, FaceSearch, FaceVerdict
from aiclassify.predict.predictor import (
    ExplanationUnavailableError,
    FilePrediction,
    OperatingPoint,
    Predictor,
    UnknownOperatingPointError,
    Verdict,
)

__all__ = [
    "Band",
    "ExplanationUnavailableError",
    "FacePath",
    "FaceSearch",
    "FaceVerdict",
    "FilePrediction",
    "ImageWarning",
    "OperatingPoint",
    "Predictor",
    "UnknownOperatingPointError",
    "Verdict",
]
