"""The predict command: ``python -m aiclassify.predict --run runs/demo a.jpg [b.png ...] [--json]``.

Scores files through :class:`aiclassify.predict.Predictor`, the same inference path as the API.
Each line gives the verdict (``ai-generated``, ``real``, or ``inconclusive`` inside the run's
inconclusive band) and the calibrated probability, then one indented ``warning:`` line per warning
that makes it unreliable, then one ``evidence:`` line per finding of the image's metadata (Content
Credentials, XMP, EXIF, generator settings: :mod:`aiclassify.evidence`; reported beside the
verdict, never part of it), the first saying what the metadata ``declared``. ``--json`` prints one
object per file with ``verdict``, ``label`` (the decision at the threshold in use), ``band``,
``warnings`` and ``evidence`` (``{declared, findings}``) among its fields.

``--face-run FACES_RUN`` adds the face path (:mod:`aiclassify.predict.faces`): the faces of each
image are found with MTCNN and each is scored by that run's face model, one indented ``face N``
line each (box ``[x, y, width, height]`` in the upright image's pixels, detector confidence,
verdict), or ``faces`` in the JSON; the ``--run`` model still gives the whole image's verdict. When
both are the same run, an image without a face is warned ``no_face``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from aiclassify.logs import setup_logging


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the predict command."""
    parser = argparse.ArgumentParser(prog="aiclassify predict", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory (or a SavedModel folder)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--operating-point", help="a stored operating point (e.g. fpr_1pct) instead of the default threshold"
    )
    threshold.add_argument(
        "--target-fpr",
        type=float,
        help="the stored operating point with this target false-positive rate (e.g. 0.01), as the API's",
    )
    parser.add_argument(
        "--face-run", type=Path, help="also score every face found with this face model's run directory"
    )
    parser.add_argument("--max-faces", type=int, default=20, help="faces scored per image (most confident)")
    parser.add_argument(
        "--min-face-size",
        type=int,
        default=32,
        help="smallest face scored, in pixels of its box's longer side",
    )
    parser.add_argument("images", nargs="+", type=Path)
    return parser.parse_args(argv)


def format_result(result) -> list[str]:
    """The text lines for one :class:`~aiclassify.predict.FilePrediction`."""
    if result.error:
        return [f"{result.path}: error: {result.error}"]
    line = f"{result.path}: {result.verdict} (P(AI-generated) = {result.probability_ai:.4f})"
    if result.operating_point is not None:
        line += f" [label at {result.operating_point}, threshold {result.threshold:.4f}: {result.label}]"
    lines = [line, *(f"  warning: {w['code']}: {w['message']}" for w in result.warnings or [])]
    if result.evidence:
        lines.append(
            f"  evidence: declared: {result.evidence['declared']} (metadata only; not part of the score)"
        )
        lines += [
            f"  evidence: {f['source']}: {f['finding']} ({f['strength']}): {f['detail']}"
            for f in result.evidence["findings"]
        ]
    if result.faces is not None:
        lines += face_lines(result.faces)
    return lines


def face_lines(faces: list[dict]) -> list[str]:
    """The text lines of an image's scored faces (``FilePrediction.faces``)."""
    if not faces:
        return ["  faces: none found"]
    lines = []
    for face in faces:
        lines.append(
            f"  face {face['index'] + 1} {face['box']} (detector {face['detector_confidence']:.3f}): "
            f"{face['verdict']} (P(AI-generated) = {face['probability_ai']:.4f})"
        )
        lines += [f"    warning: {w['code']}: {w['message']}" for w in face["warnings"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the verdict and probability of each image, then its warnings (or JSON lines with
    --json); 1 when a file failed."""
    args = parse_args(argv)
    setup_logging()
    from aiclassify.predict import Predictor
    from aiclassify.runs import RunDirectoryError

    try:
        predictor = Predictor.load(args.run)
        faces = None if args.face_run is None else face_path(args)
        expect_faces = faces is not None and args.face_run.resolve() == args.run.resolve()
        results = predictor.predict_files(
            args.images,
            target_fpr=args.target_fpr,
            operating_point=args.operating_point,
            faces=faces,
            expect_faces=expect_faces,
        )
    except (RunDirectoryError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if predictor.band is None:
        print(f"note: {predictor.band_note}", file=sys.stderr)
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print("\n".join(format_result(result)))
    return 1 if any(r.error for r in results) else 0


def face_path(args: argparse.Namespace):
    """The face path of ``--face-run`` with the detector's limits from the options."""
    from aiclassify.faces import FaceDetector, FaceFinder
    from aiclassify.predict import FacePath, Predictor

    detector = FaceDetector(max_faces=args.max_faces, min_face_size=args.min_face_size)
    return FacePath(FaceFinder(detector), Predictor.load(args.face_run))


if __name__ == "__main__":
    sys.exit(main())
