"""Grad-CAM explanations: where in an image the model's "AI-generated" evidence lies.

``python -m aiclassify.explain --run runs/demo img.jpg --out overlay.png`` prints the image's
P(AI-generated) and writes the heatmap blended over the image. The image goes through
:func:`aiclassify.preprocessing.decode_and_resize`, exactly as in training and serving; the
heatmap is computed at the last convolutional layer (or ``--layer``) from the gradient of the
AI logit, and upsampled back to the original image's height x width, or to a copy scaled down so
that neither side exceeds ``max_side`` (``--max-side``; the API's ``AICLASSIFY_MAX_EXPLANATION_SIDE``).

Memory stays bounded by the decoded image: the heatmap is upsampled and coloured only at the
overlay's size, in 8-bit colour, and a JPEG is decoded for the overlay at a reduced DCT scale.
Each decode is a step of its own (:func:`grad_cam_input`, :func:`overlay_base`), apart from the
gradients and the blend (:func:`grad_cam_of_input`, :func:`blend_overlay`), so that the server can
run the decodes within a request's decode budget (:mod:`aiclassify.serving.explanations`).
"""

from __future__ import annotations

import argparse
import io
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

OUTPUT_LAYER = "probability_ai"


def last_conv_layer(model: Any) -> str:
    """The name of the model's last ``Conv2D`` layer (ValueError when it has none)."""
    import keras

    names = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not names:
        raise ValueError(f"model {model.name!r} has no Conv2D layer to explain")
    return names[-1]


def _logit_model(model: Any, layer_name: str) -> Any:
    """``image -> (feature maps of layer_name, AI logit)`` (logit from the sigmoid layer's input)."""
    import keras

    features = model.get_layer(layer_name).output
    try:
        head = model.get_layer(OUTPUT_LAYER)
    except ValueError:
        head = None
    if head is not None and getattr(head, "activation", None) is keras.activations.sigmoid:
        return keras.Model(model.inputs, [features, head.input]), head
    return keras.Model(model.inputs, [features, model.output]), None


def capped_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled down, aspect kept, so neither side exceeds ``max_side`` (None: as is)."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale)))


def grad_cam_and_probability(
    model: Any,
    image_bytes: bytes,
    image_size: int,
    layer_name: str | None = None,
    max_side: int | None = None,
) -> tuple[np.ndarray, float, str]:
    """Grad-CAM heatmap (float32 in [0, 1]), P(AI) and the layer used.

    The heatmap has the image's height x width, scaled down (aspect kept, :func:`capped_size`) so
    that neither side exceeds ``max_side`` when given: nothing is computed at full resolution but
    the decoded 8-bit image the model's own preprocessing needs.
    """
    layer_name = layer_name or last_conv_layer(model)
    pixels, size = grad_cam_input(image_bytes, image_size)
    return grad_cam_of_input(model, pixels, size, layer_name, max_side)


def grad_cam_input(image_bytes: bytes, image_size: int) -> tuple[Any, tuple[int, int]]:
    """What Grad-CAM feeds the model for ``image_bytes``: the image decoded as the model's preprocessing
    decodes it (:func:`aiclassify.preprocessing.decode_rgb`) and resized to ``image_size`` square, a
    float32 batch of one, and the decoded image's ``(height, width)``. The decoded image itself is not
    kept."""
    import tensorflow as tf

    from aiclassify.preprocessing import decode_rgb, resize_square

    decoded = decode_rgb(tf.constant(image_bytes))  # decode_and_resize, keeping the size
    height, width = int(decoded.shape[0]), int(decoded.shape[1])
    return tf.cast(resize_square(decoded, image_size), tf.float32)[None], (height, width)


def grad_cam_of_input(
    model: Any,
    pixels: Any,
    size: tuple[int, int],
    layer_name: str | None = None,
    max_side: int | None = None,
) -> tuple[np.ndarray, float, str]:
    """:func:`grad_cam_and_probability` of an input from :func:`grad_cam_input` (``pixels``, of an
    image of ``size``, its height and width): decodes nothing."""
    import tensorflow as tf

    layer_name = layer_name or last_conv_layer(model)
    height, width = size
    grad_model, head = _logit_model(model, layer_name)
    with tf.GradientTape() as tape:
        features, last = grad_model(pixels, training=False)
        tape.watch(features)
        if head is not None:  # the sigmoid's input: gradients do not vanish when P(AI) saturates
            logit = tf.matmul(tf.cast(last, tf.float32), tf.cast(head.kernel, tf.float32)) + head.bias
        else:
            p = tf.clip_by_value(tf.cast(last, tf.float32), 1e-7, 1 - 1e-7)
            logit = tf.math.log(p) - tf.math.log1p(-p)
    gradients = tape.gradient(logit, features)
    if gradients is None:
        raise ValueError(f"layer {layer_name!r} does not feed the model's output")
    features, gradients = tf.cast(features, tf.float32), tf.cast(gradients, tf.float32)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]
    out_width, out_height = capped_size(width, height, max_side)
    cam = tf.image.resize(cam[..., None], (out_height, out_width), method="bilinear")[..., 0].numpy()
    np.clip(cam, 0.0, None, out=cam)
    peak = float(cam.max())
    if peak > 0:
        cam /= peak
    else:
        cam[:] = 0.0
    probability = float(tf.sigmoid(logit)[0, 0])
    return cam.astype(np.float32, copy=False), probability, layer_name


