r"""The Transformer block: attention and a feed-forward network, each wrapped in a residual connection and LayerNorm.

Post-norm (the original paper, Vaswani et al., 2017):

.. math::  h = \mathrm{LN}_1(x + \mathrm{MHA}(x)), \qquad y = \mathrm{LN}_2(h + \mathrm{FFN}(h))

Pre-norm (GPT-2 and most modern models; Xiong et al., 2020, show it trains without warm-up troubles):

.. math::  h = x + \mathrm{MHA}(\mathrm{LN}_1(x)), \qquad y = h + \mathrm{FFN}(\mathrm{LN}_2(h))

Pre-norm keeps an un-normalized "residual stream" from input to output, so gradients reach early layers directly;
the course's default is pre-norm (``norm_first=True``). With ``cross_attention=True`` the block also attends to a
context sequence between the two sublayers (the decoder block of an encoder–decoder model).
"""

from __future__ import annotations

import keras

from lessons_lib._validate import non_negative_float, positive_int
from lessons_lib.attention import MultiHeadAttention, check_sequence_input
from lessons_lib.feedforward import ACTIVATIONS, FeedForward


@keras.saving.register_keras_serializable(package="lessons_lib")
class TransformerBlock(keras.layers.Layer):
    """One Transformer block, pre-norm (``norm_first=True``, default) or post-norm.

    Args:
        d_model: model width.
        num_heads: attention heads (``d_model % num_heads == 0``).
        d_ff: hidden width of the feed-forward network (commonly ``4 * d_model``).
        norm_first: pre-norm if True, post-norm (original paper) if False.
        activation: FFN activation, ``"gelu"``, ``"gelu_tanh"`` or ``"relu"``.
        dropout: dropout on attention weights and on each sublayer's output (training only).
        use_bias: biases in the projections and the LayerNorms.
        epsilon: LayerNorm epsilon.
        cross_attention: add a cross-attention sublayer; the block must then be called as ``block(x, context)``.

    Call arguments: ``x [batch, T, d_model]``, optional ``context [batch, T_c, d_model]``, ``mask`` (self-attention;
    ``True``/1 = may attend), ``context_mask`` (cross-attention), ``use_causal_mask``, ``return_attention`` (also
    return the self-attention weights ``[batch, heads, T, T]``, and the cross-attention weights when there are some).
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
        # `mask=` is an attention mask, consumed here; declaring support keeps Keras from warning about it.
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

    def _sublayer(self, x, norm, fn, training):
        """Apply one residual sublayer, pre- or post-norm; ``fn`` returns (output, weights-or-None)."""
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
    ):
        check_sequence_input(x, "x", self.d_model)
        if context is not None and not self.cross_attention:
            raise ValueError(
                "this block was built with cross_attention=False; pass cross_attention=True to attend "
                "to a context, or call block(x) for self-attention"
            )
        if context is None and self.cross_attention:
            raise ValueError(
                "this block has a cross-attention sublayer: call it as block(x, context)"
            )
        h, w_self = self._sublayer(
            x,
            self.ln1,
            lambda t: self.attn(
                t,
                mask=mask,
                use_causal_mask=use_causal_mask,
                return_attention=True,
                training=training,
            ),
            training,
        )
        w_cross = None
        if self.cross_attention:
            h, w_cross = self._sublayer(
                h,
                self.ln_cross,
                lambda t: self.cross(
                    t, context, mask=context_mask, return_attention=True, training=training
                ),
                training,
            )
        y, _ = self._sublayer(
            h, self.ln2, lambda t: (self.ffn(t, training=training), None), training
        )
        if not return_attention:
            return y
        return (y, w_self, w_cross) if self.cross_attention else (y, w_self)

    # --- incremental decoding (lesson 10): the same sublayers, self-attention reading/writing a KV cache -----
    def prefill(self, x):
        """Causal forward over ``x [B, T, d]``; returns ``(y, (k, v))`` with this block's keys and values."""
        h, kv = self._sublayer(x, self.ln1, self.attn.prefill, training=False)
        y, _ = self._sublayer(h, self.ln2, lambda t: (self.ffn(t), None), training=False)
        return y, kv

    def decode_step(self, x, k_cache, v_cache, pos):
        """One new position ``x [B, 1, d]`` at index ``pos``; returns ``(y, (k_cache, v_cache))``."""
        h, kv = self._sublayer(
            x, self.ln1, lambda t: self.attn.decode_step(t, k_cache, v_cache, pos), training=False
        )
        y, _ = self._sublayer(h, self.ln2, lambda t: (self.ffn(t), None), training=False)
        return y, kv

    def compute_mask(self, x, mask=None):
        return None  # the output carries no mask: `mask` was an attention mask, not a padding mask of x

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


def block_param_count(
    d_model: int, d_ff: int, use_bias: bool = True, cross_attention: bool = False
) -> int:
    r"""Parameters of one block: attention :math:`4d^2 (+4d)`, FFN :math:`2 d\,d_{ff} (+ d_{ff} + d)`,
    two LayerNorms :math:`2 \cdot 2d` (only :math:`\gamma` without biases); a cross-attention sublayer adds an
    attention and a LayerNorm."""
    d = positive_int(d_model, "d_model")
    f = positive_int(d_ff, "d_ff")
    attn = 4 * d * d + (4 * d if use_bias else 0)
    ffn = 2 * d * f + ((f + d) if use_bias else 0)
    ln = 2 * d if use_bias else d
    n_attn = 2 if cross_attention else 1
    return n_attn * (attn + ln) + ffn + ln
