"""A bidirectional Transformer encoder (BERT's shape) built from the course's blocks (lesson 11).

    x⁽⁰⁾ = E[ids] + P,   x⁽ˡ⁾ = Block_l(x⁽ˡ⁻¹⁾; padding) for l = 1 … L,   H = LN_f(x⁽ᴸ⁾)

The blocks are lesson 08's `TransformerBlock` with no causal mask: every token attends to every
real token of its sequence, before and after it (Devlin et al., 2019, "BERT"). What keeps padding
out is the key padding mask, ``padding_mask [batch, T]`` with ``True`` = real token: a padded key
gets weight 0 in every query's softmax, so a real position's output does not depend on how much
padding follows it (lesson 11 §2 shows what happens without it).

An encoder returns one vector per token, ``H [batch, T, d_model]``, and no prediction: the heads
that read it are lesson 11's pooling and classifier (one label per sequence), lesson 11's masked
language model (one token per masked position) and lesson 12's span head (start and end logits per
token). `encoder_forward` is the NumPy reference the tests check the Keras model against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops
from lessons_lib._validate import describe, non_negative_float, positive_int, token_id
from lessons_lib.block import TransformerBlock, block_param_count, block_weights, transformer_block
from lessons_lib.normalization import layer_norm
from lessons_lib.positional import TokenAndPositionEmbedding, sinusoidal_positional_encoding

__all__ = ["Encoder", "encoder_forward", "encoder_param_count"]


@keras.saving.register_keras_serializable(package="lessons_lib")
class Encoder(keras.Model):
    """Bidirectional Transformer encoder: ``ids [batch, T] → H [batch, T, d_model]``.

    Derived in lesson 11 §2 (why no causal mask, and the padding mask); lesson 11 §3 pools it into
    one vector per message, lesson 11 §7 pretrains it as a masked language model and lesson 12 §2
    puts a span head on it.

    Args:
        vocab_size, max_len, d_model, num_heads, num_layers: the sizes.
        d_ff: FFN hidden width (default ``4 * d_model``).
        norm_first: pre-norm blocks if True (then a final LayerNorm ``ln_f`` normalises H, as in
            GPT-2), post-norm (BERT, the original paper) if False (no final LayerNorm: each block
            already ends in one).
        activation: FFN activation, ``"gelu"`` (BERT), ``"gelu_tanh"`` or ``"relu"``.
        dropout: dropout on the embeddings, the attention weights and every sublayer (training
            only).
        use_bias: biases in projections and LayerNorms.
        positional: ``"learned"`` (BERT) or ``"sinusoidal"`` position information.
        pad_id: the padding token's id. When given, a call without ``padding_mask`` masks the
            positions where ``ids == pad_id``; without it (and without ``padding_mask``) every
            position counts as a real token.
        embeddings_initializer: initializer of the embedding tables.

    Call arguments: ``ids [batch, T]`` integer ids (T ≤ max_len); ``padding_mask [batch, T]``
    (``True``/1 = real token) overrides the one derived from ``pad_id``; ``return_attention`` also
    returns every block's weights ``[batch, layers, heads, T, T]``.
    """

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        d_ff: int | None = None,
        norm_first: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
        use_bias: bool = True,
        positional: str = "learned",
        pad_id: int | None = None,
        embeddings_initializer: Any = "uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        self.max_len = positive_int(max_len, "max_len")
        self.d_model = positive_int(d_model, "d_model")
        self.num_heads = positive_int(num_heads, "num_heads")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.d_ff = positive_int(d_ff if d_ff is not None else 4 * d_model, "d_ff")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model} and "
                f"num_heads={num_heads}"
            )
        self.norm_first = bool(norm_first)
        self.activation = activation
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.use_bias = bool(use_bias)
        self.positional = positional
        self.pad_id = None if pad_id is None else token_id(pad_id, "pad_id", self.vocab_size)
        self.embed = TokenAndPositionEmbedding(
            vocab_size,
            max_len,
            d_model,
            positional=positional,
            embeddings_initializer=embeddings_initializer,
            name="embed",
        )
        self.embeddings_initializer = self.embed.embeddings_initializer
        self.embed_drop = keras.layers.Dropout(self.dropout)
        self.blocks = [
            TransformerBlock(
                d_model,
                num_heads,
                self.d_ff,
                norm_first=norm_first,
                activation=activation,
                dropout=dropout,
                use_bias=use_bias,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.ln_f = (
            keras.layers.LayerNormalization(epsilon=1e-5, center=use_bias, name="ln_f")
            if self.norm_first
            else None
        )

    def build(self, input_shape):
        hidden = tuple(input_shape) + (self.d_model,)
        for layer, shape in [
            (self.embed, input_shape),
            *((b, hidden) for b in self.blocks),
            *([(self.ln_f, hidden)] if self.ln_f is not None else []),
        ]:
            if not layer.built:
                layer.build(shape)

    def padding_mask_for(self, ids, padding_mask=None):
        """The key padding mask a call uses: ``padding_mask`` if given, else ``ids != pad_id``.

        Returns a bool tensor ``[batch, T]`` (``True`` = real token), or ``None`` when there is
        neither a mask nor a ``pad_id`` (every position is then real). Lesson 11 §2.
        """
        if padding_mask is not None:
            return padding_mask
        if self.pad_id is None:
            return None
        return ops.not_equal(ids, self.pad_id)

    def call(self, ids, padding_mask=None, return_attention=False, training=None):
        """Embed, then every block without a causal mask, keys masked by padding; lesson 11 §2.

        Returns ``H [batch, T, d_model]``, and ``weights [batch, layers, heads, T, T]`` too when
        ``return_attention``.
        """
        if len(ids.shape) != 2:
            raise ValueError(f"Encoder expects token ids [batch, T], got {describe(ids)}")
        if ids.shape[0] == 0:
            raise ValueError("Encoder got an empty batch (ids of shape (0, T)); give at least one")
        mask = self.padding_mask_for(ids, padding_mask)
        x = self.embed_drop(self.embed(ids), training=training)
        weights = []
        for block in self.blocks:
            x, w = block(x, padding_mask=mask, return_attention=True, training=training)
            weights.append(w)
        h = self.ln_f(x) if self.ln_f is not None else x
        if return_attention:
            return h, ops.stack(weights, axis=1)
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.d_model,)

    def get_config(self) -> dict:
        return {
            "vocab_size": self.vocab_size,
            "max_len": self.max_len,
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "num_layers": self.num_layers,
            "d_ff": self.d_ff,
            "norm_first": self.norm_first,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "positional": self.positional,
            "pad_id": self.pad_id,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "name": self.name,
        }


def encoder_param_count(
    vocab_size: int,
    max_len: int,
    d_model: int,
    num_layers: int,
    d_ff: int | None = None,
    use_bias: bool = True,
    positional: str = "learned",
    norm_first: bool = True,
) -> int:
    """Parameters of an `Encoder`: V·d (+ max_len·d learned positions) + L blocks (+ LN_f).

    Each block is `block_param_count`; the final LayerNorm (pre-norm only) has 2d (d without
    biases). Lesson 11 §5 counts the classifier's encoder with it.
    """
    v = positive_int(vocab_size, "vocab_size")
    t = positive_int(max_len, "max_len")
    d = positive_int(d_model, "d_model")
    n = positive_int(num_layers, "num_layers")
    f = positive_int(d_ff if d_ff is not None else 4 * d, "d_ff")
    if positional not in TokenAndPositionEmbedding.POSITIONAL:
        raise ValueError(
            f"positional must be one of {TokenAndPositionEmbedding.POSITIONAL}, got {positional!r}"
        )
    embed = v * d + (t * d if positional == "learned" else 0)
    ln_f = (2 * d if use_bias else d) if norm_first else 0
    return embed + n * block_param_count(d, f, use_bias) + ln_f


def encoder_forward(encoder: Encoder, ids: Any, padding_mask: Any = None) -> dict[str, np.ndarray]:
    """NumPy reference of a built `Encoder`'s forward pass, from its weights (float64).

    x⁽⁰⁾ = E[ids] + P[0 … T−1]; each block is `transformer_block` with the key padding mask and no
    causal mask; H = LN_f(x⁽ᴸ⁾) for pre-norm. ``padding_mask`` defaults to what the encoder
    itself would use (``ids != pad_id`` when it has a ``pad_id``). Lesson 11 §2 checks the Keras
    encoder against it.

    Returns a dict: ``"hidden"`` ``[batch, T, d_model]`` and ``"weights"`` ``[batch, layers, heads,
    T, T]``.
    """
    if not isinstance(encoder, Encoder):
        raise TypeError(f"encoder_forward expects a lessons_lib.Encoder, got {describe(encoder)}")
    if not encoder.built:
        raise ValueError("the encoder is not built: call it once on a batch of ids first")
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integer token ids [batch, T], got {describe(ids)}")
    if ids.size and (ids.min() < 0 or ids.max() >= encoder.vocab_size):
        raise ValueError(
            f"token ids must be in [0, {encoder.vocab_size}), got min {ids.min()} and max "
            f"{ids.max()}"
        )
    t = ids.shape[1]
    if t > encoder.max_len:
        raise ValueError(f"sequence length {t} exceeds max_len={encoder.max_len}")
    if padding_mask is None and encoder.pad_id is not None:
        padding_mask = ids != encoder.pad_id
    emb = encoder.embed
    x = np.asarray(emb.embeddings, dtype=np.float64)[ids]
    if emb.scale:
        x = x * np.sqrt(encoder.d_model)
    if emb.positional == "learned":
        x = x + np.asarray(emb.position_embedding.embeddings, dtype=np.float64)[:t]
    elif emb.positional == "sinusoidal":
        x = x + sinusoidal_positional_encoding(t, encoder.d_model)
    weights = []
    for block in encoder.blocks:
        steps = transformer_block(
            x,
            block_weights(block),
            encoder.num_heads,
            norm_first=encoder.norm_first,
            activation=encoder.activation,
            epsilon=block.epsilon,
            padding_mask=padding_mask,
        )
        x = steps["block_out"]
        weights.append(steps["weights"])
    if encoder.ln_f is not None:
        gamma = np.asarray(encoder.ln_f.gamma, dtype=np.float64)
        beta = (
            np.zeros_like(gamma)
            if encoder.ln_f.beta is None
            else np.asarray(encoder.ln_f.beta, dtype=np.float64)
        )
        x = layer_norm(x, gamma, beta, eps=encoder.ln_f.epsilon)
    return {"hidden": x, "weights": np.stack(weights, axis=1)}
