"""Training-throughput benchmark: the real input pipeline against in-memory tensors.

    python scripts/bench_train.py --config cifake.yaml [--data DIR] [--steps 60] [--out FILE.json]

Measures, side by side in one process: images/s of the configured model trained from JPEG files
on disk through the project's tf.data pipeline (no cache, so every step decodes); the same model
fed one in-memory batch repeated (the compute-bound ceiling); the ratio of the two (goal >= 0.95);
the share of step time spent waiting for the next batch (both loops call ``train_on_batch``, so
their Python overhead is the same); the input pipeline alone; and, for reference, the
FLOPs per image and the implied share of this machine's measured float32 matmul rate.
Data: ``--data``, else the config's ``data.path``, else CIFAKE extracted from ../shared/data,
else the embedded demo data.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from aiclassify.benchmarks.report import print_values, write_results
from aiclassify.config import DataConfig, load_config
from aiclassify.data.demo import write_demo_dataset
from aiclassify.data.layouts import load_splits
from aiclassify.data.pipeline import make_dataset
from aiclassify.data.sources import dataset_root
from aiclassify.train.trainer import compile_model

SHARED_CIFAKE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifake.tar.gz"


def find_data(args: argparse.Namespace, data: DataConfig) -> tuple[Path, str]:
    """The dataset folder to read, and a word on where it came from."""
    if args.data:
        return Path(args.data), "--data"
    if data.source == "demo":
        return dataset_root(data, seed=0), "embedded demo data"
    if data.path and Path(data.path).is_dir():
        return Path(data.path), "config data.path"
    if SHARED_CIFAKE.is_file():
        target = Path(tempfile.gettempdir()) / "aiclassify-bench"
        if not (target / "cifake").is_dir():
            with tarfile.open(SHARED_CIFAKE) as archive:
                archive.extractall(target, filter="data")
        return target / "cifake", "../shared/data/cifake.tar.gz"
    return write_demo_dataset(images_per_class=1200, image_size=32), "embedded demo data"


def timed_training(model: keras.Model, iterator, steps: int, batch_size: int) -> dict:
    """Train ``steps`` batches, timing the wait for each batch apart from the step."""
    waiting = 0.0
    started = time.perf_counter()
    for _ in range(steps):
        before = time.perf_counter()
        images, labels = next(iterator)
        waiting += time.perf_counter() - before
        model.train_on_batch(images, labels)
    return {"seconds": time.perf_counter() - started, "waiting": waiting, "images": steps * batch_size}


def interleaved_training(
    model: keras.Model, datasets: dict, steps: int, batch_size: int, rounds: int
) -> dict:
    """Alternate the datasets in ``rounds`` chunks so drifting machine load hits both alike."""
    iterators = {name: iter(dataset) for name, dataset in datasets.items()}
    for iterator in iterators.values():  # warm-up: tracing and the first reads
        for _ in range(3):
            model.train_on_batch(*next(iterator))
    totals = {name: {"seconds": 0.0, "waiting": 0.0, "images": 0} for name in datasets}
    for _ in range(rounds):
        for name, iterator in iterators.items():
            for key, value in timed_training(model, iterator, max(1, steps // rounds), batch_size).items():
                totals[name][key] += value
    return {
        name: {
            "images_per_second": total["images"] / total["seconds"],
            "data_wait_fraction": total["waiting"] / total["seconds"],
        }
        for name, total in totals.items()
    }


def pipeline_throughput(dataset: tf.data.Dataset, steps: int, batch_size: int) -> float:
    """Images/s of the input pipeline alone."""
    iterator = iter(dataset)
    next(iterator)
    started = time.perf_counter()
    for _ in range(steps):
        next(iterator)
    return steps * batch_size / (time.perf_counter() - started)


def forward_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of the convolutions and dense layers for one image."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            total += 2 * height * width * kernel_h * kernel_w * layer.input.shape[-1] * channels_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def matmul_flops_per_second(size: int = 1024, repeats: int = 20) -> float:
    """Measured float32 matmul rate of this machine through TensorFlow."""
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.linalg.matmul(a, b).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        result = tf.linalg.matmul(a, b)
    result.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table; write JSON with --out."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="cifake.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--data", help="dataset folder (default: see above)")
    parser.add_argument("--steps", type=int, default=60, help="training steps per feed, in all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the two feeds")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    data_dir, data_origin = find_data(args, config.data)
    train = load_splits(data_dir, config.data.val_fraction, config.data.test_fraction, 0).splits["train"]
    size, batch = config.data.image_size, config.train.batch_size
    from_disk = make_dataset(train, size, batch, training=True, seed=0, cache="none").repeat()
    images, labels = next(iter(from_disk))
    in_memory = tf.data.Dataset.from_tensors((images, labels)).repeat()

    model = compile_model(config)
    measured = interleaved_training(
        model, {"pipeline": from_disk, "in_memory": in_memory}, args.steps, batch, args.rounds
    )
    pipeline, ceiling = measured["pipeline"], measured["in_memory"]
    flops = forward_flops(model)
    matmul = matmul_flops_per_second()
    results = {
        "config": args.config,
        "model": config.model.name,
        "image_size": size,
        "batch_size": batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "data": f"{data_dir} ({data_origin}, {len(train)} training images)",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, TensorFlow {tf.__version__}",
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "pipeline_images_per_second": pipeline["images_per_second"],
        "in_memory_images_per_second": ceiling["images_per_second"],
        "ratio_pipeline_to_in_memory": pipeline["images_per_second"] / ceiling["images_per_second"],
        "data_wait_fraction": pipeline["data_wait_fraction"],
        "input_pipeline_alone_images_per_second": pipeline_throughput(from_disk, 4 * args.steps, batch),
        "forward_gflops_per_image": flops / 1e9,
        "train_gflops_per_image_approx": 3 * flops / 1e9,
        "matmul_gflops_per_second": matmul / 1e9,
        "implied_fraction_of_matmul_rate": 3 * flops * ceiling["images_per_second"] / matmul,
    }
    print_values(results)
    if args.out:
        write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
