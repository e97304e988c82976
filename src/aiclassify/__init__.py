"""aiclassify: tell AI-generated images from real ones."""

__version__ = "0.1.0"

LABEL_NAMES = ("real", "ai-generated")
"""Class index to label: the models output P(label 1), the probability that an image is AI-generated."""
