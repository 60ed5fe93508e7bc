"""The Transformer block: attention and a feed-forward network, each a residual sublayer with LN.

Post-norm (the original paper, Vaswani et al., 2017; the thread's block, lesson 07 §3):

    h = LN₁(x + MHA(x)),    y = LN₂(h + FFN(h))

Pre-norm (GPT-2 and most models since; Xiong et al., 2020, show it trains without warm-up):

    h = x + MHA(LN₁(x)),    y = h + FFN(LN₂(h))

Both are derived in lesson 07 (residuals §1, LayerNorm §2, post- versus pre-norm §5) and assembled
into a GPT in lesson 08 §1. Pre-norm keeps an un-normalized "residual stream" from input to output,
so gradients reach early layers directly; the course's default is pre-norm (``norm_first=True``).
With ``cross_attention=True`` the block also attends to a context sequence between the two sublayers
(the decoder block of an encoder–decoder model).

`transformer_block` is the NumPy reference of one block, on a dict of weights named like the
thread's (``W_Q W_K W_V W_O W_1 b_1 W_2 b_2 gamma_1 beta_1 gamma_2 beta_2``, optionally ``b_Q b_K
b_V b_O``); `block_weights` reads a Keras `TransformerBlock` into that dict and
`load_block_weights` writes one into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lessons_lib._backend import keras
from lessons_lib._validate import (
    assign_weights,
    describe,
    float_array,
    non_negative_float,
    positive_int,
    read_weights,
)
from lessons_lib.attention import (
    MultiHeadAttention,
    _attention_slots,
    _require_built,
    attention_steps,
    check_sequence_input,
)
from lessons_lib.feedforward import (
    ACTIVATIONS,
    FeedForward,
    _ffn_slots,
    activation_fn,
    feed_forward,
)
from lessons_lib.normalization import layer_norm

# The names of a block's weights, in the thread's order (attention biases last: the thread has
# none).
BLOCK_WEIGHT_NAMES = (
    "W_Q",
    "W_K",
    "W_V",
    "W_O",
    "W_1",
    "b_1",
    "W_2",
    "b_2",
    "gamma_1",
    "beta_1",
    "gamma_2",
    "beta_2",
    "b_Q",
    "b_K",
    "b_V",
    "b_O",
)
# Weights of a whole model that may sit in the same dict (the thread's): the block ignores them.
MODEL_WEIGHT_NAMES = ("E", "P", "gamma_f", "beta_f")
_REQUIRED = ("W_Q", "W_K", "W_V", "W_O", "W_1", "W_2", "gamma_1", "gamma_2")


def _block_arrays(weights: Any, d_model: int) -> dict[str, np.ndarray]:
    """Check a block's weight dict against ``d_model``; its arrays as floats (absent: left out)."""
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"weights must be a dict with the keys {_REQUIRED} (and optionally the biases/betas), "
            f"got {describe(weights)}"
        )
    unknown = sorted(set(weights) - set(BLOCK_WEIGHT_NAMES) - set(MODEL_WEIGHT_NAMES))
    if unknown:
        raise ValueError(
            f"weights has unknown keys {unknown}; a block's weights are {BLOCK_WEIGHT_NAMES}"
        )
    missing = [n for n in _REQUIRED if n not in weights]
    if missing:
        raise ValueError(f"weights is missing {missing} (a block needs {_REQUIRED})")
    w = {n: float_array(weights[n], f"weights[{n!r}]") for n in BLOCK_WEIGHT_NAMES if n in weights}
    d_ff = w["W_1"].shape[-1] if w["W_1"].ndim == 2 else None
    expected = {n: (d_model, d_model) for n in ("W_Q", "W_K", "W_V", "W_O")}
    expected |= {"W_1": (d_model, d_ff), "b_1": (d_ff,), "W_2": (d_ff, d_model), "b_2": (d_model,)}
    expected |= {n: (d_model,) for n in ("gamma_1", "beta_1", "gamma_2", "beta_2")}
    expected |= {n: (d_model,) for n in ("b_Q", "b_K", "b_V", "b_O")}
    for name, arr in w.items():
        if arr.shape != expected[name]:
            want = "(d_model, d_ff)" if name == "W_1" else expected[name]
            raise ValueError(
                f"weights[{name!r}] must have shape {want} for d_model={d_model}, got {arr.shape}"
            )
    return w


