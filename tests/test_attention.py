import keras
import numpy as np
import pytest
import tensorflow as tf
from lessons_lib import MultiHeadAttention, causal_mask, scaled_dot_product_attention, softmax


def test_softmax_hand_case_and_stability():
    # e^0, e^1, e^2 over their sum, computed by hand
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(softmax([0.0, 1.0, 2.0]), e / e.sum())
    big = softmax(np.array([1000.0, 1001.0, 1002.0]))  # naive exp overflows here
    np.testing.assert_allclose(big, e / e.sum())
    rows = softmax(np.random.default_rng(1).normal(size=(4, 5, 6)) * 10)
    np.testing.assert_allclose(rows.sum(-1), 1.0)


def test_softmax_refuses_integers():
    with pytest.raises(TypeError, match="floating-point"):
        softmax(np.array([1, 2, 3]))


def test_causal_mask():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    assert causal_mask(3).dtype == bool
    with pytest.raises(ValueError, match="positive integer"):
        causal_mask(0)


def test_attention_hand_case():
    # q = k: scores q·kᵀ/√2 = [[1/√2, 0], [0, 1/√2]]
    q = np.array([[1.0, 0.0], [0.0, 1.0]])
    v = np.array([[1.0, 2.0], [3.0, 4.0]])
    out, w = scaled_dot_product_attention(q, q, v)
    a = np.exp(1 / np.sqrt(2)) / (np.exp(1 / np.sqrt(2)) + 1)
    np.testing.assert_allclose(w, [[a, 1 - a], [1 - a, a]])
    np.testing.assert_allclose(out, w @ v)


def test_attention_leading_dims_and_tf_reference(rng):
    q, k, v = (
        rng.normal(size=(2, 3, 5, 4)),
        rng.normal(size=(2, 3, 7, 4)),
        rng.normal(size=(2, 3, 7, 6)),
    )
    out, w = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 6) and w.shape == (2, 3, 5, 7)
    ref_w = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 2.0, axis=-1).numpy()
    np.testing.assert_allclose(w, ref_w, atol=1e-12)
    np.testing.assert_allclose(out, ref_w @ v, atol=1e-12)


