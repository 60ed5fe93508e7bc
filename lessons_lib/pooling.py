"""Pooling: one vector per sequence from an encoder's T vectors (lesson 11 §3).

An encoder returns ``H [batch, T, d_model]``, one vector per token; a classifier needs one vector
per message. Two ways, both derived in lesson 11 §3:

* ``[CLS]`` pooling (BERT, Devlin et al., 2019): prepend a token ``[CLS]`` to every message and
  read its vector,

      pool_cls(H) = H[:, 0]   ∈ ℝ^{batch×d_model}.

  The ``[CLS]`` position holds no word of its own; since the encoder has no causal mask, its vector
  attends to every real token of the message, and training teaches it to gather what the label
  needs.

* masked mean pooling: the average of the vectors of the real tokens only, with the padding mask
  ``m [batch, T]`` (m_t = 1 for a real token, 0 for padding),

      pool_mean(H, m) = ∑_t m_t H[:, t] / max(∑_t m_t, 1).

  The ``max(·, 1)`` keeps a fully padded row at zeros instead of 0/0 = NaN. Averaging over all T
  positions instead (no mask) would let the amount of padding change the result: lesson 11 §3
  computes by how much.

`cls_pool` and `mean_pool` are the NumPy references; `Pooling` is the Keras layer the classifier
(`lessons_lib.classifier.SequenceClassifier`) uses, checked against them in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops
from lessons_lib._validate import bool_mask, describe, float_array

__all__ = ["POOLINGS", "cls_pool", "mean_pool", "Pooling"]

#: The pooling modes, by name: ``"cls"`` reads position 0, ``"mean"`` averages the real tokens.
POOLINGS = ("cls", "mean")

_REAL_TOKEN = "True/1 = real token, False/0 = padding"


def check_pooling(pooling: Any) -> str:
    """``pooling`` if it is one of `POOLINGS`, else a ValueError naming the choices."""
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def _hidden(h: Any) -> np.ndarray:
    h = float_array(h, "h (the encoder's hidden states)")
    if h.ndim != 3:
        raise ValueError(f"h must be hidden states [batch, T, d_model], got {describe(h)}")
    if h.shape[0] == 0 or h.shape[1] == 0:
        raise ValueError(f"h must hold at least one sequence of one token, got shape {h.shape}")
    return h


def cls_pool(h: Any) -> np.ndarray:
    """``[CLS]`` pooling: pool_cls(H) = H[:, 0], the vector at position 0 (lesson 11 §3).

    Args:
        h: hidden states ``[batch, T, d_model]`` whose position 0 is the ``[CLS]`` token (what
            `lessons_lib.tokenizers.encode_texts` puts there).

    Returns:
        ``[batch, d_model]``.
    """
    return _hidden(h)[:, 0].copy()


def mean_pool(h: Any, mask: Any = None) -> np.ndarray:
    """Masked mean pooling: pool_mean(H, m) = ∑_t m_t H[:, t] / max(∑_t m_t, 1) (lesson 11 §3).

    Args:
        h: hidden states ``[batch, T, d_model]``.
        mask: the padding mask ``[batch, T]`` (``True``/1 = real token, ``False``/0 = padding);
            ``None`` counts every position as real (the plain mean over T).

    Returns:
        ``[batch, d_model]``: the mean of each row's real-token vectors; zeros for a row with no
        real token (not NaN).
    """
    h = _hidden(h)
    if mask is None:
        return h.mean(axis=1)
    m = bool_mask(mask, "mask", _REAL_TOKEN)
    if m.shape != h.shape[:2]:
        raise ValueError(
            f"mask must have shape [batch, T] = {h.shape[:2]} to go with h of shape {h.shape}, "
            f"got {m.shape}"
        )
    w = m.astype(h.dtype)[..., None]  # [batch, T, 1]
    return (w * h).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)


@keras.saving.register_keras_serializable(package="lessons_lib")
class Pooling(keras.layers.Layer):
    """Keras pooling layer: ``H [batch, T, d] → [batch, d]``, ``"cls"`` or masked ``"mean"``.

    The same equations as `cls_pool` and `mean_pool` (derived in lesson 11 §3):

        "cls":   H[:, 0]
        "mean":  ∑_t m_t H[:, t] / max(∑_t m_t, 1)

    Args:
        mode: ``"cls"`` or ``"mean"`` (see `POOLINGS`).

    Call arguments: ``h [batch, T, d_model]`` and ``padding_mask [batch, T]`` (``True``/1 = real
    token); the mask matters for ``"mean"`` only, and ``None`` there averages over all T positions.
    """

    def __init__(self, mode: str = "cls", **kwargs):
        super().__init__(**kwargs)
        self.mode = check_pooling(mode)

    def call(self, h, padding_mask=None):
        """Pool ``h`` by ``self.mode``; lesson 11 §3."""
        if len(h.shape) != 3:
            raise ValueError(
                f"Pooling expects hidden states [batch, T, d_model], got {describe(h)}"
            )
        if self.mode == "cls":
            return h[:, 0]
        if padding_mask is None:
            return ops.mean(h, axis=1)
        if tuple(padding_mask.shape) != tuple(h.shape[:2]) and None not in h.shape[:2]:
            raise ValueError(
                f"padding_mask must have shape [batch, T] = {tuple(h.shape[:2])}, "
                f"got {tuple(padding_mask.shape)}"
            )
        w = ops.expand_dims(ops.cast(padding_mask, h.dtype), -1)  # [batch, T, 1]
        return ops.sum(w * h, axis=1) / ops.maximum(ops.sum(w, axis=1), 1.0)

    def compute_output_shape(self, h_shape, padding_mask_shape=None):
        return (h_shape[0], h_shape[2])

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