def transformer_block(
    x: Any,
    weights: Mapping[str, Any],
    num_heads: int,
    norm_first: bool = True,
    activation: str = "gelu",
    mask: Any = None,
    epsilon: float = 1e-5,
    padding_mask: Any = None,
) -> dict[str, np.ndarray]:
    """NumPy reference of one Transformer block, pre-norm or post-norm, with every intermediate.

    Post-norm: h = LN₁(x + MHA(x)), y = LN₂(h + FFN(h)).
    Pre-norm:  h = x + MHA(LN₁(x)), y = h + FFN(LN₂(h)).
    MHA is `multi_head_attention`, FFN is
    `feed_forward` and LN is
    `layer_norm`. Derived in lesson 07 §3 (the thread's post-norm
    block) and §5 (pre-norm); lesson 08 §1 stacks it.

    Args:
        x: ``[T, d_model]`` or ``[batch, T, d_model]``.
        weights: a dict named like the thread's, ``W_Q W_K W_V W_O`` ``[d_model, d_model]``, ``W_1``
            ``[d_model, d_ff]``, ``W_2`` ``[d_ff, d_model]``, ``gamma_1 gamma_2`` ``[d_model]``, and
            optionally ``b_1`` ``[d_ff]``, ``b_2 beta_1 beta_2 b_Q b_K b_V b_O`` ``[d_model]``
            (absent = 0). The model-level keys ``E P gamma_f beta_f`` are ignored (so
            ``thread.weights()`` can be passed as it is); any other key is refused.
            `block_weights` reads a Keras block into this form.
        num_heads: h; it must divide d_model.
        norm_first: pre-norm if True, post-norm (the original paper, the thread) if False.
        activation: the FFN's ``"gelu"``, ``"gelu_tanh"`` or ``"relu"``.
        mask: optional attention mask (``True``/1 = may attend), e.g. ``causal_mask(T)``; shapes as
            for `multi_head_attention` (a rank-2 mask with batch == T > 1 is refused as ambiguous).
        epsilon: LayerNorm's ε.
        padding_mask: optional ``[batch, T]`` key padding, ``True``/1 = real token, ``False``/0 =
            padding (``[1, T]`` without a batch); combined with ``mask`` by ∧.

    Returns:
        A dict of float64 arrays, in this order: ``"attn_in"`` (what attention reads: LN₁(x)
        pre-norm, x post-norm); the steps of `attention_steps` (``"Q"
        … "scores" "head_outputs" "weights" "concat" "attn_out"``); ``"residual_1"`` (x +
        attn_out); ``"h1"`` (the stream the second sublayer reads: residual_1 pre-norm,
        LN₁(residual_1) post-norm); ``"ffn_in"`` (LN₂(h1) pre-norm, h1 post-norm);
        ``"ffn_hidden"`` (act(ffn_in W_1 + b_1)); ``"ffn_out"``; ``"residual_2"`` (h1 + ffn_out);
        ``"block_out"`` (residual_2 pre-norm, LN₂(residual_2) post-norm).
    """
    x = float_array(x, "x", min_rank=2)
    if x.ndim > 3:
        raise ValueError(f"x must have shape [T, d_model] or [batch, T, d_model], got {x.shape}")
    act = activation_fn(activation)
    epsilon = non_negative_float(epsilon, "epsilon")
    w = _block_arrays(weights, x.shape[-1])
    biases = {f"b_{c.lower()}": w[f"b_{c}"] for c in "QKVO" if f"b_{c}" in w}
    d_ff = w["W_1"].shape[1]
    b_1 = w.get("b_1", np.zeros(d_ff))
    b_2 = w.get("b_2", np.zeros(x.shape[-1]))

    def ln(t: np.ndarray, i: str) -> np.ndarray:
        return layer_norm(t, w[f"gamma_{i}"], w.get(f"beta_{i}"), epsilon)

    s: dict[str, np.ndarray] = {}
    s["attn_in"] = ln(x, "1") if norm_first else x
    s.update(
        attention_steps(
            s["attn_in"],
            w["W_Q"],
            w["W_K"],
            w["W_V"],
            w["W_O"],
            num_heads,
            mask=mask,
            biases=biases,
            padding_mask=padding_mask,
        )
    )
    s["residual_1"] = x + s["attn_out"]
    s["h1"] = s["residual_1"] if norm_first else ln(s["residual_1"], "1")
    s["ffn_in"] = ln(s["h1"], "2") if norm_first else s["h1"]
    s["ffn_hidden"] = act(s["ffn_in"] @ w["W_1"] + b_1)
    s["ffn_out"] = feed_forward(s["ffn_in"], w["W_1"], b_1, w["W_2"], b_2, activation=activation)
    s["residual_2"] = s["h1"] + s["ffn_out"]
    s["block_out"] = s["residual_2"] if norm_first else ln(s["residual_2"], "2")
    return s


