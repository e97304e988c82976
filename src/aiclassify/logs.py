"""Logging set-up shared by the command-line entry points."""

from __future__ import annotations

import logging
import os


def setup_logging(level: int = logging.INFO) -> None:
    """Plain timestamped log lines on stderr, and TensorFlow's C++ chatter turned down."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
