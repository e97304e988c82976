"""Faces in a picture: found with MTCNN and cut out like the face model's training images.

:class:`FaceDetector` (:mod:`aiclassify.faces.detector`) returns each image's :class:`Face` objects
(box, confidence and five landmarks in the original pixels); :func:`crop_face`
(:mod:`aiclassify.faces.crops`) cuts one out of the original image as a square RGB array in the
geometry of the 140k Real and Fake Faces images; :class:`FaceFinder`
(:mod:`aiclassify.faces.finder`) does both for an encoded photo, upright by its EXIF orientation,
and hands on each crop as a PNG for the face model. :mod:`aiclassify.faces.measure` holds the
measurements of docs/faces.md. Importing this package imports neither TensorFlow nor mtcnn.
"""

from aiclassify.faces.crops import DEFAULT_METHOD, DEFAULT_SIZE, METHODS, aligned_crop, box_crop, crop_face
from aiclassify.faces.detector import Face, FaceDetectionError, FaceDetector, Landmarks
from aiclassify.faces.finder import FaceCrop, FaceFinder, upright_pixels

__all__ = [
    "DEFAULT_METHOD",
    "DEFAULT_SIZE",
    "METHODS",
    "Face",
    "FaceCrop",
    "FaceFinder",
    "FaceDetectionError",
    "FaceDetector",
    "Landmarks",
    "aligned_crop",
    "box_crop",
    "crop_face",
    "upright_pixels",
]
