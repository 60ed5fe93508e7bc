"""Scaled dot-product attention and multi-head attention (lessons 04 and 05).

Scaled dot-product attention (Vaswani et al., 2017, eq. 1; derived in lesson 04 §1–§3):

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V

with the softmax taken over each row, i.e. over the keys. Multi-head attention (lesson 05 §2) splits
d_model into h heads of width d_k = d_model / h, attends in each head independently, concatenates
the heads and projects with W_O:

    MultiHead(X, C) = Concat(head_0, …, head_{h−1}) W_O,
    head_i = Attention(X W_Q⁽ⁱ⁾, C W_K⁽ⁱ⁾, C W_V⁽ⁱ⁾)

where W_Q⁽ⁱ⁾ is columns i·d_k … (i+1)·d_k − 1 of W_Q (heads are counted from 0), C = X for
self-attention and C is another sequence (the *context*) for cross-attention.

Mask convention (the same as Keras'): ``True``/1 means "this query **may attend** to this key";
``False``/0 blocks it. Blocked scores are replaced by a large negative number before the softmax, so
they get exactly zero weight. Key padding has its own argument, ``padding_mask [batch, T_k]``
(``True``/1 = real token, what ``pad_and_truncate`` returns); `attention_allowed` combines it with
``mask`` and the causal mask: allowed = mask ∧ padding ∧ causal. A rank-2 ``mask`` means ``[T_q,
T_k]`` and is refused where it could also be read as ``[batch, T_k]`` (batch == T_q > 1).

NumPy references: `softmax`, `causal_mask`, `scaled_dot_product_attention`,
`split_heads`, `merge_heads`, `multi_head_attention`. The Keras layer
`MultiHeadAttention` computes the same in TensorFlow; `copy_to_keras_mha` copies its
weights into ``keras.layers.MultiHeadAttention`` so that the two can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops, tf
from lessons_lib._validate import (
    bool_mask,
    describe,
    float_array,
    non_negative_float,
    numeric_array,
    positive_int,
)

MAY_ATTEND = "True/1 = may attend"  # what a mask's True means, in error messages
REAL_TOKEN = "True/1 = real token, False/0 = padding"  # ... and a padding mask's
MASKED_SCORE = -1e9  # what a blocked score becomes; exp(-1e9 - max) underflows to exactly 0


def softmax(x: Any, axis: int = -1) -> np.ndarray:
    """Stable softmax along ``axis``: softmax(x)ᵢ = e^(xᵢ − m) / ∑ⱼ e^(xⱼ − m), m = max(x).

    Subtracting the maximum changes nothing mathematically (it cancels) but keeps ``exp`` from
    overflowing. Derived in lesson 04 §2 (step 4, the row softmax); a learner writes it in lesson
    04's exercise 1.
    """
    x = float_array(x, "softmax input")
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def causal_mask(length: int) -> np.ndarray:
    """Boolean ``[length, length]`` mask, ``True`` where query i may attend to key j (j ≤ i).

    ``True`` = may attend, the convention of every mask in the course. Derived in lesson 04 §4.
    """
    length = positive_int(length, "causal_mask length")
    return np.tril(np.ones((length, length), dtype=bool))


def _mask_array(mask: Any) -> np.ndarray:
    if hasattr(mask, "numpy") and not isinstance(mask, np.ndarray):
        return mask.numpy()
    return np.asarray(mask)


def _check_mask(mask: Any, scores_shape: tuple[int, ...]) -> np.ndarray:
    m = bool_mask(_mask_array(mask), "mask", MAY_ATTEND)
    try:
        np.broadcast_shapes(m.shape, scores_shape)
    except ValueError:
        raise ValueError(
            f"mask of shape {m.shape} cannot be broadcast to the attention scores' shape "
            f"{scores_shape} ([..., T_q, T_k]); True/1 means 'may attend'"
        ) from None
    if np.broadcast_shapes(m.shape, scores_shape) != tuple(scores_shape):
        raise ValueError(f"mask of shape {m.shape} would enlarge the scores' shape {scores_shape}")
    return m


def _scores(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    return q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])


def scaled_dot_product_attention(
    q: Any, k: Any, v: Any, mask: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of softmax(Q Kᵀ / √d_k) V over any leading (batch, head) dimensions.

    Derived in lesson 04 §1–§3 (the causal mask in §4); multi-head attention uses it per head
    (lesson 05 §3.2).

    Args:
        q: queries ``[..., T_q, d_k]``.
        k: keys ``[..., T_k, d_k]``.
        v: values ``[..., T_k, d_v]``.
        mask: optional, broadcastable to ``[..., T_q, T_k]``; ``True``/1 = may attend, ``False``/0 =
            blocked.

    Returns:
        ``(output [..., T_q, d_v], weights [..., T_q, T_k])``; each row of ``weights`` sums to 1.
    """
    q = float_array(q, "q", min_rank=2)
    k = float_array(k, "k", min_rank=2)
    v = float_array(v, "v", min_rank=2)
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q and k must have the same last dimension d_k: "
            f"q has shape {q.shape}, k has shape {k.shape}"
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
            "q, k and v must have matching leading (batch/head) dims: "
            f"got {q.shape}, {k.shape}, {v.shape}"
        ) from None
    scores = _scores(q, k)
    if mask is not None:
        m = _check_mask(mask, scores.shape)
        scores = np.where(m, scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def split_heads(x: Any, num_heads: int) -> np.ndarray:
    """``[..., T, d_model] → [..., h, T, d_k]``: head i takes columns i·d_k … (i+1)·d_k − 1.

    Heads are counted from 0. A reshape to ``[..., T, h, d_k]`` followed by swapping the T and h
    axes (a reshape alone would mix tokens). Derived in lesson 05 §2 and §3.1; a learner writes it
    in lesson 05's exercise 1.
    """
    x = numeric_array(x, "x", min_rank=2)
    num_heads = positive_int(num_heads, "num_heads")
    d_model = x.shape[-1]
    if d_model % num_heads:
        raise ValueError(
            f"d_model must be divisible by num_heads: x has shape {x.shape} (d_model={d_model}), "
            f"num_heads={num_heads}"
        )
    t_h_dk = x.reshape(x.shape[:-1] + (num_heads, d_model // num_heads))
    return np.swapaxes(t_h_dk, -3, -2)


def merge_heads(x: Any) -> np.ndarray:
    """``[..., h, T, d_k] → [..., T, h·d_k]``: the heads side by side (undoes `split_heads`).

    Derived in lesson 05 §2 and §3.3; a learner writes it in lesson 05's exercise 1.
    """
    x = numeric_array(x, "x (heads)", min_rank=3)
    t_h_dk = np.swapaxes(x, -3, -2)
    return t_h_dk.reshape(t_h_dk.shape[:-2] + (x.shape[-3] * x.shape[-1],))


_BIAS_NAMES = ("b_q", "b_k", "b_v", "b_o")


def _projection(name: str, w: Any, d_model: int) -> np.ndarray:
    w = float_array(w, name)
    if w.shape != (d_model, d_model):
        raise ValueError(
            f"{name} must have shape (d_model, d_model) = ({d_model}, {d_model}), got {w.shape}"
        )
    return w


def _attention_biases(biases: Any, d_model: int) -> dict[str, np.ndarray]:
    if biases is None:
        return {}
    if not isinstance(biases, Mapping):
        raise TypeError(
            f"biases must be a dict with some of the keys {_BIAS_NAMES}, got {describe(biases)}"
        )
    unknown = sorted(set(biases) - set(_BIAS_NAMES))
    if unknown:
        raise ValueError(f"biases has unknown keys {unknown}; expected some of {_BIAS_NAMES}")
    out = {}
    for name, b in biases.items():
        b = float_array(b, f"biases[{name!r}]")
        if b.shape != (d_model,):
            raise ValueError(f"biases[{name!r}] must have shape ({d_model},), got {b.shape}")
        out[name] = b
    return out


AMBIGUOUS_MASK_HINT = (
    "pass padding_mask= ([batch, T_k], True/1 = real token) for key padding, or a "
    "[batch, T_q, T_k] or [1, T_q, T_k] mask for an attention pattern"
)


def _refuse_ambiguous_mask(shape: tuple, batch: Any, t_q: Any) -> None:
    """Refuse a rank-2 ``mask`` that could be ``[T_q, T_k]`` or a ``[batch, T_k]`` padding mask.

    The two readings have the same shape when batch == T_q (and differ unless batch == T_q == 1);
    when batch or T_q is unknown (None, at trace time) the reading cannot be decided either, so a
    rank-2 mask is refused then too.
    """
    if len(shape) != 2:
        return
    if batch is None or t_q is None or (batch == t_q and batch != 1):
        why = (
            f"batch size and T_q are both {batch}"
            if batch is not None and batch == t_q
            else f"batch size {batch} or T_q {t_q} is unknown here"
        )
        raise ValueError(
            f"mask of shape {tuple(shape)} is ambiguous: it could be [T_q, T_k] (an attention "
            f"pattern) or [batch, T_k] (key padding), because the {why}; {AMBIGUOUS_MASK_HINT}"
        )


def _padding_array(padding_mask: Any, batch: int | None, t_k: int) -> np.ndarray:
    """A ``[batch, T_k]`` padding mask (True/1 = real token) checked, as booleans."""
    m = bool_mask(_mask_array(padding_mask), "padding_mask", REAL_TOKEN)
    want = f"[batch, T_k] = [{'batch' if batch is None else batch}, {t_k}]"
    if m.ndim != 2 or (batch is not None and m.shape[0] != batch) or m.shape[1] != t_k:
        raise ValueError(
            f"padding_mask must have shape {want} (True/1 = real token, one row per sequence of "
            f"the keys), got shape {m.shape}"
        )
    return m


def _multi_head_mask(mask: Any, batched: bool, scores_shape: tuple[int, ...]) -> np.ndarray:
    """A mask [T_q, T_k], [batch, T_q, T_k] or [batch, heads, T_q, T_k], with a head axis added."""
    m = _mask_array(mask)
    if batched:
        _refuse_ambiguous_mask(m.shape, scores_shape[0], scores_shape[-2])
    if batched and m.ndim == 3:  # [B, T_q, T_k]: the same mask for every head
        m = m[:, None]
    try:
        if np.broadcast_shapes(m.shape, scores_shape) == scores_shape:
            return m
    except ValueError:
        pass
    if batched:
        expected = "[T_q, T_k], [batch, T_q, T_k] or [batch, heads, T_q, T_k]"
    else:
        expected = "[T_q, T_k] or [heads, T_q, T_k]"
    raise ValueError(
        f"mask of shape {_mask_array(mask).shape} does not fit the attention scores of shape "
        f"{scores_shape}: expected {expected} (sizes may be 1); True/1 means 'may attend'"
    )


def attention_steps(
    x: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    num_heads: int,
    context: Any = None,
    mask: Any = None,
    biases: Mapping[str, Any] | None = None,
    padding_mask: Any = None,
) -> dict[str, np.ndarray]:
    """Every intermediate of `multi_head_attention`, in order, as a dict of NumPy arrays.

    The keys are ``"Q" "K" "V"`` (projections ``[..., T, d_model]``), ``"Q_heads" "K_heads"
    "V_heads"`` (``[..., h, T, d_k]``), ``"scores"`` (Q Kᵀ / √d_k per head, before the mask),
    ``"weights"`` (after the mask and the softmax), ``"head_outputs"`` (``[..., h, T_q, d_k]``),
    ``"concat"`` (``[..., T_q, d_model]``) and ``"attn_out"`` (concat · W_O + b_O). The arguments
    are those of `multi_head_attention`. Each step is derived in lesson 05 §2 and run on the
    thread in §3.
    """
    x = float_array(x, "x", min_rank=2)
    if x.ndim > 3:
        raise ValueError(f"x must have shape [T, d_model] or [batch, T, d_model], got {x.shape}")
    batched = x.ndim == 3
    d_model = x.shape[-1]
    num_heads = positive_int(num_heads, "num_heads")
    if d_model % num_heads:
        raise ValueError(
            f"d_model must be divisible by num_heads: d_model={d_model} (x has shape {x.shape}), "
            f"num_heads={num_heads} (d_model % num_heads = {d_model % num_heads})"
        )
    if context is None:
        c = x
    else:
        c = float_array(context, "context", min_rank=2)
        if c.ndim != x.ndim or c.shape[-1] != d_model or c.shape[:-2] != x.shape[:-2]:
            raise ValueError(
                f"context must have the batch size and d_model of x: x has shape {x.shape}, "
                f"context has shape {c.shape}"
            )
    w_q, w_k, w_v, w_o = (
        _projection(n, w, d_model)
        for n, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v), ("w_o", w_o))
    )
    b = _attention_biases(biases, d_model)

    def project(t: np.ndarray, w: np.ndarray, name: str) -> np.ndarray:
        return t @ w + b[name] if name in b else t @ w

    s: dict[str, np.ndarray] = {}
    s["Q"], s["K"], s["V"] = project(x, w_q, "b_q"), project(c, w_k, "b_k"), project(c, w_v, "b_v")
    s["Q_heads"], s["K_heads"], s["V_heads"] = (split_heads(s[n], num_heads) for n in "QKV")
    s["scores"] = _scores(s["Q_heads"], s["K_heads"])
    if mask is not None:
        mask = _multi_head_mask(mask, batched, s["scores"].shape)
    if padding_mask is not None:  # [batch, T_k] → [batch, 1, 1, T_k] (or [1, T_k] unbatched)
        keys = _padding_array(padding_mask, x.shape[0] if batched else 1, c.shape[-2])
        keys = keys[:, None, None, :] if batched else keys
        mask = keys if mask is None else np.logical_and(mask, keys)
    s["head_outputs"], s["weights"] = scaled_dot_product_attention(
        s["Q_heads"], s["K_heads"], s["V_heads"], mask=mask
    )
    s["concat"] = merge_heads(s["head_outputs"])
    s["attn_out"] = project(s["concat"], w_o, "b_o")
    return s


def multi_head_attention(
    x: Any,
    w_q: Any,
    w_k: Any,
    w_v: Any,
    w_o: Any,
    num_heads: int,
    context: Any = None,
    mask: Any = None,
    biases: Mapping[str, Any] | None = None,
    padding_mask: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy reference of multi-head attention: Concat(head_0, …, head_{h−1}) W_O (+ b_O).

    Project (Q = X W_Q + b_Q, K = C W_K + b_K, V = C W_V + b_V), split into h heads, attend in each
    head (softmax(Q⁽ⁱ⁾ K⁽ⁱ⁾ᵀ / √d_k) V⁽ⁱ⁾, scaled by the head width d_k = d_model / h), merge and
    project with W_O. Derived in lesson 05 §2, run on the thread in §3; a learner writes it in
    lesson 05's exercise 2. `attention_steps` returns every intermediate.

    Args:
        x: queries' input ``[T_q, d_model]`` or ``[batch, T_q, d_model]``.
        w_q, w_k, w_v, w_o: ``[d_model, d_model]`` projections (head i = columns i·d_k … of ``w_q``,
            ``w_k``, ``w_v`` and rows i·d_k … of ``w_o``).
        num_heads: h; it must divide d_model.
        context: keys' and values' input ``[(batch,) T_k, d_model]`` for cross-attention; defaults
            to ``x``.
        mask: optional ``[T_q, T_k]``, ``[batch, T_q, T_k]`` or ``[batch, heads, T_q, T_k]``
            (without a batch: ``[heads, T_q, T_k]``); ``True``/1 = may attend. ``causal_mask(T)``
            for a decoder. With a batch, a rank-2 mask is refused when batch == T_q > 1 (it could
            be ``[batch, T_k]`` key padding): use ``padding_mask`` or ``[1, T_q, T_k]`` then.
        biases: optional dict with some of ``"b_q" "b_k" "b_v" "b_o"``, each ``[d_model]``; an
            absent bias is 0.
        padding_mask: optional ``[batch, T_k]`` (``[1, T_k]`` without a batch) key padding,
            ``True``/1 = real token, ``False``/0 = padding (for cross-attention: the context's
            keys); combined with ``mask`` by ∧, as in `attention_allowed`.

    Returns:
        ``(out [..., T_q, d_model], weights [..., h, T_q, T_k])``.
    """
    s = attention_steps(
        x,
        w_q,
        w_k,
        w_v,
        w_o,
        num_heads,
        context=context,
        mask=mask,
        biases=biases,
        padding_mask=padding_mask,
    )
    return s["attn_out"], s["weights"]


def _keras_mask(mask: Any, scores_rank4: tuple) -> Any:
    """A user mask as ``[B or 1, H or 1, T_q, T_k]`` (bool), checked to broadcast to the scores."""
    m = ops.convert_to_tensor(mask)
    if m.dtype != "bool":
        m = ops.cast(m, "bool") if "int" in str(m.dtype) or "float" in str(m.dtype) else m
    shape = tuple(m.shape)
    _refuse_ambiguous_mask(shape, scores_rank4[0], scores_rank4[2])
    if len(shape) == 2:  # [T_q, T_k]
        m = m[None, None]
    elif len(shape) == 3:  # [B, T_q, T_k]
        m = m[:, None]
    elif len(shape) != 4:
        raise ValueError(
            "mask must have shape [T_q, T_k], [batch, T_q, T_k] or [batch, heads, T_q, T_k], "
            f"got {shape}"
        )
    for got, want, what in zip(tuple(m.shape), scores_rank4, ("batch", "heads", "T_q", "T_k")):
        if got is not None and want is not None and got not in (1, want):
            hint = f"; {AMBIGUOUS_MASK_HINT}" if len(shape) == 2 else ""
            raise ValueError(
                f"mask of shape {shape} does not fit the attention scores [batch, heads, T_q, "
                f"T_k] = {tuple(scores_rank4)}: its {what} size is {got}, expected {want} (or 1)"
                f"{hint}"
            )
    return m


def _keras_padding(padding_mask: Any, batch: int | None, t_k: int | None) -> Any:
    """A ``[batch, T_k]`` padding mask (True/1 = real token) as ``[batch, 1, 1, T_k]`` bool."""
    m = ops.convert_to_tensor(padding_mask)
    dtype = keras.backend.standardize_dtype(m.dtype)
    if dtype != "bool":
        if not any(k in dtype for k in ("int", "float")):
            raise ValueError(
                f"padding_mask must be boolean or 0/1 ({REAL_TOKEN}), got dtype {dtype}"
            )
        if tf.executing_eagerly():  # the values can be read (not while tracing a graph)
            bool_mask(ops.convert_to_numpy(m), "padding_mask", REAL_TOKEN)
        m = ops.cast(m, "bool")
    shape = tuple(m.shape)
    if (
        len(shape) != 2
        or (None not in (batch, shape[0]) and shape[0] != batch)
        or (None not in (t_k, shape[1]) and shape[1] != t_k)
    ):
        raise ValueError(
            f"padding_mask must have shape [batch, T_k] = [{batch}, {t_k}] (True/1 = real token, "
            f"one row per sequence of the keys), got shape {shape}"
        )
    return m[:, None, None, :]


def attention_allowed(q, k, mask=None, padding_mask=None, use_causal_mask=False):
    """The one place where masks are combined: ``[B or 1, h or 1, T_q, T_k]`` bool, or None.

    allowed[b, h, i, j] = mask[b, h, i, j] ∧ padding_mask[b, j] ∧ (j ≤ i if use_causal_mask),
    for query i and key j, each factor present only when given (None when none is). ``q`` is
    ``[B, h, T_q, d_k]`` and ``k`` ``[B, h, T_k, d_k]`` (only their shapes are read). ``True`` =
    may attend.

    - ``mask``: an attention pattern ``[T_q, T_k]``, ``[B, T_q, T_k]`` or ``[B, h, T_q, T_k]``
      (sizes may be 1). A rank-2 mask is refused when it could also be a ``[B, T_k]`` padding mask:
      when B == T_q > 1, or when B or T_q is unknown (None, while tracing); pass ``padding_mask``
      or a ``[1, T_q, T_k]`` mask instead.
    - ``padding_mask``: ``[B, T_k]``, ``True``/1 = real token, ``False``/0 = padding; it blocks the
      padded keys for every query and head.
    - ``use_causal_mask``: block key j after query i (j > i).

    A query whose keys are all blocked (a sequence of only padding, or padding ∧ causal leaving no
    key) never gives NaN: `attend` fills blocked scores with −1e9 (−3e4 in float16), so such a row
    has equal scores and uniform weights 1/T_k, and its output is the mean of the values; it is
    meaningless, and a model ignores it (losses and pooling skip padded positions). Used by
    `MultiHeadAttention.call`; lesson 05 §8 (padding) and lesson 04 §4 (the causal mask).
    """
    scores_shape = (q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    allowed = None
    if mask is not None:
        allowed = _keras_mask(mask, scores_shape)
    if padding_mask is not None:
        keys = _keras_padding(padding_mask, scores_shape[0], scores_shape[3])
        allowed = keys if allowed is None else ops.logical_and(allowed, keys)
    if use_causal_mask:
        causal = _causal_allowed(ops.shape(q)[2], ops.shape(k)[2])
        allowed = causal if allowed is None else ops.logical_and(allowed, causal)
    return allowed


def _causal_allowed(t_q, t_k):
    """``[1, 1, T_q, T_k]`` boolean mask, True where key j ≤ query i (the twin of causal_mask)."""
    return ops.tril(ops.ones((t_q, t_k), dtype="bool"))[None, None]


def check_sequence_input(x: Any, name: str, d_model: int | None = None) -> None:
    """Raise a clear error unless ``x`` is a float tensor ``[batch, T, d_model]``.

    The input check of the Keras layers of lessons 05–08 (not derived in a lesson).
    """
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
    """Multi-head attention, written out: project, split heads, attend, concatenate, times W_O.

    The layer of lesson 05 §7 (derived in §2; checked against ``keras.layers.MultiHeadAttention`` in
    §8, through `copy_to_keras_mha`). Call as ``layer(x)`` for self-attention or ``layer(x,
    context)`` for cross-attention. Its weights: four ``Dense`` layers ``.wq .wk .wv .wo`` with
    ``[d_model, d_model]`` kernels (head i = columns i·d_k … of ``wq``, ``wk``, ``wv``).

    Args:
        d_model: model width; the input's last dimension.
        num_heads: number of heads h; d_model must be divisible by it (d_k = d_model / h).
        dropout: dropout rate on the attention weights (training only).
        use_bias: whether the four projections have biases.

    Call arguments:
        x: ``[batch, T_q, d_model]`` float tensor (the queries).
        context: optional ``[batch, T_k, d_model]`` (keys and values); defaults to ``x``.
        mask: optional boolean mask ``[T_q, T_k]``, ``[batch, T_q, T_k]`` or ``[batch, heads, T_q,
            T_k]`` (sizes may be 1); ``True``/1 = may attend. A rank-2 mask is refused when batch ==
            T_q > 1 (or either is unknown): it could be a ``[batch, T_k]`` padding mask.
        padding_mask: optional ``[batch, T_k]`` key padding (``pad_and_truncate``'s mask):
            ``True``/1 = real token, ``False``/0 = padding; for cross-attention: the context's.
        use_causal_mask: also block keys after the query (j > i), as in a GPT decoder.
        return_attention: also return the weights ``[batch, heads, T_q, T_k]``.
    """

    def __init__(
        self, d_model: int, num_heads: int, dropout: float = 0.0, use_bias: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        # `mask=` is an attention mask, consumed here; declaring support keeps Keras from warning.
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

    def split_heads(self, t):
        """``[B, T, d_model] → [B, h, T, d_k]``: the NumPy `lessons_lib.split_heads` on tensors.

        Lesson 05 §3.1.
        """
        b, n = ops.shape(t)[0], ops.shape(t)[1]
        return ops.transpose(ops.reshape(t, (b, n, self.num_heads, self.d_k)), (0, 2, 1, 3))

    def merge_heads(self, t):
        """``[B, h, T, d_k] → [B, T, d_model]``: the NumPy `lessons_lib.merge_heads` on tensors.

        Lesson 05 §3.3.
        """
        b, n = ops.shape(t)[0], ops.shape(t)[2]
        return ops.reshape(ops.transpose(t, (0, 2, 1, 3)), (b, n, self.d_model))

    def call(
        self,
        x,
        context=None,
        mask=None,
        use_causal_mask=False,
        return_attention=False,
        training=None,
        padding_mask=None,
    ):
        """Project ``x`` (and ``context``), split the heads, `attend`; lesson 05 §7.

        ``mask``: ``True``/1 = may attend; ``padding_mask [B, T_k]``: ``True``/1 = real token (see
        the class docstring for their shapes; `attention_allowed` combines them). Returns ``out
        [B, T_q, d_model]``, and the weights ``[B, h, T_q, T_k]`` too when ``return_attention``.
        """
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
                    "x and context must have the same batch size: "
                    f"{tuple(x.shape)} vs {tuple(context.shape)}"
                )
        q = self.split_heads(self.wq(x))
        k = self.split_heads(self.wk(context))
        v = self.split_heads(self.wv(context))
        allowed = attention_allowed(q, k, mask, padding_mask, use_causal_mask)
        out, weights = self.attend(q, k, v, allowed, training)
        return (out, weights) if return_attention else out

    def attend(self, q, k, v, allowed=None, training=None):
        """The attend step: weights = softmax(q kᵀ / √d_k), out = Concat(weights · v) W_O.

        ``q`` is ``[B, h, T_q, d_k]``, ``k`` and ``v`` are ``[B, h, T_k, d_k]``; ``allowed`` is a
        boolean mask broadcastable to ``[B, h, T_q, T_k]`` (``True`` = may attend; blocked scores
        get weight 0) or None. Returns ``(out [B, T_q, d_model], weights [B, h, T_q, T_k])``.
        Derived in lesson 04 §1–§4 (one head) and lesson 05 §2 (all heads); shown in lesson 05 §7.
        """
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / ops.sqrt(
            ops.cast(self.d_k, q.dtype)
        )
        if allowed is not None:
            # float16 cannot hold -1e9 (it would become -inf, and a fully blocked row NaN)
            fill = -3e4 if scores.dtype == "float16" else MASKED_SCORE
            scores = ops.where(allowed, scores, ops.cast(fill, scores.dtype))
        # the row softmax, written out (keras.ops.softmax warns on a single key)
        e = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = e / ops.sum(e, axis=-1, keepdims=True)
        heads = ops.matmul(self.attn_dropout(weights, training=training), v)  # [B, h, T_q, d_k]
        return self.wo(self.merge_heads(heads)), weights

    # --- incremental decoding with a key/value cache (lesson 10) ---------------------------------
    def prefill(self, x):
        """Causal self-attention over ``x [B, T, d_model]`` that also returns its keys and values.

        Returns ``(out [B, T, d_model], (k, v))`` with ``k``, ``v`` of shape ``[B, heads, T, d_k]``,
        to start a KV cache. Derived in lesson 10 §5 (§5.1: what is recomputed, and what is not).
        """
        q, k, v = (self.split_heads(d(x)) for d in (self.wq, self.wk, self.wv))
        t = ops.shape(q)[2]
        out, _ = self.attend(q, k, v, _causal_allowed(t, t))
        return out, (k, v)

    def decode_step(self, x, k_cache, v_cache, pos):
        """Attend from one new position to the cached keys and values; lesson 10 §5.

        ``x [B, 1, d_model]`` is the position ``pos``; its own key and value are written into the
        caches ``[B, heads, max_len, d_k]`` first, then it attends to positions ≤ ``pos`` only.
        Returns ``(out [B, 1, d_model], (k_cache, v_cache))``. Only one query row is computed: that
        is the whole saving of the cache.
        """
        q, k, v = (self.split_heads(d(x)) for d in (self.wq, self.wk, self.wv))
        start = (0, 0, pos, 0)
        k_cache = ops.slice_update(k_cache, start, ops.cast(k, k_cache.dtype))
        v_cache = ops.slice_update(v_cache, start, ops.cast(v, v_cache.dtype))
        allowed = (ops.arange(ops.shape(k_cache)[2]) <= pos)[None, None, None, :]
        out, _ = self.attend(q, k_cache, v_cache, allowed)
        return out, (k_cache, v_cache)

    def context_cache(self, context):
        """Cross-attention's keys and values ``(k, v)``, each ``[B, heads, T_c, d_k]``.

        ``context [B, T_c, d_model]`` is the encoder's output: it does not change while the decoder
        writes, so its keys and values are computed once per source sentence and every decoding
        step reads them (`attend_to_context`). Lesson 13's cached translation uses it.
        """
        check_sequence_input(context, "context (keys/values)", self.d_model)
        return self.split_heads(self.wk(context)), self.split_heads(self.wv(context))

    def attend_to_context(self, x, k, v, padding_mask=None):
        """Cross-attention from ``x [B, T_q, d_model]`` to cached keys and values of a context.

        ``k``, ``v`` come from `context_cache`; ``padding_mask [B, T_c]`` is the context's padding
        (``True`` = real token). Equals ``self(x, context, padding_mask=padding_mask)`` without
        projecting the context again. Returns ``(out [B, T_q, d_model], weights [B, h, T_q,
        T_c])``.
        """
        check_sequence_input(x, "x (queries)", self.d_model)
        q = self.split_heads(self.wq(x))
        return self.attend(q, k, v, attention_allowed(q, k, padding_mask=padding_mask))

    def compute_mask(self, x, mask=None):
        # the output carries no mask: `mask` was an attention mask, not a padding mask of x
        return None

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


def _attention_slots(layer: MultiHeadAttention, suffix: str = "") -> dict[str, Any]:
    """The layer's variables under the thread's names (``W_Q``, ``b_Q``, …); None: no biases."""
    slots: dict[str, Any] = {}
    for dense, letter in ((layer.wq, "Q"), (layer.wk, "K"), (layer.wv, "V"), (layer.wo, "O")):
        slots[f"W_{letter}{suffix}"] = dense.kernel
        slots[f"b_{letter}{suffix}"] = dense.bias if layer.use_bias else None
    return slots


def _require_built(layer: Any, what: str, how: str) -> None:
    if not layer.built:
        raise ValueError(f"{what} is not built yet (it has no weights): {how}")


def copy_to_keras_mha(ours: MultiHeadAttention, theirs: Any) -> Any:
    """Copy our `MultiHeadAttention`'s weights into a ``keras.layers.MultiHeadAttention``.

    Keras keeps the same numbers in a head-aware layout, read and written here through its public
    ``query_dense``/``key_dense``/``value_dense``/``output_dense`` layers: query/key/value kernels
    ``[d_model, h, d_k]`` and biases ``[h, d_k]``, output kernel ``[h, d_k, d_model]`` and bias
    ``[d_model]``. Because head i is columns i·d_k … of our kernels, a row-major reshape converts
    one layout into the other (lesson 05 §8). After the copy both layers give the same outputs and
    weights for the same inputs and masks (``attention_mask=`` in Keras, ``mask=`` here, ``True`` =
    may attend in both).

    Args:
        ours: a built ``lessons_lib.MultiHeadAttention``.
        theirs: a built ``keras.layers.MultiHeadAttention(num_heads=h, key_dim=d_model // h)`` (call
            it once, or ``build(query_shape, value_shape)``), with d_model-wide queries, keys and
            values and no gate. If ``ours`` has no biases, the biases of ``theirs`` are set to 0;
            the reverse is refused.

    Returns:
        ``theirs``, with the weights copied in.
    """
    if not isinstance(ours, MultiHeadAttention):
        raise TypeError(
            "copy_to_keras_mha: ours must be a lessons_lib.MultiHeadAttention, "
            f"got {describe(ours)}"
        )
    if not isinstance(theirs, keras.layers.MultiHeadAttention):
        raise TypeError(
            "copy_to_keras_mha: theirs must be a keras.layers.MultiHeadAttention, "
            f"got {describe(theirs)}"
        )
    _require_built(ours, "ours", "call it once on an input, or ours.build((None, None, d_model))")
    _require_built(
        theirs, "theirs", "call it once, e.g. theirs(x, x), or theirs.build(x.shape, x.shape)"
    )
    h, d_k, d = ours.num_heads, ours.d_k, ours.d_model
    config = theirs.get_config()
    mine = f"ours has d_model={d}, num_heads={h}, key_dim=d_k={d_k}"
    if (theirs.num_heads, theirs.key_dim, theirs.value_dim) != (h, d_k, d_k):
        raise ValueError(
            f"the layers do not match: {mine}; theirs has num_heads={theirs.num_heads}, "
            f"key_dim={theirs.key_dim}, value_dim={theirs.value_dim} "
            f"(use keras.layers.MultiHeadAttention(num_heads={h}, key_dim={d_k}))"
        )
    if config.get("use_gate"):
        raise ValueError("theirs has a gate (use_gate=True), a weight that ours does not have")
    expected = {
        "query_dense": (d, h, d_k),
        "key_dense": (d, h, d_k),
        "value_dense": (d, h, d_k),
        "output_dense": (h, d_k, d),
    }
    for name, shape in expected.items():
        got = tuple(getattr(theirs, name).kernel.shape)
        if got != shape:
            raise ValueError(
                f"the layers do not match: {mine}, so theirs.{name}.kernel must have shape "
                f"{shape}, got {got} (queries, keys, values and output must all be "
                f"d_model={d} wide)"
            )
    if ours.use_bias and not theirs.use_bias:
        raise ValueError(
            "ours has biases (use_bias=True) but theirs has none (use_bias=False): the copy would "
            "lose them; build theirs with use_bias=True"
        )
    pairs = (
        (ours.wq, theirs.query_dense, (d, h, d_k), (h, d_k)),
        (ours.wk, theirs.key_dense, (d, h, d_k), (h, d_k)),
        (ours.wv, theirs.value_dense, (d, h, d_k), (h, d_k)),
        (ours.wo, theirs.output_dense, (h, d_k, d), (d,)),
    )
    for dense, einsum, kernel_shape, bias_shape in pairs:
        einsum.kernel.assign(np.reshape(ops.convert_to_numpy(dense.kernel), kernel_shape))
        if theirs.use_bias:
            bias = ops.convert_to_numpy(dense.bias) if ours.use_bias else np.zeros(bias_shape)
            einsum.bias.assign(np.reshape(bias, bias_shape))
    return theirs
