"""Ship an evaluated run as a model folder the API serves.

``python -m aiclassify.release --run R --out models/x --command ... --machine ...``

A release folder holds what the predictor loads (``metadata.json``, ``calibration.json``,
``saved_model/``, its weights in shards within the file limit, and ``model.keras`` without
optimizer state, for explanations, when Grad-CAM can explain the model: it has a convolutional
layer of its own, which an ensemble or a ViT has not), the run's
``config.yaml``, ``report.json`` and ``figures/``, a ``MODEL_CARD.md`` written from those files
only, and ``MANIFEST.json``: the sha256 of every file and the model's scores on a few reference
images the project draws itself (``reference/``), so a test can prove that the shipped files are
the ones measured and still give the recorded scores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aiclassify import runs
from aiclassify.evaluate.markdown import fmt, table
from aiclassify.predict.crops import mirrors_views

MANIFEST_FILE = "MANIFEST.json"
CARD_FILE = "MODEL_CARD.md"
REFERENCE_DIR = "reference"
REFERENCE_IMAGES = 6
MAX_FILE_MB = 40.0
COPIED = (runs.METADATA_FILE, runs.CALIBRATION_FILE, runs.CONFIG_FILE, runs.REPORT_JSON)
MISUSE = (
    "Deciding on its own that a picture is fake, or that a person made or spread a fake: a score is a "
    "signal, not proof, and must be weighed with other evidence (provenance, metadata, context).",
    "Images unlike its training data (other generators, subjects, sizes or heavy editing): its "
    "accuracy there is unknown unless the card shows an out-of-distribution result for them.",
    "Identifying or profiling people, or any use on faces without a lawful basis.",
)


class ReleaseError(ValueError):
    """The run cannot be shipped as it is."""


def sha256(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference_images(image_size: int, count: int = REFERENCE_IMAGES, seed: int = 20_261_201) -> list[bytes]:
    """Deterministic PNGs the project draws itself (demo-style real and AI-like images, and noise)."""
    from aiclassify.data.demo import render

    rng = np.random.default_rng(seed)
    images = [render(index % 2, image_size, rng) for index in range(count - 1)]
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)).save(buffer, "PNG")
    return [*images, buffer.getvalue()]


def release(run_dir: Path, out: Path, command: str, machine: str, notes: str = "") -> dict[str, Any]:
    """Write the release folder ``out`` for an evaluated ``run_dir``; return its manifest."""
    from aiclassify.predict import Predictor

    run_dir, out = Path(run_dir), Path(out)
    for name in (runs.METADATA_FILE, runs.CALIBRATION_FILE, runs.REPORT_JSON, runs.SAVED_MODEL_DIR):
        if not (run_dir / name).exists():
            raise ReleaseError(f"{run_dir} has no {name}: train and evaluate the run before releasing it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for name in COPIED:
            shutil.copy2(run_dir / name, staging / name)
        shutil.copytree(run_dir / runs.SAVED_MODEL_DIR, staging / runs.SAVED_MODEL_DIR)
        if (run_dir / runs.FIGURES_DIR).is_dir():
            shutil.copytree(run_dir / runs.FIGURES_DIR, staging / runs.FIGURES_DIR)
        if (run_dir / runs.MODEL_FILE).is_file():
            _save_explainable_model(run_dir / runs.MODEL_FILE, staging / runs.MODEL_FILE)
        predictor = Predictor.load(staging)
        images = reference_images(int(predictor.image_size))
        (staging / REFERENCE_DIR).mkdir()
        names = [f"{REFERENCE_DIR}/image_{index}.png" for index in range(len(images))]
        for name, data in zip(names, images, strict=True):
            (staging / name).write_bytes(data)
        scores = predictor.probabilities(images)
        report = runs.read_json(staging / runs.REPORT_JSON)
        calibration = runs.read_json(staging / runs.CALIBRATION_FILE)
        metadata = runs.read_json(staging / runs.METADATA_FILE)
        weights = sorted(
            str(path.relative_to(staging))
            for path in (staging / runs.SAVED_MODEL_DIR).rglob("variables.data-*")
        )
        files = {"weights": weights, "keras_model": (staging / runs.MODEL_FILE).is_file()}
        card = model_card(out.name, metadata, calibration, report, command, machine, notes, files)
        (staging / CARD_FILE).write_text(card)
        _check_sizes(staging)
        manifest = {
            "name": out.name,
            "run": metadata.get("name"),
            "released": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {
                str(path.relative_to(staging)): sha256(path)
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            },
            "reference": [
                {"image": name, "probability_ai": float(score)}
                for name, score in zip(names, scores, strict=True)
            ],
        }
        runs.write_json(staging / MANIFEST_FILE, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _save_explainable_model(source: Path, destination: Path) -> None:
    """``source`` saved without optimizer state at ``destination`` when Grad-CAM can explain it."""
    from aiclassify.explain import last_conv_layer
    from aiclassify.models import load_keras_model

    model = load_keras_model(source)
    try:
        last_conv_layer(model)
    except ValueError:
        return
    model.save(destination)


def _check_sizes(folder: Path, limit_mb: float = MAX_FILE_MB) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size > limit_mb * 1024 * 1024:
            size = path.stat().st_size / 1024 / 1024
            raise ReleaseError(
                f"{path.relative_to(folder)} is {size:.1f} MB, "
                f"over the {limit_mb:g} MB limit of a release file."
            )


def _views(metadata: dict[str, Any]) -> str:
    """What each image (or each crop of a large one) is scored on, by the predictor's rule."""
    if mirrors_views(metadata):
        return "the image and its mirror image, mean logit (trained with horizontal flips)"
    return "the image"


