"""Quantization of the trained GPT: symmetric per-channel int8/int4 weights, Keras and LiteRT
(lesson 15).

One output channel c of a weight matrix W (a column of a Dense kernel ``[in, out]``) is stored as
integer codes q and one float scale s_c (lesson 15 §2):

    qmax = 2^(bits − 1) − 1                     (127 for int8, 7 for int4)
    s_c  = max_i |W_ic| / qmax
    q_ic = clip(round(W_ic / s_c), −qmax, qmax)
    Ŵ_ic = q_ic · s_c,      |W_ic − Ŵ_ic| ≤ s_c / 2

Rounding is to the nearest integer, ties to even (NumPy's and Keras' ``round``). The codes are
computed exactly as Keras' ``abs_max_quantize`` does (float32, q = round(W · qmax / (max|W| + ε)), ε
= 1e-7), so `quantize_weights` and a Dense layer quantized by Keras hold the same integers
(`keras_int_weights`); the ε also keeps a channel of zeros from dividing by zero (its codes are 0,
its scale ε / qmax). Keras stores the reciprocal, qmax / (max|W| + ε), and divides by it; this
module always uses the multiplying scale s_c. Keras' int4 range is [−8, 7] but its scale 7 / max|W|
never produces −8, so int4 is symmetric too; two int4 codes are packed in one byte.

Lesson 15 §1 counts what a model's size is made of (`weight_bytes`, `file_bytes`), §3 quantizes the
GPT in Keras (`quantize_gpt`, and the tied-head pitfall: `naive_tied_logits`), §4 exports it to
LiteRT (`export_litert`, `LiteRTModel`, `litert_loss`) and explains why full-integer quantization
hurts (`activation_ranges`): a per-tensor int8 activation scale must cover max|x|, so when
max|x| ≫ the 99.9th percentile typical activations get only a few of the 255 levels — and the
attention scores' tensor holds the causal mask's fill −1e9, so all its real scores round to one
level (measured on the baby GPT: full-integer loss 2.95; 1.92 with a fill of −30).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lessons_lib._validate import describe, float_array, positive_int

# Keras' ``backend.epsilon()``, added to max|W| before dividing (as Keras' ``abs_max_quantize``).
EPSILON = 1e-7
QUANTIZE_MODES = ("int8", "int4")
LITERT_MODES = ("float32", "dynamic_int8", "full_int8")


# --- NumPy: rounding one matrix (lesson 15 §2) ---------------------------------------------------
def _qmax(bits: Any) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer from 2 to 8 (8: int8, 4: int4), got {bits!r}")
    return 2 ** (int(bits) - 1) - 1


def _channel_axis(w: np.ndarray, axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer (the channel axis), got {axis!r}")
    if not -w.ndim <= axis < w.ndim:
        raise ValueError(f"axis {axis} is out of range for w of shape {w.shape}")
    return int(axis) % w.ndim


def quantize_weights(w, bits: int = 8, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization: ``(q int8, scale float32)`` with w ≈ q · scale.

    Lesson 15 §2. ``axis`` is the channel axis (for a Dense kernel ``[in, out]`` the output
    channels, -1; for an embedding table ``[vocab, d]`` the rows, 0): max|w| is taken over every
    other axis, so ``scale`` has w's rank with size 1 there (``[1, out]`` for a kernel). qmax =
    2^(bits−1) − 1, scale = max|w| / qmax, q = clip(round(w / scale), −qmax, qmax), computed in
    float32 as Keras' ``abs_max_quantize`` (q = round(w · qmax / (max|w| + 1e-7))), so the codes
    equal Keras' (`keras_int_weights`); a channel of zeros gets codes 0 and scale 1e-7 / qmax.
    ``bits`` is 2 … 8 (8 and 4 are what Keras offers).
    """
    qmax = _qmax(bits)
    w = float_array(w, "w").astype(np.float32, copy=False)
    ax = _channel_axis(w, axis)
    others = tuple(i for i in range(w.ndim) if i != ax)
    amax = np.max(np.abs(w), axis=others, keepdims=True)
    inverse = np.divide(qmax, np.add(amax, EPSILON)).astype(np.float32)  # Keras' kernel_scale
    q = np.clip(np.round(np.multiply(w, inverse)), -qmax, qmax).astype(np.int8)
    return q, (np.float32(1.0) / inverse).astype(np.float32)


