"""The seed-style baseline that the serving benchmark compares the API against: what the published
application did, kept only as a benchmark reference (never serve it).

Each request's upload is saved to a temporary directory on disk, read back with
``keras.utils.load_img`` (resized to the model's input size, nearest-neighbour, Keras' default)
and ``keras.utils.img_to_array``, and scored with one ``model.predict`` call on ``model.keras``:
no batching across requests, no validation beyond what Pillow does.

    BASELINE_MODEL=runs/demo/model.keras gunicorn --bind 127.0.0.1:8001 --workers 1 --threads 8 \\
        --timeout 120 'aiclassify.benchmarks.baseline_app:create_app()'
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from flask import Flask, jsonify, request


def create_app(model_path: str | None = None) -> Flask:
    """The baseline Flask app; the model is ``model_path`` or ``$BASELINE_MODEL`` (a ``.keras`` file)."""
    import keras
    import numpy as np

    model_path = model_path or os.environ.get("BASELINE_MODEL", "runs/demo/model.keras")
    model = keras.saving.load_model(model_path, compile=False)
    height, width = model.input_shape[1:3]
    upload_dir = Path(tempfile.mkdtemp(prefix="baseline-uploads-"))
    model.predict(np.zeros((1, height, width, 3), dtype="float32"), verbose=0)  # build predict_function
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz():
        """Liveness: the model is loaded by the time the app exists."""
        return jsonify(status="ok")

    @app.post("/predict")
    def predict():
        """Save the upload, load it with Keras' image utilities, predict once."""
        upload = request.files.get("file")
        if upload is None:
            return jsonify(error="no file"), 400
        path = upload_dir / f"{uuid.uuid4().hex}-{Path(upload.filename or 'upload').name}"
        upload.save(path)
        try:
            image = keras.utils.load_img(path, target_size=(height, width))
            array = keras.utils.img_to_array(image)[None, ...]
            probability = float(model.predict(array, verbose=0)[0][0])
        finally:
            path.unlink(missing_ok=True)
        label = "ai-generated" if probability >= 0.5 else "real"
        return jsonify(predictions=[{"label": label, "probability_ai": probability}])

    return app
