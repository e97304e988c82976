"""Mixed precision against float32 under a GPU memory cap: the check behind ``scripts/gpu_check.py``.

The training configs are tuned for a 4 GB GTX 1650 with ``mixed_float16``. This trains the configured
architecture (cnn5 at 224x224, batch 32: the faces config) for a few steps on synthetic images, once
per precision, each in its own child process (so that one run's peak memory and dtype policy cannot
leak into the other), on whatever Keras backend is set (``KERAS_BACKEND``: TensorFlow, JAX or PyTorch;
the model code needs only Keras). Each child caps its accelerator memory before the backend starts:

- JAX: ``XLA_PYTHON_CLIENT_MEM_FRACTION`` = cap / the card's total memory (read with ``nvidia-smi``),
  and no preallocation beyond it;
- TensorFlow: a logical GPU device with ``memory_limit`` = the cap;
- PyTorch: ``torch.cuda.set_per_process_memory_fraction``.

It reports images/s (steps after the first two, which compile) and peak memory for each precision,
the speed-up of ``mixed_float16``, and whether the batch fits under the cap (the run finished without
running out of memory, with its measured peak below the cap). On a machine without a GPU it runs on
the CPU, reports the process's peak resident memory instead, and says so: useful only to check the
script itself.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

PRECISIONS = ("float32", "mixed_float16")
WARMUP_STEPS = 2
OUT_OF_MEMORY_WORDS = ("out of memory", "resource_exhausted", "resourceexhausted", "oom")


@dataclass(frozen=True)
class CheckOptions:
    """What to train and under which cap."""

    model: str = "cnn5"
    image_size: int = 224
    batch_size: int = 32
    steps: int = 20
    memory_cap_gb: float = 4.0


def gpu_total_bytes() -> int | None:
    """The first GPU's total memory from ``nvidia-smi``, or None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = output.strip().splitlines()[0] if output.strip() else ""
    return int(float(first) * 1024 * 1024) if first else None


