"""The ``aiclassify`` console script: ``aiclassify <command> [options]``."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("aiclassify.train.cli", "train a model from a config"),
    "predict": ("aiclassify.predict.cli", "classify image files with a trained run"),
    "score": ("aiclassify.score.cli", "score every image under a folder into a CSV or JSON-lines file"),
    "demo-data": ("aiclassify.data.demo", "write the embedded demo dataset or sample images"),
    "evaluate": ("aiclassify.evaluate.cli", "evaluate a run: metrics, calibration, robustness, figures"),
    "compare": ("aiclassify.compare", "train and evaluate several models on the same splits"),
    "study": ("aiclassify.study", "filter or augmentation study: one model per variant, one table"),
    "data": ("aiclassify.data.cli", "download, inspect and clean datasets"),
    "explain": ("aiclassify.explain", "Grad-CAM heatmap overlay for an image"),
    "release": ("aiclassify.release", "ship an evaluated run as a model folder with its model card"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the module of the named command."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
        print("usage: aiclassify <command> [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
