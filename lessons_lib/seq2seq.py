"""An encoder–decoder Transformer for translation, built from the course's blocks (lesson 13).

    H = Encoder(x)                                    (bidirectional; source padding masked)
    h⁽⁰⁾ = E_t[y_<t] + P,   h⁽ˡ⁾ = DecBlock_l(h⁽ˡ⁻¹⁾, H)   for l = 1 … L
    logits = LN_f(h⁽ᴸ⁾) E_tᵀ          P(y_t | y_<t, x) = softmax(logits_t)

(Vaswani et al., 2017, "Attention Is All You Need", §3.) The encoder is lesson 11's `Encoder`; each
decoder block is lesson 08's `TransformerBlock(cross_attention=True)`: causal self-attention over
the target, then cross-attention from the target to H, then the FFN. Three masks, each
``True`` = may attend:

* source padding ``[B, T_s]``: encoder self-attention ignores padded source keys;
* target causal ∧ padding ``[B, T_t, T_t]``: target position i sees positions j ≤ i that are real;
* cross-attention ``[B, T_t, T_s]``: every target position sees the real source tokens only (the
  source padding again, now as the keys of cross-attention).

**Teacher forcing and the label shift.** A target row is ``<bos> y₁ … yₙ <eos> <pad> …``. The
decoder reads it without its last token and predicts it without ``<bos>``:

    decoder input  = target[:, :-1] = <bos> y₁ … yₙ (<eos> <pad> …)
    labels         = target[:, 1:]  =  y₁ … yₙ <eos> (<pad> …)
    weights        = labels ≠ <pad>

so the logits at position t (which, by the causal mask, saw ``<bos> y₁ … y_t``) are scored against
y_{t+1}, and padded positions weigh 0 in the loss (`shift_targets`; `sequence_loss` averages over
the real tokens only).

**Vocabularies and the output layer.** Source and target have separate BPE vocabularies (each
trained on its own language's training text: no English token is wasted in the Spanish softmax,
and the decoder can only write target-language tokens); both put the same special tokens first
(`SEQ2SEQ_SPECIAL_TOKENS`, so ``<pad>`` is id 0 on both sides). The output layer is tied to the
target embedding by default (``logits = h E_tᵀ``; Press & Wolf, 2017; Vaswani et al., §3.4),
which saves V_t·d parameters. Vaswani et al. also shared one vocabulary between source and target;
that pays off for large related vocabularies (names and numbers copied across) and is left out here
for clarity: the encoder and decoder tables stay apart.

**Decoding with a KV cache** (lesson 13; `lessons_lib.decoding`): the source is encoded once, each
decoder block's cross-attention keys and values are computed once from H (`Decoder.prefill`), and
only the self-attention cache grows by one position per generated token (`Decoder.decode_step`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops, tf
from lessons_lib._validate import (
    checkpoint_tokens,
    describe,
    non_negative_float,
    positive_int,
    read_weights,
    token_id,
)
from lessons_lib.attention import _attention_slots, causal_mask, multi_head_attention
from lessons_lib.block import TransformerBlock, block_param_count
from lessons_lib.encoder import Encoder, encoder_forward, encoder_param_count
from lessons_lib.feedforward import _ffn_slots, feed_forward
from lessons_lib.normalization import layer_norm
from lessons_lib.positional import TokenAndPositionEmbedding, sinusoidal_positional_encoding

__all__ = [
    "SEQ2SEQ_SPECIAL_TOKENS",
    "Decoder",
    "EncoderDecoder",
    "encoder_decoder_param_count",
    "encoder_decoder_forward",
    "encode_sources",
    "encode_targets",
    "shift_targets",
    "sequence_loss",
    "save_encoder_decoder",
    "load_encoder_decoder",
]

#: The special tokens both tokenizers start with, so their ids agree on both sides: ``<pad>`` 0,
#: ``<unk>`` 1, ``<bos>`` 2, ``<eos>`` 3 (`EncoderDecoder`'s defaults).
SEQ2SEQ_SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")


def _concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array if it holds values (not a symbolic or traced tensor)."""
    if isinstance(x, keras.KerasTensor):
        return None
    if isinstance(x, tf.Tensor):
        return x.numpy() if tf.executing_eagerly() and hasattr(x, "numpy") else None
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _where(bad: np.ndarray, arr: np.ndarray, limit: int = 3) -> str:
    spots = np.argwhere(bad)[:limit]
    shown = ", ".join(f"{arr[tuple(s)]} at {list(map(int, s))}" for s in spots)
    more = int(bad.sum()) - len(spots)
    return shown + (f" and {more} more" if more > 0 else "")


