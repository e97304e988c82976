"""Prepare, then score: the two stages of the one inference path.

A scorer turns encoded images into raw P(AI-generated) in two steps: :meth:`ImageScorer.prepare`
decodes them into model-ready input in the caller's thread, and :meth:`ImageScorer.score` runs a
batch of prepared inputs through the model. The API prepares each upload in its request thread and
queues only prepared inputs for the model's shared batch, so a slow decode holds up its own request
and nobody else's; the predict command and evaluation call both steps in turn
(:meth:`aiclassify.predict.Predictor.probabilities`).

A SavedModel with a ``serve_pixels`` signature, and a Keras model, prepare pixels
(:class:`aiclassify.predict.crops.CropScorer`). A plain ``score(list[bytes])`` function (tests
inject them; a SavedModel without ``serve_pixels`` is one) becomes a :class:`BytesScorer`, whose
preparing is the identity: the bytes are decoded while they are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

ScoreFunction = Callable[[list[bytes]], Sequence[float]]


@runtime_checkable
class ImageScorer(Protocol):
    """Encoded images to raw P(AI-generated) in two stages."""

    def prepare(self, images: Sequence[bytes]) -> list[Any]:
        """Model-ready inputs, one per encoded image, in order; raises on an undecodable image."""
        ...

    def score(self, prepared: Sequence[Any]) -> np.ndarray:
        """Raw P(AI-generated), one per prepared input, in order."""
        ...


class BytesScorer:
    """A plain ``score(list[bytes])`` function as an :class:`ImageScorer`: the bytes are the prepared
    input, and the function decodes them while it scores."""

    def __init__(self, function: ScoreFunction):
        self.function = function

    def prepare(self, images: Sequence[bytes]) -> list[bytes]:
        """The images unchanged."""
        return list(images)

    def score(self, prepared: Sequence[bytes]) -> np.ndarray:
        """The function's scores of the images."""
        return np.asarray(self.function(list(prepared)), dtype=np.float64).reshape(-1)


def as_scorer(score: ScoreFunction | ImageScorer) -> ImageScorer:
    """``score`` itself when it prepares and scores, else the plain function as a :class:`BytesScorer`."""
    return score if isinstance(score, ImageScorer) else BytesScorer(score)
