import keras
import numpy as np
import pytest
import tensorflow as tf

from lessons_lib import (
    MultiHeadAttention,
    attention_steps,
    causal_mask,
    copy_to_keras_mha,
    merge_heads,
    multi_head_attention,
    scaled_dot_product_attention,
    softmax,
    split_heads,
)


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
    """True means 'may attend': the inverse of the causal mask must give a different answer."""
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
    copy_to_keras_mha(ours, ref)
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


# --- the NumPy multi-head references: split_heads, merge_heads, multi_head_attention --------------


def test_split_and_merge_heads_hand_case():
    x = np.arange(12).reshape(3, 4)  # 3 tokens, d_model = 4; integers are fine for a reshape
    heads = split_heads(x, 2)
    assert heads.shape == (2, 3, 2)
    np.testing.assert_array_equal(heads[0], x[:, :2])  # head 0: columns 0-1
    np.testing.assert_array_equal(heads[1], x[:, 2:])  # head 1: columns 2-3
    np.testing.assert_array_equal(merge_heads(heads), x)
    batch = np.random.default_rng(0).normal(size=(2, 5, 6))
    b_heads = split_heads(batch, 3)
    assert b_heads.shape == (2, 3, 5, 2)
    np.testing.assert_array_equal(b_heads[1, 2], batch[1, :, 4:6])
    np.testing.assert_array_equal(merge_heads(b_heads), batch)


def test_split_and_merge_heads_bad_input():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        split_heads(np.zeros((3, 10)), 3)
    with pytest.raises(ValueError, match="rank >= 2"):
        split_heads(np.zeros(4), 2)
    with pytest.raises(ValueError, match="positive integer"):
        split_heads(np.zeros((3, 4)), 0)
    with pytest.raises(TypeError, match="must hold numbers"):
        split_heads(np.array([["a", "b"]]), 1)
    with pytest.raises(ValueError, match="rank >= 3"):
        merge_heads(np.zeros((3, 4)))


def _random_mha(rng, d=8, h=2, t_k=None, use_bias=True, b=2, t=5):
    """Our layer with random weights (biases too), and x / context."""
    x = rng.normal(size=(b, t, d)).astype("float32")
    ctx = None if t_k is None else rng.normal(size=(b, t_k, d)).astype("float32")
    ours = MultiHeadAttention(d, h, use_bias=use_bias)
    ours(x, ctx)
    for w in ours.weights:
        w.assign(rng.normal(size=w.shape) * 0.4)
    return ours, x, ctx