def check_token_ids(
    ids: Any,
    name: str,
    vocab_size: int,
    max_len: int,
    pad_id: int | None = None,
) -> np.ndarray:
    """Token ids ``[batch, T]`` as a NumPy array, or a clear error (lesson 13 §2).

    Refuses: not 2-D, not integers, an empty batch or T = 0, ids outside ``0 … vocab_size − 1``
    (naming them and where they are, as ``[row, position]``), T > ``max_len``; with ``pad_id``
    given, also a row made only of padding (an empty sentence: cross-attention would have no key
    to attend to).
    """
    arr = _concrete(ids)
    if arr is None:
        raise TypeError(f"{name} must hold concrete token ids, got {describe(ids)}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be token ids [batch, T], got {describe(arr)}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integer token ids [batch, T], got {describe(arr)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {arr.shape}); give at least one row")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no tokens (shape {arr.shape}): an empty sentence")
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        raise ValueError(
            f"{name} holds ids out of the vocabulary (valid ids are 0..{vocab_size - 1}, "
            f"vocab_size={vocab_size}): {_where(bad, arr)} (as [row, position])"
        )
    if arr.shape[1] > max_len:
        raise ValueError(
            f"{name} has {arr.shape[1]} positions, more than the model's context "
            f"max_len={max_len}; shorten the sentences (or build the model with a larger max_len)"
        )
    if pad_id is not None:
        empty = np.flatnonzero((arr == pad_id).all(axis=1))
        if empty.size:
            raise ValueError(
                f"{name} row(s) {empty[:5].tolist()} hold only padding (pad_id={pad_id}): an empty "
                "sentence; give every row at least one token"
            )
    return arr


