"""Argument checks shared by the library, so every error names what was expected and what was given."""

from __future__ import annotations

from typing import Any

import numpy as np


def describe(x: Any) -> str:
    """A short description of a value for error messages: type, shape and dtype where it has them."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def float_array(x: Any, name: str, min_rank: int = 1) -> np.ndarray:
    """Convert ``x`` to a floating NumPy array, refusing integers, booleans, strings and too-low ranks."""
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # a tf.Tensor or a Keras variable
        x = x.numpy()
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(
            f"{name} must hold floating-point numbers, got {describe(arr)}. "
            "If these are token ids, embed them first; otherwise convert with .astype('float32')."
        )
    if arr.ndim < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}, got shape {arr.shape}")
    return arr


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_float(value: Any, name: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if v < 0 or (upper is not None and v >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be >= 0{bound}, got {value!r}")
    return v
