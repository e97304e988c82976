"""Fitting the classical baselines with scikit-learn on feature arrays.

Each estimator is a ``StandardScaler`` + classifier pipeline. A grid of more than one candidate is
searched by ``GridSearchCV`` (stratified, seeded folds, accuracy; the scaler refitted in each fold)
and the best candidate refitted on all the given images; a grid of one is fitted directly. The SVC's
scores become probabilities by Platt scaling fitted on held-out images (:func:`fit_platt`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from aiclassify.config import ClassicalConfig

logger = logging.getLogger(__name__)

SCORING = "accuracy"
SVC_CACHE_MB = 500
PLATT_METHOD = (
    "Platt scaling: a one-feature LogisticRegression (L2, C=1) on the SVC decision values of the "
    "validation split, P = sigmoid(slope * decision + intercept)"
)


@dataclass(frozen=True)
class Fit:
    """A fitted pipeline, the hyperparameters it was refitted with, and the search that chose them."""

    pipeline: Pipeline
    best_params: dict[str, float]
    search: dict[str, Any] | None  # None: the grid had one candidate, fitted without a search

    @property
    def scaler(self) -> StandardScaler:
        """The fitted ``StandardScaler``."""
        return self.pipeline.named_steps["scale"]

    @property
    def estimator(self) -> Any:
        """The fitted classifier."""
        return self.pipeline.named_steps["model"]


def search_grid(
    estimator: Any,
    grid: dict[str, list[float]],
    features: np.ndarray,
    labels: np.ndarray,
    folds: int,
    seed: int,
) -> Fit:
    """``StandardScaler`` + ``estimator`` fitted with the best of ``grid`` (estimator parameter lists)."""
    labels = np.asarray(labels).astype(int)
    smallest = int(min(np.sum(labels == 0), np.sum(labels == 1)))
    if smallest < folds:
        raise ValueError(
            f"Each class needs at least cv_folds={folds} training images to be searched and fitted. "
            f"Received: {int(np.sum(labels == 0))} real and {int(np.sum(labels == 1))} AI-generated images"
        )
    pipeline = Pipeline([("scale", StandardScaler()), ("model", estimator)])
    candidates = list(ParameterGrid(grid))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if len(candidates) == 1:
            pipeline.set_params(**{f"model__{key}": value for key, value in candidates[0].items()})
            fit = Fit(pipeline.fit(features, labels), _plain(candidates[0]), None)
        else:
            fit = _grid_search(pipeline, grid, features, labels, folds, seed)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning(
            "%s did not converge on some fits; consider more iterations.", type(estimator).__name__
        )
    return fit


def _grid_search(
    pipeline: Pipeline,
    grid: dict[str, list[float]],
    features: np.ndarray,
    labels: np.ndarray,
    folds: int,
    seed: int,
) -> Fit:
    search = GridSearchCV(
        pipeline,
        {f"model__{key}": list(values) for key, values in grid.items()},
        scoring=SCORING,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        refit=True,
        n_jobs=1,
    )
    search.fit(features, labels)
    results = search.cv_results_
    candidates = [
        {
            "params": _plain({key.removeprefix("model__"): value for key, value in params.items()}),
            "mean_accuracy": float(results["mean_test_score"][index]),
            "std_accuracy": float(results["std_test_score"][index]),
            "rank": int(results["rank_test_score"][index]),
        }
        for index, params in enumerate(results["params"])
    ]
    best = _plain({key.removeprefix("model__"): value for key, value in search.best_params_.items()})
    summary = {
        "scoring": SCORING,
        "cv_folds": folds,
        "grid": {key: [float(value) for value in values] for key, values in grid.items()},
        "candidates": candidates,
        "best_params": best,
        "best_cv_accuracy": float(search.best_score_),
    }
    logger.info(
        "Grid search over %d candidates: best %s, CV accuracy %.4f", len(candidates), best, search.best_score_
    )
    return Fit(search.best_estimator_, best, summary)


def _plain(params: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in params.items()}


def fit_logistic(features: np.ndarray, labels: np.ndarray, config: ClassicalConfig, seed: int) -> Fit:
    """``LogisticRegression`` (lbfgs, L2) on standardised features, ``C`` from ``classical.logistic_c``."""
    estimator = LogisticRegression(max_iter=config.logistic_max_iter)
    return search_grid(estimator, {"C": list(config.logistic_c)}, features, labels, config.cv_folds, seed)


def scale_gamma(features: np.ndarray) -> float:
    """scikit-learn's ``gamma="scale"``, ``1 / (n_features * X.var())``, of the standardised ``features``."""
    standardised = StandardScaler().fit_transform(features)
    variance = float(standardised.var())
    return 1.0 / (standardised.shape[1] * (variance if variance > 0 else 1.0))


def fit_svm(features: np.ndarray, labels: np.ndarray, config: ClassicalConfig, seed: int) -> Fit:
    """An RBF ``SVC`` on standardised features: ``C`` from ``classical.svm_c``, gamma from
    ``classical.svm_gamma`` times :func:`scale_gamma`; ``best_params`` holds both gammas."""
    unit = scale_gamma(features)
    gammas = {factor * unit: factor for factor in config.svm_gamma}
    grid = {"C": list(config.svm_c), "gamma": list(gammas)}
    fit = search_grid(
        SVC(kernel="rbf", cache_size=SVC_CACHE_MB), grid, features, labels, config.cv_folds, seed
    )
    fit.best_params["gamma_scale"] = float(gammas[fit.best_params["gamma"]])
    if fit.search is not None:
        fit.search["gamma_unit"] = unit
    return fit


def fit_platt(decision: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    """The one-feature ``LogisticRegression`` of :data:`PLATT_METHOD`: its ``predict_proba`` on
    decision values (shape ``(n, 1)``) is the model's P(AI-generated)."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise ValueError(
            "Platt scaling needs images of both classes in the validation split. "
            f"Received: {labels.size} images of class {np.unique(labels).tolist()}"
        )
    return LogisticRegression(C=1.0).fit(np.asarray(decision).reshape(-1, 1), labels)
