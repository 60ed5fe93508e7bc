r"""Scaled dot-product attention and multi-head attention.

Scaled dot-product attention (Vaswani et al., 2017, eq. 1):

.. math::  \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V

with the softmax taken over each row, i.e. over the keys. Multi-head attention splits ``d_model`` into ``h`` heads
of size ``d_k = d_model / h``, attends in each head independently, concatenates the heads and projects with
:math:`W_O`:

.. math::  \mathrm{MultiHead}(X, C) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h) W_O, \quad
           \mathrm{head}_i = \mathrm{Attention}(X W_Q^{(i)}, C W_K^{(i)}, C W_V^{(i)})

where ``C = X`` for self-attention and ``C`` is another sequence (the *context*) for cross-attention.

Mask convention (the same as Keras): ``True``/1 means "this query **may attend** to this key"; ``False``/0 blocks it.
Blocked scores are replaced by a large negative number before the softmax, so they get exactly zero weight.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from lessons_lib._validate import describe, float_array, non_negative_float, positive_int

MASKED_SCORE = -1e9  # what a blocked score becomes; exp(-1e9 - max) underflows to exactly 0


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    r"""Numerically stable softmax: :math:`\mathrm{softmax}(x)_i = e^{x_i - m} / \sum_j e^{x_j - m}`, ``m = max(x)``.

    Subtracting the maximum changes nothing mathematically (it cancels) but keeps ``exp`` from overflowing.
    """
    x = float_array(x, "softmax input")
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def causal_mask(length: int) -> np.ndarray:
    """Boolean ``[length, length]`` mask, ``True`` where query ``i`` may attend to key ``j`` (``j <= i``)."""
    length = positive_int(length, "causal_mask length")
    return np.tril(np.ones((length, length), dtype=bool))


def _check_mask(mask: Any, scores_shape: tuple[int, ...]) -> np.ndarray:
    m = (
        mask.numpy()
        if hasattr(mask, "numpy") and not isinstance(mask, np.ndarray)
        else np.asarray(mask)
    )
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(
                f"mask must be boolean or 0/1 (True/1 = may attend), got values {np.unique(m)[:5]}"
            )
        m = m.astype(bool)
    try:
        np.broadcast_shapes(m.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} cannot be broadcast to the attention scores' shape {scores_shape} "
            "([..., T_q, T_k]); True/1 means 'may attend'"
        ) from None
    if np.broadcast_shapes(m.shape, scores_shape) != tuple(scores_shape):
        raise ValueError(f"mask of shape {m.shape} would enlarge the scores' shape {scores_shape}")
    return m


def scaled_dot_product_attention(
    q: Any, k: Any, v: Any, mask: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""NumPy reference of :math:`\mathrm{softmax}(Q K^\top / \sqrt{d_k})\,V` over any leading (batch, head) dims.

    Args:
        q: queries ``[..., T_q, d_k]``.
        k: keys ``[..., T_k, d_k]``.
        v: values ``[..., T_k, d_v]``.
        mask: optional, broadcastable to ``[..., T_q, T_k]``; ``True``/1 = may attend, ``False``/0 = blocked.

    Returns:
        ``(output [..., T_q, d_v], weights [..., T_q, T_k])``; each row of ``weights`` sums to 1.
    """
    q = float_array(q, "q", min_rank=2)
    k = float_array(k, "k", min_rank=2)
    v = float_array(v, "v", min_rank=2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q and k must have the same last dimension d_k: q has shape {q.shape}, k has shape {k.shape}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions T_k (second-to-last dim): "
            f"k has shape {k.shape}, v has shape {v.shape}"
        )
    try:
        np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(
            f"q, k and v must have matching leading (batch/head) dims: got {q.shape}, {k.shape}, {v.shape}"
        ) from None
    d_k = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d_k)
    if mask is not None:
        m = _check_mask(mask, scores.shape)
        scores = np.where(m, scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def _keras_mask(mask: Any, scores_rank4: tuple) -> Any:
    """Bring a user mask to ``[B or 1, H or 1, T_q, T_k]`` (bool), checking it can broadcast to the scores."""
    m = ops.convert_to_tensor(mask)
    if m.dtype != "bool":
        m = ops.cast(m, "bool") if "int" in str(m.dtype) or "float" in str(m.dtype) else m
    shape = tuple(m.shape)
    if len(shape) == 2:  # [T_q, T_k]
        m = m[None, None]
    elif len(shape) == 3:  # [B, T_q, T_k]
        m = m[:, None]
    elif len(shape) != 4:
        raise ValueError(
            f"mask must have shape [T_q, T_k], [batch, T_q, T_k] or [batch, heads, T_q, T_k], got {shape}"
        )
    for got, want, what in zip(tuple(m.shape), scores_rank4, ("batch", "heads", "T_q", "T_k")):
        if got is not None and want is not None and got not in (1, want):
            raise ValueError(
                f"mask of shape {shape} does not fit the attention scores [batch, heads, T_q, T_k] = "
                f"{tuple(scores_rank4)}: its {what} size is {got}, expected {want} (or 1)"
            )
    return m


def _causal_allowed(t_q, t_k):
    """``[1, 1, T_q, T_k]`` boolean mask, True where key ``j`` <= query ``i`` (the tensor twin of :func:`causal_mask`)."""
    return ops.tril(ops.ones((t_q, t_k), dtype="bool"))[None, None]


def check_sequence_input(x: Any, name: str, d_model: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float tensor ``[batch, T, d_model]``."""
    shape = tuple(x.shape)
    dtype = str(getattr(x, "dtype", ""))
    if "float" not in dtype:
        raise TypeError(
            f"{name} must be a float tensor [batch, T, d_model], got {describe(x)}; "
            "token ids must go through an embedding layer first"
        )
    if len(shape) != 3:
        raise ValueError(f"{name} must have rank 3 [batch, T, d_model], got shape {shape}")
    if d_model is not None and shape[-1] is not None and shape[-1] != d_model:
        raise ValueError(f"{name} last dimension must be d_model={d_model}, got shape {shape}")


@keras.saving.register_keras_serializable(package="lessons_lib")
class MultiHeadAttention(keras.layers.Layer):
    r"""Multi-head attention, written out: project, split heads, attend, concatenate, project with :math:`W_O`.

    Call as ``layer(x)`` for self-attention or ``layer(x, context)`` for cross-attention.

    Args:
        d_model: model width; the input's last dimension.
        num_heads: number of heads ``h``; ``d_model`` must be divisible by it (``d_k = d_model / h``).
        dropout: dropout rate on the attention weights (training only).
        use_bias: whether the four projections have biases.

    Call arguments:
        x: ``[batch, T_q, d_model]`` float tensor (the queries).
        context: optional ``[batch, T_k, d_model]`` (keys and values); defaults to ``x``.
        mask: optional boolean mask broadcastable to ``[batch, heads, T_q, T_k]``; ``True``/1 = may attend.
        use_causal_mask: also block keys after the query (``j > i``), as in a GPT decoder.
        return_attention: also return the weights ``[batch, heads, T_q, T_k]``.
    """

    def __init__(
        self, d_model: int, num_heads: int, dropout: float = 0.0, use_bias: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        # `mask=` is an attention mask, consumed here; declaring support keeps Keras from warning about it.
        self.supports_masking = True
        self.d_model = positive_int(d_model, "d_model")
        self.num_heads = positive_int(num_heads, "num_heads")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads: d_model={d_model}, num_heads={num_heads} "
                f"(d_model % num_heads = {d_model % num_heads})"
            )
        self.d_k = self.d_model // self.num_heads
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.use_bias = bool(use_bias)
        self.wq = keras.layers.Dense(d_model, use_bias=use_bias, name="wq")
        self.wk = keras.layers.Dense(d_model, use_bias=use_bias, name="wk")
        self.wv = keras.layers.Dense(d_model, use_bias=use_bias, name="wv")
        self.wo = keras.layers.Dense(d_model, use_bias=use_bias, name="wo")
        self.attn_dropout = keras.layers.Dropout(self.dropout)

    def build(self, x_shape, context_shape=None):
        context_shape = context_shape or x_shape
        for dense, shape in (
            (self.wq, x_shape),
            (self.wk, context_shape),
            (self.wv, context_shape),
            (self.wo, tuple(x_shape[:-1]) + (self.d_model,)),
        ):
            if not dense.built:  # a sublayer may have been called on its own already
                dense.build(shape)

    def _split_heads(self, t):  # [B, T, d_model] -> [B, h, T, d_k]
        b, n = ops.shape(t)[0], ops.shape(t)[1]
        return ops.transpose(ops.reshape(t, (b, n, self.num_heads, self.d_k)), (0, 2, 1, 3))

    def call(
        self,
        x,
        context=None,
        mask=None,
        use_causal_mask=False,
        return_attention=False,
        training=None,
    ):
        check_sequence_input(x, "x (queries)", self.d_model)
        if context is None:
            context = x
        else:
            check_sequence_input(context, "context (keys/values)", self.d_model)
            if (
                x.shape[0] is not None
                and context.shape[0] is not None
                and x.shape[0] != context.shape[0]
            ):
                raise ValueError(
                    f"x and context must have the same batch size: {tuple(x.shape)} vs {tuple(context.shape)}"
                )
        q = self._split_heads(self.wq(x))
        k = self._split_heads(self.wk(context))
        v = self._split_heads(self.wv(context))
        t_q, t_k = ops.shape(q)[2], ops.shape(k)[2]
        allowed = None
        if mask is not None:
            allowed = _keras_mask(mask, (x.shape[0], self.num_heads, x.shape[1], context.shape[1]))
        if use_causal_mask:
            causal = _causal_allowed(t_q, t_k)
            allowed = causal if allowed is None else ops.logical_and(allowed, causal)
        out, weights = self._attend(q, k, v, allowed, training)
        return (out, weights) if return_attention else out

    def _attend(self, q, k, v, allowed, training=None):
        """softmax(q kᵀ/√d_k, blocked where not `allowed`) v, heads merged and projected by W_O."""
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / ops.sqrt(
            ops.cast(self.d_k, q.dtype)
        )
        if allowed is not None:
            # float16 cannot hold -1e9 (it would become -inf, and a fully blocked row NaN)
            fill = -3e4 if scores.dtype == "float16" else MASKED_SCORE
            scores = ops.where(allowed, scores, ops.cast(fill, scores.dtype))
        # the row softmax, written out (keras.ops.softmax warns on a single key, e.g. the first decoding step)
        e = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = e / ops.sum(e, axis=-1, keepdims=True)
        heads = ops.matmul(self.attn_dropout(weights, training=training), v)  # [B, h, T_q, d_k]
        b, t_q = ops.shape(heads)[0], ops.shape(heads)[2]
        concat = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (b, t_q, self.d_model))
        return self.wo(concat), weights

    # --- incremental decoding with a key/value cache (lesson 10) -------------------------------------------
    def prefill(self, x):
        """Causal self-attention over ``x [B, T, d_model]`` that also returns its keys and values
        ``[B, heads, T, d_k]``, to start a KV cache."""
        q, k, v = (self._split_heads(d(x)) for d in (self.wq, self.wk, self.wv))
        t = ops.shape(q)[2]
        out, _ = self._attend(q, k, v, _causal_allowed(t, t))
        return out, (k, v)

    def decode_step(self, x, k_cache, v_cache, pos):
        """Attend from one new position ``x [B, 1, d_model]`` at index ``pos`` to the cached keys/values
        ``[B, heads, max_len, d_k]`` (positions ``<= pos`` only), after writing this position's own key and value
        into the cache. Returns ``(out [B, 1, d_model], (k_cache, v_cache))``. Only one query row is computed:
        that is the whole saving of the cache."""
        q, k, v = (self._split_heads(d(x)) for d in (self.wq, self.wk, self.wv))
        start = (0, 0, pos, 0)
        k_cache = ops.slice_update(k_cache, start, ops.cast(k, k_cache.dtype))
        v_cache = ops.slice_update(v_cache, start, ops.cast(v, v_cache.dtype))
        allowed = (ops.arange(ops.shape(k_cache)[2]) <= pos)[None, None, None, :]
        out, _ = self._attend(q, k_cache, v_cache, allowed)
        return out, (k_cache, v_cache)

    def compute_mask(self, x, mask=None):
        return None  # the output carries no mask: `mask` was an attention mask, not a padding mask of x

    def compute_output_shape(self, x_shape, context_shape=None):
        return x_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
        }
