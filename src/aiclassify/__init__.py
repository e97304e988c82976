"""aiclassify: tell AI-generated images from real ones."""

__version__ = "0.1.0"

LABEL_NAMES = ("real", "ai-generated")
"""Class index to label: the models output P(label 1), the probability that an image is AI-generated."""

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
"""Encodings the model's TensorFlow decoder reads (GIF and WebP animations: the first frame)."""

DECODABLE_FORMATS = frozenset(SUPPORTED_FORMATS) | {"MPO"}
"""Pillow format names whose bytes TensorFlow decodes as they are (MPO: camera JPEG with extra frames)."""
