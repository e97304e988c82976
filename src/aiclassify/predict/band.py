"""The inconclusive band: two thresholds on the calibrated probability between which no verdict is given.

False accusations of real photos are the worst error, so an image gets a confident verdict only
where the model was reliable on validation (:func:`aiclassify.evaluate.operating_points.choose_band`
picks the two thresholds; evaluation stores them in ``calibration.json`` → ``band``). The rule,
defined here once for the predictor and for evaluation, on the calibrated P(AI-generated) ``p``:

- ``p >= upper``: ``ai-generated``;
- otherwise ``p <= lower``: ``real``;
- otherwise (``lower < p < upper``): ``inconclusive``.

Both ends are inclusive, like the label rule (``p >= threshold``). An *empty* band (evaluation
found the two thresholds crossed: ``lower > upper``) is stored with ``lower`` just below ``upper``,
so that no image is inconclusive; the ``ai-generated`` test comes first, so even a hand-edited
band whose ends cross is applied in a defined way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiclassify import LABEL_NAMES

logger = logging.getLogger(__name__)

REAL, AI_GENERATED = LABEL_NAMES
INCONCLUSIVE = "inconclusive"
VERDICTS = (REAL, AI_GENERATED, INCONCLUSIVE)

NOT_EVALUATED = "no band: the run has not been evaluated"
EVALUATED_WITHOUT_BAND = (
    "no band: the run was evaluated before inconclusive bands existed (evaluate it again); "
    "the verdict is the label at the threshold in use"
)
RULE = (
    "ai-generated when calibrated P(AI-generated) >= upper; otherwise real when <= lower; "
    "otherwise inconclusive"
)


@dataclass(frozen=True)
class Band:
    """The thresholds of the inconclusive band on the calibrated probability (rule: module docstring)."""

    lower: float
    upper: float
    target_fpr: float | None = None
    empty: bool = False  # evaluation found lower > upper: no image is inconclusive

    def verdict(self, probability: float) -> str:
        """``ai-generated``, ``real`` or ``inconclusive`` for one calibrated probability."""
        if probability >= self.upper:
            return AI_GENERATED
        if probability <= self.lower:
            return REAL
        return INCONCLUSIVE

    def verdicts(self, probabilities: np.ndarray) -> np.ndarray:
        """:meth:`verdict` of each calibrated probability, as an array of strings."""
        p = np.asarray(probabilities, dtype=np.float64).ravel()
        return np.where(p >= self.upper, AI_GENERATED, np.where(p <= self.lower, REAL, INCONCLUSIVE))

    def to_dict(self) -> dict[str, Any]:
        """The two thresholds, as predictions carry them."""
        return {"lower": self.lower, "upper": self.upper}


def read_band(calibration: dict[str, Any]) -> tuple[Band | None, str | None]:
    """The band stored in evaluation's calibration and, when there is none, a note saying why."""
    if not calibration:
        return None, NOT_EVALUATED
    entry = calibration.get("band")
    if entry is None:
        return None, EVALUATED_WITHOUT_BAND
    try:
        lower, upper = float(entry["lower"]), float(entry["upper"])
        target = entry.get("target_fpr")
        target = None if target is None else float(target)
    except (KeyError, TypeError, ValueError) as error:
        logger.warning("Ignoring the stored band %r: %s", entry, error)
        return None, f"no band: the stored band is unreadable ({error})"
    if not (math.isfinite(lower) and math.isfinite(upper)):
        logger.warning("Ignoring the stored band: lower=%s, upper=%s", lower, upper)
        return None, f"no band: the stored band is not finite (lower={lower}, upper={upper})"
    return Band(lower, upper, target, bool(entry.get("empty", False)) or lower >= upper), None