def test_masked_positions_get_exactly_zero(rng):
    q = rng.normal(size=(4, 3))
    out, w = scaled_dot_product_attention(q, q, q, mask=causal_mask(4))
    assert np.all(w[np.triu_indices(4, 1)] == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    np.testing.assert_allclose(out[0], q[0])  # the first token can only see itself


def test_inverted_mask_is_not_silently_accepted(rng):
    """True means 'may attend': passing the inverse of the causal mask must give a different answer."""
    q = rng.normal(size=(4, 3))
    _, w = scaled_dot_product_attention(q, q, q, mask=causal_mask(4))
    _, w_inv = scaled_dot_product_attention(q, q, q, mask=~causal_mask(4))
    assert w_inv[0, 0] == 0.0 and w[0, 0] == 1.0


def test_permutation_equivariance(rng):
    x = rng.normal(size=(5, 4))
    perm = rng.permutation(5)
    out, _ = scaled_dot_product_attention(x, x, x)
    out_p, _ = scaled_dot_product_attention(x[perm], x[perm], x[perm])
    np.testing.assert_allclose(out_p, out[perm], atol=1e-12)


@pytest.mark.parametrize(
    "q,k,v,msg",
    [
        ((3, 4), (3, 5), (3, 5), "same last dimension"),
        ((3, 4), (3, 4), (2, 4), "same number of positions"),
        ((2, 3, 4), (3, 3, 4), (3, 3, 4), "leading"),
        ((4,), (4,), (4,), "rank >= 2"),
    ],
)
def test_attention_bad_shapes(q, k, v, msg):
    with pytest.raises(ValueError, match=msg):
        scaled_dot_product_attention(np.zeros(q), np.zeros(k), np.zeros(v))


def test_attention_bad_mask_and_dtype():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        scaled_dot_product_attention(x, x, x, mask=np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="boolean or 0/1"):
        scaled_dot_product_attention(x, x, x, mask=np.full((3, 3), 2))
    with pytest.raises(TypeError, match="token ids"):
        scaled_dot_product_attention(np.zeros((3, 2), int), x, x)


def _copy_to_keras(ours: MultiHeadAttention, ref: keras.layers.MultiHeadAttention):
    h, dk, d = ours.num_heads, ours.d_k, ours.d_model
    for dense, sub in (
        (ours.wq, ref._query_dense),
        (ours.wk, ref._key_dense),
        (ours.wv, ref._value_dense),
    ):
        sub.kernel.assign(dense.kernel.numpy().reshape(d, h, dk))
        sub.bias.assign(dense.bias.numpy().reshape(h, dk))
    ref._output_dense.kernel.assign(ours.wo.kernel.numpy().reshape(h, dk, d))
    ref._output_dense.bias.assign(ours.wo.bias.numpy())


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "cross"])
def test_mha_matches_keras_layers(kind):
    keras.utils.set_random_seed(1)
    b, t, d, h = 2, 5, 8, 2
    x = keras.random.normal((b, t, d))
    ctx = keras.random.normal((b, 7, d)) if kind == "cross" else x
    ours = MultiHeadAttention(d, h)
    ref = keras.layers.MultiHeadAttention(h, key_dim=d // h)
    ours(x, ctx if kind == "cross" else None)
    ref(x, ctx)
    for w in ours.weights:  # non-zero biases so that the bias layout is tested too
        w.assign(keras.random.normal(w.shape, seed=len(w.path)) * 0.3)
    _copy_to_keras(ours, ref)
    kwargs, ref_kwargs = {}, {}
    if kind == "causal":
        kwargs, ref_kwargs = {"use_causal_mask": True}, {"use_causal_mask": True}
    if kind == "padding":
        pad = np.ones((b, t, t), bool)
        pad[1, :, 3:] = False  # the second sequence has only 3 real tokens
        kwargs, ref_kwargs = {"mask": pad}, {"attention_mask": pad}
    out, w = ours(x, ctx if kind == "cross" else None, return_attention=True, **kwargs)
    ref_out, ref_w = ref(x, ctx, return_attention_scores=True, **ref_kwargs)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(w, ref_w, atol=1e-5)
    assert w.shape == (b, h, t, ctx.shape[1])


def test_mha_masks_are_exactly_zero_and_inverted_mask_differs():
    keras.utils.set_random_seed(0)
    x = keras.random.normal((1, 4, 8))
    mha = MultiHeadAttention(8, 2)
    _, w = mha(x, mask=causal_mask(4), return_attention=True)
    _, w2 = mha(x, use_causal_mask=True, return_attention=True)
    np.testing.assert_array_equal(w, w2)
    assert np.all(np.asarray(w)[..., np.triu_indices(4, 1)[0], np.triu_indices(4, 1)[1]] == 0.0)
    _, w_inv = mha(x, mask=~causal_mask(4), return_attention=True)
    assert not np.allclose(w, w_inv)


def test_mha_gradient_matches_finite_differences():
    keras.utils.set_random_seed(0)
    mha = MultiHeadAttention(4, 2)
    x = tf.Variable(tf.random.normal((1, 3, 4), dtype=tf.float32))
    mha(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(mha(x, use_causal_mask=True) ** 2)
    grad = tape.gradient(loss, x).numpy()
    eps, x0 = 1e-2, x.numpy().astype(np.float64)
    num = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        for sign in (1, -1):
            xp = x0.copy()
            xp[idx] += sign * eps
            num[idx] += sign * float(
                tf.reduce_sum(mha(tf.constant(xp, tf.float32), use_causal_mask=True) ** 2)
            )
        num[idx] /= 2 * eps
    np.testing.assert_allclose(grad, num, rtol=2e-2, atol=2e-3)


def test_mha_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="positive integer"):
        MultiHeadAttention(0, 1)
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(TypeError, match="embedding"):
        mha(np.zeros((1, 3, 8), dtype="int32"))
    with pytest.raises(ValueError, match="rank 3"):
        mha(np.zeros((3, 8), dtype="float32"))
    with pytest.raises(ValueError, match="d_model=8"):
        mha(np.zeros((1, 3, 6), dtype="float32"))
    x = np.zeros((1, 3, 8), dtype="float32")
    with pytest.raises(ValueError, match="does not fit"):
        mha(x, mask=np.ones((1, 3, 4), bool))


def test_mha_get_config_round_trip():
    mha = MultiHeadAttention(8, 4, dropout=0.1, use_bias=False, name="m")
    clone = MultiHeadAttention.from_config(mha.get_config())
    assert clone.get_config() == mha.get_config()
    x = np.random.default_rng(0).normal(size=(1, 3, 8)).astype("float32")
    mha(x), clone(x)
    clone.set_weights(mha.get_weights())
    np.testing.assert_allclose(clone(x), mha(x))