def child_environment(options: CheckOptions, total_bytes: int | None) -> dict[str, str]:
    """The environment of one child: the JAX memory fraction for the cap when the card is known."""
    environment = dict(os.environ)
    if total_bytes:
        fraction = min(1.0, options.memory_cap_gb * 1024**3 / total_bytes)
        environment["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.4f}"
        environment["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return environment


def run_check(options: CheckOptions) -> dict[str, Any]:
    """Both precisions, each in a child process, and the comparison."""
    total = gpu_total_bytes()
    results = {}
    for precision in PRECISIONS:
        command = [
            sys.executable,
            "-m",
            "aiclassify.benchmarks.precision",
            json.dumps(asdict(options)),
            precision,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, env=child_environment(options, total), timeout=3600
        )
        results[precision] = parse_child(completed, options)
    return summarise(options, results, total)


def parse_child(completed: subprocess.CompletedProcess, options: CheckOptions) -> dict[str, Any]:
    """One child's measurement, or why it failed (out of memory is a result, not an error)."""
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode == 0 and lines:
        return json.loads(lines[-1])
    text = (completed.stderr + completed.stdout).lower()
    out_of_memory = any(word in text for word in OUT_OF_MEMORY_WORDS)
    return {
        "completed": False,
        "out_of_memory": out_of_memory,
        "error": (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no output"],
    }


def summarise(options: CheckOptions, results: dict[str, dict], total_bytes: int | None) -> dict[str, Any]:
    """The speed-up of mixed precision and whether each precision fits under the cap."""
    cap_bytes = options.memory_cap_gb * 1024**3
    for result in results.values():
        peak = result.get("peak_bytes")
        if not result.get("completed"):
            result["fits"] = False if result.get("out_of_memory") else None
        else:  # a CPU run has no accelerator memory to fit in
            result["fits"] = None if result.get("device") != "gpu" else peak is not None and peak <= cap_bytes
    mixed, single = results["mixed_float16"], results["float32"]
    speedup = None
    if mixed.get("images_per_s") and single.get("images_per_s"):
        speedup = mixed["images_per_s"] / single["images_per_s"]
    return {
        "options": asdict(options),
        "gpu_total_bytes": total_bytes,
        "results": results,
        "mixed_over_float32": speedup,
        "goals": {
            "mixed_float16 >= 2x float32 images/s": None if speedup is None else speedup >= 2.0,
            f"batch {options.batch_size} fits in {options.memory_cap_gb:g} GB (mixed_float16)": mixed["fits"],
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    options = report["options"]
    lines = [
        f"{options['model']} at {options['image_size']} px, batch {options['batch_size']}, "
        f"{options['steps']} steps, memory cap {options['memory_cap_gb']:g} GB",
        f"{'precision':<15}{'device':<8}{'images/s':>10}{'peak MB':>10}  fits",
    ]
    for precision, result in report["results"].items():
        if not result.get("completed"):
            why = "out of memory" if result.get("out_of_memory") else " ".join(result.get("error", []))
            lines.append(f"{precision:<15}failed: {why}")
            continue
        peak_mb = result["peak_bytes"] / 1024**2
        lines.append(
            f"{precision:<15}{result['device']:<8}{result['images_per_s']:>10.1f}{peak_mb:>10.0f}  "
            f"{_word(result['fits'], 'yes', 'no')} ({result['peak_kind']})"
        )
    speedup = report["mixed_over_float32"]
    lines.append(f"mixed_float16 / float32 images/s: {'n/a' if speedup is None else f'{speedup:.2f}x'}")
    for goal, met in report["goals"].items():
        lines.append(f"goal {goal}: {_word(met, 'met', 'missed')}")
    return "\n".join(lines)


def _word(value: bool | None, true: str, false: str) -> str:
    return "n/a" if value is None else (true if value else false)


def measure(options: CheckOptions, precision: str) -> dict[str, Any]:
    """Train ``options.steps`` steps in ``precision`` in this process (a child) and measure them."""
    import keras
    import numpy as np

    from aiclassify.models import build_model

    backend = keras.backend.backend()
    device = _cap_memory(backend, options.memory_cap_gb)
    keras.mixed_precision.set_dtype_policy(precision)
    model = build_model(options.model, options.image_size)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    shape = (options.batch_size, options.image_size, options.image_size, 3)
    images = rng.uniform(0, 255, shape).astype("float32")
    labels = rng.integers(0, 2, (options.batch_size, 1)).astype("float32")
    for _ in range(WARMUP_STEPS):
        model.train_on_batch(images, labels)
    timed = max(1, options.steps - WARMUP_STEPS)
    started = time.perf_counter()
    for _ in range(timed):
        loss = model.train_on_batch(images, labels)
    seconds = time.perf_counter() - started
    peak, peak_kind = _peak_memory(backend, device)
    return {
        "completed": True,
        "backend": backend,
        "device": device,
        "precision": precision,
        "conv_compute_dtype": next(
            (layer.compute_dtype for layer in model.layers if isinstance(layer, keras.layers.Conv2D)), None
        ),
        "images_per_s": timed * options.batch_size / seconds,
        "peak_bytes": peak,
        "peak_kind": peak_kind,
        "final_loss": float(np.asarray(loss).reshape(-1)[0]),
    }


def _cap_memory(backend: str, cap_gb: float) -> str:
    """Cap the accelerator's memory (JAX: by the environment, set by the parent); ``gpu`` or ``cpu``."""
    cap_mb = int(cap_gb * 1024)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            tf.config.set_logical_device_configuration(
                gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=cap_mb)]
            )
        return "gpu" if gpus else "cpu"
    if backend == "jax":
        import jax

        return "gpu" if jax.default_backend() == "gpu" else "cpu"
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return "cpu"
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_mb * 1024**2 / total))
        return "gpu"
    raise ValueError(f"unsupported Keras backend. Received: backend={backend!r}")


def _peak_memory(backend: str, device: str) -> tuple[int, str]:
    """Peak accelerator memory in use, or on the CPU the process's peak resident memory."""
    if device == "gpu":
        if backend == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"]), "gpu peak"
        if backend == "jax":
            import jax

            return int(jax.devices()[0].memory_stats()["peak_bytes_in_use"]), "gpu peak"
        import torch

        return int(torch.cuda.max_memory_allocated()), "gpu peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "cpu peak RSS"


def child_main(argv: list[str]) -> int:
    """One measurement: ``python -m aiclassify.benchmarks.precision '<options json>' <precision>``."""
    options = CheckOptions(**json.loads(argv[0]))
    print(json.dumps(measure(options, argv[1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