@keras.saving.register_keras_serializable(package="lessons_lib")
class Decoder(keras.Model):
    """The decoder of an encoder–decoder Transformer: ``ids [B, T], H [B, T_s, d] → logits``.

    Target embedding (tokens + positions), L blocks ``TransformerBlock(cross_attention=True)``
    (causal self-attention, cross-attention to the encoder's output H, FFN), a final LayerNorm
    (pre-norm only) and the output layer (tied to the target embedding unless
    ``tie_embeddings=False``). Derived in lesson 13 §2; `Decoder.prefill` and
    `Decoder.decode_step` are its KV-cache path (lesson 13 §5).

    Args:
        vocab_size, max_len, d_model, num_heads, num_layers: the sizes (``vocab_size`` is the target
            vocabulary's).
        d_ff: FFN hidden width (default ``4 * d_model``).
        norm_first: pre-norm blocks and a final LayerNorm if True; post-norm (the original paper)
            without one if False.
        activation, dropout, use_bias, positional, embeddings_initializer: as for `Encoder`.
        tie_embeddings: use the target token table as the output matrix (``logits = h Eᵀ``).
        pad_id: the padding id; a call without ``padding_mask`` masks the target keys where
            ``ids == pad_id`` (None: every position is real).

    Call arguments: ``ids [B, T]`` (T ≤ max_len), ``context [B, T_s, d_model]`` (the encoder's
    output), ``padding_mask [B, T]`` (the target's, ``True`` = real token), ``context_padding_mask
    [B, T_s]`` (the source's), ``return_attention`` (also return the self-attention weights ``[B,
    layers, heads, T, T]`` and the cross-attention weights ``[B, layers, heads, T, T_s]``).
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
        tie_embeddings: bool = True,
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
        self.tie_embeddings = bool(tie_embeddings)
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
                cross_attention=True,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.ln_f = (
            keras.layers.LayerNormalization(epsilon=1e-5, center=use_bias, name="ln_f")
            if self.norm_first
            else None
        )
        self.head = (
            None
            if self.tie_embeddings
            else keras.layers.Dense(vocab_size, use_bias=False, name="head")
        )

    def build(self, ids_shape, context_shape=None):
        hidden = tuple(ids_shape) + (self.d_model,)
        context_shape = context_shape or hidden
        if not self.embed.built:
            self.embed.build(ids_shape)
        for block in self.blocks:
            if not block.built:
                block.build(hidden, context_shape)
        for layer in (self.ln_f, self.head):
            if layer is not None and not layer.built:
                layer.build(hidden)

    def padding_mask_for(self, ids, padding_mask=None):
        """The target key padding mask: ``padding_mask`` if given, else ``ids != pad_id`` (None when
        there is neither). Lesson 13 §3."""
        if padding_mask is not None:
            return padding_mask
        if self.pad_id is None:
            return None
        return ops.not_equal(ids, self.pad_id)

    def call(
        self,
        ids,
        context,
        padding_mask=None,
        context_padding_mask=None,
        return_attention=False,
        training=None,
    ):
        """Embed the target, run every block (causal ∧ target padding; cross-attention masked by
        the source padding), then `logits`; lesson 13 §2–§3.

        Returns ``logits [B, T, vocab_size]`` (and the self- and cross-attention weights when
        ``return_attention``).
        """
        if len(ids.shape) != 2:
            raise ValueError(f"Decoder expects target ids [batch, T], got {describe(ids)}")
        mask = self.padding_mask_for(ids, padding_mask)
        x = self.embed_drop(self.embed(ids), training=training)
        w_self, w_cross = [], []
        for block in self.blocks:
            x, ws, wc = block(
                x,
                context,
                padding_mask=mask,
                context_padding_mask=context_padding_mask,
                use_causal_mask=True,
                return_attention=True,
                training=training,
            )
            w_self.append(ws)
            w_cross.append(wc)
        logits = self.logits(x)
        if return_attention:
            return logits, ops.stack(w_self, axis=1), ops.stack(w_cross, axis=1)
        return logits

    def logits(self, x):
        """The output layer: LN_f(x) E_tᵀ when tied, else LN_f(x) W_out (no LN_f post-norm).

        ``x [B, T, d_model]`` → ``[B, T, vocab_size]``. Lesson 13 §2.
        """
        h = self.ln_f(x) if self.ln_f is not None else x
        if self.head is None:
            return ops.matmul(h, ops.transpose(self.embed.embeddings))
        return self.head(h)

    # --- decoding with a KV cache (lesson 13 §5) ----------------------------------------------
    def prefill(self, ids, context, context_padding_mask=None, cache_len: int | None = None):
        """A causal pass over ``ids [B, T]`` (e.g. ``<bos>`` alone) that starts the caches.

        Each block's `TransformerBlock.prefill` returns its self-attention keys and values and the
        cross-attention keys and values of ``context`` (computed here once per source sentence;
        every later step only reads them). Returns ``(logits [B, T, V], cache, context_kv)``:
        ``cache`` a list (one per block) of ``(k, v)`` ``[B, heads, cache_len, d_k]`` (zero beyond
        T; ``cache_len`` defaults to ``max_len``), ``context_kv`` a list of ``(k_c, v_c)`` ``[B,
        heads, T_s, d_k]``. Lesson 13 §5.
        """
        cache_len = self.max_len if cache_len is None else positive_int(cache_len, "cache_len")
        if not self.built:
            self.build(tuple(ids.shape), tuple(context.shape))
        x = self.embed(ids)
        t = ops.shape(ids)[1]
        cache, context_kv = [], []
        for block in self.blocks:
            x, (k, v), ckv = block.prefill(x, context, context_padding_mask)
            pad = [[0, 0], [0, 0], [0, cache_len - t], [0, 0]]
            cache.append((ops.pad(k, pad), ops.pad(v, pad)))
            context_kv.append(ckv)
        return self.logits(x), cache, context_kv

    def decode_step(self, token, cache, pos, context_kv, context_padding_mask=None):
        """One step: ``token [B]`` at position ``pos`` → ``(logits [B, V], cache)``.

        Only the new position is computed: its self-attention key and value are written into each
        block's cache at ``pos``, it attends to positions ≤ ``pos``, and its cross-attention reads
        the ``context_kv`` from `prefill` (no projection of the source again). Lesson 13 §5.
        """
        x = self.embed(token[:, None], offset=pos)
        new_cache = []
        for block, (k, v), ckv in zip(self.blocks, cache, context_kv):
            x, kv = block.decode_step(x, k, v, pos, ckv, context_padding_mask)
            new_cache.append(kv)
        return self.logits(x)[:, 0], new_cache

    def compute_output_shape(self, ids_shape, context_shape=None):
        return tuple(ids_shape) + (self.vocab_size,)

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
            "tie_embeddings": self.tie_embeddings,
            "pad_id": self.pad_id,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="lessons_lib")
class EncoderDecoder(keras.Model):
    """Encoder–decoder Transformer: ``model(source_ids, target_in_ids) → logits [B, T_t, V_t]``.

    Derived in lesson 13 §2 (the architecture), §3 (the three masks) and §4 (the label shift and
    training with ``compile``/``fit``); decoded with a KV cache in §5 (`lessons_lib.decoding`).
    The encoder is an `Encoder`, the decoder a `Decoder`; see the module docstring for the
    equations and the choice of vocabularies.

    Args:
        source_vocab_size, target_vocab_size: the two vocabularies' sizes.
        max_len: the longest source and the longest decoder input (each ≤ max_len positions).
        d_model, num_heads: model width and heads (shared by encoder and decoder).
        num_encoder_layers, num_decoder_layers: blocks in each stack.
        d_ff, norm_first, activation, dropout, use_bias, positional, embeddings_initializer: as for
            `Encoder` (both stacks).
        tie_embeddings: output layer tied to the target embedding (default).
        pad_id, bos_id, eos_id: the special ids (the same id on both sides for ``pad_id``;
            defaults: `SEQ2SEQ_SPECIAL_TOKENS` 0, 2, 3). The source padding mask is ``source_ids
            != pad_id``, the target's ``target_ids != pad_id``; decoding starts from ``bos_id`` and
            stops at ``eos_id``.

    Call arguments: ``source_ids [B, T_s]`` and ``target_ids [B, T_t]`` (the decoder input: target
    without its last token, `shift_targets`) — or one tuple ``(source_ids, target_ids)``, which is
    how ``fit`` passes ``x``; ``return_attention`` also returns a dict of weights: ``"encoder"``
    ``[B, L_enc, heads, T_s, T_s]``, ``"decoder"`` (self) ``[B, L_dec, heads, T_t, T_t]`` and
    ``"cross"`` ``[B, L_dec, heads, T_t, T_s]``. Concrete ids (an eager call, ``fit``'s NumPy
    arrays) are checked first: empty sentences, ids outside the vocabularies and sequences longer
    than ``max_len`` are refused with a clear message.
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        max_len: int,
        d_model: int,
        num_heads: int,
        num_encoder_layers: int,
        num_decoder_layers: int,
        d_ff: int | None = None,
        norm_first: bool = True,
        activation: str = "gelu",
        dropout: float = 0.0,
        use_bias: bool = True,
        positional: str = "learned",
        tie_embeddings: bool = True,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        embeddings_initializer: Any = "uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.source_vocab_size = positive_int(source_vocab_size, "source_vocab_size")
        self.target_vocab_size = positive_int(target_vocab_size, "target_vocab_size")
        self.max_len = positive_int(max_len, "max_len")
        self.pad_id = token_id(pad_id, "pad_id", min(self.source_vocab_size, target_vocab_size))
        self.bos_id = token_id(bos_id, "bos_id", self.target_vocab_size)
        self.eos_id = token_id(eos_id, "eos_id", self.target_vocab_size)
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(
                f"pad_id, bos_id and eos_id must be three different ids, got {pad_id}, {bos_id}, "
                f"{eos_id}"
            )
        common = dict(
            max_len=max_len,
            d_model=d_model,
            num_heads=num_heads,
            d_ff=d_ff,
            norm_first=norm_first,
            activation=activation,
            dropout=dropout,
            use_bias=use_bias,
            positional=positional,
            pad_id=pad_id,
            embeddings_initializer=embeddings_initializer,
        )
        self.encoder = Encoder(
            source_vocab_size, num_layers=num_encoder_layers, name="encoder", **common
        )
        self.decoder = Decoder(
            target_vocab_size,
            num_layers=num_decoder_layers,
            tie_embeddings=tie_embeddings,
            name="decoder",
            **common,
        )
        self.d_model, self.num_heads, self.d_ff = d_model, num_heads, self.encoder.d_ff
        self.num_encoder_layers = self.encoder.num_layers
        self.num_decoder_layers = self.decoder.num_layers
        self.norm_first, self.activation = self.encoder.norm_first, activation
        self.dropout, self.use_bias = self.encoder.dropout, self.encoder.use_bias
        self.positional, self.tie_embeddings = positional, self.decoder.tie_embeddings
        self.embeddings_initializer = self.encoder.embeddings_initializer

    def _split_inputs(self, source_ids, target_ids):
        if target_ids is None and isinstance(source_ids, (tuple, list)) and len(source_ids) == 2:
            source_ids, target_ids = source_ids
        if target_ids is None:
            raise ValueError(
                "EncoderDecoder needs the source and the decoder input: call model(source_ids, "
                "target_ids), or fit(x=(source_ids, target_ids), ...)"
            )
        return source_ids, target_ids

    def build(self, source_ids_shape, target_ids_shape=None):
        if target_ids_shape is None and isinstance(source_ids_shape, (tuple, list)):
            if len(source_ids_shape) == 2 and isinstance(source_ids_shape[0], (tuple, list)):
                source_ids_shape, target_ids_shape = source_ids_shape
        target_ids_shape = target_ids_shape or source_ids_shape
        if not self.encoder.built:
            self.encoder.build(tuple(source_ids_shape))
        if not self.decoder.built:
            self.decoder.build(
                tuple(target_ids_shape), tuple(source_ids_shape) + (self.encoder.d_model,)
            )

    def check_inputs(self, source_ids, target_ids=None) -> None:
        """Refuse bad concrete ids with a clear message (symbolic tensors pass); lesson 13 §2.

        Source: ``[B, T_s]`` ids of the source vocabulary, T_s ≤ max_len, no row of only padding.
        Decoder input: ``[B, T_t]`` ids of the target vocabulary, T_t ≤ max_len, the same B.
        """
        src = None
        if _concrete(source_ids) is not None:
            src = check_token_ids(
                source_ids, "source_ids", self.source_vocab_size, self.max_len, self.pad_id
            )
        if target_ids is not None and _concrete(target_ids) is not None:
            tgt = check_token_ids(target_ids, "target_ids", self.target_vocab_size, self.max_len)
            if src is not None and len(src) != len(tgt):
                raise ValueError(
                    f"source_ids and target_ids must have one row per sentence each, got "
                    f"{len(src)} and {len(tgt)} rows"
                )

    def source_padding_mask(self, source_ids):
        """``source_ids != pad_id`` ``[B, T_s]``: the mask of the encoder's keys and of every
        cross-attention (lesson 13 §3)."""
        return ops.not_equal(source_ids, self.pad_id)

    def encode(self, source_ids, training=None, return_attention=False):
        """``H = Encoder(source_ids)`` and the source padding mask: ``(H, mask)`` (and the
        encoder's attention weights when ``return_attention``). Lesson 13 §2."""
        mask = self.source_padding_mask(source_ids)
        out = self.encoder(
            source_ids, padding_mask=mask, return_attention=return_attention, training=training
        )
        if return_attention:
            return out[0], mask, out[1]
        return out, mask

    def call(self, source_ids, target_ids=None, return_attention=False, training=None):
        """Encode the source, decode the target with cross-attention to it; lesson 13 §2–§3.

        Returns ``logits [B, T_t, target_vocab_size]`` (and the attention dict when
        ``return_attention``; see the class docstring).
        """
        source_ids, target_ids = self._split_inputs(source_ids, target_ids)
        self.check_inputs(source_ids, target_ids)
        h, mask, w_enc = self.encode(source_ids, training=training, return_attention=True)
        logits, w_self, w_cross = self.decoder(
            target_ids, h, context_padding_mask=mask, return_attention=True, training=training
        )
        if return_attention:
            return logits, {"encoder": w_enc, "decoder": w_self, "cross": w_cross}
        return logits

    # --- clear errors before Keras sees the data ------------------------------------------------
    def _check_x(self, x: Any) -> None:
        if isinstance(x, (tuple, list)) and len(x) == 2:
            if all(isinstance(a, (np.ndarray, list, tf.Tensor)) for a in x):
                self.check_inputs(np.asarray(x[0]), np.asarray(x[1]))
        elif isinstance(x, (np.ndarray, tf.Tensor)):
            raise ValueError(
                "EncoderDecoder needs x=(source_ids, target_ids), the source and the decoder "
                f"input, got one array {describe(x)}"
            )

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        """Keras' ``fit`` with ``x=(source_ids, decoder_input)``, ``y=labels`` and
        ``sample_weight=weights`` (`shift_targets`), after checking the ids; lesson 13 §4."""
        self._check_x(x)
        if isinstance(validation_data, (tuple, list)) and validation_data:
            self._check_x(validation_data[0])
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Keras' ``evaluate``, after checking the ids."""
        self._check_x(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Keras' ``predict`` (logits ``[B, T_t, V_t]``), after checking the ids."""
        self._check_x(x)
        return super().predict(x, *args, **kwargs)

    def compute_output_shape(self, source_ids_shape, target_ids_shape=None):
        if target_ids_shape is None:
            source_ids_shape, target_ids_shape = source_ids_shape
        return tuple(target_ids_shape) + (self.target_vocab_size,)

    def get_config(self) -> dict:
        return {
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            "max_len": self.max_len,
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "num_encoder_layers": self.num_encoder_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "d_ff": self.d_ff,
            "norm_first": self.norm_first,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "positional": self.positional,
            "tie_embeddings": self.tie_embeddings,
            "pad_id": self.pad_id,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "name": self.name,
        }


def encoder_decoder_param_count(
    source_vocab_size: int,
    target_vocab_size: int,
    max_len: int,
    d_model: int,
    num_encoder_layers: int,
    num_decoder_layers: int,
    d_ff: int | None = None,
    use_bias: bool = True,
    positional: str = "learned",
    norm_first: bool = True,
    tie_embeddings: bool = True,
) -> int:
    """Parameters of an `EncoderDecoder`: the `Encoder` (`encoder_param_count`) plus the decoder,
    V_t·d (+ max_len·d learned positions) + L_dec cross-attention blocks (`block_param_count`) +
    LN_f (pre-norm) (+ d·V_t untied).

    A decoder block has a second attention and a third LayerNorm: 4d² + 4d and 2d more than an
    encoder block. Lesson 13 §2.
    """
    enc = encoder_param_count(
        source_vocab_size,
        max_len,
        d_model,
        num_encoder_layers,
        d_ff,
        use_bias=use_bias,
        positional=positional,
        norm_first=norm_first,
    )
    v = positive_int(target_vocab_size, "target_vocab_size")
    d = positive_int(d_model, "d_model")
    n = positive_int(num_decoder_layers, "num_decoder_layers")
    f = positive_int(d_ff if d_ff is not None else 4 * d, "d_ff")
    dec = v * d + (max_len * d if positional == "learned" else 0)
    dec += n * block_param_count(d, f, use_bias, cross_attention=True)
    dec += (2 * d if use_bias else d) if norm_first else 0
    dec += 0 if tie_embeddings else d * v
    return enc + dec


def _ln_params(ln: Any) -> tuple[np.ndarray, np.ndarray | None, float]:
    gamma = np.asarray(ln.gamma, dtype=np.float64)
    beta = None if ln.beta is None else np.asarray(ln.beta, dtype=np.float64)
    return gamma, beta, ln.epsilon


def encoder_decoder_forward(
    model: EncoderDecoder, source_ids: Any, target_ids: Any
) -> dict[str, np.ndarray]:
    """NumPy reference of a built `EncoderDecoder`'s forward pass, from its weights (float64).

    H = `encoder_forward` of the source (keys masked where ``source_ids == pad_id``); then, per
    decoder block (pre-norm; post-norm moves each LN after its residual sum):

        h = x + MHA(LN₁(x); causal ∧ target padding)
        h = h + MHA(LN_c(h), context H; source padding)
        y = h + FFN(LN₂(h))

    with `multi_head_attention`, `layer_norm` and `feed_forward`; logits = LN_f(y) E_tᵀ (tied)
    or LN_f(y) W_out. Lesson 13 §3 checks the Keras model against it. Returns a dict:
    ``"logits"`` ``[B, T_t, V_t]``, ``"hidden"`` (H) ``[B, T_s, d]``, ``"self_weights"`` ``[B,
    L, heads, T_t, T_t]`` and ``"cross_weights"`` ``[B, L, heads, T_t, T_s]``.
    """
    if not isinstance(model, EncoderDecoder):
        raise TypeError(f"model must be a lessons_lib.EncoderDecoder, got {describe(model)}")
    if not model.built:
        raise ValueError("the model is not built: call it once on a batch first")
    src = check_token_ids(source_ids, "source_ids", model.source_vocab_size, model.max_len)
    tgt = check_token_ids(target_ids, "target_ids", model.target_vocab_size, model.max_len)
    src_mask, tgt_mask = src != model.pad_id, tgt != model.pad_id
    h = encoder_forward(model.encoder, src, padding_mask=src_mask)["hidden"]
    dec = model.decoder
    emb = dec.embed
    t = tgt.shape[1]
    x = np.asarray(emb.embeddings, dtype=np.float64)[tgt]
    if emb.scale:
        x = x * np.sqrt(dec.d_model)
    if emb.positional == "learned":
        x = x + np.asarray(emb.position_embedding.embeddings, dtype=np.float64)[:t]
    elif emb.positional == "sinusoidal":
        x = x + sinusoidal_positional_encoding(t, dec.d_model)
    causal = causal_mask(t)[None]  # [1, T, T]: a rank-3 attention pattern
    w_self, w_cross = [], []

    def attention(layer, q_in, context, mask, padding):
        w = read_weights(_attention_slots(layer))
        biases = {f"b_{c.lower()}": w[f"b_{c}"] for c in "QKVO" if f"b_{c}" in w}
        return multi_head_attention(
            q_in,
            w["W_Q"],
            w["W_K"],
            w["W_V"],
            w["W_O"],
            dec.num_heads,
            context=context,
            mask=mask,
            biases=biases or None,
            padding_mask=padding,
        )

    for block in dec.blocks:

        def ln(layer, v):
            return layer_norm(v, *_ln_params(layer)[:2], eps=layer.epsilon)

        def sublayer(v, norm, fn):
            if block.norm_first:
                out, weights = fn(ln(norm, v))
                return v + out, weights
            out, weights = fn(v)
            return ln(norm, v + out), weights

        x, ws = sublayer(x, block.ln1, lambda v: attention(block.attn, v, None, causal, tgt_mask))
        x, wc = sublayer(x, block.ln_cross, lambda v: attention(block.cross, v, h, None, src_mask))
        f = read_weights(_ffn_slots(block.ffn))
        zeros_1, zeros_2 = np.zeros(f["W_1"].shape[1]), np.zeros(dec.d_model)
        x, _ = sublayer(
            x,
            block.ln2,
            lambda v: (
                feed_forward(
                    v,
                    f["W_1"],
                    f.get("b_1", zeros_1),
                    f["W_2"],
                    f.get("b_2", zeros_2),
                    activation=block.activation,
                ),
                None,
            ),
        )
        w_self.append(ws)
        w_cross.append(wc)
    if dec.ln_f is not None:
        gamma, beta, eps = _ln_params(dec.ln_f)
        x = layer_norm(x, gamma, beta, eps=eps)
    out = (
        np.asarray(emb.embeddings, dtype=np.float64)
        if dec.head is None
        else np.asarray(dec.head.kernel, dtype=np.float64).T
    )
    return {
        "logits": x @ out.T,
        "hidden": h,
        "self_weights": np.stack(w_self, axis=1),
        "cross_weights": np.stack(w_cross, axis=1),
    }


# --------------------------------------------------------------------------------------------------
# Data: token ids, the label shift, the loss
# --------------------------------------------------------------------------------------------------
def _texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got a single str; wrap it as [text]")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    if len(texts) == 0:
        raise ValueError(f"{name} is an empty batch; give at least one sentence")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name} must hold strings, got {type(t).__name__} at position {i}")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is empty ({t!r}): there is nothing to translate")
    return list(texts)