def dequantize_weights(q, scale) -> np.ndarray:
    """ŵ = q · scale as float32 (lesson 15 §2); ``scale`` broadcasts against ``q``."""
    q = np.asarray(q)
    if not np.issubdtype(q.dtype, np.integer):
        raise TypeError(f"q must hold integer codes, got {describe(q)}")
    scale = float_array(scale, "scale", min_rank=0)
    try:
        return (q.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)
    except ValueError:
        raise ValueError(
            f"scale of shape {scale.shape} does not broadcast against q of shape {q.shape}"
        ) from None


def quantization_error(w, bits: int = 8, axis: int = -1) -> dict[str, Any]:
    """How far the quantized ŵ is from w (lesson 15 §2): a dict of figures.

    ``max_abs`` = max |w − ŵ|, ``mean_abs`` = mean |w − ŵ|, ``relative`` = ‖w − ŵ‖_F / ‖w‖_F,
    ``max_bound`` = max_c scale_c / 2 (rounding moves a weight by at most half a step:
    |w − ŵ| ≤ scale_c / 2 in channel c, so max_abs ≤ max_bound), ``within_bound`` (that bound held
    in every channel, up to float32 rounding of w · qmax / max|w|), ``bits``, ``levels``
    (2 qmax + 1), ``scale`` and ``error`` (w − ŵ, for a histogram).
    """
    w = float_array(w, "w").astype(np.float32, copy=False)
    q, scale = quantize_weights(w, bits, axis)
    err = w.astype(np.float64) - q.astype(np.float64) * scale.astype(np.float64)
    ax = _channel_axis(w, axis)
    others = tuple(i for i in range(w.ndim) if i != ax)
    per_channel = np.max(np.abs(err), axis=others, keepdims=True)
    norm = float(np.linalg.norm(w.astype(np.float64)))
    return {
        "bits": int(bits),
        "levels": 2 * _qmax(bits) + 1,
        "max_abs": float(np.max(np.abs(err))),
        "mean_abs": float(np.mean(np.abs(err))),
        "relative": float(np.linalg.norm(err) / norm) if norm > 0 else 0.0,
        "max_bound": float(np.max(scale)) / 2,
        "within_bound": bool(np.all(per_channel <= scale.astype(np.float64) * (0.5 + 1e-5))),
        "scale": scale,
        "error": err.astype(np.float32),
    }


# --- Keras: the GPT quantized (lesson 15 §3) -----------------------------------------------------
def _keras():
    from lessons_lib._backend import keras

    return keras


def keras_int_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """The integer codes and scale of a layer quantized by Keras, in `quantize_weights`' convention.

    Lesson 15 §3. A ``keras.layers.Dense`` quantized with ``layer.quantize("int8")`` or per channel
    to int4 (``layer.quantize("int4", config=keras.quantizers.Int4QuantizationConfig(
    block_size=-1))``: Keras' default int4 is asymmetric per block of 128 inputs, refused here)
    gives ``q [in, out]`` (int8; int4's packed nibbles unpacked) and ``scale [1, out]``; a
    ``keras.layers.Embedding`` gives ``q [vocab, d]`` and ``scale [vocab, 1]`` (Keras scales its
    rows). ``scale`` is 1 / Keras' ``kernel_scale`` (Keras divides by qmax / max|w|), so
    ``quantize_weights(w, 8)`` of the same float kernel returns the same arrays.
    """
    keras = _keras()
    if not isinstance(layer, (keras.layers.Dense, keras.layers.Embedding)):
        raise TypeError(f"layer must be a keras.layers.Dense or Embedding, got {describe(layer)}")
    mode = layer.quantization_mode
    if mode not in QUANTIZE_MODES:
        raise ValueError(
            f"layer {layer.name!r} is not quantized to int8 or int4 (quantization_mode {mode!r}); "
            'quantize it first with layer.quantize("int8")'
        )
    if getattr(layer, "_int4_block_size", None) not in (None, -1):
        raise ValueError(
            f"layer {layer.name!r} was quantized per block of {layer._int4_block_size} inputs with "
            'zero points (Keras\' default for "int4"): only symmetric per-channel codes compare '
            'with quantize_weights; quantize it with layer.quantize("int4", '
            "config=keras.quantizers.Int4QuantizationConfig(block_size=-1))"
        )
    dense = isinstance(layer, keras.layers.Dense)
    stored = layer._kernel if dense else layer._embeddings
    q = stored
    if mode == "int4":
        q = keras.quantizers.unpack_int4(stored, layer._orig_output_dim, axis=-1)
    q = np.asarray(keras.ops.convert_to_numpy(q)).astype(np.int8)
    inverse = np.asarray(
        (layer.kernel_scale if dense else layer.embeddings_scale).numpy(), np.float32
    )
    scale = np.float32(1.0) / inverse
    return q, scale.reshape((1, -1) if dense else (-1, 1))


