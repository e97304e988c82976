"""What the request handlers share: settings, the model registry, image limits, the face service,
the app's metrics and its explanation slots, kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from aiclassify.serving.explanations import ExplanationSlots
from aiclassify.serving.faces import FaceService
from aiclassify.serving.images import ImageLimits
from aiclassify.serving.metrics import ApiMetrics
from aiclassify.serving.registry import ModelRegistry
from aiclassify.serving.settings import ServerSettings

EXTENSION_KEY = "aiclassify"


@dataclass
class ServingState:
    """The state of one app: its settings, its models, the image limits it enforces and its face
    detector (:class:`~aiclassify.serving.faces.FaceService`), and (made
    from the settings) its own metrics and the slots that bound concurrent explanations."""

    settings: ServerSettings
    registry: ModelRegistry
    limits: ImageLimits
    faces: FaceService
    metrics: ApiMetrics = field(init=False)
    explanation_slots: ExplanationSlots = field(init=False)

    def __post_init__(self) -> None:
        """Make the app's metrics and explanation slots."""
        self.metrics = ApiMetrics(self.settings.max_batch_size)
        self.explanation_slots = ExplanationSlots(
            self.settings.max_concurrent_explanations, self.settings.explanation_wait_s
        )
        self.metrics.watch_explanations(lambda: self.explanation_slots.active)

    def attach(self, app: Flask) -> None:
        """Make this the state of ``app``."""
        app.extensions[EXTENSION_KEY] = self


def serving_state(app: Flask | None = None) -> ServingState:
    """The state of ``app``, by default of the app handling the current request."""
    return (current_app if app is None else app).extensions[EXTENSION_KEY]
