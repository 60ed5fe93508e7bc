"""Measuring what a Transformer costs: step time, attention's T², recurrent vs parallel (lesson 14).

The counts of `lessons_lib.cost` are predictions; this module measures them on the machine at hand.

* `median_seconds`: the median wall time of a call, after warm-up calls (the first call of a
  ``tf.function`` traces and compiles it; the median ignores a slow outlier).
* `step_seconds`: one training step of a GPT; FLOPs per step / seconds per step is the machine's
  achieved FLOP/s, which is roughly constant when the count is right (lesson 14 §5).
* `attention_seconds` and `attention_peak_memory`: one causal self-attention layer against the
  sequence length T. Its scores tensor has B·h·T² numbers, so time and memory grow as T² once
  that term dominates (lesson 14 §4): the slope of log cost against log T approaches 2.
* `recurrent_vs_attention`: forward + backward of a GRU and of a Transformer block of about the same
  parameter count against T (lesson 14 §6). The GRU takes T sequential steps, the block one.
* `loglog_slope`: the least-squares slope of log y against log x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from lessons_lib._validate import describe, positive_int


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls.

    ``fn`` should return a tensor or array; it is converted to NumPy so that the time includes the
    whole computation (TensorFlow may return before an asynchronous op finishes).
    """
    repeats = positive_int(repeats, "repeats")
    for _ in range(warmup):
        np.asarray(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.asarray(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope p of the least-squares line log y = p·log x + c (lesson 14 §4): y ∝ x^p."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(
            f"need two 1-D sequences of the same length >= 2, got {describe(x)} and {describe(y)}"
        )
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("log-log slope needs positive values")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _lengths(lengths: Sequence[int]) -> list[int]:
    out = [positive_int(t, "sequence length") for t in lengths]
    if not out:
        raise ValueError("lengths must not be empty")
    return out


def step_seconds(
    model: Any, batch: int, seq_len: int, repeats: int = 5, jit_compile: bool = False
) -> float:
    """Median seconds of one training step of ``model`` (a course GPT) on random ids [B, T].

    The step is `lessons_lib.training.train_step_function` with plain SGD (the optimiser's
    element-wise update is not part of the FLOP count of lesson 14 §2), seeded random token ids and
    targets; ``seq_len`` ≤ the model's ``max_len``.
    """
    from lessons_lib._backend import keras
    from lessons_lib.training import train_step_function

    b, t = positive_int(batch, "batch"), positive_int(seq_len, "seq_len")
    if t > model.max_len:
        raise ValueError(f"seq_len={t} is longer than the model's max_len={model.max_len}")
    rng = np.random.default_rng(0)
    x = rng.integers(0, model.vocab_size, size=(b, t)).astype(np.int32)
    y = rng.integers(0, model.vocab_size, size=(b, t)).astype(np.int32)
    opt = keras.optimizers.SGD(1e-4)
    opt.build(model.trainable_variables)
    step = train_step_function(model, opt, jit_compile=jit_compile)
    return median_seconds(lambda: step(x, y), repeats=repeats, warmup=2)


def scores_bytes(batch: int, num_heads: int, seq_len: int, dtype_size: int = 4) -> int:
    """Size of one attention layer's scores tensor [B, h, T, T]: B·h·T²·bytes (lesson 14 §4)."""
    return (
        positive_int(batch, "batch")
        * positive_int(num_heads, "num_heads")
        * positive_int(seq_len, "seq_len") ** 2
        * positive_int(dtype_size, "dtype_size")
    )


def _attention_call(d_model: int, num_heads: int):
    """A traced causal self-attention forward pass (one trace for every length)."""
    from lessons_lib._backend import keras, tf
    from lessons_lib.attention import MultiHeadAttention

    keras.utils.set_random_seed(0)
    layer = MultiHeadAttention(d_model, num_heads, use_bias=False)
    layer(np.zeros((1, 2, d_model), np.float32))
    return tf.function(
        lambda x: layer(x, use_causal_mask=True),
        input_signature=[tf.TensorSpec([None, None, d_model], tf.float32)],
    )


def attention_seconds(
    lengths: Sequence[int],
    d_model: int = 128,
    num_heads: int = 4,
    batch: int = 1,
    repeats: int = 3,
) -> dict[int, float]:
    """Median seconds of one causal self-attention layer's forward pass at each length T."""
    lengths = _lengths(lengths)
    fn = _attention_call(positive_int(d_model, "d_model"), positive_int(num_heads, "num_heads"))
    rng = np.random.default_rng(0)
    out = {}
    for t in lengths:
        x = rng.normal(size=(positive_int(batch, "batch"), t, d_model)).astype(np.float32)
        out[t] = median_seconds(lambda: fn(x), repeats=repeats, warmup=1)
    return out


def _rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    """Reset the kernel's record of this process's peak resident memory (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes(reset: bool) -> int:
    """Peak resident memory since the last `_reset_peak` (Linux ``VmHWM``), else since start."""
    if reset:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def _measure_attention_memory(lengths: list[int], d_model: int, num_heads: int, batch: int):
    """In this process: peak resident memory above the start of each call, lengths ascending."""
    fn = _attention_call(d_model, num_heads)
    rng = np.random.default_rng(0)
    np.asarray(fn(rng.normal(size=(batch, 16, d_model)).astype(np.float32)))  # trace it
    out = {}
    for t in sorted(lengths):
        x = rng.normal(size=(batch, t, d_model)).astype(np.float32)
        reset = _reset_peak()
        before = _rss_bytes()
        np.asarray(fn(x))
        out[t] = max(0, _peak_rss_bytes(reset) - before)
    return out


def attention_peak_memory(
    lengths: Sequence[int],
    d_model: int = 128,
    num_heads: int = 4,
    batch: int = 1,
    timeout: float = 300.0,
) -> dict[int, int]:
    """Peak resident memory (bytes) that one causal attention call adds, at each length T.

    Measured in a fresh Python process, so that nothing a notebook kernel did before (training a
    model) is counted: for each T in increasing order, the process's peak resident set during the
    call minus its resident set before it (on Linux the peak is reset before each call; elsewhere it
    is the peak since the process started, which grows with T). Lesson 14 §4 sets it beside
    `scores_bytes`. Needs a Unix (``resource``).
    """
    lengths = _lengths(lengths)
    if sys.platform.startswith("win"):
        raise RuntimeError("attention_peak_memory needs the Unix resource module (not on Windows)")
    args = {"lengths": lengths, "d_model": d_model, "num_heads": num_heads, "batch": batch}
    code = (
        "import json, sys; from lessons_lib.measure import _measure_attention_memory as m; "
        "print(json.dumps(m(**json.loads(sys.argv[1]))))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"the memory-measuring process failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {int(k): int(v) for k, v in result.items()}


def matched_gru_units(d_model: int, d_ff: int | None = None) -> int:
    """GRU width u whose parameter count is closest to one Transformer block's (lesson 14 §6).

    A Keras GRU (``reset_after=True``) reading d inputs has 3·(d·u + u² + 2u) parameters; a
    block with biases has 4d² + 4d + 2·d·d_ff + d_ff + d + 4d (`block_param_count`).
    """
    from lessons_lib.block import block_param_count

    d = positive_int(d_model, "d_model")
    target = block_param_count(d, 4 * d if d_ff is None else d_ff)
    units = np.arange(1, 8 * d)
    counts = 3 * (d * units + units**2 + 2 * units)
    return int(units[np.argmin(np.abs(counts - target))])


def recurrent_vs_attention(
    lengths: Sequence[int],
    d_model: int = 128,
    num_heads: int = 4,
    batch: int = 8,
    repeats: int = 3,
) -> dict[str, Any]:
    """Forward + backward seconds of a GRU and of a Transformer block at each length T.

    The block is the course's pre-norm `TransformerBlock` (d_model, ``num_heads``, d_ff = 4d, causal
    mask); the GRU (``keras.layers.GRU``, ``return_sequences=True``) has `matched_gru_units` units,
    so both have about the same number of parameters. Each is one traced ``tf.function`` computing
    the gradient of the mean output with respect to the weights and the input. Returns
    ``{"lengths", "gru", "transformer", "gru_params", "transformer_params", "gru_units"}``.
    """
    from lessons_lib._backend import keras, tf
    from lessons_lib.block import TransformerBlock

    lengths = _lengths(lengths)
    d, b = positive_int(d_model, "d_model"), positive_int(batch, "batch")
    keras.utils.set_random_seed(0)
    units = matched_gru_units(d)
    gru = keras.layers.GRU(units, return_sequences=True)
    block = TransformerBlock(d, num_heads, 4 * d)
    gru(np.zeros((1, 2, d), np.float32))
    block(np.zeros((1, 2, d), np.float32))

    def grad_fn(layer, **kw):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_mean(layer(x, **kw))
            return tape.gradient(loss, [x, *layer.trainable_variables])[0]

        return tf.function(run, input_signature=[tf.TensorSpec([None, None, d], tf.float32)])

    fns = {"gru": grad_fn(gru), "transformer": grad_fn(block, use_causal_mask=True)}
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"lengths": lengths, "gru": [], "transformer": []}
    for t in lengths:
        x = tf.constant(rng.normal(size=(b, t, d)).astype(np.float32))
        for name, fn in fns.items():
            out[name].append(median_seconds(lambda: fn(x), repeats=repeats, warmup=1))
    out["gru_units"] = units
    out["gru_params"] = int(gru.count_params())
    out["transformer_params"] = int(block.count_params())
    return out
