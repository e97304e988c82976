"""Decision thresholds chosen on validation: a target false-positive rate, or best balanced accuracy.

"Positive" means AI-generated, so the false-positive rate is the share of real images flagged as
AI-generated. An image is flagged when its (calibrated) probability is ``>= threshold``.

The inconclusive band (:func:`choose_band`) is a pair of such thresholds; its rule is
:class:`aiclassify.predict.band.Band`'s. Its error budgets hold with a stated confidence, not just
on the validation images: a threshold qualifies when the one-sided Clopper-Pearson upper bound
(:func:`error_rate_upper_bound`) of its error rate is within the budget. A rate measured on a few
thousand images is itself uncertain, and a threshold picked to sit exactly at the budget on
validation exceeds it on about half of the test sets it meets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import beta
from sklearn.metrics import roc_curve

from aiclassify.predict.band import AI_GENERATED, REAL, Band

TARGET_FPRS = {"fpr_1pct": 0.01, "fpr_5pct": 0.05}
BAND_FPR = 0.03
BAND_CONFIDENCE = 0.95


def error_rate_upper_bound(errors: np.ndarray, total: int, confidence: float) -> np.ndarray:
    """The one-sided Clopper-Pearson upper bound, at ``confidence``, of an error rate seen as
    ``errors`` out of ``total``; ``confidence`` 0 gives the observed rate ``errors / total``.

    With 0 errors the bound is ``1 - (1 - confidence) ** (1 / total)``: 51 real images without a
    false positive bound the false-positive rate only to 5.7 % at 95 % confidence.
    """
    if not 0.0 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0, 1). Received: confidence={confidence}")
    errors = np.asarray(errors, dtype=np.float64)
    if total <= 0:
        raise ValueError(f"total must be positive. Received: total={total}")
    if confidence == 0.0:
        return errors / total
    below_all = np.minimum(errors, total - 1)  # beta's second shape must stay positive
    bound = beta.ppf(confidence, below_all + 1, total - below_all)
    return np.where(errors >= total, 1.0, bound)


def rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """False- and true-positive rates when flagging ``scores >= threshold``."""
    labels = np.asarray(labels).astype(int).ravel()
    flagged = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    negatives, positives = labels == 0, labels == 1
    fpr = float(flagged[negatives].mean()) if negatives.any() else float("nan")
    tpr = float(flagged[positives].mean()) if positives.any() else float("nan")
    return {"fpr": fpr, "tpr": tpr}


def _roc(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(np.unique(labels)) < 2:
        raise ValueError("Operating points need both real and AI-generated images.")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    # roc_curve's first threshold is +inf (flag nothing); keep it finite for JSON.
    thresholds = thresholds.copy()
    thresholds[~np.isfinite(thresholds)] = float(np.nextafter(scores.max(), np.inf))
    return fpr, tpr, thresholds


def threshold_for_fpr(
    labels: np.ndarray, scores: np.ndarray, target_fpr: float, confidence: float = 0.0
) -> float:
    """The lowest threshold whose FPR is at most ``target_fpr`` (the highest TPR within the budget).

    With ``confidence`` > 0, the FPR's upper bound at that confidence
    (:func:`error_rate_upper_bound`) must be within the budget instead of the FPR itself; when no
    threshold qualifies, the one just above every score (flag nothing) is returned.
    """
    fpr, tpr, thresholds = _roc(labels, scores)
    negatives = int((np.asarray(labels).astype(int).ravel() == 0).sum())
    bound = error_rate_upper_bound(np.rint(fpr * negatives), negatives, confidence)
    allowed = np.flatnonzero(bound <= target_fpr)
    if allowed.size == 0:
        return float(thresholds[0])
    best = allowed[np.argmax(tpr[allowed])]  # thresholds decrease, so ties keep the highest threshold
    return float(thresholds[best])


def balanced_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the best balanced accuracy (TPR + TNR) / 2, i.e. Youden's J."""
    fpr, tpr, thresholds = _roc(labels, scores)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def choose_operating_points(labels: np.ndarray, scores: np.ndarray) -> list[dict]:
    """The metadata list: FPR 1 %, FPR 5 % and balanced, with FPR/TPR measured on these scores."""
    points = []
    for name, target in TARGET_FPRS.items():
        threshold = threshold_for_fpr(labels, scores, target)
        points.append(
            {"name": name, "target_fpr": target, "threshold": threshold, **rates(labels, scores, threshold)}
        )
    threshold = balanced_threshold(labels, scores)
    points.append(
        {"name": "balanced", "target_fpr": None, "threshold": threshold, **rates(labels, scores, threshold)}
    )
    return points


def lower_threshold_for_fnr(
    labels: np.ndarray, scores: np.ndarray, target_fnr: float, confidence: float = 0.0
) -> float:
    """The highest threshold ``t`` whose share of AI-generated images with ``score <= t`` is at most
    ``target_fnr`` (the most real images called real within that budget); with ``confidence`` > 0,
    that share's upper bound (:func:`error_rate_upper_bound`) must be within the budget.

    The mirror of :func:`threshold_for_fpr`: candidates are the scores themselves plus one just
    below the lowest (call nothing real); among thresholds that call the same real images real, the
    lowest is kept, so no AI-generated image is called real needlessly.
    """
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(np.unique(labels)) < 2:
        raise ValueError("The inconclusive band needs both real and AI-generated images.")
    real, ai = np.sort(scores[labels == 0]), np.sort(scores[labels == 1])
    candidates = np.concatenate([[np.nextafter(scores.min(), -np.inf)], np.unique(scores)])
    missed = np.searchsorted(ai, candidates, side="right")
    fnr_bound = error_rate_upper_bound(missed, len(ai), confidence)
    tnr = np.searchsorted(real, candidates, side="right") / len(real)
    allowed = np.flatnonzero(fnr_bound <= target_fnr)
    if allowed.size == 0:
        return float(candidates[0])  # call nothing real
    return float(candidates[allowed[np.argmax(tnr[allowed])]])  # argmax keeps the lowest of ties


