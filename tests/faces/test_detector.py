"""The face detector (aiclassify.faces.detector): its settings and input checks, how it maps and
filters what MTCNN finds, its one error type, and the images in which it must find nothing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import REPO, assert_runs_without_tensorflow
from PIL import Image

from aiclassify.faces import Face, FaceDetectionError, FaceDetector, Landmarks


class FakeMTCNN:
    """Stands for ``mtcnn.MTCNN``: returns fixed rows of its numpy output, records each call."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
        self.calls = []

    def detect_faces(self, image, **options):
        self.calls.append((image.shape, options))
        return self.rows.copy()


def row(x1, y1, x2, y2, confidence):
    """One MTCNN row (search-copy pixels) with landmarks placed inside its box."""
    xs = [x1 + (x2 - x1) * f for f in (0.3, 0.7, 0.5, 0.35, 0.65)]
    ys = [y1 + (y2 - y1) * f for f in (0.4, 0.4, 0.6, 0.8, 0.8)]
    return [0, x1, y1, x2, y2, confidence, *xs, *ys]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """MTCNN at the default settings, loaded once for the module."""
    return FaceDetector()


def fake_detector(monkeypatch, rows, **settings) -> tuple[FaceDetector, FakeMTCNN]:
    fake = FakeMTCNN(rows)
    monkeypatch.setattr("mtcnn.MTCNN", lambda **_: fake)
    return FaceDetector(**settings), fake


def test_importing_the_package_loads_neither_tensorflow_nor_mtcnn():
    code = "import sys, aiclassify.faces, aiclassify.faces.measure\nassert 'mtcnn' not in sys.modules"
    assert_runs_without_tensorflow(code, REPO)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_faces": 0}, "max_faces=0"),
        ({"min_face_size": 0}, "min_face_size=0"),
        ({"min_confidence": 1.5}, "min_confidence=1.5"),
        ({"max_search_side": 50}, "max_search_side=50"),
    ],
)
def test_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        FaceDetector(**settings)


def test_boxes_found_on_the_search_copy_are_mapped_to_original_pixels_filtered_and_ordered(monkeypatch):
    rows = [
        row(600, 50, 700, 150, 0.99),  # right, most confident
        row(10, 10, 25, 25, 0.99),  # 30 px in the original: under min_face_size
        row(100, 100, 150, 160, 0.95),  # left
        row(300, 300, 400, 400, 0.85),  # under min_confidence
        row(50, 300, 100, 350, 0.91),  # kept by the filters, but the least confident of three
    ]
    detector, fake = fake_detector(
        monkeypatch, rows, max_faces=2, min_face_size=40, min_confidence=0.9, max_search_side=1000
    )
    faces = detector.detect(np.zeros((1000, 2000, 3), dtype=np.uint8))
    assert fake.calls[0][0] == (500, 1000, 3)  # the longer side shrunk to max_search_side
    assert fake.calls[0][1]["min_face_size"] == 20
    assert [face.box for face in faces] == [(200, 200, 100, 120), (1200, 100, 200, 200)]  # left to right
    assert [face.detector_confidence for face in faces] == [0.95, 0.99]
    # Pixel i of the search copy covers pixels 2i and 2i + 1 of the original: its centre is 2i + 0.5.
    assert faces[0].landmarks.left_eye == pytest.approx((2 * 115 + 0.5, 2 * 124 + 0.5))
    assert faces[0].landmarks.mouth_right == pytest.approx((2 * 132.5 + 0.5, 2 * 148 + 0.5))


def test_small_images_are_searched_as_they_are_and_boxes_clipped(monkeypatch):
    detector, fake = fake_detector(monkeypatch, [row(-5, 10, 90, 120, 0.99)])
    (face,) = detector.detect(Image.new("L", (100, 80)))  # any PIL mode is converted to RGB
    assert fake.calls[0][0] == (80, 100, 3)
    assert face.box == (0, 10, 90, 70)
    assert isinstance(face, Face) and isinstance(face.landmarks, Landmarks)
    assert all(isinstance(v, int) for v in face.box)


def test_no_faces_and_images_smaller_than_a_face(monkeypatch):
    detector, fake = fake_detector(monkeypatch, [])
    assert detector.detect(np.zeros((300, 300, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((20, 31, 3), dtype=np.uint8)) == []  # under min_face_size (32)
    assert len(fake.calls) == 1


@pytest.mark.parametrize(
    "image",
    [np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8), np.zeros((40, 40, 3)), b"\xff\xd8", None],
    ids=["grey-array", "rgba-array", "float-array", "bytes", "none"],
)
def test_what_is_not_an_rgb_image_is_a_value_error(detector, image):
    with pytest.raises(ValueError, match="Received"):
        detector.detect(image)


def test_an_image_without_pixels_is_a_value_error(detector):
    with pytest.raises(ValueError, match=r"no pixels. Received: shape=\(0, 64, 3\)"):
        detector.detect(np.zeros((0, 64, 3), dtype=np.uint8))


def test_a_failure_inside_mtcnn_is_a_face_detection_error():
    import tensorflow as tf

    detector = FaceDetector()  # its own: the failure is planted in one of its networks

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    detector._mtcnn.stages[0]._model = out_of_memory
    with pytest.raises(FaceDetectionError, match="on a 300x200 image: ResourceExhaustedError") as caught:
        detector.detect(np.zeros((200, 300, 3), dtype=np.uint8))
    assert isinstance(caught.value.__cause__, tf.errors.ResourceExhaustedError)


def test_demo_and_noise_images_have_no_faces(detector, demo_data, encoded_images):
    demo = [Image.open(path) for path in sorted(demo_data.rglob("*.jpg"))]
    noise = [Image.open(io.BytesIO(data)) for data in encoded_images]
    assert len(demo) == 48 and len(noise) == 5
    assert [image for image in demo + noise if detector.detect(image)] == []
