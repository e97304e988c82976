"""Training: ``train(config, workdir)`` builds, fits, measures and exports one run.

``python -m aiclassify.train --config faces.yaml`` is its command line (:mod:`aiclassify.train.cli`).
"""

from aiclassify.train.trainer import train

__all__ = ["train"]