def band_summary(labels: np.ndarray, scores: np.ndarray, lower: float, upper: float) -> dict[str, Any]:
    """How the band ``lower``/``upper`` decides these labelled calibrated scores.

    ``coverage``: share of images with a confident verdict (not inconclusive);
    ``confident_accuracy``: accuracy of the confident verdicts; ``fpr``: share of real images called
    ai-generated (confidently); ``recall``: share of AI-generated images called ai-generated;
    ``fnr``: share of AI-generated images called real (confidently). None where the denominator is 0.
    """
    labels = np.asarray(labels).astype(int).ravel()
    verdicts = Band(float(lower), float(upper)).verdicts(scores)
    called_ai, called_real = verdicts == AI_GENERATED, verdicts == REAL
    real, ai = labels == 0, labels == 1
    confident = called_ai | called_real
    correct = (called_ai & ai) | (called_real & real)
    counts = {
        "images": int(labels.size),
        "real_images": int(real.sum()),
        "ai_images": int(ai.sum()),
        "called_ai_generated": int(called_ai.sum()),
        "called_real": int(called_real.sum()),
        "inconclusive": int((~confident).sum()),
        "false_positives": int((called_ai & real).sum()),  # real images called ai-generated
        "false_negatives": int((called_real & ai).sum()),  # AI-generated images called real
    }

    def share(numerator: np.ndarray, denominator: np.ndarray) -> float | None:
        return float(numerator.sum() / denominator.sum()) if denominator.any() else None

    return {
        "coverage": share(confident, np.ones_like(confident)),
        "confident_accuracy": share(correct, confident),
        "fpr": share(called_ai & real, real),
        "recall": share(called_ai & ai, ai),
        "fnr": share(called_real & ai, ai),
        "counts": counts,
    }


def choose_band(
    labels: np.ndarray,
    scores: np.ndarray,
    target_fpr: float = BAND_FPR,
    confidence: float = BAND_CONFIDENCE,
) -> dict[str, Any]:
    """The inconclusive band on validation's calibrated scores, for ``target_fpr`` (default 3 %).

    ``upper``: the lowest threshold whose false-positive rate (share of real images with score
    ``>= upper``, i.e. called ai-generated) is at most ``target_fpr`` (:func:`threshold_for_fpr`).
    ``lower``: the highest threshold whose share of AI-generated images with score ``<= lower``
    (called real) is at most the same rate (:func:`lower_threshold_for_fnr`). Both budgets count
    against all images of the class, not against the verdicts given, and both are met by the rate's
    upper bound at ``confidence`` (default 95 %; 0: by the rate seen on validation). A validation
    set too small to meet a budget at that confidence even with no error leaves that end beyond
    every score: nothing is called ai-generated (or real) there, and ``notes`` says so.

    When the two cross (``lower > upper``: the confident regions overlap), the band is *empty*:
    ``lower`` is set just below ``upper`` so that no image is inconclusive, every image at or above
    ``upper`` is called ai-generated and every other one real; both bounds still hold on
    validation. ``empty`` and ``note`` say so.
    """
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"band_fpr must be between 0 and 1. Received: {target_fpr}")
    upper = threshold_for_fpr(labels, scores, target_fpr, confidence)
    lower = lower_threshold_for_fnr(labels, scores, target_fpr, confidence)
    band: dict[str, Any] = {
        "lower": lower,
        "upper": upper,
        "target_fpr": target_fpr,
        "confidence": confidence,
        "empty": False,
    }
    notes = _unreachable_budgets(labels, target_fpr, confidence)
    if notes:
        band["notes"] = notes
    if lower >= upper:
        band.update(
            lower=float(np.nextafter(upper, -np.inf)),
            empty=True,
            note=(
                f"empty band: the thresholds crossed on validation (lower {lower:.4g} >= upper "
                f"{upper:.4g}), so no image is inconclusive: ai-generated at or above {upper:.4g}, "
                "real below"
            ),
        )
    band["validation"] = band_summary(labels, scores, band["lower"], band["upper"])
    return band


def _unreachable_budgets(labels: np.ndarray, target: float, confidence: float) -> list[str]:
    """Why an end of the band is beyond every score: too few images of a class to meet the budget."""
    labels = np.asarray(labels).astype(int).ravel()
    notes = []
    for label, images, verdict in ((0, "real", "ai-generated"), (1, "AI-generated", "real")):
        count = int((labels == label).sum())
        floor = float(error_rate_upper_bound(np.zeros(1), count, confidence)[0])
        if floor > target:
            notes.append(
                f"nothing is called {verdict}: {count} {images} validation images bound the error "
                f"rate only to {floor:.1%} at {confidence:.0%} confidence even with no error, above "
                f"the {target:.1%} budget"
            )
    return notes
