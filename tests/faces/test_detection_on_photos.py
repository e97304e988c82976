"""The face detector on real data (slow: reads ../shared, skipped when absent): one face in each
140k face photo, three in a composite of three, one small face in a 4000x3000 photo, none in CIFAKE."""

from __future__ import annotations

import pytest
from builders import GROUP_PHOTOS, GROUP_PLACES, GROUP_SIZE

from aiclassify.faces import FaceDetector
from aiclassify.faces.measure import box_iou, detection_counts, load_rgb, paste_photos

pytestmark = pytest.mark.slow

MATCH_IOU = 0.5
"""A box found counts as the face pasted there at IoU >= 0.5 with where the face is expected: the
PASCAL VOC and WIDER FACE rule for a correct detection (measured here: 0.92 to 0.97)."""


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """MTCNN at the default settings, loaded once for the module."""
    return FaceDetector()


@pytest.fixture(scope="module")
def faces_sample(shared_data):
    """The 140k sample's ``real-vs-fake`` folder: ``{train,valid,test}/{real,fake}``."""
    return shared_data / "faces" / "real_vs_fake" / "real-vs-fake"


def expected_box(face_box, place, photo_side):
    """Where ``face_box`` (found in a photo of side ``photo_side``) lands once the photo is pasted at
    ``place`` = ``(x, y, side)``."""
    x, y, side = place
    scale = side / photo_side
    return (x + face_box[0] * scale, y + face_box[1] * scale, face_box[2] * scale, face_box[3] * scale)


def test_one_face_in_at_least_95_percent_of_the_real_photos(detector, faces_sample):
    # Every third of the 371 real photos, all splits (measured: 121 of 124; on all 371 real and
    # 346 fake photos, docs/faces.md: 98.7% and 99.4%).
    counts = detection_counts(detector, sorted(faces_sample.glob("*/real/*.jpg"))[::3])
    assert counts["images"] == 124 and not counts["failed"]
    assert counts["rate"] >= 0.95, counts["histogram"]


def test_three_photos_in_a_composite_give_three_boxes_where_they_were_pasted(detector, faces_sample):
    # Photos of one person each (valid/real/00088.jpg, say, shows a second face cut by its edge,
    # which the detector finds once the photo is pasted on a background).
    photos = [load_rgb(faces_sample / name) for name in GROUP_PHOTOS]
    alone = [detector.detect(photo) for photo in photos]
    assert [len(faces) for faces in alone] == [1, 1, 1]
    faces = detector.detect(paste_photos(GROUP_SIZE, photos, GROUP_PLACES))
    assert len(faces) == 3
    for face, found_alone, place in zip(faces, alone, GROUP_PLACES, strict=True):  # left to right, as pasted
        assert box_iou(face.box, expected_box(found_alone[0].box, place, 256)) >= MATCH_IOU


def test_a_small_face_in_a_4000x3000_photo_is_found_where_it_is(detector, faces_sample):
    photo = load_rgb(sorted((faces_sample / "test" / "real").glob("*.jpg"))[0])
    (found_alone,) = detector.detect(photo)
    place = (2900, 700, 480)  # a face box of about 240 x 300 px
    faces = detector.detect(paste_photos((4000, 3000), [photo], [place]))
    assert len(faces) == 1
    assert box_iou(faces[0].box, expected_box(found_alone.box, place, 256)) >= MATCH_IOU


def test_no_faces_in_cifake(detector, shared_data):
    # Every 50th image of CIFAKE's test split, 201 of 10,011 (on all of them, docs/faces.md: none).
    paths = sorted((shared_data / "cifake" / "test").glob("*/*.jpg"))[::50]
    counts = detection_counts(detector, paths)
    assert counts["images"] == 201 and counts["histogram"] == {0: 201}
