"""The embedded demo dataset: made here from numpy and Pillow, deterministic for a seed.

"Real" images are rendered at full resolution from a natural 1/f spectrum with shapes on top,
then given per-pixel sensor noise, as a camera would. "AI-generated" images are rendered the same
way at half resolution and brought to full size by a stride-2 transposed convolution with an
uneven kernel, the upsampling step of GAN and diffusion decoders, which leaves the periodic
checkerboard pattern that real detectors pick up; they carry little sensor noise. Both are saved
as JPEG at the same qualities, so the file format tells nothing.

A model trained on this data learns these two cues and detects nothing in the wild.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """Where generated data is kept: ``$AICLASSIFY_CACHE`` or ``~/.cache/aiclassify``."""
    return Path(os.environ.get("AICLASSIFY_CACHE", Path.home() / ".cache" / "aiclassify"))


def natural_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """A float RGB image in [0, 255] with a 1/f^alpha spectrum and a few soft shapes."""
    frequency_y = np.fft.fftfreq(size)[:, None]
    frequency_x = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(frequency_y, frequency_x)
    radius[0, 0] = 1.0
    alpha = rng.uniform(1.6, 2.4)
    channels = []
    shared_phase = rng.uniform(0, 2 * np.pi, radius.shape)
    for _ in range(3):
        phase = shared_phase + rng.normal(0, 0.6, radius.shape)
        spectrum = radius ** (-alpha / 2) * np.exp(1j * phase)
        spectrum[0, 0] = 0
        channel = np.fft.irfft2(spectrum, s=(size, size))
        channels.append((channel - channel.mean()) / (channel.std() + 1e-8))
    base = np.stack(channels, axis=-1) * rng.uniform(25, 50) + rng.uniform(60, 190, size=3)
    picture = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.integers(0, size, 2)
        width, height = rng.integers(size // 6, size // 2 + 1, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((int(x0), int(y0), int(x0 + width), int(y0 + height)), fill=colour)
    radius_blur = float(rng.uniform(0.4, 1.0))
    return np.asarray(picture.filter(ImageFilter.GaussianBlur(radius_blur)), dtype=np.float64)


def transposed_conv_upsample(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Upsample 2x by zero insertion and an uneven 3x3 kernel, as a stride-2 Conv2DTranspose."""
    height, width, channels = image.shape
    bilinear = np.outer([0.5, 1.0, 0.5], [0.5, 1.0, 0.5])
    kernel = bilinear * rng.uniform(0.9, 1.1, size=(3, 3))
    upsampled = np.zeros((2 * height + 2, 2 * width + 2, channels))
    upsampled[1:-1:2, 1:-1:2] = image
    output = np.zeros((2 * height, 2 * width, channels))
    for dy in range(3):
        for dx in range(3):
            output += kernel[dy, dx] * upsampled[dy : dy + 2 * height, dx : dx + 2 * width]
    return output


def render(label: int, size: int, rng: np.random.Generator) -> bytes:
    """One JPEG-encoded demo image: label 0 real, 1 AI-generated."""
    if label == 0:
        pixels = natural_image(rng, size) + rng.normal(0, rng.uniform(3, 6), (size, size, 3))
    else:
        low_resolution = natural_image(rng, size // 2)
        pixels = transposed_conv_upsample(low_resolution, rng)
        pixels += rng.normal(0, 0.5, pixels.shape)
    buffer = io.BytesIO()
    image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    image.save(buffer, format="JPEG", quality=int(rng.integers(88, 97)))
    return buffer.getvalue()


def write_demo_dataset(
    root: Path | None = None, images_per_class: int = 1200, image_size: int = 32, seed: int = 0
) -> Path:
    """Write (once) ``root/real`` and ``root/fake`` of demo JPEGs and return ``root``.

    An existing complete dataset with the same parameters is reused; the folder is written aside
    and renamed into place, so an interrupted run never leaves a half-written dataset.
    """
    if image_size < 8 or image_size % 2:
        raise ValueError(f"image_size must be an even number >= 8. Received: image_size={image_size}")
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be positive. Received: images_per_class={images_per_class}")
    parameters = {
        "format_version": FORMAT_VERSION,
        "images_per_class": images_per_class,
        "image_size": image_size,
        "seed": seed,
    }
    if root is None:
        root = default_cache_dir() / f"demo-{image_size}px-{images_per_class}-seed{seed}"
    root = Path(root)
    marker = root / "demo.json"
    if marker.is_file() and json.loads(marker.read_text()) == parameters:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for label, folder in enumerate(("real", "fake")):
            (staging / folder).mkdir()
            for index in range(images_per_class):
                rng = np.random.default_rng([seed, label, index])
                (staging / folder / f"{folder}_{index:05d}.jpg").write_bytes(render(label, image_size, rng))
        (staging / "demo.json").write_text(json.dumps(parameters, indent=2))
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def write_samples(directory: Path, image_size: int = 32, seed: int = 10_000) -> list[Path]:
    """Write one fresh real and one fresh AI-generated demo image (not in the dataset)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, name in enumerate(("real", "fake")):
        path = directory / f"sample_{name}.jpg"
        path.write_bytes(render(label, image_size, np.random.default_rng([seed, label])))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Write the dataset to --dest (default: the cache), or two samples to --samples DIR."""
    parser = argparse.ArgumentParser(
        prog="aiclassify demo-data", description="Write the embedded demo dataset, or fresh sample images."
    )
    parser.add_argument("--dest", type=Path, help="dataset folder (default: the user cache)")
    parser.add_argument("--samples", type=Path, help="write one real and one AI-generated sample here")
    parser.add_argument("--images-per-class", type=int, default=1200)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples:
        for path in write_samples(args.samples, args.image_size):
            print(path)
        return 0
    print(write_demo_dataset(args.dest, args.images_per_class, args.image_size, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
