"""The classical baselines as Keras Functional models, and their fitted scikit-learn parameters.

They take raw 0-255 RGB pixels and return a float32 sigmoid P(AI-generated) in the layer named
``probability_ai``, like every registered model, so they export and serve the same way. The part
that turns pixels into features (``flatten`` / ``features``) is ordinary Keras; the fitted part is
two registered layers, :class:`Standardize` (a ``StandardScaler``) and :class:`RBFKernelDecision`
(an RBF ``SVC``'s decision function), computed in float64 as scikit-learn computes them.

The registered builders give the models unfitted (every output 0.5); :func:`set_logistic_weights`
and :func:`fitted_svm_model` write a fit into them (:mod:`aiclassify.classical.fit` makes the fit).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import layers, ops

from aiclassify.models import register

FEATURES_LAYER = "features"
STANDARDIZE_LAYER = "standardize"
DECISION_LAYER = "svm_decision"
OUTPUT_LAYER = "probability_ai"


@keras.saving.register_keras_serializable(package="aiclassify")
class Standardize(layers.Layer):
    """``(x - mean) / scale`` per feature: a fitted ``StandardScaler`` (``mean_``, ``scale_``)."""

    def build(self, input_shape):
        width = input_shape[-1]
        self.mean = self.add_weight(name="mean", shape=(width,), initializer="zeros", trainable=False)
        self.scale = self.add_weight(name="scale", shape=(width,), initializer="ones", trainable=False)

    def call(self, inputs):
        return (ops.cast(inputs, self.compute_dtype) - self.mean) / self.scale


@keras.saving.register_keras_serializable(package="aiclassify")
class RBFKernelDecision(layers.Layer):
    """An RBF ``SVC``'s decision function on feature vectors, shape ``(batch, 1)``.

    ``sum_i dual_coef_i * exp(-gamma * ||x - sv_i||^2) + intercept`` over the ``num_support``
    stored support vectors; positive means AI-generated (class 1), as ``SVC.decision_function``.
    """

    def __init__(self, num_support: int, gamma: float, **kwargs):
        super().__init__(**kwargs)
        if num_support < 1:
            raise ValueError(f"num_support must be at least 1. Received: num_support={num_support}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive. Received: gamma={gamma}")
        self.num_support = int(num_support)
        self.gamma = float(gamma)

    def build(self, input_shape):
        shape = (self.num_support, input_shape[-1])
        self.support_vectors = self.add_weight(
            name="support_vectors", shape=shape, initializer="zeros", trainable=False
        )
        self.dual_coef = self.add_weight(
            name="dual_coef", shape=(self.num_support, 1), initializer="zeros", trainable=False
        )
        self.intercept = self.add_weight(name="intercept", shape=(1,), initializer="zeros", trainable=False)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        support = self.support_vectors
        squared = (
            ops.sum(ops.square(x), axis=-1, keepdims=True)
            - 2.0 * ops.matmul(x, ops.transpose(support))
            + ops.expand_dims(ops.sum(ops.square(support), axis=-1), 0)
        )
        kernel = ops.exp(-self.gamma * ops.maximum(squared, 0.0))
        return ops.matmul(kernel, self.dual_coef) + self.intercept

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 1)

    def get_config(self):
        return {**super().get_config(), "num_support": self.num_support, "gamma": self.gamma}


def _probability(x: keras.KerasTensor) -> keras.KerasTensor:
    """A float32 sigmoid ``probability_ai`` initialised to zeros: 0.5 until a fit is written into it."""
    return layers.Dense(
        1, activation="sigmoid", dtype="float32", kernel_initializer="zeros", name=OUTPUT_LAYER
    )(x)


@register("logistic_pixels")
def logistic_pixels(
    inputs: keras.KerasTensor, *, filter_layer: keras.layers.Layer | None = None
) -> keras.Model:
    """Logistic regression on the flattened pixels scaled to [0, 1] and standardised per pixel."""
    x = inputs if filter_layer is None else filter_layer(inputs)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    x = layers.Flatten(name="flatten")(x)
    x = Standardize(dtype="float64", name=STANDARDIZE_LAYER)(x)
    return keras.Model(inputs, _probability(x), name="logistic_pixels")


def feature_model(name: str, image_size: int, pretrained: str, resize_to: int = 0) -> keras.Model:
    """The feature extractor of the backbone ``name`` (:func:`aiclassify.backbones.feature_extractor`):
    0-255 pixels in, pooled feature vector out, upsampled to ``resize_to`` inside (0: as they come)."""
    from aiclassify.backbones import feature_extractor

    return feature_extractor(name, image_size, pretrained, resize_to)


def svm_head(inputs: keras.KerasTensor, features: keras.KerasTensor, num_support: int, gamma: float):
    """``features`` standardised, the RBF decision, then its Platt sigmoid, as a model on ``inputs``."""
    x = Standardize(dtype="float64", name=STANDARDIZE_LAYER)(features)
    decision = RBFKernelDecision(num_support, gamma, dtype="float64", name=DECISION_LAYER)(x)
    return keras.Model(inputs, _probability(decision), name="backbone_svm")


@register("backbone_svm")
def backbone_svm(
    inputs: keras.KerasTensor,
    *,
    feature_backbone: str = "resnet18",
    pretrained: str = "none",
    resize_to: int = 0,
    filter_layer: keras.layers.Layer | None = None,
) -> keras.Model:
    """An RBF SVM on the pooled features of the frozen backbone ``feature_backbone`` with
    ``pretrained`` weights, inputs upsampled to ``resize_to`` inside the extractor (unfitted: one
    zero support vector; :func:`fitted_svm_model` gives it the fitted ones)."""
    x = inputs if filter_layer is None else filter_layer(inputs)
    # The extractor normalises 0-255 pixels itself (as efficientnetb0's identity "rescale").
    x = layers.Identity(name="rescale")(x)
    extractor = feature_model(feature_backbone, inputs.shape[1], pretrained, resize_to)
    extractor.trainable = False
    features = layers.Identity(name=FEATURES_LAYER)(extractor(x))
    return svm_head(inputs, features, num_support=1, gamma=1.0)


def features_of(model: keras.Model) -> keras.Model:
    """The part of a classical model that turns pixels into the features scikit-learn fits on."""
    return keras.Model(model.inputs, model.get_layer(STANDARDIZE_LAYER).input, name=f"{model.name}_features")


def set_logistic_weights(model: keras.Model, scaler: Any, logistic: Any) -> keras.Model:
    """Write a fitted ``StandardScaler`` and binary ``LogisticRegression`` into a logistic model
    (``logistic_pixels``, ``cooccurrence_logistic``: a :class:`Standardize` then ``probability_ai``)."""
    model.get_layer(STANDARDIZE_LAYER).set_weights([scaler.mean_, scaler.scale_])
    model.get_layer(OUTPUT_LAYER).set_weights([logistic.coef_.T, logistic.intercept_])
    return model


def fitted_svm_model(model: keras.Model, scaler: Any, svc: Any, gamma: float, platt: Any) -> keras.Model:
    """``backbone_svm`` with a fitted ``StandardScaler``, binary RBF ``SVC`` (its numeric ``gamma``)
    and Platt calibrator (a one-feature ``LogisticRegression`` on the decision values), sharing
    ``model``'s feature extractor."""
    support = np.asarray(svc.support_vectors_)
    fitted = svm_head(model.inputs[0], model.get_layer(STANDARDIZE_LAYER).input, len(support), gamma)
    fitted.get_layer(STANDARDIZE_LAYER).set_weights([scaler.mean_, scaler.scale_])
    fitted.get_layer(DECISION_LAYER).set_weights(
        [support, np.asarray(svc.dual_coef_).reshape(-1, 1), np.asarray(svc.intercept_).reshape(1)]
    )
    fitted.get_layer(OUTPUT_LAYER).set_weights([platt.coef_.reshape(1, 1), platt.intercept_.reshape(1)])
    return fitted
