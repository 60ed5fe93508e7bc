"""Layer normalization (Ba, Kiros & Hinton, 2016) over the feature axis of each token; lesson 07 §2:

    LN(x) = γ ⊙ (x − μ) / √(σ² + ε) + β,   μ = (1/d) ∑ⱼ xⱼ,   σ² = (1/d) ∑ⱼ (xⱼ − μ)²

Its gradient with respect to x, for one token (x̂ = (x − μ) / √(σ² + ε), g = γ ⊙ ∂L/∂y, derived in
lesson 07 §2 "The gradient"):

    ∂L/∂x = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / √(σ² + ε)

where mean is taken over the features (`layer_norm_backward`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lessons_lib._validate import float_array


def _params(x: np.ndarray, gamma: Any, beta: Any) -> tuple[np.ndarray, np.ndarray]:
    d = x.shape[-1]
    gamma = np.ones(d) if gamma is None else float_array(gamma, "gamma")
    beta = np.zeros(d) if beta is None else float_array(beta, "beta")
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p.shape != (d,):
            raise ValueError(
                f"{name} must have shape ({d},) to match x of shape {x.shape}, got {p.shape}"
            )
    return gamma, beta


def layer_norm(x: Any, gamma: Any = None, beta: Any = None, eps: float = 1e-5) -> np.ndarray:
    """LN(x) = γ ⊙ (x − μ) / √(σ² + ε) + β over the last axis: each vector to mean 0, variance ≈ 1.

    ``gamma`` (γ) defaults to ones and ``beta`` (β) to zeros (a freshly initialised layer); ``eps``
    is ε (PyTorch's and the course's 1e-5; Keras defaults to 1e-3). Derived in lesson 07 §2 and
    checked there against ``keras.layers.LayerNormalization``; a learner writes it in lesson 07's
    exercise 1.
    """
    x = float_array(x, "x")
    gamma, beta = _params(x, gamma, beta)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def layer_norm_backward(x: Any, grad_out: Any, gamma: Any = None, eps: float = 1e-5) -> np.ndarray:
    """The gradient ∂L/∂x through `layer_norm`, given ``grad_out`` = ∂L/∂y.

    ∂L/∂x = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / √(σ² + ε) with g = γ ⊙ ∂L/∂y, means over the
    features. Derived in lesson 07 §2 ("The gradient", checked against ``tf.GradientTape``); a
    learner writes it in lesson 07's exercise 2.
    """
    x = float_array(x, "x")
    grad_out = float_array(grad_out, "grad_out")
    if grad_out.shape != x.shape:
        raise ValueError(f"grad_out must have the shape of x {x.shape}, got {grad_out.shape}")
    gamma, _ = _params(x, gamma, None)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    x_hat = (x - mu) / sigma
    g = grad_out * gamma
    return (
        g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat).mean(axis=-1, keepdims=True)
    ) / sigma