def _check_gpt(model, what: str = "model"):
    from lessons_lib.gpt import built_gpt  # lazily: the NumPy half of this module needs no TF

    return built_gpt(model, what)


def quantized_layers(model) -> dict[str, str]:
    """``{layer path: quantization mode}`` of every quantized layer of ``model`` (lesson 15 §3)."""
    return {
        layer.path: layer.quantization_mode
        for layer in model._flatten_layers()
        if getattr(layer, "quantization_mode", None) is not None
    }


@contextlib.contextmanager
def _one_gc_collect() -> Iterator[None]:
    """Run Python's garbage collector once, after the block, instead of at every call inside it.

    Keras' ``Layer.__delattr__`` calls ``gc.collect()`` each time a layer drops its float kernel
    for the quantized one: with TensorFlow loaded that is ~0.5–1 s a layer, 24 layers in the baby
    GPT. ``gc.collect`` is restored (and called once) when the block ends.
    """
    import gc

    collect = gc.collect
    gc.collect = lambda *args, **kwargs: 0
    try:
        yield
    finally:
        gc.collect = collect
        gc.collect()


def quantize_gpt(model, mode: str = "int8") -> list[str]:
    """Quantize the Dense layers of a built `GPT` in place with Keras; returns their paths.

    Lesson 15 §3. ``model.quantize(mode, filters=...)`` restricted to the ``keras.layers.Dense``
    layers: every block's W_Q, W_K, W_V, W_O, W_1, W_2 (and an untied ``head``). The embeddings stay
    float: they are lookups (no matmul to speed up), and with tied embeddings the token table is
    also the output matrix. ``mode`` is ``"int8"`` or ``"int4"``, both symmetric per channel as in
    §2 (`quantize_weights`; int4 with ``Int4QuantizationConfig(block_size=-1)``: Keras' default int4
    is asymmetric, with a scale and a zero point per block of 128 inputs). A model already
    quantized is refused (quantizing twice would round the codes again).
    """
    keras = _keras()
    _check_gpt(model)
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    already = quantized_layers(model)
    if already:
        raise ValueError(
            f"model is already quantized ({len(already)} layers, e.g. "
            f"{next(iter(already.items()))}); quantize a fresh float model"
        )
    paths: list[str] = []

    def is_dense(layer) -> bool:
        if type(layer) is keras.layers.Dense:
            paths.append(layer.path)
            return True
        return False

    config = None
    if mode == "int4":  # per channel and symmetric (§2), not Keras' default blocks of 128
        config = keras.quantizers.Int4QuantizationConfig(block_size=-1)
    with warnings.catch_warnings(), _one_gc_collect():
        # NumPy 2's copy=False notice from Keras' quantizer
        warnings.filterwarnings(
            "ignore", message=".*__array__ implementation", category=DeprecationWarning
        )
        model.quantize(mode, config=config, filters=is_dense)
    order = {v.path.rsplit("/", 1)[0]: i for i, v in reversed(list(enumerate(model.weights)))}
    return sorted(paths, key=lambda p: order.get(p, len(order)))


