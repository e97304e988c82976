"""Face crops (aiclassify.faces.crops): the FFHQ recipe's square, eyes levelled, mirror-filled
edges, the box crop, and (slow, ../shared data) which of the two reproduces the 140k images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from aiclassify.faces import Face, FaceDetector, Landmarks, aligned_crop, box_crop, crop_face
from aiclassify.faces.crops import box_quad, ffhq_quad, quad_crop
from aiclassify.faces.measure import crop_agreement, detection_counts

EYES_AND_MOUTH = {
    "left_eye": (100, 100),
    "right_eye": (160, 100),
    "mouth_left": (105, 160),
    "mouth_right": (155, 160),
}


def face_with(points: dict[str, tuple[float, float]], box=(80, 60, 100, 130)) -> Face:
    """A face with these landmarks (the nose between the eyes and the mouth)."""
    nose = tuple(np.mean([points["left_eye"], points["right_eye"], points["mouth_left"]], axis=0))
    return Face(box=box, detector_confidence=0.99, landmarks=Landmarks(nose=nose, **points))


def turned(points: dict, degrees: float, about=(130, 130), scale: float = 1.0) -> dict:
    """``points`` turned by ``degrees`` (clockwise on screen) about ``about`` and scaled."""
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return {k: tuple(scale * (rotation @ (np.array(v) - about) + about)) for k, v in points.items()}


def test_ffhq_square_of_a_level_face():
    quad = ffhq_quad(face_with(EYES_AND_MOUTH))
    # centre (130, 106): eye middle + 0.1 x eye-to-mouth; half-side max(2 x 60, 1.8 x 60) = 120;
    # + 0.5: landmarks are at pixel centres, the square's corners in continuous coordinates.
    np.testing.assert_allclose(quad - 0.5, [[10, -14], [10, 226], [250, 226], [250, -14]], atol=1e-9)


@pytest.mark.parametrize("degrees", [-40, 25, 90])
def test_ffhq_square_turns_with_the_face(degrees):
    turned_quad = ffhq_quad(face_with(turned(EYES_AND_MOUTH, degrees)))
    expected = [turned({"p": tuple(p - 0.5)}, degrees)["p"] for p in ffhq_quad(face_with(EYES_AND_MOUTH))]
    np.testing.assert_allclose(turned_quad - 0.5, expected, atol=1e-9)


@pytest.mark.parametrize(("degrees", "scale"), [(25, 1.0), (-30, 12.0)], ids=["small", "large-shrunk-first"])
def test_aligned_crop_levels_the_eyes_where_ffhq_puts_them(degrees, scale):
    points = turned(EYES_AND_MOUTH, degrees, scale=scale)
    image = Image.new("RGB", (round(300 * scale), round(300 * scale)), "white")
    draw = ImageDraw.Draw(image)
    for x, y in (points["left_eye"], points["right_eye"]):
        draw.ellipse((x - 6 * scale, y - 6 * scale, x + 6 * scale, y + 6 * scale), fill="red")
    crop = aligned_crop(image, face_with(points))
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    red = (crop[..., 0] > 200) & (crop[..., 1] < 80) & (crop[..., 2] < 80)
    ys, xs = np.nonzero(red)
    left, right = xs < 128, xs >= 128
    # Eye centres at (90, 114) and (150, 114) of the 240 px square: x 256/240 in the crop, where
    # pixel i spans [i, i + 1] (so its index is half a pixel less); PIL rounds the dots drawn.
    assert (xs[left].mean(), ys[left].mean()) == pytest.approx((95.5, 121.1), abs=1.5)
    assert (xs[right].mean(), ys[right].mean()) == pytest.approx((159.5, 121.1), abs=1.5)


def test_the_square_is_filled_with_the_photo_beyond_its_edges():
    image = np.full((120, 120, 3), (200, 100, 50), dtype=np.uint8)
    corner_face = face_with(turned(EYES_AND_MOUTH, 0, scale=0.3), box=(20, 20, 30, 40))
    for crop in (
        aligned_crop(image, corner_face, size=64),
        box_crop(image, corner_face, size=64, box_scale=5),
    ):
        assert crop.shape == (64, 64, 3)
        assert np.abs(crop.astype(int) - (200, 100, 50)).max() <= 1  # no black where the photo ends


def test_box_crop_is_the_square_around_the_box():
    face = face_with(EYES_AND_MOUTH, box=(50, 60, 40, 80))
    assert box_quad(face, 1.5).tolist() == [[10, 40], [10, 160], [130, 160], [130, 40]]
    image = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert np.array_equal(crop_face(image, face, size=96, method="box"), box_crop(image, face, size=96))
    assert np.array_equal(crop_face(image, face, size=96), aligned_crop(image, face, size=96))


def test_bad_crop_arguments_are_value_errors():
    image, face = np.zeros((50, 50, 3), np.uint8), face_with(EYES_AND_MOUTH)
    with pytest.raises(ValueError, match="method='dlib'"):
        crop_face(image, face, method="dlib")
    with pytest.raises(ValueError, match="size=0"):
        crop_face(image, face, size=0)
    with pytest.raises(ValueError, match="box_scale=0"):
        box_crop(image, face, box_scale=0)
    with pytest.raises(ValueError, match="four finite corners"):
        aligned_crop(image, face_with(dict.fromkeys(EYES_AND_MOUTH, (20, 20))))  # all five points in one
    with pytest.raises(ValueError, match="outside the 50x50 image"):
        quad_crop(image, np.array([[500, 500], [500, 600], [600, 600], [600, 500]]))


@pytest.mark.slow
def test_aligned_crop_reproduces_the_training_images_better_than_the_box_crop(shared_data):
    real = sorted((shared_data / "faces/real_vs_fake/real-vs-fake/test/real").glob("*.jpg"))[:20]
    counts = detection_counts(FaceDetector(), real)
    rows = crop_agreement(counts["single"], box_scales=(1.4,))
    aligned, box = rows["aligned"], rows["box x1.4"]
    assert aligned["images"] >= 19
    # Measured on all 371 real images (docs/faces.md): IoU 0.94 against 0.83, difference 15 against 34.
    assert aligned["mean_iou"] >= 0.9 and aligned["mean_iou"] > box["mean_iou"] + 0.05
    assert aligned["mean_abs_diff"] < box["mean_abs_diff"] - 5
