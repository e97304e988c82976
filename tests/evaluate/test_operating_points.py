"""Operating points (thresholds at a target false-positive rate, the balanced threshold) on synthetic
scores (no model, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import calibrated_sample
from scipy.stats import binom

from aiclassify.evaluate.operating_points import (
    balanced_threshold,
    band_summary,
    choose_band,
    choose_operating_points,
    error_rate_upper_bound,
    lower_threshold_for_fnr,
    rates,
    threshold_for_fpr,
)


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_operating_point_fpr_is_at_most_the_target(target):
    labels, probabilities = calibrated_sample(5000, seed=5)
    threshold = threshold_for_fpr(labels, probabilities, target)
    measured = rates(labels, probabilities, threshold)
    assert measured["fpr"] <= target
    slightly_lower = rates(labels, probabilities, np.nextafter(threshold, -np.inf))
    assert slightly_lower["fpr"] > target or slightly_lower["tpr"] == measured["tpr"]


def test_balanced_threshold_separates_separable_scores():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    threshold = balanced_threshold(labels, scores)
    assert rates(labels, scores, threshold) == {"fpr": 0.0, "tpr": 1.0}
    assert threshold_for_fpr(labels, scores, 0.0) == pytest.approx(0.6)


def test_operating_points_have_the_metadata_keys():
    labels, probabilities = calibrated_sample(2000, seed=6)
    points = choose_operating_points(labels, probabilities)
    assert [p["name"] for p in points] == ["fpr_1pct", "fpr_5pct", "balanced"]
    assert [p["target_fpr"] for p in points] == [0.01, 0.05, None]
    for point in points:
        assert set(point) == {"name", "target_fpr", "threshold", "fpr", "tpr"}
        assert all(np.isfinite(point[key]) for key in ("threshold", "fpr", "tpr"))
    assert points[0]["tpr"] <= points[1]["tpr"]


def test_operating_points_need_both_classes():
    with pytest.raises(ValueError, match="both"):
        choose_operating_points(np.zeros(5), np.linspace(0, 1, 5))


# --- the inconclusive band ----------------------------------------------------------------------------

# 100 real and 100 AI-generated images on a few score levels, so that every rate is known by hand:
# real: 90 at 0.05, 4 at 0.35, 3 at 0.55, 3 at 0.75;
# AI-generated: 90 at 0.95, 4 at 0.65, 3 at 0.45, 3 at 0.25.
KNOWN_LABELS = np.array([0] * 100 + [1] * 100)
KNOWN_SCORES = np.array(
    [0.05] * 90 + [0.35] * 4 + [0.55] * 3 + [0.75] * 3 + [0.95] * 90 + [0.65] * 4 + [0.45] * 3 + [0.25] * 3
)


def test_band_on_known_scores():
    band = choose_band(KNOWN_LABELS, KNOWN_SCORES, 0.03, confidence=0.0)  # the shares themselves
    # upper: at 0.65 the 3 real images at 0.75 are flagged (3 %), at 0.55 six would be (6 %)
    # lower: at 0.35 the 3 AI images at 0.25 are called real (3 %), at 0.45 six would be
    assert (band["lower"], band["upper"], band["target_fpr"], band["empty"]) == (0.35, 0.65, 0.03, False)
    assert band["confidence"] == 0.0 and "notes" not in band
    validation = band["validation"]
    assert validation["counts"] == {
        "images": 200,
        "real_images": 100,
        "ai_images": 100,
        "called_ai_generated": 97,  # 94 AI + 3 real
        "called_real": 97,  # 94 real + 3 AI
        "inconclusive": 6,  # the 3 real at 0.55 and the 3 AI at 0.45
        "false_positives": 3,
        "false_negatives": 3,
    }
    assert validation["coverage"] == pytest.approx(194 / 200)
    assert validation["confident_accuracy"] == pytest.approx(188 / 194)
    assert validation["fpr"] == pytest.approx(0.03) and validation["fnr"] == pytest.approx(0.03)
    assert validation["recall"] == pytest.approx(0.94)


def test_a_smaller_rate_widens_the_band():
    # not one error allowed among 100 images
    band = choose_band(KNOWN_LABELS, KNOWN_SCORES, 0.01, confidence=0.0)
    assert (band["lower"], band["upper"]) == (0.05, 0.95)
    assert band["validation"]["fpr"] == 0.0 and band["validation"]["fnr"] == 0.0
    assert band["validation"]["coverage"] == pytest.approx(0.9)


@pytest.mark.parametrize("target", [0.01, 0.03, 0.1])
def test_band_bounds_hold_and_are_tight(target):
    labels, probabilities = calibrated_sample(5000, seed=7)
    band = choose_band(labels, probabilities, target, confidence=0.0)
    lower, upper = band["lower"], band["upper"]
    assert lower < upper and not band["empty"]
    assert band["validation"]["fpr"] <= target and band["validation"]["fnr"] <= target
    assert upper == threshold_for_fpr(labels, probabilities, target)  # the operating point's rule
    # moving either end one score further breaks its bound, or gains nothing
    real, ai = probabilities[labels == 0], probabilities[labels == 1]
    below_upper = probabilities[probabilities < upper].max()
    assert np.mean(real >= below_upper) > target or np.mean(ai >= below_upper) == np.mean(ai >= upper)
    above_lower = probabilities[probabilities > lower].min()
    assert np.mean(ai <= above_lower) > target or np.mean(real <= above_lower) == np.mean(real <= lower)


def test_band_ties_keep_separable_scores_apart():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    band = choose_band(labels, scores, 0.3, confidence=0.0)  # a budget that neither end needs
    assert (band["lower"], band["upper"]) == (0.3, 0.6)
    assert band["validation"]["coverage"] == 1.0 and band["validation"]["confident_accuracy"] == 1.0


def test_crossed_thresholds_make_an_empty_band():
    # few errors, all in a thin middle: the two budgets overlap
    labels = np.array([0] * 97 + [0] * 3 + [1] * 97 + [1] * 3)
    scores = np.array([0.1] * 97 + [0.5] * 3 + [0.9] * 97 + [0.45] * 3)
    assert lower_threshold_for_fnr(labels, scores, 0.03) == 0.5 > threshold_for_fpr(labels, scores, 0.03)
    band = choose_band(labels, scores, 0.03, confidence=0.0)
    assert band["empty"] is True and "empty band" in band["note"]
    assert band["upper"] == 0.45 and band["lower"] == np.nextafter(0.45, 0)  # nothing in between
    validation = band["validation"]
    assert validation["counts"]["inconclusive"] == 0 and validation["coverage"] == 1.0
    assert validation["fpr"] <= 0.03 and validation["fnr"] <= 0.03  # both bounds still hold


def test_band_summary_without_confident_verdicts():
    labels, scores = np.array([0, 1]), np.array([0.4, 0.6])
    summary = band_summary(labels, scores, 0.0, 1.0)
    assert summary["coverage"] == 0.0 and summary["confident_accuracy"] is None
    assert summary["fpr"] == 0.0 and summary["recall"] == 0.0
    assert band_summary(np.zeros(2), scores, 0.0, 1.0)["recall"] is None  # no AI images


def test_band_needs_both_classes_and_a_rate():
    with pytest.raises(ValueError, match="both"):
        choose_band(np.zeros(5), np.linspace(0, 1, 5))
    with pytest.raises(ValueError, match="band_fpr"):
        choose_band(KNOWN_LABELS, KNOWN_SCORES, 0.0)


# --- the band's confidence ----------------------------------------------------------------------------


@pytest.mark.parametrize(("errors", "total"), [(0, 51), (3, 100), (30, 1000), (99, 100)])
def test_error_rate_upper_bound_is_the_clopper_pearson_bound(errors, total):
    bound = float(error_rate_upper_bound(np.array([errors]), total, 0.95)[0])
    # the rate at which seeing this few errors has probability 5 %
    assert binom.cdf(errors, total, bound) == pytest.approx(0.05, abs=1e-6)
    assert bound > errors / total
    if errors == 0:
        assert bound == pytest.approx(1 - 0.05 ** (1 / total))


def test_error_rate_upper_bound_edges():
    assert error_rate_upper_bound(np.array([3, 100]), 100, 0.0).tolist() == [0.03, 1.0]  # the rates
    assert error_rate_upper_bound(np.array([100]), 100, 0.95).tolist() == [1.0]
    assert np.all(np.diff(error_rate_upper_bound(np.arange(101), 100, 0.9)) > 0)
    with pytest.raises(ValueError, match="confidence"):
        error_rate_upper_bound(np.array([0]), 10, 1.0)


@pytest.mark.parametrize("target", [0.01, 0.03])
def test_band_with_confidence_is_the_tightest_that_keeps_the_bound(target):
    labels, probabilities = calibrated_sample(5000, seed=7)
    band = choose_band(labels, probabilities, target, confidence=0.95)
    plain = choose_band(labels, probabilities, target, confidence=0.0)
    assert band["upper"] > plain["upper"] and band["lower"] < plain["lower"]  # a margin on both ends
    real, ai = probabilities[labels == 0], probabilities[labels == 1]

    def fpr_bound(threshold):
        return error_rate_upper_bound(np.array([np.sum(real >= threshold)]), real.size, 0.95)[0]

    def fnr_bound(threshold):
        return error_rate_upper_bound(np.array([np.sum(ai <= threshold)]), ai.size, 0.95)[0]

    assert fpr_bound(band["upper"]) <= target and fnr_bound(band["lower"]) <= target
    below_upper = probabilities[probabilities < band["upper"]].max()
    assert fpr_bound(below_upper) > target or np.sum(ai >= below_upper) == np.sum(ai >= band["upper"])
    above_lower = probabilities[probabilities > band["lower"]].min()
    assert fnr_bound(above_lower) > target or np.sum(real <= above_lower) == np.sum(real <= band["lower"])
    assert band["validation"]["fpr"] < target and "notes" not in band


def test_band_confidence_keeps_the_true_rate_within_budget():
    """Real scores uniform on [0, 1], so a threshold t's true false-positive rate is 1 - t: over many
    validation sets, the plain band exceeds the 3 % budget about half the time, the 95 % one rarely."""
    exceeded = {0.0: 0, 0.95: 0}
    draws = 200
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        real, ai = rng.random(2000), 1 - rng.random(2000) ** 4  # AI scores crowd towards 1
        labels = np.array([0] * real.size + [1] * ai.size)
        scores = np.concatenate([real, ai])
        for confidence in exceeded:
            upper = threshold_for_fpr(labels, scores, 0.03, confidence)
            exceeded[confidence] += (1 - upper) > 0.03
    assert exceeded[0.0] / draws > 0.3
    assert exceeded[0.95] / draws <= 0.08


def test_too_few_validation_images_call_nothing():
    labels = np.array([0] * 51 + [1] * 51)
    scores = np.concatenate([np.linspace(0.0, 0.4, 51), np.linspace(0.6, 1.0, 51)])  # separable
    band = choose_band(labels, scores, 0.03)  # 0 errors in 51 bound a rate only to 5.7 % at 95 %
    assert band["upper"] > scores.max() and band["lower"] < scores.min()
    assert band["validation"]["coverage"] == 0.0
    notes = band["notes"]
    assert len(notes) == 2
    assert "nothing is called ai-generated: 51 real validation images" in notes[0] and "5.7%" in notes[0]
    assert "nothing is called real: 51 AI-generated validation images" in notes[1]
    assert choose_band(labels, scores, 0.06)["validation"]["coverage"] == 1.0  # 5.7 % fits a 6 % budget