def quantize_whole_model(model, mode: str = "int8") -> list[str]:
    """Keras' ``model.quantize(mode)`` on every layer that can be quantized, embeddings included.

    Lesson 15 §3, the tied-head pitfall on purpose: the token table becomes integer codes with a
    scale per row, which `GPT.logits` reads dequantized (`naive_tied_logits` shows what a head that
    reads ``embeddings`` directly gets). Keras' default configurations (int4: asymmetric, blocks of
    128), its per-layer warnings for layers with nothing to quantize (LayerNormalization, Dropout;
    they would go to stderr) silenced, and one garbage collection instead of one per layer.
    Returns the paths of the quantized layers. Refusals as `quantize_gpt`.
    """
    _check_gpt(model)
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    if quantized_layers(model):
        raise ValueError("model is already quantized; quantize a fresh float model")
    with warnings.catch_warnings(), _one_gc_collect():
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        warnings.filterwarnings(
            "ignore", message=".*__array__ implementation", category=DeprecationWarning
        )
        model.quantize(mode)
    order = {v.path.rsplit("/", 1)[0]: i for i, v in reversed(list(enumerate(model.weights)))}
    return sorted(quantized_layers(model), key=lambda p: order.get(p, len(order)))


def naive_tied_logits(model, ids):
    """The tied-head pitfall on purpose: logits = LN_f(x) · Eᵀ with E the raw integer table.

    Lesson 15 §3. After ``model.quantize("int8")`` on the whole GPT, Keras' Embedding stores int8
    codes and a per-row scale, and its ``embeddings`` property returns the codes alone (int4: the
    unpacked codes): the output head then multiplies by codes ≈ E / scale, ~100× (int4: ~10×) too
    large, and the loss explodes without an error. `GPT.logits` now dequantizes the table; this
    function computes what it did before, for comparison. ``ids [batch, T]`` → logits.
    """
    from lessons_lib._backend import ops

    _check_gpt(model)
    if model.head is not None:
        raise ValueError("model has an untied head: the pitfall concerns tied embeddings only")
    x = model.embed(ops.convert_to_tensor(np.asarray(ids, np.int32)))
    for block in model.blocks:
        x, _ = block(x, use_causal_mask=True, return_attention=True, training=False)
    h = model.ln_f(x)
    table = ops.cast(model.embed.embeddings, h.dtype)  # codes, no scale
    return ops.matmul(h, ops.transpose(table))


def weight_bytes(model) -> int:
    """Bytes of the model's weights as stored: ∑ over variables of size × itemsize (lesson 15 §1).

    int8 kernels count 1 byte per weight, their float32 scales 4 per channel, int4 kernels are
    packed (2 weights per byte), everything else float32.
    """
    seen: set[int] = set()
    total = 0
    for v in model.weights:
        if id(v) in seen:
            continue
        seen.add(id(v))
        total += int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
    return total


def file_bytes(model) -> int:
    """Size in bytes of ``model.save_weights`` to a temporary ``.weights.h5`` (lesson 15 §1)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.weights.h5"
        model.save_weights(path)
        return path.stat().st_size


def save_quantized(model, path: Path | str) -> Path:
    """Save a model quantized by `quantize_gpt` to ``path`` (``.weights.h5``) (lesson 15 §3).

    The file holds the int8 codes (int4: packed), the scales and the float rest; `load_quantized`
    reads it back (and `quantized_file_mode` tells how it is quantized). A float model is refused.
    """
    _check_gpt(model)
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"path must end with .weights.h5, got {path.name!r}")
    layers = quantized_layers(model)
    modes = sorted(set(layers.values()))
    if not modes:
        raise ValueError(
            "model is not quantized: save it with model.save_weights or save_checkpoint"
        )
    if len(modes) > 1:
        raise ValueError(f"model mixes quantization modes {modes}; save_quantized expects one")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    return path


def quantized_file_mode(path: Path | str) -> str | None:
    """How a ``.weights.h5`` stores its Dense kernels: ``"int8"``, ``"int4"`` or None (float).

    Lesson 15 §3. Read from the file itself: a quantized Dense layer saves an int8 kernel and a
    float scale per output channel, int4 with two codes per byte (half as many columns as scales).
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} not found")
    modes: set[str] = set()

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group) and name.endswith("vars") and "0" in obj and "1" in obj:
            kernel, scale = obj["0"], obj["1"]
            if kernel.dtype == np.int8 and len(kernel.shape) == 2 and len(scale.shape) >= 1:
                modes.add("int8" if kernel.shape[-1] == scale.shape[-1] else "int4")

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    if len(modes) > 1:
        raise ValueError(f"{path.name} mixes int8 and int4 layers ({sorted(modes)})")
    return modes.pop() if modes else None


