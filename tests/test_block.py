import numpy as np
import pytest

from lessons_lib import (
    TransformerBlock,
    block_param_count,
    block_weights,
    causal_mask,
    feed_forward,
    layer_norm,
    load_block_weights,
    multi_head_attention,
    thread,
    transformer_block,
)
from lessons_lib.feedforward import relu


def _random_block(rng, norm_first=True, activation="gelu", use_bias=True, d=8, h=2, f=32):
    block = TransformerBlock(
        d, h, f, norm_first=norm_first, activation=activation, use_bias=use_bias
    )
    block.build((None, None, d))
    for w in block.weights:  # random γ, β and biases too, so that nothing hides behind a 1 or a 0
        base = 1.0 if w.path.endswith("gamma") else 0.0
        w.assign(base + rng.normal(size=w.shape) * 0.3)
    return block


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_follows_its_formula(norm_first, rng):
    """The Keras block against the NumPy reference, on the block's own weights."""
    block = _random_block(rng, norm_first=norm_first)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    y = block(x, use_causal_mask=True).numpy()
    ref = transformer_block(
        x.astype(np.float64), block_weights(block), 2, norm_first=norm_first, mask=causal_mask(5)
    )
    np.testing.assert_allclose(y, ref["block_out"], atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_transformer_block_is_its_two_equations(norm_first, activation, rng):
    """post-norm: h = LN1(x + MHA(x)), y = LN2(h + FFN(h));
    pre-norm: h = x + MHA(LN1(x)), y = h + FFN(LN2(h))."""
    w = block_weights(_random_block(rng, norm_first, activation))
    x = rng.normal(size=(6, 8))
    mask = causal_mask(6)
    s = transformer_block(x, w, 2, norm_first=norm_first, activation=activation, mask=mask)
    biases = {f"b_{c.lower()}": w[f"b_{c}"] for c in "QKVO"}

    def mha(t):
        return multi_head_attention(
            t, w["W_Q"], w["W_K"], w["W_V"], w["W_O"], 2, mask=mask, biases=biases
        )[0]

    def ffn(t):
        return feed_forward(t, w["W_1"], w["b_1"], w["W_2"], w["b_2"], activation=activation)

    def ln(t, i):
        return layer_norm(t, w[f"gamma_{i}"], w[f"beta_{i}"])

    if norm_first:
        h = x + mha(ln(x, 1))
        y = h + ffn(ln(h, 2))
        np.testing.assert_allclose(s["attn_in"], ln(x, 1))
        np.testing.assert_allclose(s["ffn_in"], ln(h, 2))
    else:
        h = ln(x + mha(x), 1)
        y = ln(h + ffn(h), 2)
        np.testing.assert_array_equal(s["attn_in"], x)
        np.testing.assert_array_equal(s["ffn_in"], s["h1"])
    np.testing.assert_allclose(s["h1"], h, atol=1e-12)
    np.testing.assert_allclose(s["block_out"], y, atol=1e-12)
    np.testing.assert_allclose(s["residual_1"], x + s["attn_out"])
    np.testing.assert_allclose(s["residual_2"], s["h1"] + s["ffn_out"])
    np.testing.assert_allclose(s["ffn_out"], s["ffn_hidden"] @ w["W_2"] + w["b_2"], atol=1e-12)
    assert s["weights"].shape == (2, 6, 6)


def test_transformer_block_with_padding_mask_matches_keras(rng):
    block = _random_block(rng, norm_first=True)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    pad = np.ones((2, 5, 5), bool)
    pad[1, :, 3:] = False
    y, w = block(x, mask=pad, return_attention=True)
    ref = transformer_block(x.astype(np.float64), block_weights(block), 2, mask=pad)
    np.testing.assert_allclose(y, ref["block_out"], atol=1e-5)
    np.testing.assert_allclose(w, ref["weights"], atol=1e-6)
    assert np.all(ref["weights"][1, :, :, 3:] == 0.0)


def test_block_weights_names_and_round_trip(rng):
    block = _random_block(rng)
    w = block_weights(block)
    assert list(w) == [
        "W_Q",
        "W_K",
        "W_V",
        "W_O",
        "W_1",
        "b_1",
        "W_2",
        "b_2",
        "gamma_1",
        "beta_1",
        "gamma_2",
        "beta_2",
        "b_Q",
        "b_K",
        "b_V",
        "b_O",
    ]
    assert all(a.dtype == np.float64 for a in w.values())
    np.testing.assert_array_equal(w["W_Q"], block.attn.wq.kernel.numpy())
    np.testing.assert_array_equal(w["beta_2"], block.ln2.beta.numpy())
    other = TransformerBlock(8, 2, 32)  # unbuilt: load_block_weights builds it
    assert load_block_weights(other, w) is other
    for name, value in block_weights(other).items():
        np.testing.assert_array_equal(value, w[name])
    x = rng.normal(size=(1, 4, 8)).astype("float32")
    np.testing.assert_array_equal(other(x), block(x))
    w["W_1"] = w["W_1"] * 2  # the copies are independent of the block
    assert not np.allclose(block_weights(block)["W_1"], w["W_1"])


def test_block_weights_without_biases(rng):
    block = _random_block(rng, use_bias=False)
    w = block_weights(block)
    assert list(w) == ["W_Q", "W_K", "W_V", "W_O", "W_1", "W_2", "gamma_1", "gamma_2"]
    x = rng.normal(size=(2, 4, 8)).astype("float32")
    ref = transformer_block(x.astype(np.float64), w, 2, mask=causal_mask(4))
    np.testing.assert_allclose(block(x, use_causal_mask=True), ref["block_out"], atol=1e-5)
    other = TransformerBlock(8, 2, 32, use_bias=False)
    load_block_weights(
        other, {**w, "b_1": np.zeros(32)}
    )  # a zero bias for a block without biases is fine
    np.testing.assert_array_equal(other(x), block(x))
    with pytest.raises(ValueError, match=r"has no 'b_Q' \(it was built with use_bias=False\)"):
        load_block_weights(other, {**w, "b_Q": np.ones(8)})


def test_load_block_weights_defaults_biases_and_betas_to_zero(rng):
    """The thread's attention has no biases: loading it sets them to 0 (transformer_block's 0)."""
    block = _random_block(rng)
    tw = thread.weights()
    small = load_block_weights(TransformerBlock(4, 2, 16, activation="relu"), tw)
    w = block_weights(small)
    for c in "QKVO":
        np.testing.assert_array_equal(w[f"b_{c}"], np.zeros(4))
    required = {k: v for k, v in block_weights(block).items() if not k.startswith(("b_", "beta_"))}
    load_block_weights(block, required)
    assert not np.any(block.ln1.beta.numpy()) and not np.any(block.ffn.w1.bias.numpy())


def test_transformer_block_bad_input(rng):
    w = block_weights(_random_block(rng))
    x = rng.normal(size=(5, 8))
    with pytest.raises(ValueError, match=r"missing \['W_2'\]"):
        transformer_block(x, {k: v for k, v in w.items() if k != "W_2"}, 2)
    with pytest.raises(ValueError, match=r"unknown keys \['W_q'\]"):
        transformer_block(x, {**w, "W_q": w["W_Q"]}, 2)
    with pytest.raises(ValueError, match=r"weights\['W_O'\] must have shape \(8, 8\)"):
        transformer_block(x, {**w, "W_O": np.zeros((8, 4))}, 2)
    with pytest.raises(ValueError, match=r"weights\['W_1'\] must have shape \(d_model, d_ff\)"):
        transformer_block(x, {**w, "W_1": np.zeros((6, 32))}, 2)
    with pytest.raises(ValueError, match=r"weights\['b_1'\] must have shape \(32,\)"):
        transformer_block(x, {**w, "b_1": np.zeros(8)}, 2)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        transformer_block(x, w, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        transformer_block(x, w, 2, activation="tanh")
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        transformer_block(x, w, 2, epsilon=-1.0)
    with pytest.raises(TypeError, match="weights must be a dict"):
        transformer_block(x, list(w.values()), 2)
    with pytest.raises(TypeError, match="token ids"):
        transformer_block(np.zeros((5, 8), int), w, 2)
    with pytest.raises(ValueError, match="does not fit the attention scores"):
        transformer_block(x, w, 2, mask=causal_mask(4))


def test_block_weights_and_load_refuse_bad_blocks(rng):
    with pytest.raises(ValueError, match="not built yet"):
        block_weights(TransformerBlock(8, 2, 32))
    with pytest.raises(TypeError, match="expects a lessons_lib.TransformerBlock"):
        block_weights(thread.build_gpt())
    cross = TransformerBlock(8, 2, 16, cross_attention=True)
    with pytest.raises(ValueError, match="self-attention blocks only"):
        block_weights(cross)
    with pytest.raises(ValueError, match="self-attention blocks only"):
        load_block_weights(cross, {})
    w = block_weights(_random_block(rng))
    target = _random_block(rng)
    before = block_weights(target)
    with pytest.raises(ValueError, match=r"weights\['W_1'\] must have shape \(8, 16\)"):
        load_block_weights(TransformerBlock(8, 2, 16), w)  # another d_ff: mismatched blocks
    with pytest.raises(ValueError, match=r"weights is missing 'gamma_2'"):
        load_block_weights(target, {k: v for k, v in w.items() if k != "gamma_2"})
    with pytest.raises(ValueError, match=r"keys \['W_3'\]"):
        load_block_weights(target, {**w, "W_3": w["W_1"]})
    with pytest.raises(TypeError, match="weights must be a dict"):
        load_block_weights(target, list(w.values()))
    for name, value in block_weights(target).items():  # nothing was written by the refused loads
        np.testing.assert_array_equal(value, before[name])


def test_public_sublayer_is_the_residual_step(rng):
    for norm_first in (True, False):
        block = _random_block(rng, norm_first=norm_first)
        x = rng.normal(size=(1, 3, 8)).astype("float32")
        out, w = block.sublayer(x, block.ln2, lambda t: (relu(np.asarray(t)), None))
        expected = x + relu(block.ln2(x).numpy()) if norm_first else block.ln2(x + relu(x)).numpy()
        np.testing.assert_allclose(out, expected, atol=1e-6)
        assert w is None


def test_block_param_count_and_config():
    block = TransformerBlock(16, 4, 64)
    block(np.zeros((1, 3, 16), "float32"))
    assert block.count_params() == block_param_count(16, 64)
    nb = TransformerBlock(16, 4, 64, use_bias=False)
    nb(np.zeros((1, 3, 16), "float32"))
    assert nb.count_params() == block_param_count(16, 64, use_bias=False)
    clone = TransformerBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()


def test_block_cross_attention_and_errors(rng):
    block = TransformerBlock(8, 2, 16, cross_attention=True)
    x, ctx = (
        rng.normal(size=(2, 4, 8)).astype("float32"),
        rng.normal(size=(2, 6, 8)).astype("float32"),
    )
    y, w_self, w_cross = block(x, ctx, use_causal_mask=True, return_attention=True)
    assert y.shape == (2, 4, 8) and w_self.shape == (2, 2, 4, 4) and w_cross.shape == (2, 2, 4, 6)
    assert block.count_params() == block_param_count(8, 16, cross_attention=True)
    with pytest.raises(ValueError, match=r"call it as block\(x, context\)"):
        block(x)
    plain = TransformerBlock(8, 2, 16)
    with pytest.raises(ValueError, match="cross_attention=False"):
        plain(x, ctx)
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(8, 3, 16)


def test_layers_build_after_a_sublayer_was_used_alone(rng):
    x = rng.normal(size=(1, 3, 8)).astype("float32")
    block = TransformerBlock(8, 2, 16)
    block.ln1(x)  # build one sublayer first, as a lesson might
    assert block(x).shape == (1, 3, 8)


def test_negative_epsilon_is_refused_by_the_block():
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        TransformerBlock(4, 2, 8, epsilon=-1.0)


# --- key padding (padding_mask, context_padding_mask) --------------------------------------------


def _pad(lengths, t):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_padding_mask_with_batch_equal_to_t_matches_numpy(norm_first, rng):
    block = _random_block(rng, norm_first=norm_first)
    x = rng.normal(size=(4, 4, 8)).astype("float32")
    pad = _pad([4, 2, 3, 1], 4)  # [batch, T] has the shape of [T_q, T_k] here
    y, w = block(x, padding_mask=pad, return_attention=True)
    ref = transformer_block(
        x.astype(np.float64), block_weights(block), 2, norm_first=norm_first, padding_mask=pad
    )
    np.testing.assert_allclose(y, ref["block_out"], atol=1e-5)
    np.testing.assert_allclose(w, ref["weights"], atol=1e-6)
    assert np.all(ref["weights"][1, :, :, 2:] == 0.0)
    with pytest.raises(ValueError, match="ambiguous.*padding_mask="):
        block(x, mask=pad)
    with pytest.raises(ValueError, match="ambiguous.*padding_mask="):
        transformer_block(x, block_weights(block), 2, mask=pad)
    # with the causal mask too, against the reference given both
    y, w = block(x, padding_mask=pad, use_causal_mask=True, return_attention=True)
    ref = transformer_block(
        x.astype(np.float64),
        block_weights(block),
        2,
        norm_first=norm_first,
        mask=causal_mask(4)[None],  # [1, T, T]: a rank-2 mask would be ambiguous here
        padding_mask=pad,
    )
    np.testing.assert_allclose(y, ref["block_out"], atol=1e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_padding_invariance_and_fully_padded_row(norm_first, rng):
    block = _random_block(rng, norm_first=norm_first)
    x = rng.normal(size=(3, 5, 8)).astype("float32")
    lengths = [5, 3, 0]  # the last sequence is only padding
    y = np.asarray(block(x, padding_mask=_pad(lengths, 5)))
    assert np.all(np.isfinite(y))
    extra = rng.normal(size=(3, 3, 8)).astype("float32")
    y2 = np.asarray(block(np.concatenate([x, extra], 1), padding_mask=_pad(lengths, 8)))[:, :5]
    real = _pad(lengths, 5)
    np.testing.assert_allclose(y2[real], y[real], atol=1e-6)


def test_block_context_padding_mask(rng):
    block = TransformerBlock(8, 2, 16, cross_attention=True)
    x = rng.normal(size=(2, 4, 8)).astype("float32")
    ctx = rng.normal(size=(2, 6, 8)).astype("float32")
    block(x, ctx)
    for wt in block.weights:
        wt.assign(wt + rng.normal(size=wt.shape) * 0.3)
    cpad = _pad([6, 2], 6)
    y, _, w_cross = block(x, ctx, context_padding_mask=cpad, return_attention=True)
    assert np.all(np.asarray(w_cross)[1, :, :, 2:] == 0.0)
    ctx2 = np.concatenate([ctx, rng.normal(size=(2, 3, 8)).astype("float32")], 1)
    y2 = block(x, ctx2, context_padding_mask=_pad([6, 2], 9))
    np.testing.assert_allclose(y2, y, atol=1e-6)
    # the same as the explicit [batch, T_q, T_c] context mask
    y3 = block(x, ctx, context_mask=np.repeat(cpad[:, None], 4, axis=1))
    np.testing.assert_allclose(y3, y, atol=1e-6)
    plain = _random_block(rng)
    with pytest.raises(ValueError, match="context_padding_mask.*no cross-attention"):
        plain(x, context_padding_mask=cpad)
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, T_k\] = \[2, 6\]"):
        block(x, ctx, context_padding_mask=cpad[:, :4])


@pytest.mark.parametrize("norm_first", [True, False])
def test_cross_attention_cache_equals_full_recomputation(norm_first, rng):
    """prefill on a prefix, then decode_step per position: the same outputs as one full causal call,
    cross-attention included (it used to be skipped silently)."""
    block = TransformerBlock(8, 2, 16, norm_first=norm_first, cross_attention=True)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    ctx = rng.normal(size=(2, 5, 8)).astype("float32")
    block(x, ctx)
    for wt in block.weights:
        wt.assign(wt + rng.normal(size=wt.shape) * 0.3)
    cpad = _pad([5, 3], 5)
    full = block(x, ctx, use_causal_mask=True, context_padding_mask=cpad).numpy()
    y, (k, v), context_kv = block.prefill(x[:, :2], ctx, context_padding_mask=cpad)
    np.testing.assert_allclose(y.numpy(), full[:, :2], atol=1e-5)
    max_len = 6
    k_cache = np.zeros((2, 2, max_len, 4), "float32")
    v_cache = np.zeros((2, 2, max_len, 4), "float32")
    k_cache[:, :, :2], v_cache[:, :, :2] = k.numpy(), v.numpy()
    for pos in range(2, 6):
        y, (k_cache, v_cache) = block.decode_step(
            x[:, pos : pos + 1], k_cache, v_cache, pos, context_kv, context_padding_mask=cpad
        )
        np.testing.assert_allclose(y.numpy()[:, 0], full[:, pos], atol=1e-5)
    # the cache really holds the context: a wrong context gives other outputs
    other = block.cross.context_cache(ctx[::-1].copy())
    y_other, _ = block.decode_step(x[:, 5:6], k_cache, v_cache, 5, other, cpad)
    assert np.abs(y_other.numpy()[:, 0] - full[:, 5]).max() > 1e-3


def test_cached_calls_refuse_a_missing_or_unexpected_context(rng):
    cross = TransformerBlock(8, 2, 16, cross_attention=True)
    x = rng.normal(size=(1, 3, 8)).astype("float32")
    cross(x, x)
    with pytest.raises(ValueError, match="prefill needs context"):
        cross.prefill(x)
    cache = np.zeros((1, 2, 4, 4), "float32")
    with pytest.raises(ValueError, match="decode_step needs context_kv"):
        cross.decode_step(x[:, :1], cache, cache, 0)
    plain = _random_block(rng)
    with pytest.raises(ValueError, match="prefill takes no context"):
        plain.prefill(x, x)
    with pytest.raises(ValueError, match="decode_step takes no context_kv"):
        plain.decode_step(x[:, :1], cache[:, :, :, :4], cache, 0, context_padding_mask=[[True]])