def _numpy_mha(ours, x, **kwargs):
    w = [dense.kernel.numpy() for dense in (ours.wq, ours.wk, ours.wv, ours.wo)]
    biases = None
    if ours.use_bias:
        biases = {
            n: d.bias.numpy()
            for n, d in zip(("b_q", "b_k", "b_v", "b_o"), (ours.wq, ours.wk, ours.wv, ours.wo))
        }
    return multi_head_attention(x.astype(np.float64), *w, ours.num_heads, biases=biases, **kwargs)


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "cross", "cross+padding"])
def test_numpy_reference_ours_and_keras_layers_agree(kind, rng):
    """multi_head_attention (NumPy) == our MultiHeadAttention == keras.layers.MultiHeadAttention."""
    b, t, d, h = 2, 5, 8, 2
    cross = kind.startswith("cross")
    ours, x, ctx = _random_mha(rng, d, h, t_k=7 if cross else None, b=b, t=t)
    theirs = keras.layers.MultiHeadAttention(h, key_dim=d // h)
    theirs(x, x if ctx is None else ctx)
    assert copy_to_keras_mha(ours, theirs) is theirs
    t_k = 7 if cross else t
    np_kwargs, our_kwargs, keras_kwargs = {}, {}, {}
    if kind == "causal":
        np_kwargs = {"mask": causal_mask(t)}
        our_kwargs = keras_kwargs = {"use_causal_mask": True}
    if "padding" in kind:
        pad = np.ones((b, t, t_k), bool)
        pad[1, :, 3:] = False  # the second sequence (or context) has only 3 real tokens
        np_kwargs, our_kwargs, keras_kwargs = {"mask": pad}, {"mask": pad}, {"attention_mask": pad}
    if cross:
        np_kwargs["context"] = ctx.astype(np.float64)
    ref_out, ref_w = _numpy_mha(ours, x, **np_kwargs)
    out, w = ours(x, ctx, return_attention=True, **our_kwargs)
    k_out, k_w = theirs(x, x if ctx is None else ctx, return_attention_scores=True, **keras_kwargs)
    assert ref_out.shape == (b, t, d) and ref_w.shape == (b, h, t, t_k)
    for o, a in ((out, w), (k_out, k_w)):
        np.testing.assert_allclose(o, ref_out, atol=1e-5)
        np.testing.assert_allclose(a, ref_w, atol=1e-6)
    if "padding" in kind:
        assert np.all(ref_w[1, :, :, 3:] == 0.0)
    if kind == "causal":
        assert np.all(ref_w[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0.0)


def test_multi_head_attention_matches_per_head_attention(rng):
    """Unbatched input, one head at a time with scaled_dot_product_attention, and W_O's sum."""
    t, d, h = 4, 6, 3
    x = rng.normal(size=(t, d))
    wq, wk, wv, wo = (rng.normal(size=(d, d)) for _ in range(4))
    out, weights = multi_head_attention(x, wq, wk, wv, wo, h, mask=causal_mask(t))
    assert out.shape == (t, d) and weights.shape == (h, t, t)
    d_k = d // h
    total = np.zeros((t, d))
    for i in range(h):
        cols = slice(i * d_k, (i + 1) * d_k)
        head, w_i = scaled_dot_product_attention(
            x @ wq[:, cols], x @ wk[:, cols], x @ wv[:, cols], mask=causal_mask(t)
        )
        np.testing.assert_allclose(weights[i], w_i, atol=1e-12)
        total += head @ wo[cols]  # head i writes through rows i*d_k ... of W_O
    np.testing.assert_allclose(out, total, atol=1e-12)


def test_attention_steps_are_consistent(rng):
    x = rng.normal(size=(5, 4))
    w = [rng.normal(size=(4, 4)) for _ in range(4)]
    biases = {"b_q": rng.normal(size=4), "b_o": rng.normal(size=4)}  # absent biases count as 0
    s = attention_steps(x, *w, 2, mask=causal_mask(5), biases=biases)
    assert list(s) == [
        "Q",
        "K",
        "V",
        "Q_heads",
        "K_heads",
        "V_heads",
        "scores",
        "head_outputs",
        "weights",
        "concat",
        "attn_out",
    ]
    np.testing.assert_allclose(s["Q"], x @ w[0] + biases["b_q"])
    np.testing.assert_allclose(s["K"], x @ w[1])
    np.testing.assert_allclose(
        s["scores"], s["Q_heads"] @ s["K_heads"].transpose(0, 2, 1) / np.sqrt(2)
    )
    np.testing.assert_allclose(s["concat"], merge_heads(s["weights"] @ s["V_heads"]))
    np.testing.assert_allclose(s["attn_out"], s["concat"] @ w[3] + biases["b_o"])
    out, weights = multi_head_attention(x, *w, 2, mask=causal_mask(5), biases=biases)
    np.testing.assert_array_equal(out, s["attn_out"])
    np.testing.assert_array_equal(weights, s["weights"])


def test_multi_head_attention_bad_input():
    x, w = np.zeros((3, 4)), np.zeros((4, 4))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        multi_head_attention(np.zeros((3, 6)), *[np.zeros((6, 6))] * 4, 4)
    with pytest.raises(ValueError, match=r"w_k must have shape \(d_model, d_model\) = \(4, 4\)"):
        multi_head_attention(x, w, np.zeros((4, 3)), w, w, 2)
    with pytest.raises(ValueError, match=r"shape \[T, d_model\] or \[batch, T, d_model\]"):
        multi_head_attention(np.zeros((1, 1, 3, 4)), w, w, w, w, 2)
    with pytest.raises(TypeError, match="token ids"):
        multi_head_attention(np.zeros((3, 4), int), w, w, w, w, 2)
    with pytest.raises(ValueError, match="context must have the batch size and d_model"):
        multi_head_attention(x, w, w, w, w, 2, context=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="does not fit the attention scores"):
        multi_head_attention(x, w, w, w, w, 2, mask=np.ones((4, 4), bool))
    with pytest.raises(
        ValueError, match=r"\[batch, T_q, T_k\]"
    ):  # a [B, T_k] padding mask needs a T_q axis
        multi_head_attention(np.zeros((2, 3, 4)), w, w, w, w, 2, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="boolean or 0/1"):
        multi_head_attention(x, w, w, w, w, 2, mask=np.full((3, 3), 2))
    with pytest.raises(ValueError, match=r"unknown keys \['b_x'\]"):
        multi_head_attention(x, w, w, w, w, 2, biases={"b_x": np.zeros(4)})
    with pytest.raises(ValueError, match=r"biases\['b_q'\] must have shape \(4,\)"):
        multi_head_attention(x, w, w, w, w, 2, biases={"b_q": np.zeros(3)})
    with pytest.raises(TypeError, match="biases must be a dict"):
        multi_head_attention(x, w, w, w, w, 2, biases=[np.zeros(4)])


def test_copy_to_keras_mha_without_biases(rng):
    """Ours without biases: theirs keeps its biases but set to 0; the reverse is refused."""
    ours, x, _ = _random_mha(rng, use_bias=False)
    theirs = keras.layers.MultiHeadAttention(2, key_dim=4)
    theirs(x, x)
    for v in theirs.weights:
        v.assign(np.ones(v.shape))
    copy_to_keras_mha(ours, theirs)
    np.testing.assert_allclose(theirs(x, x), ours(x), atol=1e-5)
    np.testing.assert_allclose(_numpy_mha(ours, x)[0], ours(x), atol=1e-5)
    no_bias = keras.layers.MultiHeadAttention(2, key_dim=4, use_bias=False)
    no_bias(x, x)
    copy_to_keras_mha(ours, no_bias)
    np.testing.assert_allclose(no_bias(x, x), ours(x), atol=1e-5)
    with_bias, _, _ = _random_mha(rng)
    with pytest.raises(ValueError, match="ours has biases"):
        copy_to_keras_mha(with_bias, no_bias)


def test_copy_to_keras_mha_refuses_mismatched_or_unbuilt_layers(rng):
    ours, x, _ = _random_mha(rng)  # d_model 8, 2 heads

    def built(**kwargs):
        layer = keras.layers.MultiHeadAttention(**kwargs)
        layer(x, x)
        return layer

    with pytest.raises(ValueError, match="theirs is not built"):
        copy_to_keras_mha(ours, keras.layers.MultiHeadAttention(2, key_dim=4))
    with pytest.raises(ValueError, match="ours is not built"):
        copy_to_keras_mha(MultiHeadAttention(8, 2), built(num_heads=2, key_dim=4))
    with pytest.raises(ValueError, match="num_heads=4"):
        copy_to_keras_mha(ours, built(num_heads=4, key_dim=2))
    with pytest.raises(ValueError, match="key_dim=3"):
        copy_to_keras_mha(ours, built(num_heads=2, key_dim=3))
    with pytest.raises(ValueError, match="value_dim=2"):
        copy_to_keras_mha(ours, built(num_heads=2, key_dim=4, value_dim=2))
    with pytest.raises(ValueError, match="output_dense.kernel must have shape"):
        copy_to_keras_mha(ours, built(num_heads=2, key_dim=4, output_shape=6))
    with pytest.raises(ValueError, match="gate"):
        copy_to_keras_mha(ours, built(num_heads=2, key_dim=4, use_gate=True))
    narrow = keras.layers.MultiHeadAttention(2, key_dim=4)
    narrow(x, rng.normal(size=(2, 7, 5)).astype("float32"))  # a 5-wide context
    with pytest.raises(ValueError, match="key_dense.kernel must have shape"):
        copy_to_keras_mha(ours, narrow)
    with pytest.raises(TypeError, match="ours must be a lessons_lib.MultiHeadAttention"):
        copy_to_keras_mha(built(num_heads=2, key_dim=4), ours)
    with pytest.raises(TypeError, match="theirs must be a keras.layers.MultiHeadAttention"):
        copy_to_keras_mha(ours, ours)


def test_public_attend_split_and_merge_methods(rng):
    """attend is the step lesson 05 shows: call = split, attend; merge_heads inverts split_heads."""
    ours, x, _ = _random_mha(rng)
    q, k, v = (ours.split_heads(d(x)) for d in (ours.wq, ours.wk, ours.wv))
    np.testing.assert_allclose(ours.merge_heads(q), ours.wq(x), atol=0)
    np.testing.assert_allclose(q, split_heads(ours.wq(x).numpy(), 2), atol=0)
    out, w = ours.attend(q, k, v)
    ref_out, ref_w = ours(x, return_attention=True)
    np.testing.assert_allclose(out, ref_out, atol=1e-6)
    np.testing.assert_allclose(w, ref_w, atol=1e-6)


# --- key padding: padding_mask, the ambiguous rank-2 mask, fully padded rows ---------------------


def _pad(lengths, t):
    """A [batch, t] padding mask, True at the first lengths[b] positions of row b."""
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def test_padding_mask_with_batch_equal_to_t_matches_numpy_and_old_mask_is_refused(rng):
    ours, x, _ = _random_mha(rng, b=4, t=4)
    pad = _pad([4, 2, 3, 1], 4)  # [batch, T] == [T_q, T_k] in shape: the ambiguous case
    out, w = ours(x, padding_mask=pad, return_attention=True)
    ref_out, ref_w = _numpy_mha(ours, x, padding_mask=pad)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(w, ref_w, atol=1e-6)
    assert np.all(np.asarray(w)[1, :, :, 2:] == 0.0)  # the padded keys of sequence 1
    # the same as the explicit, unambiguous [batch, T_q, T_k] attention mask
    _, w3 = ours(x, mask=np.repeat(pad[:, None, :], 4, axis=1), return_attention=True)
    np.testing.assert_array_equal(w, w3)
    with pytest.raises(ValueError, match=r"ambiguous.*padding_mask=.*\[1, T_q, T_k\]"):
        ours(x, mask=pad)
    with pytest.raises(ValueError, match="ambiguous"):
        _numpy_mha(ours, x, mask=pad)
    # a [T_q, T_k] pattern is still accepted as [1, T_q, T_k], and as [T_q, T_k] when batch ≠ T_q
    _, wc = ours(x, mask=causal_mask(4)[None], return_attention=True)
    _, wc2 = ours(x, use_causal_mask=True, return_attention=True)
    np.testing.assert_array_equal(wc, wc2)


def test_padding_mask_with_batch_not_t_and_old_mask_gets_a_hint(rng):
    ours, x, _ = _random_mha(rng, b=2, t=5)
    pad = _pad([5, 3], 5)
    out, w = ours(x, padding_mask=pad.astype("int32"), return_attention=True)  # 0/1 is accepted
    ref_out, ref_w = _numpy_mha(ours, x, padding_mask=pad)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(w, ref_w, atol=1e-6)
    with pytest.raises(ValueError, match=r"T_q size is 2, expected 5.*padding_mask="):
        ours(x, mask=pad)


def test_mha_padding_mask_matches_keras_attention_mask(rng):
    for t_k in (None, 7):  # self-attention, and cross-attention (padding of the context)
        ours, x, ctx = _random_mha(rng, t_k=t_k, b=3, t=5)
        keys = t_k or 5
        pad = _pad([keys, 3, 1], keys)
        theirs = keras.layers.MultiHeadAttention(2, key_dim=4)
        theirs(x, x if ctx is None else ctx)
        copy_to_keras_mha(ours, theirs)
        attention_mask = np.repeat(pad[:, None, :], 5, axis=1)  # [B, T_q, T_k]
        out, w = ours(x, ctx, padding_mask=pad, return_attention=True)
        ref_out, ref_w = theirs(
            x,
            x if ctx is None else ctx,
            attention_mask=attention_mask,
            return_attention_scores=True,
        )
        np.testing.assert_allclose(out, ref_out, atol=1e-5)
        np.testing.assert_allclose(w, ref_w, atol=1e-5)
        if t_k is None:  # with the causal mask too
            out, w = ours(x, padding_mask=pad, use_causal_mask=True, return_attention=True)
            ref_out, ref_w = theirs(
                x,
                x,
                attention_mask=attention_mask,
                use_causal_mask=True,
                return_attention_scores=True,
            )
            np.testing.assert_allclose(out, ref_out, atol=1e-5)
            np.testing.assert_allclose(w, ref_w, atol=1e-5)


def test_padding_mask_combines_with_causal_and_explicit_masks(rng):
    ours, x, _ = _random_mha(rng, b=3, t=3)  # batch == T again
    pad = _pad([3, 2, 1], 3)
    pattern = np.ones((1, 3, 3), bool)
    pattern[0, 2, 1] = False  # query 2 may not see key 1 (no row is fully blocked)
    for kwargs, expected in (
        ({"use_causal_mask": True}, pad[:, None, None, :] & causal_mask(3)),
        ({"mask": pattern}, pad[:, None, None, :] & pattern[:, None]),
    ):
        _, w = ours(x, padding_mask=pad, return_attention=True, **kwargs)
        ref_mask = np.broadcast_to(expected, (3, 1, 3, 3))[:, 0]
        ref_out, ref_w = _numpy_mha(ours, x, mask=ref_mask)
        np.testing.assert_allclose(w, ref_w, atol=1e-6)
        assert np.all(np.asarray(w)[~np.broadcast_to(expected, w.shape)] == 0.0)
    # the NumPy reference combines them the same way
    ref_out, ref_w = _numpy_mha(ours, x, mask=pattern, padding_mask=pad)
    _, w = ours(x, mask=pattern, padding_mask=pad, return_attention=True)
    np.testing.assert_allclose(w, ref_w, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fully_padded_row_is_finite_and_uniform(dtype, rng):
    ours, x, _ = _random_mha(rng, b=2, t=4)
    if dtype == "float16":
        ours = MultiHeadAttention(8, 2, dtype="float16")
        ours(x.astype("float16"))
    x = x.astype(dtype)
    pad = _pad([4, 0], 4)  # the second sequence is only padding
    out, w = ours(x, padding_mask=pad, return_attention=True)
    assert np.all(np.isfinite(np.asarray(out, np.float32)))
    np.testing.assert_allclose(np.asarray(w, np.float32)[1], 0.25, atol=1e-3)  # uniform row
    # a query whose every key is blocked (padding ∧ causal): finite as well
    _, w = ours(x, padding_mask=_pad([4, 0], 4), use_causal_mask=True, return_attention=True)
    assert np.all(np.isfinite(np.asarray(w, np.float32)))
    ref_out, ref_w = _numpy_mha(ours, x, padding_mask=pad) if dtype == "float32" else (0, 0)
    assert np.all(np.isfinite(ref_out))


@pytest.mark.parametrize("t_k", [None, 6])
def test_mha_padding_invariance(t_k, rng):
    """Appending padding leaves every real position's output unchanged (to 1e-6)."""
    ours, x, ctx = _random_mha(rng, t_k=t_k, b=3, t=5)
    keys = 5 if ctx is None else t_k
    lengths = [keys, 3, 1]
    pad = _pad(lengths, keys)
    out = np.asarray(ours(x, ctx, padding_mask=pad))
    extra = rng.normal(size=(3, 4, 8)).astype("float32")  # 4 more padding positions, any values
    if ctx is None:
        x2, ctx2 = np.concatenate([x, extra], axis=1), None
        out2 = np.asarray(ours(x2, padding_mask=_pad(lengths, keys + 4)))[:, :5]
    else:
        ctx2 = np.concatenate([ctx, extra], axis=1)
        out2 = np.asarray(ours(x, ctx2, padding_mask=_pad(lengths, keys + 4)))
    real_queries = pad if ctx is None else np.ones((3, 5), bool)
    np.testing.assert_allclose(out2[real_queries], out[real_queries], atol=1e-6)
    # the padding values themselves do not matter either
    if ctx is None:
        x3 = np.where(pad[:, :, None], x, 1e3 * extra[:, :1])
        out3 = np.asarray(ours(x3, padding_mask=pad))
        np.testing.assert_allclose(out3[pad], out[pad], atol=1e-5)


def test_bad_padding_masks_are_refused(rng):
    ours, x, ctx = _random_mha(rng, b=2, t=5, t_k=7)
    pad = _pad([5, 3], 5)
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, T_k\] = \[2, 5\]"):
        ours(x, padding_mask=pad[0])  # rank 1
    with pytest.raises(ValueError, match=r"\[batch, T_k\] = \[2, 5\].*got shape \(2, 1, 5\)"):
        ours(x, padding_mask=pad[:, None])  # rank 3
    with pytest.raises(ValueError, match=r"\[batch, T_k\] = \[2, 5\].*got shape \(1, 5\)"):
        ours(x, padding_mask=pad[:1])  # wrong batch
    with pytest.raises(ValueError, match=r"\[batch, T_k\] = \[2, 5\].*got shape \(2, 4\)"):
        ours(x, padding_mask=pad[:, :4])  # wrong length
    with pytest.raises(ValueError, match=r"\[batch, T_k\] = \[2, 7\]"):
        ours(x, ctx, padding_mask=pad)  # cross-attention: the context's keys
    with pytest.raises(ValueError, match=r"boolean or 0/1.*values \[0 1 2\]"):
        ours(x, padding_mask=pad.astype(int) * np.array([[1], [2]]))
    with pytest.raises(ValueError, match=r"boolean or 0/1.*dtype string"):
        ours(x, padding_mask=np.full((2, 5), "yes"))
    w = [np.eye(8)] * 4
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, T_k\] = \[2, 5\]"):
        multi_head_attention(x, *w, 2, padding_mask=pad[:, :4])
    with pytest.raises(ValueError, match=r"boolean or 0/1.*values \[0 2\]"):
        multi_head_attention(x, *w, 2, padding_mask=pad * 2)


def test_rank2_mask_is_refused_when_batch_is_unknown():
    ours = MultiHeadAttention(8, 2)
    ours(np.zeros((1, 3, 8), "float32"))
    fn = tf.function(
        lambda x: ours(x, mask=causal_mask(3)), input_signature=[tf.TensorSpec((None, 3, 8))]
    )
    with pytest.raises(ValueError, match="ambiguous.*unknown"):
        fn(np.zeros((2, 3, 8), "float32"))
    # the causal path and padding_mask trace fine with an unknown batch
    fn2 = tf.function(
        lambda x, p: ours(x, padding_mask=p, use_causal_mask=True),
        input_signature=[tf.TensorSpec((None, 3, 8)), tf.TensorSpec((None, 3), tf.bool)],
    )
    x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
    p = _pad([3, 2], 3)
    np.testing.assert_allclose(fn2(x, p), ours(x, padding_mask=p, use_causal_mask=True), atol=1e-6)
