"""The embedded demo dataset: deterministic, idempotent, and with a real difference to learn."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from aiclassify.data.demo import render, write_demo_dataset, write_samples


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)


def nyquist_energy(image: np.ndarray) -> float:
    """Share of spectral energy at the 2-pixel period, where 2x upsampling leaves its trace."""
    spectrum = np.abs(np.fft.fft2(image - image.mean())) ** 2
    half = image.shape[0] // 2
    return float((spectrum[half, :].sum() + spectrum[:, half].sum()) / spectrum.sum())


def test_same_seed_same_bytes_other_seed_other_bytes():
    rng = lambda seed: np.random.default_rng([seed, 1, 0])  # noqa: E731
    assert render(1, 32, rng(0)) == render(1, 32, rng(0))
    assert render(1, 32, rng(0)) != render(1, 32, rng(1))


def test_fake_images_carry_the_upsampling_artefact():
    real = [nyquist_energy(pixels(render(0, 64, np.random.default_rng([0, 0, i])))) for i in range(20)]
    fake = [nyquist_energy(pixels(render(1, 64, np.random.default_rng([0, 1, i])))) for i in range(20)]
    assert np.median(fake) > 2 * np.median(real)


def test_dataset_is_written_once_and_reused(tmp_path):
    root = write_demo_dataset(tmp_path / "demo", images_per_class=5, image_size=16)
    files = sorted(p.relative_to(root) for p in root.rglob("*.jpg"))
    assert len(files) == 10 and {f.parts[0] for f in files} == {"real", "fake"}
    stamp = (root / "real" / "real_00000.jpg").stat().st_mtime_ns
    write_demo_dataset(tmp_path / "demo", images_per_class=5, image_size=16)
    assert (root / "real" / "real_00000.jpg").stat().st_mtime_ns == stamp
    write_demo_dataset(tmp_path / "demo", images_per_class=6, image_size=16)
    assert len(list(root.rglob("*.jpg"))) == 12
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_samples_are_fresh_images(tmp_path):
    real, fake = write_samples(tmp_path, image_size=32)
    assert Image.open(real).size == (32, 32) and Image.open(fake).format == "JPEG"


@pytest.mark.parametrize(("size", "count"), [(7, 5), (16, 0)])
def test_bad_parameters_are_rejected(tmp_path, size, count):
    with pytest.raises(ValueError, match="Received"):
        write_demo_dataset(tmp_path, images_per_class=count, image_size=size)