def _architecture(metadata: dict[str, Any]) -> str:
    members = (metadata.get("ensemble") or {}).get("members")
    if not members:
        return str(metadata.get("model"))
    return f"ensemble of {len(members)} ({', '.join(str(member.get('model')) for member in members)})"


def _training_lines(metadata: dict[str, Any], training: dict[str, Any], machine: str) -> list[str]:
    """How long training took, and for an ensemble, each member and how they are combined."""
    ensemble = metadata.get("ensemble") or {}
    if not ensemble:
        return [
            f"Machine: {machine}. Training time: {fmt(training.get('train_seconds'), 0)} s over "
            f"{training.get('epochs_completed')} epoch(s), best epoch {training.get('best_epoch')} "
            "(learning curve: `figures/training_curves.png`).",
        ]
    return [
        f"Machine: {machine}. Training time: {fmt(training.get('train_seconds'), 0)} s, the members' "
        "own runs summed (a member that started from another run's weights counts its own epochs "
        "only). The members are separate runs of the same data and validation/test split; each "
        f"scores the image, combined as the {ensemble.get('combine')}.",
        "",
        *table(
            [
                "member",
                "model",
                "seed",
                "started from",
                "training time (s)",
                "test accuracy alone (plain view)",
            ],
            [
                [
                    m.get("name"),
                    m.get("model"),
                    m.get("seed"),
                    m.get("started_from"),
                    fmt(m.get("train_seconds"), 0),
                    m.get("test_accuracy"),
                ]
                for m in ensemble.get("members", [])
            ],
        ),
    ]