@keras.saving.register_keras_serializable(package="lessons_lib")
class TransformerBlock(keras.layers.Layer):
    """One Transformer block, pre-norm (``norm_first=True``, default) or post-norm.

    Derived in lesson 07 (§3 post-norm on the thread, §5 pre-norm, where the block is checked
    against its formulas); lesson 08 §5 checks it against a block built from ``keras.layers``. Its
    NumPy reference is `transformer_block`.

    Args:
        d_model: model width.
        num_heads: attention heads (``d_model % num_heads == 0``).
        d_ff: hidden width of the feed-forward network (commonly ``4 * d_model``).
        norm_first: pre-norm if True, post-norm (original paper) if False.
        activation: FFN activation, ``"gelu"``, ``"gelu_tanh"`` or ``"relu"``.
        dropout: dropout on attention weights and on each sublayer's output (training only).
        use_bias: biases in the projections and the LayerNorms.
        epsilon: LayerNorm epsilon.
        cross_attention: add a cross-attention sublayer; the block must then be called as ``block(x,
            context)``.

    Call arguments: ``x [batch, T, d_model]``, optional ``context [batch, T_c, d_model]``, ``mask``
    (self-attention; ``True``/1 = may attend), ``context_mask`` (cross-attention, same convention),
    ``padding_mask [batch, T]`` (x's padding, ``True``/1 = real token),
    ``context_padding_mask [batch, T_c]`` (the context's padding, for cross-attention),
    ``use_causal_mask``, ``return_attention`` (also return the self-attention weights ``[batch,
    heads, T, T]``, and the cross-attention weights when there are some).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        norm_first: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
        use_bias: bool = True,
        epsilon: float = 1e-5,
        cross_attention: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # `mask=` is an attention mask, consumed here; declaring support keeps Keras from warning
        # about it.
        self.supports_masking = True
        self.d_model = positive_int(d_model, "d_model")
        self.num_heads = positive_int(num_heads, "num_heads")
        self.d_ff = positive_int(d_ff, "d_ff")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.norm_first = bool(norm_first)
        self.activation = activation
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.use_bias = bool(use_bias)
        self.epsilon = non_negative_float(epsilon, "epsilon")
        self.cross_attention = bool(cross_attention)
        self.attn = MultiHeadAttention(
            d_model, num_heads, dropout=dropout, use_bias=use_bias, name="attn"
        )
        self.ln1 = keras.layers.LayerNormalization(epsilon=epsilon, center=use_bias, name="ln1")
        self.ffn = FeedForward(d_model, d_ff, activation=activation, use_bias=use_bias, name="ffn")
        self.ln2 = keras.layers.LayerNormalization(epsilon=epsilon, center=use_bias, name="ln2")
        self.drop = keras.layers.Dropout(self.dropout)
        if self.cross_attention:
            self.cross = MultiHeadAttention(
                d_model, num_heads, dropout=dropout, use_bias=use_bias, name="cross"
            )
            self.ln_cross = keras.layers.LayerNormalization(
                epsilon=epsilon, center=use_bias, name="ln_cross"
            )

    def build(self, x_shape, context_shape=None):
        for layer in (self.attn, self.ln1, self.ffn, self.ln2) + (
            (self.ln_cross,) if self.cross_attention else ()
        ):
            if not layer.built:  # a sublayer may have been called on its own already
                layer.build(x_shape)
        if self.cross_attention and not self.cross.built:
            self.cross.build(x_shape, context_shape or x_shape)

    def sublayer(self, x, norm, fn, training=None):
        """One residual sublayer: x + fn(norm(x)) pre-norm, norm(x + fn(x)) post-norm.

        ``fn`` returns ``(output, weights or None)`` (attention returns its weights, the FFN None);
        dropout is applied to the output before the sum. Returns ``(result, weights)``. Derived in
        lesson 07 §1 (the residual), §3 (post-norm) and §5 (pre-norm); lesson 08 §1 uses it in
        every block.
        """
        if self.norm_first:
            out, w = fn(norm(x))
            return x + self.drop(out, training=training), w
        out, w = fn(x)
        return norm(x + self.drop(out, training=training)), w

    def call(
        self,
        x,
        context=None,
        mask=None,
        context_mask=None,
        use_causal_mask=False,
        return_attention=False,
        training=None,
        padding_mask=None,
        context_padding_mask=None,
    ):
        """Self-attention, (cross-attention,) FFN, each a `sublayer`; lesson 07 §5, 08 §1.

        ``mask`` and ``context_mask``: ``True``/1 = may attend; ``padding_mask [batch, T]`` and
        ``context_padding_mask [batch, T_c]``: ``True``/1 = real token. Returns ``y [batch, T,
        d_model]``, and the attention weights too when ``return_attention`` (see the class
        docstring).
        """
        check_sequence_input(x, "x", self.d_model)
        if context is not None and not self.cross_attention:
            raise ValueError(
                "this block was built with cross_attention=False; pass cross_attention=True to "
                "attend to a context, or call block(x) for self-attention"
            )
        if context is None and self.cross_attention:
            raise ValueError(
                "this block has a cross-attention sublayer: call it as block(x, context)"
            )
        if context_padding_mask is not None and not self.cross_attention:
            raise ValueError(
                "context_padding_mask is the padding of a cross-attention context, but this block "
                "has no cross-attention (cross_attention=False); use padding_mask for x's padding"
            )
        h, w_self = self.sublayer(
            x,
            self.ln1,
            lambda t: self.attn(
                t,
                mask=mask,
                padding_mask=padding_mask,
                use_causal_mask=use_causal_mask,
                return_attention=True,
                training=training,
            ),
            training,
        )
        w_cross = None
        if self.cross_attention:
            h, w_cross = self.sublayer(
                h,
                self.ln_cross,
                lambda t: self.cross(
                    t,
                    context,
                    mask=context_mask,
                    padding_mask=context_padding_mask,
                    return_attention=True,
                    training=training,
                ),
                training,
            )
        y, _ = self.sublayer(
            h, self.ln2, lambda t: (self.ffn(t, training=training), None), training
        )
        if not return_attention:
            return y
        return (y, w_self, w_cross) if self.cross_attention else (y, w_self)

    # --- incremental decoding (lesson 10): the same sublayers, attention using a KV cache -------
    def prefill(self, x, context=None, context_padding_mask=None):
        """Causal forward over ``x [B, T, d]``, also returning this block's keys and values.

        Returns ``(y, (k, v))``. A cross-attention block needs the ``context [B, T_c, d]`` (and
        its ``context_padding_mask [B, T_c]``) and returns ``(y, (k, v), (k_c, v_c))``: the
        context's keys and values, computed once here and passed to every `decode_step`. Lesson 10
        §5 (the KV cache); lesson 13 (the decoder's cache).
        """
        self._check_context(context, context_padding_mask, "prefill")
        h, kv = self.sublayer(x, self.ln1, self.attn.prefill, training=False)
        if not self.cross_attention:
            y, _ = self.sublayer(h, self.ln2, lambda t: (self.ffn(t), None), training=False)
            return y, kv
        context_kv = self.cross.context_cache(context)
        h, _ = self.sublayer(
            h,
            self.ln_cross,
            lambda t: self.cross.attend_to_context(t, *context_kv, context_padding_mask),
            training=False,
        )
        y, _ = self.sublayer(h, self.ln2, lambda t: (self.ffn(t), None), training=False)
        return y, kv, context_kv

    def decode_step(self, x, k_cache, v_cache, pos, context_kv=None, context_padding_mask=None):
        """One new position ``x [B, 1, d]`` at index ``pos``; returns ``(y, (k_cache, v_cache))``.

        A cross-attention block also needs ``context_kv``, the ``(k_c, v_c)`` that `prefill`
        returned (and the same ``context_padding_mask``). Lesson 10 §5 (the KV cache).
        """
        self._check_context(context_kv, context_padding_mask, "decode_step", "context_kv")
        h, kv = self.sublayer(
            x, self.ln1, lambda t: self.attn.decode_step(t, k_cache, v_cache, pos), training=False
        )
        if self.cross_attention:
            h, _ = self.sublayer(
                h,
                self.ln_cross,
                lambda t: self.cross.attend_to_context(t, *context_kv, context_padding_mask),
                training=False,
            )
        y, _ = self.sublayer(h, self.ln2, lambda t: (self.ffn(t), None), training=False)
        return y, kv

    def _check_context(self, context, padding, method: str, name: str = "context") -> None:
        """A cross-attention block must get its context; a self-attention block must not."""
        if self.cross_attention and context is None:
            raise ValueError(
                f"this block has a cross-attention sublayer: {method} needs {name} (without it "
                "the cross-attention would be skipped and the output wrong)"
            )
        if not self.cross_attention and (context is not None or padding is not None):
            raise ValueError(
                f"this block has no cross-attention (cross_attention=False): {method} takes no "
                f"{name} or context_padding_mask"
            )

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
            "d_ff": self.d_ff,
            "norm_first": self.norm_first,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "epsilon": self.epsilon,
            "cross_attention": self.cross_attention,
        }


def _block_slots(block: TransformerBlock) -> dict[str, Any]:
    """The block's variables under the thread's names (``BLOCK_WEIGHT_NAMES``); None: absent."""
    slots = {**_attention_slots(block.attn), **_ffn_slots(block.ffn)}
    for ln, i in ((block.ln1, "1"), (block.ln2, "2")):
        slots[f"gamma_{i}"] = ln.gamma
        slots[f"beta_{i}"] = ln.beta  # None for a LayerNormalization(center=False)
    return {name: slots[name] for name in BLOCK_WEIGHT_NAMES}


def _check_block(block: Any, what: str) -> None:
    if not isinstance(block, TransformerBlock):
        raise TypeError(f"{what} expects a lessons_lib.TransformerBlock, got {describe(block)}")
    if block.cross_attention:
        raise ValueError(
            f"{what} handles self-attention blocks only; this block has a cross-attention sublayer "
            "(cross_attention=True)"
        )


def block_weights(block: TransformerBlock) -> dict[str, np.ndarray]:
    """A built `TransformerBlock`'s weights, as the dict `transformer_block` takes.

    The arrays are float64 copies. Keys ``W_Q W_K W_V W_O W_1 b_1 W_2 b_2 gamma_1 beta_1 gamma_2
    beta_2 b_Q b_K b_V b_O``; without biases (``use_bias=False``) only ``W_Q W_K W_V W_O W_1 W_2
    gamma_1 gamma_2``. Kernels are ``[inputs, outputs]``, so ``x @ W_Q`` is the block's
    ``attn.wq(x)`` (lesson 05 §7, lesson 07 §5). Self-attention blocks only.
    """
    _check_block(block, "block_weights")
    _require_built(
        block, "the block", "call it once on an input, or block.build((None, None, d_model))"
    )
    return read_weights(_block_slots(block))


def load_block_weights(block: TransformerBlock, weights: Mapping[str, Any]) -> TransformerBlock:
    """Write a dict of weights, named as for `transformer_block`, into a TransformerBlock.

    An unbuilt block is built first. Every weight the block has must be given, with its exact shape,
    except the biases and LayerNorm shifts (``b_…``, ``beta_…``), which default to 0 (the thread's
    attention has no biases); a nonzero bias for a block without biases is refused, as is any
    unknown key (the model-level ``E P gamma_f beta_f`` are ignored). Nothing is written unless
    everything fits. Returns the block, so that ``y = load_block_weights(block, w)(x)`` works.
    Lesson 07 §5 loads the thread into a pre-norm block.
    """
    _check_block(block, "load_block_weights")
    if not block.built:
        block.build((None, None, block.d_model))
    assign_weights(_block_slots(block), weights, "the block", ignore=MODEL_WEIGHT_NAMES)
    return block


def block_param_count(
    d_model: int, d_ff: int, use_bias: bool = True, cross_attention: bool = False
) -> int:
    """Parameters of one block: attention 4d² (+ 4d biases), FFN 2·d·d_ff (+ d_ff + d), two
    LayerNorms 2·2d.

    Without biases, each LayerNorm has only γ (d). A cross-attention sublayer adds one more
    attention and one more LayerNorm. Derived in lesson 08 §4 (attention's 4d² in lesson 05 §6, the
    FFN's in lesson 06 §6).
    """
    d = positive_int(d_model, "d_model")
    f = positive_int(d_ff, "d_ff")
    attn = 4 * d * d + (4 * d if use_bias else 0)
    ffn = 2 * d * f + ((f + d) if use_bias else 0)
    ln = 2 * d if use_bias else d
    n_attn = 2 if cross_attention else 1
    return n_attn * (attn + ln) + ffn + ln
