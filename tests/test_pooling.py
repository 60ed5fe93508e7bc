"""Pooling: [CLS] and masked mean, by hand and against the Keras layer; padding; bad input."""

import numpy as np
import pytest

from lessons_lib import Pooling, cls_pool, mean_pool
from lessons_lib._backend import keras

H = np.arange(2 * 3 * 2, dtype=np.float64).reshape(2, 3, 2)  # [batch 2, T 3, d 2]
MASK = np.array([[True, True, False], [True, False, False]])


def test_cls_pool_is_position_0():
    assert cls_pool(H).tolist() == [[0.0, 1.0], [6.0, 7.0]]


def test_mean_pool_by_hand():
    # row 0: mean of (0, 1) and (2, 3); row 1: (6, 7) alone; the padded vectors are ignored
    assert mean_pool(H, MASK).tolist() == [[1.0, 2.0], [6.0, 7.0]]
    assert mean_pool(H, MASK.astype(int)).tolist() == [[1.0, 2.0], [6.0, 7.0]]  # 0/1 works too
    # without a mask: the plain mean over all T positions
    assert mean_pool(H).tolist() == [[2.0, 3.0], [8.0, 9.0]]


def test_a_fully_padded_row_gives_zeros_not_nan():
    out = mean_pool(H, np.array([[False] * 3, [True, True, True]]))
    assert np.all(np.isfinite(out)) and out[0].tolist() == [0.0, 0.0]
    layer = Pooling("mean")
    got = layer(H.astype("float32"), padding_mask=np.array([[False] * 3, [True] * 3])).numpy()
    assert np.all(np.isfinite(got)) and got[0].tolist() == [0.0, 0.0]


def test_mean_pool_ignores_whatever_sits_at_padding(rng):
    h = rng.normal(size=(4, 7, 5))
    mask = rng.random((4, 7)) < 0.6
    mask[:, 0] = True
    noisy = np.where(mask[..., None], h, rng.normal(size=h.shape) * 1e3)
    np.testing.assert_allclose(mean_pool(noisy, mask), mean_pool(h, mask), atol=1e-12)
    # and appending more padding changes nothing
    longer = np.concatenate([h, rng.normal(size=(4, 5, 5))], axis=1)
    longer_mask = np.concatenate([mask, np.zeros((4, 5), bool)], axis=1)
    np.testing.assert_allclose(mean_pool(longer, longer_mask), mean_pool(h, mask), atol=1e-12)


@pytest.mark.parametrize("mode", ["cls", "mean"])
def test_keras_layer_matches_numpy(mode, rng):
    h = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0]], dtype=bool)
    got = Pooling(mode)(h, padding_mask=mask).numpy()
    want = cls_pool(h) if mode == "cls" else mean_pool(h, mask)
    np.testing.assert_allclose(got, want, atol=1e-6)
    if mode == "mean":  # no mask: the plain mean
        np.testing.assert_allclose(Pooling("mean")(h).numpy(), h.mean(axis=1), atol=1e-6)


def test_pooling_config_round_trips():
    layer = Pooling("mean", name="p")
    again = Pooling.from_config(layer.get_config())
    assert again.mode == "mean" and again.name == "p"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, Pooling) and restored.mode == "mean"


def test_bad_input():
    with pytest.raises(ValueError, match=r"pooling must be one of \('cls', 'mean'\), got 'max'"):
        Pooling("max")
    with pytest.raises(ValueError, match=r"hidden states \[batch, T, d_model\]"):
        cls_pool(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="floating-point"):
        mean_pool(np.zeros((1, 2, 3), dtype=int), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"mask must have shape \[batch, T\] = \(2, 3\)"):
        mean_pool(H, np.ones((3, 2), bool))
    with pytest.raises(ValueError, match="boolean or 0/1"):
        mean_pool(H, np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="at least one sequence"):
        mean_pool(np.zeros((0, 3, 2)), np.zeros((0, 3), bool))
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, T\] = \(2, 3\)"):
        Pooling("mean")(H.astype("float32"), padding_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"Pooling expects hidden states"):
        Pooling("cls")(np.zeros((2, 3), "float32"))
