r"""Layer normalization (Ba, Kiros & Hinton, 2016), over the last (feature) axis of each token:

.. math::  \mathrm{LN}(x) = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,\quad
           \mu = \tfrac1d \textstyle\sum_j x_j,\quad \sigma^2 = \tfrac1d \sum_j (x_j - \mu)^2

Its gradient with respect to ``x`` (for one token, :math:`\hat x = (x-\mu)/\sigma`, ``g = γ ⊙ dL/dy``):

.. math::  \frac{\partial L}{\partial x} = \frac{1}{\sigma}\left(g - \overline{g} - \hat x\,\overline{g \odot \hat x}\right)

where the bar is the mean over features (:func:`layer_norm_backward`).
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
    """Normalize each vector ``x[..., :]`` to mean 0 and variance 1, then scale by ``gamma`` and shift by ``beta``.

    ``gamma`` defaults to ones and ``beta`` to zeros (a freshly initialised layer).
    """
    x = float_array(x, "x")
    gamma, beta = _params(x, gamma, beta)
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def layer_norm_backward(x: Any, grad_out: Any, gamma: Any = None, eps: float = 1e-5) -> np.ndarray:
    """Gradient of a loss with respect to ``x`` through :func:`layer_norm`, given ``grad_out = dL/dy``."""
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