def _special_id(tokenizer: Any, token: str) -> int:
    if token not in getattr(tokenizer, "special_tokens", ()):
        raise ValueError(
            f"the tokenizer has no special token {token!r} (its special tokens are "
            f"{getattr(tokenizer, 'special_tokens', None)!r}); train it with "
            f"special_tokens={SEQ2SEQ_SPECIAL_TOKENS!r}"
        )
    return tokenizer.token_to_id(token)


def _too_long(rows: list[list[int]], texts: list[str], limit: int, name: str, what: str) -> None:
    long = [i for i, r in enumerate(rows) if len(r) > limit]
    if long:
        i = max(long, key=lambda j: len(rows[j]))
        raise ValueError(
            f"{len(long)} of the {name} are longer than {limit} tokens {what}; the longest, "
            f"{name}[{i}] = {texts[i][:60]!r}, has {len(rows[i])}. Drop them or raise max_len "
            "(no silent truncation: a cut sentence would teach a wrong translation)"
        )


def encode_sources(
    tokenizer: Any, texts: Sequence[str], max_len: int, pad_token: str = "<pad>"
) -> np.ndarray:
    """Source sentences as encoder input: each row its tokens, right-padded to ``max_len``.

    Returns int32 ``[len(texts), max_len]``. A sentence of more than ``max_len`` tokens is refused
    (naming the longest); an empty one too. Lesson 13 §4.
    """
    texts = _texts(texts, "texts")
    max_len = positive_int(max_len, "max_len")
    pad = _special_id(tokenizer, pad_token)
    rows = [tokenizer.encode(t) for t in texts]
    _too_long(rows, texts, max_len, "texts", "(the encoder's max_len)")
    ids = np.full((len(rows), max_len), pad, dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    return ids


def encode_targets(
    tokenizer: Any,
    texts: Sequence[str],
    max_len: int,
    bos_token: str = "<bos>",
    eos_token: str = "<eos>",
    pad_token: str = "<pad>",
) -> np.ndarray:
    """Target sentences as ``<bos> tokens <eos>``, right-padded to ``max_len + 1`` columns.

    ``max_len + 1`` because `shift_targets` cuts one column off each side: the decoder input and
    the labels then have ``max_len`` columns. A sentence of more than ``max_len − 1`` tokens is
    refused (``<bos>`` + tokens must fit the decoder's ``max_len``). Returns int32 ``[len(texts),
    max_len + 1]``. Lesson 13 §4.
    """
    texts = _texts(texts, "texts")
    max_len = positive_int(max_len, "max_len")
    bos, eos = _special_id(tokenizer, bos_token), _special_id(tokenizer, eos_token)
    pad = _special_id(tokenizer, pad_token)
    rows = [tokenizer.encode(t) for t in texts]
    _too_long(rows, texts, max_len - 1, "texts", "(<bos> + tokens must fit max_len)")
    ids = np.full((len(rows), max_len + 1), pad, dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r) + 2] = [bos, *r, eos]
    return ids


