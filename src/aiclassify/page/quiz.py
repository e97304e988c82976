"""The human-vs-model quiz: draw labelled images, keep a person's answers, score both with intervals.

The logic of the quiz page (app/pages/quiz.py), without Streamlit or TensorFlow. A quiz is a seeded
draw of images from a labelled folder (any layout :mod:`aiclassify.data.layouts` reads: ``real``
and ``fake`` class folders, optionally under split folders, of which the test split is used), so a
teacher can give a class the same quiz by sharing the folder and the seed. The person's answers
stay in memory and in the CSV they download; only the images go to the API, for the model's score.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import binomtest

from aiclassify.data.layouts import LayoutError, class_dirs, find_dataset_root, list_images, split_dirs
from aiclassify.page.results import VERDICTS, ResultRow

REAL, AI_GENERATED = "real", "ai-generated"
LABELS = (REAL, AI_GENERATED)
DEFAULT_QUESTIONS = 15  # as many as the published human study asked
MAX_QUESTIONS = 100
MAX_IMAGE_BYTES = 20 * 1024 * 1024
CONFIDENCE = 0.95
CSV_COLUMNS = ("question", "file", "truth", "answer", "correct", "model_label", "model_probability_ai")


@dataclass(frozen=True)
class HumanBaseline:
    """A published human result on the same kind of images."""

    people: int
    images: int
    mean_correct: float

    @property
    def accuracy(self) -> float:
        """Mean share of images people labelled correctly."""
        return self.mean_correct / self.images

    def describe(self) -> str:
        """One sentence for the page."""
        return (
            f"Published human baseline: {self.people} people labelled {self.mean_correct:g} of "
            f"{self.images} 32x32 CIFAKE images correctly on average ({self.accuracy:.1%})."
        )


PUBLISHED_HUMAN_BASELINE = HumanBaseline(people=63, images=15, mean_correct=8.46)


@dataclass(frozen=True)
class Question:
    """One image of a quiz and its true label (``real`` or ``ai-generated``)."""

    path: str
    truth: str

    @property
    def file(self) -> str:
        """The image's file name."""
        return Path(self.path).name

    def read(self) -> bytes:
        """The image file's bytes (at most :data:`MAX_IMAGE_BYTES`)."""
        size = Path(self.path).stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ValueError(
                f"Quiz image larger than {MAX_IMAGE_BYTES} bytes. Received: {self.path} ({size})"
            )
        return Path(self.path).read_bytes()


@dataclass(frozen=True)
class Score:
    """``correct`` of ``total`` with a Wilson interval at :data:`CONFIDENCE`."""

    correct: int
    total: int
    low: float
    high: float

    @property
    def accuracy(self) -> float:
        """Share correct (0 when nothing was scored)."""
        return self.correct / self.total if self.total else 0.0

    def describe(self) -> str:
        """``9 of 15 (60.0%, 95% interval 35.7-80.2%)``."""
        return (
            f"{self.correct} of {self.total} ({self.accuracy:.1%}, {CONFIDENCE:.0%} interval "
            f"{self.low:.1%}-{self.high:.1%})"
        )


def score(correct: int, total: int) -> Score:
    """The accuracy ``correct / total`` with its Wilson score interval."""
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(
            f"Need 0 <= correct <= total and total >= 1. Received: correct={correct}, total={total}"
        )
    interval = binomtest(correct, total).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return Score(correct, total, float(interval.low), float(interval.high))


def quiz_folders(folder: Path) -> dict[str, Path]:
    """The ``real`` and ``fake`` folders a quiz draws from: the dataset's test split if it has
    split folders, else its class folders."""
    root = find_dataset_root(folder)
    splits = split_dirs(root)
    if splits:
        if "test" not in splits:
            raise LayoutError(
                f"The dataset at {root} has no test split to draw a quiz from: {sorted(splits)}"
            )
        root = splits["test"]
    classes = class_dirs(root)
    if classes is None:
        raise LayoutError(f"No 'real' and 'fake' folders in {root}")
    return classes


def draw_questions(folder: Path, count: int = DEFAULT_QUESTIONS, seed: int = 0) -> list[Question]:
    """``count`` images from ``folder``, half of each class (a coin decides the odd one), in a
    random order; the same folder, count and seed always give the same quiz."""
    if not 1 <= count <= MAX_QUESTIONS:
        raise ValueError(f"A quiz has 1 to {MAX_QUESTIONS} questions. Received: count={count}")
    classes = quiz_folders(Path(folder))
    rng = np.random.default_rng(seed)
    fakes = count // 2 + int(count % 2 and rng.integers(2))
    questions: list[Question] = []
    for truth, name, wanted in ((REAL, "real", count - fakes), (AI_GENERATED, "fake", fakes)):
        images = list_images(classes[name])
        if len(images) < wanted:
            raise ValueError(
                f"Not enough {truth} images for the quiz in {classes[name]}: {len(images)}. "
                f"Received: count={count}"
            )
        questions += [
            Question(images[index], truth) for index in rng.choice(len(images), wanted, replace=False)
        ]
    return [questions[index] for index in rng.permutation(len(questions))]


@dataclass(frozen=True)
class Answer:
    """A person's answer to one question, and the model's decision on the same image."""

    question: Question
    answer: str
    model_label: str | None = None  # ``real``/``ai-generated`` at the model's threshold; None: not scored
    model_probability_ai: float | None = None

    @property
    def correct(self) -> bool:
        """Whether the person was right."""
        return self.answer == self.question.truth

    @property
    def model_correct(self) -> bool | None:
        """Whether the model was right (None when it did not score the image)."""
        return None if self.model_label is None else self.model_label == self.question.truth


def with_model_decisions(answers: Sequence[Answer], rows: Sequence[ResultRow]) -> list[Answer]:
    """``answers`` with the model's decision from its result rows (same order; a row with an error
    leaves that image unscored)."""
    labels = {text: label for label, text in VERDICTS.items()}
    return [
        Answer(answer.question, answer.answer, labels.get(row.label or ""), row.probability_ai)
        if row.ok
        else answer
        for answer, row in zip(answers, rows, strict=True)
    ]


def person_score(answers: Sequence[Answer]) -> Score:
    """The person's score over their answers."""
    return score(sum(answer.correct for answer in answers), len(answers))


def model_score(answers: Sequence[Answer]) -> Score | None:
    """The model's score over the images it scored (None when it scored none)."""
    scored = [answer.model_correct for answer in answers if answer.model_correct is not None]
    return score(sum(scored), len(scored)) if scored else None


def answers_csv(answers: Sequence[Answer]) -> str:
    """The answers as CSV (:data:`CSV_COLUMNS`), for the person to keep."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for number, answer in enumerate(answers, start=1):
        probability = answer.model_probability_ai
        writer.writerow(
            (
                number,
                answer.question.file,
                answer.question.truth,
                answer.answer,
                int(answer.correct),
                answer.model_label or "",
                "" if probability is None else f"{probability:.6f}",
            )
        )
    return buffer.getvalue()
