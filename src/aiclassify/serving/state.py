"""What the request handlers share: settings, the model registry and image limits, kept on the app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from aiclassify.serving.images import ImageLimits
from aiclassify.serving.registry import ModelRegistry
from aiclassify.serving.settings import ServerSettings

EXTENSION_KEY = "aiclassify"


@dataclass
class ServingState:
    """The state of one app: its settings, its models and the image limits it enforces."""

    settings: ServerSettings
    registry: ModelRegistry
    limits: ImageLimits

    def attach(self, app: Flask) -> None:
        """Make this the state of ``app``."""
        app.extensions[EXTENSION_KEY] = self


def serving_state(app: Flask | None = None) -> ServingState:
    """The state of ``app``, by default of the app handling the current request."""
    return (current_app if app is None else app).extensions[EXTENSION_KEY]