def model_card(
    name: str,
    metadata: dict[str, Any],
    calibration: dict[str, Any],
    report: dict[str, Any],
    command: str,
    machine: str,
    notes: str = "",
    files: dict[str, Any] | None = None,
) -> str:
    """The model card, every number taken from the run's own files; ``files``: the release's weight
    files (``weights``, paths) and whether it ships ``model.keras`` (``keras_model``)."""
    test = report.get("test", {})
    dataset = metadata.get("dataset", {})
    training = report.get("training", {})
    counts = dataset.get("counts", {})
    lines = [
        f"# Model card: {name}",
        "",
        "A signal, not proof. This model estimates the probability that an image is AI-generated "
        "from its pixels alone; weigh it with other evidence and never treat it as a verdict on its own.",
        "",
        "## Model",
        "",
        *table(
            ["field", "value"],
            [
                ["architecture", _architecture(metadata)],
                ["parameters", metadata.get("parameters")],
                ["input", f"{metadata.get('image_size')}x{metadata.get('image_size')} RGB"],
                ["input filter", (metadata.get("filter") or {}).get("name")],
                ["scored on", _views(metadata)],
                ["run", metadata.get("name")],
                ["trained", metadata.get("created")],
                ["evaluated", report.get("evaluated")],
                ["precision", metadata.get("precision")],
            ],
        ),
        "",
        "## Data and training",
        "",
        f"Dataset: `{dataset.get('key') or dataset.get('source')}` at `{dataset.get('root')}`.",
        "",
        *table(
            ["split", "real", "ai-generated"],
            [[split, c.get("real"), c.get("ai-generated")] for split, c in counts.items()],
        ),
        "",
        f"Command: `{command}` (the resolved config is `config.yaml` in this folder).",
        "",
        *_training_lines(metadata, training, machine),
        "",
        "## Test metrics",
        "",
        f"{report.get('data', {}).get('test_examples')} test images, "
        f"threshold {fmt(report.get('threshold'))} on the raw probability.",
        "",
        *table(
            ["metric", "value"],
            [
                [key, test.get(key)]
                for key in ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc")
            ],
        ),
        "",
        "## Robustness (the same test images re-encoded or degraded)",
        "",
        *table(
            ["tier", "accuracy", "ROC-AUC"],
            [
                [row.get("label"), row.get("accuracy"), row.get("roc_auc")]
                for row in report.get("robustness", [])
            ],
        ),
        "",
        "## Out-of-distribution sets",
        "",
    ]
    ood = report.get("ood") or {}
    if ood:
        lines += table(
            ["set", "images", "accuracy", "share called AI-generated", "mean P(AI)"],
            [
                [name, s.get("examples"), s.get("accuracy"), s.get("recall"), s.get("mean_probability_ai")]
                for name, s in ood.items()
            ],
        )
    else:
        lines.append("None measured.")
    lines += [
        "",
        "## Calibration and decisions",
        "",
        f"Temperature {fmt(calibration.get('temperature'))} fitted on validation "
        f"(ECE {fmt(calibration.get('ece_before'))} before, {fmt(calibration.get('ece_after'))} after).",
        "",
        *table(
            ["operating point", "threshold", "validation FPR", "validation TPR"],
            [
                [p.get("name"), p.get("threshold"), p.get("fpr"), p.get("tpr")]
                for p in calibration.get("operating_points", [])
            ],
        ),
        "",
    ]
    band = calibration.get("band")
    if band:
        lines += [
            f"Inconclusive band: calibrated P(AI) between {fmt(band.get('lower'))} "
            f"and {fmt(band.get('upper'))} "
            f"is reported as inconclusive: chosen on validation so that at most "
            f"{fmt(band.get('target_fpr'), 2)} of the real images are called AI-generated and at most as "
            "many of the AI-generated images are called real (shares of all the images of that class)"
            + (
                f", each with {fmt(band.get('confidence'), 2)} confidence (Clopper-Pearson upper bound)."
                if band.get("confidence")
                else "."
            ),
            "",
            *[f"- {note}" for note in band.get("notes") or []],
            *([""] if band.get("notes") else []),
        ]
        measured = report.get("band") or {}
        splits = [split for split in ("validation", "test") if isinstance(measured.get(split), dict)]
        if splits:
            lines += table(
                ["split", "coverage", "accuracy of confident verdicts", "real called AI (FPR)", "AI caught"],
                [
                    [
                        split,
                        *(
                            measured[split].get(key)
                            for key in ("coverage", "confident_accuracy", "fpr", "recall")
                        ),
                    ]
                    for split in splits
                ],
            )
            lines.append("")
    else:
        lines += ["No inconclusive band was stored for this model.", ""]
    lines += ["## Must not be used for", "", *[f"- {item}" for item in MISUSE], ""]
    if notes:
        lines += ["## Limits and next steps", "", notes.strip(), ""]
    lines += ["## Files", "", *_files_lines(files or {}), ""]
    return "\n".join(lines)


def _files_lines(files: dict[str, Any]) -> list[str]:
    weights = ", ".join(f"`{name}`" for name in files.get("weights", [])) or "none found"
    lines = [
        f"`{MANIFEST_FILE}` lists the sha256 of every file (the weights: {weights}) and the scores on "
        "`reference/` images. The API serves `saved_model/`."
    ]
    if files.get("keras_model"):
        lines.append(f"`{runs.MODEL_FILE}` (the same weights, no optimizer state) is there for Grad-CAM.")
    else:
        lines.append(
            f"No `{runs.MODEL_FILE}`: Grad-CAM needs a convolutional layer of the model's own, which "
            "this one has not (an ensemble's are inside its members), so explanations are not available."
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the release command."""
    parser = argparse.ArgumentParser(prog="aiclassify release", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="an evaluated run directory")
    parser.add_argument("--out", required=True, type=Path, help="release folder, e.g. models/general")
    parser.add_argument("--command", required=True, help="the training command, for the card")
    parser.add_argument("--machine", required=True, help="where it was trained, for the card")
    parser.add_argument("--notes", type=Path, help="Markdown file: what limited the model, next steps")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the release folder and print where it is."""
    args = parse_args(argv)
    from aiclassify.logs import setup_logging

    setup_logging()
    notes = args.notes.read_text() if args.notes else ""
    try:
        manifest = release(args.run, args.out, args.command, args.machine, notes)
    except (ReleaseError, runs.RunDirectoryError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(manifest['files'])} files, card {args.out / CARD_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
