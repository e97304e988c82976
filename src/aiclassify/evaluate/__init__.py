"""Evaluation of finished runs: scoring, calibration, operating points, robustness, figures, reports.

``evaluate_run(run_dir)`` writes the report and ``calibration.json``; ``python -m aiclassify.evaluate``
is its command line (:mod:`aiclassify.evaluate.cli`). Images are scored through the one
:class:`aiclassify.predict.Predictor`.
"""

from aiclassify.evaluate.report import evaluate_run

__all__ = ["evaluate_run"]
