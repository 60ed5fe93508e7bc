import numpy as np
import pytest

from lessons_lib import (
    TokenAndPositionEmbedding,
    apply_rope,
    sinusoidal_positional_encoding,
    sinusoidal_shift_matrix,
)


def test_sinusoidal_hand_values():
    pe = sinusoidal_positional_encoding(3, 4)  # ω = [1, 1/100]
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1])
    np.testing.assert_allclose(pe[1], [np.sin(1), np.cos(1), np.sin(0.01), np.cos(0.01)])
    np.testing.assert_allclose(pe[2, :2], [np.sin(2), np.cos(2)])


def test_shift_is_a_rotation_depending_on_offset_only():
    pe = sinusoidal_positional_encoding(50, 16)
    for k in (1, 5, 17):
        r = sinusoidal_shift_matrix(k, 16)
        np.testing.assert_allclose(r @ r.T, np.eye(16), atol=1e-12)  # orthogonal
        np.testing.assert_allclose(pe[k:], (r @ pe[:-k].T).T, atol=1e-12)


def test_rope_relative_property(rng):
    q, k = rng.normal(size=(1, 8)), rng.normal(size=(1, 8))

    def dot(m, n):
        return float(apply_rope(q, [m])[0] @ apply_rope(k, [n])[0])

    assert dot(3, 1) == pytest.approx(dot(10, 8))
    assert dot(0, 0) == pytest.approx(float(q[0] @ k[0]))
    np.testing.assert_allclose(np.linalg.norm(apply_rope(q, [7])), np.linalg.norm(q))


def test_positional_bad_input():
    with pytest.raises(ValueError, match="even d_model"):
        sinusoidal_positional_encoding(4, 5)
    with pytest.raises(ValueError, match="positive integer"):
        sinusoidal_positional_encoding(0, 4)
    with pytest.raises(ValueError, match="positions must have shape"):
        apply_rope(np.zeros((3, 4)), positions=[0, 1])


def test_token_and_position_embedding():
    layer = TokenAndPositionEmbedding(10, 6, 4, positional="sinusoidal")
    ids = np.array([[1, 2, 3]])
    out = layer(ids)
    e = layer.embeddings.numpy()
    np.testing.assert_allclose(
        out[0], e[[1, 2, 3]] + sinusoidal_positional_encoding(3, 4), atol=1e-6
    )
    learned = TokenAndPositionEmbedding(10, 6, 4)
    assert learned(ids).shape == (1, 3, 4)
    assert learned.count_params() == 10 * 4 + 6 * 4
    scaled = TokenAndPositionEmbedding(10, 6, 4, positional="none", scale=True)
    np.testing.assert_allclose(
        scaled(ids)[0], scaled.embeddings.numpy()[[1, 2, 3]] * 2.0, atol=1e-6
    )


def test_token_and_position_embedding_bad_input():
    layer = TokenAndPositionEmbedding(10, 4, 4)
    with pytest.raises(TypeError, match="integer token ids"):
        layer(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="exceeds max_len=4"):
        layer(np.zeros((1, 5), "int32"))
    with pytest.raises(ValueError, match=r"in \[0, 10\)"):
        layer(np.array([[1, 10]]))
    with pytest.raises(ValueError, match="positional must be one of"):
        TokenAndPositionEmbedding(10, 4, 4, positional="rope")
    with pytest.raises(ValueError, match="even d_model"):
        TokenAndPositionEmbedding(10, 4, 5, positional="sinusoidal")


def test_embedding_config_round_trip():
    layer = TokenAndPositionEmbedding(10, 4, 6, positional="sinusoidal", scale=True)
    clone = TokenAndPositionEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
