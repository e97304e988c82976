"""The one inference path: encoded images in, calibrated verdicts out.

A :class:`Predictor` loads a run directory (or a bare SavedModel), scores encoded image bytes
through the exported ``serve_pixels`` signature, on the image decoded and resized as
``serving_default`` does it (:mod:`aiclassify.preprocessing`; the same numbers) or, for an image
much larger than the model's input, on a bounded grid of native-resolution crops
(:mod:`aiclassify.predict.crops`), and applies the run's calibration and decision thresholds and
labels. Scoring has two stages (:mod:`aiclassify.predict.stages`): :meth:`Predictor.prepare` decodes
in the caller's thread, :meth:`Predictor.score_prepared` runs prepared inputs through the model;
:meth:`Predictor.probabilities` does both. The predict command, the API, evaluation and
explanations all use it, so they cannot drift apart.

Thresholds come from the files of their one writer each: the default decision threshold from
training's ``metadata.json``, the temperature, operating points and inconclusive band from
evaluation's ``calibration.json``. :attr:`Predictor.calibration_source` says which file they were
read from.

Each verdict carries two decisions: ``label``, the thresholded decision at the requested threshold
or operating point (``probability_ai >= threshold``), and ``verdict``, ``ai-generated``, ``real`` or
``inconclusive`` by the run's inconclusive band (:mod:`aiclassify.predict.band`; a run without a
band gets ``verdict == label``), with the warnings that make it unreliable
(:mod:`aiclassify.predict.diagnostics`) and, beside them, the evidence of the image's metadata
(:meth:`Predictor.evidence`, :mod:`aiclassify.evidence`: Content Credentials, XMP, EXIF, generator
settings), which never changes ``probability_ai``: the model scores pixels only.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiclassify import LABEL_NAMES, runs
from aiclassify.calibration import calibrate, check_temperature
from aiclassify.evidence import Evidence, read_evidence
from aiclassify.predict.band import Band, read_band
from aiclassify.predict.crops import mirrors_views
from aiclassify.predict.diagnostics import DEMO_MODEL, ImageWarning, image_warnings
from aiclassify.predict.stages import ImageScorer, ScoreFunction, as_scorer

if TYPE_CHECKING:
    from PIL import Image

    from aiclassify.predict.faces import FacePath

logger = logging.getLogger(__name__)

LEGACY_CALIBRATION_SOURCE = f"{runs.METADATA_FILE} (written by an older evaluate)"


class UnknownOperatingPointError(ValueError):
    """A caller asked for an operating point the model does not have.

    ``parameter`` and ``asked``: what was asked for (``operating_point`` or ``target_fpr``, and its
    value), both None when the model has no operating points at all; ``available``: the points it
    has. :meth:`describe` words the error with ``asked`` as the caller wants it quoted (a server cuts
    a client's value short).
    """

    def __init__(self, parameter: str | None = None, asked: str | None = None, available: str = ""):
        self.parameter, self.asked, self.available = parameter, asked, available
        super().__init__(self.describe(asked))

    def describe(self, asked: str | None) -> str:
        """The message, quoting ``asked``."""
        if self.parameter is None:
            return (
                "no stored operating points (the model has not been evaluated); "
                "omit target_fpr/operating_point to use its default threshold"
            )
        return f"no operating point for {self.parameter}={asked}; available: {self.available}"


class ExplanationUnavailableError(ValueError):
    """The model cannot explain its predictions (it was not loaded from a run with ``model.keras``)."""


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on the calibrated probability, chosen on validation for a target false-positive rate."""

    name: str
    target_fpr: float | None
    threshold: float


@dataclass(frozen=True)
class Verdict:
    """The decision on one image."""

    label: str
    probability_ai: float  # calibrated
    probability_ai_uncalibrated: float
    threshold: float  # label is ai-generated when probability_ai >= threshold
    operating_point: str | None  # None: the run's default threshold
    verdict: str  # ai-generated, real or inconclusive by the band; the label when there is no band
    band: Band | None = None
    warnings: tuple[ImageWarning, ...] = ()
    evidence: Evidence | None = None  # what the metadata declares; never folded into probability_ai


@dataclass(frozen=True)
class FilePrediction:
    """The verdict on one image file, or why there is none."""

    path: str
    label: str | None
    probability_ai: float | None
    error: str | None = None
    threshold: float | None = None
    operating_point: str | None = None
    verdict: str | None = None  # ai-generated, real or inconclusive (the label when there is no band)
    band: dict[str, float] | None = None  # {"lower", "upper"}
    warnings: list[dict[str, str]] | None = None  # [{"code", "message"}]
    evidence: dict[str, Any] | None = None  # {"declared", "findings": [{source, finding, strength, detail}]}
    faces: list[dict[str, Any]] | None = (
        None  # with a face path: FaceVerdict.to_dict() each; None: not searched
    )


def read_calibration(run_dir: Path, metadata: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Evaluation's calibration of a run and the file it came from (``({}, None)``: not evaluated).

    Runs evaluated before ``calibration.json`` existed kept it inside ``metadata.json``; it is
    read from there, and the source says so.
    """
    path = Path(run_dir) / runs.CALIBRATION_FILE
    if path.is_file():
        return runs.read_json(path), runs.CALIBRATION_FILE
    if metadata.get("calibration") or metadata.get("operating_points"):
        legacy = {
            **(metadata.get("calibration") or {}),
            "operating_points": metadata.get("operating_points") or [],
        }
        return legacy, LEGACY_CALIBRATION_SOURCE
    return {}, None


def read_operating_points(calibration: dict[str, Any]) -> tuple[OperatingPoint, ...]:
    """The stored operating points; one without a finite threshold is left out with a warning.

    Thresholds are kept exactly as stored: one just above 1 (evaluation's "flag nothing" point)
    is legitimate.
    """
    points = []
    for entry in calibration.get("operating_points") or []:
        threshold = float(entry["threshold"])
        if not math.isfinite(threshold):
            logger.warning("Ignoring operating point %r: threshold %s", entry.get("name"), threshold)
            continue
        target = entry.get("target_fpr")
        points.append(
            OperatingPoint(str(entry["name"]), None if target is None else float(target), threshold)
        )
    return tuple(points)


class Predictor:
    """Scores encoded images and turns the scores into verdicts.

    ``score`` maps a list of encoded images to raw P(AI-generated), one per image (raising on an
    undecodable one): a plain function, whose inputs are the bytes themselves, or an
    :class:`~aiclassify.predict.stages.ImageScorer` that prepares them first; :meth:`load` builds
    one from a run directory or SavedModel. ``metadata`` is
    training's metadata (``threshold``, ``image_size``, ``demo``...), ``calibration`` evaluation's
    (``temperature``, ``operating_points``, ``band``).
    """

    def __init__(
        self,
        score: ScoreFunction | ImageScorer,
        metadata: dict[str, Any] | None = None,
        calibration: dict[str, Any] | None = None,
        *,
        calibration_source: str | None = None,
        source: str | None = None,
        run_dir: Path | None = None,
        batch_size: int = 64,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
        self._scorer = as_scorer(score)
        self.metadata = dict(metadata or {})
        self.calibration = dict(calibration or {})
        self.calibration_source = calibration_source if self.calibration else None
        self.source = source
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.batch_size = batch_size
        size = self.metadata.get("image_size")
        self.image_size = None if size is None else int(size)
        self.temperature = check_temperature(self.calibration.get("temperature", 1.0))
        self.raw_threshold = float(self.metadata.get("threshold", 0.5))
        self.default_threshold = float(calibrate(self.raw_threshold, self.temperature))
        self.operating_points = read_operating_points(self.calibration)
        self.band, self.band_note = read_band(self.calibration)
        self._keras_model: Any = None
        self._keras_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 64) -> Predictor:
        """A predictor for a run directory (``metadata.json`` + ``saved_model/`` or ``model.keras``)
        or a bare SavedModel (with the metadata of the run directory around it, if any)."""
        path = Path(path)
        if (path / runs.METADATA_FILE).is_file():
            run_dir = path
            metadata = runs.read_metadata(run_dir)
            saved_model = run_dir / runs.SAVED_MODEL_DIR
            if saved_model.is_dir():
                score = saved_model_scorer(saved_model, mirrors_views(metadata))
            elif (run_dir / runs.MODEL_FILE).is_file():
                logger.info("No %s in %s: scoring with %s.", runs.SAVED_MODEL_DIR, run_dir, runs.MODEL_FILE)
                score = keras_scorer(
                    load_run_keras_model(run_dir), int(metadata["image_size"]), mirrors_views(metadata)
                )
            else:
                raise runs.RunDirectoryError(
                    f"{run_dir} has neither {runs.SAVED_MODEL_DIR}/ nor {runs.MODEL_FILE} to score with."
                )
        elif (path / "saved_model.pb").is_file():
            parent = path.parent
            run_dir = parent if (parent / runs.METADATA_FILE).is_file() else None
            metadata = runs.read_json(parent / runs.METADATA_FILE) if run_dir else {}
            score = saved_model_scorer(path, mirrors_views(metadata))
        else:
            raise runs.RunDirectoryError(
                f"{path} is not a finished run ({runs.METADATA_FILE} is missing) nor a SavedModel "
                "(no saved_model.pb)."
            )
        calibration, calibration_source = read_calibration(run_dir, metadata) if run_dir else ({}, None)
        return cls(
            score,
            metadata,
            calibration,
            calibration_source=calibration_source,
            source=str(path),
            run_dir=run_dir,
            batch_size=batch_size,
        )

    def with_model(self, model: Any) -> Predictor:
        """The same run's calibration and thresholds around another Keras model (0-255 pixels in),
        e.g. the run's model with its input filter replaced."""
        if self.image_size is None:
            raise ValueError("A Keras model can only be scored for a run with a known image_size.")
        return Predictor(
            keras_scorer(model, self.image_size, mirrors_views(self.metadata)),
            self.metadata,
            self.calibration,
            calibration_source=self.calibration_source,
            source=self.source,
            run_dir=self.run_dir,
            batch_size=self.batch_size,
        )

    @property
    def is_demo(self) -> bool:
        """Whether the model was trained on the embedded demo data (it detects nothing real).

        Training writes ``demo`` into ``metadata.json``; runs trained before that are recognised by
        their dataset source.
        """
        return bool(self.metadata.get("demo")) or (self.metadata.get("dataset") or {}).get("source") == "demo"

    def image_warnings(self, image: bytes | Image.Image) -> tuple[ImageWarning, ...]:
        """What makes a verdict on this encoded image unreliable (never raises; no TensorFlow);
        ``image`` may also be the image as Pillow decoded it, which is then not decoded again."""
        warnings = image_warnings(image, self.image_size)
        return (*warnings, DEMO_MODEL) if self.is_demo else tuple(warnings)

    @staticmethod
    def evidence(image: bytes) -> Evidence:
        """What this encoded image's metadata declares (Content Credentials, XMP, EXIF, generator
        settings), read offline and bounded; never raises, never uses the model, and never changes a
        score: it is reported beside the verdict."""
        return read_evidence(image)

    def prepare(self, images: Sequence[bytes]) -> list[Any]:
        """Model-ready inputs of encoded images, one per image, computed in the caller's thread.

        For a SavedModel with ``serve_pixels`` or a Keras model, each image is decoded with
        TensorFlow and resized or cut into crops (:mod:`aiclassify.predict.crops`); raises
        TensorFlow's InvalidArgumentError on an undecodable image. For a plain score function, the
        bytes themselves.
        """
        return self._scorer.prepare(list(images))

    def score_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        """Raw P(AI-generated) for inputs from :meth:`prepare`, scored together (one model call per
        :data:`~aiclassify.predict.crops.CROPS_PER_CALL` squares)."""
        return np.asarray(self._scorer.score(list(prepared)), dtype=np.float64).reshape(-1)

    def probabilities(self, images: Sequence[bytes]) -> np.ndarray:
        """Raw P(AI-generated) for each encoded image, prepared and scored ``batch_size`` at a time."""
        images = list(images)
        batches = [
            self.score_prepared(self.prepare(images[start : start + self.batch_size]))
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(batches) if batches else np.zeros(0)

    def calibrate(self, probabilities: np.ndarray | float) -> np.ndarray | float:
        """Calibrated probabilities of raw model outputs (unchanged when the run has no temperature)."""
        return calibrate(probabilities, self.temperature)

    def threshold_for(
        self, target_fpr: float | None = None, operating_point: str | None = None
    ) -> tuple[float, str | None]:
        """The threshold to apply and its operating point's name (None: the default threshold).

        Raises :class:`UnknownOperatingPointError` when the model has no such point.
        """
        if target_fpr is None and operating_point is None:
            return self.default_threshold, None
        if not self.operating_points:
            raise UnknownOperatingPointError()
        for point in self.operating_points:
            if operating_point is not None and point.name == operating_point:
                return point.threshold, point.name
            if (
                target_fpr is not None
                and point.target_fpr is not None
                and math.isclose(point.target_fpr, target_fpr, rel_tol=1e-6, abs_tol=1e-12)
            ):
                return point.threshold, point.name
        available = ", ".join(f"{p.name} (target_fpr={p.target_fpr})" for p in self.operating_points)
        if operating_point:
            raise UnknownOperatingPointError("operating_point", operating_point, available)
        raise UnknownOperatingPointError("target_fpr", str(target_fpr), available)

    @staticmethod
    def label(probability: float, threshold: float) -> str:
        """The label of a calibrated probability at ``threshold``."""
        return LABEL_NAMES[int(probability >= threshold)]

    def verdict(
        self,
        raw_probability: float,
        threshold: float,
        operating_point: str | None,
        warnings: Sequence[ImageWarning] = (),
        evidence: Evidence | None = None,
    ) -> Verdict:
        """The verdict on one raw model output at ``threshold`` (from :meth:`threshold_for`).

        ``label`` applies ``threshold``; ``verdict`` applies the band (the label when there is none).
        ``warnings``: from :meth:`image_warnings` of the same image; ``evidence``: from
        :meth:`evidence` of the same image, carried beside the verdict, never used in it.
        """
        probability = float(self.calibrate(float(raw_probability)))
        label = self.label(probability, threshold)
        return Verdict(
            label,
            probability,
            float(raw_probability),
            threshold,
            operating_point,
            label if self.band is None else self.band.verdict(probability),
            self.band,
            tuple(warnings),
            evidence,
        )

    def predict(
        self, images: Sequence[bytes], target_fpr: float | None = None, operating_point: str | None = None
    ) -> list[Verdict]:
        """Verdicts (with their warnings and metadata evidence) on encoded images at the default
        threshold or the named operating point."""
        images = list(images)
        threshold, point = self.threshold_for(target_fpr, operating_point)
        return [
            self.verdict(p, threshold, point, self.image_warnings(image), self.evidence(image))
            for p, image in zip(self.probabilities(images), images, strict=True)
        ]

    def predict_files(
        self,
        paths: Sequence[Path],
        target_fpr: float | None = None,
        operating_point: str | None = None,
        faces: FacePath | None = None,
        expect_faces: bool = False,
    ) -> list[FilePrediction]:
        """Verdicts on image files; a file that cannot be read or decoded gets an error instead.

        With ``faces`` (:class:`~aiclassify.predict.faces.FacePath`), each file's faces are scored
        by its face model too, at the same ``target_fpr``/``operating_point``, and listed in
        ``FilePrediction.faces``; ``expect_faces`` warns ``no_face`` on a file without one.
        """
        from aiclassify.data.validate import image_problem

        threshold, point = self.threshold_for(target_fpr, operating_point)
        problems = {
            str(path): (image_problem(str(path)) if Path(path).is_file() else "no such file")
            for path in paths
        }
        readable = [Path(path) for path in paths if not problems[str(path)]]
        contents = {str(path): path.read_bytes() for path in readable}
        scores = dict(zip(contents, self.probabilities(list(contents.values())), strict=True))
        face_results = (
            dict(
                zip(
                    contents,
                    faces.score(list(contents.values()), target_fpr, operating_point, expect_faces),
                    strict=True,
                )
            )
            if faces is not None
            else {}
        )
        results = []
        for path in map(str, paths):
            if problems[path]:
                results.append(FilePrediction(path, None, None, problems[path]))
                continue
            search, face_verdicts = face_results.get(path, (None, None))
            verdict = self.verdict(
                scores[path],
                threshold,
                point,
                (*self.image_warnings(contents[path]), *(search.warnings if search else ())),
                self.evidence(contents[path]),
            )
            results.append(
                FilePrediction(
                    path,
                    verdict.label,
                    verdict.probability_ai,
                    None,
                    threshold,
                    point,
                    verdict.verdict,
                    None if verdict.band is None else verdict.band.to_dict(),
                    [warning.to_dict() for warning in verdict.warnings],
                    None if verdict.evidence is None else verdict.evidence.to_dict(),
                    None if face_verdicts is None else [face.to_dict() for face in face_verdicts],
                )
            )
        return results

    def describe_thresholds(self) -> dict[str, Any]:
        """The temperature, default threshold, operating points and band in use, and the file they
        came from; ``band_note`` says why there is no band (``no band: the run has not been evaluated``)."""
        band = None
        if self.band is not None:
            stored = self.calibration.get("band") or {}
            validation, confidence, notes = (
                stored.get("validation"),
                stored.get("confidence"),
                stored.get("notes"),
            )
            band = {
                "lower": self.band.lower,
                "upper": self.band.upper,
                "target_fpr": self.band.target_fpr,
                "confidence": float(confidence) if isinstance(confidence, (int, float)) else None,
                "notes": [note for note in notes if isinstance(note, str)] if isinstance(notes, list) else [],
                "empty": self.band.empty,
                "validation": validation if isinstance(validation, dict) else None,
            }
        return {
            "temperature": self.temperature,
            "threshold": self.default_threshold,
            "operating_points": [
                {"name": p.name, "target_fpr": p.target_fpr, "threshold": p.threshold}
                for p in self.operating_points
            ],
            "band": band,
            "band_note": self.band_note,
            "calibration_source": self.calibration_source,
        }

    def keras_model(self) -> Any:
        """The run's ``model.keras`` (loaded on first use), for explanations that need gradients."""
        with self._keras_lock:
            if self._keras_model is None:
                model_file = None if self.run_dir is None else self.run_dir / runs.MODEL_FILE
                if model_file is None or self.image_size is None or not model_file.is_file():
                    raise ExplanationUnavailableError(
                        f"explanations need the model served from a run directory with {runs.MODEL_FILE}"
                    )
                self._keras_model = load_run_keras_model(self.run_dir)
            return self._keras_model


def saved_model_scorer(path: Path, mirror: bool = False) -> ScoreFunction | ImageScorer:
    """Score encoded images with a SavedModel: ``serve_pixels`` on each image decoded and resized
    as ``serving_default`` does it, or for an image at least twice the input size on its shorter
    side, on a grid of native-resolution crops combined by their mean logit, with ``mirror`` each
    square's mirror image too (:mod:`aiclassify.predict.crops`); a SavedModel without
    ``serve_pixels``: ``serving_default`` on the bytes."""
    from aiclassify.predict.crops import saved_model_crop_scorer

    return saved_model_crop_scorer(path, mirror)


def keras_scorer(model: Any, image_size: int, mirror: bool = False) -> ImageScorer:
    """Score encoded images with a Keras model behind the export's own decoder, with the same
    rule for large images (and mirrors) as :func:`saved_model_scorer`."""
    import tensorflow as tf

    from aiclassify.predict import crops

    def score_pixels(pixels: np.ndarray) -> np.ndarray:
        return np.asarray(model(tf.constant(pixels, dtype=tf.float32), training=False)).reshape(-1)

    return crops.CropScorer(score_pixels, image_size, mirror)


def load_run_keras_model(run_dir: Path) -> Any:
    """A run's ``model.keras`` (the project's custom layers registered)."""
    from aiclassify.models import load_keras_model

    return load_keras_model(Path(run_dir) / runs.MODEL_FILE)