def shift_targets(target_ids: Any, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label shift of teacher forcing: ``(decoder_input, labels, weights)``.

    For target rows ``<bos> y₁ … yₙ <eos> <pad> …`` ``[B, T + 1]``:

        decoder_input = target[:, :-1]     (⟨bos⟩ y₁ … yₙ …)
        labels        = target[:, 1:]      (y₁ … yₙ ⟨eos⟩ …)
        weights       = (labels ≠ pad_id)  as float32, 0 at every padded position

    so the logits at position t are scored against the token that follows it, ``<eos>`` is
    learned as the last label, and padding never counts. Derived in lesson 13 §4. Returns int32,
    int32 and float32 arrays ``[B, T]``.
    """
    arr = _concrete(target_ids)
    if (
        arr is None
        or arr.ndim != 2
        or arr.dtype == bool
        or not np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"target_ids must be integer token ids [batch, T + 1], got {describe(arr)}"
        )
    if arr.shape[0] == 0:
        raise ValueError("target_ids is an empty batch; give at least one row")
    if arr.shape[1] < 2:
        raise ValueError(
            f"target_ids needs at least 2 columns (<bos> and one label), got shape {arr.shape}"
        )
    if isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)):
        raise ValueError(f"pad_id must be an integer id, got {pad_id!r}")
    labels = arr[:, 1:].astype(np.int32)
    return arr[:, :-1].astype(np.int32), labels, (labels != pad_id).astype(np.float32)


def sequence_loss() -> Any:
    """The training loss: cross-entropy of the logits, averaged over the real target tokens.

    ``SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")``: with
    `shift_targets`'s weights w_t it is L = ∑_t w_t CE_t / ∑_t w_t. (Keras' default reduction
    divides by every position, padding included, so a batch with more padding would get a smaller
    loss for the same predictions.) Lesson 13 §4.
    """
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight", name="sequence_loss"
    )


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------
def _config(model: EncoderDecoder) -> dict:
    return {k: v for k, v in model.get_config().items() if k != "name"}


def _tokens(tokenizer: Any) -> list[str] | None:
    return None if tokenizer is None else list(tokenizer.tokens)


def save_encoder_decoder(
    model: EncoderDecoder,
    path: str | Path,
    source_tokenizer: Any = None,
    target_tokenizer: Any = None,
    metadata: dict | None = None,
) -> Path:
    """Weights to ``path`` (``.weights.h5``); configuration, the tokenizers' tokens and
    ``metadata`` (e.g. the command that made it) to ``path.json``. Lesson 13 §6;
    `load_encoder_decoder` reads both back."""
    if not isinstance(model, EncoderDecoder):
        raise TypeError(f"model must be a lessons_lib.EncoderDecoder, got {describe(model)}")
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"the path must end with .weights.h5, got {path.name!r}")
    if not model.built:
        raise ValueError("the model is not built: call it once on a batch first")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    info = {
        "config": _config(model),
        "source_tokens": _tokens(source_tokenizer),
        "target_tokens": _tokens(target_tokenizer),
        **(metadata or {}),
    }
    Path(str(path) + ".json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return path


def load_encoder_decoder(
    path: str | Path,
    model: EncoderDecoder | None = None,
    source_tokenizer: Any = None,
    target_tokenizer: Any = None,
) -> tuple[EncoderDecoder, dict]:
    """A model with the weights of ``path``; returns ``(model, metadata)``. Lesson 13 §6.

    Without ``model``, a new `EncoderDecoder` is built from ``path.json``'s configuration. With
    ``model``, its configuration must equal the checkpoint's (a checkpoint of another
    configuration is refused, naming every difference, before any weight is touched). With the
    tokenizers given, their tokens must be the ones the checkpoint recorded.
    """
    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(f"checkpoint {path} (and its {meta_path.name}) not found")
    meta = json.loads(meta_path.read_text())
    config = meta.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{meta_path} has no model configuration ('config')")
    if model is not None:
        if not isinstance(model, EncoderDecoder):
            raise TypeError(f"model must be a lessons_lib.EncoderDecoder, got {describe(model)}")
        ours = _config(model)
        diff = [
            f"{k}: checkpoint {config.get(k)!r}, model {ours.get(k)!r}"
            for k in sorted(set(config) | set(ours))
            if config.get(k) != ours.get(k)
        ]
        if diff:
            raise ValueError(
                f"{path.name} is a checkpoint of another configuration: " + "; ".join(diff)
            )
    checkpoint_tokens(path, meta.get("source_tokens"), source_tokenizer, "source vocabulary")
    checkpoint_tokens(path, meta.get("target_tokens"), target_tokenizer, "target vocabulary")
    if model is None:
        model = EncoderDecoder.from_config(config)
    if not model.built:
        ids = np.full((1, 1), model.bos_id, dtype="int32")
        model(ids, ids)
    model.load_weights(path)
    return model, meta
