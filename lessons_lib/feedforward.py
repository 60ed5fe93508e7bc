"""The position-wise feed-forward network (Vaswani et al., 2017, eq. 2; lesson 06):

    FFN(x) = act(x W_1 + b_1) W_2 + b_2

applied to every position separately with the same weights (lesson 06 §5). ``act`` is ReLU in the
original paper and GELU in GPT-2 and later; there is **no** activation after W_2. W_1 widens d_model
to d_ff (usually 4·d_model) and W_2 brings it back (lesson 06 §1, §6).

GELU (Hendrycks & Gimpel, 2016): GELU(x) = x · Φ(x), with Φ the standard normal CDF; the tanh
approximation used by GPT-2 is ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))) (lesson 06 §4).
"""

from __future__ import annotations

from math import erf, sqrt
from typing import Any

import numpy as np

from lessons_lib._backend import keras
from lessons_lib._validate import float_array, non_negative_float, positive_int

ACTIVATIONS = ("relu", "gelu", "gelu_tanh")


def relu(x: Any) -> np.ndarray:
    """ReLU, max(x, 0) elementwise (the original Transformer's activation); lesson 06 §2 and §4."""
    return np.maximum(float_array(x, "x", min_rank=0), 0.0)


def gelu(x: Any, approximate: bool = False) -> np.ndarray:
    """GELU, exact (x · Φ(x), Φ the standard normal CDF) or, ``approximate=True``, its tanh form.

    The approximation is ½ x (1 + tanh(√(2/π) (x + 0.044715 x³))), GPT-2's. Derived in lesson 06 §4.
    """
    x = float_array(x, "x", min_rank=0)
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return x * 0.5 * (1.0 + np.vectorize(erf)(x / sqrt(2.0)))


def activation_fn(name: str):
    """The NumPy activation named ``"relu"``, ``"gelu"`` or ``"gelu_tanh"`` (lesson 06 §4)."""
    if name == "relu":
        return relu
    if name == "gelu":
        return gelu
    if name == "gelu_tanh":
        return lambda x: gelu(x, approximate=True)
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def feed_forward(
    x: Any, w1: Any, b1: Any, w2: Any, b2: Any, activation: str = "relu"
) -> np.ndarray:
    """NumPy reference of FFN(x) = act(x W_1 + b_1) W_2 + b_2 for ``x`` of shape ``[..., d_model]``.

    Shapes: ``w1 [d_model, d_ff]``, ``b1 [d_ff]``, ``w2 [d_ff, d_model]``, ``b2 [d_model]``;
    ``activation`` is ``"relu"`` (the default, the thread's), ``"gelu"`` or ``"gelu_tanh"``. Derived
    in lesson 06 §1 and run on the thread in §2.
    """
    act = activation_fn(activation)
    x = float_array(x, "x")
    w1, b1, w2, b2 = (
        float_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
    )
    d_model = x.shape[-1]
    if w1.ndim != 2 or w1.shape[0] != d_model:
        raise ValueError(
            f"w1 must have shape (d_model={d_model}, d_ff), got {w1.shape} (x has shape {x.shape})"
        )
    d_ff = w1.shape[1]
    expected = {"b1": (d_ff,), "w2": (d_ff, d_model), "b2": (d_model,)}
    for name, arr in (("b1", b1), ("w2", w2), ("b2", b2)):
        if arr.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]}, got {arr.shape}")
    return act(x @ w1 + b1) @ w2 + b2


@keras.saving.register_keras_serializable(package="lessons_lib")
class FeedForward(keras.layers.Layer):
    """Keras layer for FFN(x) = act(x W_1 + b_1) W_2 + b_2, the same MLP applied at every position.

    Derived in lesson 06 §1; lesson 06 §3 checks it against ``keras.layers.Dense`` and
    `feed_forward`. Its weights: ``.w1`` (kernel ``[d_model, d_ff]``, with the activation) and
    ``.w2`` (``[d_ff, d_model]``).

    Args:
        d_model: input and output width.
        d_ff: hidden width (commonly ``4 * d_model``).
        activation: ``"relu"`` (original Transformer), ``"gelu"`` or ``"gelu_tanh"`` (GPT-2).
        dropout: dropout rate on the output (training only).
        use_bias: whether both projections have biases.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "gelu",
        dropout: float = 0.0,
        use_bias: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_model = positive_int(d_model, "d_model")
        self.d_ff = positive_int(d_ff, "d_ff")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        self.dropout = non_negative_float(dropout, "dropout", upper=1.0)
        self.use_bias = bool(use_bias)
        keras_act = {
            "relu": "relu",
            "gelu": keras.activations.gelu,
            "gelu_tanh": lambda t: keras.activations.gelu(t, approximate=True),
        }[activation]
        self.w1 = keras.layers.Dense(d_ff, activation=keras_act, use_bias=use_bias, name="w1")
        self.w2 = keras.layers.Dense(d_model, use_bias=use_bias, name="w2")
        self.drop = keras.layers.Dropout(self.dropout)

    def build(self, input_shape):
        if not self.w1.built:
            self.w1.build(input_shape)
        if not self.w2.built:
            self.w2.build(tuple(input_shape[:-1]) + (self.d_ff,))

    def call(self, x, training=None):
        """``x [..., d_model]`` → act(x W_1 + b_1) W_2 + b_2, then dropout; lesson 06 §1, §3."""
        if "float" not in str(x.dtype):
            raise TypeError(
                f"FeedForward expects float input [..., {self.d_model}], got dtype {x.dtype}"
            )
        if x.shape[-1] != self.d_model:
            raise ValueError(
                f"FeedForward expects last dimension d_model={self.d_model}, "
                f"got shape {tuple(x.shape)}"
            )
        return self.drop(self.w2(self.w1(x)), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "d_ff": self.d_ff,
            "activation": self.activation,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
        }


def _ffn_slots(layer: FeedForward) -> dict[str, Any]:
    """The layer's variables under the thread's names (``W_1 b_1 W_2 b_2``); None: no biases."""
    return {
        "W_1": layer.w1.kernel,
        "b_1": layer.w1.bias if layer.use_bias else None,
        "W_2": layer.w2.kernel,
        "b_2": layer.w2.bias if layer.use_bias else None,
    }
