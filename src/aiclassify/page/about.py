"""The "about" panel's text: what each model was trained on, how well it measured, and its limits.

Everything comes from the API's model metadata (``GET /v1/models/<name>/metadata``); fields the API
does not report are said to be unknown rather than guessed.
"""

from __future__ import annotations

from typing import Any

LIMITS = (
    "A detector learns the traces of the generators in its training data: one trained on a single "
    "generator (or on faces only) can miss images from other generators, other subjects, or images "
    "that were resized, cropped, filtered or re-compressed. Treat a verdict as a hint, not proof.",
    "The demo models (`make demo`) are trained on synthetic toy images: they detect nothing in the "
    "wild, and their high scores measure the toy task only.",
)


DEMO_BANNER = "Demo model: it detects nothing real (trained on synthetic toy images, to try the page)"


def _percent(value: Any) -> str | None:
    """``0.934`` as ``93.4 %``; None when ``value`` is not a number."""
    return f"{100 * value:.1f} %" if isinstance(value, (int, float)) else None


def training_data(details: dict[str, Any]) -> str:
    """A sentence on the model's training data, from ``dataset`` (or ``training_data``) metadata."""
    dataset = details.get("dataset") or details.get("training_data")
    if isinstance(dataset, str):
        return dataset
    if not isinstance(dataset, dict):
        return "not reported by the API"
    source = dataset.get("source") or "unknown source"
    key = dataset.get("key")
    text = f"{source}{f' ({key})' if key else ''}"
    train = (dataset.get("counts") or {}).get("train")
    if isinstance(train, dict) and train:
        text += ", training images: " + ", ".join(f"{n} {label}" for label, n in train.items())
    return text


def accuracy(details: dict[str, Any]) -> str:
    """The measured test (else validation) accuracy and ROC AUC, from ``metrics`` metadata."""
    metrics = details.get("metrics") or details.get("evaluation")
    if not isinstance(metrics, dict):
        return "not reported by the API"
    for split in ("test", "validation"):
        values = metrics.get(split)
        if isinstance(values, dict) and _percent(values.get("accuracy")):
            text = f"{_percent(values['accuracy'])} accuracy on the {split} split"
            if isinstance(values.get("examples"), int):
                text += f" ({values['examples']} images)"
            if isinstance(values.get("roc_auc"), (int, float)):
                text += f", ROC AUC {values['roc_auc']:.3f}"
            return text
    if _percent(metrics.get("accuracy")):
        return f"{_percent(metrics['accuracy'])} accuracy"
    return "not reported by the API"


def operating_points(details: dict[str, Any]) -> str:
    """The default threshold and the stored operating points."""
    parts = []
    if isinstance(details.get("threshold"), (int, float)):
        parts.append(f"default threshold {details['threshold']:.3g}")
    for point in details.get("operating_points") or []:
        if isinstance(point, dict) and point.get("name"):
            threshold = point.get("threshold")
            parts.append(
                f"{point['name']}"
                + (f" (threshold {threshold:.3g})" if isinstance(threshold, (int, float)) else "")
            )
    return ", ".join(parts) or "none reported"


def band(details: dict[str, Any]) -> str:
    """The inconclusive band, or why there is none."""
    entry = details.get("band")
    if not isinstance(entry, dict):
        note = details.get("band_note")
        return f"none ({note})" if isinstance(note, str) and note else "none reported"
    lower, upper = entry.get("lower"), entry.get("upper")
    if not isinstance(lower, (int, float)) or not isinstance(upper, (int, float)):
        return "none reported"
    if entry.get("empty"):
        text = f"empty: every image gets a verdict (AI-generated from P = {upper:.3g})"
    else:
        text = f"AI-generated from P = {upper:.3g}, real up to P = {lower:.3g}, inconclusive in between"
    coverage = _percent((entry.get("validation") or {}).get("coverage"))
    text += f"; {coverage} of validation images got a confident verdict" if coverage else ""
    confidence = entry.get("confidence")
    if isinstance(confidence, (int, float)) and confidence > 0:
        text += f"; error rates bounded with {confidence:.0%} confidence"
    notes = [note for note in entry.get("notes") or [] if isinstance(note, str)]
    return "; ".join([text, *notes])


def model_summary(name: str, details: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs describing model ``name`` for the about panel."""
    architecture = details.get("architecture") or "unknown"
    size = details.get("image_size")
    return [
        (
            "Model",
            f"{name} — run {details.get('run') or 'unknown'}, architecture {architecture}"
            + (f", {size}x{size} px input" if size else ""),
        ),
        ("Trained on", training_data(details)),
        ("Measured accuracy", accuracy(details)),
        ("Thresholds", operating_points(details)),
        ("Inconclusive band", band(details)),
        *([("Demo model", DEMO_BANNER)] if details.get("demo") is True else []),
    ]