def load_quantized(config_or_model_factory, path: Path | str, mode: str | None = None):
    """Rebuild a quantized GPT from a quantized ``.weights.h5``: build, quantize, then load.

    Lesson 15 §3. The order matters: a quantized file holds int8 codes and scales, which only a
    model quantized the same way has variables for, so the model is quantized (`quantize_gpt`)
    *before* ``load_weights`` (Keras' own error for a float model, "Layer 'wk' expected 1
    variables, but received 0", does not say so). ``config_or_model_factory`` is a ``ModelConfig``
    (``BABY_GPT``) or a callable returning a built float `GPT`; ``mode`` defaults to the one the
    file holds (`quantized_file_mode`) and must agree with it. Returns the quantized model.
    """
    path = Path(path)
    saved_mode = quantized_file_mode(path)
    if saved_mode is None:
        raise ValueError(
            f"{path.name} holds float weights, not quantized ones: load it with load_checkpoint "
            "or model.load_weights (and quantize afterwards with quantize_gpt)"
        )
    if mode is None:
        mode = saved_mode
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"mode must be one of {QUANTIZE_MODES}, got {mode!r}")
    if mode != saved_mode:
        raise ValueError(f"{path.name} holds {saved_mode} weights, but mode={mode!r} was asked")
    if hasattr(config_or_model_factory, "build") and not isinstance(config_or_model_factory, type):
        model = config_or_model_factory.build()
    elif callable(config_or_model_factory):
        model = config_or_model_factory()
    else:
        raise TypeError(
            "config_or_model_factory must be a ModelConfig or a callable returning a built GPT, "
            f"got {describe(config_or_model_factory)}"
        )
    _check_gpt(model, "the model built by config_or_model_factory")
    quantize_gpt(model, mode)
    try:
        model.load_weights(path)
    except ValueError as e:
        raise ValueError(
            f"{path.name} does not fit this {mode}-quantized model (saved from another "
            f"configuration?); Keras says: {str(e).splitlines()[0]}"
        ) from None
    return model


def refuse_quantized_file(path: Path | str) -> None:
    """Raise a clear ValueError if ``path`` holds quantized weights (for loaders of float models).

    Lesson 15 §3: ``model.load_weights`` of a quantized file into a float model fails deep in
    Keras ("Layer 'wk' expected 1 variables, but received 0"); `load_quantized` is the way to
    read such a file back.
    """
    mode = quantized_file_mode(path)
    if mode is not None:
        raise ValueError(
            f"{Path(path).name} holds {mode}-quantized weights: a float model has no variables "
            "for its codes and scales. Load it with load_quantized(config, path) (it "
            "quantizes the model before load_weights)"
        )


