"""An ensemble of finished runs as one Keras model: every member scores the image, logits averaged.

The members' averaged logit (``mean(log(p / (1 - p)))``, then the sigmoid) is the rule the
predictor already uses to combine an image's crops and mirror (:mod:`aiclassify.predict.crops`):
one confident member moves the score more than a mean of probabilities would let it, and the
result is a probability like any model's, so calibration, the band, export and serving need
nothing new. Each member keeps its own preprocessing (rescaling, forensic filter) inside it,
and appears in the ensemble as the nested model ``member{i}``. The members' run directory is
written by :mod:`aiclassify.train.ensemble_run`.
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from aiclassify import runs
from aiclassify.models import load_keras_model, register

LOGIT_EPSILON = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the logit


@keras.saving.register_keras_serializable(package="aiclassify")
class MeanLogit(layers.Layer):
    """``sigmoid(mean_i(logit(p_i)))`` over a list of (batch, 1) probabilities, in float32."""

    def call(self, probabilities):
        stacked = keras.ops.stack([keras.ops.cast(p, "float32") for p in probabilities], axis=0)
        clipped = keras.ops.clip(stacked, LOGIT_EPSILON, 1.0 - LOGIT_EPSILON)
        logits = keras.ops.log(clipped) - keras.ops.log1p(-clipped)
        return keras.ops.sigmoid(keras.ops.mean(logits, axis=0))

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def member_model_path(member: str | Path) -> Path:
    """The ``model.keras`` of a member folder (a finished run or a released model)."""
    path = Path(member) / runs.MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"An ensemble member must be a finished run or released model folder holding "
            f"{runs.MODEL_FILE}. Received: member={str(member)!r}"
        )
    return path


@register("ensemble")
def ensemble(
    inputs: keras.KerasTensor,
    *,
    members: tuple[str, ...] = (),
    filter_layer: layers.Layer | None = None,
) -> keras.Model:
    """The finished runs ``members`` (two or more folders) averaged in logit space.

    Every member must take the ensemble's input shape; a forensic filter belongs inside the
    members, so ``filter_layer`` must be None (``data.filter: none``).
    """
    if len(members) < 2:
        raise ValueError(f"An ensemble needs two or more members. Received: members={list(members)}")
    if filter_layer is not None:
        raise ValueError(
            "An ensemble's members carry their own forensic filters: set data.filter to none. "
            f"Received: filter_layer={filter_layer.name!r}"
        )
    outputs = []
    for index, member in enumerate(members):
        loaded = load_keras_model(member_model_path(member))
        if tuple(loaded.input_shape[1:]) != tuple(inputs.shape[1:]):
            raise ValueError(
                f"Every ensemble member must take the ensemble's input {tuple(inputs.shape[1:])} "
                f"(data.image_size). Received: member={member!r} with input {tuple(loaded.input_shape[1:])}"
            )
        renamed = keras.Model(loaded.input, loaded.output, name=f"member{index}")
        outputs.append(renamed(inputs))
    return keras.Model(inputs, MeanLogit(name="probability_ai")(outputs), name="ensemble")
