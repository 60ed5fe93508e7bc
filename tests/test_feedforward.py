import keras
import numpy as np
import pytest

from lessons_lib import FeedForward, feed_forward, gelu, relu


def test_activations():
    np.testing.assert_allclose(relu(np.array([-1.0, 0.0, 2.0])), [0, 0, 2])
    x = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(
        gelu(x), keras.activations.gelu(x.astype("float32"), approximate=False), atol=1e-6
    )
    np.testing.assert_allclose(
        gelu(x, approximate=True),
        keras.activations.gelu(x.astype("float32"), approximate=True),
        atol=1e-6,
    )
    assert gelu(np.array(0.0)) == 0.0


def test_feed_forward_hand_case():
    x = np.array([[1.0, -1.0]])
    w1 = np.array([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    b1 = np.array([0.0, 0.5, 0.0])
    w2 = np.ones((3, 2))
    b2 = np.array([0.0, 1.0])
    # hidden = relu([1, -0.5, -2]) = [1, 0, 0]; out = [1, 1] + b2; no ReLU after W2
    np.testing.assert_allclose(feed_forward(x, w1, b1, w2, -np.ones(2) * 3), [[-2.0, -2.0]])
    np.testing.assert_allclose(feed_forward(x, w1, b1, w2, b2), [[1.0, 2.0]])


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward_layer_matches_numpy_and_dense(activation, rng):
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    layer = FeedForward(4, 16, activation=activation)
    y = layer(x).numpy()
    w1, b1, w2, b2 = (
        v.numpy() for v in (layer.w1.kernel, layer.w1.bias, layer.w2.kernel, layer.w2.bias)
    )
    np.testing.assert_allclose(y, feed_forward(x, w1, b1, w2, b2, activation=activation), atol=1e-5)
    # position-wise: each token alone gives the same answer
    np.testing.assert_allclose(layer(x[:, 1:2]).numpy()[:, 0], y[:, 1], atol=1e-6)
    assert layer.count_params() == 2 * 4 * 16 + 16 + 4


def test_feed_forward_bad_input(rng):
    with pytest.raises(ValueError, match="activation must be one of"):
        FeedForward(4, 8, activation="tanh")
    with pytest.raises(ValueError, match=r"w1 must have shape \(d_model=3"):
        feed_forward(np.zeros((2, 3)), np.zeros((4, 8)), np.zeros(8), np.zeros((8, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"w2 must have shape \(8, 3\)"):
        feed_forward(np.zeros((2, 3)), np.zeros((3, 8)), np.zeros(8), np.zeros((8, 4)), np.zeros(3))
    layer = FeedForward(4, 8)
    with pytest.raises(ValueError, match="d_model=4"):
        layer(np.zeros((1, 2, 5), "float32"))
    clone = FeedForward.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