# --- LiteRT: a deployable int8 model (lesson 15 §4) ----------------------------------------------
@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence stdout and stderr, Python's and the C++ libraries' (file descriptors 1 and 2).

    The TFLite converter's MLIR passes and the SavedModel writer print to the descriptors directly
    (not through TF's logging, which ``lessons_lib.setup`` silences), so a notebook cell would show
    stderr output; this sends it to /dev/null for the conversion only.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _windows(ids, max_len: int, what: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must hold integer token ids, got {describe(arr)}")
    if arr.ndim != 2 or arr.shape[1] != max_len or arr.shape[0] == 0:
        raise ValueError(f"{what} must have shape [n ≥ 1, {max_len}], got shape {arr.shape}")
    return arr.astype(np.int32)


def export_litert(
    model,
    path: Path | str,
    mode: str = "float32",
    batch_size: int = 32,
    representative=None,
) -> Path:
    """Export a float `GPT` to a LiteRT (``.tflite``) file; lesson 15 §4.

    ``model.export(path, format="litert")`` with a fixed input ``int32 [batch_size, max_len]`` and
    float32 logits out. ``mode``: ``"float32"`` (no quantization), ``"dynamic_int8"`` (dynamic
    range: int8 weights, activations quantized on the fly per batch, ``optimizations=[DEFAULT]``),
    ``"full_int8"`` (int8 weights and activations with fixed scales calibrated on
    ``representative``, an int32 array of windows ``[n, max_len]``, which the other modes ignore;
    float kept where an op has no int8 kernel). The conversion's console output is silenced
    (`_quiet`). Returns the path.
    """
    from lessons_lib._backend import tf

    _check_gpt(model)
    if quantized_layers(model):
        raise ValueError(
            "model is quantized by Keras: export the float model (LiteRT quantizes it itself)"
        )
    if mode not in LITERT_MODES:
        raise ValueError(f"mode must be one of {LITERT_MODES}, got {mode!r}")
    batch_size = positive_int(batch_size, "batch_size")
    path = Path(path)
    if path.suffix != ".tflite":
        raise ValueError(f"path must end with .tflite, got {path.name!r}")
    kwargs: dict[str, Any] = {}
    if mode != "float32":
        kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if mode == "full_int8":
        if representative is None:
            raise ValueError(
                'mode="full_int8" needs representative windows (int32 [n, max_len]) to calibrate '
                "the activation scales"
            )
        rep = _windows(representative, model.max_len, "representative")
        n = -(-len(rep) // batch_size) * batch_size
        rep = np.concatenate([rep, rep[: n - len(rep)]]) if n > len(rep) else rep
        rep = np.resize(rep, (n, model.max_len)).astype(np.int32)

        def dataset():
            for i in range(0, n, batch_size):
                yield [rep[i : i + batch_size]]

        kwargs["representative_dataset"] = dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():
        model.export(
            str(path),
            format="litert",
            input_signature=[tf.TensorSpec([batch_size, model.max_len], tf.int32)],
            verbose=False,
            **kwargs,
        )
    return path


class LiteRTModel:
    """Runs an exported ``.tflite`` GPT with ``ai_edge_litert``'s interpreter; lesson 15 §4.

    ``lite(ids [n, max_len]) → logits [n, max_len, vocab]`` (NumPy float32) for any number of
    windows: they go through in batches of the file's fixed ``batch_size``, the last one padded
    (with copies of its last window) and the padding dropped. ``.bytes`` is the file's size,
    ``.path`` its path, ``.max_len`` and ``.vocab_size`` the model's sizes. No TensorFlow needed.

    ``num_threads`` defaults to the cores this process may use: the interpreter's own default is
    one thread, which on 2 cores runs the baby GPT about half as fast (measured: 45 ms against
    24 ms for a dynamic-range int8 batch of 32 × 64 tokens).
    """

    def __init__(self, path: Path | str, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(
                f"LiteRT model {self.path} not found (export_litert writes one)"
            )
        if num_threads is None:
            num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            num_threads = num_threads or os.cpu_count() or 1
        num_threads = positive_int(num_threads, "num_threads")
        self.num_threads = num_threads
        with _quiet():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        self._input, self._output = inp["index"], out["index"]
        self.batch_size, self.max_len = (int(s) for s in inp["shape"])
        self.vocab_size = int(out["shape"][-1])
        self.bytes = self.path.stat().st_size

    def __call__(self, ids) -> np.ndarray:
        x = _windows(ids, self.max_len, "ids")
        n, b = len(x), self.batch_size
        out = []
        for i in range(0, n, b):
            xb = x[i : i + b]
            m = len(xb)
            if m < b:
                xb = np.concatenate([xb, np.repeat(xb[-1:], b - m, axis=0)])
            self._interpreter.set_tensor(self._input, xb)
            self._interpreter.invoke()
            out.append(np.array(self._interpreter.get_tensor(self._output)[:m], np.float32))
        return np.concatenate(out)

    def __repr__(self) -> str:
        return (
            f"LiteRTModel({self.path.name!r}, batch_size={self.batch_size}, bytes={self.bytes}, "
            f"num_threads={self.num_threads})"
        )


def litert_loss(lite: LiteRTModel, data, max_windows: int | None = None) -> float:
    """Mean next-token loss of a `LiteRTModel` over ``training.evaluation_windows`` (lesson 15 §4).

    The same windows and the same mean as ``training.evaluate_loss`` (per-window mean cross-entropy
    −log softmax(logits)[target], then the mean over windows), so the two figures compare.
    """
    from lessons_lib.training import evaluation_windows

    if not isinstance(lite, LiteRTModel):
        raise TypeError(f"lite must be a LiteRTModel, got {describe(lite)}")
    x, y = evaluation_windows(np.asarray(data, np.int32), lite.max_len)
    if max_windows is not None:
        max_windows = positive_int(max_windows, "max_windows")
        x, y = x[:max_windows], y[:max_windows]
    if len(x) == 0:
        raise ValueError(
            f"data has {len(data)} tokens: not enough for one window of {lite.max_len + 1}"
        )
    losses = []
    for i in range(0, len(x), lite.batch_size):
        logits = lite(x[i : i + lite.batch_size]).astype(np.float64)
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        nll = -np.take_along_axis(logp, y[i : i + lite.batch_size, :, None], axis=-1)[..., 0]
        losses.append(nll.mean(axis=-1))
    return float(np.concatenate(losses).mean())


def activation_ranges(model, ids) -> dict[str, dict[str, float]]:
    """max|x| and the 99.9th percentile of |x| at the inputs of the GPT's matmuls (lesson 15 §4).

    Full-integer quantization gives each activation tensor one int8 scale max|x| / 127
    (calibrated), so when ``ratio`` = max|x| / p99.9 is large, typical values use
    only 127 / ratio of the levels. Recorded (on ``ids [n, max_len]``, eagerly): the input of every
    Dense layer (its path), the residual stream entering each block (``"<block>/residual_in"``)
    and entering ``ln_f`` (``"ln_f/residual_in"``), and the attention scores Q Kᵀ / √d_k of each
    block (``"<block>/attn/scores"``, causal positions only) and the same scores as the model's
    tensor holds them (``"<block>/attn/masked_scores"``): blocked positions filled with −1e9
    (``attention.MASKED_SCORE``), so its max|x| is 10⁹ while its real values (``p999``,
    ``mean_abs`` taken over the causal positions) are ~10: one int8 scale for that tensor rounds
    every real score to the same level, and attention becomes uniform. Each entry: ``max_abs``,
    ``p999``, ``ratio`` (their quotient) and ``mean_abs``.
    """
    keras = _keras()
    from lessons_lib._backend import ops
    from lessons_lib.attention import MASKED_SCORE

    _check_gpt(model)
    x = _windows(ids, model.max_len, "ids")
    record: dict[str, list[np.ndarray]] = {}
    outputs: dict[str, np.ndarray] = {}

    def wrap(layer, name: str, keep_output: bool = False):
        original = layer.call

        def call(*args, **kwargs):
            record.setdefault(name, []).append(np.abs(np.asarray(args[0])).ravel())
            result = original(*args, **kwargs)
            if keep_output:
                outputs[layer.path] = np.asarray(result)
            return result

        layer.call = call
        return layer

    wrapped = []
    projections = {id(b.attn.wq) for b in model.blocks} | {id(b.attn.wk) for b in model.blocks}
    for layer in model._flatten_layers():
        if type(layer) is keras.layers.Dense:
            wrapped.append(wrap(layer, layer.path, keep_output=id(layer) in projections))
    for block in model.blocks:
        wrapped.append(wrap(block, f"{block.path}/residual_in"))
    wrapped.append(wrap(model.ln_f, "ln_f/residual_in"))
    try:
        model(ops.convert_to_tensor(x), training=False)
    finally:
        for layer in wrapped:
            del layer.call
    causal = np.tril(np.ones((x.shape[1], x.shape[1]), bool))
    masked: dict[str, np.ndarray] = {}
    for block in model.blocks:
        h = block.attn.num_heads
        q, k = (outputs[block.attn.wq.path], outputs[block.attn.wk.path])
        q = q.reshape(*q.shape[:2], h, -1).transpose(0, 2, 1, 3)
        k = k.reshape(*k.shape[:2], h, -1).transpose(0, 2, 1, 3)
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
        real = np.abs(scores[..., causal]).ravel()
        record[f"{block.path}/attn/scores"] = [real]
        masked[f"{block.path}/attn/masked_scores"] = real
    out: dict[str, dict[str, float]] = {}
    for name, values in record.items():
        a = np.concatenate(values)
        mx, p = float(a.max()), float(np.percentile(a, 99.9))
        out[name] = {
            "max_abs": mx,
            "p999": p,
            "ratio": mx / p if p > 0 else float("inf"),
            "mean_abs": float(a.mean()),
        }
    fill = abs(float(MASKED_SCORE))
    for name, real in masked.items():  # the tensor holds the fill; its typical values are `real`
        p = float(np.percentile(real, 99.9))
        out[name] = {
            "max_abs": max(fill, float(real.max())),
            "p999": p,
            "ratio": max(fill, float(real.max())) / p if p > 0 else float("inf"),
            "mean_abs": float(real.mean()),
        }
    return out
