"""Positions: the sinusoidal encoding, RoPE, and the token + position embedding (lessons 02, 03).

Sinusoidal encoding (Vaswani et al., 2017, sec. 3.5; lesson 03 §2), sine in the even and cosine in
the odd columns:

    PE[pos, 2i] = sin(pos · ωᵢ),   PE[pos, 2i+1] = cos(pos · ωᵢ),   ωᵢ = 10000^(−2i / d_model)

Because (sin, cos) of (pos + k)·ωᵢ is a rotation of (sin, cos) of pos·ωᵢ by the angle k·ωᵢ, PE[pos +
k] = R_k PE[pos] for a block-diagonal rotation R_k that depends on the offset k only (lesson 03 §3,
`sinusoidal_shift_matrix`).

RoPE (Su et al., 2021, "RoFormer"; lesson 03 §5) rotates each pair of query/key features by pos·ωᵢ
instead of adding anything, so that ⟨R_m q, R_n k⟩ depends on m − n only (`apply_rope`).
Learned positions (GPT-2) are a second table (lesson 03 §4); `TokenAndPositionEmbedding` adds
either kind to the token embedding (lesson 02 §1, lesson 03 §6).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lessons_lib._backend import keras, ops
from lessons_lib._validate import describe, float_array, positive_int


def _even_d_model(d_model: Any, what: str) -> int:
    d_model = positive_int(d_model, "d_model")
    if d_model % 2:
        raise ValueError(f"{what} needs an even d_model (sin/cos pairs), got d_model={d_model}")
    return d_model


def frequencies(d_model: int, base: float = 10000.0) -> np.ndarray:
    """The angular frequencies ωᵢ = base^(−2i / d_model), i = 0 … d_model/2 − 1; lesson 03 §2."""
    d_model = _even_d_model(d_model, "frequencies")
    return base ** (-np.arange(0, d_model, 2) / d_model)


def sinusoidal_positional_encoding(length: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The ``[length, d_model]`` encoding: PE[pos, 2i] = sin(pos ωᵢ), PE[pos, 2i+1] = cos(pos ωᵢ).

    ωᵢ = base^(−2i / d_model) (`frequencies`), so the wavelengths 2π/ωᵢ grow geometrically
    from 2π towards base·2π. Derived in lesson 03 §2; a learner writes it in lesson 03's exercise 1.
    """
    length = positive_int(length, "length")
    w = frequencies(d_model, base)
    angles = np.arange(length)[:, None] * w[None, :]  # [length, d_model/2]
    pe = np.empty((length, d_model))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)
    return pe


def sinusoidal_shift_matrix(k: int, d_model: int, base: float = 10000.0) -> np.ndarray:
    """The block-diagonal rotation R_k with PE[pos + k] = R_k PE[pos] (as column vectors).

    Block i (rows and columns 2i, 2i+1) is [[cos kωᵢ, sin kωᵢ], [−sin kωᵢ, cos kωᵢ]], acting on
    (sin pos·ωᵢ, cos pos·ωᵢ): the angle-addition formulas. Note the order, sine first and cosine
    second: this is the transpose of the rotation that `apply_rope` applies to a pair
    (x₂ᵢ, x₂ᵢ₊₁). Derived in lesson 03 §3.
    """
    w = frequencies(d_model, base)
    r = np.zeros((d_model, d_model))
    for i, wi in enumerate(w):
        c, s = np.cos(k * wi), np.sin(k * wi)
        r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, s], [-s, c]]
    return r


def apply_rope(x: Any, positions: Any = None, base: float = 10000.0) -> np.ndarray:
    """Rotary position embedding: rotate each feature pair (x₂ᵢ, x₂ᵢ₊₁) by the angle pos·ωᵢ.

    (x₂ᵢ, x₂ᵢ₊₁) → (x₂ᵢ cos θ − x₂ᵢ₊₁ sin θ, x₂ᵢ sin θ + x₂ᵢ₊₁ cos θ) with θ = pos·ωᵢ, i.e. the
    rotation [[cos θ, −sin θ], [sin θ, cos θ]]. Derived in lesson 03 §5; a learner writes it in
    lesson 03's exercise 3.

    Args:
        x: ``[..., T, d]`` queries or keys (``d`` even).
        positions: ``[T]`` integer positions; defaults to ``0 .. T-1``.
        base: the base of the frequencies ωᵢ = base^(−2i / d).

    Returns:
        The rotated array, same shape. Dot products of rotated vectors depend on relative position
        only.
    """
    x = float_array(x, "x", min_rank=2)
    d = _even_d_model(x.shape[-1], "apply_rope")
    t = x.shape[-2]
    pos = np.arange(t) if positions is None else np.asarray(positions)
    if pos.shape != (t,):
        raise ValueError(
            f"positions must have shape ({t},) to match x of shape {x.shape}, got {pos.shape}"
        )
    angles = pos[:, None] * frequencies(d, base)[None, :]  # [T, d/2]
    cos, sin = np.cos(angles), np.sin(angles)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out