def grad_cam(
    model: Any,
    image_bytes: bytes,
    image_size: int,
    layer_name: str | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """The Grad-CAM heatmap of P(AI-generated) at the image's height x width (capped by ``max_side``)."""
    return grad_cam_and_probability(model, image_bytes, image_size, layer_name, max_side)[0]


def overlay_png(image_bytes: bytes, heatmap: np.ndarray, alpha: float = 0.4) -> bytes:
    """The image with ``heatmap`` blended over it in the "jet" colormap, as PNG at the heatmap's size.

    ``heatmap`` has the image's height x width or a copy scaled down by :func:`capped_size`; the
    image is then drawn scaled down to it (a JPEG decoded at a reduced scale first), in 8-bit colour.
    """
    height, width = heatmap.shape
    return blend_overlay(overlay_base(image_bytes, width, height), heatmap, alpha)


def overlay_base(image: bytes | Image.Image, width: int, height: int) -> Image.Image:
    """The image under an overlay of ``width`` x ``height``: its own size or a copy scaled down by
    :func:`capped_size` (ValueError otherwise), drawn at that size in 8-bit RGB, a JPEG decoded at a
    reduced scale first. ``image``: encoded bytes, or an image Pillow opened and has not decoded."""
    from PIL import Image

    opening = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else nullcontext(image)
    with opening as opened:
        opened.seek(0)
        if (width, height) != capped_size(*opened.size, max(width, height)):
            raise ValueError(
                f"heatmap {width}x{height} does not match "
                f"the image's {opened.size[0]}x{opened.size[1]} (nor a copy of it scaled down)"
            )
        opened.draft("RGB", (width, height))  # JPEG: decode at 1/2, 1/4 or 1/8 scale when enough
        base = opened.convert("RGB")
    if base.size != (width, height):
        base = base.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return base


def blend_overlay(base: Image.Image, heatmap: np.ndarray, alpha: float = 0.4) -> bytes:
    """``heatmap`` in the "jet" colormap blended over ``base`` (:func:`overlay_base`, of the
    heatmap's size), as PNG: decodes nothing."""
    from matplotlib import colormaps
    from PIL import Image

    levels = np.clip(heatmap, 0.0, 1.0)  # one float copy at the overlay's size, then 8-bit
    levels *= 255
    levels = np.rint(levels, out=levels).astype(np.uint8)
    jet = colormaps["jet"].resampled(256)(np.arange(256), bytes=True)[:, :3]
    heat = Image.fromarray(jet[levels], "RGB")
    buffer = io.BytesIO()
    Image.blend(base, heat, alpha).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Print P(AI-generated) and write the Grad-CAM overlay of one image."""
    parser = argparse.ArgumentParser(prog="aiclassify explain", description=__doc__)
    parser.add_argument("--run", required=True, type=Path, help="run directory with model.keras")
    parser.add_argument("--out", type=Path, help="overlay PNG to write (default <image>.gradcam.png)")
    parser.add_argument("--layer", help="convolutional layer to explain (default: the last Conv2D)")
    parser.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity (default 0.4)")
    parser.add_argument(
        "--max-side", type=int, help="draw the overlay scaled down to this many pixels a side at most"
    )
    parser.add_argument("image", type=Path)
    args = parser.parse_args(argv)
    from aiclassify.logs import setup_logging
    from aiclassify.predict import Predictor
    from aiclassify.runs import RunDirectoryError

    setup_logging()
    data = args.image.read_bytes()
    try:
        predictor = Predictor.load(args.run)
        heatmap, raw_probability, layer = grad_cam_and_probability(
            predictor.keras_model(), data, predictor.image_size, args.layer, args.max_side
        )
    except (RunDirectoryError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    probability = predictor.calibrate(raw_probability)
    out = args.out or args.image.with_name(args.image.stem + ".gradcam.png")
    out.write_bytes(overlay_png(data, heatmap, args.alpha))
    print(f"{args.image}: P(AI-generated) = {probability:.4f}; Grad-CAM ({layer}) overlay written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
