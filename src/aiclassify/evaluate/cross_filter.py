"""Cross-filter testing: score a run's test images with its input filter replaced by another.

A cell (trained filter F, test filter G) is "trained on F-filtered images, tested on G-filtered
images": the run's trained layers behind filter G instead of F (G = ``none``: unfiltered images).
The images are the same test samples the rest of the report scores, decoded and resized by the
same :func:`aiclassify.preprocessing.decode_batch` as serving; only the filter layer changes.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Sequence
from typing import Any

from aiclassify import runs
from aiclassify.config import FilterName
from aiclassify.data.layouts import Sample
from aiclassify.evaluate.scoring import score_samples
from aiclassify.metrics import accuracy_and_auc
from aiclassify.predict.predictor import Predictor, load_run_keras_model

logger = logging.getLogger("aiclassify.evaluate")


FILTER_NAMES = typing.get_args(FilterName)


def parse_filters(value: str) -> list[str]:
    """Comma-separated filter names (``all``: every filter) as a list, checked against the valid names."""
    names = (
        list(FILTER_NAMES) if value.strip() == "all" else [n.strip() for n in value.split(",") if n.strip()]
    )
    unknown = [name for name in names if name not in FILTER_NAMES]
    if not names or unknown:
        raise ValueError(
            f"Cross filters must be names from {list(FILTER_NAMES)} or 'all'. Received: filter={value!r}"
        )
    return list(dict.fromkeys(names))


def cross_filter_section(
    predictor: Predictor, samples: Sequence[Sample], filters: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Accuracy and ROC-AUC of the run's model on ``samples`` for each test filter in ``filters``.

    Test filters get the run's ``data.filter_sigma`` and ``data.filter_kernel_size``. A filter whose
    output has a different channel count than the trained layers expect gives a row with
    ``accuracy`` and ``roc_auc`` None and the reason in ``error`` (shown as n/a).
    """
    from aiclassify.models import replace_filter

    data = runs.read_config(predictor.run_dir).data
    model = load_run_keras_model(predictor.run_dir)
    rows = []
    for name in filters:
        try:
            swapped = replace_filter(model, name, data.filter_sigma, data.filter_kernel_size)
        except ValueError as error:
            rows.append({"filter": name, "examples": len(samples), "accuracy": None, "roc_auc": None})
            rows[-1]["error"] = str(error)
            logger.info("Cross-filter %-13s n/a: %s", name, error)
            continue
        scored = score_samples(predictor.with_model(swapped), f"test+{name}", samples)
        rows.append({"filter": name, **accuracy_and_auc(scored.labels, scored.probabilities, threshold)})
        logger.info("Cross-filter %-13s accuracy %.4f", name, rows[-1]["accuracy"])
    return {
        "trained_filter": data.filter,
        "filter_sigma": data.filter_sigma,
        "filter_kernel_size": data.filter_kernel_size,
        "rows": rows,
    }