@keras.saving.register_keras_serializable(package="lessons_lib")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus position information: x_t = E[id_t] · s + P[t].

    E[id] is a table lookup (the same as one_hot(id) E; lesson 02 §1). P is either learned
    (``positional="learned"``, a second table, as in GPT-2; lesson 03 §4) or the fixed sinusoidal
    encoding (``"sinusoidal"``, as in the original paper; lesson 03 §2, on the thread in §6).
    ``scale=True`` multiplies token vectors by s = √d_model (Vaswani et al., sec. 3.4; lesson 02
    §4), else s = 1.

    Args:
        vocab_size: number of token ids.
        max_len: longest sequence the layer accepts.
        d_model: embedding width.
        positional: ``"learned"``, ``"sinusoidal"`` or ``"none"``.
        scale: multiply token embeddings by √d_model.
        embeddings_initializer: initializer of the table(s), Keras' ``"uniform"`` by default.
    """

    POSITIONAL = ("learned", "sinusoidal", "none")

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        d_model: int,
        positional: str = "learned",
        scale: bool = False,
        embeddings_initializer: Any = "uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = positive_int(vocab_size, "vocab_size")
        self.max_len = positive_int(max_len, "max_len")
        self.d_model = positive_int(d_model, "d_model")
        if positional not in self.POSITIONAL:
            raise ValueError(f"positional must be one of {self.POSITIONAL}, got {positional!r}")
        if positional == "sinusoidal":
            _even_d_model(d_model, "sinusoidal positional encoding")
        self.positional = positional
        self.scale = bool(scale)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.token_embedding = keras.layers.Embedding(
            vocab_size,
            d_model,
            name="token_embedding",
            embeddings_initializer=self.embeddings_initializer,
        )
        self.position_embedding = None
        if positional == "learned":
            self.position_embedding = keras.layers.Embedding(
                max_len,
                d_model,
                name="position_embedding",
                embeddings_initializer=self.embeddings_initializer,
            )
        self._sinusoid = (
            sinusoidal_positional_encoding(max_len, d_model).astype("float32")
            if positional == "sinusoidal"
            else None
        )

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        if self.position_embedding is not None:
            self.position_embedding.build((input_shape[-1],))

    @property
    def embeddings(self):
        """The token table E ``[vocab_size, d_model]``, also the output matrix when tied.

        Tying the input and output embeddings is lesson 02 §5.
        """
        return self.token_embedding.embeddings

    def call(self, ids, offset=0):
        """``ids [batch, T]`` → E[ids] · s + P[offset … offset + T − 1], ``[batch, T, d_model]``.

        ``offset`` is the position of the first id (KV-cache decoding, lesson 10 §5). Lesson 02 §1
        (the lookup) and lesson 03 §6 (adding the positions, on the thread).
        """
        dtype = str(ids.dtype)
        if "int" not in dtype:
            raise TypeError(
                "TokenAndPositionEmbedding expects integer token ids [batch, T], "
                f"got {describe(ids)}"
            )
        if len(ids.shape) != 2:
            raise ValueError(f"token ids must have shape [batch, T], got {tuple(ids.shape)}")
        t = ids.shape[1]
        if t is not None and isinstance(offset, int) and t + offset > self.max_len:
            raise ValueError(
                f"sequence length {t} exceeds max_len={self.max_len}; "
                f"keep the last {self.max_len} tokens"
            )
        values = (
            ids if isinstance(ids, np.ndarray) else getattr(ids, "_numpy", lambda: None)()
        )  # eager only
        if (
            values is not None
            and values.size
            and (values.min() < 0 or values.max() >= self.vocab_size)
        ):
            raise ValueError(
                f"token ids must be in [0, {self.vocab_size}), got min {values.min()} and max "
                f"{values.max()}"
            )
        x = self.token_embedding(ids)
        if self.scale:
            x = x * ops.sqrt(ops.cast(self.d_model, x.dtype))
        n = ops.shape(ids)[1]
        if self.position_embedding is not None:
            x = x + self.position_embedding(ops.arange(n) + offset)[None]
        elif self._sinusoid is not None:
            x = x + ops.cast(
                ops.take(ops.convert_to_tensor(self._sinusoid), ops.arange(n) + offset, axis=0)[
                    None
                ],
                x.dtype,
            )
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.d_model,)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "max_len": self.max_len,
            "d_model": self.d_model,
            "positional": self.positional,
            "scale": self.scale,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }
