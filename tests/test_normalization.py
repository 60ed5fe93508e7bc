import keras
import numpy as np
import pytest
import tensorflow as tf

from lessons_lib import layer_norm, layer_norm_backward


def test_layer_norm_hand_case():
    # x = [1, 2, 3]: mean 2, variance 2/3
    y = layer_norm([1.0, 2.0, 3.0], eps=0.0)
    np.testing.assert_allclose(y, np.array([-1, 0, 1]) / np.sqrt(2 / 3))
    y2 = layer_norm(
        np.array([[1.0, 2.0, 3.0]]), gamma=[2.0, 2.0, 2.0], beta=[1.0, 1.0, 1.0], eps=0.0
    )
    np.testing.assert_allclose(y2, 2 * y[None] + 1)


def test_layer_norm_matches_keras(rng):
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    ref = keras.layers.LayerNormalization(epsilon=1e-5)
    ref.build(x.shape)
    ref.gamma.assign(rng.normal(size=8))
    ref.beta.assign(rng.normal(size=8))
    np.testing.assert_allclose(
        layer_norm(x, ref.gamma.numpy(), ref.beta.numpy()), ref(x), atol=1e-5
    )


def test_layer_norm_gradient(rng):
    x, g, gamma = rng.normal(size=(3, 6)), rng.normal(size=(3, 6)), rng.normal(size=6)
    ours = layer_norm_backward(x, g, gamma)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        mu, var = tf.nn.moments(xt, axes=[-1], keepdims=True)
        y = gamma * (xt - mu) / tf.sqrt(var + 1e-5)
        loss = tf.reduce_sum(y * g)
    np.testing.assert_allclose(ours, tape.gradient(loss, xt).numpy(), atol=1e-10)
    eps, num = 1e-6, np.zeros_like(x)  # finite differences
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = ((layer_norm(xp, gamma) * g).sum() - (layer_norm(xm, gamma) * g).sum()) / (
            2 * eps
        )
    np.testing.assert_allclose(ours, num, atol=1e-6)


def test_layer_norm_bad_input():
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        layer_norm(np.zeros((2, 3)), gamma=np.ones(4))
    with pytest.raises(TypeError, match="floating-point"):
        layer_norm(np.array([1, 2, 3]))


def test_negative_epsilons_are_refused():
    with pytest.raises(ValueError, match="eps must be >= 0"):
        layer_norm_backward(np.zeros((1, 3)), np.zeros((1, 3)), eps=-1.0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        layer_norm(np.zeros((1, 3)), eps=-1.0)
