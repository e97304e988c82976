"""Evaluation of finished runs: scoring, calibration, operating points, robustness, figures, reports.

The entry point is :func:`aiclassify.evaluation.report.evaluate_run`; ``python -m aiclassify.evaluate``
is its command line.
"""
