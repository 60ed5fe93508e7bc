"""Reproducible, quiet start for every notebook: ``lessons_lib.setup(seed=0)``.

The first code cell of each lesson calls `setup`. It

* seeds Python's ``random``, NumPy and TensorFlow (through ``keras.utils.set_random_seed``),
* imports TensorFlow without its load-time notice (see `import_tensorflow_quietly`) and
  silences its C++ log lines (both would otherwise appear as ``stderr`` cell output),
* sets NumPy's print options for the lessons (3 decimals, no scientific notation, 120 columns),
* finds the accelerator: the GPU if TensorFlow sees one, else the CPU,
* prints a one-line banner and returns a `DeviceInfo`.

Mixed precision is *recommended* (not switched on) for GPUs only: on a CPU it was measured slower,
and the hand-worked examples need float32 everywhere. Training code reads ``info.mixed_precision``
and ``info.jit_compile`` to decide.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import tempfile

# Must be set before TensorFlow is imported for the first time.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The notice TensorFlow writes while it loads when oneDNN is on (its default on x86 CPUs).
_LOAD_NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on.",
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its load-time oneDNN notice dropped; every other line it writes is
    passed on.

    TensorFlow prints that notice straight to file descriptor 2 before its logging starts, so
    ``TF_CPP_MIN_LOG_LEVEL`` cannot hide it; in a notebook it would be ``stderr`` output, which the
    course's nbval run refuses. Turning oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``) would also silence
    it, but costs about a third of the training speed on a CPU (measured by
    ``benchmarks/bench_gpt.py``).
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable file descriptor 2: nothing to filter
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines()
            rest = [line for line in lines if not any(n in line for n in _LOAD_NOTICES)]
            if rest:
                sys.stderr.write("\n".join(rest) + "\n")


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What `setup` found (lesson 00 §3 runs it first, like every lesson).

    Attributes:
        device: ``"GPU"`` or ``"CPU"``.
        name: a human-readable description of the device.
        num_gpus: how many GPUs TensorFlow sees.
        mixed_precision: whether training code should use the ``mixed_float16`` policy (GPU only).
        jit_compile: whether training steps should be compiled with XLA.
        seed: the seed that was set.
    """

    device: str
    name: str
    num_gpus: int
    mixed_precision: bool
    jit_compile: bool
    seed: int

    @property
    def banner(self) -> str:
        if self.device == "GPU":
            return f"Running on GPU: {self.name} (seed {self.seed})"
        return f"Running on CPU (no GPU found) (seed {self.seed})"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras with one integer (`setup` does it; lesson 00 §3)."""
    import numpy as np

    from lessons_lib._backend import keras

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def setup(seed: int = 0, verbose: bool = True) -> DeviceInfo:
    """Seed everything, quiet TensorFlow, set print options, find the device, print a banner.

    The first code cell of every lesson calls it (lesson 00 §4 explains the banner).

    Args:
        seed: a non-negative integer used for Python, NumPy and TensorFlow.
        verbose: print the banner (``"Running on CPU (no GPU found) (seed 0)"``).

    Returns:
        A `DeviceInfo` describing the device. GPU cells need no edits: TensorFlow places
        operations on the GPU when there is one and on the CPU otherwise.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(
            f"setup(seed=...) expects a non-negative int, got {seed!r} ({type(seed).__name__})"
        )
    import logging

    import numpy as np

    from lessons_lib._backend import tf

    np.set_printoptions(precision=3, suppress=True, linewidth=120)

    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    seed_everything(seed)

    # TensorFloat-32 would round float32 matrix products on recent NVIDIA GPUs to ~3 significant
    # digits, breaking the lessons' 1e-5 agreement checks; the course wants true float32 (no effect
    # on a CPU).
    tf.config.experimental.enable_tensor_float_32_execution(False)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:  # take GPU memory as needed instead of all of it at once
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: harmless
            pass
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        info = DeviceInfo("GPU", name, len(gpus), mixed_precision=True, jit_compile=True, seed=seed)
    else:
        info = DeviceInfo("CPU", "CPU", 0, mixed_precision=False, jit_compile=True, seed=seed)
    if verbose:
        print(info.banner)
    return info
