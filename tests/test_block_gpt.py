import numpy as np
import pytest
from lessons_lib import (
    GPT,
    TransformerBlock,
    block_param_count,
    feed_forward,
    gpt_param_count,
    layer_norm,
    scaled_dot_product_attention,
    thread,
)
from lessons_lib.attention import causal_mask


def _numpy_block(block: TransformerBlock, x: np.ndarray) -> np.ndarray:
    """The block's formula written with the NumPy references and the block's own weights."""
    a, h = block.attn, block.num_heads

    def mha(t):
        q, k, v = (t @ d.kernel.numpy() + d.bias.numpy() for d in (a.wq, a.wk, a.wv))
        split = lambda m: m.reshape(m.shape[0], m.shape[1], h, -1).transpose(0, 2, 1, 3)
        out, _ = scaled_dot_product_attention(
            split(q), split(k), split(v), mask=causal_mask(t.shape[1])
        )
        return out.transpose(0, 2, 1, 3).reshape(t.shape) @ a.wo.kernel.numpy() + a.wo.bias.numpy()

    ln = lambda t, l: layer_norm(t, l.gamma.numpy(), l.beta.numpy(), eps=1e-5)
    f = block.ffn
    ffn = lambda t: feed_forward(
        t,
        f.w1.kernel.numpy(),
        f.w1.bias.numpy(),
        f.w2.kernel.numpy(),
        f.w2.bias.numpy(),
        activation=block.activation,
    )
    if block.norm_first:
        x = x + mha(ln(x, block.ln1))
        return x + ffn(ln(x, block.ln2))
    x = ln(x + mha(x), block.ln1)
    return ln(x + ffn(x), block.ln2)


@pytest.mark.parametrize("norm_first", [True, False])
def test_block_follows_its_formula(norm_first, rng):
    block = TransformerBlock(8, 2, 32, norm_first=norm_first)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    block(x)
    for w in block.weights:
        w.assign(rng.normal(size=w.shape) * 0.3)
    y = block(x, use_causal_mask=True).numpy()
    np.testing.assert_allclose(y, _numpy_block(block, x.astype(np.float64)), atol=1e-5)


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


def test_gpt_shapes_params_and_causality(rng):
    model = GPT(vocab_size=11, max_len=8, d_model=16, num_heads=4, num_layers=2)
    ids = rng.integers(0, 11, size=(2, 6))
    logits, w = model(ids, return_attention=True)
    assert logits.shape == (2, 6, 11) and w.shape == (2, 2, 4, 6, 6)
    assert model.count_params() == gpt_param_count(11, 8, 16, 2)
    changed = ids.copy()
    changed[:, -1] = (
        changed[:, -1] + 1
    ) % 11  # changing the last token cannot change earlier predictions
    np.testing.assert_allclose(model(changed)[:, :-1], logits[:, :-1], atol=1e-6)
    untied = GPT(11, 8, 16, 4, 1, use_bias=False, tie_embeddings=False)
    untied(ids)
    assert untied.count_params() == gpt_param_count(
        11, 8, 16, 1, use_bias=False, tie_embeddings=False
    )
    clone = GPT.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_thread_numpy_matches_keras_gpt():
    s = thread.forward()
    assert list(s["ids"]) == [0, 1, 2, 3, 0, 1]
    np.testing.assert_allclose(s["one_hot"] @ thread.weights()["E"], s["embeddings"])
    np.testing.assert_allclose(s["probs"].sum(-1), 1.0)
    logits = thread.build_gpt()(s["ids"][None]).numpy()[0]
    np.testing.assert_allclose(logits, s["logits"], atol=1e-5)
    w = thread.weights()
    assert all(
        np.allclose(v, np.round(v, 1)) for v in w.values()
    )  # every weight has one decimal: hand-friendly
    with pytest.raises(ValueError, match="not in the thread's vocabulary"):
        thread.tokenize("to be or not to sing")


def test_layers_build_after_a_sublayer_was_used_alone(rng):
    x = rng.normal(size=(1, 3, 8)).astype("float32")
    block = TransformerBlock(8, 2, 16)
    block.ln1(x)  # build one sublayer first, as a lesson might
    assert block(x).shape == (1, 3, 8)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"positional": "sinusodial"}, "positional must be one of"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"max_len": -4}, "max_len must be a positive integer"),
    ],
)
def test_gpt_param_count_bad_input(kwargs, msg):
    args = {"vocab_size": 10, "max_len": 8, "d_model": 4, "num_layers": 1, **kwargs}
    with pytest.raises(ValueError, match=msg):
        gpt_param_count(**args)
