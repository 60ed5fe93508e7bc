"""A GPT-style (decoder-only) language model built from the course's pieces (lesson 08).

    x⁽⁰⁾ = E[ids] + P,   x⁽ˡ⁾ = Block_l(x⁽ˡ⁻¹⁾) for l = 1 … L,
    logits = LN_f(x⁽ᴸ⁾) W_out   (W_out = Eᵀ when tied)

Derived in lesson 08 §1 (the five equations) and §2 (final LayerNorm → logits → probabilities);
every block uses a causal mask, so position t only sees tokens 0 … t and the logits at t predict
token t + 1 (Radford et al., 2018/2019; lesson 08 §6). Lesson 09 trains it, lesson 10 generates with
it (``prefill``/``decode_step``).
"""

from __future__ import annotations

from lessons_lib._backend import keras, ops
from lessons_lib._validate import describe, non_negative_float, positive_int
from lessons_lib.block import TransformerBlock, block_param_count
from lessons_lib.positional import TokenAndPositionEmbedding


@keras.saving.register_keras_serializable(package="lessons_lib")
class GPT(keras.Model):
    """Decoder-only Transformer language model: ``ids [batch, T] → logits [batch, T, vocab_size]``.

    Derived in lesson 08 §1; its parameters are counted in §4 (`gpt_param_count`), its
    causality is checked in §6 and its attention in every layer and head is shown in §7.

    Args:
        vocab_size, max_len, d_model, num_heads, num_layers: the sizes.
        d_ff: FFN hidden width (default ``4 * d_model``).
        norm_first: pre-norm blocks (GPT-2) if True, post-norm (original paper) if False.
        activation: FFN activation.
        dropout: dropout rate everywhere (training only).
        use_bias: biases in projections and LayerNorms.
        tie_embeddings: reuse the token table ``E`` as the output matrix (``logits = h @ E.T``).
        positional: ``"learned"`` or ``"sinusoidal"`` position information.
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
        tie_embeddings: bool = True,
        positional: str = "learned",
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        self.max_len = positive_int(max_len, "max_len")
        self.d_model = positive_int(d_model, "d_model")
        self.num_heads = positive_int(num_heads, "num_heads")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.d_ff = positive_int(d_ff if d_ff is not None else 4 * d_model, "d_ff")
        self.norm_first = bool(norm_first)
        self.activation = activation
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.use_bias = bool(use_bias)
        self.tie_embeddings = bool(tie_embeddings)
        self.positional = positional
        self.embeddings_initializer = embeddings_initializer
        self.embed = TokenAndPositionEmbedding(
            vocab_size,
            max_len,
            d_model,
            positional=positional,
            embeddings_initializer=embeddings_initializer,
            name="embed",
        )
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
        self.ln_f = keras.layers.LayerNormalization(epsilon=1e-5, center=use_bias, name="ln_f")
        self.head = (
            None if tie_embeddings else keras.layers.Dense(vocab_size, use_bias=False, name="head")
        )

    def build(self, input_shape):
        hidden = tuple(input_shape) + (self.d_model,)
        for layer, shape in [
            (self.embed, input_shape),
            *((b, hidden) for b in self.blocks),
            (self.ln_f, hidden),
            *([(self.head, hidden)] if self.head is not None else []),
        ]:
            if not layer.built:  # a sublayer may have been called on its own already
                layer.build(shape)

    def call(self, ids, return_attention=False, training=None, padding_mask=None):
        """Embed, run the blocks (each with a causal mask), then `logits`; lesson 08 §1.

        ``ids [batch, T]`` integer token ids (T ≤ max_len); optional ``padding_mask [batch, T]``,
        ``True``/1 = real token, combined with the causal mask (a padded key is never attended to).
        Returns ``logits [batch, T, vocab_size]``, and the attention weights of every block
        ``[batch, layers, heads, T, T]`` too when ``return_attention``.
        """
        x = self.embed_drop(self.embed(ids), training=training)
        weights = []
        for block in self.blocks:
            x, w = block(
                x,
                padding_mask=padding_mask,
                use_causal_mask=True,
                return_attention=True,
                training=training,
            )
            weights.append(w)
        logits = self.logits(x)
        if return_attention:
            return logits, ops.stack(weights, axis=1)  # [batch, layers, heads, T, T]
        return logits

    def logits(self, x):
        """The output layer: LN_f(x) Eᵀ with tied embeddings, else LN_f(x) W_out; lesson 08 §2.

        ``x [batch, T, d_model]`` (the last block's output) → ``[batch, T, vocab_size]``. A token
        table quantized by Keras (``model.quantize("int8")``) holds integer codes and a scale per
        row: the head reads it dequantized, through the Embedding's lookup (lesson 15 §3: the
        tied-head pitfall).
        """
        h = self.ln_f(x)
        if self.head is not None:
            return self.head(h)
        table = self.embed.embeddings
        if self.embed.token_embedding.quantization_mode is not None:
            # quantized by Keras: `embeddings` holds integer codes without their scales, so read the
            # table through the layer's own lookup, which dequantizes (lesson 15 §3)
            table = self.embed.token_embedding(ops.arange(self.vocab_size, dtype="int32"))
        return ops.matmul(h, ops.transpose(table))

    # --- incremental decoding with a KV cache (lesson 10) -----------------------------------------
    def prefill(self, ids):
        """Forward over ``ids [B, T]`` also returning every block's keys and values; lesson 10 §5.

        Returns ``(logits, cache)`` with ``cache`` a list of ``(k, v)`` pairs ``[B, heads, T,
        d_k]``. Pass ``T = max_len`` (right-padded ids are fine: causality keeps padding from
        touching earlier positions) to get a cache of full size.
        """
        if not self.built:  # build through __call__ so that Keras tracks the model as built
            self(ops.zeros((1, 1), dtype="int32"))
        x = self.embed(ids)
        cache = []
        for block in self.blocks:
            x, kv = block.prefill(x)
            cache.append(kv)
        return self.logits(x), cache

    def decode_step(self, token, cache, pos):
        """One decoding step: logits ``[B, vocab]`` for ``token [B]`` at ``pos``, and the cache.

        Lesson 10 §5: only the new position is computed; its keys and values are written into the
        cache, which is returned updated.
        """
        x = self.embed(token[:, None], offset=pos)
        new_cache = []
        for block, (k, v) in zip(self.blocks, cache):
            x, kv = block.decode_step(x, k, v, pos)
            new_cache.append(kv)
        return self.logits(x)[:, 0], new_cache

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.vocab_size,)

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
            "tie_embeddings": self.tie_embeddings,
            "positional": self.positional,
            "embeddings_initializer": keras.initializers.serialize(
                self.embed.embeddings_initializer
            ),
            "name": self.name,
        }


def built_gpt(model, name: str = "model") -> GPT:
    """``model`` if it is a built `GPT`, else a TypeError or ValueError naming ``name``.

    The one check behind lesson 15's quantization, pruning and distillation functions, which need
    a model's weights to exist before they read or replace them.
    """
    if not isinstance(model, GPT):
        raise TypeError(
            f"{name} must be a lessons_lib GPT (lessons_lib.GPT), got {describe(model)}"
        )
    if not model.built or not model.blocks[0].ffn.w1.built:
        raise ValueError(
            f"{name} is not built (it has no weights yet): call it once on token ids, e.g. "
            "model(np.zeros((1, model.max_len), 'int32')) (ModelConfig.build does), or load a "
            "checkpoint first"
        )
    return model


def gpt_param_count(
    vocab_size: int,
    max_len: int,
    d_model: int,
    num_layers: int,
    d_ff: int | None = None,
    use_bias: bool = True,
    tie_embeddings: bool = True,
    positional: str = "learned",
) -> int:
    """Parameters of `GPT`: V·d + max_len·d + L·block + LN_f (+ d·V untied).

    V·d is the token table, max_len·d the learned positions (none when sinusoidal), ``block`` is
    `block_param_count`, LN_f has 2d parameters (d without biases) and an
    untied output layer adds d·V. Derived in lesson 08 §4; tying is discussed in lesson 02 §5.
    """
    for name, value in (
        ("vocab_size", vocab_size),
        ("max_len", max_len),
        ("d_model", d_model),
        ("num_layers", num_layers),
    ):
        positive_int(value, name)
    if positional not in TokenAndPositionEmbedding.POSITIONAL:
        raise ValueError(
            f"positional must be one of {TokenAndPositionEmbedding.POSITIONAL}, got {positional!r}"
        )
    d_ff = 4 * d_model if d_ff is None else positive_int(d_ff, "d_ff")
    n = vocab_size * d_model + (max_len * d_model if positional == "learned" else 0)
    n += num_layers * block_param_count(d_model, d_ff, use_bias)
    n += 2 * d_model if use_bias else d_model
    if not tie_embeddings:
        n += d_model * vocab_size
    return n
