"""Argument checks shared by the library, so every error names what was expected and what was given.

Not derived in a lesson: the helpers behind the clear error messages of every module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def describe(x: Any) -> str:
    """A short description of a value for errors: type, shape and dtype where it has them."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def float_array(x: Any, name: str, min_rank: int = 1) -> np.ndarray:
    """Convert ``x`` to a floating NumPy array; refuse ints, booleans, strings, too-low ranks."""
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


def numeric_array(x: Any, name: str, min_rank: int = 1) -> np.ndarray:
    """Convert ``x`` to a NumPy array of numbers (ints or floats); refuse bools, strings, low ranks.

    For functions that only move numbers around (reshapes), where integer arrays are fine.
    """
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must hold numbers, got {describe(arr)}")
    if arr.ndim < min_rank:
        raise ValueError(f"{name} must have rank >= {min_rank}, got shape {arr.shape}")
    return arr


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def token_id(value: Any, name: str, vocab_size: int) -> int:
    """A special token's id (``pad_id``, ``bos_id``, …): an int in ``[0, vocab_size)``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= value < vocab_size
    ):
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}), got {value!r}")
    return int(value)


def non_negative_float(value: Any, name: str, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if v < 0 or (upper is not None and v >= upper):
        bound = f" and < {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be >= 0{bound}, got {value!r}")
    return v


def bool_mask(m: np.ndarray, name: str, meaning: str) -> np.ndarray:
    """A mask as booleans: a boolean array as it is, an integer/float array of 0s and 1s converted.

    Anything else (other values, strings) is refused with a message naming ``name``, what True/1
    means there (``meaning``), and the dtype and values it got.
    """
    m = np.asarray(m)
    if m.dtype == bool:
        return m
    if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
        raise ValueError(
            f"{name} must be boolean or 0/1 ({meaning}), got dtype {m.dtype} with values "
            f"{np.unique(m)[:5]}"
        )
    return m.astype(bool)


def read_weights(slots: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{name: variable or None}`` → ``{name: float64 copy of its value}``, skipping the Nones."""
    return {
        name: np.array(var.numpy(), dtype=np.float64)
        for name, var in slots.items()
        if var is not None
    }


def assign_weights(
    slots: Mapping[str, Any], weights: Any, what: str, ignore: tuple[str, ...] = ()
) -> None:
    """Write ``weights`` (a dict of arrays) into ``slots``, a dict ``{name: variable or None}``.

    Everything is checked before anything is written: a key with no slot (other than those in
    ``ignore``) is refused (a typo must not pass silently), so is a wrong shape and a missing
    weight; a missing bias (``b_…``) or LayerNorm shift (``beta_…``) counts as 0, and so may a zero
    value for a slot that is None (a layer built with ``use_bias=False``).
    """
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a dict of arrays, got {describe(weights)}")
    unknown = sorted(set(weights) - set(slots) - set(ignore))
    if unknown:
        raise ValueError(
            f"weights has keys {unknown} that {what} has no place for; "
            f"its weights are {list(slots)}"
        )
    values = {}
    for name, var in slots.items():
        optional = name.startswith(("b_", "beta_"))
        if name not in weights:
            if var is not None and not optional:
                raise ValueError(
                    f"weights is missing {name!r}, which {what} needs (shape {tuple(var.shape)})"
                )
            if var is not None:
                values[name] = np.zeros(tuple(var.shape))
            continue
        value = float_array(weights[name], f"weights[{name!r}]")
        if var is None:
            if np.any(value != 0):
                raise ValueError(
                    f"{what} has no {name!r} (it was built with use_bias=False), "
                    f"but weights[{name!r}] is not zero"
                )
            continue
        if value.shape != tuple(var.shape):
            raise ValueError(
                f"weights[{name!r}] must have shape {tuple(var.shape)} to fit {what}, "
                f"got {value.shape}"
            )
        values[name] = value
    for name, value in values.items():
        slots[name].assign(value.astype(slots[name].dtype))


def checkpoint_tokens(
    path: Any, recorded: Any, tokenizer: Any, what: str = "vocabulary", hint: str = ""
) -> None:
    """Refuse a checkpoint trained with another vocabulary than ``tokenizer``'s.

    ``recorded`` is the token list the checkpoint's ``.json`` holds (``None`` or no ``tokenizer``:
    nothing to check). A model trained on other ids would read every text wrongly, so the two
    lists must be equal, id for id; the error names the first id where they differ, then
    ``hint``.
    """
    if tokenizer is None or recorded is None:
        return
    ours, theirs = list(tokenizer.tokens), list(recorded)
    if ours == theirs:
        return
    first = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
        min(len(ours), len(theirs)),
    )
    a = ours[first] if first < len(ours) else "(none)"
    b = theirs[first] if first < len(theirs) else "(none)"
    name = getattr(path, "name", str(path))
    raise ValueError(
        f"{name} was trained with another {what}: the tokenizer has {len(ours)} tokens, the "
        f"checkpoint {len(theirs)}; first difference at id {first}: {a!r} here vs {b!r} there"
        f"{hint}"
    )
