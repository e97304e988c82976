"""Batch scoring: every image file under a folder into a CSV or JSON-lines file, resumably.

:func:`score_folder` (:mod:`aiclassify.score.scorer`) is the library; ``aiclassify score`` its
command line (:mod:`aiclassify.score.cli`). :mod:`aiclassify.score.rows` builds one row per file
through :class:`aiclassify.predict.Predictor`, :mod:`aiclassify.score.writers` writes and resumes the
output, and :mod:`aiclassify.score.distributed` scores on Ray actors (the ``ray`` extra).
"""

from aiclassify.score.scorer import ScoreSummary, find_images, score_folder

__all__ = ["ScoreSummary", "find_images", "score_folder"]
