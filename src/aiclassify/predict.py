"""Classify image files with an exported run: ``python -m aiclassify.predict --run runs/demo a.jpg``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from aiclassify import LABEL_NAMES
from aiclassify.logs import setup_logging


@dataclass(frozen=True)
class Prediction:
    """The verdict on one image."""

    path: str
    label: str | None
    probability_ai: float | None
    error: str | None = None


class Predictor:
    """Scores encoded images with a run's exported SavedModel and its decision threshold."""

    def __init__(self, run_dir: Path):
        from aiclassify.evaluation.calibration import read_temperature
        from aiclassify.export import BYTES_SIGNATURE, load_saved_model
        from aiclassify.runs import SAVED_MODEL_DIR, read_metadata

        self.metadata = read_metadata(run_dir)
        self.threshold = float(self.metadata["threshold"])
        self.temperature = read_temperature(self.metadata)
        self._serve = load_saved_model(Path(run_dir) / SAVED_MODEL_DIR).signatures[BYTES_SIGNATURE]

    def probabilities(self, images: list[bytes]) -> list[float]:
        """P(AI-generated) for each encoded image (raises on an undecodable one)."""
        import tensorflow as tf

        from aiclassify.export import OUTPUT_KEY

        output = self._serve(image_bytes=tf.constant(images, dtype=tf.string))
        return [float(p) for p in output[OUTPUT_KEY].numpy()]

    def label(self, probability: float) -> str:
        """The label for a raw model probability at this run's threshold."""
        return LABEL_NAMES[int(probability >= self.threshold)]

    def calibrated(self, probability: float) -> float:
        """The probability after the run's temperature scaling (unchanged when not calibrated)."""
        from aiclassify.evaluation.calibration import apply_temperature

        if self.temperature == 1.0:
            return float(probability)
        return float(apply_temperature(probability, self.temperature))

    def predict_files(self, paths: list[Path]) -> list[Prediction]:
        """Verdicts (calibrated probability, label at the run's threshold) for image files.

        A file that cannot be read or decoded gets an error instead.
        """
        from aiclassify.data.validate import image_problem

        results = []
        for path in paths:
            problem = image_problem(str(path)) if Path(path).is_file() else "no such file"
            if problem:
                results.append(Prediction(str(path), None, None, problem))
                continue
            probability = self.probabilities([Path(path).read_bytes()])[0]
            results.append(Prediction(str(path), self.label(probability), self.calibrated(probability)))
        return results


def main(argv: list[str] | None = None) -> int:
    """Print one line per image: label and probability (or JSON with --json)."""
    parser = argparse.ArgumentParser(prog="aiclassify predict", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory with saved_model/")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    parser.add_argument("images", nargs="+", type=Path)
    args = parser.parse_args(argv)
    setup_logging()
    from aiclassify.runs import RunDirectoryError

    try:
        predictor = Predictor(args.run)
    except RunDirectoryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = predictor.predict_files(args.images)
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        elif result.error:
            print(f"{result.path}: error: {result.error}")
        else:
            print(f"{result.path}: {result.label} (P(AI-generated) = {result.probability_ai:.4f})")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
