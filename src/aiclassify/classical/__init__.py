"""The classical baselines of the literature, fitted by scikit-learn and served as Keras models.

- ``logistic_pixels``: ``LogisticRegression`` on the standardised, flattened 0-1 pixels.
- ``cooccurrence_logistic``: ``LogisticRegression`` on the standardised co-occurrence histograms of
  quantised second-order residuals of RGB, Cb, Cr and saturation, plus a saturation histogram
  (:mod:`aiclassify.classical.cooccurrence`).
- ``backbone_svm``: an RBF ``SVC`` on the standardised pooled features of a frozen CNN
  (``model.feature_backbone``, default ``resnet18``, with ``model.pretrained``).

``python -m aiclassify.train --config logistic_pixels.yaml`` fits one (:mod:`aiclassify.classical.run`,
which the trainer hands these model names to), choosing hyperparameters by ``GridSearchCV`` where the
``classical`` config section gives a grid (:mod:`aiclassify.classical.fit`). The fitted estimator is
then written into a Keras Functional model of the project's usual contract (raw 0-255 pixels in,
float32 sigmoid P(AI-generated) out; :mod:`aiclassify.classical.keras_models`), so the run directory,
SavedModel export, evaluation, comparison and serving are those of every other model.
"""

CLASSICAL_MODELS = ("logistic_pixels", "cooccurrence_logistic", "backbone_svm")
"""The ``model.name`` values fitted by scikit-learn."""
