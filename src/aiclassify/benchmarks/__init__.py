"""The serving benchmark behind ``scripts/bench_serve.py``: the API under gunicorn against a baseline.

Modules: :mod:`~aiclassify.benchmarks.load` (the HTTP load and its statistics, the images sent),
:mod:`~aiclassify.benchmarks.faults` (the fault-tolerance load: valid uploads mixed with faulty requests),
:mod:`~aiclassify.benchmarks.servers` (the gunicorn processes), :mod:`~aiclassify.benchmarks.forward`
(the bare forward-pass reference, measured in a child process), :mod:`~aiclassify.benchmarks.detection`
(face detection latency and the face photos sent, shared with ``scripts/bench_faces.py``),
:mod:`~aiclassify.benchmarks.precision`
(mixed precision against float32 under a GPU memory cap, behind ``scripts/gpu_check.py``),
:mod:`~aiclassify.benchmarks.report` (ratios, goals, tables, machine description),
:mod:`~aiclassify.benchmarks.runner` (one whole run)
and :mod:`~aiclassify.benchmarks.baseline_app` (the baseline Flask app). Importing this package
imports neither TensorFlow nor Flask.
"""
